"""Fixtures of the bitsadmin tests: a real daemon process and a way to run ``bitsadmin``
in-process (``main(argv)``) or as the installed entry point. The HTTP server is the CLI tier's
``server`` (tests/cli/conftest.py).

One daemon (tests/client/daemon.py) serves the whole test module;
``bitsadmin`` (the function fixture) points the environment at it and cancels every job the
test left, so each test starts with an empty queue.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import bitsd
from bitsd._errors import BitsError
from bitsd.cli.bitsadmin import main
from tests.client.daemon import Daemon, running_daemon

__all__ = [
    "GUID_RE",
    "BitsAdmin",
    "Result",
    "bitsadmin",
    "bitsadmin_daemon",
]

GUID_RE = re.compile(r"\{[0-9A-F]{8}(?:-[0-9A-F]{4}){3}-[0-9A-F]{12}\}")


@dataclasses.dataclass(frozen=True)
class Result:
    """What one run of bitsadmin gave: exit status, stdout and stderr."""

    status: int
    out: str
    err: str


# The daemon's settings for these tests: the shortest retry delay and short network timeouts,
# as the CLI tier's session daemon (tests/cli/conftest.py) uses.
DAEMON_CONFIG = """
default_minimum_retry_delay = 5.0
connect_timeout = 5.0
read_timeout = 5.0
"""


@pytest.fixture(scope="module")
def bitsadmin_daemon() -> Iterator[Daemon]:
    """A daemon process of its own for the test module.

    Not the CLI tier's session daemon: these tests count every job in the queue (/list,
    /reset, /monitor), so they need a queue no other test writes to.
    """
    with running_daemon(DAEMON_CONFIG) as daemon:
        yield daemon


class BitsAdmin:
    """Runs bitsadmin against the test daemon."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon

    def __call__(self, *argv: str) -> Result:
        """``main(argv)`` in this process, with stdout and stderr captured."""
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            status = main(list(argv))
        return Result(status, out.getvalue(), err.getvalue())

    def ok(self, *argv: str) -> str:
        """Run and require exit status 0; return stdout."""
        result = self(*argv)
        assert result.status == 0, (argv, result)
        return result.out

    def raw(self, *argv: str) -> str:
        """``/rawreturn`` run that must succeed; the bare value."""
        return self.ok("/rawreturn", *argv)

    def wait_state(self, job: str, *states: str, timeout: float = 15.0) -> str:
        """Poll ``/rawreturn /getstate`` until the job is in one of ``states``."""
        deadline = time.monotonic() + timeout
        while True:
            state = self.raw("/getstate", job)
            if state in states:
                return state
            if time.monotonic() > deadline:
                raise AssertionError(f"job {job} stayed {state}, expected {states}")
            time.sleep(0.05)

    def entry_point(self) -> Path:
        """The installed ``bitsadmin`` script, next to this Python."""
        path = Path(sys.executable).parent / "bitsadmin"
        assert path.exists(), "run pip install -e . to install the bitsadmin entry point"
        return path

    def popen(self, *argv: str) -> subprocess.Popen[str]:
        """Start the installed entry point as a separate process."""
        return subprocess.Popen(
            [str(self.entry_point()), *argv],
            env=self.daemon.env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def run(self, *argv: str, timeout: float = 30.0) -> Result:
        """Run the installed entry point to its end."""
        process = self.popen(*argv)
        out, err = process.communicate(timeout=timeout)
        return Result(process.returncode, out, err)


@pytest.fixture
def bitsadmin(bitsadmin_daemon: Daemon, monkeypatch: pytest.MonkeyPatch) -> Iterator[BitsAdmin]:
    """bitsadmin pointed at the module's daemon; the jobs a test leaves are cancelled."""
    env = bitsadmin_daemon.env()
    for name in ("BITSD_STATE_DIR", "BITSD_SOCKET", "BITSD_CONFIG"):
        monkeypatch.setenv(name, env[name])
    yield BitsAdmin(bitsadmin_daemon)
    with bitsd.connect(socket_path=bitsadmin_daemon.socket, autostart=False) as manager:
        for job in manager.jobs():
            with contextlib.suppress(BitsError):
                job.cancel()
