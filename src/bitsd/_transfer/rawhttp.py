"""bitsd's own HTTP/1.1 client for plain downloads: httptools parses the head over a raw socket
and the body moves from the connection straight into the temporary file — zero-copy for http://
(``splice.py``), decrypted into large buffers for https:// (``tlsstream.py``).

Rules:
- The engine chooses this transport only where it behaves exactly like the aiohttp one
  (:meth:`RawHttpTransport.applies`): an ``http://`` or ``https://`` GET of a whole file (no
  ranges, no dynamic content) at a URL a request can be sent to (``_urls.http_url_problem``:
  aiohttp reports what is wrong with any other), reached directly (the job's proxy settings
  give no proxy for the URL), with no saved credentials (so no challenge can need an answer)
  and no userinfo in the URL (aiohttp sends it as Basic credentials), and only end-to-end
  custom headers (none that frames or routes the message: Host, Connection, Content-Length,
  Transfer-Encoding, TE, Upgrade, Expect, Keep-Alive, Proxy-*). Everything else goes through
  aiohttp. The engine reads the proxy environment once per job
  run (``proxy_environment``): a route decided for it holds for the run, and a change of
  http_proxy and the others reaches the routes already decided at the job's next run.
- https: the job's SSL context comes from the cache the aiohttp path uses too
  (``tls.TlsContexts``), so trust, client certificates and the BG_SSL_IGNORE_* flags are decided
  in one place; a CA bundle or certificate that cannot be used is classified as on the aiohttp
  path. Connecting to each address and the TLS handshake are each bounded by the connect
  timeout; a connection reset or closed during the handshake is a connect failure, as aiohttp's
  connector reports it.
- A redirect (3xx with a Location) hands the whole fetch to the fallback transport (aiohttp),
  which applies the job's redirect policy; nothing has reached the sink then.
- What a response means (Range, If-Range, 206/200/416, a changed remote) is decided by
  ``resume.decide``, the same function the aiohttp path uses.
- The request is one GET written from the checked target and fields (``bitsd._httphead``: a
  CR, LF or NUL in any of them is refused before a byte is sent); the answer is parsed by
  httptools (llhttp, the parser of Node.js), about 25 times cheaper per answer than h11, which
  matters when a job is thousands of small files (bench/small_files_bound.py). A 1xx answer
  is skipped.
- The body: bytes that arrived with the head are written through the sink; the connection's
  stream pours the rest into the sink's file (``Stream.pour``). Chunked bodies, and bodies that
  end with the connection, are decoded by the parser and written through the sink.
- Connections are kept alive and reused per (host, port, SSL context) — a TLS connection only
  for jobs whose TLS settings give the same context — at most ``max_idle`` idle ones per key. A
  reused connection that the server closed meanwhile is replaced once, before any byte of the
  answer was seen; a connection whose answer was not read to its exact end is closed. So is
  one a bulk handed back (``fetch`` with ``answered``) at the end of its answer: the bulk
  counts it among its connections until the file ends, then opens another, so an idle one
  kept here would take the job past its file concurrency; for the same reason no idle
  connection is kept to an origin while a bulk is open there (``bulk_opened``).
- Failures are classified in ``classify.py``: connecting (refused, unreachable, name not
  resolved, timed out), TLS (untrusted certificate, alerts), reading (reset, closed early,
  timed out, malformed head); writing the temporary file is a LOCAL_FILE error.
- For bulks (``bulkfetch.py``: the splice helper fetches a job's small files whole) this
  transport says which files may go in one and makes their GET (``bulk_file``, the bytes
  ``_fetch`` would send), and goes on with an answer a bulk handed back (``fetch`` with
  ``answered``) exactly as with one it read itself.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import os
import re
import socket
import ssl
from collections.abc import Mapping, Sequence
from typing import Final, NamedTuple, Protocol

import httptools
from multidict import CIMultiDict
from yarl import URL

from bitsd._clock import Clock
from bitsd._errors import TransferError
from bitsd._httphead import request_head
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
from bitsd._transfer.splice import DEFAULT_PIPE_SIZE, PlainStream
from bitsd._transfer.splicehelper import SpliceHelper
from bitsd._transfer.tls import TlsContexts, TlsSettings, TlsSetupError
from bitsd._transfer.tlsstream import TlsStream
from bitsd._urls import http_url_problem

__all__ = [
    "DEFAULT_MAX_IDLE",
    "Answered",
    "BulkFile",
    "BulkOrigin",
    "RawHttpTransport",
    "Stream",
    "answer_of",
    "connect_failed",
    "head_of",
    "proxy_environment",
]

# Idle keep-alive connections kept per (host, port, SSL context). bitsd's choice: enough for the
# file_concurrency of several jobs at once, few enough to be polite.
DEFAULT_MAX_IDLE = 32
# Bytes read from the connection at once while waiting for a head.
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
_USER_AGENT: Final = "bitsd"
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}
# A request target that yarl sends as it is written: a path, and maybe a query, of characters
# it never quotes again (unreserved, sub-delimiters, ":", "@", "/", and "?" in a query that is
# not empty: yarl drops an empty one), with no "%" to check and no "." segment to remove ("/."
# is left to yarl, whatever follows).
_PLAIN_TARGET: Final = re.compile(r"/[\w\-.~!$&'()*+,;=:@/]*(?:\?[\w\-.~!$&'()*+,;=:@/?]+)?", re.A)


class BulkOrigin(NamedTuple):
    """The GET of a bulk's files of one origin, with one job run's options and proxy
    environment (``RawHttpTransport.bulk_file``): a job's thousands of files of one origin
    differ only in their path, and the GET of a plain path (``_PLAIN_TARGET``) is the
    origin's with the path put in (a test pins it to the GET made in full)."""

    prefix: str  # the origin as the URLs spell it (``_origin_of``)
    where: tuple[str, int]
    before: bytes
    after: bytes

    def get(self, url: str) -> bytes | None:
        """The GET of ``url`` if it has this origin and a plain path; None otherwise (then
        ``bulk_file`` decides it in full)."""
        prefix = self.prefix
        if not url.startswith(prefix):
            return None
        path = url[len(prefix) :]  # a plain path starts with "/": the origin is the prefix
        if "/." in path or not _PLAIN_TARGET.fullmatch(path):
            return None
        return self.before + path.encode("ascii") + self.after


class BulkFile(NamedTuple):
    """A file that may go in a bulk: where its GET goes (host, port), the GET, and its
    origin's GET for the next files (None when this file's path is not plain)."""

    where: tuple[str, int]
    wire: bytes
    origin: BulkOrigin | None


class Stream(Protocol):
    """One connection's bytes: plain TCP (``splice.PlainStream``) or TLS over it
    (``tlsstream.TlsStream``)."""

    @property
    def sock(self) -> socket.socket:
        """The TCP socket."""
        ...

    def close(self) -> None: ...

    def retune(self, *, read_timeout: float, chunk_size: int) -> None:
        """Use new settings from the next wait and body on."""
        ...

    async def send(self, data: bytes) -> None: ...

    async def recv(self, size: int) -> bytes:
        """Up to ``size`` bytes; b"" at EOF. Waits at most the read timeout."""
        ...

    async def pour(self, sink: Sink, count: int) -> int:
        """Move up to ``count`` body bytes into the sink's file; returns the bytes left (0
        unless the server closed the connection early)."""
        ...

    def alive(self) -> bool:
        """Whether an idle connection can carry another request."""
        ...


_Key = tuple[str, int, ssl.SSLContext | None]


@functools.lru_cache(maxsize=1024)
def _direct(
    usage: int,
    proxy_list: str | None,
    bypass: str | None,
    scheme: str,
    host: str,
    port: int,
    environment: tuple[str | None, ...],
) -> bool:
    """Whether a URL on ``host:port`` is reached without a proxy. Cached: the answer depends
    only on the arguments (``environment`` holds the proxy variables it reads).

    Raises:
        _EnvironmentChanged: the environment is no longer ``environment`` (nothing cached).
    """
    if environment != proxy_environment():
        raise _EnvironmentChanged
    try:
        route = proxy.candidates(
            usage, proxy_list, bypass, URL.build(scheme=scheme, host=host, port=port)
        )
    except (ValueError, TypeError):
        return False  # aiohttp reports what is wrong with it
    return all(c.proxy is None for c in route)


class _EnvironmentChanged(Exception):  # noqa: N818 - a signal to decide again, not an error
    """The proxy environment to decide with is no longer the environment."""


def proxy_environment() -> tuple[str | None, ...]:
    """The environment variables that decide a PRECONFIG proxy for http:// and https:// URLs,
    read one by one (cheaper than a loop): what ``RawHttpTransport.applies`` decides with."""
    get = os.environ.get
    return (
        get("http_proxy"),
        get("HTTP_PROXY"),
        get("https_proxy"),
        get("HTTPS_PROXY"),
        get("no_proxy"),
        get("NO_PROXY"),
    )


def _origin_of(url: str) -> str | None:
    """``scheme://authority`` of an http:// or https:// URL (any case), cut where yarl cuts
    the authority (at the first ``/``, ``?`` or ``#``), so the host and port yarl finds in it
    are those of the whole URL; None for any other scheme or a URL without an authority."""
    colon = url.find(":")
    if url[:colon].lower() not in _DEFAULT_PORTS or not url.startswith("//", colon + 1):
        return None
    end = len(url)
    for delimiter in "/?#":
        found = url.find(delimiter, colon + 3)
        if 0 <= found < end:
            end = found
    return url[:end]


@functools.lru_cache(maxsize=1024)
def _origin_target(origin: str) -> tuple[str, str, int] | None:
    """Scheme, host and port of an ``_origin_of`` origin, by yarl; None if it has no host or
    is one no request can be sent to (``http_url_problem``: aiohttp says why)."""
    url = URL(origin)
    if not url.raw_host or url.scheme not in _DEFAULT_PORTS or http_url_problem(url) is not None:
        return None
    return url.scheme, url.raw_host, url.port or _DEFAULT_PORTS[url.scheme]


@functools.lru_cache(maxsize=1024)
def _direct_origin(
    origin: str,
    usage: int,
    proxy_list: str | None,
    bypass: str | None,
    environment: tuple[str | None, ...],
) -> bool:
    """Whether a URL of ``origin`` (``_origin_of``) with a host is reached without a proxy.
    Cached: the answer depends only on the arguments (``environment`` holds the proxy
    variables it reads: http_proxy, https_proxy and no_proxy, in both cases). An origin with
    userinfo (``u:p@``) is not: aiohttp sends it as Basic credentials, this client does not."""
    if "@" in origin:
        return False
    try:
        base = _origin_target(origin)
    except (ValueError, TypeError):
        return False  # aiohttp reports what is wrong with it
    if base is None:
        return False
    scheme, host, port = base
    return _direct(usage, proxy_list, bypass, scheme, host, port, environment)


class _Target(NamedTuple):
    """Where a request goes, as aiohttp would send it: yarl's view of the URL."""

    scheme: str
    host: str  # yarl's raw_host
    port: int  # the URL's port, or the scheme's
    path_qs: str  # the request target: yarl's raw_path_qs


def _target_of(url: str) -> _Target:
    """The request target of ``url``, as yarl gives it. The common URL, a plain path after an
    origin seen before, is split here (yarl's parse of each of thousands of URLs cost more);
    any other goes through yarl.

    Raises:
        ValueError, TypeError: yarl cannot parse the URL.
    """
    origin = _origin_of(url)
    if origin is not None:
        rest = url[len(origin) :]
        if "/." not in rest and _PLAIN_TARGET.fullmatch(rest):
            base = _origin_target(origin)
            if base is not None:
                return _Target(*base, rest)
    parsed = URL(url)
    scheme = parsed.scheme
    return _Target(
        scheme,
        parsed.raw_host or "",
        parsed.port or _DEFAULT_PORTS.get(scheme, 0),
        parsed.raw_path_qs or "/",
    )


def _request_bytes(
    url: _Target, custom: Sequence[tuple[str, str]], ours: Mapping[str, str]
) -> bytes:
    """The GET of ``url`` with the job's ``custom`` headers and ``ours`` (which win, as on the
    aiohttp path)."""
    host = url.host
    authority = f"[{host}]" if ":" in host else host
    if url.port != _DEFAULT_PORTS[url.scheme]:
        authority += f":{url.port}"
    fields = {
        "host": ("Host", authority),
        "user-agent": ("User-Agent", _USER_AGENT),
        "accept": ("Accept", "*/*"),
        "accept-encoding": ("Accept-Encoding", "identity"),
    }
    for name, value in (*custom, *ours.items()):
        fields[name.lower()] = (name, value)
    return request_head("GET", url.path_qs, list(fields.values()))


def connect_failed(host: str, port: int, failure: OSError | None) -> classify.ConnectFailedError:
    """The error of a connection to ``host:port`` whose every address failed, the last with
    ``failure`` (a ``TimeoutError`` if it timed out)."""
    return classify.ConnectFailedError(
        failure.errno if failure is not None else 0,
        f"cannot connect to {host}:{port}: {failure}",
    )


class Answered:
    """A GET a bulk sent whose answer the per-file path takes on (``bulkfetch.py``): the
    connection, and the bytes of the answer read from it. Whoever takes the connection
    (:meth:`take`) owns it; :meth:`close` closes it if nobody did."""

    __slots__ = ("_sock", "raw")

    def __init__(self, sock: socket.socket, raw: bytes) -> None:
        self._sock: socket.socket | None = sock
        self.raw = raw

    def take(self) -> socket.socket:
        sock = self._sock
        if sock is None:
            raise RuntimeError("the answer's connection was taken already")
        self._sock = None
        return sock

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


class _Redirected(Exception):  # noqa: N818 - a signal to hand over, not an error
    """The answer is a redirect: the fallback transport takes the fetch."""


class _Stale(Exception):  # noqa: N818 - a signal to reconnect, not an error
    """A reused connection was closed by the server before it answered."""


class _Answer:
    """One answer being read: its httptools parser and the parser's callbacks, which keep the
    fields of the answer's head (a 1xx answer before it is skipped) and the body bytes parsed
    and not yet taken. Bytes after the end of the answer are a parser error."""

    __slots__ = ("body", "complete", "fields", "head_complete", "informational", "parser")

    def __init__(self) -> None:
        self.fields: list[tuple[str, str]] = []
        self.head_complete = False
        self.informational = False
        self.body: list[bytes] = []
        self.complete = False
        self.parser = httptools.HttpResponseParser(self)

    def on_message_begin(self) -> None:
        if self.complete:
            raise httptools.HttpParserError("the server sent bytes after the end of its answer")
        self.fields = []

    def on_header(self, name: bytes, value: bytes) -> None:
        self.fields.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        self.informational = 100 <= self.parser.get_status_code() < 200
        self.head_complete = not self.informational

    def on_body(self, data: bytes) -> None:
        self.body.append(bytes(data))

    def on_message_complete(self) -> None:
        if self.informational:
            self.informational = False  # the real answer follows
        else:
            self.complete = True

    def take(self) -> bytes:
        """The body bytes parsed since the last call."""
        data = b"".join(self.body)
        self.body.clear()
        return data


def answer_of(data: bytes) -> _Answer:
    """An answer that has parsed ``data``, the first bytes read for it.

    Raises:
        httptools.HttpParserError: they are not the start of an HTTP answer.
    """
    answer = _Answer()
    if data:
        answer.parser.feed_data(data)
    return answer


def head_of(answer: _Answer) -> Head:
    """The head of an answer whose head is complete."""
    parser = answer.parser
    fields: CIMultiDict[str] = CIMultiDict(answer.fields)
    length_text = fields.get("Content-Length")
    chunked = "chunked" in fields.get("Transfer-Encoding", "").lower()
    length = int(length_text) if length_text is not None and not chunked else None
    if parser.get_http_version() != "1.1":
        fields.setdefault("Connection", "close")
    return Head(parser.get_status_code(), fields, length)


class _Connection:
    """One keep-alive connection; ``lent``: a bulk's, handed back (``_answered``)."""

    __slots__ = ("key", "lent", "reusable", "reused", "stream")

    def __init__(self, stream: Stream, key: _Key, *, reused: bool, lent: bool = False) -> None:
        self.stream = stream
        self.key = key
        self.reused = reused
        self.lent = lent
        self.reusable = False


class RawHttpTransport:
    """Fetches http:// and https:// files over raw sockets (see the module rules).

    Args:
        clock: for Retry-After dates.
        fallback: the transport that takes redirected fetches (aiohttp's).
        tls: the cache of SSL contexts (shared with the aiohttp path).
        chunk_size: bytes between two progress reports.
        connect_timeout, read_timeout: seconds; a stalled read is a transient BG_E_TIMEOUT.
        pipe_size: bytes asked for the splice pipe (F_SETPIPE_SZ); the kernel may give less.
        max_idle: idle connections kept per (host, port, SSL context).
        helper: the splice helper for large http:// bodies (None: they move in process); the
            transport closes it in :meth:`aclose`.
    """

    def __init__(
        self,
        clock: Clock,
        fallback: Transport,
        *,
        tls: TlsContexts,
        chunk_size: int,
        connect_timeout: float,
        read_timeout: float,
        pipe_size: int = DEFAULT_PIPE_SIZE,
        max_idle: int = DEFAULT_MAX_IDLE,
        helper: SpliceHelper | None = None,
    ) -> None:
        self._clock = clock
        self._helper = helper
        self._fallback = fallback
        self._tls = tls
        self._chunk = chunk_size
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._pipe_size = pipe_size
        self._max_idle = max_idle
        self._idle: dict[_Key, list[Stream]] = {}
        # Origins (lowered host, port) with a bulk open, and how many: see bulk_opened.
        self._bulk_origins: dict[tuple[str, int], int] = {}

    @staticmethod
    def applies(request: FileRequest, environment: tuple[str | None, ...] | None = None) -> bool:
        """Whether this transport fetches ``request`` exactly as the aiohttp one would, with
        the proxy ``environment`` (``proxy_environment()``, read once per job run by the
        engine; None: read now). A route not decided before for that environment is decided
        with the environment as it is now.

        Decided per file at the cost of a few string operations and dictionary look-ups: the
        route is decided once per (origin, proxy settings, proxy environment)
        (``_direct_origin``), and the URL is parsed once, by ``fetch``."""
        options = request.options
        if request.dynamic or request.ranges is not None or options.credentials:
            return False
        if options.method != "GET" and options.method.upper() != "GET":
            return False
        if options.headers and any(name.lower() in _HOP_HEADERS for name, _ in options.headers):
            return False
        url = request.url
        origin = _origin_of(url)
        if origin is None:
            return False
        if environment is None:
            environment = proxy_environment()
        while True:
            try:
                return _direct_origin(
                    origin,
                    options.proxy_usage,
                    options.proxy_list,
                    options.proxy_bypass,
                    environment,
                )
            except _EnvironmentChanged:
                environment = proxy_environment()

    def bulk_file(
        self, request: FileRequest, environment: tuple[str | None, ...]
    ) -> BulkFile | None:
        """For a file that may go in a bulk (``bulkfetch.py``) — a plain ``http://`` file this
        transport fetches (``applies``) from its start, with nothing learned of it — its host
        and port, the GET ``_fetch`` would send for it and, when its path is plain, its
        origin's :class:`BulkOrigin`, which makes the GET of the origin's next files; None for
        any other file."""
        if request.offset or request.validator is not None or request.ranges is not None:
            return None
        if request.dynamic or not self.applies(request, environment):
            return None
        url = request.url
        try:
            target = _target_of(url)
        except (ValueError, TypeError):
            return None
        if target.scheme != "http":
            return None
        wire = _request_bytes(target, request.options.headers, range_headers(0, None))
        where = (target.host, target.port)
        origin = _origin_of(url)
        made = None
        if origin is not None and url[len(origin) :] == target.path_qs:
            line = b"GET " + target.path_qs.encode("ascii")
            made = BulkOrigin(origin, where, b"GET ", wire[len(line) :])
        return BulkFile(where, wire, made)

    @property
    def connect_timeout(self) -> float:
        return self._connect_timeout

    @property
    def read_timeout(self) -> float:
        return self._read_timeout

    def retune(self, *, chunk_size: int, connect_timeout: float, read_timeout: float) -> None:
        """Use new settings (the engine's were reconfigured) from the next request on; pooled
        connections take them when they are used again."""
        self._chunk = chunk_size
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout

    async def aclose(self) -> None:
        """Close the idle connections."""
        for streams in self._idle.values():
            for stream in streams:
                stream.close()
        self._idle.clear()
        if self._helper is not None:
            self._helper.close()

    async def fetch(
        self, request: FileRequest, sink: Sink, answered: Answered | None = None
    ) -> None:
        """Fetch a file (``Transport.fetch``). With ``answered``, a plain-HTTP file from its
        start whose GET a bulk sent (``bulkfetch.py``): its connection and the bytes of the
        answer read so far; the fetch goes on with them as if it had sent the GET itself."""
        try:
            target = _target_of(request.url)  # the one parse of the URL for this file
        except (ValueError, TypeError):
            # ``applies`` looked at the origin only: aiohttp reports what is wrong with it.
            if answered is not None:  # pragma: no cover - a bulk takes only URLs it parsed
                answered.close()
            await self._fallback.fetch(request, sink)
            return
        try:
            await self._fetch(request, target, sink, answered)
        except _Redirected:
            await self._fallback.fetch(request, sink)
        except TransferError:
            raise
        except TlsSetupError as exc:
            raise classify.from_option_error(exc, url=request.url) from exc
        except (OSError, TimeoutError, httptools.HttpParserError) as exc:
            raise classify.from_network_exception(exc, url=request.url) from exc

    async def _fetch(
        self, request: FileRequest, target: _Target, sink: Sink, answered: Answered | None
    ) -> None:
        url = request.url
        context = None
        if target.scheme == "https":
            context = self._tls.context_for(TlsSettings.of(request.options))
        validator = request.validator
        total = request.bytes_total
        for _ in range(MAX_RESTARTS + 1):
            offset = sink.offset
            if answered is not None:
                conn, head, early = await self._answered(target, answered)
                answered = None
            else:
                ours = range_headers(offset, validator)
                conn, head, early = await self._exchange(
                    target, context, request.options.headers, ours
                )
            try:
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
                    conn.reusable = early.complete and head.content_length is not None

                stream = functools.partial(self._body, conn, head, early, sink, url=url)
                if await follow(answer, sink, stream):
                    return
            finally:
                self._end_exchange(conn, head)
            total, validator = None, None  # the remote changed: ask again from zero
        raise kept_changing(url)

    # -- one request -----------------------------------------------------------------------

    async def _exchange(
        self,
        url: _Target,
        context: ssl.SSLContext | None,
        custom: Sequence[tuple[str, str]],
        ours: dict[str, str],
    ) -> tuple[_Connection, Head, _Answer]:
        """Send a GET with the job's ``custom`` headers and ``ours`` (which win, as on the
        aiohttp path) on a pooled or new connection, and return it with the answer's head and
        the parser state holding the body bytes that came with it. The caller ends the
        exchange with ``_end_exchange``, whatever happens."""
        host = url.host
        port = url.port
        key: _Key = (host.lower(), port, context)
        request = _request_bytes(url, custom, ours)
        conn = self._pooled(key)
        while True:
            if conn is None:
                conn = _Connection(await self._connect(host, port, context), key, reused=False)
            try:
                parser, head = await self._request(conn, request)
            except _Stale:
                conn.stream.close()
                conn = None
                continue
            except BaseException:
                conn.stream.close()
                raise
            break
        return conn, head, parser

    def _end_exchange(self, conn: _Connection, head: Head) -> None:
        """The connection goes back to the pool if the answer's body was read to its exact
        end (``reusable``) and the server keeps it open, and no bulk lent it; otherwise it is
        closed."""
        if (
            conn.reusable
            and not conn.lent
            and head.headers.get("Connection", "").lower() != "close"
        ):
            self._release(conn)
        else:
            conn.stream.close()

    async def _answered(
        self, url: _Target, answered: Answered
    ) -> tuple[_Connection, Head, _Answer]:
        """``_exchange`` for a GET a bulk sent: the answer goes on from the bytes it read."""
        stream = PlainStream(
            answered.take(),
            read_timeout=self._read_timeout,
            chunk_size=self._chunk,
            pipe_size=self._pipe_size,
            helper=self._helper,
        )
        conn = _Connection(stream, (url.host.lower(), url.port, None), reused=False, lent=True)
        try:
            answer = answer_of(answered.raw)
            if answer.head_complete:
                return conn, head_of(answer), answer
            return conn, await self._read_head(conn, answer, got_any=True), answer
        except BaseException:
            stream.close()
            raise

    async def _request(self, conn: _Connection, request: bytes) -> tuple[_Answer, Head]:
        stream = conn.stream
        try:
            await stream.send(request)
        except (BrokenPipeError, ConnectionResetError):
            if conn.reused:
                raise _Stale from None
            raise
        answer = _Answer()
        return answer, await self._read_head(conn, answer, got_any=False)

    async def _read_head(self, conn: _Connection, answer: _Answer, *, got_any: bool) -> Head:
        """Read the rest of the answer's head (``answer`` parsed what came before; ``got_any``:
        something did)."""
        stream = conn.stream
        parser = answer.parser
        while True:
            try:
                chunk = await stream.recv(_HEAD_READ)
            except ConnectionResetError:
                if conn.reused and not got_any:
                    raise _Stale from None
                raise
            if not chunk:
                if conn.reused and not got_any:
                    raise _Stale
                raise classify.closed_before_answer()
            got_any = True
            parser.feed_data(chunk)
            if answer.head_complete:
                return head_of(answer)

    # -- bodies ----------------------------------------------------------------------------

    async def _body(
        self,
        conn: _Connection,
        head: Head,
        answer: _Answer,
        sink: Sink,
        end: int | None,
        url: str,
    ) -> None:
        length = head.content_length
        start = sink.offset
        if length is None:
            await self._framed_body(conn, head, answer, sink, end, url)
            return
        if end is not None and start + length > end:
            raise bad_response(url, "the server sent more bytes than it announced")
        early = answer.take()
        if len(early) > length:  # pragma: no cover - the parser stops at the length
            raise bad_response(url, "the server sent more bytes than it announced")
        if early:
            await sink.write(early)
        rest = length - len(early)
        if rest:
            rest = await conn.stream.pour(sink, rest)
        if end is not None and sink.offset != end:
            raise closed_early(url, sink.offset, end)
        conn.reusable = rest == 0

    async def _framed_body(
        self,
        conn: _Connection,
        head: Head,
        answer: _Answer,
        sink: Sink,
        end: int | None,
        url: str,
    ) -> None:
        """A body without Content-Length (chunked, or to the close), decoded by the parser."""
        chunked = "chunked" in head.headers.get("Transfer-Encoding", "").lower()
        while True:
            data = answer.take()
            if data:
                if end is not None and sink.offset + len(data) > end:
                    raise bad_response(url, "the server sent more bytes than it announced")
                await sink.write(data)
            if answer.complete:
                break
            chunk = await conn.stream.recv(_HEAD_READ)
            if not chunk:
                if chunked:  # a body that ends with the connection has ended; this one has not
                    raise classify.DisconnectedError("the server closed a chunked body early")
                break
            answer.parser.feed_data(chunk)
        if end is not None and sink.offset != end:
            raise closed_early(url, sink.offset, end)

    # -- connections -----------------------------------------------------------------------

    def _pooled(self, key: _Key) -> _Connection | None:
        streams = self._idle.get(key)
        while streams:
            stream = streams.pop()
            if stream.alive():
                # The settings now, if they changed since it was made (``retune``).
                stream.retune(read_timeout=self._read_timeout, chunk_size=self._chunk)
                return _Connection(stream, key, reused=True)
            stream.close()
        return None

    def bulk_opened(self, host: str, port: int) -> None:
        """A bulk opened for ``host:port`` (``bulkfetch.py``): its connections are the
        job's, so while it is open this transport keeps no idle connection there (they would
        take the job past its file concurrency)."""
        key = (host.lower(), port)
        self._bulk_origins[key] = self._bulk_origins.get(key, 0) + 1
        for stream in self._idle.pop((*key, None), []):
            stream.close()

    def bulk_closed(self, host: str, port: int) -> None:
        key = (host.lower(), port)
        left = self._bulk_origins.get(key, 0) - 1
        if left > 0:
            self._bulk_origins[key] = left
        else:
            self._bulk_origins.pop(key, None)

    def _release(self, conn: _Connection) -> None:
        host, port, context = conn.key
        if context is None and (host, port) in self._bulk_origins:
            conn.stream.close()
            return
        streams = self._idle.setdefault(conn.key, [])
        if len(streams) >= self._max_idle:
            conn.stream.close()
            return
        streams.append(conn.stream)

    async def _connect(self, host: str, port: int, context: ssl.SSLContext | None) -> Stream:
        """A new connection to ``host:port``, TLS with ``context`` if it is not None."""
        plain = PlainStream(
            await self._connect_tcp(host, port),
            read_timeout=self._read_timeout,
            chunk_size=self._chunk,
            pipe_size=self._pipe_size,
            helper=self._helper,
        )
        if context is None:
            return plain
        secure = TlsStream(plain, context, host, chunk_size=self._chunk)
        try:
            async with asyncio.timeout(self._connect_timeout):
                await secure.handshake()
        except (ssl.SSLError, TimeoutError):
            secure.close()
            raise
        except OSError as exc:  # reset or closed during the handshake: as aiohttp's connector
            secure.close()
            raise classify.ConnectFailedError(
                exc.errno or 0, f"cannot connect to {host}:{port}: {exc}"
            ) from exc
        except BaseException:
            secure.close()
            raise
        return secure

    async def addresses(self, host: str, port: int) -> list[tuple[int, tuple[str, int]]]:
        """The addresses to connect to for ``host:port`` (resolved within the connect
        timeout unless ``host`` is an IP address).

        Raises:
            OSError (socket.gaierror), TimeoutError: the name did not resolve.
        """
        try:
            ipaddress.ip_address(host)
        except ValueError:
            async with asyncio.timeout(self._connect_timeout):
                infos = await asyncio.get_running_loop().getaddrinfo(
                    host, port, type=socket.SOCK_STREAM
                )
            return [(info[0], info[4][:2]) for info in infos]  # type: ignore[misc]
        return [(socket.AF_INET6 if ":" in host else socket.AF_INET, (host, port))]

    async def _connect_tcp(self, host: str, port: int) -> socket.socket:
        loop = asyncio.get_running_loop()
        addresses = await self.addresses(host, port)
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
        raise connect_failed(host, port, failure)
