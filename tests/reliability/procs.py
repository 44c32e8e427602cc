"""Helpers of the reliability tier: a daemon process that can be killed and started again at
any moment, seeds, and checks of a destination folder.

The daemon is ``tests.client.daemon.Daemon`` (a real ``python -m bitsd.daemon`` process on
its own state folder and socket); :class:`KillableDaemon` adds a start that does not wait for
readiness, so a kill can land during start-up too.
"""

from __future__ import annotations

import hashlib
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import bitsd._files
from tests.client.daemon import ROOT, Daemon

__all__ = [
    "LONG",
    "KillableDaemon",
    "final_names",
    "kernel_in_flight",
    "kill_left_running",
    "new_seed",
    "sha256",
    "splice_helpers",
    "temp_files",
]

LONG = os.environ.get("BITSD_LONG") == "1"
"""The long variant (``BITSD_LONG=1``): more kills, rounds and examples."""

STARTED: list[KillableDaemon] = []
"""Every daemon process this session spawned (see :func:`kill_left_running`)."""


def new_seed() -> int:
    """``BITSD_SEED`` when set (to replay a run), else a fresh random seed."""
    given = os.environ.get("BITSD_SEED")
    return int(given) if given else random.SystemRandom().randrange(2**32)


def sha256(data: bytes | memoryview) -> str:
    return hashlib.sha256(data).hexdigest()


def temp_files(folder: Path) -> list[str]:
    """bitsd's temporary files in ``folder``."""
    return sorted(p for p in os.listdir(folder) if p.endswith(bitsd._files.TEMP_SUFFIX))


def final_names(folder: Path) -> list[str]:
    """Files in ``folder`` that are not bitsd's temporary files."""
    return sorted(p for p in os.listdir(folder) if not p.endswith(bitsd._files.TEMP_SUFFIX))


def splice_helpers(pid: int) -> list[int]:
    """The splice helper processes (``bitsd._transfer.splicehelper``) of the process ``pid``."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []
    found = []
    for child in children:
        try:
            command = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue
        if b"splicehelper_child.py" in command:
            found.append(int(child))
    return found


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, dead and not reaped yet, does not)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status and "\nState:\tX" not in status


def kill_left_running(since: int) -> None:
    """SIGKILL the daemon processes started after ``STARTED[since]`` that still run (a test
    that failed half-way); the reliability conftest calls it after each test."""
    for daemon in STARTED[since:]:
        if daemon.proc is not None and daemon.proc.poll() is None:
            daemon.proc.kill()
            daemon.proc.wait()


class KillableDaemon(Daemon):
    """A daemon process that the test kills with SIGKILL and starts again, on one state.

    Args:
        root: as for ``Daemon``.
        config: as for ``Daemon``.
        env: variables added to the daemon's environment.
    """

    def __init__(self, root: Path, config: str = "", env: dict[str, str] | None = None) -> None:
        super().__init__(root, config)
        self.extra_env = dict(env or {})
        self.helpers_killed = 0  # splice helpers seen die with the daemon

    def env(self) -> dict[str, str]:
        return {**super().env(), **self.extra_env}

    def spawn(self) -> None:
        """Start the process and return at once (it may not answer yet)."""
        STARTED.append(self)
        self.socket.parent.mkdir(mode=0o700, exist_ok=True)
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "bitsd.daemon"],
                env=self.env(),
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        self.started_at = time.monotonic()

    def start(self) -> None:
        """Start the process and wait until it answers."""
        self.spawn()
        self.wait_ready()

    def kill(self) -> None:
        """SIGKILL, then reap; the process must not have exited by itself before. Its splice
        helper process, if it had one, must die with it (PR_SET_PDEATHSIG): a helper left
        running could write into a file the next daemon resumes."""
        assert self.proc is not None
        assert self.proc.poll() is None, f"the daemon exited by itself: {self.log_text()}"
        helpers = splice_helpers(self.proc.pid)
        super().kill()
        deadline = time.monotonic() + 5
        while any(_alive(pid) for pid in helpers):
            assert time.monotonic() < deadline, f"splice helpers {helpers} outlived the daemon"
            time.sleep(0.01)
        self.helpers_killed += len(helpers)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def kernel_in_flight(port: int) -> int:
    """Bytes in the kernel's TCP buffers between the server on 127.0.0.1:``port`` and its
    clients (/proc/net/tcp): what the server's sockets have sent but not had acknowledged, plus
    what the clients' sockets have received but their process has not read yet. A process
    killed at this moment loses them although the server counts them as sent."""
    total = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, queues = fields[1], fields[2], fields[4]
        tx, rx = (int(n, 16) for n in queues.split(":"))
        if int(local.rsplit(":", 1)[1], 16) == port:
            total += tx
        elif int(remote.rsplit(":", 1)[1], 16) == port:
            total += rx
    return total
