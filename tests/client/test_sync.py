"""The synchronous client, ``bitsd.connect()``: the async client's results as blocking calls,
callbacks in worker threads, and a private loop thread that close() stops."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import bitsd
from bitsd import (
    EmptyJobError,
    ErrorContext,
    ErrorInfo,
    InvalidArgumentError,
    InvalidStateError,
    JobProgress,
    JobState,
    NotFoundError,
    codes,
)
from bitsd._client import RemoteJob
from bitsd._sync import Job
from tests.client.daemon import Daemon
from tests.client.test_roundtrip import body, unique_path
from tests.servers.faulty import FaultServer

pytestmark = pytest.mark.e2e  # every test here talks to a real daemon process

DONE = (JobState.TRANSFERRED, JobState.ERROR)


def loop_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "bitsd-client-loop"]


@pytest.fixture
def manager(daemon: Daemon) -> Iterator[bitsd.Manager]:
    """A sync client of the shared daemon."""
    with bitsd.connect(socket_path=daemon.socket, autostart=False) as m:
        yield m


def wait_until(predicate: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_sync_download_round_trip(manager: bitsd.Manager, server: FaultServer, dest: Path) -> None:
    """create_job, add_file, resume, wait, get_progress, complete: the async client's results,
    blocking; the job is listed while live and gone after complete()."""
    data = body(200_000, seed=5)
    path = unique_path("sync")
    server.add(path, data)
    job = manager.create_job("sync")
    assert isinstance(job, Job)
    assert job.get_state() is JobState.SUSPENDED
    job.add_file(server.url(path), str(dest / "s"))
    assert job in manager.jobs()
    assert manager.get_job(job.id) == job
    job.resume()
    assert job.wait(DONE, timeout=15) is JobState.TRANSFERRED
    assert job.get_progress() == JobProgress(len(data), len(data), 1, 1)
    assert [f.progress.completed for f in job.files()] == [True]
    assert job.complete() == codes.S_OK
    assert (dest / "s").read_bytes() == data
    assert job not in manager.jobs()
    # The ended job answers from what complete() returned, as the engine's handles do.
    assert job.get_state() is JobState.ACKNOWLEDGED
    assert job.wait(JobState.ACKNOWLEDGED, timeout=5) is JobState.ACKNOWLEDGED
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        job.wait(JobState.TRANSFERRED, timeout=0.2)  # never again: waits the time out
    assert time.monotonic() - started >= 0.2
    assert [f.local_name for f in job.files()] == [str(dest / "s")]


def test_sync_create_job_sets_the_job_up_in_one_call(
    manager: bitsd.Manager, server: FaultServer, dest: Path
) -> None:
    """create_job(files=, priority=, resume=): the job has its files and priority and
    transfers; one the daemon cannot set up raises the daemon's error and leaves no job."""
    data = body(50_000, seed=6)
    path = unique_path("at-once")
    server.add(path, data)
    job = manager.create_job(
        "at once",
        files=[(server.url(path), str(dest / "once"))],
        priority=bitsd.Priority.HIGH,
        resume=True,
    )
    assert job.get_priority() is bitsd.Priority.HIGH
    assert job.wait(DONE, timeout=15) is JobState.TRANSFERRED
    assert job.complete() == codes.S_OK
    assert (dest / "once").read_bytes() == data
    before = manager.jobs()
    with pytest.raises(InvalidArgumentError) as bad:
        manager.create_job("half", files=[(server.url(path), "relative")], resume=True)
    assert bad.value.hresult == codes.E_INVALIDARG
    with pytest.raises(EmptyJobError):
        manager.create_job("empty", resume=True)
    unknown: Any = 7  # no Priority: refused as set_priority and the engine refuse it
    with pytest.raises(bitsd.NotSupportedError):
        manager.create_job("no priority", priority=unknown, files=[(server.url(path), "/n")])
    assert manager.jobs() == before


def test_sync_errors_are_the_same_exceptions(manager: bitsd.Manager, dest: Path) -> None:
    """Caller errors raise the same classes and HRESULTs as the async client; wait raises
    TimeoutError."""
    job = manager.create_job("sync errors")
    with pytest.raises(EmptyJobError):
        job.resume()
    with pytest.raises(InvalidArgumentError) as bad:
        job.add_file("gopher://x/y", str(dest / "x"))
    assert bad.value.hresult == codes.E_INVALIDARG
    with pytest.raises(NotFoundError):
        manager.get_job("00000000-0000-0000-0000-000000000000")
    with pytest.raises(TimeoutError):
        job.wait(JobState.TRANSFERRED, timeout=0.1)
    job.set_description("x")
    assert job.get_description() == "x"
    assert job.cancel() == codes.S_OK
    with pytest.raises(InvalidStateError):
        job.set_description("y")


def test_sync_ended_jobs_kept_are_the_most_recent_ones(
    manager: bitsd.Manager, dest: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the sync API too, a manager keeps what only its most recent ended jobs ended as
    (here 1): the newest answers its final state and files, an older handle answers
    BG_E_NOT_FOUND like a job nobody knows."""
    import bitsd._client

    monkeypatch.setattr(bitsd._client, "FINAL_JOBS_KEPT", 1)
    jobs = []
    for name in ("older", "newest"):
        job = manager.create_job(name)
        job.add_file(f"http://127.0.0.1:9/{name}", str(dest / name))
        assert job.cancel() == codes.S_OK
        jobs.append(job)
    older, newest = jobs
    assert newest.get_state() is JobState.CANCELLED
    assert [f.local_name for f in newest.files()] == [str(dest / "newest")]
    for call in (older.get_state, older.files, older.resume):
        with pytest.raises(NotFoundError) as caught:
            call()
        assert caught.value.hresult == codes.BG_E_NOT_FOUND


def test_plain_callback_runs_in_a_worker_thread_with_a_sync_job(
    manager: bitsd.Manager, server: FaultServer, dest: Path
) -> None:
    """A plain callback registered through the sync API runs in a worker thread (not the
    private loop, not the caller's thread) and gets a sync Job it can call, here cancel()."""
    seen: list[tuple[object, int, ErrorContext, str]] = []

    class Cb:
        def job_error(self, job: Job, error: ErrorInfo) -> None:
            cancelled = job.cancel()
            seen.append((type(job), cancelled, error.context, threading.current_thread().name))

    cb = Cb()
    job = manager.create_job("sync cb")
    job.set_notify_interface(cb)
    assert job.get_notify_interface() is cb
    job.add_file(server.url(unique_path("missing")), str(dest / "m"))
    job.resume()
    wait_until(lambda: seen)
    [(kind, cancelled, context, thread)] = seen
    assert (kind, cancelled, context) == (Job, codes.S_OK, ErrorContext.REMOTE_FILE)
    assert thread not in ("bitsd-client-loop", threading.current_thread().name)
    assert job.get_state() is JobState.CANCELLED


def test_async_callback_runs_on_the_private_loop_with_a_remote_job(
    manager: bitsd.Manager, server: FaultServer, dest: Path
) -> None:
    """An async callback registered through the sync API runs on the private loop thread and
    gets the RemoteJob to await; calling the sync API from there raises RuntimeError rather
    than deadlocking."""
    seen: list[tuple[object, str, int]] = []
    errors: list[BaseException] = []

    class Cb:
        async def job_transferred(self, job: RemoteJob) -> None:
            try:
                sync_job.get_state()
            except RuntimeError as exc:
                errors.append(exc)
            seen.append((type(job), threading.current_thread().name, await job.complete()))

    path = unique_path("sync-async")
    server.add(path, b"x" * 1000)
    sync_job = manager.create_job("sync async cb")
    sync_job.set_notify_interface(Cb())
    sync_job.add_file(server.url(path), str(dest / "a"))
    sync_job.resume()
    wait_until(lambda: seen)
    assert seen == [(RemoteJob, "bitsd-client-loop", codes.S_OK)]
    assert len(errors) == 1
    assert (dest / "a").read_bytes() == b"x" * 1000


def test_close_stops_the_loop_thread(daemon: Daemon) -> None:
    """close() stops the private thread; later calls raise InvalidStateError; a second close()
    does nothing."""
    before = len(loop_threads())
    m = bitsd.connect(socket_path=daemon.socket, autostart=False)
    assert len(loop_threads()) == before + 1
    job = m.create_job("closing")
    job.cancel()
    m.close()
    assert len(loop_threads()) == before
    with pytest.raises(InvalidStateError):
        m.jobs()
    with pytest.raises(InvalidStateError):
        job.get_state()
    m.close()


def test_one_manager_serves_several_threads(
    manager: bitsd.Manager, server: FaultServer, dest: Path
) -> None:
    """Eight threads share one manager: each builds, runs and completes its own job (plain
    calls in the thread, wait and complete on the private loop) and sees only its changes."""
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            data = body(10_000 + n)
            path = unique_path(f"threads-{n}")
            server.add(path, data)
            job = manager.create_job(f"thread {n}")
            job.set_description(f"made by thread {n}")
            job.add_file(server.url(path), str(dest / f"t{n}"))
            job.resume()
            assert job.wait(DONE, timeout=30) is JobState.TRANSFERRED
            assert job.get_description() == f"made by thread {n}"
            job.complete()
            assert (dest / f"t{n}").read_bytes() == data
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
