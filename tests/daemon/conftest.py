"""Fixtures of the daemon tier: short paths for Unix sockets, a daemon in this event loop or in a
process of its own, and an HTTP client on its socket."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bitsd.daemon.paths import Paths
from bitsd.daemon.service import Daemon

# Seconds a daemon process may take to accept connections (a Python start with its imports).
START_TIMEOUT = 15.0


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A fresh folder under /tmp: Unix socket paths must stay under 108 bytes, which pytest's
    tmp_path does not promise."""
    path = Path(tempfile.mkdtemp(prefix="bitsd-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def paths(short_dir: Path) -> Paths:
    """The daemon's paths in ``short_dir`` (socket in a folder that does not exist yet)."""
    return Paths(short_dir / "state", short_dir / "run" / "bitsd.sock", short_dir / "config.toml")


@pytest.fixture(autouse=True)
def _restore_log_levels() -> Iterator[None]:
    """A daemon sets the levels of the bitsd and uvicorn loggers; put them back."""
    names = ("bitsd", "uvicorn", "uvicorn.error", "uvicorn.asgi")
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    yield
    for logger, level in zip(loggers, levels, strict=True):
        logger.setLevel(level)


def write_config(path: Path, **keys: Any) -> None:
    """Write a TOML config file with these top-level keys (strings, numbers, booleans)."""
    lines = [f"{key} = {_toml(value)}" for key, value in keys.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(value)


@pytest.fixture
async def daemon(paths: Paths) -> AsyncIterator[Daemon]:
    """A daemon served in this event loop (real engine, real clock), failing callbacks retried
    every 0.2 s."""
    write_config(paths.config, notify_retry_interval=0.2)
    async with Daemon(paths) as d:
        yield d


@pytest.fixture
async def api(paths: Paths, daemon: Daemon) -> AsyncIterator[aiohttp.ClientSession]:
    """An HTTP client on the in-process daemon's socket (base URL ``http://bitsd``)."""
    async with unix_session(paths.socket) as session:
        yield session


def unix_session(socket_path: Path) -> aiohttp.ClientSession:
    """An aiohttp session whose every request goes to the Unix socket ``socket_path``."""
    return aiohttp.ClientSession(
        "http://bitsd", connector=aiohttp.UnixConnector(path=str(socket_path))
    )


class DaemonProcess:
    """``python -m bitsd.daemon`` in a process of its own, with its stderr in a file.

    Args:
        paths: given through BITSD_STATE_DIR, BITSD_SOCKET and BITSD_CONFIG.
        args: extra command-line arguments.
        env: extra environment variables.
    """

    def __init__(
        self, paths: Paths, *args: str, env: dict[str, str] | None = None, log: Path
    ) -> None:
        self.paths = paths
        self.log = log
        full_env = {
            **os.environ,
            "BITSD_STATE_DIR": str(paths.state_dir),
            "BITSD_SOCKET": str(paths.socket),
            "BITSD_CONFIG": str(paths.config),
            **(env or {}),
        }
        self._stderr = log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bitsd.daemon", *args],
            env=full_env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_ready(self) -> DaemonProcess:
        """Return once the socket accepts connections; fail with the log if the process ends."""
        deadline = time.monotonic() + START_TIMEOUT
        while not accepts(self.paths.socket):
            if self.proc.poll() is not None:
                pytest.fail(f"the daemon exited with {self.proc.returncode}:\n{self.output()}")
            if time.monotonic() > deadline:
                pytest.fail(f"the daemon did not become ready:\n{self.output()}")
            time.sleep(0.02)
        return self

    def stop(self, timeout: float = 5.0) -> int:
        """SIGTERM, and the exit status (fails if it takes longer than ``timeout`` seconds)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        finally:
            self.close()

    def close(self) -> None:
        """Kill the process if it still runs, and close its log."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._stderr.close()

    def output(self) -> str:
        """What the daemon wrote to stderr so far."""
        return self.log.read_text(encoding="utf-8", errors="replace")


def accepts(socket_path: Path) -> bool:
    """Whether something accepts connections on the Unix socket ``socket_path``."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        try:
            sock.connect(str(socket_path))
        except OSError:
            return False
    return True


# spawn(paths, *args, env=None): a started DaemonProcess.
Spawn = Callable[..., DaemonProcess]


@pytest.fixture
def spawn(short_dir: Path) -> Iterator[Spawn]:
    """Start daemon processes (``spawn(paths, *args, env=...)``); all are killed at the end."""
    started: list[DaemonProcess] = []
    counter = iter(range(1_000))

    def start(paths: Paths, *args: str, env: dict[str, str] | None = None) -> DaemonProcess:
        process = DaemonProcess(
            paths, *args, env=env, log=short_dir / f"daemon-{next(counter)}.log"
        )
        started.append(process)
        return process

    yield start
    for process in started:
        process.close()
