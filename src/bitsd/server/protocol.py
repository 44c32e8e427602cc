"""The server side of the BITS upload protocol ([MC-BUP]) as pure functions and values: no I/O.

Rules (docs/upload-server.md; the wire reference's §1, §2 and §7):
- Packet types compare case-insensitively (``Create-Session``, ``CREATE-SESSION`` and
  ``cReAtE-sEsSiOn`` are the same packet).
- Every answer is an :class:`Ack`: ``BITS-Packet-Type: Ack`` and ``Content-Length: 0``. An Ack
  carries ``BITS-Error-Code`` (``0x%08X``) and ``BITS-Error-Context`` (``0x5`` the server,
  ``0x7`` the server application) iff its status is not 2xx; a 416 carries code ``0x00000000``
  (MC-BUP §2.2.1.2 names no code for it).
- Session ids are braced upper-case GUIDs (``{XXXXXXXX-...}``). A request's id is read
  leniently (either case, braces optional); anything that is not a GUID names no session.
- ``BITS-Supported-Protocols`` is a list separated by spaces or commas; the one protocol
  (``{7df0354d-249b-430f-820d-3d2a9bef4931}``) is matched case-insensitively.
- ``Content-Range`` is ``bytes first-last/total`` (zero-based, inclusive; ``bytes`` in any
  case). An empty upload (total 0) may say ``bytes */0``, ``bytes 0--1/0`` or ``bytes 0-0/0``
  with ``Content-Length: 0``.
- Fragments are in order (:func:`place`): a gap gets 416; a fragment that overlaps the received
  data has only its new part written; a fragment wholly received already (a duplicate) gets 200
  and writes nothing. Every Fragment Ack states the next offset expected.
- The server application's failures reach the client as :func:`application_failure` says: its
  own status (so the client classifies it per §2.4, :func:`is_transient`), except statuses that
  mean something else on this hop (401, 407, 413, 416), which become 400; the code is always
  ``BG_E_HTTP_ERROR_<status>``.
"""

from __future__ import annotations

import enum
import re
import uuid
from dataclasses import dataclass, field
from typing import Final

from bitsd import codes

__all__ = [
    "ACCEPT_ENCODING",
    "PROTOCOL_GUID",
    "SPEC_DISK_FULL",
    "SPEC_NOTIFY_TIMEOUT",
    "Ack",
    "ContentRange",
    "ErrorContext",
    "PacketError",
    "PacketType",
    "Placement",
    "application_failure",
    "choose_protocol",
    "format_code",
    "is_transient",
    "new_session_id",
    "packet_type",
    "parse_content_range",
    "parse_session_id",
    "place",
]

# The BITS 1.5 upload protocol, the only one that exists (MC-BUP §1.7.1); Windows servers answer
# it in this (lower) case (note <8>).
PROTOCOL_GUID: Final = "{7df0354d-249b-430f-820d-3d2a9bef4931}"
# Identity is the only encoding (note <7>); IIS spells the value in lower case.
ACCEPT_ENCODING: Final = "identity"
# MC-BUP §2.2.1.2 writes ERROR_DISK_FULL as this literal (HRESULT_FROM_WIN32(112) would be
# 0x80070070); the reference says to send the spec's value.
SPEC_DISK_FULL: Final = 0x80070112
# The same literal, with status 408 and context 0x7, is the spec's "back-end client timed out"
# (the server application did not answer in time, §3.3.2).
SPEC_NOTIFY_TIMEOUT: Final = 0x80070112
# Largest total an upload may announce (a signed 64-bit size; IIS's own cap is smaller).
_MAX_TOTAL: Final = 2**63 - 1

_CONTENT_RANGE = re.compile(r"bytes[ \t]+(\d{1,19})-(\d{1,19})/(\d{1,19})", re.IGNORECASE)
_EMPTY_RANGE = re.compile(r"bytes[ \t]+(?:\*|0--1|0-0)/0", re.IGNORECASE)
_PROTOCOL_SEPARATORS = re.compile(r"[\s,]+")
# Application statuses that would tell the BITS client something else if passed on as they are:
# 401/407 start authentication, 413 shrinks fragments, 416 resynchronises the offset.
_MASKED_APPLICATION_STATUSES: Final = frozenset({401, 407, 413, 416})


class PacketType(enum.StrEnum):
    """The request packets, by their lower-cased ``BITS-Packet-Type`` value."""

    PING = "ping"
    CREATE_SESSION = "create-session"
    FRAGMENT = "fragment"
    CLOSE_SESSION = "close-session"
    CANCEL_SESSION = "cancel-session"


class ErrorContext(enum.IntEnum):
    """``BITS-Error-Context`` values (BG_ERROR_CONTEXT)."""

    REMOTE_FILE = 5  # the server itself (MC-BUP: CONTEXT_SERVER)
    REMOTE_APPLICATION = 7  # the server application the upload was handed to


def packet_type(value: str | None) -> PacketType | None:
    """The packet a ``BITS-Packet-Type`` value names (any case), or None."""
    if value is None:
        return None
    try:
        return PacketType(value.strip().lower())
    except ValueError:
        return None


def new_session_id() -> str:
    """A fresh session id: a random GUID, braced and upper-case as IIS sends it."""
    return "{" + str(uuid.uuid4()).upper() + "}"


def parse_session_id(value: str | None) -> str | None:
    """The canonical form (braced, upper-case) of a ``BITS-Session-Id``, or None if it is not a
    GUID (such an id cannot name a session of this server)."""
    if value is None:
        return None
    text = value.strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1]
    if len(text) != 36:
        return None
    try:
        parsed = uuid.UUID(text)
    except ValueError:
        return None
    return "{" + str(parsed).upper() + "}"


def choose_protocol(value: str | None) -> str | None:
    """The protocol this server speaks if ``BITS-Supported-Protocols`` offers it, else None."""
    if value is None:
        return None
    wanted = PROTOCOL_GUID.strip("{}").lower()
    for item in _PROTOCOL_SEPARATORS.split(value.strip()):
        if item.strip("{}").lower() == wanted:
            return PROTOCOL_GUID
    return None


def format_code(code: int) -> str:
    """A ``BITS-Error-Code`` value: ``0x`` and eight upper-case hex digits."""
    return f"0x{codes.to_unsigned(code):08X}"


@dataclass(frozen=True)
class Ack:
    """One answer to a packet.

    Attributes:
        status: the HTTP status.
        session_id: echoed as ``BITS-Session-Id`` when set.
        received: ``BITS-Received-Content-Range``, the next offset expected (Fragment Acks).
        reply_url: ``BITS-Reply-URL`` (the final Fragment Ack of an upload-reply).
        code: ``BITS-Error-Code`` on a non-2xx status (None: ``E_FAIL``).
        context: ``BITS-Error-Context`` on a non-2xx status.
        extra: more headers, in order (Create-Session's ``BITS-Protocol`` and
            ``Accept-Encoding``).
    """

    status: int = 200
    session_id: str | None = None
    received: int | None = None
    reply_url: str | None = None
    code: int | None = None
    context: ErrorContext = ErrorContext.REMOTE_FILE
    extra: tuple[tuple[str, str], ...] = field(default=())

    @property
    def is_error(self) -> bool:
        return not 200 <= self.status < 300

    def headers(self) -> list[tuple[str, str]]:
        """The response headers, ``Content-Length: 0`` included."""
        out = [("BITS-Packet-Type", "Ack")]
        if self.session_id is not None:
            out.append(("BITS-Session-Id", self.session_id))
        if self.received is not None:
            out.append(("BITS-Received-Content-Range", str(self.received)))
        if self.reply_url is not None:
            out.append(("BITS-Reply-URL", self.reply_url))
        out.extend(self.extra)
        if self.is_error:
            code = codes.E_FAIL if self.code is None else self.code
            out.append(("BITS-Error-Code", format_code(code)))
            out.append(("BITS-Error-Context", f"0x{int(self.context):X}"))
        out.append(("Content-Length", "0"))
        return out


class PacketError(Exception):
    """A packet refused: raised anywhere while handling it, turned into its Ack in one place.

    Args:
        status: the HTTP status.
        code: the HRESULT for ``BITS-Error-Code``.
        reason: what went wrong, for the log.
        context: who failed (the server unless the application did).
        received: the next offset expected, for Fragment Acks.
    """

    def __init__(
        self,
        status: int,
        code: int,
        reason: str,
        *,
        context: ErrorContext = ErrorContext.REMOTE_FILE,
        received: int | None = None,
    ) -> None:
        super().__init__(reason)
        self.status = status
        self.code = code
        self.reason = reason
        self.context = context
        self.received = received

    def ack(self, session_id: str | None) -> Ack:
        """The Ack that answers the packet."""
        return Ack(
            status=self.status,
            session_id=session_id,
            received=self.received,
            code=self.code,
            context=self.context,
        )


@dataclass(frozen=True)
class ContentRange:
    """A fragment's ``Content-Range``: bytes ``first`` to ``last`` (inclusive) of ``total``;
    ``last == first - 1`` for the empty fragment of an empty upload."""

    first: int
    last: int
    total: int

    @property
    def length(self) -> int:
        return self.last - self.first + 1


def parse_content_range(value: str | None) -> ContentRange:
    """Parse a Fragment's ``Content-Range``.

    Raises:
        PacketError: 400 / E_INVALIDARG: missing, malformed, or a range outside the total.
    """
    if value is None:
        raise PacketError(400, codes.E_INVALIDARG, "Content-Range is missing")
    text = value.strip()
    if _EMPTY_RANGE.fullmatch(text):
        return ContentRange(0, -1, 0)
    match = _CONTENT_RANGE.fullmatch(text)
    if match is None:
        raise PacketError(400, codes.E_INVALIDARG, f"Content-Range is malformed: {value!r}")
    first, last, total = (int(group) for group in match.groups())
    if first > last or last >= total or total > _MAX_TOTAL:
        raise PacketError(400, codes.E_INVALIDARG, f"Content-Range is not a range: {value!r}")
    return ContentRange(first, last, total)


@dataclass(frozen=True)
class Placement:
    """Where a fragment's body goes, given the bytes already received.

    Attributes:
        in_sync: False for a gap (416, nothing written).
        skip: body bytes to read and drop (already received).
        write: body bytes to write after them, at the received offset.
    """

    in_sync: bool
    skip: int = 0
    write: int = 0


def place(received: int, fragment: ContentRange) -> Placement:
    """The in-order rule: a gap is out of sync; otherwise write only what is new (nothing, for
    a duplicate)."""
    if fragment.first > received:
        return Placement(in_sync=False)
    if fragment.last < received:
        return Placement(in_sync=True, skip=fragment.length, write=0)
    skip = received - fragment.first
    return Placement(in_sync=True, skip=skip, write=fragment.length - skip)


def application_failure(status: int) -> tuple[int, int]:
    """The (Ack status, BITS-Error-Code) that report a failed server application (context 0x7).

    The application's own status passes through so that the client applies the §2.4 table to
    it, except 401/407/413/416 (400: fatal, as the original is); the code names the original.
    Statuses that are not HTTP errors become 502.
    """
    if not 300 <= status <= 599:
        return 502, codes.http_error(502)
    shown = 400 if status in _MASKED_APPLICATION_STATUSES else status
    return shown, codes.http_error(status)


def is_transient(status: int) -> bool:
    """Whether a BITS client retries a server application's failure with this status
    (SDK "Handling Server Application Errors", the reference's §2.4)."""
    if 300 <= status <= 399:
        return not (300 <= status <= 305 or status == 307)
    if 400 <= status <= 499:
        return status in (408, 409)
    if 500 <= status <= 599:
        return status not in (501, 505)
    return True
