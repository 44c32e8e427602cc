"""Starting the daemon in the background for a client that finds none.

Rules:
- Paths follow the daemon's own rules (docs/control-api.md, "Where the daemon listens"), taken
  from :mod:`bitsd.daemon.paths` so that there is one implementation of them. It is imported
  when needed, so that importing the client does not load the daemon.
- Autostart is race-free by construction, not by coordination between clients: every client
  that finds no daemon may spawn one, and the daemon's lock on the state folder lets exactly
  one of them run; the others exit with :data:`EXIT_LOCKED`, which is not an error for the
  client that spawned them. Each client then connects to whichever daemon won.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

__all__ = ["EXIT_LOCKED", "log_path", "socket_path", "spawn_daemon", "state_dir"]

# The exit status of a daemon that found another one holding the state folder's lock.
EXIT_LOCKED = 3


def state_dir() -> Path:
    """The daemon's state folder (jobs.sqlite, daemon.lock, daemon.log)."""
    from bitsd.daemon.paths import resolve

    return resolve().state_dir


def socket_path() -> Path:
    """The daemon's control socket."""
    from bitsd.daemon.paths import resolve

    return resolve().socket


def log_path() -> Path:
    """Where a daemon started by a client writes its stderr."""
    from bitsd.daemon.paths import resolve

    return resolve().log


def spawn_daemon(socket: str | os.PathLike[str]) -> subprocess.Popen[bytes]:
    """Start ``python -m bitsd.daemon`` in the background, listening on ``socket``.

    The daemon runs in a new session (no controlling terminal, untouched by the caller's
    Ctrl-C), with stdin and stdout on /dev/null and stderr appended to ``<state dir>/daemon.log``;
    it inherits the caller's environment, with ``BITSD_SOCKET`` set to ``socket`` so that it
    listens where the caller will connect. A thread reaps it when it exits (at once if another
    daemon holds the lock), so no zombie is left behind.

    Raises:
        OSError: the state folder or the log cannot be created, or Python cannot be started.
    """
    from bitsd.daemon.paths import ensure_private_dir, resolve

    env = dict(os.environ)
    env["BITSD_SOCKET"] = os.fspath(socket)
    paths = resolve(env=env)
    ensure_private_dir(paths.state_dir)
    log_fd = os.open(paths.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bitsd.daemon"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log_fd,
            env=env,
            start_new_session=True,
            close_fds=True,
        )
    finally:
        os.close(log_fd)
    threading.Thread(target=proc.wait, name=f"bitsd-reap-{proc.pid}", daemon=True).start()
    return proc
