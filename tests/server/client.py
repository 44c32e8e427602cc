"""A raw HTTP/1.1 client for the upload server tests, and the BITS packets on top of it.

:class:`RawClient` keeps one TCP connection and writes requests byte for byte (any method, any
request target, any header, or none), so malformed packets reach the server exactly as written.
Bodies are bytes or a :class:`FileSlice` sent with ``sendfile`` (memory stays flat for large
uploads). Responses are parsed just enough: status, headers in their wire case, and a body of
``Content-Length`` bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self

PROTOCOL = "{7df0354d-249b-430f-820d-3d2a9bef4931}"
SESSION_NOT_FOUND = "0x8020001F"
INVALIDARG = "0x80070057"
ACCESSDENIED = "0x80070005"
TOO_LARGE = "0x80200020"

Headers = list[tuple[str, str]]


@dataclass(frozen=True)
class FileSlice:
    """``length`` bytes of ``path`` from ``offset``, streamed from disk."""

    path: Path
    offset: int
    length: int


@dataclass
class Reply:
    """One HTTP response."""

    status: int
    headers: Headers = field(default_factory=list)
    body: bytes = b""

    def header(self, name: str) -> str | None:
        """The value of the first header called ``name`` (any case), or None."""
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None

    @property
    def received(self) -> int | None:
        value = self.header("BITS-Received-Content-Range")
        return None if value is None else int(value)

    @property
    def error(self) -> tuple[str | None, str | None]:
        """(BITS-Error-Code, BITS-Error-Context)."""
        return self.header("BITS-Error-Code"), self.header("BITS-Error-Context")


class RawClient:
    """One keep-alive connection to ``host``:``port``."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def __aenter__(self) -> Self:
        self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(ConnectionError):
                await self._writer.wait_closed()
            self._writer = None

    @property
    def writer(self) -> asyncio.StreamWriter:
        assert self._writer is not None, "not connected"
        return self._writer

    async def send(self, data: bytes) -> None:
        """Write raw bytes."""
        self.writer.write(data)
        await self.writer.drain()

    async def send_file(self, body: FileSlice) -> None:
        """Write a slice of a file with sendfile."""
        await self.writer.drain()
        f = await asyncio.to_thread(open, body.path, "rb")
        with f:
            loop = asyncio.get_running_loop()
            await loop.sendfile(self.writer.transport, f, body.offset, body.length)

    async def read_reply(self, *, head: bool = False) -> Reply:
        """Read one response (``head``: a response to HEAD, whose body is not sent)."""
        assert self._reader is not None
        raw = await self._reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers: Headers = []
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers.append((name, value.strip()))
        reply = Reply(status, headers)
        length = reply.header("content-length")
        if length is not None and not head and status not in (204, 304):
            reply.body = await self._reader.readexactly(int(length))
        return reply

    async def request(
        self,
        method: str,
        target: str,
        headers: Headers | None = None,
        body: bytes | FileSlice | None = None,
        *,
        content_length: bool = True,
    ) -> Reply:
        """Send one request and read its response.

        ``content_length``: add ``Content-Length`` (the body's length, 0 without a body) unless
        ``headers`` has one.
        """
        lines = [f"{method} {target} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        all_headers = list(headers or [])
        if content_length and not any(k.lower() == "content-length" for k, _ in all_headers):
            size = 0 if body is None else len(body) if isinstance(body, bytes) else body.length
            all_headers.append(("Content-Length", str(size)))
        lines += [f"{k}: {v}" for k, v in all_headers]
        await self.send(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        if isinstance(body, bytes):
            await self.send(body)
        elif body is not None:
            await self.send_file(body)
        return await self.read_reply(head=method == "HEAD")

    # -- BITS packets ----------------------------------------------------------------------

    async def bits(
        self,
        target: str,
        packet: str,
        headers: Headers | None = None,
        body: bytes | FileSlice | None = None,
    ) -> Reply:
        """A ``BITS_POST`` of ``packet`` (its type) to ``target``."""
        return await self.request(
            "BITS_POST", target, [("BITS-Packet-Type", packet), *(headers or [])], body
        )

    async def ping(self, target: str) -> Reply:
        return await self.bits(target, "Ping")

    async def create_session(self, target: str) -> str:
        """Create a session; its id (asserting success)."""
        reply = await self.bits(target, "Create-Session", [("BITS-Supported-Protocols", PROTOCOL)])
        assert reply.status == 200, reply
        sid = reply.header("BITS-Session-Id")
        assert sid is not None
        return sid

    async def fragment(
        self,
        target: str,
        sid: str,
        first: int,
        data: bytes | FileSlice,
        total: int,
        *,
        content_range: str | None = None,
    ) -> Reply:
        length = len(data) if isinstance(data, bytes) else data.length
        value = content_range or f"bytes {first}-{first + length - 1}/{total}"
        return await self.bits(
            target,
            "Fragment",
            [("BITS-Session-Id", sid), ("Content-Name", "local.bin"), ("Content-Range", value)],
            data,
        )

    async def close_session(self, target: str, sid: str) -> Reply:
        return await self.bits(target, "Close-Session", [("BITS-Session-Id", sid)])

    async def cancel_session(self, target: str, sid: str) -> Reply:
        return await self.bits(target, "Cancel-Session", [("BITS-Session-Id", sid)])

    async def upload(self, target: str, path: Path, fragment_size: int) -> tuple[str, Reply]:
        """Ping, Create-Session, then fragments from disk, always continuing from the server's
        ``BITS-Received-Content-Range``; (session id, the final Fragment Ack). No Close."""
        assert (await self.ping(target)).status == 200
        sid = await self.create_session(target)
        total = await asyncio.to_thread(os.path.getsize, path)
        offset = 0
        while True:
            length = min(fragment_size, total - offset)
            reply = await self.fragment(target, sid, offset, FileSlice(path, offset, length), total)
            assert reply.status in (200, 416), reply
            assert reply.received is not None
            offset = reply.received
            if offset == total:
                return sid, reply
