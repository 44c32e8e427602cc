"""A real loopback HTTP server that injects faults, for testing bitsd's download engine.

The server is a Starlette app served by uvicorn in its h11 mode.  It serves byte
strings registered with :meth:`FaultServer.add` with full support for ``HEAD``,
``Range`` (single ranges: ``bytes=a-b``, ``bytes=a-`` and ``bytes=-n``),
``If-Range`` and the ``ETag``/``Last-Modified`` validators, and it can be told to
misbehave per path with a :class:`Fault`: answer an error status, cut the TCP
connection mid-body, ignore ranges, stream without ``Content-Length``, stall, or
throttle; redirect (``Fault(status=302, location=...)``).  A path can be protected with
Basic or Digest authentication (:meth:`FaultServer.protect`), and the server can speak HTTPS
(``FaultServer(ssl=context)``, see :mod:`tests.servers.tls`).  Every request is recorded in
:attr:`FaultServer.requests`.

Two ways to run it::

    async with FaultServer() as server:          # in the current event loop
        server.add("/f", b"data")
        ...

    with FaultServer.in_thread() as server:      # in a thread with its own loop
        ...                                      # e.g. code under test in a subprocess

How a connection is cut (``drop_after``): after the allowed body bytes have been
handed to uvicorn, the body iterator raises a private exception; a tiny ASGI
wrapper around the app swallows it and returns without finishing the response.
uvicorn's h11 protocol then logs "ASGI callable returned without completing
response." (ERROR, through :mod:`logging`, never as a Python warning) and closes
the transport: the bytes already written are flushed, then the socket is closed,
so the client sees fewer body bytes than announced and an incomplete payload.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import email.utils
import enum
import hashlib
import hmac
import http
import re
import secrets
import ssl
import threading
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, Final, Literal, Self

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bitsd._uvicorn import Server, tcp_listener
from tests.servers.threads import serve_in_thread

__all__ = ["Fault", "FaultServer", "RequestRecord"]

CHUNK_SIZE: Final = 64 * 1024
"""Largest body chunk handed to uvicorn in one ``http.response.body`` message."""

_STOP_TIMEOUT: Final = 5.0
_START_TIMEOUT: Final = 10.0
_RANGE_RE: Final = re.compile(r"^(\d*)-(\d*)$")


class _Auto(enum.Enum):
    """Sentinel type for "compute this validator automatically"."""

    TOKEN = enum.auto()


_AUTO: Final = _Auto.TOKEN


@dataclass(frozen=True)
class Fault:
    """How the server should misbehave for one path.

    Faults that shape the body (``drop_after``, ``stall_after``, ``rate``) count
    the bytes of the body of *this* response (for a 206, of the range sent).
    """

    status: int | None = None
    """Answer this status instead of serving the resource, with a short text body."""
    retry_after: str | None = None
    """``Retry-After`` header value sent together with ``status``."""
    times: int | None = None
    """Apply the fault to the next N requests of the path only (``None``: forever)."""
    drop_after: int | None = None
    """Send the headers (with the full, correct ``Content-Length``) and only this many
    body bytes, then close the TCP connection without finishing the response."""
    ignore_range: bool = False
    """Ignore ``Range``: always answer 200 with the whole body."""
    no_content_length: bool = False
    """Stream the body chunked without ``Content-Length``; ranged requests get 200."""
    stall_before_headers: float | None = None
    """Sleep this many seconds before sending anything."""
    stall_after: int | None = None
    """After this many body bytes, pause for ``stall_seconds``."""
    stall_seconds: float = 0.0
    """Length of the ``stall_after`` pause, in seconds."""
    rate: int | None = None
    """Throttle the body to about this many bytes per second."""
    no_validators: bool = False
    """Send neither ``ETag`` nor ``Last-Modified`` (so ``If-Range`` never matches)."""
    location: str | None = None
    """``Location`` header sent together with ``status`` (a redirect)."""

    def __post_init__(self) -> None:
        """Reject nonsensical combinations early, in the test that builds them."""
        if self.status is not None and not 200 <= self.status <= 599:
            raise ValueError(f"status must be a final HTTP status, got {self.status}")
        if self.retry_after is not None and self.status is None:
            raise ValueError("retry_after is only sent together with status")
        if self.location is not None and self.status is None:
            raise ValueError("location is only sent together with status")
        if self.times is not None and self.times < 1:
            raise ValueError("times must be >= 1 (or None for forever)")
        for name in ("drop_after", "stall_after", "stall_before_headers"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name} must be >= 0")
        if self.stall_seconds < 0:
            raise ValueError("stall_seconds must be >= 0")
        if self.rate is not None and self.rate < 1:
            raise ValueError("rate must be >= 1 byte per second")


@dataclass(frozen=True)
class RequestRecord:
    """One request as the server saw it, and what it answered.

    Records are appended in arrival order, with ``status == 0`` and
    ``bytes_sent == 0``.  As the response goes out the record is replaced by an
    updated copy: ``status`` is filled in just before the status line is handed to
    the connection and ``bytes_sent`` grows just before each body chunk is, so a
    client never sees more than the log says.  ``status`` stays 0 if nothing was
    sent (e.g. the server stopped during ``stall_before_headers``).
    """

    method: str
    path: str
    range: str | None
    """The ``Range`` request header exactly as received."""
    if_range: str | None
    """The ``If-Range`` request header exactly as received."""
    status: int
    bytes_sent: int
    """Body bytes handed to the connection (0 for HEAD; for a dropped connection
    exactly the bytes sent before the cut)."""
    headers: dict[str, str]
    """All request headers, lower-case names (repeated headers joined with ", ")."""


@dataclass(frozen=True)
class _Guard:
    """Authentication required on one path."""

    schemes: tuple[Literal["basic", "digest", "ntlm"], ...]
    user: str
    password: str
    realm: str
    nonce: str


@dataclass(frozen=True)
class _Resource:
    body: bytes
    etag: str | None
    last_modified: str | None
    weak: bool
    generation: int
    mtime: int
    """Unix time the current ``last_modified`` stands for."""


class _AbortConnection(Exception):  # noqa: N818 - it is a signal, not an error
    """Raised inside a response to make uvicorn drop the connection."""


class _AbortGuard:
    """ASGI wrapper that turns :class:`_AbortConnection` into an unfinished response."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self._app(scope, receive, send)
        except BaseException as exc:
            if not _only_aborts(exc):
                raise
            # Return without finishing the response: uvicorn (h11) closes the
            # transport, so the client gets a truncated body.


def _only_aborts(exc: BaseException) -> bool:
    if isinstance(exc, _AbortConnection):
        return True
    if isinstance(exc, BaseExceptionGroup):
        return all(_only_aborts(inner) for inner in exc.exceptions)
    return False


class _Reply(StreamingResponse):
    """A streaming response that reports its status and body bytes as they go out."""

    def __init__(
        self,
        body: AsyncGenerator[memoryview, None] | None,
        *,
        status_code: int,
        headers: dict[str, str],
        stall: float | None,
        pause: Callable[[float], Awaitable[None]],
        progress: Callable[[int, int], None],
    ) -> None:
        self._body = body if body is not None else _empty()
        super().__init__(self._body, status_code=status_code, headers=headers)
        self._stall = stall
        self._pause = pause
        self._progress = progress

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Send the response (after the optional stall), tracking what went out."""
        status = 0
        sent = 0

        async def tracking_send(message: Message) -> None:
            # Account *before* handing the message to uvicorn: it writes to the
            # socket synchronously, and a client in another thread must never see
            # bytes that the request log does not show yet.
            nonlocal status, sent
            if message["type"] == "http.response.start":
                status = int(message["status"])
                self._progress(status, sent)
            elif message["type"] == "http.response.body" and scope["method"] != "HEAD":
                size = len(message.get("body", b""))
                if size:
                    sent += size
                    self._progress(status, sent)
            await send(message)

        try:
            if self._stall:
                await self._pause(self._stall)
            await super().__call__(scope, receive, tracking_send)
        finally:
            await self._body.aclose()  # finalize now, not whenever the GC gets to it


async def _empty() -> AsyncGenerator[memoryview, None]:
    return
    yield  # pragma: no cover - makes this an async generator


class FaultServer:
    """A loopback HTTP/1.1 server (Starlette on uvicorn/h11) with injectable faults.

    Configuration methods (:meth:`add`, :meth:`change`, :meth:`set_fault`,
    :meth:`clear_fault`) only mutate plain data under a lock, so they may be
    called from any thread, before or while the server runs.
    """

    def __init__(self, *, ssl: ssl.SSLContext | None = None) -> None:
        """Create a stopped server; start it with ``async with`` or :meth:`in_thread`.

        ``ssl``: a server-side context to speak HTTPS with (e.g. from
        :func:`tests.servers.tls.server_context`).
        """
        self._ssl = ssl
        self._guards: dict[str, _Guard] = {}
        # NTLM handshakes in progress, per client connection (host, port).
        self._ntlm: dict[tuple[str, int], Any] = {}
        self._lock = threading.Lock()
        self._resources: dict[str, _Resource] = {}
        self._faults: dict[str, tuple[Fault, int | None]] = {}
        self.requests: list[RequestRecord] = []
        """Every request received, in arrival order."""
        self._port: int | None = None
        self._server: Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing: asyncio.Event | None = None
        # methods=[]: Starlette then routes every method (even BITS_POST) to the
        # endpoint, which answers 405 itself, so that the request is logged too.
        route = Route("/{path:path}", self._endpoint, methods=[])
        self._app = _AbortGuard(Starlette(routes=[route]))

    # ------------------------------------------------------------------ running

    async def __aenter__(self) -> Self:
        """Start serving in the current event loop."""
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """Stop serving; in-flight stalls and throttled bodies are cut short."""
        await self.stop()

    async def start(self) -> None:
        """Bind 127.0.0.1 on a free port and run uvicorn as a task of the current loop."""
        if self._server is not None:
            raise RuntimeError("a FaultServer can only be started once")
        # Nagle off on its connections (tcp_listener says why).
        sock = tcp_listener("127.0.0.1", 0)
        try:
            self._port = sock.getsockname()[1]
            config = uvicorn.Config(
                self._app,
                http="h11",
                ws="none",
                lifespan="off",
                log_level="warning",
                # Do not let uvicorn dictConfig() the process: its records then
                # propagate to the root logger, where pytest captures them.
                log_config=None,
                access_log=False,
                server_header=False,
                timeout_graceful_shutdown=1,
                ssl_context_factory=None if self._ssl is None else self._ssl_factory,
            )
            self._server = Server(config)
            self._closing = asyncio.Event()
            self._task = asyncio.create_task(
                self._server.serve(sockets=[sock]), name=f"FaultServer:{self._port}"
            )
        except BaseException:
            sock.close()
            raise
        deadline = time.monotonic() + _START_TIMEOUT
        while not self._server.started:
            if self._task.done():
                await self._task  # re-raise the startup failure
                raise RuntimeError("uvicorn exited during startup")
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start in time")
            await asyncio.sleep(0.005)

    async def stop(self) -> None:
        """Stop the server promptly, aborting responses that are still stalled."""
        server, task, closing = self._server, self._task, self._closing
        if server is None or task is None or closing is None or task.done():
            return
        closing.set()
        server.request_exit()
        try:
            await asyncio.wait_for(asyncio.shield(task), _STOP_TIMEOUT)
        except TimeoutError:
            server.force_exit = True
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _ssl_factory(
        self, config: uvicorn.Config, default: Callable[[], ssl.SSLContext]
    ) -> ssl.SSLContext:
        assert self._ssl is not None
        return self._ssl

    @classmethod
    @contextlib.contextmanager
    def in_thread(cls) -> Iterator[Self]:
        """Run a server in a daemon thread with its own event loop.

        For tests whose code under test runs elsewhere (another process, or
        blocking code).  Yields once the server accepts connections; stops it
        and joins the thread on exit (:func:`tests.servers.threads.serve_in_thread`).
        """
        with serve_in_thread(cls(), "FaultServer") as server:
            yield server

    # ------------------------------------------------------------ configuration

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` (``https`` with ``ssl``; known once the server is started)."""
        if self._port is None:
            raise RuntimeError("the FaultServer is not started")
        scheme = "http" if self._ssl is None else "https"
        return f"{scheme}://127.0.0.1:{self._port}"

    def url(self, path: str) -> str:
        """The absolute URL of ``path`` on this server."""
        return self.base_url + _norm(path)

    def add(
        self,
        path: str,
        body: bytes,
        *,
        etag: str | Literal[_Auto.TOKEN] | None = _AUTO,
        last_modified: str | Literal[_Auto.TOKEN] | None = _AUTO,
        weak_etag: bool = False,
    ) -> None:
        """Serve ``body`` at ``path`` (replacing whatever was there).

        ``etag`` defaults to a strong tag derived from the content hash and
        ``last_modified`` to the current time as an RFC 7231 date; pass ``None``
        to send no such validator.  An explicit ``etag`` may be given bare or
        quoted.  ``weak_etag`` makes the tag weak (``W/"..."``), which never
        matches ``If-Range``.
        """
        now = int(time.time())
        lm: str | None
        if isinstance(last_modified, _Auto):
            mtime, lm = now, email.utils.formatdate(now, usegmt=True)
        else:
            mtime, lm = _parse_mtime(last_modified, now), last_modified
        if isinstance(etag, _Auto):
            tag: str | None = _auto_etag(body, 0, weak_etag)
        elif etag is None:
            tag = None
        else:
            tag = _quote_etag(etag, weak_etag)
        resource = _Resource(bytes(body), tag, lm, weak_etag, 0, mtime)
        with self._lock:
            self._resources[_norm(path)] = resource

    def change(self, path: str, body: bytes) -> None:
        """Replace the content of ``path``: new body, new ETag, Last-Modified >= 1 s later.

        A validator that was disabled (``None``) in :meth:`add` stays disabled.
        """
        key = _norm(path)
        with self._lock:
            old = self._resources[key]
            generation = old.generation + 1
            mtime = max(int(time.time()), old.mtime + 1)
            self._resources[key] = _Resource(
                body=bytes(body),
                etag=None if old.etag is None else _auto_etag(body, generation, old.weak),
                last_modified=(
                    None
                    if old.last_modified is None
                    else email.utils.formatdate(mtime, usegmt=True)
                ),
                weak=old.weak,
                generation=generation,
                mtime=mtime,
            )

    def set_fault(self, path: str, fault: Fault) -> None:
        """Inject ``fault`` for requests to ``path`` (replacing any previous fault)."""
        with self._lock:
            self._faults[_norm(path)] = (fault, fault.times)

    def protect(
        self,
        path: str,
        account: tuple[str, str],
        *,
        schemes: tuple[Literal["basic", "digest", "ntlm"], ...] = ("basic",),
        realm: str = "bitsd-tests",
    ) -> None:
        """Answer requests to ``path`` without the credentials ``account`` (user, password)
        with 401 and one ``WWW-Authenticate`` challenge per scheme, in the order given
        (Digest: MD5, qop=auth)."""
        user, password = account
        guard = _Guard(schemes, user, password, realm, secrets.token_hex(16))
        with self._lock:
            self._guards[_norm(path)] = guard

    def clear_fault(self, path: str) -> None:
        """Serve ``path`` normally again."""
        with self._lock:
            self._faults.pop(_norm(path), None)

    def requests_for(self, path: str) -> list[RequestRecord]:
        """The recorded requests for ``path``, in arrival order."""
        key = _norm(path)
        with self._lock:
            return [record for record in self.requests if record.path == key]

    # ----------------------------------------------------------------- serving

    async def _endpoint(self, request: Request) -> Response:
        path = request.scope["path"]  # percent-decoded, without the query string
        method = request.method
        headers = request.headers
        provisional = RequestRecord(
            method=method,
            path=path,
            range=headers.get("range"),
            if_range=headers.get("if-range"),
            status=0,
            bytes_sent=0,
            headers={name: ", ".join(headers.getlist(name)) for name in headers},
        )
        with self._lock:
            self.requests.append(provisional)
            resource = self._resources.get(path)
            fault = self._take_fault(path)

        current = provisional

        def progress(status: int, sent: int) -> None:
            nonlocal current
            updated = dataclasses.replace(current, status=status, bytes_sent=sent)
            with self._lock:
                for index in range(len(self.requests) - 1, -1, -1):
                    if self.requests[index] is current:
                        self.requests[index] = updated
                        break
            current = updated

        def reply(
            status: int,
            reply_headers: dict[str, str],
            body: AsyncGenerator[memoryview, None] | None,
        ) -> _Reply:
            return _Reply(
                body,
                status_code=status,
                headers=reply_headers,
                stall=fault.stall_before_headers,
                pause=self._pause,
                progress=progress,
            )

        def text(status: int, extra: dict[str, str] | None = None) -> _Reply:
            payload = b"" if status in (204, 304) else f"{status} {_reason(status)}\n".encode()
            text_headers = {"content-type": "text/plain; charset=utf-8"}
            if status not in (204, 304):
                text_headers["content-length"] = str(len(payload))
            text_headers.update(extra or {})
            body = None if method == "HEAD" or not payload else _once(payload)
            return reply(status, text_headers, body)

        if fault.status is not None:
            extra = {} if fault.retry_after is None else {"retry-after": fault.retry_after}
            if fault.location is not None:
                extra["location"] = fault.location
            return text(fault.status, extra)
        with self._lock:
            guard = self._guards.get(path)
        if guard is not None and "ntlm" in guard.schemes:
            step = self._ntlm_step(request, guard)
            if step is not None:
                challenge = text(401)
                challenge.raw_headers.append((b"www-authenticate", step))
                return challenge
        elif guard is not None and not _authorized(guard, method, headers.get("authorization")):
            challenge = text(401)
            for scheme in guard.schemes:
                challenge.raw_headers.append((b"www-authenticate", _challenge(guard, scheme)))
            return challenge
        if resource is None:
            return text(404)
        if method not in ("GET", "HEAD"):
            return text(405, {"allow": "GET, HEAD"})

        data = resource.body
        total = len(data)
        out: dict[str, str] = {"content-type": "application/octet-stream"}
        if not fault.no_content_length:
            out["accept-ranges"] = "bytes"
        etag = None if fault.no_validators else resource.etag
        last_modified = None if fault.no_validators else resource.last_modified
        if etag is not None:
            out["etag"] = etag
        if last_modified is not None:
            out["last-modified"] = last_modified

        status = 200
        start, stop = 0, total
        range_header = headers.get("range")
        # RFC 9110 §14.2: Range is only defined for GET.
        if (
            method == "GET"
            and range_header is not None
            and not fault.ignore_range
            and not fault.no_content_length
            and _if_range_matches(headers.get("if-range"), etag, last_modified)
        ):
            parsed = _parse_range(range_header, total)
            if parsed == "unsatisfiable":
                return reply(
                    416,
                    {"content-range": f"bytes */{total}", "content-length": "0", **out},
                    None,
                )
            if parsed != "ignore":
                status = 206
                start, stop = parsed
                out["content-range"] = f"bytes {start}-{stop - 1}/{total}"
        if not fault.no_content_length:
            out["content-length"] = str(stop - start)
        body = None if method == "HEAD" else self._body(memoryview(data)[start:stop], fault)
        return reply(status, out, body)

    def _ntlm_step(self, request: Request, guard: _Guard) -> bytes | None:
        """The server side of NTLM (pyspnego, with the user in ``NTLM_USER_FILE``): None when
        this connection has authenticated, else the next challenge to send."""
        client = request.scope.get("client") or ("", 0)
        key = (str(client[0]), int(client[1]))
        header = request.headers.get("authorization", "")
        if not header.lower().startswith("ntlm "):
            return b"NTLM" if self._ntlm.get(key) is not True else None
        import spnego

        context = self._ntlm.get(key)
        if context is None or context is True:
            context = spnego.server(protocol="ntlm")
            self._ntlm[key] = context
        try:
            out = context.step(base64.b64decode(header[5:].strip()))
        except Exception:
            self._ntlm.pop(key, None)
            return b"NTLM"
        if context.complete:
            self._ntlm[key] = True
            return None
        return b"NTLM " + base64.b64encode(out or b"")

    def _take_fault(self, path: str) -> Fault:
        """The fault for this request (consuming one of ``times``); call under the lock."""
        entry = self._faults.get(path)
        if entry is None:
            return _NO_FAULT
        fault, remaining = entry
        if remaining is not None:
            if remaining <= 1:
                del self._faults[path]
            else:
                self._faults[path] = (fault, remaining - 1)
        return fault

    async def _body(self, view: memoryview, fault: Fault) -> AsyncGenerator[memoryview, None]:
        """Yield ``view`` in chunks, applying the body-shaping parts of ``fault``."""
        total = len(view)
        chunk = CHUNK_SIZE if fault.rate is None else max(1, min(CHUNK_SIZE, fault.rate // 10))
        limit = total if fault.drop_after is None else min(total, fault.drop_after)
        stall_at = fault.stall_after if fault.stall_seconds > 0 else None
        loop = asyncio.get_running_loop()
        began = loop.time()
        pos = 0
        while True:
            if stall_at is not None and pos >= stall_at:
                await self._pause(fault.stall_seconds)
                stall_at = None
            if pos >= limit:
                break
            end = min(pos + chunk, limit)
            if stall_at is not None:
                end = min(end, stall_at)
            yield view[pos:end]
            pos = end
            if fault.rate is not None:
                delay = began + pos / fault.rate - loop.time()
                if delay > 0:
                    await self._pause(delay)
        if fault.drop_after is not None:
            raise _AbortConnection

    async def _pause(self, seconds: float) -> None:
        """Sleep, unless the server is stopping: then abort the response."""
        closing = self._closing
        assert closing is not None
        try:
            await asyncio.wait_for(closing.wait(), seconds)
        except TimeoutError:
            return
        raise _AbortConnection


_NO_FAULT: Final = Fault()


async def _once(payload: bytes) -> AsyncGenerator[memoryview, None]:
    yield memoryview(payload)


def _norm(path: str) -> str:
    return path if path.startswith("/") else "/" + path


def _reason(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Injected Fault"


def _auto_etag(body: bytes, generation: int, weak: bool) -> str:
    digest = hashlib.sha256(body).hexdigest()[:24]
    return ('W/"' if weak else '"') + f'{digest}-{generation}"'


def _quote_etag(etag: str, weak: bool) -> str:
    if not etag.startswith(('"', 'W/"')):
        etag = f'"{etag}"'
    if weak and not etag.startswith("W/"):
        etag = "W/" + etag
    return etag


def _parse_mtime(value: str | None, default: int) -> int:
    if value is None:
        return default
    try:
        return int(email.utils.parsedate_to_datetime(value).timestamp())
    except (TypeError, ValueError):
        return default


def _if_range_matches(if_range: str | None, etag: str | None, last_modified: str | None) -> bool:
    """RFC 9110 §13.1.5: strong ETag comparison, or HTTP-date equal to Last-Modified."""
    if if_range is None:
        return True
    value = if_range.strip()
    if value.startswith(('"', "W/")):
        return (
            etag is not None
            and not etag.startswith("W/")
            and not value.startswith("W/")
            and value == etag
        )
    if last_modified is None:
        return False
    try:
        return email.utils.parsedate_to_datetime(value) == email.utils.parsedate_to_datetime(
            last_modified
        )
    except (TypeError, ValueError):
        return value == last_modified


def _challenge(guard: _Guard, scheme: Literal["basic", "digest", "ntlm"]) -> bytes:
    if scheme == "basic":
        return f'Basic realm="{guard.realm}", charset="UTF-8"'.encode()
    if scheme == "ntlm":
        return b"NTLM"
    return (
        f'Digest realm="{guard.realm}", qop="auth", algorithm=MD5, '
        f'nonce="{guard.nonce}", opaque="bitsd"'
    ).encode()


def _authorized(guard: _Guard, method: str, header: str | None) -> bool:
    """Whether an ``Authorization`` header holds the guard's credentials in one of its schemes
    (the server side of RFC 7617 and RFC 7616 with MD5 and qop=auth)."""
    if not header:
        return False
    scheme, _, data = header.partition(" ")
    scheme = scheme.lower()
    if scheme == "basic" and "basic" in guard.schemes:
        expected = base64.b64encode(f"{guard.user}:{guard.password}".encode()).decode()
        return hmac.compare_digest(data.strip(), expected)
    if scheme != "digest" or "digest" not in guard.schemes:
        return False
    params = {
        key.strip().lower(): value.strip().strip('"')
        for key, _, value in (item.partition("=") for item in data.split(","))
    }
    if (params.get("username"), params.get("realm"), params.get("nonce")) != (
        guard.user,
        guard.realm,
        guard.nonce,
    ):
        return False

    def md5(text: str) -> str:
        return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()

    ha1 = md5(f"{guard.user}:{guard.realm}:{guard.password}")
    ha2 = md5(f"{method}:{params.get('uri', '')}")
    if params.get("qop") == "auth":
        expected = md5(
            f"{ha1}:{guard.nonce}:{params.get('nc', '')}:{params.get('cnonce', '')}:auth:{ha2}"
        )
    else:
        expected = md5(f"{ha1}:{guard.nonce}:{ha2}")
    return hmac.compare_digest(params.get("response", ""), expected)


def _parse_range(header: str, total: int) -> tuple[int, int] | Literal["ignore", "unsatisfiable"]:
    """Parse a single byte range into ``(start, stop)`` (stop exclusive).

    Malformed and multi-range headers are ignored (the whole body is sent with
    200, which RFC 9110 allows); a range starting at or past the end is
    unsatisfiable.
    """
    unit, sep, spec = header.partition("=")
    if not sep or unit.strip().lower() != "bytes" or "," in spec:
        return "ignore"
    match = _RANGE_RE.match(spec.strip())
    if match is None:
        return "ignore"
    first, last = match.groups()
    if not first:
        if not last:
            return "ignore"
        suffix = int(last)
        if suffix == 0 or total == 0:
            return "unsatisfiable"
        return max(0, total - suffix), total
    start = int(first)
    if last and int(last) < start:
        return "ignore"
    if start >= total:
        return "unsatisfiable"
    stop = total if not last else min(int(last) + 1, total)
    return start, stop
