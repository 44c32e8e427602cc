"""The network fault matrix: each fault against a real loopback server, asserting the job's
state, error context and code, that no file is corrupted, and that transient faults recover
once the fault stops."""

from __future__ import annotations

import asyncio
import email.utils
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from bitsd import ErrorContext, FakeClock, JobState, codes
from tests.engine.conftest import EngineFactory, advance, body, settle
from tests.reliability.conftest import Held
from tests.servers.faulty import Fault, FaultServer
from tests.servers.raw import RawServer, range_of

DATA = body(300_000, 42)
T, E = JobState.TRANSIENT_ERROR, JobState.ERROR
REMOTE, TRANSPORT = ErrorContext.REMOTE_FILE, ErrorContext.GENERAL_TRANSPORT


@dataclass(frozen=True)
class Row:
    name: str
    fault: Callable[[FakeClock], Fault]
    state: JobState
    context: ErrorContext
    code: int


def _status(status: int) -> Callable[[FakeClock], Fault]:
    return lambda clock: Fault(status=status)


ROWS = [
    Row(
        "reset mid-body",
        lambda c: Fault(drop_after=100_000),
        T,
        TRANSPORT,
        codes.BG_E_CONNECTION_CLOSED,
    ),
    Row(
        "200 instead of 206",
        lambda c: Fault(ignore_range=True),
        E,
        REMOTE,
        codes.BG_E_INSUFFICIENT_RANGE_SUPPORT,
    ),
    Row(
        "no size", lambda c: Fault(no_content_length=True), E, REMOTE, codes.BG_E_MISSING_FILE_SIZE
    ),
    Row(
        "stall before headers",
        lambda c: Fault(stall_before_headers=2),
        T,
        TRANSPORT,
        codes.BG_E_TIMEOUT,
    ),
    Row(
        "stall mid-body",
        lambda c: Fault(stall_after=50_000, stall_seconds=2),
        T,
        TRANSPORT,
        codes.BG_E_TIMEOUT,
    ),
    *(
        Row(f"HTTP {s}", _status(s), E, REMOTE, codes.http_error(s))
        for s in (401, 403, 404, 410, 416, 501, 505)
    ),
    *(Row(f"HTTP {s}", _status(s), T, REMOTE, codes.http_error(s)) for s in (429, 500)),
    Row(
        "503 Retry-After seconds",
        lambda c: Fault(status=503, retry_after="30"),
        T,
        REMOTE,
        codes.http_error(503),
    ),
    Row(
        "503 Retry-After date",
        lambda c: Fault(status=503, retry_after=email.utils.formatdate(c.wall() + 30, usegmt=True)),
        T,
        REMOTE,
        codes.http_error(503),
    ),
]


@pytest.mark.parametrize("row", ROWS, ids=[r.name for r in ROWS])
async def test_fault_matrix(
    row: Row,
    server: FaultServer,
    make_engine: EngineFactory,
    dest: Path,
    clock: FakeClock,
    held: Held,
) -> None:
    """The fault gives the expected state, context and code; a transient fault, once it
    stops, ends in a byte-identical file; a fatal one leaves nothing at the final name."""
    server.add("/f", DATA)
    server.set_fault("/f", row.fault(clock))
    async with make_engine(read_timeout=0.4) as engine:
        job = await engine.create_job(row.name)
        await job.set_minimum_retry_delay(5)
        await job.add_file(server.url("/f"), str(dest / "f"))
        await job.resume()
        assert await settle(job, (T, E)) is row.state
        err = await job.get_error()
        assert (err.context, err.code) == (row.context, row.code)
        assert not (dest / "f").exists()
        if row.state is T:
            server.clear_fault("/f")
            await advance(clock, 31)
            assert await settle(job) is JobState.TRANSFERRED
            await job.complete()
            assert (dest / "f").read_bytes() == DATA
    held(
        "network faults",
        f"{row.name}: {row.state} in {row.context}, "
        f"{codes.name_of(row.code)}" + ("; recovered byte-identical" if row.state is T else ""),
    )


def _ok_response(head: bytes, data: bytes = DATA) -> bytes:
    first, last = range_of(head) or (0, None)
    last = len(data) - 1 if last is None else last
    part = data[first : last + 1]
    return (
        f"HTTP/1.1 206 Partial Content\r\nContent-Length: {len(part)}\r\n"
        f'Content-Range: bytes {first}-{last}/{len(data)}\r\nETag: "v1"\r\n'
        "Connection: close\r\n\r\n"
    ).encode() + part


async def test_connection_refused_then_server_appears(
    make_engine: EngineFactory, dest: Path, clock: FakeClock, held: Held
) -> None:
    """Nothing listening: TRANSIENT_ERROR BG_E_CONNECT_FAILURE; the server comes up on that
    port and the retry finishes the file."""
    server = RawServer(lambda head, n: _ok_response(head))
    async with server:
        port = server.port
    async with make_engine() as engine:
        job = await engine.create_job("refused")
        await job.set_minimum_retry_delay(5)
        await job.add_file(f"http://127.0.0.1:{port}/f", str(dest / "f"))
        await job.resume()
        assert await settle(job, (T, E)) is T
        assert (await job.get_error()).code == codes.BG_E_CONNECT_FAILURE
        srv = await asyncio.start_server(
            lambda r, w: _answer(r, w), "127.0.0.1", port, reuse_address=True
        )
        try:
            await advance(clock, 5)
            assert await settle(job) is JobState.TRANSFERRED
            await job.complete()
        finally:
            srv.close()
    assert (dest / "f").read_bytes() == DATA
    held(
        "network faults",
        "connection refused: TRANSIENT_ERROR, BG_E_CONNECT_FAILURE; "
        "recovered when the server came up",
    )


async def _answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    head = await reader.readuntil(b"\r\n\r\n")
    writer.write(_ok_response(head))
    await writer.drain()
    writer.close()


@pytest.mark.parametrize(
    ("name", "answer", "state", "code"),
    [
        (
            "truncated body with the full Content-Length",
            lambda head: _ok_response(head)[:-100_000],
            T,
            codes.BG_E_CONNECTION_CLOSED,
        ),
        (
            "206 for another range",
            lambda head: _ok_response(b"GET / HTTP/1.1\r\nRange: bytes=10-\r\n\r\n"),
            T,
            codes.BG_E_INVALID_SERVER_RESPONSE,
        ),
        (
            "Content-Range beyond the file",
            lambda head: (
                b"HTTP/1.1 206 Partial Content\r\nContent-Length: 5\r\n"
                b"Content-Range: bytes 0-4/3\r\n\r\nhello"
            ),
            T,
            codes.BG_E_INVALID_SERVER_RESPONSE,
        ),
    ],
)
async def test_malformed_responses(
    name: str,
    answer: Callable[[bytes], bytes],
    state: JobState,
    code: int,
    make_engine: EngineFactory,
    dest: Path,
    clock: FakeClock,
    held: Held,
) -> None:
    """Answers no framework would send: the fault is classified, and once the server behaves
    the file completes byte-identical (nothing of the bad answer stays in it)."""
    faulty = True

    def handler(head: bytes, n: int) -> bytes:
        return answer(head) if faulty else _ok_response(head)

    async with RawServer(handler) as server, make_engine() as engine:
        job = await engine.create_job(name)
        await job.set_minimum_retry_delay(5)
        await job.add_file(server.url("/f"), str(dest / "f"))
        await job.resume()
        assert await settle(job, (T, E)) is state
        assert (await job.get_error()).code == code
        faulty = False
        await advance(clock, 5)
        assert await settle(job) is JobState.TRANSFERRED
        await job.complete()
    assert (dest / "f").read_bytes() == DATA
    held("network faults", f"{name}: {state}, {codes.name_of(code)}; recovered byte-identical")


async def test_more_bytes_than_announced_are_not_kept(
    make_engine: EngineFactory, dest: Path, held: Held
) -> None:
    """A server that sends more bytes than its Content-Length: only the announced bytes are
    kept, so the file is exactly the announced range."""

    def handler(head: bytes, n: int) -> bytes:
        return _ok_response(head) + b"GARBAGE" * 1000

    async with RawServer(handler) as server, make_engine() as engine:
        job = await engine.create_job("extra bytes")
        await job.add_file(server.url("/f"), str(dest / "f"))
        await job.resume()
        assert await settle(job) is JobState.TRANSFERRED
        await job.complete()
    assert (dest / "f").read_bytes() == DATA
    held("network faults", "more bytes than announced: the extra bytes are not kept")


async def test_unresolvable_name_is_transient(
    make_engine: EngineFactory, dest: Path, held: Held
) -> None:
    """A host name that does not resolve: TRANSIENT_ERROR BG_E_NAME_RESOLUTION_FAILURE."""
    async with make_engine() as engine:
        job = await engine.create_job("dns")
        await job.add_file("http://bitsd-test-host.invalid/f", str(dest / "f"))
        await job.resume()
        assert await settle(job, (T, E)) is T
        err = await job.get_error()
        assert (err.context, err.code) == (TRANSPORT, codes.BG_E_NAME_RESOLUTION_FAILURE)
    held("network faults", "unresolvable host name: TRANSIENT_ERROR, BG_E_NAME_RESOLUTION_FAILURE")


async def test_slow_drip_is_progress_not_an_error(
    server: FaultServer, make_engine: EngineFactory, dest: Path, held: Held
) -> None:
    """A server dripping a few bytes a second is slow, not broken: the job keeps transferring
    with no error as long as bytes arrive within the read timeout."""
    server.add("/drip", DATA)
    server.set_fault("/drip", Fault(rate=8))
    async with make_engine(read_timeout=2.0) as engine:
        job = await engine.create_job("drip")
        await job.add_file(server.url("/drip"), str(dest / "drip"))
        await job.resume()
        await settle(job, (JobState.TRANSFERRING,))
        await asyncio.sleep(2.5)
        assert await job.get_state() is JobState.TRANSFERRING
        assert (await job.get_progress()).bytes_transferred > 0
        await job.cancel()
    held("network faults", "slow drip (8 bytes/s): still TRANSFERRING with progress, no error")
