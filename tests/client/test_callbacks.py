"""Callbacks registered with set_notify_interface: called in this process by the daemon, as
the engine calls them in-process (coroutines on the loop, plain functions in a thread)."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from bitsd import (
    ErrorContext,
    ErrorInfo,
    FileInfo,
    InvalidStateError,
    JobState,
    NotifyFlags,
    codes,
)
from bitsd.aio import connect
from tests.client.conftest import AnyJob, Backend
from tests.client.daemon import running_daemon
from tests.client.test_roundtrip import body, unique_path
from tests.servers.faulty import FaultServer

pytestmark = pytest.mark.e2e  # every test here talks to a real daemon process

DONE = (JobState.TRANSFERRED, JobState.ERROR)


async def until(predicate: object, timeout: float = 10.0) -> None:
    """Wait (real time, bounded) until ``predicate()`` is true."""

    async def poll() -> None:
        while not predicate():  # type: ignore[operator]
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), timeout)


class Completer:
    """An async callback object that completes the job it is told about."""

    def __init__(self) -> None:
        self.results: list[int] = []
        self.files: list[FileInfo] = []
        self.modified = 0
        self.done = asyncio.Event()

    async def job_transferred(self, job: AnyJob) -> None:
        self.results.append(await job.complete())
        self.done.set()

    async def file_transferred(self, job: AnyJob, file: FileInfo) -> None:
        self.files.append(file)

    async def job_modification(self, job: AnyJob) -> None:
        self.modified += 1


async def test_async_callback_completes_the_job_it_is_given(
    backend: Backend, server: FaultServer, dest: Path
) -> None:
    """job_transferred (a coroutine) gets a job handle it can await: it completes the job;
    file_transferred gets the FileInfo; job_modification is called for the progress."""
    data = body(100_000, seed=3)
    path = unique_path("cb")
    server.add(path, data)
    cb = Completer()
    job = await backend.create_job("callback")
    await job.set_notify_flags(
        NotifyFlags.JOB_TRANSFERRED | NotifyFlags.FILE_TRANSFERRED | NotifyFlags.JOB_MODIFICATION
    )
    await job.set_notify_interface(cb)
    assert await job.get_notify_interface() is cb
    await job.add_file(server.url(path), str(dest / "f"))
    await job.resume()
    await asyncio.wait_for(cb.done.wait(), 15)
    assert cb.results == [codes.S_OK]
    assert (dest / "f").read_bytes() == data
    assert [(f.remote_name, f.progress.completed) for f in cb.files] == [(server.url(path), True)]
    assert cb.modified >= 1


async def test_plain_callback_runs_in_a_worker_thread(
    backend: Backend, server: FaultServer, dest: Path
) -> None:
    """A plain job_error runs outside the event loop's thread and gets the ErrorInfo of the
    404: REMOTE_FILE and BG_E_HTTP_ERROR_404."""
    seen: list[tuple[str, ErrorInfo, bool]] = []
    loop_thread = threading.get_ident()

    class Plain:
        def job_error(self, job: AnyJob, error: ErrorInfo) -> None:
            seen.append((job.id, error, threading.get_ident() != loop_thread))

    url = server.url(unique_path("missing"))
    job = await backend.create_job("plain")
    await job.set_notify_interface(Plain())
    await job.add_file(url, str(dest / "m"))
    await job.resume()
    await until(lambda: seen)
    [(job_id, error, in_thread)] = seen
    assert job_id == job.id
    assert (error.code, error.context) == (codes.BG_E_HTTP_ERROR_404, ErrorContext.REMOTE_FILE)
    assert error.file is not None
    assert error.file.remote_name == url
    assert in_thread
    await job.cancel()


async def test_clearing_the_interface_stops_the_calls(
    backend: Backend, server: FaultServer, dest: Path
) -> None:
    """After set_notify_interface(None), get_notify_interface() is None and the object is not
    called for the job's error."""
    calls: list[str] = []

    class Cb:
        async def job_error(self, job: AnyJob, error: ErrorInfo) -> None:
            calls.append(job.id)

    job = await backend.create_job("cleared")
    await job.set_notify_interface(Cb())
    await job.set_notify_interface(None)
    assert await job.get_notify_interface() is None
    await job.add_file(server.url(unique_path("missing")), str(dest / "m"))
    await job.resume()
    assert await job.wait(DONE, timeout=15) is JobState.ERROR
    await asyncio.sleep(0.3)
    assert calls == []
    await job.cancel()


async def test_notify_calls_are_not_serialised(
    manager: Backend, server: FaultServer, dest: Path
) -> None:
    """Three jobs fail at once; their job_error callbacks are in flight together (each waits
    until all three have started), so the client runs notify calls concurrently."""
    started: set[str] = set()
    all_in = asyncio.Event()

    class Gate:
        async def job_error(self, job: AnyJob, error: ErrorInfo) -> None:
            started.add(job.id)
            if len(started) == 3:
                all_in.set()
            await all_in.wait()

    jobs = []
    for i in range(3):
        job = await manager.create_job(f"gate {i}")
        await job.set_notify_interface(Gate())
        await job.add_file(server.url(unique_path("missing")), str(dest / f"m{i}"))
        jobs.append(job)
    for job in jobs:
        await job.resume()
    await asyncio.wait_for(all_in.wait(), 15)
    for job in jobs:
        await job.cancel()


async def test_callbacks_are_registered_again_after_the_daemon_restarts(
    server: FaultServer, dest: Path
) -> None:
    """The event stream reconnects when the daemon restarts and registers the object again:
    an error after the restart still reaches the callback."""
    errors: list[int] = []

    class Cb:
        async def job_error(self, job: AnyJob, error: ErrorInfo) -> None:
            errors.append(error.code)

    with running_daemon() as daemon:
        async with await connect(socket_path=daemon.socket, autostart=False) as manager:
            job = await manager.create_job("restart")
            await job.set_notify_interface(Cb())
            await job.add_file(server.url(unique_path("missing")), str(dest / "m"))
            assert daemon.stop() == 0
            daemon.start()
            await job.resume()
            assert await job.wait(DONE, timeout=15) is JobState.ERROR
            await until(lambda: errors)
            assert errors == [codes.BG_E_HTTP_ERROR_404]
            assert await job.get_notify_interface() is not None
            await job.cancel()


async def test_registering_on_a_final_job_raises_invalid_state(backend: Backend) -> None:
    """set_notify_interface on a cancelled job raises InvalidStateError (BG_E_INVALID_STATE)
    and registers nothing."""
    job = await backend.create_job("final")
    await job.cancel()
    for value in (object(), None):
        with pytest.raises(InvalidStateError) as info:
            await job.set_notify_interface(value)
        assert info.value.hresult == codes.BG_E_INVALID_STATE
    assert await job.get_notify_interface() is None
