"""The BITS upload server as an ASGI app (Starlette), for uvicorn with ``http="h11"``.

Rules (docs/upload-server.md):
- ``BITS_POST`` carries the upload protocol. Before anything else a packet is checked: a header
  value over 4 KB, an unknown or missing ``BITS-Packet-Type`` → 400; no ``Content-Length`` → 411;
  a body on anything but a Fragment → 400 (all ``E_INVALIDARG``, context 0x5).
- Ping: 200. Create-Session: the destination is checked (400 malformed or a folder, 403 the
  server's own names or a symlink out of the root, 409 exists), a session is created on disk,
  the Ack names it. Fragment, Close-Session and Cancel-Session need a known, unexpired session
  created for the same URL path, else 500 ``BG_E_SESSION_NOT_FOUND``.
- Fragment (``protocol.place``): a gap → 416; too large a body → 413; a total over
  ``max_upload_size`` on the first fragment → 500 ``BG_E_TOO_LARGE`` before a byte is written;
  a total that changes → 400. The Ack always says the next offset expected.
- The fragment that completes the upload: in upload-reply mode the server application is
  notified (``notify``) before the Ack is sent; its success is stored and every later final Ack
  replays it (with ``BITS-Reply-URL``) without notifying again; its failure is the Ack's error,
  context 0x7, and the next final fragment notifies again.
- Close-Session on a complete upload places the file at its destination atomically
  (``paths.Root.place``; in upload-reply mode only if the application asked for it) and leaves a
  tombstone, so a repeated Close gets 200 again. Close-Session before the upload is complete
  discards it (400), except that a session that never got a fragment closes as an empty file.
  Cancel-Session deletes the data and the reply (200, also when repeated or after a Close).
- The reply is served by GET/HEAD (ranges too) at ``BITS-Reply-URL``, the relative URL
  ``.bits-replies/<GUID>`` next to the upload URL, until Close, Cancel or the timeout. Any
  other method or path → 405 (this server does not serve downloads).
- Errors are turned into Acks in one place (:meth:`UploadServer._bits_post`): a
  ``PacketError`` as it says, ENOSPC → 500 with the spec's disk-full code, another OSError → 500
  with its HRESULT, anything else → 500 ``E_FAIL`` (logged with its traceback).
- Expired sessions are swept at start-up and then periodically (lifespan), and whenever a
  request finds a sweep due (so a mounted app, whose lifespan may not run, sweeps too).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import shutil
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Final
from urllib.parse import quote, urljoin, urlsplit

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.types import Receive, Scope, Send

from bitsd import codes
from bitsd._clock import Clock, SystemClock
from bitsd.daemon import logs
from bitsd.server.config import (
    DEFAULT_MAX_FRAGMENT_SIZE,
    DEFAULT_SESSION_TIMEOUT,
    NOTIFY_TIMEOUT,
    NotifyType,
    ServerConfig,
)
from bitsd.server.notify import Notification, notify
from bitsd.server.paths import (
    RESERVED_PREFIX,
    DestinationExists,
    ForbiddenPath,
    InvalidPath,
    PathConflict,
    PathError,
    Root,
    route_segments,
)
from bitsd.server.protocol import (
    ACCEPT_ENCODING,
    SPEC_DISK_FULL,
    Ack,
    ErrorContext,
    PacketError,
    PacketType,
    choose_protocol,
    is_transient,
    new_session_id,
    packet_type,
    parse_content_range,
    parse_session_id,
    place,
)
from bitsd.server.sessions import ReplyInfo, SessionState, SessionStatus, SessionStore

__all__ = ["BITS_POST", "REPLIES_SEGMENT", "UploadServer", "make_app"]

log = logging.getLogger("bitsd.server")

BITS_POST: Final = "BITS_POST"
# The folder segment of reply URLs, next to the upload URL.
REPLIES_SEGMENT: Final = RESERVED_PREFIX + "replies"
# Longest header value accepted (MC-BUP note <2>: a Windows server's maximum).
MAX_HEADER_VALUE: Final = 4096
# Seconds a fragment's body may stall before the server gives up on it (the client's own
# send timer is 2 minutes, MC-BUP §3.1.2).
BODY_IDLE_TIMEOUT: Final = 120.0
# Seconds between sweeps at most (IIS's cleanup task runs every 12 hours; we sweep more often
# and at least twice per session timeout).
_SWEEP_INTERVAL_MAX: Final = 3600.0
_SWEEP_INTERVAL_MIN: Final = 1.0
_ERROR_FILE_NOT_FOUND: Final = 2


def make_app(
    root: str | os.PathLike[str],
    *,
    notify_url: str | None = None,
    notify_type: NotifyType | str = NotifyType.BY_REFERENCE,
    max_upload_size: int | None = None,
    session_timeout: float = DEFAULT_SESSION_TIMEOUT,
    max_fragment_size: int = DEFAULT_MAX_FRAGMENT_SIZE,
    allow_overwrites: bool = False,
    notify_timeout: float = NOTIFY_TIMEOUT,
    clock: Clock | None = None,
) -> Starlette:
    """The upload server as an ASGI app, to serve with uvicorn (``http="h11"``) or to mount in
    another Starlette app (``Mount("/uploads", app=make_app(...))``).

    Args:
        root: where uploads land (created if missing).
        notify_url, notify_type, max_upload_size, session_timeout, max_fragment_size,
            allow_overwrites, notify_timeout: see :class:`~bitsd.server.config.ServerConfig`.
        clock: the time source (tests inject a fake one).

    Raises:
        ValueError: a setting out of range.
    """
    config = ServerConfig(
        Path(root),
        notify_url=notify_url,
        notify_type=NotifyType(notify_type),
        max_upload_size=max_upload_size,
        session_timeout=session_timeout,
        max_fragment_size=max_fragment_size,
        allow_overwrites=allow_overwrites,
        notify_timeout=notify_timeout,
    )
    return UploadServer(config, clock=clock).app


class UploadServer:
    """One upload server: its config, its sessions, and its ASGI app (:attr:`app`).

    Args:
        config: what it does.
        clock: the time source; ``wall()`` dates sessions, ``monotonic()`` paces sweeps.
    """

    def __init__(self, config: ServerConfig, *, clock: Clock | None = None) -> None:
        self.config = config
        self.clock: Clock = clock or SystemClock()
        config.root.mkdir(parents=True, exist_ok=True)
        self.root = Root(config.root)
        self.store = SessionStore(self.root.path)
        timeout = config.session_timeout
        self._sweep_interval = min(_SWEEP_INTERVAL_MAX, max(_SWEEP_INTERVAL_MIN, timeout / 2))
        self._next_sweep = self.clock.monotonic() + self._sweep_interval
        self._sweeping: asyncio.Task[int] | None = None
        # No routes: every request, whatever its method and target (even one Starlette's path
        # patterns would not match, like an absolute-form target), goes to one handler.
        self.app = Starlette(lifespan=self._lifespan)
        self.app.router.default = self._asgi
        self.app.state.upload_server = self

    # -- sweeping --------------------------------------------------------------------------

    async def sweep(self) -> int:
        """Delete expired sessions and garbage folders now; the number of sessions deleted."""
        sessions, garbage = self.store.listing()
        for path in garbage:
            await asyncio.to_thread(shutil.rmtree, path, True)
            logs.event(log, "session.garbage", folder=path)
        removed = 0
        for sid in sessions:
            lock = self.store.lock(sid)
            if lock.locked():
                continue  # in use, so not idle
            async with lock:
                state = self.store.load(sid)
                if state is None or self._expired(state):
                    await asyncio.to_thread(self.store.delete, sid)
                    removed += 1
                    logs.event(log, "session.expired", session=sid)
        return removed

    def _maybe_sweep(self) -> None:
        now = self.clock.monotonic()
        if now < self._next_sweep or (self._sweeping is not None and not self._sweeping.done()):
            return
        self._next_sweep = now + self._sweep_interval
        self._sweeping = asyncio.create_task(self._sweep_logged(), name="bitsd-upload-sweep")

    async def _sweep_logged(self) -> int:
        try:
            return await self.sweep()
        except Exception:
            logs.event(log, "sweep.failed", level=logging.ERROR, exc_info=True)
            return 0

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        async def sweeper() -> None:
            while True:
                await self._sweep_logged()
                self._next_sweep = self.clock.monotonic() + self._sweep_interval
                await self.clock.sleep_until(self._next_sweep)

        task = asyncio.create_task(sweeper(), name="bitsd-upload-sweeper")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            if self._sweeping is not None:
                self._sweeping.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._sweeping

    def _expired(self, state: SessionState) -> bool:
        return self.clock.wall() - state.touched > self.config.session_timeout

    # -- dispatch --------------------------------------------------------------------------

    async def _asgi(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        response = await self._endpoint(Request(scope, receive))
        await response(scope, receive, send)

    async def _endpoint(self, request: Request) -> Response:
        self._maybe_sweep()
        if request.method == BITS_POST:
            return await self._bits_post(request)
        if request.method in ("GET", "HEAD"):
            return await self._get_reply(request)
        return Response(status_code=405, headers={"Allow": BITS_POST})

    async def _bits_post(self, request: Request) -> Response:
        sent_id = request.headers.get("bits-session-id")
        echo = sent_id.strip() if parse_session_id(sent_id) is not None and sent_id else None
        kind: PacketType | None = None
        close = False
        try:
            kind = self._check(request)
            if kind is PacketType.PING:
                ack = Ack()
            elif kind is PacketType.CREATE_SESSION:
                ack = await self._create(request)
            elif kind is PacketType.FRAGMENT:
                ack = replace(await self._fragment(request, sent_id), session_id=echo)
            elif kind is PacketType.CLOSE_SESSION:
                ack = replace(await self._close(request, sent_id), session_id=echo)
            else:
                ack = replace(await self._cancel(request, sent_id), session_id=echo)
        except PacketError as exc:
            found = exc.code != codes.BG_E_SESSION_NOT_FOUND
            scoped = kind not in (None, PacketType.PING, PacketType.CREATE_SESSION)
            ack = exc.ack(echo if found and scoped else None)
            close = isinstance(exc, _TruncatedBodyError)
            logs.event(
                log,
                "packet.refused",
                level=logging.WARNING if exc.status >= 500 else logging.INFO,
                packet=kind or request.headers.get("bits-packet-type"),
                session=echo,
                status=exc.status,
                code=f"0x{exc.code:08X}",
                context=int(exc.context),
                reason=exc.reason,
            )
        except OSError as exc:
            code = (
                SPEC_DISK_FULL
                if exc.errno == errno.ENOSPC
                else codes.hresult_from_errno(exc.errno or 0)
            )
            ack = Ack(status=500, code=code)
            logs.event(log, "packet.failed", level=logging.ERROR, packet=kind, exc_info=True)
        except Exception:
            ack = Ack(status=500, code=codes.E_FAIL)
            logs.event(log, "packet.failed", level=logging.ERROR, packet=kind, exc_info=True)
        if _left_waiting_for_100_continue(request):
            close = True  # it may never send the body we did not ask for: start afresh
        return _AckResponse(ack, close=close)

    def _check(self, request: Request) -> PacketType:
        for name, value in request.headers.items():
            if len(value) > MAX_HEADER_VALUE:
                raise PacketError(400, codes.E_INVALIDARG, f"the {name} header is over 4 KB")
        kind = packet_type(request.headers.get("bits-packet-type"))
        if kind is None:
            raise PacketError(400, codes.E_INVALIDARG, "BITS-Packet-Type is missing or unknown")
        length = request.headers.get("content-length")
        if length is None:
            raise PacketError(411, codes.E_INVALIDARG, "Content-Length is missing")
        if kind is not PacketType.FRAGMENT and length.strip() != "0":
            raise PacketError(400, codes.E_INVALIDARG, f"a {kind} packet must have no body")
        return kind

    # -- packets ---------------------------------------------------------------------------

    async def _create(self, request: Request) -> Ack:
        protocol = choose_protocol(request.headers.get("bits-supported-protocols"))
        if protocol is None:
            raise PacketError(
                400, codes.E_INVALIDARG, "BITS-Supported-Protocols offers no protocol we speak"
            )
        try:
            segments = _segments(request)
            self.root.inspect(segments, overwrite=self.config.allow_overwrites)
        except PathError as exc:
            raise _path_error(exc) from None
        now = self.clock.wall()
        sid = new_session_id()
        state = SessionState(
            id=sid, segments=segments, url=_original_url(request), created=now, touched=now
        )
        self.store.create(state)
        logs.event(log, "session.created", session=sid, path="/".join(segments))
        return Ack(
            session_id=sid,
            extra=(("BITS-Protocol", protocol), ("Accept-Encoding", ACCEPT_ENCODING)),
        )

    async def _fragment(self, request: Request, sent_id: str | None) -> Ack:
        sid = _session_id(sent_id)
        fragment = parse_content_range(request.headers.get("content-range"))
        length = int(request.headers["content-length"])
        if length != fragment.length:
            raise PacketError(
                400, codes.E_INVALIDARG, "Content-Length does not match the Content-Range"
            )
        encoding = request.headers.get("content-encoding", "identity").strip().lower()
        if encoding != "identity":
            raise PacketError(400, codes.E_INVALIDARG, f"Content-Encoding {encoding} is not used")
        async with self.store.lock(sid):
            state = await self._live(request, sid)
            if state.status is not SessionStatus.OPEN:
                raise _not_found(f"the session is {state.status}")
            received = self.store.received(sid)
            if length > self.config.max_fragment_size:
                raise PacketError(
                    413, codes.http_error(413), "the fragment is too large", received=received
                )
            limit = self.config.max_upload_size
            if state.total is None:
                if limit is not None and fragment.total > limit:
                    raise PacketError(
                        500,
                        codes.BG_E_TOO_LARGE,
                        f"the upload ({fragment.total} bytes) is over the limit ({limit})",
                        received=received,
                    )
                state = replace(state, total=fragment.total)
            elif fragment.total != state.total:
                raise PacketError(
                    400,
                    codes.E_INVALIDARG,
                    f"the total changed from {state.total} to {fragment.total}",
                    received=received,
                )
            placement = place(received, fragment)
            if not placement.in_sync:
                raise PacketError(
                    416,
                    0,
                    f"a gap: the fragment starts at {fragment.first}, {received} expected",
                    received=received,
                )
            before = received
            if placement.write:
                received += await self._receive(
                    request, sid, received, placement.skip, placement.write
                )
            state = replace(state, touched=self.clock.wall())
            self.store.save(state)
            if received < before + placement.write:
                raise _TruncatedBodyError(received)
            logs.event(
                log,
                "fragment",
                level=logging.DEBUG,
                session=sid,
                range=f"{fragment.first}-{fragment.last}/{fragment.total}",
                received=received,
            )
            if received != state.total:
                return Ack(received=received)
            if before != received:
                logs.event(log, "upload.complete", session=sid, size=received)
            return await self._final(state, received)

    async def _receive(
        self, request: Request, sid: str, offset: int, skip: int, remaining: int
    ) -> int:
        """Write the body's bytes after the first ``skip`` ones at ``offset``, up to
        ``remaining``; the number written (fewer if the body stopped).

        Each chunk uvicorn hands over (at most 64 KiB) is written at once from the event loop:
        a page-cache write of that size takes microseconds, less than a hand-off to a thread.
        """
        fd = os.open(self.store.request_path(sid), os.O_WRONLY | os.O_CLOEXEC)
        written = 0
        try:
            while remaining > 0:
                try:
                    async with asyncio.timeout(BODY_IDLE_TIMEOUT):
                        message = await request.receive()
                except TimeoutError:
                    break
                if message["type"] != "http.request":
                    break  # http.disconnect
                chunk = memoryview(message.get("body", b""))
                if skip:
                    dropped = min(skip, len(chunk))
                    chunk = chunk[dropped:]
                    skip -= dropped
                if chunk:
                    chunk = chunk[:remaining]
                    _pwrite_all(fd, chunk, offset + written)
                    written += len(chunk)
                    remaining -= len(chunk)
                if not message.get("more_body", False):
                    request.state.body_read = True
                    break
        finally:
            os.close(fd)
        return written

    async def _final(self, state: SessionState, total: int) -> Ack:
        """The Ack of a fragment that leaves the upload complete."""
        config = self.config
        if config.notify_url is None:
            return Ack(received=total)
        if state.reply is not None:
            return Ack(received=total, reply_url=state.reply.url)
        target = urljoin(state.url, config.notify_url)
        query = urlsplit(state.url).query
        if query:
            target += ("&" if "?" in target else "?") + query
        outcome = await notify(
            Notification(
                url=target,
                original_url=state.url,
                request_file=self.store.request_path(state.id),
                reply_file=self.store.reply_path(state.id),
                notify_type=config.notify_type,
                timeout=config.notify_timeout,
            )
        )
        if not outcome.ok:
            logs.event(
                log,
                "notify.failed",
                session=state.id,
                url=target,
                status=outcome.status,
                transient=is_transient(outcome.status),
                detail=outcome.detail,
            )
            raise PacketError(
                outcome.status,
                outcome.code,
                f"the server application failed: {outcome.detail}",
                context=ErrorContext.REMOTE_APPLICATION,
                received=total,
            )
        reply = ReplyInfo(
            url=outcome.static_url or f"{REPLIES_SEGMENT}/{state.id[1:-1]}",
            static=outcome.static_url is not None,
            copy_to_destination=outcome.copy_to_destination,
        )
        self.store.save(replace(state, reply=reply, touched=self.clock.wall()))
        logs.event(log, "notify.ok", session=state.id, url=target, reply=reply.url)
        return Ack(received=total, reply_url=reply.url)

    async def _close(self, request: Request, sent_id: str | None) -> Ack:
        sid = _session_id(sent_id)
        async with self.store.lock(sid):
            state = await self._live(request, sid)
            if state.status is SessionStatus.CLOSED:
                return Ack()
            if state.status is SessionStatus.CANCELLED:
                raise _not_found("the session was cancelled")
            received = self.store.received(sid)
            total = state.total
            if total is None and received == 0 and self.config.notify_url is None:
                total = 0  # no fragment at all: an empty file
            if total is None or received < total:
                await asyncio.to_thread(self.store.delete, sid)
                logs.event(log, "session.discarded", session=sid, received=received, total=total)
                raise PacketError(
                    400,
                    codes.E_INVALIDARG,
                    "Close-Session before the upload was complete: the upload is discarded",
                )
            reply = state.reply
            destination = None
            if self.config.notify_url is None or (reply is not None and reply.copy_to_destination):
                try:
                    destination = await asyncio.to_thread(
                        self.root.place,
                        self.store.request_path(sid),
                        state.segments,
                        overwrite=self.config.allow_overwrites,
                    )
                except PathError as exc:
                    raise _path_error(exc) from None
                except FileNotFoundError:
                    raise PacketError(
                        404,
                        codes.HRESULT_FROM_WIN32(_ERROR_FILE_NOT_FOUND),
                        "the uploaded data is gone",
                    ) from None
            self.store.end(state, SessionStatus.CLOSED, self.clock.wall())
            logs.event(log, "session.closed", session=sid, file=destination)
            return Ack()

    async def _cancel(self, request: Request, sent_id: str | None) -> Ack:
        sid = _session_id(sent_id)
        async with self.store.lock(sid):
            state = await self._live(request, sid)
            if state.status is SessionStatus.OPEN:
                await asyncio.to_thread(
                    self.store.end, state, SessionStatus.CANCELLED, self.clock.wall()
                )
                logs.event(log, "session.cancelled", session=sid)
            return Ack()

    async def _live(self, request: Request, sid: str) -> SessionState:
        """The session ``sid`` (lock held), if it exists, has not expired, and belongs to the
        request's URL path."""
        state = self.store.load(sid)
        if state is None:
            raise _not_found("no such session")
        if self._expired(state):
            await asyncio.to_thread(self.store.delete, sid)
            logs.event(log, "session.expired", session=sid)
            raise _not_found("the session expired")
        try:
            segments = _segments(request)
        except InvalidPath as exc:
            raise _path_error(exc) from None
        if segments != state.segments:
            raise _not_found("the session belongs to another URL")
        return state

    # -- the reply -------------------------------------------------------------------------

    async def _get_reply(self, request: Request) -> Response:
        try:
            segments = _segments(request)
        except InvalidPath:
            return Response(status_code=404)
        if len(segments) < 2 or segments[-2].lower() != REPLIES_SEGMENT:
            return Response(status_code=405, headers={"Allow": BITS_POST})
        sid = parse_session_id(segments[-1])
        if sid is None:
            return Response(status_code=404)
        async with self.store.lock(sid):
            state = self.store.load(sid)
            if (
                state is None
                or self._expired(state)
                or state.status is not SessionStatus.OPEN
                or state.reply is None
                or state.reply.static
                or state.segments[:-1] != segments[:-2]
            ):
                return Response(status_code=404)
            path = self.store.reply_path(sid)
            if not path.is_file():
                return Response(status_code=404)
            self.store.save(replace(state, touched=self.clock.wall()))
        logs.event(
            log, "reply.get", level=logging.DEBUG, session=sid, range=request.headers.get("range")
        )
        return FileResponse(
            path, media_type="application/octet-stream", headers={"Cache-Control": "no-store"}
        )


class _AckResponse(Response):
    """An Ack on the wire, its header names in the case IIS uses."""

    def __init__(self, ack: Ack, *, close: bool = False) -> None:
        super().__init__(status_code=ack.status)
        headers = ack.headers()
        if close:
            headers.append(("Connection", "close"))
        self.raw_headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers]


class _TruncatedBodyError(PacketError):
    """The fragment's body stopped before its Content-Length (the client went away or stalled);
    what arrived is kept."""

    def __init__(self, received: int) -> None:
        super().__init__(
            400, codes.E_INVALIDARG, "the fragment's body stopped early", received=received
        )


def _left_waiting_for_100_continue(request: Request) -> bool:
    """Whether the client asked for ``100 Continue`` before a body that was never read."""
    if request.headers.get("expect", "").strip().lower() != "100-continue":
        return False
    if getattr(request.state, "body_read", False):
        return False
    return request.headers.get("content-length", "0").strip() != "0"


def _not_found(reason: str) -> PacketError:
    return PacketError(500, codes.BG_E_SESSION_NOT_FOUND, reason)


def _session_id(sent: str | None) -> str:
    if sent is None:
        raise PacketError(400, codes.E_INVALIDARG, "BITS-Session-Id is missing")
    sid = parse_session_id(sent)
    if sid is None:
        raise _not_found(f"{sent!r} is not a session id of this server")
    return sid


def _segments(request: Request) -> tuple[str, ...]:
    scope = request.scope
    raw = scope.get("raw_path") or quote(scope["path"]).encode("ascii")
    return route_segments(raw, scope.get("root_path", ""))


def _path_error(exc: PathError) -> PacketError:
    if isinstance(exc, InvalidPath):
        return PacketError(400, codes.E_INVALIDARG, str(exc))
    if isinstance(exc, ForbiddenPath):
        return PacketError(403, codes.E_ACCESSDENIED, str(exc))
    if isinstance(exc, DestinationExists):
        return PacketError(409, codes.E_ACCESSDENIED, f"{exc}; overwriting is not allowed")
    if isinstance(exc, PathConflict):
        return PacketError(409, codes.E_ACCESSDENIED, str(exc))
    return PacketError(400, codes.E_INVALIDARG, str(exc))


def _original_url(request: Request) -> str:
    """The upload URL as the client sent it, absolute."""
    scope = request.scope
    raw: bytes = scope.get("raw_path") or quote(scope["path"]).encode("ascii")
    text = raw.decode("latin-1")
    if not text.startswith("/"):
        return text  # absolute-form already
    host = request.headers.get("host")
    if not host:
        server = scope.get("server") or ("localhost", None)
        host = server[0] if server[1] is None else f"{server[0]}:{server[1]}"
    url = f"{scope.get('scheme', 'http')}://{host}{text}"
    query: bytes = scope.get("query_string", b"")
    return f"{url}?{query.decode('latin-1')}" if query else url


def _pwrite_all(fd: int, view: memoryview, offset: int) -> None:
    while view:
        n = os.pwrite(fd, view, offset)
        view = view[n:]
        offset += n
