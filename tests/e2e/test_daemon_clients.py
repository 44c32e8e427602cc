"""The daemon as a service for client processes: shared jobs, jobs that outlive their
creator, callbacks in other processes with the JobError contract, a crash mid-transfer, and
the per-user limit of four notifications in flight.

Every test runs the real daemon (``python -m bitsd.daemon``) and real client processes
(``tests/e2e/client_child.py``); content comes from a loopback FaultServer.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import bitsd
from bitsd import JobState, codes
from tests.client.daemon import ROOT, Daemon, fault_server, running_daemon
from tests.servers.faulty import Fault, FaultServer

pytestmark = pytest.mark.e2e

CHILD = Path(__file__).with_name("client_child.py")
DONE = (JobState.TRANSFERRED, JobState.ERROR)
# Service settings that keep the tests fast (keys of docs/daemon config: EngineConfig fields).
CONFIG = """\
notify_retry_interval = 0.5
checkpoint_seconds = 0.2
checkpoint_bytes = 262144
chunk_size = 65536
"""


@pytest.fixture(scope="module")
def server() -> Iterator[FaultServer]:
    """A fault-injecting HTTP server in a thread, reachable from the daemon process."""
    with fault_server() as s:
        yield s


@pytest.fixture
def daemon() -> Iterator[Daemon]:
    """A daemon of this test only, with the fast CONFIG."""
    with running_daemon(CONFIG) as d:
        yield d


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    d = tmp_path / "dest"
    d.mkdir()
    return d


def run_child(daemon: Daemon, *args: str) -> list[str]:
    """Run client_child.py to the end; its stdout lines."""
    done = subprocess.run(
        [sys.executable, str(CHILD), *args],
        env=daemon.env(),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


class Listener:
    """A ``client_child.py listen`` process: registered once ``ready`` is printed, it serves
    callbacks until :meth:`stop` closes its stdin."""

    def __init__(self, daemon: Daemon, report: Path, mode: str, job_ids: list[str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(CHILD), "listen", str(report), mode, *job_ids],
            env=daemon.env(),
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line == "ready\n", f"listener failed: {line!r}"

    def stop(self) -> None:
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.proc.stdin.close()
        assert self.proc.wait(10) == 0
        self.proc.stdout.close()


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def wait_until(predicate: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_two_client_processes_see_the_same_jobs(daemon: Daemon) -> None:
    """Jobs one process creates are listed, with their names, by another process."""
    created = run_child(daemon, "make", "first", "second")
    listed = run_child(daemon, "list")
    assert listed == [f"{created[0]} first", f"{created[1]} second"]


def test_job_of_an_exited_process_completes_and_runs_its_command_line(
    daemon: Daemon, server: FaultServer, dest: Path, tmp_path: Path
) -> None:
    """A process creates a download with a notify command line and exits; the daemon
    transfers it and runs the command line, which completes the job from a new process: the
    file is byte-identical and the job is gone."""
    data = os.urandom(500_000)
    server.add("/exited", data)
    marker = tmp_path / "completed"
    [job_id] = run_child(daemon, "download", server.url("/exited"), str(dest / "f"), str(marker))
    wait_until(lambda: lines(marker) == ["S_OK"])
    assert sha256((dest / "f").read_bytes()) == sha256(data)
    assert job_id not in " ".join(run_child(daemon, "list"))


def test_callback_in_another_process_gets_job_error_after_a_404(
    daemon: Daemon, server: FaultServer, dest: Path, tmp_path: Path
) -> None:
    """A process registers a callback for a job this test created; after a 404 the daemon
    calls its job_error once, with REMOTE_FILE and 0x80190194 and the file's URL."""
    report = tmp_path / "report"
    url = server.url("/missing-404")
    with bitsd.connect(socket_path=daemon.socket, autostart=False) as manager:
        job = manager.create_job("404")
        job.add_file(url, str(dest / "m"))
        listener = Listener(daemon, report, "record", [job.id])
        job.resume()
        assert job.wait(DONE, timeout=15) is JobState.ERROR
        wait_until(lambda: bool(lines(report)))
        time.sleep(0.3)
        listener.stop()
    assert lines(report) == [f"job_error {job.id} 0x80190194 REMOTE_FILE {url}"]


def test_failing_callback_is_called_again(
    daemon: Daemon, server: FaultServer, dest: Path, tmp_path: Path
) -> None:
    """A callback in another process that fails (raises, then returns E_FAIL) is called again
    after the notify retry interval (0.5 s) until it accepts, then never again."""
    report = tmp_path / "report"
    with bitsd.connect(socket_path=daemon.socket, autostart=False) as manager:
        job = manager.create_job("retry")
        job.add_file(server.url("/missing-retry"), str(dest / "m"))
        listener = Listener(daemon, report, "fail:2", [job.id])
        job.resume()
        wait_until(lambda: len(lines(report)) >= 3)
        time.sleep(1.2)
        listener.stop()
    calls = [line.split() for line in lines(report)]
    assert [c[:3] for c in calls] == [["call", "job_error", job.id]] * 3
    times = [float(c[3]) for c in calls]
    assert all(later - earlier >= 0.4 for earlier, later in itertools.pairwise(times))


def test_failing_callback_with_a_command_line_runs_it_once_instead(
    daemon: Daemon, server: FaultServer, dest: Path, tmp_path: Path
) -> None:
    """When the callback fails and the job has a notify command line, the daemon runs the
    command line once and does not call the callback again."""
    report, marker = tmp_path / "report", tmp_path / "ran"
    script = f"open({str(marker)!r}, 'a').write('ran\\n')"
    with bitsd.connect(socket_path=daemon.socket, autostart=False) as manager:
        job = manager.create_job("cmdline")
        job.add_file(server.url("/missing-cmd"), str(dest / "m"))
        job.set_notify_cmd_line(sys.executable, f'python -c "{script}"')
        listener = Listener(daemon, report, "fail:100", [job.id])
        job.resume()
        wait_until(marker.exists)
        time.sleep(1.5)
        listener.stop()
        assert job.get_state() is JobState.ERROR
    assert len(lines(report)) == 1
    assert lines(marker) == ["ran"]


def test_sigkill_mid_transfer_then_restart_finishes_byte_identical(
    daemon: Daemon, server: FaultServer, dest: Path
) -> None:
    """SIGKILL the daemon during a download; started again on the same state it resumes the
    job by itself from its last checkpoint (a Range request) and the file is byte-identical."""
    import random

    data = random.Random(11).randbytes(6_000_000)
    server.add("/big", data)
    server.set_fault("/big", Fault(rate=3_000_000))
    with bitsd.connect(socket_path=daemon.socket, autostart=False) as manager:
        job = manager.create_job("killed")
        job.add_file(server.url("/big"), str(dest / "big"))
        job.resume()
        while (job.get_progress()).bytes_transferred < 2_000_000:
            time.sleep(0.05)
        daemon.kill()
        server.clear_fault("/big")
        daemon.start()
        assert job.wait(DONE, timeout=30) is JobState.TRANSFERRED
        assert job.complete() == codes.S_OK
    assert sha256((dest / "big").read_bytes()) == sha256(data)
    first, second = server.requests_for("/big")[:2]
    assert second.range is not None
    resumed_at = int(second.range.removeprefix("bytes=").rstrip("-"))
    assert 0 < resumed_at <= first.bytes_sent


def test_at_most_four_notifications_in_flight_across_two_processes(
    daemon: Daemon, server: FaultServer, dest: Path, tmp_path: Path
) -> None:
    """Six jobs fail at once; their blocking callbacks live in two processes (three each).
    Four calls enter and the other two wait for a free slot; once released, all six run, and
    never more than four at a time."""
    report, release = tmp_path / "report", tmp_path / "release"
    with bitsd.connect(socket_path=daemon.socket, autostart=False) as manager:
        jobs = []
        for i in range(6):
            job = manager.create_job(f"slot {i}")
            job.add_file(server.url(f"/missing-slot-{i}"), str(dest / f"m{i}"))
            jobs.append(job)
        listeners = [
            Listener(daemon, report, f"block:{release}", [j.id for j in jobs[:3]]),
            Listener(daemon, report, f"block:{release}", [j.id for j in jobs[3:]]),
        ]
        for job in jobs:
            job.resume()
        wait_until(lambda: len(lines(report)) >= 4)
        time.sleep(0.7)
        assert [line.split()[0] for line in lines(report)] == ["enter"] * 4
        release.touch()
        wait_until(lambda: len(lines(report)) == 12)
        for listener in listeners:
            listener.stop()
    running, most = 0, 0
    for line in lines(report):
        running += 1 if line.startswith("enter") else -1
        most = max(most, running)
    assert most == 4
    assert sorted(line.split()[1] for line in lines(report) if line.startswith("enter")) == sorted(
        j.id for j in jobs
    )
