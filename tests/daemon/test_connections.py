"""The control socket's connections: a client must send a whole request in time
(bitsd.daemon.connections); a kept-alive connection and an event stream are not cut by it."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from bitsd.daemon import connections
from bitsd.daemon.paths import Paths
from bitsd.daemon.service import Daemon

DEADLINE = 0.3


@pytest.fixture(autouse=True)
def _short_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(connections, "REQUEST_READ_TIMEOUT", DEADLINE)


async def closed_after(paths: Paths, sent: bytes) -> float | None:
    """Seconds until the daemon closes a connection that sent ``sent`` (None: still open
    after ten deadlines)."""
    reader, writer = await asyncio.open_unix_connection(str(paths.socket))
    loop = asyncio.get_running_loop()
    start = loop.time()
    try:
        writer.write(sent)
        try:
            data = await asyncio.wait_for(reader.read(), DEADLINE * 10)
        except TimeoutError:
            return None
        assert data == b""  # closed unanswered
        return loop.time() - start
    finally:
        writer.close()


@pytest.mark.parametrize(
    "sent",
    [b"", b"GET /v1/version HTTP/1.1\r\nHost: bitsd\r\n", b"POST /v1/jobs HTTP/1.1\r\n"],
    ids=["silent", "half a head", "a request line"],
)
async def test_a_client_that_does_not_send_a_request_in_time_is_cut(
    paths: Paths, daemon: Daemon, sent: bytes
) -> None:
    """Nothing, half a head or a lone request line: closed once the deadline passes."""
    seconds = await closed_after(paths, sent)
    assert seconds is not None
    assert DEADLINE * 0.9 <= seconds < DEADLINE * 5


async def test_a_body_that_never_ends_is_cut(paths: Paths, daemon: Daemon) -> None:
    """A head announcing more body than comes: closed once the deadline passes."""
    head = b"POST /v1/jobs HTTP/1.1\r\nHost: bitsd\r\nContent-Length: 100\r\n\r\n{"
    assert await closed_after(paths, head) is not None


async def test_kept_alive_requests_and_event_streams_outlive_the_deadline(
    api: aiohttp.ClientSession, daemon: Daemon
) -> None:
    """Whole requests reset the deadline: a connection kept alive between requests and an
    event stream left quiet are not cut by it."""
    async with api.get("/v1/version") as first:
        assert first.status == 200
    async with api.ws_connect("/v1/events") as ws:
        await asyncio.sleep(DEADLINE * 3)
        async with api.get("/v1/version") as second:
            assert second.status == 200
        await ws.send_str(json.dumps({"op": "unregister", "job": "nobody"}))
        assert not ws.closed
        await asyncio.sleep(DEADLINE * 2)
        assert not ws.closed


async def test_the_deadline_counts_from_the_start_of_each_request(
    paths: Paths, daemon: Daemon
) -> None:
    """A request begun late on a kept-alive connection gets its whole deadline, counted from
    its first byte, not from the connection's (one timer per connection, re-armed)."""
    reader, writer = await asyncio.open_unix_connection(str(paths.socket))
    loop = asyncio.get_running_loop()
    try:
        writer.write(b"GET /v1/version HTTP/1.1\r\nHost: bitsd\r\n\r\n")
        assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
        await asyncio.sleep(DEADLINE * 0.6)
        writer.write(b"GET /v1/version HTTP/1.1\r\n")  # and then nothing
        began = loop.time()
        rest = await asyncio.wait_for(reader.read(), DEADLINE * 10)
        waited = loop.time() - began
        assert b"HTTP/1.1" not in rest  # the first answer's body, then the close: no second
        assert DEADLINE * 0.9 <= waited < DEADLINE * 5
    finally:
        writer.close()
