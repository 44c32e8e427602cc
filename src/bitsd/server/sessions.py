"""Upload sessions on disk, so that they survive a restart of the server.

Layout (under the upload root)::

    .bits-sessions/{SESSION-GUID}/state.json    the session (a SessionState, JSON)
    .bits-sessions/{SESSION-GUID}/request.bin   the bytes received so far
    .bits-sessions/{SESSION-GUID}/reply.bin     the server application's reply (upload-reply)

Rules:
- The number of bytes received is the size of ``request.bin``: fragments are written in order,
  each at the current end, so every byte in the file is right even after a crash mid-write.
  Nothing else records the offset, so the two cannot disagree.
- ``state.json`` is replaced atomically (write a temporary file, rename). A session folder is
  created whole: built under a temporary name, then renamed to its id.
- A session is open, then closed or cancelled. A closed or cancelled session keeps only its
  ``state.json`` (a tombstone), so that a repeated Close-Session or Cancel-Session gets the same
  answer; it goes with the session timeout like any other.
- A session expires when the wall clock has moved more than the session timeout past its last
  activity (``touched``); an expired session is deleted when next seen or swept.
- A folder that is not a session (bad name, unreadable state) is garbage and the sweep deletes
  it; a temporary folder is garbage once it is an hour old.
- Packets of one session are handled one at a time under :meth:`SessionStore.lock`; the sweep
  skips sessions whose lock is held.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import os
import shutil
import time
import uuid
import weakref
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final

from bitsd.server.protocol import parse_session_id

__all__ = ["SESSIONS_DIR", "ReplyInfo", "SessionState", "SessionStatus", "SessionStore"]

SESSIONS_DIR: Final = ".bits-sessions"
STATE_FILE: Final = "state.json"
REQUEST_FILE: Final = "request.bin"
REPLY_FILE: Final = "reply.bin"
_TEMP_PREFIX: Final = ".tmp-"
# Seconds after which a half-built session folder (a crash while creating it) is garbage.
_TEMP_GRACE: Final = 3600.0
_STATE_VERSION: Final = 1


class SessionStatus(enum.StrEnum):
    OPEN = "open"
    CLOSED = "closed"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class ReplyInfo:
    """The server application's answer, kept to replay the final Fragment Ack.

    Attributes:
        url: the ``BITS-Reply-URL`` value sent to the client.
        static: the application named the reply itself (``BITS-Static-Response-URL``); the
            server serves nothing for it.
        copy_to_destination: the application asked for the upload at its URL too
            (``BITS-Copy-File-To-Destination``); it is placed on Close-Session.
    """

    url: str
    static: bool = False
    copy_to_destination: bool = False


@dataclass(frozen=True)
class SessionState:
    """One upload session.

    Attributes:
        id: the braced upper-case GUID.
        segments: the destination below the root (decoded URL path segments).
        url: the destination URL as the client sent it (absolute).
        created: wall-clock seconds.
        touched: wall-clock seconds of the last activity.
        total: the upload's size once the first fragment announced it.
        status: open, closed or cancelled.
        reply: the application's answer (upload-reply, once it succeeded).
    """

    id: str
    segments: tuple[str, ...]
    url: str
    created: float
    touched: float
    total: int | None = None
    status: SessionStatus = SessionStatus.OPEN
    reply: ReplyInfo | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "version": _STATE_VERSION,
            "id": self.id,
            "segments": list(self.segments),
            "url": self.url,
            "created": self.created,
            "touched": self.touched,
            "total": self.total,
            "status": str(self.status),
            "reply": None
            if self.reply is None
            else {
                "url": self.reply.url,
                "static": self.reply.static,
                "copy_to_destination": self.reply.copy_to_destination,
            },
        }

    @classmethod
    def from_json(cls, data: Any) -> SessionState:
        """Raises ValueError, KeyError or TypeError for anything that is not a valid state."""
        if not isinstance(data, dict) or data.get("version") != _STATE_VERSION:
            raise ValueError("not a session state")
        sid = parse_session_id(data["id"])
        segments = data["segments"]
        if sid is None or not isinstance(segments, list):
            raise ValueError("not a session state")
        if not all(isinstance(s, str) and s for s in segments):
            raise ValueError("bad segments")
        total = data["total"]
        if total is not None and (not isinstance(total, int) or total < 0):
            raise ValueError("bad total")
        reply_data = data["reply"]
        reply = None
        if reply_data is not None:
            reply = ReplyInfo(
                url=str(reply_data["url"]),
                static=bool(reply_data["static"]),
                copy_to_destination=bool(reply_data["copy_to_destination"]),
            )
        return cls(
            id=sid,
            segments=tuple(segments),
            url=str(data["url"]),
            created=float(data["created"]),
            touched=float(data["touched"]),
            total=total,
            status=SessionStatus(data["status"]),
            reply=reply,
        )


class SessionStore:
    """The session folders under ``root/.bits-sessions``.

    Args:
        root: the upload root.
    """

    def __init__(self, root: Path) -> None:
        self.dir = root / SESSIONS_DIR
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    # -- paths -----------------------------------------------------------------------------

    def folder(self, sid: str) -> Path:
        return self.dir / sid

    def request_path(self, sid: str) -> Path:
        return self.dir / sid / REQUEST_FILE

    def reply_path(self, sid: str) -> Path:
        return self.dir / sid / REPLY_FILE

    # -- state -----------------------------------------------------------------------------

    def lock(self, sid: str) -> asyncio.Lock:
        """The lock that serialises the packets of session ``sid`` (kept while referenced)."""
        lock = self._locks.get(sid)
        if lock is None:
            lock = asyncio.Lock()
            self._locks[sid] = lock
        return lock

    def create(self, state: SessionState) -> None:
        """Create the folder of a new session with an empty ``request.bin``."""
        self.dir.mkdir(exist_ok=True)
        temp = self.dir / f"{_TEMP_PREFIX}{uuid.uuid4().hex}"
        temp.mkdir()
        try:
            fd = os.open(temp / REQUEST_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            os.close(fd)
            _write_json(temp / STATE_FILE, state.to_json())
            os.rename(temp, self.folder(state.id))
        except BaseException:
            shutil.rmtree(temp, ignore_errors=True)
            raise

    def load(self, sid: str) -> SessionState | None:
        """The session ``sid`` (canonical form), or None if there is none (or it is garbage)."""
        try:
            text = (self.folder(sid) / STATE_FILE).read_text(encoding="utf-8")
            state = SessionState.from_json(json.loads(text))
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return state if state.id == sid else None

    def save(self, state: SessionState) -> None:
        _write_json(self.folder(state.id) / STATE_FILE, state.to_json())

    def received(self, sid: str) -> int:
        """Bytes received so far (0 once the data is gone)."""
        try:
            return self.request_path(sid).stat().st_size
        except FileNotFoundError:
            return 0

    def end(self, state: SessionState, status: SessionStatus, now: float) -> SessionState:
        """Leave a tombstone: delete the data and the reply, keep the state as ``status``."""
        for path in (self.request_path(state.id), self.reply_path(state.id)):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        ended = replace(state, status=status, touched=now)
        self.save(ended)
        return ended

    def delete(self, sid: str) -> None:
        """Delete a session folder and everything in it (blocking for large files)."""
        shutil.rmtree(self.folder(sid), ignore_errors=True)

    def listing(self) -> tuple[list[str], list[Path]]:
        """(session ids, garbage folders) under the session folder."""
        sessions: list[str] = []
        garbage: list[Path] = []
        try:
            entries = list(os.scandir(self.dir))
        except FileNotFoundError:
            return sessions, garbage
        for entry in entries:
            if entry.name.startswith(_TEMP_PREFIX):
                with contextlib.suppress(OSError):
                    if time.time() - entry.stat(follow_symlinks=False).st_mtime > _TEMP_GRACE:
                        garbage.append(Path(entry.path))
                continue
            sid = parse_session_id(entry.name)
            if sid is not None and sid == entry.name:
                sessions.append(sid)
            else:
                garbage.append(Path(entry.path))
        return sessions, garbage


def _write_json(path: Path, data: dict[str, Any]) -> None:
    temp = path.with_name(f"{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        temp.write_text(json.dumps(data, separators=(",", ":")), encoding="utf-8")
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise
