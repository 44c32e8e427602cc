"""The control socket: a Unix stream socket only its owner can open.

Rules:
- The folder is created mode 0700 if missing (``paths.ensure_private_dir``).
- The socket is bound with umask 0o177, so its file is 0600 from its first instant: there is no
  window between bind and chmod in which another user could connect.
- A socket file left by a daemon that died is unlinked before binding. Callers bind only while
  holding the daemon lock, so it cannot be a live daemon's socket. A path that exists and is not
  a socket is never deleted: that is an error.
- A path longer than ``sun_path`` allows is refused with a message saying so.
"""

from __future__ import annotations

import contextlib
import os
import socket
import stat
from pathlib import Path

from bitsd.daemon.paths import ensure_private_dir

__all__ = ["ListenError", "bind_control_socket", "remove_control_socket"]

# Bytes in sockaddr_un.sun_path on Linux, including the terminating NUL.
_SUN_PATH_MAX = 108


class ListenError(Exception):
    """The control socket cannot be created; the message says why."""


def bind_control_socket(path: Path) -> socket.socket:
    """Create the folder, remove a stale socket file, and bind a stream socket at ``path``.

    Returns:
        The bound socket (not listening yet: the server calls ``listen``).

    Raises:
        ListenError: the path is too long, is not a socket, or cannot be bound.
    """
    if len(os.fsencode(path)) >= _SUN_PATH_MAX:
        raise ListenError(
            f"the socket path {path} is {len(os.fsencode(path))} bytes long; Unix sockets allow "
            f"at most {_SUN_PATH_MAX - 1} (set BITSD_SOCKET or --socket to a shorter path)"
        )
    try:
        ensure_private_dir(path.parent)
        _remove_stale(path)
    except OSError as exc:
        raise ListenError(f"cannot prepare the socket {path}: {exc}") from None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)
    try:
        sock.bind(os.fspath(path))
    except OSError as exc:
        sock.close()
        raise ListenError(f"cannot bind the socket {path}: {exc}") from None
    finally:
        os.umask(old_umask)
    return sock


def remove_control_socket(path: Path) -> None:
    """Remove the socket file at ``path`` (a daemon's last act while it holds the lock)."""
    with contextlib.suppress(FileNotFoundError):
        _remove_stale(path)


def _remove_stale(path: Path) -> None:
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise ListenError(f"{path} exists and is not a socket; remove it or choose another path")
    path.unlink()
