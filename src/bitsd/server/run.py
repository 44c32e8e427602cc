"""Serving an ASGI app with uvicorn in the current event loop, as an async context manager.

Rules:
- uvicorn runs with ``http="h11"``: its h11 parser accepts the ``BITS_POST`` method (httptools
  and aiohttp's parser do not). HTTP/1.1 keep-alive, no ``Server`` header, no access log (the
  app logs its own events), no WebSockets.
- The socket is bound before uvicorn starts, so the port is known (``port=0`` picks a free one)
  and a bind failure raises from ``__aenter__``; its connections have Nagle off
  (``bitsd._uvicorn.tcp_listener``). Entering returns once uvicorn accepts
  connections; leaving stops it (requests in progress get ``GRACEFUL_SHUTDOWN`` seconds).
- uvicorn's signal handlers are off: the caller owns the signals (``bitsd.server.cli``).
- The lifespan runs (the upload server's sweeper lives there).
"""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType
from typing import Final, Self

import uvicorn
from starlette.types import ASGIApp

from bitsd._uvicorn import Server, tcp_listener

__all__ = ["GRACEFUL_SHUTDOWN", "Serving"]

# Seconds requests in progress get when the server stops.
GRACEFUL_SHUTDOWN: Final = 2.0
# Seconds uvicorn may take to start on a bound socket.
_START_TIMEOUT: Final = 10.0


class Serving:
    """``app`` served over HTTP/1.1 on ``host``:``port`` while the context is entered.

    Args:
        app: the ASGI app.
        host: the address to listen on.
        port: the TCP port (0: a free one; see :attr:`port`).
    """

    def __init__(self, app: ASGIApp, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self._app = app
        self._host = host
        self._port = port
        self._server: Server | None = None
        self._task: asyncio.Task[None] | None = None
        self.address: tuple[str, int] = (host, port)

    @property
    def port(self) -> int:
        """The port it listens on."""
        return self.address[1]

    def url(self, path: str = "/") -> str:
        """``http://host:port`` + ``path`` (IPv6 hosts bracketed)."""
        host = self.address[0]
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}{path}"

    @property
    def task(self) -> asyncio.Task[None]:
        """uvicorn's task (done when the server stopped, by request or on its own)."""
        if self._task is None:
            raise RuntimeError("not serving")
        return self._task

    async def __aenter__(self) -> Self:
        sock = tcp_listener(self._host, self._port)
        try:
            self.address = sock.getsockname()[:2]
            config = uvicorn.Config(
                self._app,
                http="h11",
                ws="none",
                lifespan="on",
                log_config=None,
                access_log=False,
                server_header=False,
                timeout_graceful_shutdown=int(GRACEFUL_SHUTDOWN),
            )
            self._server = Server(config)
            self._task = asyncio.create_task(
                self._server.serve(sockets=[sock]), name=f"bitsd-upload-server:{self.port}"
            )
        except BaseException:
            sock.close()
            raise
        try:
            async with asyncio.timeout(_START_TIMEOUT):
                while not self._server.started:
                    if self._task.done():
                        await self._task
                        raise RuntimeError("uvicorn stopped while starting")
                    await asyncio.sleep(0.005)
        except BaseException:
            await self._stop()
            sock.close()
            raise
        self._socket = sock
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._stop()
        self._socket.close()

    async def _stop(self) -> None:
        server, task = self._server, self._task
        if server is None or task is None or task.done():
            return
        server.request_exit()
        try:
            await asyncio.wait_for(asyncio.shield(task), GRACEFUL_SHUTDOWN + 3)
        except TimeoutError:
            server.force_exit = True
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
