"""The BITS upload protocol client ([MC-BUP]): one local file to one URL, in a session.

Rules (bits-upload-protocol §1–§2 and the client checklist of §7; docs/uploads.md):
- Every packet is a ``BITS_POST`` with ``BITS-Packet-Type`` and ``Content-Length`` (0 for the
  packets without a body), sent through the job's network options (``exchange.py``: proxies,
  TLS, credentials, redirects). One packet is outstanding at a time; its Ack is read whole and
  is never required to carry ``BITS-Session-Id`` (IIS 6 omits it).
- A Ping goes first in every :class:`Conversation` (one run of a job: what may be a new
  connection; Windows pings whenever it resumes a session) and again after a switch to the
  ``BITS-Host-Id`` host. Authentication happens per request in the exchange layer, so bitsd
  does not track aiohttp's connections one by one.
- Create-Session offers the one protocol GUID; an answer without ``BITS-Protocol`` naming it is
  BG_E_CLIENT_SERVER_PROTOCOL_MISMATCH. A new session starts at the origin host and holds no
  bytes; its ``BITS-Host-Id`` (if any) takes every later packet of the session.
- Fragments go in order and are read from the file as they are sent, one chunk in memory at a
  time. The next fragment always starts at the Ack's ``BITS-Received-Content-Range``, on 200
  and on 416: the server's count, never ours. An empty file is one Fragment of no bytes,
  ``Content-Range: bytes */0``.
- A file the server acknowledged whole whose upload is not done (its final Ack had an unusable
  reply URL; a crash came before it was stored) sends its last byte again: a repeated final
  fragment, which the server answers with its final Ack again (MC-BUP §3.2.5.1.2). A fragment
  of no bytes at the end (``bytes 20000-19999/20000``) is no range; servers refuse it.
- 413 halves the fragment, never below 5 KiB (Windows' floor); BG_E_SESSION_NOT_FOUND starts a
  new session from zero, at most three times in a conversation; eight Acks in a row that
  acknowledge nothing new are an invalid server response (a server that never moves).
- The session (id, host, fallback) is reported to the :class:`UploadHost` as soon as it exists
  and every acknowledged offset as it arrives; the caller persists them, so a restart goes on
  with the same session from the server's offset.
- ``BITS-Host-Id``: a failure while packets go to that host starts its fallback timer (wall
  time, persisted); an Ack resets it; a conversation that starts after the timeout goes back to
  the origin host (MC-BUP §3.1.6.3). A value that is no host a request can be sent to (the
  URL it makes is one the reply URL's check refuses) is ignored, as other values that are no
  host are: the session stays at the origin.
- ``BITS-Reply-URL`` is checked where it is read, before the job stores it: a URL that is not
  http(s), or that no request can be sent to (yarl refuses it, or ``_urls.http_url_problem``
  names why), is BG_E_INVALID_SERVER_RESPONSE, fatal (the server would replay the same final
  Ack), and the upload is not marked done, so a Resume asks the server again (the last byte).
- Failures leave as :class:`~bitsd._errors.TransferError`, classified by ``classify``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import os
import re
import urllib.parse
from collections.abc import Awaitable, Mapping
from typing import Any, Protocol, TypeVar

import aiohttp
import aiohttp.payload
from yarl import URL

from bitsd import codes
from bitsd._clock import Clock
from bitsd._errors import TransferError
from bitsd._transfer import classify
from bitsd._transfer.base import FileRequest, HttpOptions
from bitsd._transfer.exchange import Exchanger, conversation, request_timeouts
from bitsd._transfer.tls import TlsContexts
from bitsd._urls import http_url_problem

__all__ = [
    "APPLICATION_TIMEOUT",
    "DEFAULT_FRAGMENT_SIZE",
    "MIN_FRAGMENT_SIZE",
    "PROTOCOL_GUID",
    "CloseOutcome",
    "Conversation",
    "Session",
    "UploadClient",
    "UploadHost",
    "UploadRequest",
    "content_name",
    "parse_received",
    "resolve_reply_url",
    "source_validator",
    "with_host",
]

# The BITS 1.5 upload protocol, the only one there is (MC-BUP §1.7.1).
PROTOCOL_GUID = "{7df0354d-249b-430f-820d-3d2a9bef4931}"
# Bytes. Windows never shrinks a fragment below 5 KB after a 413 (MC-BUP note <16>).
MIN_FRAGMENT_SIZE = 5 * 1024
# Bytes. Windows sends up to 13 MB; bitsd's choice is 4 MiB: few round trips, little to resend.
DEFAULT_FRAGMENT_SIZE = 4 * 1024 * 1024
# Seconds the final Ack of an upload-reply may take: the server holds it while its application
# runs, up to 5 minutes (SDK "Ack for Fragment", IIS BITS properties).
APPLICATION_TIMEOUT = 300.0
# bitsd's bounds: new sessions after BG_E_SESSION_NOT_FOUND per conversation, Acks in a row
# that acknowledge nothing new, bytes of an Ack's body read before the connection is dropped.
_MAX_SESSION_RESTARTS = 3
_MAX_IDLE_ACKS = 8
_MAX_ACK_BODY = 64 * 1024
# A session id or Host-Id we accept: printable ASCII without spaces, as a header carries it.
_TOKEN = re.compile(r"^[\x21-\x7e]{1,4096}$")
_HOST = re.compile(r"^[A-Za-z0-9._~%:\[\]-]{1,300}$")
_T = TypeVar("_T")


@dataclasses.dataclass(frozen=True, slots=True)
class Session:
    """An upload session, as the job persists it.

    Attributes:
        id: the server's session id, or None before Create-Session.
        host_id: the ``BITS-Host-Id`` host that takes the session's packets, or None.
        host_fallback: seconds of failures before going back to the origin; None is never.
        host_error_time: wall time of the first failure since the last Ack from ``host_id``.
        close_sent: a Close-Session was sent for this session.
    """

    id: str | None = None
    host_id: str | None = None
    host_fallback: float | None = None
    host_error_time: float | None = None
    close_sent: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class UploadRequest:
    """One file to upload.

    Attributes:
        url: the remote name (the origin; Host-Id replaces its host for a session's packets).
        path: the local file.
        size: its size when the job was first resumed.
        validator: :func:`source_validator` of the file then; any change fails the upload.
        reply: the job is an upload-reply job (its final Ack may take the application's time).
        options: the job's HTTP options.
    """

    url: str
    path: str
    size: int
    validator: str
    reply: bool
    options: HttpOptions = dataclasses.field(default_factory=HttpOptions)


class UploadHost(Protocol):
    """What a conversation tells the job it works for."""

    def session_changed(self, session: Session) -> None:
        """A new session, host or fallback timer: persist it before the next packet."""
        ...

    def acknowledged(self, offset: int) -> None:
        """The server holds the file's first ``offset`` bytes."""
        ...

    def connected(self) -> None:
        """An Ack arrived."""
        ...

    async def pace(self, count: int) -> None:
        """Wait until ``count`` bytes may be sent (bandwidth limits)."""
        ...


class CloseOutcome(enum.Enum):
    """How a Close-Session ended."""

    CLOSED = "closed"  # the server has the file (or had it: our earlier Close reached it)
    LOST = "lost"  # the server knew no such session at the first Close: the upload is gone


def source_validator(stat: os.stat_result) -> str:
    """What identifies the version of a local file: its size and modification time (ns)."""
    return f"{stat.st_size}:{stat.st_mtime_ns}"


def content_name(path: str) -> str:
    """The ``Content-Name`` of a local file: its name without the folder, percent-encoded
    where it is not printable ASCII (a header carries it; the server does not use it)."""
    name = os.path.basename(path)
    if all(" " <= ch <= "~" for ch in name):
        return name
    return urllib.parse.quote(name, safe=" !#$&'()+,;=@[]^_`{}~")


def parse_received(value: str | None) -> int | None:
    """``BITS-Received-Content-Range``: the offset of the next byte the server expects (a
    decimal integer, not a range); None if absent or unreadable."""
    if value is None:
        return None
    text = value.strip()
    return int(text) if text.isdigit() else None


def resolve_reply_url(upload_url: str, value: str) -> str:
    """The absolute URL of a ``BITS-Reply-URL`` value, as Windows resolves it (§3.4): relative
    to the upload URL (its last segment replaced), backslashes as slashes, braces
    percent-encoded (IIS sends ``BITS-Sessions\\Replies\\{GUID}\\responsefile.bin``)."""
    text = value.strip().replace("\\", "/").replace("{", "%7B").replace("}", "%7D")
    return urllib.parse.urljoin(upload_url, text)


def with_host(url: str, host_id: str) -> str:
    """``url`` with its host replaced by a ``BITS-Host-Id`` value (a name, an IPv4 or IPv6
    address, optionally with a port); the scheme, port and path stay."""
    parts = urllib.parse.urlsplit(url)
    port = f":{parts.port}" if parts.port is not None else ""
    host = host_id.strip()
    if host.startswith("["):
        netloc = host if "]:" in host else host + port
    elif host.count(":") == 1:
        netloc = host  # name:port
    elif ":" in host:
        netloc = f"[{host}]{port}"  # a bare IPv6 address
    else:
        netloc = host + port
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


@dataclasses.dataclass(frozen=True, slots=True)
class _Ack:
    status: int
    headers: Mapping[str, str]

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def session_lost(self) -> bool:
        code, _ = classify.parse_bits_error(self.headers)
        return not self.ok and code == codes.BG_E_SESSION_NOT_FOUND


class _SourceChangedError(Exception):
    """The file gave fewer bytes than its size while a fragment was being sent."""


class _FragmentPayload(aiohttp.payload.Payload):
    """The bytes ``start..start+length`` of an open file, read chunk by chunk as aiohttp
    sends them: memory holds one chunk, whatever the fragment's size."""

    _autoclose = True  # the descriptor belongs to the conversation

    def __init__(self, fd: int, start: int, length: int, chunk: int, host: UploadHost) -> None:
        super().__init__(None)
        self._fd = fd
        self._start = start
        self._size = length
        self._chunk = chunk
        self._host = host
        self.failure: BaseException | None = None

    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        assert self._size is not None
        return os.pread(self._fd, self._size, self._start).decode(encoding, errors)

    async def write(self, writer: Any) -> None:
        await self.write_with_length(writer, None)

    async def write_with_length(self, writer: Any, content_length: int | None) -> None:
        assert self._size is not None
        remaining = self._size if content_length is None else min(self._size, content_length)
        position = self._start
        while remaining > 0:
            want = min(self._chunk, remaining)
            try:
                data = await asyncio.to_thread(os.pread, self._fd, want, position)
            except OSError as exc:
                self.failure = exc
                raise
            if len(data) != want:
                self.failure = _SourceChangedError()
                raise self.failure
            await self._host.pace(want)
            await writer.write(data)
            position += want
            remaining -= want


class UploadClient:
    """Uploads files with the BITS upload protocol through one shared aiohttp session.

    Args:
        session: the session (connection pool); owned by the caller.
        clock: the wall clock of the Host-Id fallback timer and Retry-After dates.
        connect_timeout, read_timeout: seconds, as for downloads; the final Ack of an
            upload-reply job may take :data:`APPLICATION_TIMEOUT` at least.
        chunk_size: bytes read from the file at once.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        clock: Clock,
        *,
        connect_timeout: float,
        read_timeout: float,
        chunk_size: int,
    ) -> None:
        self._clock = clock
        tls = TlsContexts()
        self._exchanger = Exchanger(session, aiohttp.ClientTimeout(), tls=tls)
        self._application_exchanger = Exchanger(session, aiohttp.ClientTimeout(), tls=tls)
        self.retune(
            chunk_size=chunk_size, connect_timeout=connect_timeout, read_timeout=read_timeout
        )

    def retune(self, *, chunk_size: int, connect_timeout: float, read_timeout: float) -> None:
        """Use new settings (the engine's were reconfigured) from the next request on."""
        self._chunk = chunk_size
        self._exchanger.timeout = request_timeouts(connect_timeout, read_timeout)
        self._application_exchanger.timeout = request_timeouts(
            connect_timeout, max(read_timeout, APPLICATION_TIMEOUT)
        )

    def begin(
        self,
        request: UploadRequest,
        session: Session,
        host: UploadHost,
        *,
        fragment_size: int | None = None,
    ) -> Conversation:
        """A conversation with the server about ``request``'s file, from the stored
        ``session`` (a fresh :class:`Session` when there is none yet)."""
        return Conversation(self, request, session, host, fragment_size or DEFAULT_FRAGMENT_SIZE)


class Conversation:
    """One run's packets for one file: Ping first, then what the run needs. Not reusable
    across runs (a new run may be on a new connection: it pings again)."""

    def __init__(
        self,
        client: UploadClient,
        request: UploadRequest,
        session: Session,
        host: UploadHost,
        fragment_size: int,
    ) -> None:
        self._client = client
        self._request = request
        self._options = dataclasses.replace(request.options, method="BITS_POST")
        self._host = host
        self.session = session
        self.fragment_size = max(fragment_size, MIN_FRAGMENT_SIZE)
        self._pinged = False
        self._payloads: list[_FragmentPayload] = []
        self._fall_back()

    # -- the verbs -------------------------------------------------------------------------

    async def upload(self, offset: int) -> str | None:
        """Send the file from ``offset`` (the last offset the server acknowledged) to the end,
        in the stored session or a new one.

        Returns:
            The final Ack's ``BITS-Reply-URL`` resolved to an absolute URL, "" when the header
            is empty (no reply), or None when the Ack has none.

        Raises:
            TransferError: the classified failure; offsets acknowledged before it were
                reported to the host.
        """
        with conversation(None):
            return await self._guarded(self._upload(offset))

    async def close(self) -> CloseOutcome:
        """Send Close-Session: the upload is complete (after the reply, if any, was fetched).

        Raises:
            TransferError: 5xx is transient (the Close is sent again after the retry delay),
                other failures are fatal.
        """
        with conversation(None):
            return await self._guarded(self._close())

    async def cancel(self, packet: str = "Cancel-Session") -> bool:
        """Send Cancel-Session (or the Close-Session that makes a finished upload stay), best
        effort: True when it needs no retry (it arrived, or a retry cannot help), False after
        a 5xx or a network failure (the caller retries later)."""
        try:
            with conversation(None):
                ack = await self._guarded(self._send(packet, self._session_headers(packet)))
        except TransferError as err:
            return not err.transient
        if ack.ok or ack.session_lost:
            return True
        return not 500 <= ack.status < 600

    # -- the steps -------------------------------------------------------------------------

    async def _upload(self, offset: int) -> str | None:
        request = self._request
        total = request.size
        self._check_source()  # before any packet: a changed file is not worth a session
        fd = self._open_source()
        try:
            if self.session.id is None:
                await self._create()
                offset = 0
            elif offset == total > 0:
                offset = total - 1  # the final fragment again: its last byte (module rules)
            restarts = idle = 0
            while True:
                self._check_source()
                length = min(self.fragment_size, total - offset)
                ack = await self._fragment(fd, offset, length)
                if ack.session_lost and restarts < _MAX_SESSION_RESTARTS:
                    restarts += 1
                    await self._create()
                    offset = 0
                    continue
                if ack.status == 413 and length > MIN_FRAGMENT_SIZE:
                    self.fragment_size = max(MIN_FRAGMENT_SIZE, length // 2)
                    continue
                if not ack.ok and ack.status != 416:
                    raise self._error(ack, "Fragment")
                received = parse_received(ack.headers.get("BITS-Received-Content-Range"))
                if received is None or received > total:
                    raise classify.invalid_upload_ack(
                        request.url,
                        f"the Ack of bytes {offset}-{offset + length - 1}/{total} has "
                        "BITS-Received-Content-Range "
                        f"{ack.headers.get('BITS-Received-Content-Range')!r}",
                    )
                self._host_answered()
                idle = 0 if received > offset else idle + 1
                if idle >= _MAX_IDLE_ACKS:
                    raise classify.invalid_upload_ack(
                        request.url,
                        f"{idle} Acks in a row acknowledged nothing past byte {offset}",
                    )
                offset = received
                self._host.acknowledged(offset)
                if offset == total:
                    return self._reply_url(ack)
        finally:
            os.close(fd)

    async def _create(self) -> None:
        """Create-Session at the origin (a new session has no Host-Id yet)."""
        self._set_session(Session())
        ack = await self._send(
            "Create-Session",
            {
                "BITS-Supported-Protocols": PROTOCOL_GUID,
                "Content-Name": content_name(self._request.path),
            },
        )
        if ack.status not in (200, 201):
            raise self._error(ack, "Create-Session")
        chosen = (ack.headers.get("BITS-Protocol") or "").strip().lower()
        if chosen != PROTOCOL_GUID:
            raise classify.protocol_mismatch(
                self._request.url,
                "the Ack for Create-Session has no BITS-Protocol"
                if not chosen
                else f"the server chose protocol {chosen}",
            )
        session_id = (ack.headers.get("BITS-Session-Id") or "").strip()
        if not _TOKEN.match(session_id):
            raise classify.invalid_upload_ack(
                self._request.url, f"the Ack for Create-Session has session id {session_id!r}"
            )
        host_id = (ack.headers.get("BITS-Host-Id") or "").strip() or None
        if host_id is not None and (
            not _HOST.match(host_id)
            or _request_problem(with_host(self._request.url, host_id)) is not None
        ):
            host_id = None  # not a host: ignored rather than spliced into a URL
        fallback = None
        if host_id is not None:
            fallback = _fallback_seconds(ack.headers.get("BITS-Host-Id-Fallback-Timeout"))
        self._set_session(Session(session_id, host_id, fallback))
        self._host.acknowledged(0)
        if host_id is not None:
            self._pinged = False  # MC-BUP §3.1.5.2.2: Host-Id, then Ping, then Fragment

    async def _fragment(self, fd: int, start: int, length: int) -> _Ack:
        total = self._request.size
        headers = self._session_headers("Fragment")
        headers["Content-Range"] = (
            f"bytes {start}-{start + length - 1}/{total}" if total else "bytes */0"
        )

        def body() -> Any:
            if length == 0:
                return b""
            payload = _FragmentPayload(fd, start, length, self._client._chunk, self._host)
            self._payloads.append(payload)
            return payload

        final = start + length == total
        try:
            return await self._send(
                "Fragment", headers, body=body, long=final and self._request.reply
            )
        finally:
            failures = [p.failure for p in self._payloads if p.failure is not None]
            self._payloads.clear()
            if failures:
                self._check_source()
                failure = failures[-1]
                if isinstance(failure, OSError):
                    raise classify.from_local_os_error(
                        failure, local_name=self._request.path
                    ) from failure
                raise classify.local_file_changed(
                    self._request.path, "the file ended before its recorded size"
                )

    async def _close(self) -> CloseOutcome:
        sent_before = self.session.close_sent
        self._set_session(dataclasses.replace(self.session, close_sent=True))
        ack = await self._send("Close-Session", self._session_headers("Close-Session"))
        if ack.ok:
            return CloseOutcome.CLOSED
        if ack.session_lost:
            # Our earlier Close reached the server and only its Ack was lost; else the server
            # dropped the session (and the upload) before we closed it.
            return CloseOutcome.CLOSED if sent_before else CloseOutcome.LOST
        raise self._error(ack, "Close-Session")

    async def _ping(self) -> None:
        self._pinged = True
        ack = await self._send("Ping", {})
        if not ack.ok:
            raise self._error(ack, "Ping")

    async def _send(
        self,
        packet: str,
        headers: dict[str, str],
        *,
        body: Any = None,
        long: bool = False,
    ) -> _Ack:
        """One packet and its Ack (after a Ping if this conversation has not pinged)."""
        if not self._pinged and packet != "Ping":
            await self._ping()
        headers = {"BITS-Packet-Type": packet, **headers}
        client = self._client
        exchanger = client._application_exchanger if long else client._exchanger
        request = FileRequest(self._target(), 0, None, None, options=self._options)
        async with exchanger.open(request, headers, body=body or _no_body) as resp:
            await _drain(resp)
            ack = _Ack(resp.status, resp.headers)
        if ack.ok or ack.status == 416:
            self._host.connected()
        return ack

    # -- helpers ---------------------------------------------------------------------------

    async def _guarded(self, step: Awaitable[_T]) -> _T:
        """Run a step; classify what the network throws and start the Host-Id fallback
        timer on any failure."""
        try:
            return await step
        except TransferError:
            self._host_failed()
            raise
        except (aiohttp.ClientError, TimeoutError, ConnectionError) as exc:
            self._host_failed()
            raise classify.from_network_exception(exc, url=self._target()) from exc

    def _session_headers(self, packet: str) -> dict[str, str]:
        assert self.session.id is not None, f"{packet} needs a session"
        return {
            "BITS-Session-Id": self.session.id,
            "Content-Name": content_name(self._request.path),
        }

    def _target(self) -> str:
        host_id = self.session.host_id
        return self._request.url if host_id is None else with_host(self._request.url, host_id)

    def _set_session(self, session: Session) -> None:
        self.session = session
        self._host.session_changed(session)

    def _fall_back(self) -> None:
        """Back to the origin host when the Host-Id host has failed for its timeout."""
        s = self.session
        if (
            s.host_id is not None
            and s.host_fallback is not None
            and s.host_error_time is not None
            and self._client._clock.wall() - s.host_error_time >= s.host_fallback
        ):
            self._set_session(dataclasses.replace(s, host_id=None, host_error_time=None))

    def _host_failed(self) -> None:
        s = self.session
        if s.host_id is not None and s.host_error_time is None:
            self._set_session(dataclasses.replace(s, host_error_time=self._client._clock.wall()))

    def _host_answered(self) -> None:
        if self.session.host_error_time is not None:
            self._set_session(dataclasses.replace(self.session, host_error_time=None))

    def _open_source(self) -> int:
        try:
            return os.open(self._request.path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise classify.from_local_os_error(exc, local_name=self._request.path) from exc

    def _check_source(self) -> None:
        """Fail with BG_E_LOCAL_FILE_CHANGED if the file is not the one first resumed."""
        try:
            now = source_validator(os.stat(self._request.path))
        except OSError as exc:
            raise classify.from_local_os_error(exc, local_name=self._request.path) from exc
        if now != self._request.validator:
            raise classify.local_file_changed(
                self._request.path,
                f"size:mtime was {self._request.validator} at the first Resume, now {now}",
            )

    def _reply_url(self, ack: _Ack) -> str | None:
        if not self._request.reply:
            return None  # a plain upload ignores a reply URL (MC-BUP: MUST NOT be sent)
        value = ack.headers.get("BITS-Reply-URL")
        if value is None or not value.strip():
            return value if value is None else ""
        try:
            url = resolve_reply_url(self._request.url, value)
        except ValueError as exc:  # urljoin refuses it (an unclosed IPv6 bracket)
            problem: str | None = str(exc)
        else:
            problem = _request_problem(url)
        if problem is not None:
            raise classify.invalid_upload_ack(
                self._request.url,
                f"the reply URL {value!r} is not one a request can be sent to: {problem}",
                transient=False,
            )
        return url

    def _error(self, ack: _Ack, packet: str) -> TransferError:
        return classify.from_upload_ack(
            ack.status,
            ack.headers,
            url=self._target(),
            now_wall=self._client._clock.wall(),
            packet=packet,
        )


def _request_problem(url: str) -> str | None:
    """Why no HTTP request can be sent to ``url``, a URL the server chose (a reply URL, the
    upload URL on a Host-Id host), or None: what yarl, aiohttp or the resolver would raise
    only when the request is sent."""
    try:
        parsed = URL(url)
    except ValueError as exc:  # UnicodeError among them; a port out of range
        return str(exc)
    if parsed.scheme not in ("http", "https"):
        return "not an HTTP URL"
    return http_url_problem(parsed)


def _no_body() -> bytes:
    return b""


def _fallback_seconds(value: str | None) -> float | None:
    """``BITS-Host-Id-Fallback-Timeout``: decimal seconds; absent, unreadable or 0xFFFFFFFF
    is never (MC-BUP §3.1.2: the default timer is infinite)."""
    if value is None or not value.strip().isdigit():
        return None
    seconds = int(value.strip())
    return None if seconds >= 0xFFFFFFFF else float(seconds)


async def _drain(resp: aiohttp.ClientResponse) -> None:
    """Read an Ack's body (it should have none) so the connection can be reused; a large one
    is not an Ack: the connection is closed instead."""
    remaining = _MAX_ACK_BODY
    while remaining > 0:
        data = await resp.content.read(min(remaining, 16 * 1024))
        if not data:
            return
        remaining -= len(data)
    resp.close()
