"""One daemon per state folder: an exclusive ``flock`` on ``<state>/daemon.lock``.

Rules:
- The lock is ``flock(LOCK_EX | LOCK_NB)`` on a file that is never deleted (deleting it would let
  two daemons lock two different files of the same name). The kernel drops the lock when its
  holder exits, even by SIGKILL, so a lock file left behind is harmless.
- The holder writes its pid in the file; a second daemon does not wait: it fails at once with
  :class:`LockHeldError` naming that pid and the file.
- Whatever only one daemon may do (unlinking a stale control socket) is done while holding it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from pathlib import Path
from types import TracebackType

__all__ = ["DaemonLock", "LockHeldError"]

# Seconds a second daemon waits for the holder to write its pid (the holder writes it right
# after taking the lock, so only a start in that instant needs to wait).
_PID_WAIT = 0.5


class LockHeldError(Exception):
    """Another daemon holds the lock of this state folder.

    Attributes:
        path: the lock file.
        pid: the holder's pid, or None if it could not be read.
    """

    def __init__(self, path: Path, pid: int | None) -> None:
        self.path = path
        self.pid = pid
        holder = f"pid {pid}" if pid is not None else "pid unknown"
        super().__init__(f"another daemon ({holder}) holds {path}")


class DaemonLock:
    """The daemon lock of a state folder, held from :meth:`acquire` to :meth:`release`.

    Args:
        path: the lock file (created mode 0600 if missing).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock and write this process's pid in the file.

        Raises:
            LockHeldError: another process holds it.
            OSError: the file cannot be opened.
        """
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise LockHeldError(self.path, _holder_pid(self.path)) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        """Let the lock go (the file stays)."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            os.close(fd)

    def __enter__(self) -> DaemonLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def _holder_pid(path: Path) -> int | None:
    """The pid written in the lock file, waiting briefly for a holder that just took it."""
    deadline = time.monotonic() + _PID_WAIT
    while True:
        with contextlib.suppress(OSError, ValueError):
            return int(path.read_text(encoding="ascii").strip())
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.02)
