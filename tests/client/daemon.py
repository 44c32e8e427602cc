"""A real bitsd daemon process for tests, a tiny HTTP client for its Unix socket, and the
loopback content server in a thread.

The daemon runs as ``python -m bitsd.daemon`` with its own state folder, socket and config file
under a short folder in /tmp (a Unix socket path must fit in 108 bytes, which pytest's
``tmp_path`` does not promise). Nothing here imitates the daemon.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bitsd._blocking import BlockingChannel
from tests.servers.faulty import FaultServer

ROOT = Path(__file__).resolve().parents[2]
# Seconds a daemon may take to answer its first request, or to exit after SIGTERM.
START_TIMEOUT = 15.0
STOP_TIMEOUT = 10.0
_UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")


@contextlib.contextmanager
def fault_server() -> Iterator[FaultServer]:
    """``FaultServer.in_thread()``, then the uvicorn logger levels it set are put back (uvicorn
    sets them process-wide), so later tests see this process as it was."""
    levels = {name: logging.getLogger(name).level for name in _UVICORN_LOGGERS}
    try:
        with FaultServer.in_thread() as server:
            yield server
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


@contextlib.contextmanager
def short_tmp() -> Iterator[Path]:
    """A fresh folder with a short path under /tmp, removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="bitsd-t-", dir="/tmp"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def http_json(
    socket_path: str | os.PathLike[str],
    method: str,
    path: str,
    body: object = None,
    timeout: float = 5.0,
) -> tuple[int, Any]:
    """One request to the daemon's socket, on a connection of its own: (status, decoded JSON
    body or None)."""
    channel = BlockingChannel(os.fspath(socket_path))
    try:
        payload = None if body is None else json.dumps(body).encode()
        status, data = channel.exchange(method, path, payload, timeout)
        return status, (json.loads(data) if data else None)
    finally:
        channel.close()


def daemon_pid(socket_path: str | os.PathLike[str]) -> int:
    """The pid the daemon on ``socket_path`` reports in GET /v1/version."""
    status, body = http_json(socket_path, "GET", "/v1/version")
    assert status == 200, body
    return int(body["pid"])


def processes_with_env(name: str, value: str) -> list[int]:
    """Pids of this user's processes whose environment has ``name=value``."""
    wanted = f"{name}={value}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            env = Path(f"/proc/{entry}/environ").read_bytes()
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # A zombie (state Z) has exited; only its parent has not reaped it yet.
        if wanted in env.split(b"\0") and stat.rsplit(")", 1)[1].split()[0] != "Z":
            found.append(int(entry))
    return found


def wait_for_exit(pid: int, timeout: float = STOP_TIMEOUT) -> None:
    """Wait until process ``pid`` (not necessarily our child) is gone or a zombie."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return
        if state == "Z":
            return
        time.sleep(0.02)
    raise AssertionError(f"process {pid} still runs after {timeout} s")


class Daemon:
    """A bitsd daemon process on its own state folder, socket and config file.

    Args:
        root: a short folder that holds ``state/``, ``run/bitsd.sock`` and ``config.toml``.
        config: the TOML text of the config file.
    """

    def __init__(self, root: Path, config: str = "") -> None:
        self.root = root
        self.state_dir = root / "state"
        self.socket = root / "run" / "bitsd.sock"
        self.config = root / "config.toml"
        self.config.write_text(config)
        self.log = root / "daemon.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def env(self) -> dict[str, str]:
        """The environment of the daemon and of client processes that talk to it."""
        env = dict(os.environ)
        env.update(
            BITSD_STATE_DIR=str(self.state_dir),
            BITSD_SOCKET=str(self.socket),
            BITSD_CONFIG=str(self.config),
            XDG_STATE_HOME=str(self.root / "xdg-state"),
            XDG_CONFIG_HOME=str(self.root / "xdg-config"),
            XDG_RUNTIME_DIR=str(self.root / "xdg-run"),
        )
        return env

    def start(self) -> None:
        """Start ``python -m bitsd.daemon`` and wait until it answers GET /v1/version."""
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
        self.wait_ready()

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while True:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"the daemon exited with {self.proc.returncode}: {self.log.read_text()}"
                )
            with contextlib.suppress(OSError, http.client.HTTPException):
                if http_json(self.socket, "GET", "/v1/version")[0] == 200:
                    return
            if time.monotonic() > deadline:
                raise AssertionError(f"the daemon did not answer: {self.log.read_text()}")
            time.sleep(0.02)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stop(self) -> int:
        """SIGTERM, then wait; returns the exit status."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("the daemon did not exit after SIGTERM") from None

    def kill(self) -> None:
        """SIGKILL, then reap."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()


@contextlib.contextmanager
def running_daemon(config: str = "") -> Iterator[Daemon]:
    """A started daemon in a fresh short folder; stopped (SIGTERM) and removed afterwards."""
    with short_tmp() as root:
        daemon = Daemon(root, config)
        daemon.start()
        try:
            yield daemon
        finally:
            if daemon.proc is not None and daemon.proc.poll() is None:
                daemon.stop()
