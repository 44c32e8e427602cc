"""Files and content options of issue 6 against a real server: ranges, remote prefixes,
validation, checksums, maximum download size, custom headers and custom HTTP methods."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

import bitsd
from bitsd import ErrorContext, FakeClock, JobState, Priority, codes
from tests.engine.conftest import EngineFactory, advance, body, settle
from tests.servers.faulty import Fault, FaultServer


async def test_ranges_are_concatenated_in_the_order_given(
    server: FaultServer, make_engine: EngineFactory, dest: Path
) -> None:
    """Ranges 100-199, 900-999, 400-499 of a remote file make a 300-byte local file, in that
    order, each fetched with its own Range request."""
    data = body(2000)
    server.add("/r", data)
    async with make_engine() as engine:
        job = await engine.create_job("ranges")
        await job.add_file_with_ranges(
            server.url("/r"), str(dest / "r"), [(100, 100), (900, 100), (400, 100)]
        )
        assert await job.get_file_ranges(0) == [(100, 100), (900, 100), (400, 100)]
        await job.resume()
        assert await settle(job) is JobState.TRANSFERRED
        assert (await job.get_progress()).bytes_total == 300
        await job.complete()
    assert (dest / "r").read_bytes() == data[100:200] + data[900:1000] + data[400:500]
    assert [r.range for r in server.requests_for("/r")] == [
        "bytes=100-199",
        "bytes=900-999",
        "bytes=400-499",
    ]


async def test_range_to_eof_and_resume_inside_a_range(
    server: FaultServer, make_engine: EngineFactory, dest: Path, clock: FakeClock
) -> None:
    """A LENGTH_TO_EOF range runs to the end of the remote file; a connection cut inside a
    range resumes inside that range, not from its start."""
    data = body(1_000_000)
    server.add("/eof", data)
    server.set_fault("/eof", Fault(drop_after=300_000, rate=4_000_000, times=1))
    async with make_engine() as engine:
        job = await engine.create_job("eof")
        await job.set_minimum_retry_delay(5)
        await job.add_file_with_ranges(
            server.url("/eof"), str(dest / "eof"), [(111, bitsd.LENGTH_TO_EOF)]
        )
        await job.resume()
        await settle(job, (JobState.TRANSIENT_ERROR,))
        kept = (await job.get_progress()).bytes_transferred
        await advance(clock, 5)
        assert await settle(job) is JobState.TRANSFERRED
        await job.complete()
    assert (dest / "eof").read_bytes() == data[111:]
    assert server.requests_for("/eof")[-1].range == f"bytes={111 + kept}-"


async def test_range_outside_the_remote_file_is_fatal(
    server: FaultServer, make_engine: EngineFactory, dest: Path
) -> None:
    """A range beyond the end of the remote file fails the job with BG_E_INVALID_RANGE."""
    server.add("/small", body(1000))
    async with make_engine() as engine:
        job = await engine.create_job("outside")
        await job.add_file_with_ranges(
            server.url("/small"), str(dest / "s"), [(0, 10), (500, 1000)]
        )
        await job.resume()
        assert await settle(job) is JobState.ERROR
        err = await job.get_error()
        assert (err.code, err.context) == (codes.BG_E_INVALID_RANGE, ErrorContext.REMOTE_FILE)


@pytest.mark.parametrize(
    ("ranges", "code"),
    [
        ([], codes.E_INVALIDARG),
        ([(0, 10), (5, 10)], codes.BG_E_OVERLAPPING_RANGES),
        ([(10, 5), (10, 1)], codes.BG_E_OVERLAPPING_RANGES),
        ([(bitsd.LENGTH_TO_EOF, 1)], codes.BG_E_INVALID_RANGE),
        ([(0, 0)], codes.E_INVALIDARG),
        ([(i * 10, 5) for i in range(501)], codes.BG_E_TOO_MANY_RANGES_IN_FILE),
    ],
)
async def test_bad_ranges_are_refused(
    make_engine: EngineFactory, dest: Path, ranges: list[tuple[int, int]], code: int
) -> None:
    """AddFileWithRanges' validation errors carry BITS's codes and add nothing."""
    async with make_engine() as engine:
        job = await engine.create_job("bad ranges")
        with pytest.raises(bitsd.BitsError) as info:
            await job.add_file_with_ranges("http://h/x", str(dest / "x"), ranges)
        assert info.value.hresult == code
        assert await job.files() == []


async def test_replace_remote_prefix_moves_files_to_another_server(
    server: FaultServer, make_engine: EngineFactory, dest: Path
) -> None:
    """ReplaceRemotePrefix rewrites matching remote names (case-sensitively) and the job
    continues from the new place; no match gives S_FALSE."""
    server.add("/new/a", b"moved")
    async with make_engine() as engine:
        job = await engine.create_job("prefix")
        await job.add_file(server.url("/old/a"), str(dest / "a"))
        await job.resume()
        assert await settle(job) is JobState.ERROR
        assert await job.replace_remote_prefix(server.url("/OLD/"), server.url("/x/")) == (
            codes.S_FALSE
        )
        assert await job.replace_remote_prefix(server.url("/old/"), server.url("/new/")) == (
            codes.S_OK
        )
        assert (await job.files())[0].remote_name == server.url("/new/a")
        await job.resume()
        assert await settle(job) is JobState.TRANSFERRED
        await job.complete()
    assert (dest / "a").read_bytes() == b"moved"


async def test_checksum_mismatch_fails_with_validation_failed(
    server: FaultServer, make_engine: EngineFactory, dest: Path
) -> None:
    """A file whose SHA-256 is not the one given to add_file fails the job with
    BG_E_VALIDATION_FAILED in LOCAL_FILE and keeps none of its bytes; a right one passes."""
    data = body(50_000)
    server.add("/c", data)
    async with make_engine() as engine:
        good = await engine.create_job("good sum")
        await good.add_file(
            server.url("/c"), str(dest / "good"), sha256=hashlib.sha256(data).hexdigest()
        )
        bad = await engine.create_job("bad sum")
        await bad.add_file(server.url("/c"), str(dest / "bad"), sha256="0" * 64)
        for job in (good, bad):
            await job.resume()
        assert await settle(good) is JobState.TRANSFERRED
        assert await settle(bad) is JobState.ERROR
        err = await bad.get_error()
        assert (err.code, err.context) == (codes.BG_E_VALIDATION_FAILED, ErrorContext.LOCAL_FILE)
        assert (await bad.get_progress()).bytes_transferred == 0
        with pytest.raises(bitsd.InvalidArgumentError):
            await bad.add_file(server.url("/c"), str(dest / "x"), sha256="not hex")


async def test_validation_state_false_downloads_again(
    server: FaultServer, make_engine: EngineFactory, dest: Path
) -> None:
    """SetValidationState(FALSE) on a transferred file puts the job in ERROR with
    BG_E_VALIDATION_FAILED and progress 0; Resume fetches it again. Before the file is done
    the call is E_PENDING."""
    server.add("/v", body(10_000))
    async with make_engine() as engine:
        job = await engine.create_job("validate")
        await job.add_file(server.url("/v"), str(dest / "v"))
        with pytest.raises(bitsd.BitsError) as pending:
            await job.set_validation_state(0, True)
        assert pending.value.hresult == codes.E_PENDING
        await job.resume()
        await settle(job)
        file = (await job.files())[0]
        await job.set_validation_state(file, False)
        assert await job.get_state() is JobState.ERROR
        assert (await job.get_error()).code == codes.BG_E_VALIDATION_FAILED
        assert (await job.get_progress()).bytes_transferred == 0
        await job.resume()
        assert await settle(job) is JobState.TRANSFERRED
        await job.set_validation_state(0, True)
        assert await job.get_validation_state(0) is True
        await job.complete()
    assert len(server.requests_for("/v")) == 2
    assert (dest / "v").read_bytes() == body(10_000)


async def test_maximum_download_size(
    server: FaultServer, make_engine: EngineFactory, dest: Path
) -> None:
    """A job whose files exceed its maximum download size fails with
    BG_E_MAX_DOWNLOAD_SIZE_LIMIT_REACHED before the bytes are written; the property is
    read-only after the first Resume."""
    server.add("/a", body(30_000))
    server.add("/b", body(30_000))
    async with make_engine() as engine:
        job = await engine.create_job("max size")
        await job.set_maximum_download_size(50_000)
        await job.add_file_set(
            [(server.url("/a"), str(dest / "a")), (server.url("/b"), str(dest / "b"))]
        )
        await job.resume()
        assert await settle(job) is JobState.ERROR
        assert (await job.get_error()).code == codes.BG_E_MAX_DOWNLOAD_SIZE_LIMIT_REACHED
        assert (await job.get_progress()).files_transferred == 1
        with pytest.raises(bitsd.ReadOnlyPropertyError):
            await job.set_maximum_download_size(None)
        with pytest.raises(bitsd.BitsError) as invalid:
            await (await engine.create_job("zero")).set_maximum_download_size(0)
        assert invalid.value.hresult == codes.BG_E_MAX_DOWNLOAD_SIZE_INVALID_VALUE


async def test_custom_headers_reach_the_server(
    server: FaultServer, make_engine: EngineFactory, dest: Path
) -> None:
    """Custom headers are sent with every request; they cannot change the Range; CR/LF inside
    a header is refused; write-only headers cannot be read back."""
    server.add("/h", b"hello")
    async with make_engine() as engine:
        job = await engine.create_job("headers")
        await job.set_custom_headers("X-Token: abc123\r\nRange: bytes=3-\r\n")
        assert await job.get_custom_headers() == "X-Token: abc123\r\nRange: bytes=3-\r\n"
        for bad in (
            "X-A: 1",
            "X-A: 1\r\nX-B: 2\nInjected: yes\r\n",
            "no colon\r\n",
            "X: " + "a" * 16_380 + "\r\n",
        ):
            with pytest.raises(bitsd.BitsError):
                await job.set_custom_headers(bad)
        await job.add_file(server.url("/h"), str(dest / "h"))
        await job.resume()
        assert await settle(job) is JobState.TRANSFERRED
        await job.make_custom_headers_write_only()
        with pytest.raises(bitsd.BitsError) as denied:
            await job.get_custom_headers()
        assert denied.value.hresult == codes.E_ACCESSDENIED
        await job.complete()
    request = server.requests_for("/h")[0]
    assert request.headers["x-token"] == "abc123"
    assert request.range == "bytes=0-"
    assert (dest / "h").read_bytes() == b"hello"


async def test_custom_http_method(
    server: FaultServer, make_engine: EngineFactory, dest: Path
) -> None:
    """A custom HTTP method is sent as is, forces FOREGROUND for good, turns a normally
    transient error into ERROR, and is read-only after Resume."""
    server.add("/m", b"x")
    server.set_fault("/m", Fault(status=503))
    async with make_engine() as engine:
        job = await engine.create_job("method")
        await job.set_http_method("REPORT")
        assert await job.get_priority() is Priority.FOREGROUND
        with pytest.raises(bitsd.BitsError) as stays:
            await job.set_priority(Priority.LOW)
        assert stays.value.hresult == codes.BG_E_NOT_SUPPORTED_WITH_CUSTOM_HTTP_METHOD
        await job.add_file(server.url("/m"), str(dest / "m"))
        await job.resume()
        assert await settle(job) is JobState.ERROR
        assert (await job.get_error()).code == codes.http_error(503)
        with pytest.raises(bitsd.ReadOnlyPropertyError):
            await job.set_http_method("PUT")
        plain = await engine.create_job("get")
        await plain.set_http_method("GET")
        assert await plain.get_http_method() is None
    assert server.requests_for("/m")[0].method == "REPORT"
