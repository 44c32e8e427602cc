"""A small conforming BITS upload server ([MC-BUP]) that injects faults, for testing bitsd's
upload client. A test server, not the product (``bitsd.server`` is the product).

It is a Starlette app served by uvicorn in its h11 mode (h11 accepts the ``BITS_POST``
method). It speaks the protocol as bits-upload-protocol §7 recommends for a server: packet
types compared case-insensitively, Acks with ``Content-Length: 0``, braced upper-case GUID
session ids, fragments in order (a gap or a duplicate gets 416 with the server's offset, an
overlap is accepted for its new bytes), ``BITS-Error-Code`` / ``BITS-Error-Context`` on
errors, 500 + ``0x8020001F`` for an unknown session, the file stored at its path only on
Close-Session. Like IIS 6 it leaves ``BITS-Session-Id`` out of the Acks of Ping, Fragment and
Close unless :attr:`BitsUploadServer.echo_session_id` is set.

Upload-reply: with :attr:`BitsUploadServer.reply` set, the "server application" gets the file
when its last byte arrives and replies with those bytes; the final Ack carries
``BITS-Reply-URL`` (relative and backslashed as IIS sends it, absolute, empty or absent per
:attr:`reply_url_style`) and the reply is served there (GET, HEAD, single ranges) until the
session is closed or cancelled. The final Ack is cached and replayed for a repeated last
fragment.

Faults are plain attributes that tests set before or during an upload (see
:class:`BitsUploadServer`). A cut connection (``drop_*``, ``lose_acks``) aborts the TCP
transport under uvicorn; uvicorn then logs "ASGI callable returned without starting
response." (through :mod:`logging`).

Every packet is recorded in :attr:`BitsUploadServer.packets`, every reply GET in
:attr:`BitsUploadServer.reply_requests`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import re
import time
import uuid
from collections.abc import Iterator
from typing import Any, Final, Literal, Self

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from bitsd._uvicorn import Server, tcp_listener
from tests.servers.threads import serve_in_thread

__all__ = ["PROTOCOL_GUID", "BitsUploadServer", "Packet", "ServerSession"]

PROTOCOL_GUID: Final = "{7df0354d-249b-430f-820d-3d2a9bef4931}"
_SESSION_NOT_FOUND: Final = 0x8020001F
_INVALIDARG: Final = 0x80070057
_CONTEXT_SERVER: Final = 0x5
_CONTEXT_APPLICATION: Final = 0x7
_RANGE: Final = re.compile(r"^\s*bytes\s+(?:(\d+)-(\d+)|\*)/(\d+)\s*$", re.IGNORECASE)
_REPLY_PATH: Final = re.compile(r"BITS-Sessions/Replies/(\{[0-9A-F-]+\})/responsefile\.bin$")
_START_TIMEOUT: Final = 10.0


@dataclasses.dataclass(frozen=True)
class Packet:
    """One ``BITS_POST`` as the server saw it, and the status it answered (0: cut)."""

    type: str
    path: str
    host: str
    session_id: str | None
    content_range: str | None
    body_bytes: int
    status: int
    headers: dict[str, str]


@dataclasses.dataclass
class ServerSession:
    """The server's state of one session."""

    id: str
    path: str
    total: int | None = None
    data: bytearray = dataclasses.field(default_factory=bytearray)
    final_ack: dict[str, str] | None = None
    reply: bytes | None = None

    @property
    def received(self) -> int:
        return len(self.data)


class _Cut(Exception):  # noqa: N818 - a signal, not an error
    """Raised to end a request after its connection was aborted."""


class _CutGuard:
    """Swallows :class:`_Cut`: the app returns without a response on a dead connection."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self._app(scope, receive, send)
        except BaseException as exc:
            if not _only_cuts(exc):
                raise


def _only_cuts(exc: BaseException) -> bool:
    if isinstance(exc, _Cut):
        return True
    if isinstance(exc, BaseExceptionGroup):
        return all(_only_cuts(inner) for inner in exc.exceptions)
    return False


class BitsUploadServer:
    """A loopback BITS upload server with injectable faults (attributes, settable any time).

    Faults:
        max_fragment: fragments with more bytes get 413 (after their body was read).
        drop_fragment_after: cut the connection once this many body bytes of a fragment
            arrived, ``drop_times`` times; ``keep_partial`` keeps the bytes that arrived;
            ``drop_from`` limits the cuts to fragments that start at or after that offset.
        lose_acks: process this many fragments fully, then cut instead of sending the Ack.
        accept_at_most: take at most this many new bytes of each fragment (and say so in
            ``BITS-Received-Content-Range``).
        rewind_to: answer the next fragment 416 with this offset, as a server restored from
            an older copy would (bytes after it are forgotten).
        forget_session_after: forget the session once it holds at least this many bytes
            (the next packet gets 500 + 0x8020001F); once.
        forget_on_close: forget the session when its first Close-Session arrives.
        host_id, host_fallback: sent with the Ack of Create-Session.
        create_statuses, close_statuses, cancel_statuses: answers to the next packets of that
            type (popped one per packet; then the normal answer).
        no_protocol: answer Create-Session 200 without ``BITS-Protocol`` (not a BITS server).
        app_error: ``(status, code, times)``: the server application fails the final
            fragment (context 0x7) ``times`` times.
        reply: the application's reply (None: no application, no Reply-URL).
        reply_url_style: "relative" (IIS's backslashed form), "absolute", "empty", "none".
        reply_url_value: a ``BITS-Reply-URL`` sent as is instead (a broken server's answer).
        reply_get_statuses: answers to the next reply GETs.
        echo_session_id: put ``BITS-Session-Id`` in every session Ack.
    """

    def __init__(self) -> None:
        self.sessions: dict[str, ServerSession] = {}
        self.files: dict[str, bytes] = {}
        """Uploads committed by Close-Session, by URL path."""
        self.posted: list[tuple[str, bytes]] = []
        """What the server application received: (path, bytes), one per notification."""
        self.packets: list[Packet] = []
        self.reply_requests: list[tuple[str, str | None, int]] = []
        """Reply GETs and HEADs: (method, Range header, status)."""
        self.max_fragment: int | None = None
        self.drop_fragment_after: int | None = None
        self.drop_times = 1
        self.drop_from = 0
        self.keep_partial = False
        self.lose_acks = 0
        self.accept_at_most: int | None = None
        self.rewind_to: int | None = None
        self.forget_session_after: int | None = None
        self.forget_on_close = False
        self.host_id: str | None = None
        self.host_fallback: int | None = None
        self.create_statuses: list[int] = []
        self.close_statuses: list[int] = []
        self.cancel_statuses: list[int] = []
        self.no_protocol = False
        self.app_error: tuple[int, int, int] | None = None
        self.reply: bytes | None = None
        self.reply_url_style: Literal["relative", "absolute", "empty", "none"] = "relative"
        self.reply_url_value: str | None = None
        self.reply_get_statuses: list[int] = []
        self.echo_session_id = False
        self._port: int | None = None
        self._server: Server | None = None
        self._task: asyncio.Task[None] | None = None
        route = Route("/{path:path}", self._endpoint, methods=[])
        self._app = _CutGuard(Starlette(routes=[route]))

    # -- running ---------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @classmethod
    @contextlib.contextmanager
    def in_thread(cls) -> Iterator[Self]:
        """A server in a daemon thread with its own event loop, for code under test that runs
        elsewhere (a daemon process, a command line); stopped when the block ends."""
        with serve_in_thread(cls(), "BitsUploadServer") as server:
            yield server

    async def start(self) -> None:
        """Serve on 127.0.0.1 (a free port, or the previous one after :meth:`stop`)."""
        sock = tcp_listener("127.0.0.1", self._port or 0)
        self._port = sock.getsockname()[1]
        config = uvicorn.Config(
            self._app,
            http="h11",
            ws="none",
            lifespan="off",
            log_level="warning",
            log_config=None,
            access_log=False,
            server_header=False,
            timeout_graceful_shutdown=1,
        )
        self._server = Server(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        deadline = time.monotonic() + _START_TIMEOUT
        while not self._server.started:
            if self._task.done():
                await self._task
                raise RuntimeError("uvicorn exited during startup")
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start in time")
            await asyncio.sleep(0.005)

    async def stop(self) -> None:
        """Stop serving (sessions and files stay: :meth:`start` serves them again)."""
        server, task = self._server, self._task
        if server is None or task is None or task.done():
            return
        server.request_exit()
        try:
            await asyncio.wait_for(asyncio.shield(task), 5)
        except TimeoutError:
            server.force_exit = True
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    @property
    def base_url(self) -> str:
        if self._port is None:
            raise RuntimeError("the server is not started")
        return f"http://127.0.0.1:{self._port}"

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the server is not started")
        return self._port

    def url(self, path: str) -> str:
        return self.base_url + path

    def packets_of(self, kind: str) -> list[Packet]:
        """The packets of one type (case-insensitive), in arrival order."""
        return [p for p in self.packets if p.type.lower() == kind.lower()]

    def kinds(self) -> list[str]:
        """The packet types in arrival order."""
        return [p.type for p in self.packets]

    # -- the protocol ----------------------------------------------------------------------

    async def _endpoint(self, request: Request) -> Response:
        if request.method in ("GET", "HEAD"):
            return self._serve_reply(request)
        if request.method != "BITS_POST":
            return Response(status_code=405, headers={"Allow": "BITS_POST, GET, HEAD"})
        kind = request.headers.get("bits-packet-type", "")
        handler = {
            "ping": self._ping,
            "create-session": self._create,
            "fragment": self._fragment,
            "close-session": self._close,
            "cancel-session": self._cancel,
        }.get(kind.lower())
        record = Packet(
            kind,
            request.url.path,
            request.headers.get("host", ""),
            request.headers.get("bits-session-id"),
            request.headers.get("content-range"),
            0,
            0,
            dict(request.headers),
        )
        index = len(self.packets)
        self.packets.append(record)
        try:
            if handler is None:
                await request.body()
                response = _ack(400, error=_INVALIDARG)
            else:
                response = await handler(request, index)
        except _Cut:
            raise
        self.packets[index] = dataclasses.replace(self.packets[index], status=response.status_code)
        return response

    async def _ping(self, request: Request, index: int) -> Response:
        await request.body()
        return _ack(200)

    async def _create(self, request: Request, index: int) -> Response:
        await request.body()
        if self.create_statuses:
            status = self.create_statuses.pop(0)
            return _ack(status, error=0x80004005 if status >= 400 else None)
        offered = re.split(r"[\s,]+", request.headers.get("bits-supported-protocols", "").lower())
        if PROTOCOL_GUID not in offered:
            return _ack(400, error=_INVALIDARG)
        session_id = "{" + str(uuid.uuid4()).upper() + "}"
        self.sessions[session_id] = ServerSession(session_id, request.url.path)
        headers = {"BITS-Session-Id": session_id, "Accept-Encoding": "identity"}
        if not self.no_protocol:
            headers["BITS-Protocol"] = PROTOCOL_GUID
        if self.host_id is not None:
            headers["BITS-Host-Id"] = self.host_id
            if self.host_fallback is not None:
                headers["BITS-Host-Id-Fallback-Timeout"] = str(self.host_fallback)
        return _ack(200, headers)

    def _session(self, request: Request) -> ServerSession | None:
        return self.sessions.get(request.headers.get("bits-session-id", ""))

    def _session_ack(
        self, session: ServerSession, status: int, headers: dict[str, str] | None = None
    ) -> Response:
        extra = dict(headers or {})
        if self.echo_session_id:
            extra["BITS-Session-Id"] = session.id
        return _ack(status, extra)

    async def _fragment(self, request: Request, index: int) -> Response:
        session = self._session(request)
        if session is None:
            await request.body()
            return _ack(500, error=_SESSION_NOT_FOUND)
        match = _RANGE.match(request.headers.get("content-range", ""))
        if match is None:
            await request.body()
            return _ack(400, error=_INVALIDARG)
        total = int(match.group(3))
        if match.group(1) is None:
            if total != 0:
                await request.body()
                return _ack(400, error=_INVALIDARG)
            start, last = 0, -1
        else:
            start, last = int(match.group(1)), int(match.group(2))
        if last >= total or last < start - 1 or (session.total not in (None, total)):
            await request.body()
            return _ack(400, error=_INVALIDARG)
        session.total = total
        body = await self._read_fragment(request, session, start, index)
        self.packets[index] = dataclasses.replace(self.packets[index], body_bytes=len(body))
        if len(body) != last - start + 1:
            return _ack(400, error=_INVALIDARG)
        if self.max_fragment is not None and len(body) > self.max_fragment:
            return _ack(413)
        if self.rewind_to is not None:
            del session.data[self.rewind_to :]
            self.rewind_to = None
            return self._session_ack(session, 416, _received(session))
        expected = session.received
        if start > expected or (last < expected and total > 0):
            if expected == total and last == total - 1:
                # The last fragment again (its Ack was lost, or the application failed): the
                # cached final Ack, or the application once more (SDK "preventing multiple
                # uploads").
                if session.final_ack is not None:
                    return _ack(200, session.final_ack)
                return self._finish(session, request)
            return self._session_ack(session, 416, _received(session))
        new = body[expected - start :]
        if self.accept_at_most is not None:
            new = new[: self.accept_at_most]
        session.data += new
        if self.forget_session_after is not None and session.received >= self.forget_session_after:
            self.forget_session_after = None
            del self.sessions[session.id]
        if session.received == total:
            response = self._finish(session, request)
        else:
            response = self._session_ack(session, 200, _received(session))
        if self.lose_acks > 0:
            self.lose_acks -= 1
            _abort(request)
        return response

    async def _read_fragment(
        self, request: Request, session: ServerSession, start: int, index: int
    ) -> bytes:
        """The fragment's body, or a cut connection when a drop is due."""
        limit = self.drop_fragment_after if self.drop_times > 0 else None
        if start < self.drop_from:
            limit = None
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if limit is not None and len(body) >= limit:
                self.drop_times -= 1
                if self.keep_partial and start <= session.received < start + limit:
                    session.data += body[session.received - start : limit]
                self.packets[index] = dataclasses.replace(self.packets[index], body_bytes=limit)
                _abort(request)
        return bytes(body)

    def _finish(self, session: ServerSession, request: Request) -> Response:
        """The last byte arrived: the application runs (upload-reply), the final Ack."""
        if self.reply is None:
            ack = {"BITS-Received-Content-Range": str(session.received)}
        else:
            if self.app_error is not None:
                status, code, times = self.app_error
                self.app_error = (status, code, times - 1) if times > 1 else None
                self.posted.append((session.path, bytes(session.data)))
                return _ack(
                    status,
                    {"BITS-Received-Content-Range": str(session.received)},
                    error=code,
                    context=_CONTEXT_APPLICATION,
                )
            self.posted.append((session.path, bytes(session.data)))
            session.reply = self.reply
            ack = {"BITS-Received-Content-Range": str(session.received)}
            folder = session.path.rsplit("/", 1)[0]
            relative = f"BITS-Sessions\\Replies\\{session.id}\\responsefile.bin"
            if self.reply_url_value is not None:
                ack["BITS-Reply-URL"] = self.reply_url_value
            elif self.reply_url_style == "relative":
                ack["BITS-Reply-URL"] = relative
            elif self.reply_url_style == "absolute":
                ack["BITS-Reply-URL"] = (
                    f"{self.base_url}{folder}/BITS-Sessions/Replies/{session.id}/responsefile.bin"
                )
            elif self.reply_url_style == "empty":
                ack["BITS-Reply-URL"] = ""
        if self.echo_session_id:
            ack["BITS-Session-Id"] = session.id
        session.final_ack = ack
        return _ack(200, ack)

    async def _close(self, request: Request, index: int) -> Response:
        await request.body()
        if self.close_statuses:
            return _ack(self.close_statuses.pop(0))  # the status alone (MC-BUP note <4>)
        session = self._session(request)
        if session is not None and self.forget_on_close:
            self.forget_on_close = False
            del self.sessions[session.id]
            session = None
        if session is None:
            return _ack(500, error=_SESSION_NOT_FOUND)
        if session.total is None or session.received != session.total:
            del self.sessions[session.id]  # a partial upload cannot be committed
            return self._session_ack(session, 200)
        if self.reply is None:
            self.files[session.path] = bytes(session.data)
        del self.sessions[session.id]
        return self._session_ack(session, 200)

    async def _cancel(self, request: Request, index: int) -> Response:
        await request.body()
        if self.cancel_statuses:
            return _ack(self.cancel_statuses.pop(0))
        session = self._session(request)
        if session is None:
            return _ack(500, error=_SESSION_NOT_FOUND)
        del self.sessions[session.id]
        return self._session_ack(session, 200)

    def _serve_reply(self, request: Request) -> Response:
        match = _REPLY_PATH.search(request.url.path)
        session = self.sessions.get(match.group(1)) if match else None
        range_header = request.headers.get("range")
        if self.reply_get_statuses:
            status = self.reply_get_statuses.pop(0)
            self.reply_requests.append((request.method, range_header, status))
            return Response(b"no", status_code=status)
        if session is None or session.reply is None:
            self.reply_requests.append((request.method, range_header, 404))
            return Response(b"no such reply", status_code=404)
        body = session.reply
        headers = {
            "ETag": f'"{session.id}"',
            "Last-Modified": "Tue, 24 Nov 2026 00:00:00 GMT",
            "Accept-Ranges": "bytes",
        }
        status = 200
        wanted = re.match(r"^bytes=(\d+)-(\d*)$", range_header or "")
        if wanted is not None:
            first = int(wanted.group(1))
            last = int(wanted.group(2)) if wanted.group(2) else len(body) - 1
            if first >= len(body):
                headers["Content-Range"] = f"bytes */{len(body)}"
                self.reply_requests.append((request.method, range_header, 416))
                return Response(b"", status_code=416, headers=headers)
            last = min(last, len(body) - 1)
            headers["Content-Range"] = f"bytes {first}-{last}/{len(body)}"
            body = body[first : last + 1]
            status = 206
        self.reply_requests.append((request.method, range_header, status))
        if request.method == "HEAD":
            headers["Content-Length"] = str(len(body))
            return Response(b"", status_code=status, headers=headers)
        return Response(body, status_code=status, headers=headers)


def _received(session: ServerSession) -> dict[str, str]:
    return {"BITS-Received-Content-Range": str(session.received)}


def _ack(
    status: int,
    headers: dict[str, str] | None = None,
    *,
    error: int | None = None,
    context: int = _CONTEXT_SERVER,
) -> Response:
    """An Ack: ``BITS-Packet-Type: Ack``, no body, and the error headers on errors."""
    out = {"BITS-Packet-Type": "Ack", **(headers or {})}
    if error is not None:
        out["BITS-Error-Code"] = f"0x{error:08X}"
        out["BITS-Error-Context"] = f"0x{context:X}"
    return Response(b"", status_code=status, headers=out)


def _abort(request: Request) -> Any:
    """Cut the request's TCP connection now and end the request."""
    cycle = getattr(request.receive, "__self__", None)
    transport = getattr(cycle, "transport", None)
    if transport is None:
        raise RuntimeError("cannot reach the connection of this request")
    transport.abort()
    raise _Cut
