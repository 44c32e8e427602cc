"""How bitsd's own HTTP client reads answers a FaultServer cannot send (tests.servers.raw): a 1xx
before the answer, a head that is not HTTP, bytes after the answer, a 206 whose body is chunked
(whole or cut short), a body that ends with the connection; and the request it writes (no
header injection)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bitsd import FakeClock, JobState, codes
from bitsd._httphead import request_head
from tests.engine.conftest import EngineFactory, advance, body, settle
from tests.servers.raw import RawServer

# bitsd's own client over plain HTTP (the scripted server speaks no TLS).
raw = pytest.mark.parametrize("transport", ["raw"], indirect=True)

DATA = body(50_000, 7)
# The answer to the first request (Range: bytes=0-): all of DATA, as a 206.
HEAD_206 = (
    f"HTTP/1.1 206 Partial Content\r\nContent-Length: {len(DATA)}\r\n"
    f'Content-Range: bytes 0-{len(DATA) - 1}/{len(DATA)}\r\nETag: "v1"\r\n\r\n'
)
# A first answer whose connection drops after HELD bytes, and the fields of a 206 for the rest.
HELD = 20_000
FIRST_CUT = HEAD_206.encode() + DATA[:HELD]
REST_FIELDS = f'Content-Range: bytes {HELD}-{len(DATA) - 1}/{len(DATA)}\r\nETag: "v1"\r\n'
CHUNKED_206 = f"HTTP/1.1 206 Partial Content\r\nTransfer-Encoding: chunked\r\n{REST_FIELDS}\r\n"


def scripted(replies: list[bytes]) -> RawServer:
    """A loopback server that answers the n-th connection with ``replies[n - 1]`` (the last
    one again after that), then closes it."""
    return RawServer(lambda head, n: replies[min(n, len(replies)) - 1])


def chunked(data: bytes, *, pieces: int = 3, end: bool = True) -> bytes:
    size = -(-len(data) // pieces)
    out = b"".join(
        b"%x\r\n%s\r\n" % (len(part), part)
        for part in (data[i : i + size] for i in range(0, len(data), size))
    )
    return out + (b"0\r\n\r\n" if end else b"")


@raw
async def test_an_informational_answer_before_the_real_one_is_skipped(
    make_engine: EngineFactory, dest: Path
) -> None:
    """A 103 Early Hints (in its own packet, then with the answer) is not the answer."""
    answer = HEAD_206.encode() + DATA
    hints = b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
    async with scripted([hints + answer]) as server, make_engine() as engine:
        job = await engine.create_job("hints")
        await job.add_file(server.url("/f"), str(dest / "f"))
        await job.resume()
        assert await settle(job) is JobState.TRANSFERRED
        await job.complete()
    assert (dest / "f").read_bytes() == DATA


@raw
async def test_an_answer_that_is_not_http_is_an_invalid_server_response(
    make_engine: EngineFactory, dest: Path
) -> None:
    """Garbage instead of a status line: BG_E_INVALID_SERVER_RESPONSE, transient."""
    garbage = [b"SSH-2.0-OpenSSH_9.2\r\n\r\n"]
    async with scripted(garbage) as server, make_engine() as engine:
        job = await engine.create_job("garbage")
        await job.add_file(server.url("/f"), str(dest / "f"))
        await job.resume()
        assert await settle(job, (JobState.TRANSIENT_ERROR,)) is JobState.TRANSIENT_ERROR
        assert (await job.get_error()).code == codes.BG_E_INVALID_SERVER_RESPONSE


@raw
async def test_bytes_after_the_answer_are_an_invalid_server_response(
    make_engine: EngineFactory, dest: Path
) -> None:
    """A second answer glued after the first one's body (more bytes than announced):
    BG_E_INVALID_SERVER_RESPONSE, transient, and nothing of it is kept as the file."""
    extra = HEAD_206.encode() + DATA + b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx"
    async with scripted([extra]) as server, make_engine() as engine:
        job = await engine.create_job("extra")
        await job.add_file(server.url("/f"), str(dest / "f"))
        await job.resume()
        assert await settle(job, (JobState.TRANSIENT_ERROR,)) is JobState.TRANSIENT_ERROR
        assert (await job.get_error()).code == codes.BG_E_INVALID_SERVER_RESPONSE
        assert (await job.get_progress()).bytes_transferred == 0


@raw
@pytest.mark.parametrize("framing", ["chunked", "to the close"])
async def test_a_partial_answer_without_length_is_decoded_into_place(
    make_engine: EngineFactory, dest: Path, clock: FakeClock, framing: str
) -> None:
    """The connection drops after 20,000 bytes; the resumed request gets a 206 whose body is
    chunked, or ends with the connection (HTTP/1.0): decoded and written after the bytes held,
    the file is whole."""
    rest = DATA[HELD:]
    if framing == "chunked":
        partial = CHUNKED_206.encode() + chunked(rest)
    else:
        partial = f"HTTP/1.0 206 Partial Content\r\n{REST_FIELDS}\r\n".encode() + rest
    async with scripted([FIRST_CUT, partial]) as server:
        async with make_engine(default_minimum_retry_delay=5) as engine:
            job = await engine.create_job("chunked resume")
            await job.add_file(server.url("/f"), str(dest / "f"))
            await job.resume()
            assert await settle(job, (JobState.TRANSIENT_ERROR,)) is JobState.TRANSIENT_ERROR
            await advance(clock, 10)
            assert await settle(job) is JobState.TRANSFERRED
            await job.complete()
        assert f"Range: bytes={HELD}-".encode() in server.heads[1]
    assert (dest / "f").read_bytes() == DATA


@raw
async def test_a_chunked_body_cut_short_is_a_closed_connection(
    make_engine: EngineFactory, dest: Path
) -> None:
    """A chunked 206 whose last chunk never comes: BG_E_CONNECTION_CLOSED, transient, and the
    bytes that came are kept."""
    cut = CHUNKED_206.encode() + chunked(DATA[HELD : HELD + 10_000], end=False)
    async with scripted([FIRST_CUT, cut]) as server:
        async with make_engine(default_minimum_retry_delay=5) as engine:
            job = await engine.create_job("chunked cut")
            await job.add_file(server.url("/f"), str(dest / "f"))
            await job.resume()
            assert await settle(job, (JobState.TRANSIENT_ERROR,)) is JobState.TRANSIENT_ERROR
            await job.resume()
            assert await settle(job, (JobState.TRANSIENT_ERROR,)) is JobState.TRANSIENT_ERROR
            assert (await job.get_error()).code == codes.BG_E_CONNECTION_CLOSED
            assert (await job.get_progress()).bytes_transferred >= HELD
        assert len(server.heads) == 2


def test_the_request_refuses_cr_lf_and_nul() -> None:
    """The GET is written from the target and fields; any CR, LF or NUL is refused."""
    fields = [("Host", "h"), ("X-A", "1")]
    assert (
        request_head("GET", "/p?q=1", fields) == b"GET /p?q=1 HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n\r\n"
    )
    for target, bad in [
        ("/p\r\nX-Evil: 1", fields),
        ("/p", [("Host", "h\r\nX-Evil: 1")]),
        ("/p", [("X-A\n", "1")]),
        ("/p", [("X-A", "1\x00")]),
        ("/p\n", fields),
    ]:
        with pytest.raises(ValueError, match="CR, LF or NUL"):
            request_head("GET", target, bad)
