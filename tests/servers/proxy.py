"""A forward HTTP proxy on loopback, for testing bitsd's proxy settings against a real proxy.

- A request in absolute form (``GET http://host:port/path HTTP/1.1``) is forwarded to its
  server over a new connection, in origin form, without the ``Proxy-*`` headers; the answer is
  relayed as it comes. Both connections close after one exchange (``Connection: close``).
- ``CONNECT host:port`` opens a tunnel: ``200``, then bytes both ways until one side closes
  (HTTPS through the proxy; the proxy never sees inside the TLS).
- With ``auth=(user, password)`` a request without the matching Basic ``Proxy-Authorization``
  gets ``407`` with ``Proxy-Authenticate: Basic realm="bitsd-proxy"``.
- Every request is recorded in :attr:`ForwardProxy.requests` before it is answered.

Use::

    async with ForwardProxy() as proxy:
        proxy.url          # "http://127.0.0.1:PORT"
        proxy.requests     # [ProxyRecord(method="CONNECT", target="127.0.0.1:443", ...)]
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hmac
import urllib.parse
from dataclasses import dataclass
from typing import Final, Self

__all__ = ["ForwardProxy", "ProxyRecord"]

_MAX_HEAD: Final = 64 * 1024
_HOP_BY_HOP: Final = frozenset(
    {"connection", "keep-alive", "proxy-authorization", "proxy-connection", "te", "upgrade"}
)


@dataclass(frozen=True)
class ProxyRecord:
    """One request as the proxy saw it."""

    method: str
    target: str
    """The request target: an absolute URL, or ``host:port`` for CONNECT."""
    headers: dict[str, str]
    """Request headers, lower-case names (repeated headers joined with ", ")."""
    status: int
    """What the proxy itself answered: 407, 200 for a tunnel, 0 when it forwarded the request
    (the server answered), 502 when the server could not be reached."""


class ForwardProxy:
    """A forward HTTP proxy with CONNECT on 127.0.0.1 (asyncio streams, in this event loop).

    Args:
        auth: (user, password) to require as Basic proxy credentials, or None.
    """

    def __init__(self, *, auth: tuple[str, str] | None = None) -> None:
        self._auth = auth
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.requests: list[ProxyRecord] = []
        """Every request received, in arrival order."""

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self._server.wait_closed()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    @property
    def address(self) -> str:
        """``127.0.0.1:PORT`` (the form of a BITS proxy list entry)."""
        return self.url.removeprefix("http://")

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._serve(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        if len(head) > _MAX_HEAD:
            return
        lines = head.decode("latin-1").split("\r\n")
        method, target, _version = lines[0].split(" ", 2)
        fields: list[tuple[str, str]] = []
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                fields.append((name.strip(), value.strip()))
        headers: dict[str, str] = {}
        for name, value in fields:
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value

        def record(status: int) -> None:
            self.requests.append(ProxyRecord(method, target, headers, status))

        if self._auth is not None and not self._authorized(headers.get("proxy-authorization")):
            record(407)
            writer.write(
                b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                b'Proxy-Authenticate: Basic realm="bitsd-proxy"\r\n'
                b"Content-Length: 0\r\nConnection: close\r\n\r\n"
            )
            await writer.drain()
            return
        if method == "CONNECT":
            host, _, port = target.rpartition(":")
            try:
                up_reader, up_writer = await asyncio.open_connection(host.strip("[]"), int(port))
            except OSError:
                record(502)
                writer.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
                await writer.drain()
                return
            record(200)
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await writer.drain()
            await _pipe(reader, writer, up_reader, up_writer)
            return
        url = urllib.parse.urlsplit(target)
        if url.scheme != "http" or not url.hostname:
            record(400)
            writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(url.hostname, url.port or 80)
        except OSError:
            record(502)
            writer.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
            return
        record(0)
        path = url.path or "/"
        if url.query:
            path += "?" + url.query
        out = [f"{method} {path} HTTP/1.1"]
        out += [f"{n}: {v}" for n, v in fields if n.lower() not in _HOP_BY_HOP]
        out.append("Connection: close")
        up_writer.write(("\r\n".join(out) + "\r\n\r\n").encode("latin-1"))
        length = int(headers.get("content-length", "0") or 0)
        if length:
            up_writer.write(await reader.readexactly(length))
        await up_writer.drain()
        try:
            answer = await up_reader.readuntil(b"\r\n\r\n")
            status_line, *rest = answer.decode("latin-1").split("\r\n")
            kept = [line for line in rest if line and not line.lower().startswith("connection:")]
            writer.write(
                ("\r\n".join([status_line, *kept, "Connection: close"]) + "\r\n\r\n").encode(
                    "latin-1"
                )
            )
            while chunk := await up_reader.read(64 * 1024):
                writer.write(chunk)
                await writer.drain()
        finally:
            up_writer.close()

    def _authorized(self, header: str | None) -> bool:
        assert self._auth is not None
        if not header or not header.lower().startswith("basic "):
            return False
        user, password = self._auth
        expected = base64.b64encode(f"{user}:{password}".encode()).decode()
        return hmac.compare_digest(header[6:].strip(), expected)


async def _pipe(
    a_reader: asyncio.StreamReader,
    a_writer: asyncio.StreamWriter,
    b_reader: asyncio.StreamReader,
    b_writer: asyncio.StreamWriter,
) -> None:
    """Copy bytes both ways until either side closes."""

    async def copy(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while chunk := await src.read(64 * 1024):
                dst.write(chunk)
                await dst.drain()
        except ConnectionError:
            pass
        finally:
            dst.close()

    try:
        await asyncio.gather(copy(a_reader, b_writer), copy(b_reader, a_writer))
    finally:
        b_writer.close()
