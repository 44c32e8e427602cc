"""Upload and upload-reply jobs against a real loopback BITS upload server that injects faults
(tests/servers/bits_upload.py): the job rules of bits-inventory §1.4 and §6, the client half of
[MC-BUP] as bits-upload-protocol §7 lists it, upload-reply, errors as the JobError seed page
states them, retries on the fake clock."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import re
import sqlite3
import tracemalloc
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, Protocol

import pytest

import bitsd
import bitsd._transfer.upload as upload_protocol
from bitsd import ErrorContext, ErrorInfo, FakeClock, JobState, JobType, codes
from bitsd.aio import Engine, Job
from tests.engine.conftest import EngineFactory, advance, body, settle
from tests.servers.bits_upload import PROTOCOL_GUID, BitsUploadServer

FRAGMENT = 16 * 1024
ALL = (JobState.TRANSFERRED, JobState.ERROR, JobState.TRANSIENT_ERROR)


@pytest.fixture
async def bits() -> AsyncIterator[BitsUploadServer]:
    """A BITS upload server on 127.0.0.1 in this test's event loop."""
    async with BitsUploadServer() as s:
        yield s


@pytest.fixture(autouse=True)
def small_fragments(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fragments of 16 KiB, so small files take several."""
    monkeypatch.setattr(upload_protocol, "DEFAULT_FRAGMENT_SIZE", FRAGMENT)


@pytest.fixture
def source(tmp_path: Path) -> Callable[..., Path]:
    """Make a file to upload: ``source(size, name=..., seed=...)``."""

    def make(size: int, name: str = "report.bin", seed: int = 1) -> Path:
        path = tmp_path / "out" / name
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(body(size, seed))
        return path

    return make


class Server(Protocol):
    """A server that names its URLs."""

    def url(self, path: str) -> str: ...


async def upload_job(
    engine: Engine,
    server: Server,
    path: Path,
    *,
    job_type: JobType = JobType.UPLOAD,
    remote: str = "/up/report.bin",
    retry_delay: float = 60,
) -> Job:
    """A resumed upload job of ``path`` to ``remote`` on ``server``."""
    job = await engine.create_job("upload", job_type)
    await job.set_minimum_retry_delay(retry_delay)
    await job.add_file(server.url(remote), str(path))
    await job.resume()
    return job


def content(path: str | Path) -> bytes:
    """The bytes of a file."""
    return Path(path).read_bytes()


class Recorder:
    """A notify interface that records job_error and job_transferred calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, ErrorInfo | None]] = []

    async def job_error(self, job: Job, error: ErrorInfo) -> None:
        self.calls.append(("job_error", error))

    async def job_transferred(self, job: Job) -> None:
        self.calls.append(("job_transferred", None))


async def errors_reach(job: Job, count: int, timeout: float = 10.0) -> None:
    """Wait (real time, bounded) until the job has had ``count`` errors."""

    async def poll() -> None:
        while await job.get_error_count() < count:
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), timeout)


async def until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait (real time, bounded) until ``predicate()`` is true."""

    async def poll() -> None:
        while not predicate():
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), timeout)


# -- job rules ---------------------------------------------------------------------------------


async def test_upload_job_takes_exactly_one_file(
    bits: BitsUploadServer, make_engine: EngineFactory, source: Callable[..., Path]
) -> None:
    """A second add_file, or add_file_set with two files, is BG_E_TOO_MANY_FILES; the first file
    stays the only one."""
    path = source(10)
    async with make_engine() as engine:
        for job_type in (JobType.UPLOAD, JobType.UPLOAD_REPLY):
            job = await engine.create_job("one", job_type)
            assert await job.get_type() is job_type
            with pytest.raises(bitsd.BitsError) as two:
                await job.add_file_set([(bits.url("/a"), str(path)), (bits.url("/b"), str(path))])
            assert two.value.hresult == codes.BG_E_TOO_MANY_FILES
            await job.add_file(bits.url("/a"), str(path))
            with pytest.raises(bitsd.BitsError) as second:
                await job.add_file(bits.url("/b"), str(path))
            assert second.value.hresult == codes.BG_E_TOO_MANY_FILES
            files = await job.files()
            assert [(f.remote_name, f.local_name) for f in files] == [(bits.url("/a"), str(path))]
            assert files[0].progress == bitsd.FileProgress(10, 0, False)


async def test_ranges_prefix_checksum_and_download_properties_are_refused(
    bits: BitsUploadServer, make_engine: EngineFactory, source: Callable[..., Path]
) -> None:
    """add_file_with_ranges and replace_remote_prefix are E_NOTIMPL on uploads (so is a SHA-256,
    a download check); the download-only properties are
    BG_E_PROPERTY_SUPPORTED_FOR_DOWNLOAD_JOBS_ONLY; the on-demand file verbs are
    BG_E_RANDOM_ACCESS_NOT_SUPPORTED."""
    path = source(10)
    async with make_engine() as engine:
        job = await engine.create_job("rules", JobType.UPLOAD)
        with pytest.raises(bitsd.NotSupportedError):
            await job.add_file_with_ranges(bits.url("/a"), str(path), [(0, 5)])
        with pytest.raises(bitsd.NotSupportedError):
            await job.add_file(bits.url("/a"), str(path), sha256="0" * 64)
        await job.add_file(bits.url("/a"), str(path))
        with pytest.raises(bitsd.NotSupportedError) as prefix:
            await job.replace_remote_prefix("http://", "https://")
        assert prefix.value.hresult == codes.E_NOTIMPL
        refused_calls = [
            job.set_dynamic_content(True),
            job.set_maximum_download_size(100),
            job.set_http_method("PUT"),
            job.set_on_demand(True),
        ]
        for call in refused_calls:
            with pytest.raises(bitsd.BitsError) as refused:
                await call
            assert refused.value.hresult == codes.BG_E_PROPERTY_SUPPORTED_FOR_DOWNLOAD_JOBS_ONLY
        for random_access in (
            job.request_file_ranges(0, [(0, 5)]),
            job.get_filled_file_ranges(0),
            job.update_download_position(0, 5),
        ):
            with pytest.raises(bitsd.BitsError) as refused:
                await random_access
            assert refused.value.hresult == codes.BG_E_RANDOM_ACCESS_NOT_SUPPORTED
        await job.set_dynamic_content(False)  # the default is no change


async def test_add_file_checks_the_url_and_the_local_file(
    bits: BitsUploadServer,
    make_engine: EngineFactory,
    source: Callable[..., Path],
    tmp_path: Path,
) -> None:
    """The remote name must be http(s) and the local name an existing readable regular file,
    given as an absolute path; a refused add_file adds nothing."""
    path = source(10)
    async with make_engine() as engine:
        job = await engine.create_job("checks", JobType.UPLOAD_REPLY)
        cases: list[tuple[str, str, int]] = [
            (f"file://{path}", str(path), codes.E_INVALIDARG),
            ("/srv/elsewhere", str(path), codes.E_INVALIDARG),
            (bits.url("/a"), "relative/report.bin", codes.E_INVALIDARG),
            (bits.url("/a"), str(tmp_path), codes.E_INVALIDARG),
            (bits.url("/a"), str(tmp_path / "missing.bin"), codes.HRESULT_FROM_WIN32(2)),
        ]
        for remote, local, hresult in cases:
            with pytest.raises(bitsd.BitsError) as refused:
                await job.add_file(remote, local)
            assert refused.value.hresult == hresult, (remote, local)
        assert await job.files() == []


async def test_reply_calls_need_an_upload_reply_job(
    make_engine: EngineFactory, source: Callable[..., Path]
) -> None:
    """The reply calls are E_NOTIMPL on download and upload jobs."""
    async with make_engine() as engine:
        for job_type in (JobType.DOWNLOAD, JobType.UPLOAD):
            job = await engine.create_job("no reply", job_type)
            calls = [
                job.get_reply_progress(),
                job.get_reply_data(),
                job.get_reply_file_name(),
                job.set_reply_file_name(str(source(1))),
            ]
            for call in calls:
                with pytest.raises(bitsd.NotSupportedError) as refused:
                    await call
                assert refused.value.hresult == codes.E_NOTIMPL


async def test_complete_only_from_transferred(
    bits: BitsUploadServer, make_engine: EngineFactory, source: Callable[..., Path]
) -> None:
    """complete() of an upload job in any state but TRANSFERRED is BG_E_INVALID_STATE and
    changes nothing (no partial Complete of an upload)."""
    bits.create_statuses = [503]
    async with make_engine() as engine:
        job = await engine.create_job("early", JobType.UPLOAD)
        await job.add_file(bits.url("/up/a"), str(source(10)))
        with pytest.raises(bitsd.InvalidStateError):
            await job.complete()
        assert await job.get_state() is JobState.SUSPENDED
        await job.resume()
        assert await settle(job, ALL) is JobState.TRANSIENT_ERROR
        with pytest.raises(bitsd.InvalidStateError):
            await job.complete()
        assert await job.get_state() is JobState.TRANSIENT_ERROR


# -- the protocol ------------------------------------------------------------------------------


async def test_upload_in_fragments_then_close(
    bits: BitsUploadServer, make_engine: EngineFactory, source: Callable[..., Path]
) -> None:
    """Ping, Create-Session with the protocol GUID, in-order fragments with Content-Range and
    Content-Name, Close-Session: the server has the exact file, the job is TRANSFERRED with its
    progress complete, and complete() needs no network."""
    path = source(40_000)
    async with make_engine() as engine:
        job = await upload_job(engine, bits, path)
        assert await settle(job, ALL) is JobState.TRANSFERRED
        assert bits.files == {"/up/report.bin": path.read_bytes()}
        assert bits.kinds() == [
            "Ping",
            "Create-Session",
            "Fragment",
            "Fragment",
            "Fragment",
            "Close-Session",
        ]
        create = bits.packets_of("Create-Session")[0]
        assert create.headers["bits-supported-protocols"] == PROTOCOL_GUID
        assert create.headers["content-name"] == "report.bin"
        assert create.headers["content-length"] == "0"
        ranges = [p.content_range for p in bits.packets_of("Fragment")]
        assert ranges == [
            "bytes 0-16383/40000",
            "bytes 16384-32767/40000",
            "bytes 32768-39999/40000",
        ]
        later = bits.packets_of("Fragment") + bits.packets_of("Close-Session")
        assert len({p.session_id for p in later}) == 1
        assert re.fullmatch(r"\{[0-9A-F-]{36}\}", later[0].session_id or "")
        assert all(p.headers["content-name"] == "report.bin" for p in later)
        progress = await job.get_progress()
        assert (progress.bytes_total, progress.bytes_transferred) == (40_000, 40_000)
        assert (progress.files_total, progress.files_transferred) == (1, 1)
        count = len(bits.packets)
        await bits.stop()
        assert await job.complete() == codes.S_OK
        assert await job.get_state() is JobState.ACKNOWLEDGED
        assert len(bits.packets) == count
        assert path.exists(), "the uploaded file stays where it is"


@pytest.mark.parametrize("size", [0, 1])
async def test_tiny_uploads(
    bits: BitsUploadServer, make_engine: EngineFactory, source: Callable[..., Path], size: int
) -> None:
    """One byte is one fragment ``bytes 0-0/1``; an empty file is one fragment of no bytes,
    ``bytes */0``; both end as files of that size on the server."""
    path = source(size)
    async with make_engine() as engine:
        job = await upload_job(engine, bits, path)
        assert await settle(job, ALL) is JobState.TRANSFERRED
        assert bits.files == {"/up/report.bin": path.read_bytes()}
        [fragment] = bits.packets_of("Fragment")
        assert fragment.content_range == ("bytes 0-0/1" if size else "bytes */0")
        assert fragment.headers["content-length"] == str(size)


async def test_413_shrinks_fragments(
    bits: BitsUploadServer, make_engine: EngineFactory, source: Callable[..., Path]
) -> None:
    """A 413 halves the fragment and sends the same bytes again, until the server takes them;
    the smaller size is kept for the rest of the upload."""
    bits.max_fragment = 6000
    path = source(20_000)
    async with make_engine() as engine:
        job = await upload_job(engine, bits, path)
        assert await settle(job, ALL) is JobState.TRANSFERRED
    assert bits.files == {"/up/report.bin": path.read_bytes()}
    answers = [(p.body_bytes, p.status) for p in bits.packets_of("Fragment")]
    assert answers[:3] == [(16_384, 413), (8192, 413), (5120, 200)]
    assert all(size == 5120 for size, status in answers[3:-1])
    assert answers[-1][1] == 200


async def test_413_at_the_smallest_fragment_is_fatal(
    bits: BitsUploadServer, make_engine: EngineFactory, source: Callable[..., Path]
) -> None:
    """A server that refuses even 5 KiB fragments fails the job with BG_E_HTTP_ERROR_413."""
    bits.max_fragment = 1000
    async with make_engine() as engine:
        job = await upload_job(engine, bits, source(20_000))
        assert await settle(job, ALL) is JobState.ERROR
        err = await job.get_error()
        assert (err.code, err.context) == (codes.http_error(413), ErrorContext.REMOTE_FILE)


async def test_session_not_found_restarts_the_session_from_zero(
    bits: BitsUploadServer, make_engine: EngineFactory, source: Callable[..., Path]
) -> None:
    """A server that forgot the session answers 500 + 0x8020001F; the client creates a new
    session and sends the file again from offset 0."""
    bits.forget_session_after = 2 * FRAGMENT
    path = source(50_000)
    async with make_engine() as engine:
        job = await upload_job(engine, bits, path)
        assert await settle(job, ALL) is JobState.TRANSFERRED
    assert bits.files == {"/up/report.bin": path.read_bytes()}
    kinds = bits.kinds()
    assert kinds.count("Create-Session") == 2
    after = kinds.index("Create-Session", kinds.index("Create-Session") + 1)
    lost = bits.packets_of("Fragment")[2]
    assert lost.status == 500
    assert bits.packets[after + 1].content_range == "bytes 0-16383/50000"


async def test_416_and_short_200_continue_from_the_server_offset(
    bits: BitsUploadServer, make_engine: EngineFactory, source: Callable[..., Path]
) -> None:
    """The next fragment starts at BITS-Received-Content-Range, on 200 (the server took fewer
    bytes than sent) and on 416 (the server has more, or fewer, than the client thinks)."""
    bits.accept_at_most = 10_000
    path = source(30_000)
    async with make_engine() as engine:
        job = await upload_job(engine, bits, path)
        assert await settle(job, ALL) is JobState.TRANSFERRED
    assert bits.files == {"/up/report.bin": path.read_bytes()}
    starts = [p.content_range for p in bits.packets_of("Fragment")]
    assert starts == ["bytes 0-16383/30000", "bytes 10000-26383/30000", "bytes 20000-29999/30000"]

    bits.packets.clear()
    bits.accept_at_most = None
    bits.rewind_to = 0
    async with make_engine() as engine:
        job = await upload_job(engine, bits, path, remote="/up/again.bin")
        assert await settle(job, ALL) is JobState.TRANSFERRED
    assert bits.files["/up/again.bin"] == path.read_bytes()
    answers = [(p.content_range, p.status) for p in bits.packets_of("Fragment")]
    assert answers[:2] == [("bytes 0-16383/30000", 416), ("bytes 0-16383/30000", 200)]


async def test_lost_ack_resends_and_follows_the_416(
    bits: BitsUploadServer,
    make_engine: EngineFactory,
    source: Callable[..., Path],
    clock: FakeClock,
) -> None:
    """A fragment whose Ack was lost is a transient error; the next run pings, resends the
    fragment from the last acknowledged offset, gets 416 with the server's offset and goes on
    from there, in the same session."""
    bits.lose_acks = 1
    path = source(40_000)
    async with make_engine() as engine:
        job = await upload_job(engine, bits, path)
        assert await settle(job, ALL) is JobState.TRANSIENT_ERROR
        err = await job.get_error()
        assert err.context is ErrorContext.GENERAL_TRANSPORT
        bits.packets.clear()
        await advance(clock, 60)
        assert await settle(job, ALL) is JobState.TRANSFERRED
    assert bits.files == {"/up/report.bin": path.read_bytes()}
    answers = [(p.type, p.content_range, p.status) for p in bits.packets]
    assert answers[:3] == [
        ("Ping", None, 200),
        ("Fragment", "bytes 0-16383/40000", 416),
        ("Fragment", "bytes 16384-32767/40000", 200),
    ]
    assert "Create-Session" not in bits.kinds()


async def test_drop_mid_fragment_resumes_from_received_range(
    bits: BitsUploadServer,
    make_engine: EngineFactory,
    source: Callable[..., Path],
    clock: FakeClock,
) -> None:
    """A connection cut in the middle of a fragment's body (the server keeps what arrived) is a
    transient error; the retry sends the fragment again from the last acknowledged offset and
    then continues from the server's BITS-Received-Content-Range."""
    bits.drop_fragment_after = 20_000
    bits.keep_partial = True
    path = source(100_000)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(upload_protocol, "DEFAULT_FRAGMENT_SIZE", 64 * 1024)
        async with make_engine() as engine:
            job = await upload_job(engine, bits, path)
            assert await settle(job, ALL) is JobState.TRANSIENT_ERROR
            assert bits.sessions[next(iter(bits.sessions))].received == 20_000
            assert (await job.get_progress()).bytes_transferred == 0
            await advance(clock, 60)
            assert await settle(job, ALL) is JobState.TRANSFERRED
    assert bits.files == {"/up/report.bin": path.read_bytes()}
    answers = [(p.content_range, p.status) for p in bits.packets_of("Fragment")]
    assert answers == [
        ("bytes 0-65535/100000", 0),
        ("bytes 0-65535/100000", 200),
        ("bytes 65536-99999/100000", 200),
    ]


async def test_host_id_takes_the_later_packets(
    bits: BitsUploadServer, make_engine: EngineFactory, source: Callable[..., Path]
) -> None:
    """With BITS-Host-Id in the Create-Session Ack, the client pings that host and sends every
    later packet there; Acks without BITS-Session-Id are accepted."""
    bits.host_id = "localhost"
    path = source(20_000)
    async with make_engine() as engine:
        job = await upload_job(engine, bits, path)
        assert await settle(job, ALL) is JobState.TRANSFERRED
    assert bits.files == {"/up/report.bin": path.read_bytes()}
    origin, other = f"127.0.0.1:{bits.port}", f"localhost:{bits.port}"
    assert [(p.type, p.host) for p in bits.packets] == [
        ("Ping", origin),
        ("Create-Session", origin),
        ("Ping", other),
        ("Fragment", other),
        ("Fragment", other),
        ("Close-Session", other),
    ]


async def test_host_id_falls_back_to_the_origin_after_its_timeout(
    bits: BitsUploadServer,
    make_engine: EngineFactory,
    source: Callable[..., Path],
    clock: FakeClock,
) -> None:
    """A Host-Id host that cannot be reached is retried until BITS-Host-Id-Fallback-Timeout has
    passed since its first failure; then the packets go back to the origin host, which still
    knows the session."""
    bits.host_id = "127.0.0.2"  # the server listens on 127.0.0.1 only: connections are refused
    bits.host_fallback = 100
    path = source(20_000)
    async with make_engine() as engine:
        job = await upload_job(engine, bits, path)
        assert await settle(job, ALL) is JobState.TRANSIENT_ERROR
        assert (await job.get_error()).code == codes.BG_E_CONNECT_FAILURE
        await advance(clock, 60)
        await errors_reach(job, 2)
        assert await job.get_state() is JobState.TRANSIENT_ERROR
        assert bits.kinds() == ["Ping", "Create-Session"], "nothing reached the Host-Id host"
        await advance(clock, 60)
        assert await settle(job, ALL) is JobState.TRANSFERRED
    assert bits.files == {"/up/report.bin": path.read_bytes()}
    assert bits.kinds() == [
        "Ping",
        "Create-Session",
        "Ping",
        "Fragment",
        "Fragment",
        "Close-Session",
    ]


# BITS-Host-Id values that are not a host a request can be sent to: an empty label, a label
# over 63 characters, an unclosed IPv6 bracket, a port out of range. They pass the header's
# character check, but no request can go to them.
UNSENDABLE_HOST_IDS = [
    pytest.param("a..b", id="empty-label"),
    pytest.param(f"{'a' * 64}.example", id="64-character-label"),
    pytest.param("[::1", id="unclosed-bracket"),
    pytest.param("localhost:99999", id="port-out-of-range"),
    pytest.param("[::1]:99999", id="ipv6-port-out-of-range"),
]


@pytest.mark.parametrize("host_id", UNSENDABLE_HOST_IDS)
async def test_host_id_no_request_can_be_sent_to_is_ignored(
    bits: BitsUploadServer,
    make_engine: EngineFactory,
    source: Callable[..., Path],
    host_id: str,
) -> None:
    """A BITS-Host-Id that no request can be sent to is not a host: it is ignored, as values
    that are not a host name or address are, and the session goes on at the origin."""
    bits.host_id = host_id
    path = source(20_000)
    async with make_engine() as engine:
        job = await upload_job(engine, bits, path)
        state = await settle(job, ALL)
        err = await job.get_error() if state is not JobState.TRANSFERRED else None
        assert state is JobState.TRANSFERRED, err
    assert bits.files == {"/up/report.bin": path.read_bytes()}
    origin = f"127.0.0.1:{bits.port}"
    assert {p.host for p in bits.packets} == {origin}


async def test_close_session_is_retried_on_5xx(
    bits: BitsUploadServer,
    make_engine: EngineFactory,
    source: Callable[..., Path],
    clock: FakeClock,
) -> None:
    """A 503 to Close-Session is a transient error; after the retry delay the Close alone is
    sent again (the fragments are not)."""
    bits.close_statuses = [503]
    path = source(20_000)
    async with make_engine() as engine:
        job = await upload_job(engine, bits, path)
        assert await settle(job, ALL) is JobState.TRANSIENT_ERROR
        err = await job.get_error()
        assert (err.code, err.context) == (codes.http_error(503), ErrorContext.REMOTE_FILE)
        assert "Close-Session answered HTTP 503" in err.description
        bits.packets.clear()
        await advance(clock, 60)
        assert await settle(job, ALL) is JobState.TRANSFERRED
    assert bits.kinds() == ["Ping", "Close-Session"]
    assert bits.files == {"/up/report.bin": path.read_bytes()}


async def test_close_4xx_is_fatal(
    bits: BitsUploadServer, make_engine: EngineFactory, source: Callable[..., Path]
) -> None:
    """A 4xx to Close-Session is not retried (SDK Ack for Close-Session): ERROR."""
    bits.close_statuses = [409]
    async with make_engine() as engine:
        job = await upload_job(engine, bits, source(100))
        assert await settle(job, ALL) is JobState.ERROR
        assert (await job.get_error()).code == codes.http_error(409)


async def test_session_lost_before_close_uploads_again(
    bits: BitsUploadServer, make_engine: EngineFactory, source: Callable[..., Path]
) -> None:
    """A first Close-Session answered BG_E_SESSION_NOT_FOUND means the server lost the upload:
    a plain upload is sent again in a new session."""
    bits.forget_on_close = True
    path = source(20_000)
    async with make_engine() as engine:
        job = await upload_job(engine, bits, path)
        assert await settle(job, ALL) is JobState.TRANSFERRED
    assert bits.files == {"/up/report.bin": path.read_bytes()}
    assert bits.kinds().count("Create-Session") == 2
    assert [p.status for p in bits.packets_of("Close-Session")] == [500, 200]


@pytest.mark.parametrize(
    ("status", "state"),
    [
        (403, JobState.ERROR),
        (404, JobState.ERROR),
        (501, JobState.ERROR),
        (503, JobState.TRANSIENT_ERROR),
        (408, JobState.TRANSIENT_ERROR),
    ],
)
async def test_create_session_failures_follow_the_status_table(
    bits: BitsUploadServer,
    make_engine: EngineFactory,
    source: Callable[..., Path],
    status: int,
    state: JobState,
) -> None:
    """A failed Create-Session is the server's BITS-Error-Code in REMOTE_FILE, transient or
    fatal by the status table of bits-upload-protocol §2.4."""
    bits.create_statuses = [status]
    async with make_engine() as engine:
        job = await upload_job(engine, bits, source(10))
        assert await settle(job, ALL) is state
        err = await job.get_error()
        assert (err.code, err.context, err.protocol) == (
            codes.E_FAIL,
            ErrorContext.REMOTE_FILE,
            "http",
        )
        assert err.file is not None
        assert err.file.remote_name == bits.url("/up/report.bin")


async def test_a_server_without_the_protocol_is_a_mismatch(
    bits: BitsUploadServer, make_engine: EngineFactory, source: Callable[..., Path]
) -> None:
    """A Create-Session Ack without BITS-Protocol: BG_E_CLIENT_SERVER_PROTOCOL_MISMATCH, fatal;
    a plain web server that refuses BITS_POST: its HTTP error, fatal."""
    bits.no_protocol = True
    async with make_engine() as engine:
        job = await upload_job(engine, bits, source(10))
        assert await settle(job, ALL) is JobState.ERROR
        assert (await job.get_error()).code == codes.BG_E_CLIENT_SERVER_PROTOCOL_MISMATCH


async def test_local_file_changed_is_fatal(
    bits: BitsUploadServer,
    make_engine: EngineFactory,
    source: Callable[..., Path],
    clock: FakeClock,
) -> None:
    """The file's size and time are recorded at the first Resume; a retry that finds them
    changed fails the job with BG_E_LOCAL_FILE_CHANGED in LOCAL_FILE, with no further packet."""
    bits.create_statuses = [503]
    path = source(20_000)
    async with make_engine() as engine:
        job = await upload_job(engine, bits, path)
        assert await settle(job, ALL) is JobState.TRANSIENT_ERROR
        path.write_bytes(b"changed")
        count = len(bits.packets)
        await advance(clock, 60)
        assert await settle(job, ALL) is JobState.ERROR
        err = await job.get_error()
        assert (err.code, err.context) == (codes.BG_E_LOCAL_FILE_CHANGED, ErrorContext.LOCAL_FILE)
        assert err.file is not None
        assert err.file.local_name == str(path)
        assert len(bits.packets) == count
        await job.resume()
        assert await settle(job, ALL) is JobState.ERROR, "Resume cannot make the change go away"


async def test_changes_between_add_file_and_the_first_resume_are_fine(
    bits: BitsUploadServer, make_engine: EngineFactory, source: Callable[..., Path]
) -> None:
    """The file may change before the first Resume: its size then is what is uploaded."""
    path = source(10)
    async with make_engine() as engine:
        job = await engine.create_job("later", JobType.UPLOAD)
        await job.add_file(bits.url("/up/report.bin"), str(path))
        path.write_bytes(body(30_000, seed=3))
        await job.resume()
        assert await settle(job, ALL) is JobState.TRANSFERRED
        assert (await job.get_progress()).bytes_total == 30_000
    assert bits.files == {"/up/report.bin": path.read_bytes()}


async def test_restart_continues_the_session_from_the_stored_offset(
    bits: BitsUploadServer,
    make_engine: EngineFactory,
    source: Callable[..., Path],
) -> None:
    """The session id and the acknowledged offset survive an engine restart: the new engine
    sends no Create-Session and asks to continue from the stored offset."""
    bits.drop_fragment_after = 100
    bits.drop_from = 2 * FRAGMENT
    path = source(60_000)
    async with make_engine() as engine:
        job = await upload_job(engine, bits, path)
        assert await settle(job, ALL) is JobState.TRANSIENT_ERROR
        assert (await job.get_progress()).bytes_transferred == 2 * FRAGMENT
        job_id = job.id
    bits.packets.clear()
    async with make_engine() as engine:
        job = await engine.get_job(job_id)
        assert (await job.get_progress()).bytes_transferred == 2 * FRAGMENT
        await job.resume()
        assert await settle(job, ALL) is JobState.TRANSFERRED
    assert bits.files == {"/up/report.bin": path.read_bytes()}
    assert [(p.type, p.content_range) for p in bits.packets[:2]] == [
        ("Ping", None),
        ("Fragment", "bytes 32768-49151/60000"),
    ]
    assert "Create-Session" not in bits.kinds()


# -- upload-reply ------------------------------------------------------------------------------


async def test_upload_reply_fetches_the_reply_before_close(
    bits: BitsUploadServer,
    make_engine: EngineFactory,
    source: Callable[..., Path],
    tmp_path: Path,
) -> None:
    """The final Ack's relative, backslashed BITS-Reply-URL is resolved against the upload URL
    (braces percent-encoded), the reply is fetched with a Range GET before Close-Session, the
    job is TRANSFERRED after it with JobTransferred; the reply is readable in memory at once
    and its file appears on complete()."""
    bits.reply = b"thanks for the report"
    path = source(20_000)
    reply_file = tmp_path / "reply.txt"
    recorder = Recorder()
    async with make_engine() as engine:
        job = await engine.create_job("reply", JobType.UPLOAD_REPLY)
        await job.set_notify_interface(recorder)
        await job.add_file(bits.url("/up/report.bin"), str(path))
        assert await job.get_reply_progress() == bitsd.ReplyProgress(codes.SIZE_UNKNOWN, 0)
        await job.set_reply_file_name(str(reply_file))
        await job.resume()
        assert await settle(job, ALL) is JobState.TRANSFERRED
        assert bits.kinds()[-1] == "Close-Session"
        assert bits.reply_requests == [("GET", "bytes=0-", 206)]
        assert bits.posted == [("/up/report.bin", path.read_bytes())]
        assert await job.get_reply_progress() == bitsd.ReplyProgress(21, 21)
        assert await job.get_reply_data() == b"thanks for the report"
        assert not reply_file.exists(), "the reply file appears on complete()"
        await until(lambda: recorder.calls == [("job_transferred", None)])
        assert await job.complete() == codes.S_OK
        assert reply_file.read_bytes() == b"thanks for the report"
        assert await job.get_reply_data() == b"thanks for the report"
    assert bits.sessions == {}, "Close-Session ended the session"


async def test_absolute_reply_url_and_generated_reply_name(
    bits: BitsUploadServer, make_engine: EngineFactory, source: Callable[..., Path]
) -> None:
    """An absolute Reply-URL is used as is; without set_reply_file_name the first Resume
    names the reply file after the upload file, in its folder."""
    bits.reply = b"ok"
    bits.reply_url_style = "absolute"
    path = source(100)
    async with make_engine() as engine:
        job = await engine.create_job("reply", JobType.UPLOAD_REPLY)
        await job.add_file(bits.url("/up/report.bin"), str(path))
        assert await job.get_reply_file_name() is None
        await job.resume()
        name = await job.get_reply_file_name()
        assert name is not None
        assert Path(name).parent == path.parent
        assert Path(name).name.startswith("report.bin.")
        assert await settle(job, ALL) is JobState.TRANSFERRED
        await job.complete()
    assert content(name) == b"ok"


async def test_generated_reply_name_of_a_long_upload_name_stays_a_name(
    bits: BitsUploadServer, make_engine: EngineFactory, source: Callable[..., Path]
) -> None:
    """An upload file whose name is near NAME_MAX (250 bytes, two-byte characters at the cut)
    gets a generated reply name cut to fit NAME_MAX on a character boundary, not one the file
    system refuses (before: 289 bytes, and the reply could never be placed)."""
    bits.reply = b"ok"
    path = source(100, name="r" + "é" * 124 + "n")
    assert len(path.name.encode()) == 250
    async with make_engine() as engine:
        job = await engine.create_job("long reply name", JobType.UPLOAD_REPLY)
        await job.add_file(bits.url("/up/long.bin"), str(path))
        await job.resume()
        name = await job.get_reply_file_name()
        assert name is not None
        generated = Path(name).name
        assert len(generated.encode()) <= 255
        assert generated.endswith(".reply")
        assert path.name.startswith(generated.split(".")[0])
        assert await settle(job, ALL) is JobState.TRANSFERRED
        await job.complete()
    assert content(name) == b"ok"


async def test_empty_reply(
    bits: BitsUploadServer, make_engine: EngineFactory, source: Callable[..., Path], tmp_path: Path
) -> None:
    """An empty BITS-Reply-URL means no reply: no GET, reply data b"", an empty reply file."""
    bits.reply = b""
    bits.reply_url_style = "empty"
    async with make_engine() as engine:
        job = await engine.create_job("empty", JobType.UPLOAD_REPLY)
        await job.add_file(bits.url("/up/report.bin"), str(source(100)))
        await job.set_reply_file_name(str(tmp_path / "reply"))
        await job.resume()
        assert await settle(job, ALL) is JobState.TRANSFERRED
        assert bits.reply_requests == []
        assert await job.get_reply_progress() == bitsd.ReplyProgress(0, 0)
        assert await job.get_reply_data() == b""
        await job.complete()
    assert (tmp_path / "reply").read_bytes() == b""


async def test_missing_reply_url_is_a_reply_error(
    bits: BitsUploadServer, make_engine: EngineFactory, source: Callable[..., Path]
) -> None:
    """A final Ack without BITS-Reply-URL on an upload-reply job is a fatal
    BG_E_INVALID_SERVER_RESPONSE in REMOTE_FILE, after the upload (the reply total is known)."""
    bits.reply = b"x"
    bits.reply_url_style = "none"
    async with make_engine() as engine:
        job = await upload_job(engine, bits, source(100), job_type=JobType.UPLOAD_REPLY)
        assert await settle(job, ALL) is JobState.ERROR
        err = await job.get_error()
        assert (err.code, err.context) == (
            codes.BG_E_INVALID_SERVER_RESPONSE,
            ErrorContext.REMOTE_FILE,
        )
        assert (await job.get_reply_progress()).bytes_total != codes.SIZE_UNKNOWN


# BITS-Reply-URL values no HTTP client can send a request to (yarl refuses them, or
# bitsd._urls.http_url_problem names why): a broken server's answer, as a reply URL that is not
# HTTP is.
UNSENDABLE_REPLY_URLS = [
    pytest.param("http://a..b/reply", id="empty-label"),
    pytest.param("http://[::1/reply", id="unclosed-bracket"),
    pytest.param(f"http://{'a' * 64}.example/reply", id="64-character-label"),
    pytest.param("http://%E2%82%AC:p@127.0.0.1/reply", id="user-not-latin-1"),
    pytest.param("http://a%3Ab:p@127.0.0.1/reply", id="colon-in-user"),
    pytest.param("http://127.0.0.1:99999/reply", id="port-out-of-range"),
    pytest.param("//a..b/reply", id="relative-to-a-bad-host"),
    pytest.param("ftp://127.0.0.1/reply", id="not-http"),
]


@pytest.mark.parametrize("value", UNSENDABLE_REPLY_URLS)
async def test_reply_url_no_request_can_be_sent_to_is_an_invalid_server_response(
    bits: BitsUploadServer,
    make_engine: EngineFactory,
    source: Callable[..., Path],
    tmp_path: Path,
    value: str,
) -> None:
    """A final Ack whose BITS-Reply-URL no HTTP client can send a request to is a fatal
    BG_E_INVALID_SERVER_RESPONSE in REMOTE_FILE naming the value, as one that is not HTTP: no
    GET is tried. The server keeps the upload; Resume asks it again with the last fragment
    (its bytes are not all sent again) and a usable answer brings the reply."""
    bits.reply = b"the reply"
    bits.reply_url_value = value
    path = source(20_000)
    async with make_engine() as engine:
        job = await engine.create_job("bad reply URL", JobType.UPLOAD_REPLY)
        await job.add_file(bits.url("/up/report.bin"), str(path))
        await job.set_reply_file_name(str(tmp_path / "reply"))
        await job.resume()
        assert await settle(job, ALL) is JobState.ERROR
        err = await job.get_error()
        assert (err.code, err.context) == (
            codes.BG_E_INVALID_SERVER_RESPONSE,
            ErrorContext.REMOTE_FILE,
        )
        assert "the reply URL" in err.description  # (its userinfo is not shown)
        assert bits.reply_requests == []
        assert bits.posted == [("/up/report.bin", path.read_bytes())]
        # The server answers with a usable URL now (it forgets the Ack it cached).
        bits.reply_url_value = None
        for session in bits.sessions.values():
            session.final_ack = None
        bits.packets.clear()
        await job.resume()
        assert await settle(job, ALL) is JobState.TRANSFERRED
        assert bits.kinds() == ["Ping", "Fragment", "Close-Session"]
        assert [p.content_range for p in bits.packets_of("Fragment")] == [
            "bytes 19999-19999/20000"
        ], "the last byte again, not the file"
        assert await job.get_reply_data() == b"the reply"


async def test_application_failure_is_remote_application_and_job_error(
    bits: BitsUploadServer, make_engine: EngineFactory, source: Callable[..., Path]
) -> None:
    """The server application failing (context 0x7 on the final Ack) puts the job in ERROR with
    context REMOTE_APPLICATION and the application's code, calls job_error, and leaves the reply
    total SIZE_UNKNOWN (the reply never started)."""
    bits.reply = b"never"
    bits.app_error = (403, 0x80070005, 1)
    recorder = Recorder()
    async with make_engine() as engine:
        job = await engine.create_job("app", JobType.UPLOAD_REPLY)
        await job.set_notify_interface(recorder)
        await job.add_file(bits.url("/up/report.bin"), str(source(100)))
        await job.resume()
        assert await settle(job, ALL) is JobState.ERROR
        err = await job.get_error()
        assert (err.code, err.context) == (codes.E_ACCESSDENIED, ErrorContext.REMOTE_APPLICATION)
        assert (await job.get_reply_progress()).bytes_total == codes.SIZE_UNKNOWN
        await until(lambda: len(recorder.calls) == 1)
        kind, info = recorder.calls[0]
        assert kind == "job_error"
        assert info is not None
        assert info.context is ErrorContext.REMOTE_APPLICATION


async def test_transient_application_failure_is_retried(
    bits: BitsUploadServer,
    make_engine: EngineFactory,
    source: Callable[..., Path],
    clock: FakeClock,
) -> None:
    """A 500 from the application is transient: the last fragment is sent again after the retry
    delay, the application runs again and the reply arrives."""
    bits.reply = b"second time lucky"
    bits.app_error = (500, 0x80004005, 1)
    async with make_engine() as engine:
        job = await upload_job(engine, bits, source(100), job_type=JobType.UPLOAD_REPLY)
        assert await settle(job, ALL) is JobState.TRANSIENT_ERROR
        assert (await job.get_error()).context is ErrorContext.REMOTE_APPLICATION
        await advance(clock, 60)
        assert await settle(job, ALL) is JobState.TRANSFERRED
        assert await job.get_reply_data() == b"second time lucky"
    assert len(bits.posted) == 2


async def test_reply_get_failure_is_remote_file_with_reply_total_known(
    bits: BitsUploadServer,
    make_engine: EngineFactory,
    source: Callable[..., Path],
    tmp_path: Path,
) -> None:
    """A 404 on the reply GET is BG_E_HTTP_ERROR_404 in REMOTE_FILE with the reply total known
    (the reply failed, not the upload); Resume fetches the reply without uploading again."""
    bits.reply = b"the reply"
    bits.reply_get_statuses = [404]
    async with make_engine() as engine:
        job = await engine.create_job("reply 404", JobType.UPLOAD_REPLY)
        await job.add_file(bits.url("/up/report.bin"), str(source(20_000)))
        await job.set_reply_file_name(str(tmp_path / "reply"))
        await job.resume()
        assert await settle(job, ALL) is JobState.ERROR
        err = await job.get_error()
        assert (err.code, err.context) == (codes.http_error(404), ErrorContext.REMOTE_FILE)
        assert (await job.get_reply_progress()).bytes_total != codes.SIZE_UNKNOWN
        with pytest.raises(bitsd.InvalidStateError):
            await job.set_reply_file_name(str(tmp_path / "other"))
        with pytest.raises(bitsd.InvalidStateError):
            await job.get_reply_data()
        bits.packets.clear()
        await job.resume()
        assert await settle(job, ALL) is JobState.TRANSFERRED
        assert bits.kinds() == ["Ping", "Close-Session"]
        assert await job.get_reply_data() == b"the reply"


async def test_reply_over_1_mib_is_too_large_in_memory(
    bits: BitsUploadServer, make_engine: EngineFactory, source: Callable[..., Path], tmp_path: Path
) -> None:
    """get_reply_data() of a reply over 1 MiB is BG_E_TOO_LARGE; the reply file has it all."""
    reply = body(1024 * 1024 + 1, seed=9)
    bits.reply = reply
    async with make_engine() as engine:
        job = await engine.create_job("big reply", JobType.UPLOAD_REPLY)
        await job.add_file(bits.url("/up/report.bin"), str(source(100)))
        await job.set_reply_file_name(str(tmp_path / "reply"))
        await job.resume()
        assert await settle(job, ALL) is JobState.TRANSFERRED
        with pytest.raises(bitsd.BitsError) as large:
            await job.get_reply_data()
        assert large.value.hresult == codes.BG_E_TOO_LARGE
        await job.complete()
    assert (tmp_path / "reply").read_bytes() == reply


async def test_reply_file_name_rules(
    bits: BitsUploadServer, make_engine: EngineFactory, source: Callable[..., Path], tmp_path: Path
) -> None:
    """set_reply_file_name takes an absolute path in an existing folder, not the upload file
    itself; None goes back to the generated name."""
    path = source(10)
    async with make_engine() as engine:
        job = await engine.create_job("names", JobType.UPLOAD_REPLY)
        await job.add_file(bits.url("/up/report.bin"), str(path))
        with pytest.raises(bitsd.InvalidArgumentError):
            await job.set_reply_file_name("relative")
        with pytest.raises(bitsd.BitsError):
            await job.set_reply_file_name(str(tmp_path / "missing" / "reply"))
        with pytest.raises(bitsd.InvalidArgumentError):
            await job.set_reply_file_name(str(path))
        await job.set_reply_file_name(str(tmp_path / "r"))
        assert await job.get_reply_file_name() == str(tmp_path / "r")
        await job.set_reply_file_name(None)
        assert await job.get_reply_file_name() is None


# -- cancel ------------------------------------------------------------------------------------


async def cancels_reach(server: BitsUploadServer, count: int) -> None:
    """Wait (real time, bounded) until ``count`` Cancel-Session packets arrived."""
    await until(lambda: len(server.packets_of("Cancel-Session")) >= count)


def store_rows(state_dir: Path) -> list[tuple[str, int]]:
    """(id, state) of the job rows in the engine's store."""
    with sqlite3.connect(state_dir / "jobs.sqlite") as db:
        return [(r[0], r[1]) for r in db.execute("SELECT id, state FROM jobs")]


async def test_cancel_sends_cancel_session(
    bits: BitsUploadServer, make_engine: EngineFactory, source: Callable[..., Path]
) -> None:
    """cancel() of an unfinished upload ends the job at once and sends Cancel-Session; the
    server forgets the session and no file appears."""
    bits.drop_fragment_after = 100
    async with make_engine() as engine:
        job = await upload_job(engine, bits, source(50_000))
        assert await settle(job, ALL) is JobState.TRANSIENT_ERROR
        assert len(bits.sessions) == 1
        assert await job.cancel() == codes.S_OK
        assert await job.get_state() is JobState.CANCELLED
        await until(lambda: bits.packets_of("Cancel-Session") != [])
        await until(lambda: bits.sessions == {})
    assert bits.files == {}


async def test_cancel_is_retried_on_the_engine_clock(
    bits: BitsUploadServer,
    make_engine: EngineFactory,
    source: Callable[..., Path],
    clock: FakeClock,
    state_dir: Path,
) -> None:
    """A Cancel-Session answered 503 is recorded (the CANCELLED row stays) and sent again after
    the job's retry delay; once it arrives the row goes."""
    bits.drop_fragment_after = 100
    bits.cancel_statuses = [503]
    async with make_engine() as engine:
        job = await upload_job(engine, bits, source(50_000))
        assert await settle(job, ALL) is JobState.TRANSIENT_ERROR
        await job.cancel()
        await until(lambda: [p.status for p in bits.packets_of("Cancel-Session")] == [503])
        assert [row[0] for row in store_rows(state_dir)] == [job.id]
        await advance(clock, 59)
        assert len(bits.packets_of("Cancel-Session")) == 1
        await advance(clock, 1)
        await until(lambda: [p.status for p in bits.packets_of("Cancel-Session")] == [503, 200])
        await until(lambda: store_rows(state_dir) == [])
    assert bits.sessions == {}


async def test_pending_cancel_survives_a_restart(
    bits: BitsUploadServer,
    make_engine: EngineFactory,
    source: Callable[..., Path],
    state_dir: Path,
) -> None:
    """A Cancel-Session that had not arrived when the engine stopped is sent by the next engine
    at start; the cancelled job never comes back."""
    bits.drop_fragment_after = 100
    bits.cancel_statuses = [503]
    async with make_engine() as engine:
        job = await upload_job(engine, bits, source(50_000))
        assert await settle(job, ALL) is JobState.TRANSIENT_ERROR
        await job.cancel()
        await until(lambda: len(bits.packets_of("Cancel-Session")) == 1)
    async with make_engine() as engine:
        assert await engine.jobs() == []
        await until(lambda: [p.status for p in bits.packets_of("Cancel-Session")] == [503, 200])
        await until(lambda: store_rows(state_dir) == [])


async def test_cancel_gives_up_after_the_no_progress_timeout(
    bits: BitsUploadServer,
    make_engine: EngineFactory,
    source: Callable[..., Path],
    clock: FakeClock,
    state_dir: Path,
) -> None:
    """Cancel-Session is retried for the no-progress timeout at most (if shorter than 24 h),
    then dropped with its row."""
    bits.drop_fragment_after = 100
    bits.cancel_statuses = [503] * 10
    async with make_engine() as engine:
        job = await engine.create_job("give up", JobType.UPLOAD)
        await job.set_minimum_retry_delay(60)
        await job.set_no_progress_timeout(150)
        await job.add_file(bits.url("/up/report.bin"), str(source(50_000)))
        await job.resume()
        assert await settle(job, ALL) is JobState.TRANSIENT_ERROR
        await job.cancel()
        for attempt in (1, 2, 3):
            await cancels_reach(bits, attempt)
            await advance(clock, 60)
        await until(lambda: store_rows(state_dir) == [])
        assert len(bits.packets_of("Cancel-Session")) == 3


async def test_cancel_after_the_upload_succeeded_keeps_the_upload(
    bits: BitsUploadServer, make_engine: EngineFactory, source: Callable[..., Path]
) -> None:
    """Cancel of an upload job whose last byte the server acknowledged (Close failing with 503)
    has no effect on the upload: the client sends Close-Session, not Cancel-Session, and the
    file stays on the server."""
    bits.close_statuses = [503]
    path = source(20_000)
    async with make_engine() as engine:
        job = await upload_job(engine, bits, path)
        assert await settle(job, ALL) is JobState.TRANSIENT_ERROR
        await job.cancel()
        await until(lambda: bits.files != {})
    assert bits.packets_of("Cancel-Session") == []
    assert bits.files == {"/up/report.bin": path.read_bytes()}


async def test_cancel_of_upload_reply_after_the_upload_cancels_the_reply(
    bits: BitsUploadServer,
    make_engine: EngineFactory,
    source: Callable[..., Path],
    tmp_path: Path,
) -> None:
    """Cancel of an upload-reply job after the upload succeeded (its reply GET failing) sends
    Cancel-Session, which cancels the reply only: the application had the upload."""
    bits.reply = b"reply"
    bits.reply_get_statuses = [404]
    async with make_engine() as engine:
        job = await upload_job(engine, bits, source(100), job_type=JobType.UPLOAD_REPLY)
        assert await settle(job, ALL) is JobState.ERROR
        await job.cancel()
        await until(lambda: [p.status for p in bits.packets_of("Cancel-Session")] == [200])
    assert len(bits.posted) == 1


async def test_cancel_of_a_transferred_job_sends_nothing(
    bits: BitsUploadServer, make_engine: EngineFactory, source: Callable[..., Path]
) -> None:
    """After Close-Session there is no session: cancel() sends nothing and the upload stays."""
    path = source(100)
    async with make_engine() as engine:
        job = await upload_job(engine, bits, path)
        assert await settle(job, ALL) is JobState.TRANSFERRED
        count = len(bits.packets)
        assert await job.cancel() == codes.S_OK
        assert engine._uploads._cancels == {}, "no packet is due"
        assert len(bits.packets) == count
    assert bits.files == {"/up/report.bin": path.read_bytes()}


async def test_suspend_and_resume_continue_the_session(
    bits: BitsUploadServer, make_engine: EngineFactory, source: Callable[..., Path]
) -> None:
    """Suspend sends nothing; Resume continues in the same session."""
    bits.drop_fragment_after = 100
    path = source(50_000)
    async with make_engine() as engine:
        job = await upload_job(engine, bits, path)
        assert await settle(job, ALL) is JobState.TRANSIENT_ERROR
        await job.suspend()
        assert await job.get_state() is JobState.SUSPENDED
        count = len(bits.packets)
        await job.resume()
        assert await settle(job, ALL) is JobState.TRANSFERRED
    assert bits.packets[count].type == "Ping"
    assert bits.kinds().count("Create-Session") == 1
    assert bits.files == {"/up/report.bin": path.read_bytes()}


async def test_upload_survives_unknown_packet_case_and_stale_store(
    bits: BitsUploadServer, make_engine: EngineFactory, source: Callable[..., Path], tmp_path: Path
) -> None:
    """Upload records persist and load back: after a restart, a TRANSFERRED upload-reply job
    still answers its reply calls and completes."""
    bits.reply = b"kept"
    async with make_engine() as engine:
        job = await engine.create_job("persist", JobType.UPLOAD_REPLY)
        await job.add_file(bits.url("/up/report.bin"), str(source(100)))
        await job.set_reply_file_name(str(tmp_path / "reply"))
        await job.resume()
        assert await settle(job, ALL) is JobState.TRANSFERRED
        job_id = job.id
    await bits.stop()
    async with make_engine() as engine:
        job = await engine.get_job(job_id)
        assert await job.get_state() is JobState.TRANSFERRED
        assert await job.get_reply_progress() == bitsd.ReplyProgress(4, 4)
        assert await job.get_reply_data() == b"kept"
        assert await job.get_reply_file_name() == str(tmp_path / "reply")
        await job.complete()
    assert (tmp_path / "reply").read_bytes() == b"kept"
    assert os.listdir(tmp_path / "out") == ["report.bin"], "no temporary file is left"


# -- bitsd client ↔ bitsd server (bitsd.server) -----------------------------------------------


class Gate:
    """An ASGI wrapper in front of the bitsd upload server (the product): it records each
    request (method, packet type, Content-Range, status, BITS-Received-Content-Range), cuts the
    connection of a fragment after ``cut_after`` body bytes (``cut_times`` times, fragments
    starting at ``cut_from`` or later: the server sees the bytes before the cut and then a
    disconnect), answers the next reply GETs with ``fail_gets`` statuses and puts the next of
    ``reply_urls`` in an Ack's ``BITS-Reply-URL`` instead of the server's."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.log: list[dict[str, Any]] = []
        self.cut_after: int | None = None
        self.cut_from = 0
        self.cut_times = 1
        self.fail_gets: list[int] = []
        self.reply_urls: list[str] = []

    def kinds(self) -> list[str]:
        return [e["type"] for e in self.log]

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        entry: dict[str, Any] = {
            "method": scope["method"],
            "type": headers.get("bits-packet-type", scope["method"]),
            "range": headers.get("content-range"),
            "status": 0,
            "received": None,
        }
        self.log.append(entry)
        if scope["method"] == "GET" and self.fail_gets:
            entry["status"] = status = self.fail_gets.pop(0)
            await send({"type": "http.response.start", "status": status, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        start = re.match(r"bytes (\d+)-", entry["range"] or "")
        limit = None
        if (
            self.cut_after is not None
            and self.cut_times > 0
            and start is not None
            and int(start.group(1)) >= self.cut_from
        ):
            self.cut_times -= 1
            limit = self.cut_after
        seen = 0

        async def gated_receive() -> Any:
            nonlocal seen
            if limit is not None and seen >= limit:
                receive.__self__.transport.abort()
                return {"type": "http.disconnect"}
            message = await receive()
            if limit is not None and message["type"] == "http.request":
                chunk = message.get("body", b"")
                if seen + len(chunk) >= limit:
                    message = {**message, "body": chunk[: limit - seen], "more_body": True}
                seen += len(message.get("body", b""))
            return message

        async def recording_send(message: Any) -> None:
            if message["type"] == "http.response.start":
                entry["status"] = message["status"]
                out = []
                for k, v in message.get("headers", []):
                    name = k.decode("latin-1").lower()
                    if name == "bits-received-content-range":
                        entry["received"] = int(v)
                    if name == "bits-reply-url" and self.reply_urls:
                        v = self.reply_urls.pop(0).encode("latin-1")
                    out.append((k, v))
                message = {**message, "headers": out}
            await send(message)

        await self.app(scope, gated_receive, recording_send)


class Application:
    """The server application of upload-reply (a POST endpoint, by value): answers with
    ``reply`` or with the next of ``statuses``; records what it got."""

    def __init__(self) -> None:
        self.reply = b"reply"
        self.statuses: list[int] = []
        self.got: list[bytes] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        data = b""
        while True:
            message = await receive()
            data += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.got.append(data)
        status = self.statuses.pop(0) if self.statuses else 200
        body = self.reply if status == 200 else b"failed"
        headers = [(b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


@contextlib.asynccontextmanager
async def bitsd_server(
    root: Path, *, port: int = 0, gate: Gate | None = None, **settings: Any
) -> AsyncIterator[tuple[Any, Gate]]:
    """The bitsd upload server (``bitsd.server.make_app``) behind a :class:`Gate`, served
    with uvicorn (h11) on 127.0.0.1."""
    from bitsd.server import Serving, make_app

    app = make_app(root, **settings)
    if gate is None:
        gate = Gate(app)
    else:
        gate.app = app
    async with Serving(gate, port=port) as serving:
        yield serving, gate


def serve(app: Any) -> Any:
    """``app`` served with uvicorn (h11) on 127.0.0.1 (``bitsd.server.Serving``)."""
    from bitsd.server import Serving

    return Serving(app)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """The upload server's root folder."""
    return tmp_path / "root"


@pytest.mark.parametrize("size", [0, 1])
async def test_interop_tiny_uploads(
    make_engine: EngineFactory, source: Callable[..., Path], root: Path, size: int
) -> None:
    """bitsd client → bitsd server: 0 bytes and 1 byte arrive as files of that size, at the
    URL's path under the root, on Close-Session."""
    path = source(size)
    async with bitsd_server(root) as (serving, gate), make_engine() as engine:
        job = await engine.create_job("tiny", JobType.UPLOAD)
        await job.add_file(serving.url("/in/tiny.bin"), str(path))
        await job.resume()
        assert await settle(job, ALL) is JobState.TRANSFERRED
        assert await job.complete() == codes.S_OK
    assert content(root / "in" / "tiny.bin") == path.read_bytes()
    assert gate.kinds() == ["Ping", "Create-Session", "Fragment", "Close-Session"]


async def test_interop_413_shrinks_fragments(
    make_engine: EngineFactory, source: Callable[..., Path], root: Path
) -> None:
    """The bitsd server's fragment limit (413) makes the client halve its fragments until they
    fit; the file arrives whole."""
    path = source(50_000)
    async with (
        bitsd_server(root, max_fragment_size=10_000) as (serving, gate),
        make_engine() as engine,
    ):
        job = await upload_job(engine, serving, path, remote="/in/report.bin")
        assert await settle(job, ALL) is JobState.TRANSFERRED
        await job.complete()
    assert content(root / "in" / "report.bin") == path.read_bytes()
    fragments = [e for e in gate.log if e["type"] == "Fragment"]
    spans = [re.match(r"bytes (\d+)-(\d+)/", e["range"]) for e in fragments]
    sizes = [int(m.group(2)) - int(m.group(1)) + 1 for m in spans if m is not None]
    assert [e["status"] for e in fragments] == [413] + [200] * (len(fragments) - 1)
    assert sizes[:2] == [FRAGMENT, FRAGMENT // 2]
    assert set(sizes[1:-1]) == {FRAGMENT // 2}


async def test_interop_200_mb_with_flat_memory(
    make_engine: EngineFactory,
    source: Callable[..., Path],
    root: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """200 MB go up in the default 4 MiB fragments, read from disk as they are sent: the
    memory allocated at the peak (client and server, in this process) stays far below the
    file's size."""
    monkeypatch.setattr(upload_protocol, "DEFAULT_FRAGMENT_SIZE", 4 * 1024 * 1024)
    size = 200 * 1024 * 1024
    path = source(0, name="big.bin")
    with path.open("wb") as f:
        for i in range(size // (8 * 1024 * 1024)):
            f.write(body(8 * 1024 * 1024, seed=i))
    async with (
        bitsd_server(root) as (serving, gate),
        make_engine(chunk_size=1024 * 1024, checkpoint_bytes=64 * 1024 * 1024) as engine,
    ):
        job = await engine.create_job("big", JobType.UPLOAD)
        await job.add_file(serving.url("/in/big.bin"), str(path))
        tracemalloc.start()
        try:
            await job.resume()
            assert await settle(job, ALL, timeout=100) is JobState.TRANSFERRED
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        await job.complete()
    assert peak < 32 * 1024 * 1024, f"peak {peak / 2**20:.1f} MiB"
    assert gate.kinds().count("Fragment") == 50
    assert (root / "in" / "big.bin").stat().st_size == size
    assert await asyncio.to_thread(same_file, root / "in" / "big.bin", path)


def same_file(a: Path, b: Path) -> bool:
    """Whether two files have the same bytes (compared a MiB at a time)."""
    with a.open("rb") as fa, b.open("rb") as fb:
        while True:
            x, y = fa.read(1 << 20), fb.read(1 << 20)
            if x != y:
                return False
            if not x:
                return True


async def test_interop_drop_mid_fragment_resumes_from_the_server_offset(
    make_engine: EngineFactory,
    source: Callable[..., Path],
    root: Path,
    clock: FakeClock,
) -> None:
    """A connection cut in the middle of a fragment: the next run sends from the last offset
    the server acknowledged, follows the server's BITS-Received-Content-Range, and the file is
    whole on the server."""
    path = source(100_000)
    async with bitsd_server(root) as (serving, gate), make_engine() as engine:
        gate.cut_after, gate.cut_from = 5000, FRAGMENT
        job = await upload_job(engine, serving, path, remote="/in/report.bin")
        assert await settle(job, ALL) is JobState.TRANSIENT_ERROR
        assert (await job.get_progress()).bytes_transferred == FRAGMENT
        gate.log.clear()
        await advance(clock, 60)
        assert await settle(job, ALL) is JobState.TRANSFERRED
        await job.complete()
    assert content(root / "in" / "report.bin") == path.read_bytes()
    fragments = [e for e in gate.log if e["type"] == "Fragment"]
    assert fragments[0]["range"] == f"bytes {FRAGMENT}-{2 * FRAGMENT - 1}/100000"
    assert all(e["status"] in (200, 416) for e in fragments)
    for before, after in itertools.pairwise(fragments):
        assert after["range"].startswith(f"bytes {before['received']}-")
    assert "Create-Session" not in gate.kinds()


async def test_interop_server_restart_mid_upload(
    make_engine: EngineFactory,
    source: Callable[..., Path],
    root: Path,
    clock: FakeClock,
) -> None:
    """The server stops in the middle of an upload and starts again on the same root: the
    session survived on its disk, and the client continues it after the retry delay (no new
    Create-Session), from the server's offset."""
    path = source(100_000)
    gate: Gate | None = None
    async with make_engine() as engine:
        async with bitsd_server(root) as (serving, gate):
            gate.cut_after, gate.cut_from = 1000, 2 * FRAGMENT
            job = await upload_job(engine, serving, path, remote="/in/report.bin")
            assert await settle(job, ALL) is JobState.TRANSIENT_ERROR
            port = serving.port
        gate.log.clear()
        gate.cut_after = None
        async with bitsd_server(root, port=port, gate=gate):
            await advance(clock, 60)
            state = await settle(job, ALL)
            if state is JobState.TRANSIENT_ERROR:  # a pooled connection to the old server
                await advance(clock, 60)
                state = await settle(job, ALL)
            assert state is JobState.TRANSFERRED
            await job.complete()
    assert content(root / "in" / "report.bin") == path.read_bytes()
    assert "Create-Session" not in gate.kinds()
    first = next(e for e in gate.log if e["type"] == "Fragment")
    assert first["range"] == f"bytes {2 * FRAGMENT}-{3 * FRAGMENT - 1}/100000"


async def test_interop_upload_reply(
    make_engine: EngineFactory, source: Callable[..., Path], root: Path, tmp_path: Path
) -> None:
    """Upload-reply against the bitsd server and a server application (by value): the
    application gets the file, the reply comes back through BITS-Reply-URL before
    Close-Session, and the reply file appears on complete()."""
    application = Application()
    application.reply = b"processed: ok"
    path = source(50_000)
    async with (
        serve(application) as app_server,
        bitsd_server(root, notify_url=app_server.url("/app"), notify_type="by-value") as (
            serving,
            gate,
        ),
        make_engine() as engine,
    ):
        job = await engine.create_job("reply", JobType.UPLOAD_REPLY)
        await job.add_file(serving.url("/in/report.bin"), str(path))
        await job.set_reply_file_name(str(tmp_path / "reply.txt"))
        await job.resume()
        assert await settle(job, ALL) is JobState.TRANSFERRED
        assert await job.get_reply_data() == b"processed: ok"
        assert gate.kinds()[-2:] == ["GET", "Close-Session"]
        await job.complete()
    assert application.got == [path.read_bytes()]
    assert content(tmp_path / "reply.txt") == b"processed: ok"


@pytest.mark.parametrize("value", ["ftp://127.0.0.1/reply", "http://a..b/reply"])
async def test_interop_unsendable_reply_url_then_resume(
    make_engine: EngineFactory,
    source: Callable[..., Path],
    root: Path,
    tmp_path: Path,
    value: str,
) -> None:
    """A final Ack whose BITS-Reply-URL no request can be sent to (put in by the Gate) is
    BG_E_INVALID_SERVER_RESPONSE, fatal; Resume asks the bitsd server again with the file's
    last byte, which it takes as the final fragment repeated, and the reply comes back."""
    application = Application()
    application.reply = b"processed: ok"
    path = source(50_000)
    async with (
        serve(application) as app_server,
        bitsd_server(root, notify_url=app_server.url("/app"), notify_type="by-value") as (
            serving,
            gate,
        ),
        make_engine() as engine,
    ):
        gate.reply_urls = [value]
        job = await engine.create_job("reply", JobType.UPLOAD_REPLY)
        await job.add_file(serving.url("/in/report.bin"), str(path))
        await job.set_reply_file_name(str(tmp_path / "reply.txt"))
        await job.resume()
        assert await settle(job, ALL) is JobState.ERROR
        err = await job.get_error()
        assert (err.code, err.context) == (
            codes.BG_E_INVALID_SERVER_RESPONSE,
            ErrorContext.REMOTE_FILE,
        )
        assert "GET" not in gate.kinds()
        gate.log.clear()
        await job.resume()
        state = await settle(job, ALL)
        assert state is JobState.TRANSFERRED, await job.get_error()
        assert await job.get_reply_data() == b"processed: ok"
        assert gate.kinds() == ["Ping", "Fragment", "GET", "Close-Session"]
    assert application.got == [path.read_bytes()], "the application ran once"


async def test_interop_application_failure_is_remote_application(
    make_engine: EngineFactory, source: Callable[..., Path], root: Path
) -> None:
    """The server application failing (403) reaches the client as context REMOTE_APPLICATION
    with the application's status as its code, fatal, with a JobError notification; the reply
    progress stays SIZE_UNKNOWN."""
    application = Application()
    application.statuses = [403]
    recorder = Recorder()
    async with (
        serve(application) as app_server,
        bitsd_server(root, notify_url=app_server.url("/app"), notify_type="by-value") as (
            serving,
            _gate,
        ),
        make_engine() as engine,
    ):
        job = await engine.create_job("app fails", JobType.UPLOAD_REPLY)
        await job.set_notify_interface(recorder)
        await job.add_file(serving.url("/in/report.bin"), str(source(100)))
        await job.resume()
        assert await settle(job, ALL) is JobState.ERROR
        err = await job.get_error()
        assert (err.code, err.context) == (
            codes.http_error(403),
            ErrorContext.REMOTE_APPLICATION,
        )
        assert (await job.get_reply_progress()).bytes_total == codes.SIZE_UNKNOWN
        await until(lambda: [c[0] for c in recorder.calls] == ["job_error"])


async def test_interop_reply_get_failure_is_remote_file(
    make_engine: EngineFactory,
    source: Callable[..., Path],
    root: Path,
    clock: FakeClock,
) -> None:
    """The reply GET failing is REMOTE_FILE with the reply total known (the reply failed, not
    the upload); Resume fetches the reply without uploading or notifying again."""
    application = Application()
    application.reply = b"the reply"
    async with (
        serve(application) as app_server,
        bitsd_server(root, notify_url=app_server.url("/app"), notify_type="by-value") as (
            serving,
            gate,
        ),
        make_engine() as engine,
    ):
        gate.fail_gets = [404]
        job = await upload_job(
            engine,
            serving,
            source(20_000),
            job_type=JobType.UPLOAD_REPLY,
            remote="/in/report.bin",
        )
        assert await settle(job, ALL) is JobState.ERROR
        err = await job.get_error()
        assert (err.code, err.context) == (codes.http_error(404), ErrorContext.REMOTE_FILE)
        assert (await job.get_reply_progress()).bytes_total != codes.SIZE_UNKNOWN
        gate.log.clear()
        await job.resume()
        assert await settle(job, ALL) is JobState.TRANSFERRED
        assert await job.get_reply_data() == b"the reply"
        assert gate.kinds() == ["GET", "Ping", "Close-Session"]
    assert len(application.got) == 1
