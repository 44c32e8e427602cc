"""Zero-copy HTTP downloads: h11 parses the head, ``os.splice`` moves the body socket → pipe →
temporary file without it ever entering Python.

Rules:
- The engine chooses this transport only where it behaves exactly like the aiohttp one
  (:meth:`SpliceTransport.applies`): a plain ``http://`` GET of a whole file (no ranges, no
  dynamic content), reached directly (the job's proxy settings give no proxy for the URL), with
  no saved credentials (so no challenge can need an answer) and only end-to-end custom headers
  (none that frames or routes the message: Host, Connection, Content-Length, Transfer-Encoding,
  TE, Upgrade, Expect, Keep-Alive, Proxy-*). Everything else goes through aiohttp.
- A redirect (3xx with a Location) hands the whole fetch to the fallback transport (aiohttp),
  which applies the job's redirect policy; nothing has reached the sink then.
- What a response means (Range, If-Range, 206/200/416, a changed remote) is decided by
  ``resume.decide``, the same function the aiohttp path uses.
- The body: bytes that arrived with the head are written through the sink; the rest moves with
  ``os.splice`` in steps of up to the pipe's size (raised with F_SETPIPE_SZ), the socket
  non-blocking and waited for with ``loop.add_reader``, each wait bounded by the read timeout.
  The sink hears of spliced bytes through ``sink.advance`` at least every ``chunk_size`` bytes
  and before every wait, so progress, checkpoints and bandwidth pacing work as on the aiohttp
  path (a throttled sink bounds each step by its ``piece()``). Small rests and chunked bodies
  are read into memory and written through the sink.
- Connections are kept alive and reused (per host and port, at most ``max_idle`` idle ones). A
  reused connection that the server closed meanwhile is replaced once, before any byte of the
  answer was seen; a connection whose answer was not read to its exact end is closed.
- Failures are classified in ``classify.py``: connecting (refused, unreachable, name not
  resolved, timed out), reading (reset, closed early, timed out, malformed head); writing the
  temporary file is a LOCAL_FILE error.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import ipaddress
import os
import socket
from collections.abc import AsyncIterator, Sequence
from typing import Final, Protocol, runtime_checkable

import h11
from multidict import CIMultiDict
from yarl import URL

from bitsd._clock import Clock
from bitsd._errors import TransferError
from bitsd._transfer import classify, proxy
from bitsd._transfer.base import FileRequest, Sink, Transport
from bitsd._transfer.redirects import REDIRECT_STATUSES
from bitsd._transfer.resume import (
    MAX_RESTARTS,
    Head,
    bad_response,
    closed_early,
    decide,
    follow,
    kept_changing,
    range_headers,
)

__all__ = [
    "DEFAULT_MAX_IDLE",
    "DEFAULT_PIPE_SIZE",
    "SpliceTransport",
    "ThrottledSink",
]

# Bytes. The pipe between socket and file: one splice step moves at most this much. 1 MiB is
# Linux's default /proc/sys/fs/pipe-max-size (what an unprivileged process may ask for); 16
# times the default 64 KiB, so a step costs a sixteenth of the system calls.
DEFAULT_PIPE_SIZE = 1024 * 1024
# Idle keep-alive connections kept per (host, port). bitsd's choice: enough for the
# file_concurrency of several jobs at once, few enough to be polite.
DEFAULT_MAX_IDLE = 32
# Bytes. A body rest at most this large is read into memory instead of spliced: a pipe costs
# three system calls to set up, more than a small copy.
_SPLICE_MIN = 64 * 1024
# Bytes read from the socket at once while waiting for a head.
_HEAD_READ = 64 * 1024
# Custom headers that frame or route the message: a job that sets one goes through aiohttp.
_HOP_HEADERS: Final = frozenset(
    {
        "host",
        "connection",
        "content-length",
        "transfer-encoding",
        "te",
        "trailer",
        "upgrade",
        "expect",
        "keep-alive",
        "proxy-authorization",
        "proxy-connection",
    }
)
_F_SETPIPE_SZ: Final = getattr(fcntl, "F_SETPIPE_SZ", 1031)
_USER_AGENT: Final = "bitsd"


# The environment variables that decide a PRECONFIG proxy for http:// URLs.
_PROXY_VARIABLES: Final = ("http_proxy", "HTTP_PROXY", "no_proxy", "NO_PROXY")


@functools.lru_cache(maxsize=1024)
def _direct(
    usage: int,
    proxy_list: str | None,
    bypass: str | None,
    host: str,
    port: int,
    environment: tuple[str | None, ...],
) -> bool:
    """Whether an http:// URL on ``host:port`` is reached without a proxy. Cached: the answer
    depends only on the arguments (``environment`` holds the proxy variables it reads)."""
    del environment  # part of the cache key only
    try:
        route = proxy.candidates(
            usage, proxy_list, bypass, URL.build(scheme="http", host=host, port=port)
        )
    except (ValueError, TypeError):
        return False  # aiohttp reports what is wrong with it
    return all(c.proxy is None for c in route)


@runtime_checkable
class ThrottledSink(Protocol):
    """The optional part of a :class:`Sink` that bounds how much a zero-copy transport moves at
    once (the job's bandwidth limits)."""

    def piece(self) -> int | None:
        """Bytes to move at once now; None: as many as arrive."""
        ...


class _Redirected(Exception):  # noqa: N818 - a signal to hand over, not an error
    """The answer is a redirect: the fallback transport takes the fetch."""


class _Stale(Exception):  # noqa: N818 - a signal to reconnect, not an error
    """A reused connection was closed by the server before it answered."""


class _Connection:
    """One keep-alive connection to a (host, port)."""

    __slots__ = ("key", "reusable", "reused", "sock")

    def __init__(self, sock: socket.socket, key: tuple[str, int], *, reused: bool) -> None:
        self.sock = sock
        self.key = key
        self.reused = reused
        self.reusable = False


class SpliceTransport:
    """Fetches plain-HTTP files with a zero-copy body path (see the module rules).

    Args:
        clock: for Retry-After dates.
        fallback: the transport that takes redirected fetches (aiohttp's).
        chunk_size: bytes between two progress reports.
        connect_timeout, read_timeout: seconds; a stalled read is a transient BG_E_TIMEOUT.
        pipe_size: bytes asked for the pipe (F_SETPIPE_SZ); the kernel may give less.
        max_idle: idle connections kept per (host, port).
    """

    def __init__(
        self,
        clock: Clock,
        fallback: Transport,
        *,
        chunk_size: int,
        connect_timeout: float,
        read_timeout: float,
        pipe_size: int = DEFAULT_PIPE_SIZE,
        max_idle: int = DEFAULT_MAX_IDLE,
    ) -> None:
        self._clock = clock
        self._fallback = fallback
        self._chunk = chunk_size
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._pipe_size = pipe_size
        self._max_idle = max_idle
        self._idle: dict[tuple[str, int], list[socket.socket]] = {}

    @staticmethod
    def applies(request: FileRequest) -> bool:
        """Whether this transport fetches ``request`` exactly as the aiohttp one would."""
        options = request.options
        if request.dynamic or request.ranges is not None or options.credentials:
            return False
        if options.method.upper() != "GET" or request.url[:7].lower() != "http://":
            return False
        if any(name.lower() in _HOP_HEADERS for name, _ in options.headers):
            return False
        try:
            url = URL(request.url)
        except (ValueError, TypeError):
            return False  # aiohttp reports what is wrong with it
        if not url.raw_host:
            return False
        environment = tuple(os.environ.get(name) for name in _PROXY_VARIABLES)
        return _direct(
            options.proxy_usage,
            options.proxy_list,
            options.proxy_bypass,
            url.raw_host,
            url.port or 80,
            environment,
        )

    async def aclose(self) -> None:
        """Close the idle connections."""
        for socks in self._idle.values():
            for sock in socks:
                sock.close()
        self._idle.clear()

    async def fetch(self, request: FileRequest, sink: Sink) -> None:
        try:
            await self._fetch(request, sink)
        except _Redirected:
            await self._fallback.fetch(request, sink)
        except TransferError:
            raise
        except (OSError, TimeoutError, h11.ProtocolError) as exc:
            raise classify.from_network_exception(exc, url=request.url) from exc

    async def _fetch(self, request: FileRequest, sink: Sink) -> None:
        url = request.url
        target = URL(url)
        validator = request.validator
        total = request.bytes_total
        for _ in range(MAX_RESTARTS + 1):
            offset = sink.offset
            ours = range_headers(offset, validator)
            async with self._exchange(target, request.options.headers, ours) as (
                conn,
                head,
                early,
            ):
                if head.status in REDIRECT_STATUSES and "Location" in head.headers:
                    raise _Redirected
                answer = decide(
                    head,
                    url=url,
                    offset=offset,
                    total=total,
                    validator=validator,
                    now_wall=self._clock.wall(),
                )
                if not answer.take_body:
                    # Keep the connection if the (small) body came with the head.
                    conn.reusable = head.content_length == len(early.trailing_data[0])

                async def stream(end: int | None, conn: _Connection = conn) -> None:
                    await self._body(conn, head, early, sink, end, url)

                if await follow(answer, sink, stream):
                    return
                total, validator = None, None
        raise kept_changing(url)

    # -- one request -----------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _exchange(
        self, url: URL, custom: Sequence[tuple[str, str]], ours: dict[str, str]
    ) -> AsyncIterator[tuple[_Connection, Head, h11.Connection]]:
        """Send a GET with the job's ``custom`` headers and ``ours`` (which win, as on the
        aiohttp path) on a pooled or new connection, and yield it with the answer's head and
        the h11 state holding the body bytes that came with it. The connection goes back to the
        pool afterwards if the body was read to its exact end."""
        host = url.raw_host or ""
        port = url.port or 80
        key = (host.lower(), port)
        authority = f"[{host}]" if ":" in host else host
        if port != 80:
            authority += f":{port}"
        target = url.raw_path_qs or "/"
        fields = {
            "host": ("Host", authority),
            "user-agent": ("User-Agent", _USER_AGENT),
            "accept": ("Accept", "*/*"),
            "accept-encoding": ("Accept-Encoding", "identity"),
        }
        for name, value in (*custom, *ours.items()):
            fields[name.lower()] = (name, value)
        sent = list(fields.values())
        conn = self._pooled(key)
        while True:
            if conn is None:
                conn = _Connection(await self._connect(host, port), key, reused=False)
            try:
                parser, head = await self._request(conn, target, sent)
            except _Stale:
                conn.sock.close()
                conn = None
                continue
            except BaseException:
                conn.sock.close()
                raise
            break
        try:
            yield conn, head, parser
        finally:
            if conn.reusable and head.headers.get("Connection", "").lower() != "close":
                self._release(conn)
            else:
                conn.sock.close()

    async def _request(
        self, conn: _Connection, target: str, headers: list[tuple[str, str]]
    ) -> tuple[h11.Connection, Head]:
        parser = h11.Connection(h11.CLIENT)
        data = parser.send(h11.Request(method="GET", target=target, headers=headers))
        assert data is not None
        loop = asyncio.get_running_loop()
        sock = conn.sock
        try:
            await loop.sock_sendall(sock, data + (parser.send(h11.EndOfMessage()) or b""))
        except (BrokenPipeError, ConnectionResetError):
            if conn.reused:
                raise _Stale from None
            raise
        got_any = False
        while True:
            event = parser.next_event()
            if event is h11.NEED_DATA:
                try:
                    chunk = await self._recv(sock, _HEAD_READ)
                except ConnectionResetError:
                    if conn.reused and not got_any:
                        raise _Stale from None
                    raise
                if not chunk:
                    if conn.reused and not got_any:
                        raise _Stale
                    raise classify.DisconnectedError(
                        "the server closed the connection before its answer"
                    )
                got_any = True
                parser.receive_data(chunk)
                continue
            if isinstance(event, h11.InformationalResponse):
                continue
            if isinstance(event, h11.Response):
                fields: CIMultiDict[str] = CIMultiDict(
                    (name.decode("latin-1"), value.decode("latin-1"))
                    for name, value in event.headers
                )
                length_text = fields.get("Content-Length")
                chunked = "chunked" in fields.get("Transfer-Encoding", "").lower()
                length = int(length_text) if length_text is not None and not chunked else None
                if event.http_version != b"1.1":
                    fields.setdefault("Connection", "close")
                return parser, Head(event.status_code, fields, length)
            raise classify.DisconnectedError(  # pragma: no cover - h11 gives nothing else here
                "the server closed the connection before its answer"
            )

    async def _recv(self, sock: socket.socket, size: int) -> bytes:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(self._read_timeout):
            return await loop.sock_recv(sock, size)

    async def _readable(self, fd: int) -> None:
        """Wait until ``fd`` has data (or EOF), at most the read timeout."""
        loop = asyncio.get_running_loop()
        ready = loop.create_future()
        loop.add_reader(fd, _set_done, ready)
        try:
            async with asyncio.timeout(self._read_timeout):
                await ready
        finally:
            loop.remove_reader(fd)

    # -- bodies ----------------------------------------------------------------------------

    async def _body(
        self,
        conn: _Connection,
        head: Head,
        parser: h11.Connection,
        sink: Sink,
        end: int | None,
        url: str,
    ) -> None:
        length = head.content_length
        start = sink.offset
        if length is None:
            await self._framed_body(conn, parser, sink, end, url)
            return
        if end is not None and start + length > end:
            raise bad_response(url, "the server sent more bytes than it announced")
        early = parser.trailing_data[0]
        if len(early) > length:
            raise bad_response(url, "the server sent more bytes than it announced")
        if early:
            await sink.write(early)
        rest = length - len(early)
        if rest > _SPLICE_MIN:
            rest = await self._splice(conn.sock, sink, rest, url)
        while rest:
            data = await self._recv(conn.sock, min(rest, _HEAD_READ))
            if not data:
                break
            rest -= len(data)
            await sink.write(data)
        if end is not None and sink.offset != end:
            raise closed_early(url, sink.offset, end)
        conn.reusable = rest == 0

    async def _framed_body(
        self, conn: _Connection, parser: h11.Connection, sink: Sink, end: int | None, url: str
    ) -> None:
        """A body without Content-Length (chunked, or to the close), decoded by h11."""
        while True:
            event = parser.next_event()
            if event is h11.NEED_DATA:
                parser.receive_data(await self._recv(conn.sock, _HEAD_READ))
                continue
            if isinstance(event, h11.Data):
                if end is not None and sink.offset + len(event.data) > end:
                    raise bad_response(url, "the server sent more bytes than it announced")
                await sink.write(bytes(event.data))
                continue
            break
        if end is not None and sink.offset != end:
            raise closed_early(url, sink.offset, end)

    async def _splice(self, sock: socket.socket, sink: Sink, rest: int, url: str) -> int:
        """Move up to ``rest`` body bytes socket → pipe → the sink's file. Returns the bytes
        left (0 unless the server closed early)."""
        read_end, write_end = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        try:
            with contextlib.suppress(OSError):
                fcntl.fcntl(write_end, _F_SETPIPE_SZ, self._pipe_size)
            step_max = fcntl.fcntl(write_end, fcntl.F_GETPIPE_SZ)
            src, dst = sock.fileno(), sink.fd
            throttled = isinstance(sink, ThrottledSink)
            unreported = 0
            while rest:
                step = min(rest, step_max)
                if throttled:
                    assert isinstance(sink, ThrottledSink)
                    step = min(step, sink.piece() or step)
                try:
                    moved = os.splice(src, write_end, step, flags=_SPLICE_IN)
                except BlockingIOError:
                    if unreported:
                        await sink.advance(unreported)
                        unreported = 0
                    await self._readable(src)
                    continue
                except ConnectionError:
                    moved = 0
                if moved == 0:
                    break
                _drain(read_end, dst, moved, sink.local_name)
                rest -= moved
                unreported += moved
                if unreported >= self._chunk or throttled:
                    await sink.advance(unreported)
                    unreported = 0
            if unreported:
                await sink.advance(unreported)
            return rest
        finally:
            os.close(read_end)
            os.close(write_end)

    # -- connections -----------------------------------------------------------------------

    def _pooled(self, key: tuple[str, int]) -> _Connection | None:
        socks = self._idle.get(key)
        while socks:
            sock = socks.pop()
            try:
                peek = sock.recv(1, socket.MSG_PEEK)
            except BlockingIOError:
                return _Connection(sock, key, reused=True)
            except OSError:
                peek = b""
            del peek  # closed by the server (EOF) or unexpected bytes: not usable
            sock.close()
        return None

    def _release(self, conn: _Connection) -> None:
        socks = self._idle.setdefault(conn.key, [])
        if len(socks) >= self._max_idle:
            conn.sock.close()
            return
        socks.append(conn.sock)

    async def _connect(self, host: str, port: int) -> socket.socket:
        loop = asyncio.get_running_loop()
        try:
            ipaddress.ip_address(host)
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            addresses: list[tuple[socket.AddressFamily, tuple[str, int]]] = [(family, (host, port))]
        except ValueError:
            async with asyncio.timeout(self._connect_timeout):
                infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            addresses = [(info[0], info[4][:2]) for info in infos]  # type: ignore[misc]
        failure: OSError | None = None
        for family, address in addresses:
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                async with asyncio.timeout(self._connect_timeout):
                    await loop.sock_connect(sock, address)
            except OSError as exc:
                sock.close()
                failure = exc
                continue
            except BaseException:
                sock.close()
                raise
            return sock
        raise classify.ConnectFailedError(
            failure.errno if failure is not None else 0,
            f"cannot connect to {host}:{port}: {failure}",
        )


_SPLICE_IN: Final = getattr(os, "SPLICE_F_MOVE", 1) | getattr(os, "SPLICE_F_NONBLOCK", 2)
_SPLICE_OUT: Final = getattr(os, "SPLICE_F_MOVE", 1)


def _drain(pipe: int, fd: int, count: int, local_name: str) -> None:
    """Move ``count`` bytes that are in ``pipe`` to the file ``fd`` at its position."""
    try:
        while count:
            try:
                count -= os.splice(pipe, fd, count, flags=_SPLICE_OUT)
            except OSError as exc:
                if exc.errno not in (22, 95):  # EINVAL, EOPNOTSUPP: the file cannot splice
                    raise
                data = os.read(pipe, count)
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                count -= len(data)
    except OSError as exc:
        raise classify.from_local_os_error(exc, local_name=local_name) from exc


def _set_done(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
