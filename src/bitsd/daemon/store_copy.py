"""What the daemon does with a job store it cannot use: keep a copy, and refuse to start.

Rules:
- A store that is corrupt, truncated, or written by a newer bitsd (the engine raises
  ``StoreError``) is never repaired, replaced or started empty over: its jobs would be lost. The
  daemon copies it, with its WAL (which may hold committed changes), to
  ``jobs.sqlite.corrupt-<UTC time>`` beside it, says where, and exits with status 4. The store
  itself stays where it was, untouched.
- A copy identical to the newest one already there is not made again, so a daemon started over
  and over (clients' autostart, a service manager) does not fill the disk with copies.
- Copies are created mode 0600, like the store.
"""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

__all__ = ["WAL_SUFFIX", "copy_aside"]

WAL_SUFFIX = "-wal"
_MARK = ".corrupt-"


def copy_aside(store: Path, *, now: datetime | None = None) -> Path:
    """Copy ``store`` and its WAL (if any) to ``<store>.corrupt-<UTC time>``.

    Args:
        store: the job store file.
        now: the time the copy is named after (default: now).

    Returns:
        The copy's path (an existing identical copy, if the newest one is).

    Raises:
        OSError: the copy could not be made.
    """
    newest = _newest_copy(store)
    if newest is not None and _same(store, newest):
        return newest
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    target = store.with_name(f"{store.name}{_MARK}{stamp}")
    number = 1
    while target.exists():
        number += 1
        target = store.with_name(f"{store.name}{_MARK}{stamp}-{number}")
    _copy(store, target)
    wal = _wal(store)
    if wal.exists():
        _copy(wal, _wal(target))
    return target


def _wal(path: Path) -> Path:
    return path.with_name(path.name + WAL_SUFFIX)


def _newest_copy(store: Path) -> Path | None:
    copies = [
        p for p in store.parent.glob(f"{store.name}{_MARK}*") if not p.name.endswith(WAL_SUFFIX)
    ]
    return max(copies, key=lambda p: p.stat().st_mtime_ns, default=None)


def _same(store: Path, copy: Path) -> bool:
    """Whether ``copy`` holds the same bytes as ``store``, WAL included."""
    pairs = [(store, copy), (_wal(store), _wal(copy))]
    for a, b in pairs:
        if a.exists() != b.exists():
            return False
        if a.exists() and (
            a.stat().st_size != b.stat().st_size or a.read_bytes() != b.read_bytes()
        ):
            return False
    return True


def _copy(source: Path, target: Path) -> None:
    """Copy ``source`` to a new file ``target`` of mode 0600 (never readable by others, not even
    for an instant), flushed to disk."""
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "wb") as out, source.open("rb") as data:
        shutil.copyfileobj(data, out)
        out.flush()
        os.fsync(out.fileno())
