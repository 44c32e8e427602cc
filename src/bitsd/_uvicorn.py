"""uvicorn as bitsd's servers run it (the daemon and the upload server).

Rules:
- The owner of the process handles signals: the server installs no handlers of its own.
- :meth:`Server.request_exit` stops the server at once instead of at uvicorn's next 0.1 s tick.
- A TCP server listens on a socket from :func:`tcp_listener`, whose connections have Nagle's
  algorithm off (TCP_NODELAY): asyncio sets TCP_NODELAY only on sockets whose protocol is
  ``IPPROTO_TCP``, and an accepted socket inherits the listening socket's protocol, so a socket
  made with protocol 0 keeps Nagle on. uvicorn writes a response's head and body separately; with
  Nagle on, the body waits for the client's delayed ACK of the head (~40 ms on Linux) on every
  kept-alive response.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator

import uvicorn

__all__ = ["Server", "tcp_listener"]


def tcp_listener(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host``:``port`` (IPv4, or IPv6 for a host with a colon; port 0:
    a free one), ready for ``uvicorn.Server.serve(sockets=[...])``; its connections get
    TCP_NODELAY from asyncio. The caller closes it."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except BaseException:
        sock.close()
        raise
    return sock


class Server(uvicorn.Server):
    """uvicorn without signal handlers, whose main loop wakes at once on :meth:`request_exit`."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._exit_requested = asyncio.Event()

    def request_exit(self) -> None:
        """Stop serving as soon as the main loop notices (at once)."""
        self.should_exit = True
        self._exit_requested.set()

    async def main_loop(self) -> None:
        counter = 0
        while not await self.on_tick(counter):
            counter = (counter + 1) % 864_000
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._exit_requested.wait(), 0.1)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield
