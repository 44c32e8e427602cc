"""A raw TCP server that answers each connection with bytes chosen by the test.

For faults a well-behaved HTTP framework cannot produce: more body bytes than Content-Length, a
Content-Range for another range, a broken status line. ``RawServer(handler)`` calls
``handler(request_head: bytes, connection_number: int) -> bytes | None`` for each connection
and writes the answer, then closes the connection (None: close without answering).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Self

__all__ = ["RawServer", "range_of"]

Handler = Callable[[bytes, int], bytes | None]


class RawServer:
    """A one-answer-per-connection TCP server on 127.0.0.1."""

    def __init__(self, handler: Handler) -> None:
        self._handler = handler
        self._server: asyncio.Server | None = None
        self.heads: list[bytes] = []

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            writer.close()
            return
        self.heads.append(head)
        answer = self._handler(head, len(self.heads))
        try:
            if answer is not None:
                writer.write(answer)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


def range_of(head: bytes) -> tuple[int, int | None] | None:
    """The (first, last) of a ``Range: bytes=a-b`` request header, if any."""
    for line in head.decode("latin-1").split("\r\n"):
        name, _, value = line.partition(":")
        if name.strip().lower() == "range":
            first, _, last = value.strip().removeprefix("bytes=").partition("-")
            return int(first), (int(last) if last else None)
    return None
