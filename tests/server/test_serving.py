"""The listening socket of bitsd's TCP servers (``bitsd._uvicorn.tcp_listener``, used by
``Serving`` and the test servers): the connections it accepts have Nagle's algorithm off."""

from __future__ import annotations

import asyncio
import socket

from bitsd._uvicorn import tcp_listener
from bitsd.server import Serving
from tests.server.conftest import Running


async def _accepted_nodelay(sock: socket.socket) -> int:
    """TCP_NODELAY of the server side of one connection accepted on ``sock`` by asyncio."""
    seen: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = writer.get_extra_info("socket")
        seen.set_result(conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        writer.close()

    server = await asyncio.start_server(accept, sock=sock)
    async with server:
        host, port = sock.getsockname()[:2]
        _, writer = await asyncio.open_connection(host, port)
        try:
            return await asyncio.wait_for(seen, 10)
        finally:
            writer.close()


async def test_accepted_connections_have_nagle_off() -> None:
    """asyncio turns Nagle off only on sockets whose protocol says TCP: a listener made with
    protocol 0 hands out connections with TCP_NODELAY 0 (every response body then waits ~40 ms
    for a delayed ACK); tcp_listener's connections have it on."""
    assert await _accepted_nodelay(tcp_listener("127.0.0.1", 0)) != 0
    plain = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    plain.bind(("127.0.0.1", 0))
    assert await _accepted_nodelay(plain) == 0, "the kernel default changed: this test is moot"


async def test_serving_listens_on_tcp_listener_sockets(running: Running) -> None:
    """The upload server's listening socket is one of tcp_listener's (protocol IPPROTO_TCP)."""
    listening = [s for s in _server_sockets(running.serving) if s.family == socket.AF_INET]
    assert listening
    assert all(s.proto == socket.IPPROTO_TCP for s in listening)


def _server_sockets(serving: Serving) -> list[socket.socket]:
    server = serving._server
    assert server is not None
    return [sock for s in server.servers for sock in s.sockets]
