"""Fixtures of the client tier: one real daemon process for the session, a loopback HTTP
server, and a ``backend`` that is either the in-process engine or a client of that daemon, so
that one test body pins the same results for both."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from bitsd._client import RemoteJob
from bitsd.aio import Engine, Job, Manager, connect
from tests.client.daemon import Daemon, fault_server, running_daemon
from tests.servers.faulty import FaultServer

Backend = Engine | Manager
AnyJob = Job | RemoteJob


# The shared daemon serves many tests' jobs at once: no per-user job limit (BITS's 60).
SHARED_CONFIG = "max_jobs_per_user = 0\n"


@pytest.fixture(scope="package")
def daemon() -> Iterator[Daemon]:
    """One bitsd daemon process shared by the client tests (each test makes its own jobs)."""
    with running_daemon(SHARED_CONFIG) as d:
        yield d


@pytest.fixture(scope="package")
def server() -> Iterator[FaultServer]:
    """A fault-injecting HTTP server in a thread, reachable from the daemon process."""
    with fault_server() as s:
        yield s


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    """The destination folder of downloads."""
    d = tmp_path / "dest"
    d.mkdir()
    return d


@pytest.fixture
async def manager(daemon: Daemon) -> AsyncIterator[Manager]:
    """An asyncio client of the shared daemon."""
    async with await connect(socket_path=daemon.socket, autostart=False) as m:
        yield m


@pytest.fixture(params=["engine", "daemon"])
async def backend(
    request: pytest.FixtureRequest, daemon: Daemon, tmp_path: Path
) -> AsyncIterator[Backend]:
    """The in-process engine or a client of the daemon: the same verbs, the same results."""
    if request.param == "engine":
        async with Engine(tmp_path / "engine-state") as engine:
            yield engine
    else:
        async with await connect(socket_path=daemon.socket, autostart=False) as m:
            yield m
