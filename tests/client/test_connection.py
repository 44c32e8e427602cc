"""Finding the daemon: autostart (alone and racing), and a daemon that goes away."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import bitsd
from bitsd import BitsError, JobState
from bitsd._client import DAEMON_UNAVAILABLE
from bitsd.aio import connect
from tests.client.daemon import (
    Daemon,
    daemon_pid,
    processes_with_env,
    running_daemon,
    short_tmp,
    wait_for_exit,
)

pytestmark = pytest.mark.e2e  # every test here talks to a real daemon process


@pytest.fixture
def no_daemon(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An environment whose state folder, socket and config point into a fresh short folder
    where no daemon runs; any daemon started there is stopped afterwards."""
    with short_tmp() as root:
        state = root / "state"
        monkeypatch.setenv("BITSD_STATE_DIR", str(state))
        monkeypatch.setenv("BITSD_SOCKET", str(root / "run" / "bitsd.sock"))
        monkeypatch.setenv("BITSD_CONFIG", str(root / "config.toml"))
        try:
            yield root
        finally:
            for pid in daemons_of(state):
                os.kill(pid, signal.SIGKILL)


def daemons_of(state: Path) -> list[int]:
    """Daemon processes started for this state folder (not this test process)."""
    return [p for p in processes_with_env("BITSD_STATE_DIR", str(state)) if p != os.getpid()]


def test_connect_starts_the_daemon(no_daemon: Path) -> None:
    """With no daemon running, bitsd.connect() starts one in the background (its stderr in
    <state>/daemon.log), and it answers until SIGTERM stops it with status 0."""
    socket = no_daemon / "run" / "bitsd.sock"
    with bitsd.connect(timeout=20) as manager:
        job = manager.create_job("autostarted")
        assert job.get_state() is JobState.SUSPENDED
        job.cancel()
    pid = daemon_pid(socket)
    assert daemons_of(no_daemon / "state") == [pid]
    assert (no_daemon / "state" / "daemon.log").exists()
    os.kill(pid, signal.SIGTERM)
    wait_for_exit(pid)
    with pytest.raises(BitsError) as info:
        bitsd.connect(autostart=False, timeout=0.2)
    assert info.value.hresult == DAEMON_UNAVAILABLE


def test_two_clients_autostarting_at_once_share_one_daemon(no_daemon: Path) -> None:
    """Two clients that find no daemon at the same instant both spawn one; the daemon lock
    lets one run and the other exit, and both clients connect to the same daemon."""
    barrier = threading.Barrier(2)
    results: list[object] = []

    def client() -> None:
        barrier.wait()
        try:
            with bitsd.connect(timeout=20) as manager:
                job = manager.create_job("racer")
                results.append(manager.get_job(job.id).id)
                job.cancel()
        except BaseException as exc:
            results.append(exc)

    threads = [threading.Thread(target=client) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert [type(r) for r in results] == [str, str], results
    pid = daemon_pid(no_daemon / "run" / "bitsd.sock")
    # The loser exits at once (status 3) and is reaped; only the winner stays.
    deadline = 50
    while daemons_of(no_daemon / "state") != [pid] and deadline:
        deadline -= 1
        time.sleep(0.1)
    assert daemons_of(no_daemon / "state") == [pid]
    os.kill(pid, signal.SIGTERM)
    wait_for_exit(pid)


async def test_a_vanished_daemon_is_daemon_unavailable_until_it_is_back() -> None:
    """When the daemon dies, calls raise BitsError DAEMON_UNAVAILABLE (0x800706BA) with a
    message that says so; when it is started again the same manager works again."""
    with running_daemon() as daemon:
        async with await connect(socket_path=daemon.socket, autostart=False) as manager:
            job = await manager.create_job("vanish")
            daemon.kill()
            for call in (manager.jobs(), job.get_state(), job.resume()):
                with pytest.raises(BitsError) as info:
                    await call
                assert info.value.hresult == DAEMON_UNAVAILABLE
                assert "daemon is unreachable" in str(info.value)
            daemon.start()
            assert await job.get_state() is JobState.SUSPENDED
            assert job in await manager.jobs()
            await job.cancel()


def test_explicit_socket_path_beats_the_environment(no_daemon: Path) -> None:
    """connect(socket_path=...) talks to that socket even when BITSD_SOCKET names another."""
    with short_tmp() as other:
        daemon = Daemon(other)
        daemon.start()
        try:
            with bitsd.connect(socket_path=daemon.socket, autostart=False) as manager:
                assert manager.socket_path == str(daemon.socket)
                manager.create_job("elsewhere").cancel()
        finally:
            assert daemon.stop() == 0
    assert daemons_of(no_daemon / "state") == []
