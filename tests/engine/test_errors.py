"""Failures classified as BITS does, against a real server: HTTP statuses, timeouts,
connection failures, retry timing on the fake clock, and the no-progress timeout."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import pytest

import bitsd
import bitsd._engine
from bitsd import ErrorContext, FakeClock, JobState, codes
from tests.engine.conftest import EngineFactory, advance, body, settle
from tests.servers.faulty import Fault, FaultServer

# The key download behaviours hold on every HTTP transport: bitsd's own client over HTTP
# (zero-copy: large bodies spliced by the splice helper process, or all on the event loop's
# thread) and over HTTPS, and aiohttp.
pytestmark = pytest.mark.parametrize(
    "transport", ["raw", "raw-inloop", "raw-tls", "aiohttp", "bulk"], indirect=True
)


@pytest.mark.parametrize(
    ("status", "state"),
    [
        (404, JobState.ERROR),
        (403, JobState.ERROR),
        (410, JobState.ERROR),
        (501, JobState.ERROR),
        (505, JobState.ERROR),
        (500, JobState.TRANSIENT_ERROR),
        (502, JobState.TRANSIENT_ERROR),
        (503, JobState.TRANSIENT_ERROR),
        (408, JobState.TRANSIENT_ERROR),
        (429, JobState.TRANSIENT_ERROR),
    ],
)
async def test_http_status_classification(
    server: FaultServer, make_engine: EngineFactory, dest: Path, status: int, state: JobState
) -> None:
    """Each HTTP error status gives BG_E_HTTP_ERROR_nnn in REMOTE_FILE, fatal or transient as
    the BITS table says."""
    server.add("/s", b"x" * 10)
    server.set_fault("/s", Fault(status=status))
    async with make_engine() as engine:
        job = await engine.create_job(f"http {status}")
        await job.add_file(server.url("/s"), str(dest / "s"))
        await job.resume()
        assert await settle(job, (JobState.ERROR, JobState.TRANSIENT_ERROR)) is state
        err = await job.get_error()
        assert err.code == codes.http_error(status)
        assert err.context is ErrorContext.REMOTE_FILE
        assert err.protocol == server.url("/").split(":")[0]
        assert err.file is not None
        assert err.file.remote_name == server.url("/s")


async def test_retry_after_longer_than_retry_delay_is_honoured(
    server: FaultServer, make_engine: EngineFactory, dest: Path, clock: FakeClock
) -> None:
    """503 with Retry-After: 120 waits 120 s although the minimum retry delay is 5 s."""
    server.add("/busy", b"payload")
    server.set_fault("/busy", Fault(status=503, retry_after="120", times=1))
    async with make_engine() as engine:
        job = await engine.create_job("busy")
        await job.set_minimum_retry_delay(5)
        await job.add_file(server.url("/busy"), str(dest / "busy"))
        await job.resume()
        await settle(job, (JobState.TRANSIENT_ERROR,))
        await advance(clock, 119)
        assert await job.get_state() is JobState.TRANSIENT_ERROR
        assert len(server.requests_for("/busy")) == 1
        await advance(clock, 1)
        assert await settle(job) is JobState.TRANSFERRED


async def test_retry_after_as_http_date(
    server: FaultServer, make_engine: EngineFactory, dest: Path, clock: FakeClock
) -> None:
    """Retry-After given as an HTTP date is measured against the engine's wall clock."""
    import email.utils

    when = email.utils.formatdate(clock.wall() + 60, usegmt=True)
    server.add("/d", b"payload")
    server.set_fault("/d", Fault(status=503, retry_after=when, times=1))
    async with make_engine() as engine:
        job = await engine.create_job("date")
        await job.set_minimum_retry_delay(5)
        await job.add_file(server.url("/d"), str(dest / "d"))
        await job.resume()
        await settle(job, (JobState.TRANSIENT_ERROR,))
        await advance(clock, 55)
        assert await job.get_state() is JobState.TRANSIENT_ERROR
        await advance(clock, 6)
        assert await settle(job) is JobState.TRANSFERRED


async def test_no_progress_timeout_makes_transient_errors_fatal(
    server: FaultServer, make_engine: EngineFactory, dest: Path, clock: FakeClock
) -> None:
    """Transient errors are retried after the retry delay until no progress was made for the
    no-progress timeout; then the job goes to ERROR with the last error."""
    server.add("/down", b"x")
    server.set_fault("/down", Fault(status=500))
    async with make_engine() as engine:
        job = await engine.create_job("down")
        await job.set_minimum_retry_delay(10)
        await job.set_no_progress_timeout(35)
        await job.add_file(server.url("/down"), str(dest / "down"))
        await job.resume()
        for attempt in range(1, 5):
            await settle(job, (JobState.TRANSIENT_ERROR, JobState.ERROR))
            if await job.get_state() is JobState.ERROR:
                break
            assert len(server.requests_for("/down")) == attempt
            await advance(clock, 10)
        assert await settle(job) is JobState.ERROR
        assert (await job.get_error()).code == codes.http_error(500)
        # Attempts at t=0, 10, 20, 30; the wake at 35 finds the timeout run out.
        assert len(server.requests_for("/down")) == 4
        assert await job.get_error_count() == 4


async def test_zero_no_progress_timeout_makes_every_error_fatal(
    server: FaultServer, make_engine: EngineFactory, dest: Path
) -> None:
    """A no-progress timeout of 0 turns the first transient error into ERROR."""
    server.add("/x", b"x")
    server.set_fault("/x", Fault(status=503))
    async with make_engine() as engine:
        job = await engine.create_job("zero")
        await job.set_no_progress_timeout(0)
        await job.add_file(server.url("/x"), str(dest / "x"))
        await job.resume()
        assert await settle(job) is JobState.ERROR
        assert (await job.get_error()).code == codes.http_error(503)


async def test_resume_from_error_retries_at_once(
    server: FaultServer, make_engine: EngineFactory, dest: Path
) -> None:
    """After fixing the cause, Resume of an ERROR job retries immediately and clears the
    error."""
    server.add("/later", body(1000))
    server.set_fault("/later", Fault(status=404, times=1))
    async with make_engine() as engine:
        job = await engine.create_job("fix")
        await job.add_file(server.url("/later"), str(dest / "later"))
        await job.resume()
        assert await settle(job) is JobState.ERROR
        await job.resume()
        assert await settle(job) is JobState.TRANSFERRED
        with pytest.raises(bitsd.ErrorInfoUnavailableError):
            await job.get_error()


@pytest.mark.parametrize(
    ("host", "userinfo"),
    [
        ("exa\\mple.test", ""),  # yarl refuses a backslash in the authority
        ("example..test", ""),  # getaddrinfo's IDNA codec refuses an empty label
        ("127.0.0.1", "%E2%82%AC:pw@"),  # aiohttp sends userinfo as Latin-1 Basic credentials
    ],
    ids=["backslash-in-host", "empty-label", "userinfo-not-latin-1"],
)
async def test_stored_remote_name_no_client_can_send_is_invalid_arg(
    server: FaultServer,
    make_engine: EngineFactory,
    dest: Path,
    monkeypatch: pytest.MonkeyPatch,
    host: str,
    userinfo: str,
) -> None:
    """A remote name that add_file refuses now but an older bitsd stored (add_file's check
    is skipped here) fails the job with E_INVALIDARG in REMOTE_FILE, fatal, on every HTTP
    transport, not with an internal error (E_FAIL); nothing is sent."""
    server.add("/f", b"data")
    url = server.url("/f").replace("://127.0.0.1", f"://{userinfo}{host}")
    monkeypatch.setattr(bitsd._engine, "check_remote_name", lambda name: name)
    async with make_engine() as engine:
        job = await engine.create_job("stored")
        await job.add_file(url, str(dest / "f"))
        await job.resume()
        assert await settle(job) is JobState.ERROR
        err = await job.get_error()
        assert (codes.name_of(err.code), err.context) == (
            "E_INVALIDARG",
            ErrorContext.REMOTE_FILE,
        ), err.description
    assert server.requests_for("/f") == []


async def test_connection_refused_is_transient(
    make_engine: EngineFactory, dest: Path, transport: str
) -> None:
    """Nothing listening on the port: TRANSIENT_ERROR with BG_E_CONNECT_FAILURE."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    scheme = "https" if transport == "raw-tls" else "http"
    async with make_engine() as engine:
        job = await engine.create_job("refused")
        await job.add_file(f"{scheme}://127.0.0.1:{port}/x", str(dest / "x"))
        await job.resume()
        assert await settle(job, (JobState.TRANSIENT_ERROR,)) is JobState.TRANSIENT_ERROR
        err = await job.get_error()
        assert (err.code, err.context) == (
            codes.BG_E_CONNECT_FAILURE,
            ErrorContext.GENERAL_TRANSPORT,
        )


async def test_stall_mid_body_times_out_as_transient(
    server: FaultServer, make_engine: EngineFactory, dest: Path, clock: FakeClock
) -> None:
    """A server that stops sending mid-body hits the read timeout (BG_E_TIMEOUT, transient);
    the retry continues from the bytes kept."""
    data = body(400_000)
    server.add("/stall", data)
    server.set_fault("/stall", Fault(stall_after=200_000, stall_seconds=3, times=1))
    async with make_engine(read_timeout=0.3) as engine:
        job = await engine.create_job("stall")
        await job.set_minimum_retry_delay(5)
        await job.add_file(server.url("/stall"), str(dest / "stall"))
        await job.resume()
        await settle(job, (JobState.TRANSIENT_ERROR,))
        assert (await job.get_error()).code == codes.BG_E_TIMEOUT
        await advance(clock, 5)
        assert await settle(job) is JobState.TRANSFERRED
        await job.complete()
    assert (dest / "stall").read_bytes() == data


async def test_stall_before_headers_times_out(
    server: FaultServer, make_engine: EngineFactory, dest: Path
) -> None:
    """A server that accepts the connection but never answers is a transient BG_E_TIMEOUT."""
    server.add("/mute", b"x")
    server.set_fault("/mute", Fault(stall_before_headers=3))
    async with make_engine(read_timeout=0.3) as engine:
        job = await engine.create_job("mute")
        await job.add_file(server.url("/mute"), str(dest / "mute"))
        await job.resume()
        await settle(job, (JobState.TRANSIENT_ERROR,))
        assert (await job.get_error()).code == codes.BG_E_TIMEOUT


async def test_full_disk_is_fatal_local_file_error(
    server: FaultServer, make_engine: EngineFactory, tmp_path: Path
) -> None:
    """Writing to a full file system fails the job with ERROR_DISK_FULL in LOCAL_FILE; after
    space is freed, Resume finishes without fetching again what was written."""
    small = tmp_path / "small"
    small.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(small)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        data = body(1_500_000)
        server.add("/big", data)
        filler = small / "filler"
        async with make_engine(checkpoint_bytes=64 * 1024) as engine:
            job = await engine.create_job("disk full")
            await job.add_file(server.url("/big"), str(small / "big"))
            await job.resume()
            assert await settle(job) is JobState.ERROR
            err = await job.get_error()
            assert (err.code, err.context) == (
                codes.HRESULT_FROM_WIN32(112),
                ErrorContext.LOCAL_FILE,
            )
            held = (await job.get_progress()).bytes_transferred
            assert held > 0
            # Free space: the temporary file is the only thing there; grow the mount.
            assert not filler.exists()
            subprocess.run(["mount", "-o", "remount,size=4m", str(small)], check=True)
            await job.resume()
            assert await settle(job) is JobState.TRANSFERRED
            await job.complete()
        assert (small / "big").read_bytes() == data
        assert server.requests_for("/big")[-1].range == f"bytes={held}-"
    finally:
        subprocess.run(["umount", "-l", str(small)], check=False)


async def test_a_reconfigured_read_timeout_applies_to_the_next_request(
    server: FaultServer, make_engine: EngineFactory, dest: Path
) -> None:
    """``reconfigure(read_timeout=...)`` (the daemon's SIGHUP) applies to the next request,
    on a kept-alive connection too: a server that stalls 3 s mid-body is a transient
    BG_E_TIMEOUT under the new 0.3 s, where the 30 s the engine started with would have waited
    it out (before, every transport kept the timeouts it was built with)."""
    server.add("/first", body(1000))
    data = body(400_000)
    server.add("/stall", data)
    server.set_fault("/stall", Fault(stall_after=200_000, stall_seconds=3, times=1))
    async with make_engine(read_timeout=30) as engine:
        job = await engine.create_job("first")
        await job.add_file(server.url("/first"), str(dest / "first"))
        await job.resume()
        assert await settle(job) is JobState.TRANSFERRED  # its connection stays pooled
        await job.complete()
        engine.reconfigure(read_timeout=0.3)
        job = await engine.create_job("stall")
        await job.add_file(server.url("/stall"), str(dest / "stall"))
        await job.resume()
        assert await settle(job, (JobState.TRANSIENT_ERROR, JobState.TRANSFERRED)) is (
            JobState.TRANSIENT_ERROR
        )
        assert (await job.get_error()).code == codes.BG_E_TIMEOUT
