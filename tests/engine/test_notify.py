"""The JobError contract of the seed page, against real transfers and real command lines."""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from pathlib import Path

from bitsd import ErrorContext, ErrorInfo, FakeClock, JobState, NotifyFlags, codes
from bitsd.aio import Job
from tests.engine.conftest import EngineFactory, WritesSeen, advance, settle
from tests.servers.faulty import Fault, FaultServer


class Recorder:
    """A callback object that records calls and fails the first ``fail`` of them."""

    def __init__(self, fail: int = 0, raise_instead: bool = False) -> None:
        self.calls: list[tuple[str, str, object]] = []
        self.fail = fail
        self.raise_instead = raise_instead
        self.called = asyncio.Event()

    def _result(self) -> int | None:
        self.called.set()
        if self.fail > 0:
            self.fail -= 1
            if self.raise_instead:
                raise RuntimeError("callback failure")
            return codes.E_FAIL
        return None

    async def job_error(self, job: Job, error: ErrorInfo) -> int | None:
        self.calls.append(("job_error", job.id, error))
        return self._result()

    async def job_transferred(self, job: Job) -> int | None:
        self.calls.append(("job_transferred", job.id, None))
        return self._result()

    def kinds(self) -> list[str]:
        return [c[0] for c in self.calls]


async def until(predicate: object, timeout: float = 10.0) -> None:
    """Wait (real time, bounded) until ``predicate()`` is true."""

    async def poll() -> None:
        while not predicate():  # type: ignore[operator]
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), timeout)


async def test_404_calls_job_error_once_with_context_and_code(
    server: FaultServer, make_engine: EngineFactory, dest: Path
) -> None:
    """A 404 moves the job to ERROR and calls job_error once, with REMOTE_FILE and
    BG_E_HTTP_ERROR_404 and the file in error."""
    cb = Recorder()
    async with make_engine() as engine:
        job = await engine.create_job("404")
        await job.set_notify_interface(cb)
        await job.add_file(server.url("/missing"), str(dest / "m"))
        await job.resume()
        assert await settle(job) is JobState.ERROR
        await until(lambda: cb.calls)
        await asyncio.sleep(0.1)
        assert cb.kinds() == ["job_error"]
        error = cb.calls[0][2]
        assert isinstance(error, ErrorInfo)
        assert (error.code, error.context) == (0x80190194, ErrorContext.REMOTE_FILE)
        assert error.file is not None
        assert error.file.remote_name == server.url("/missing")


async def test_failing_callback_is_called_again_until_it_succeeds(
    server: FaultServer, make_engine: EngineFactory, dest: Path, clock: FakeClock
) -> None:
    """A callback that fails twice (a failure HRESULT, then an exception) is called a third
    time, each after the retry interval, and then never again."""
    cb = Recorder(fail=2)
    async with make_engine() as engine:
        job = await engine.create_job("retry cb")
        await job.set_minimum_retry_delay(7)
        await job.set_notify_interface(cb)
        await job.add_file(server.url("/missing"), str(dest / "m"))
        await job.resume()
        await until(lambda: len(cb.calls) == 1)
        await advance(clock, 6)
        await asyncio.sleep(0.05)
        assert len(cb.calls) == 1, "called again before the interval"
        cb.raise_instead = True
        await advance(clock, 1)
        await until(lambda: len(cb.calls) == 2)
        await advance(clock, 7)
        await until(lambda: len(cb.calls) == 3)
        await advance(clock, 100)
        await asyncio.sleep(0.05)
        assert cb.kinds() == ["job_error"] * 3


async def test_failing_callback_with_command_line_runs_it_once(
    server: FaultServer, make_engine: EngineFactory, dest: Path, clock: FakeClock, tmp_path: Path
) -> None:
    """When the callback fails and a notify command line is set, the command line runs (as
    argv, no shell) and the callback is not called again."""
    marker = tmp_path / "ran"
    cb = Recorder(fail=100)
    script = f"import sys; open({str(marker)!r}, 'a').write(' '.join(sys.argv[1:]) + '\\n')"
    async with make_engine() as engine:
        job = await engine.create_job("cmdline")
        await job.set_minimum_retry_delay(5)
        await job.set_notify_interface(cb)
        await job.set_notify_cmd_line(sys.executable, f'python -c "{script}" {job.id} "two words"')
        await job.add_file(server.url("/missing"), str(dest / "m"))
        await job.resume()
        await until(marker.exists)
        for _ in range(3):
            await advance(clock, 5)
        await asyncio.sleep(0.2)
    assert cb.kinds() == ["job_error"]
    assert marker.read_text().splitlines() == [f"{job.id} two words"]


async def test_job_without_callback_runs_its_command_line(
    server: FaultServer, make_engine: EngineFactory, dest: Path, tmp_path: Path
) -> None:
    """A job with a command line and no live callback runs the command line on TRANSFERRED."""
    server.add("/ok", b"ok")
    marker = tmp_path / "done"
    async with make_engine() as engine:
        job = await engine.create_job("no cb")
        await job.set_notify_cmd_line("/bin/touch", f"touch {marker}")
        await job.add_file(server.url("/ok"), str(dest / "ok"))
        await job.resume()
        await settle(job)
        await until(marker.exists)


async def test_failing_command_line_runs_again_after_the_retry_delay(
    server: FaultServer, make_engine: EngineFactory, dest: Path, clock: FakeClock
) -> None:
    """A command line that exits non-zero is run again after the minimum retry delay."""
    server.add("/ok", b"ok")
    runs: list[list[str]] = []

    async def runner(program: str, argv: list[str]) -> int:
        runs.append([program, *argv])
        return 1 if len(runs) < 2 else 0

    async with make_engine(command_runner=runner) as engine:
        job = await engine.create_job("cmd fails")
        await job.set_minimum_retry_delay(30)
        await job.set_notify_cmd_line("/usr/bin/false", None)
        await job.add_file(server.url("/ok"), str(dest / "ok"))
        await job.resume()
        await until(lambda: len(runs) == 1)
        await advance(clock, 29)
        await asyncio.sleep(0.05)
        assert len(runs) == 1
        await advance(clock, 1)
        await until(lambda: len(runs) == 2)
        await advance(clock, 60)
        await asyncio.sleep(0.05)
    assert runs == [["/usr/bin/false", "/usr/bin/false"]] * 2


async def test_transient_errors_notify_nothing(
    server: FaultServer, make_engine: EngineFactory, dest: Path, clock: FakeClock
) -> None:
    """A transient error calls no callback; the later success calls job_transferred once."""
    server.add("/flaky", b"data")
    server.set_fault("/flaky", Fault(status=503, times=2))
    cb = Recorder()
    async with make_engine() as engine:
        job = await engine.create_job("flaky")
        await job.set_minimum_retry_delay(5)
        await job.set_notify_interface(cb)
        await job.add_file(server.url("/flaky"), str(dest / "flaky"))
        await job.resume()
        for _ in range(2):
            await settle(job, (JobState.TRANSIENT_ERROR,))
            await advance(clock, 5)
        await settle(job)
        await until(lambda: cb.calls)
        await asyncio.sleep(0.1)
    assert cb.kinds() == ["job_transferred"]


async def test_callback_registered_after_the_event_still_gets_it(
    server: FaultServer, make_engine: EngineFactory, dest: Path
) -> None:
    """Notifications are at-least-once: registering after the job reached TRANSFERRED still
    delivers job_transferred."""
    server.add("/ok", b"ok")
    cb = Recorder()
    async with make_engine() as engine:
        job = await engine.create_job("late")
        await job.add_file(server.url("/ok"), str(dest / "ok"))
        await job.resume()
        await settle(job)
        await asyncio.sleep(0.05)
        await job.set_notify_interface(cb)
        await until(lambda: cb.calls)
    assert cb.kinds() == ["job_transferred"]


async def test_notification_nobody_can_take_is_stored_once_and_waits(
    server: FaultServer, make_engine: EngineFactory, dest: Path, state_dir: Path
) -> None:
    """With no callback and no command line, JobTransferred is stored once, at the state
    change, and waits: a callback registered later gets it, and then it leaves the store."""
    server.add("/ok", b"ok")
    os.mkdir(state_dir)
    store = WritesSeen(state_dir / "jobs.sqlite")
    cb = Recorder()
    try:
        async with make_engine(store=store) as engine:
            job = await engine.create_job("nobody yet")
            await job.add_file(server.url("/ok"), str(dest / "ok"))
            await job.resume()
            await settle(job)
            await asyncio.sleep(0.1)
            assert store.writes.count("put_notification") == 1
            assert len(store.load().notifications) == 1
            await job.set_notify_interface(cb)
            await until(lambda: cb.calls)
            await until(lambda: not store.load().notifications)
            assert store.writes.count("put_notification") == 1
    finally:
        store.close()
    assert cb.kinds() == ["job_transferred"]


async def test_pending_notification_survives_a_restart(
    server: FaultServer, make_engine: EngineFactory, dest: Path
) -> None:
    """A JobTransferred nobody received is stored; after a restart a newly registered callback
    gets it."""
    server.add("/ok", b"ok")
    async with make_engine() as engine:
        job = await engine.create_job("restart")
        await job.add_file(server.url("/ok"), str(dest / "ok"))
        await job.resume()
        await settle(job)
    cb = Recorder()
    async with make_engine() as engine:
        again = await engine.get_job(job.id)
        await again.set_notify_interface(cb)
        await until(lambda: cb.calls)
    assert cb.kinds() == ["job_transferred"]


async def test_notify_flags_select_events(
    server: FaultServer, make_engine: EngineFactory, dest: Path
) -> None:
    """Without JOB_TRANSFERRED in the flags nothing is called on TRANSFERRED; DISABLE silences
    everything; JOB_MODIFICATION calls job_modification on changes."""
    server.add("/ok", b"ok")

    class Mods(Recorder):
        def __init__(self) -> None:
            super().__init__()
            self.mods = 0

        def job_modification(self, job: Job) -> None:
            self.mods += 1

    quiet, loud = Recorder(), Mods()
    async with make_engine() as engine:
        a = await engine.create_job("quiet")
        await a.set_notify_flags(NotifyFlags.JOB_ERROR)
        await a.set_notify_interface(quiet)
        b = await engine.create_job("loud")
        await b.set_notify_flags(NotifyFlags.JOB_TRANSFERRED | NotifyFlags.JOB_MODIFICATION)
        await b.set_notify_interface(loud)
        for job in (a, b):
            await job.add_file(server.url("/ok"), str(dest / job.id))
            await job.resume()
            await settle(job)
        await until(lambda: loud.calls)
        await asyncio.sleep(0.1)
        assert await a.get_notify_flags() == NotifyFlags.JOB_ERROR
    assert quiet.calls == []
    assert loud.kinds() == ["job_transferred"]
    assert loud.mods >= 1


async def test_at_most_four_notifications_in_flight(
    make_engine: EngineFactory, dest: Path, tmp_path: Path
) -> None:
    """Six jobs whose callbacks block: four calls run at once, the other two wait, and all six
    are delivered once the blockers return."""
    src = tmp_path / "src"
    src.write_bytes(b"x")
    release = threading.Event()
    lock = threading.Lock()
    state = {"now": 0, "max": 0, "done": 0}

    class Blocker:
        def job_transferred(self, job: Job) -> None:
            with lock:
                state["now"] += 1
                state["max"] = max(state["max"], state["now"])
            release.wait(10)
            with lock:
                state["now"] -= 1
                state["done"] += 1

    async with make_engine() as engine:
        jobs = []
        for i in range(6):
            job = await engine.create_job(f"blocker {i}")
            await job.set_notify_interface(Blocker())
            await job.add_file(str(src), str(dest / f"f{i}"))
            jobs.append(job)
        for job in jobs:
            await job.resume()
        for job in jobs:
            await settle(job)
        await until(lambda: state["now"] == 4)
        await asyncio.sleep(0.2)
        assert (state["now"], state["done"]) == (4, 0)
        release.set()
        await until(lambda: state["done"] == 6)
    assert state["max"] == 4


async def test_a_reloaded_notification_limit_applies_to_the_waiting_ones(
    make_engine: EngineFactory, dest: Path, tmp_path: Path
) -> None:
    """``reconfigure(max_notifications=...)`` (the daemon's SIGHUP) applies at once: with one
    slot, one blocking callback runs and two wait; raised to three, the two waiting start
    while the first still blocks (before, the limit stayed the one the engine started with)."""
    src = tmp_path / "src"
    src.write_bytes(b"x")
    release = threading.Event()
    lock = threading.Lock()
    state = {"now": 0, "done": 0}

    class Blocker:
        def job_transferred(self, job: Job) -> None:
            with lock:
                state["now"] += 1
            release.wait(10)
            with lock:
                state["now"] -= 1
                state["done"] += 1

    async with make_engine(max_notifications=1) as engine:
        jobs = []
        for i in range(3):
            job = await engine.create_job(f"blocker {i}")
            await job.set_notify_interface(Blocker())
            await job.add_file(str(src), str(dest / f"f{i}"))
            await job.resume()
            jobs.append(job)
        for job in jobs:
            await settle(job)
        await until(lambda: state["now"] == 1)
        await asyncio.sleep(0.2)
        assert state["now"] == 1
        engine.reconfigure(max_notifications=3)
        await until(lambda: state["now"] == 3)
        release.set()
        await until(lambda: state["done"] == 3)


async def test_command_line_set_after_the_event_runs(
    server: FaultServer, make_engine: EngineFactory, dest: Path, tmp_path: Path
) -> None:
    """BITS runs a notify command line even when it is set after the job reached
    TRANSFERRED."""
    server.add("/ok", b"ok")
    marker = tmp_path / "late"
    async with make_engine() as engine:
        job = await engine.create_job("late cmd")
        await job.add_file(server.url("/ok"), str(dest / "ok"))
        await job.resume()
        await settle(job)
        await asyncio.sleep(0.05)
        await job.set_notify_cmd_line("/bin/touch", f"touch {marker}")
        await until(marker.exists)


async def test_object_without_the_method_falls_back_to_the_command_line(
    server: FaultServer, make_engine: EngineFactory, dest: Path, tmp_path: Path
) -> None:
    """A callback object that has no job_transferred method is as if none were registered for
    that notification: the command line runs."""
    server.add("/ok", b"ok")
    marker = tmp_path / "fallback"

    class OnlyErrors:
        def job_error(self, job: Job, error: ErrorInfo) -> None:
            raise AssertionError("not an error")

    async with make_engine() as engine:
        job = await engine.create_job("fallback")
        await job.set_notify_interface(OnlyErrors())
        await job.set_notify_cmd_line("/bin/touch", f"touch {marker}")
        await job.add_file(server.url("/ok"), str(dest / "ok"))
        await job.resume()
        await settle(job)
        await until(marker.exists)


async def test_unparsable_command_line_is_refused(make_engine: EngineFactory) -> None:
    """Parameters that cannot be split into argv (an unbalanced quote) are E_INVALIDARG at
    set_notify_cmd_line, not a failure at every delivery."""
    import pytest

    import bitsd

    async with make_engine() as engine:
        job = await engine.create_job("quotes")
        with pytest.raises(bitsd.InvalidArgumentError):
            await job.set_notify_cmd_line("/bin/true", "true 'unbalanced")
        assert await job.get_notify_cmd_line() == (None, None)


async def test_command_line_with_a_nul_is_refused(make_engine: EngineFactory) -> None:
    """A NUL in the program or the parameters is E_INVALIDARG at set_notify_cmd_line: no exec()
    takes it. It was taken, and each delivery then raised ValueError inside the notifier."""
    import pytest

    import bitsd

    async with make_engine() as engine:
        job = await engine.create_job("nul")
        with pytest.raises(bitsd.InvalidArgumentError):
            await job.set_notify_cmd_line("/bin/tr\x00ue", None)
        with pytest.raises(bitsd.InvalidArgumentError):
            await job.set_notify_cmd_line("/bin/true", "true a\x00b")
        assert await job.get_notify_cmd_line() == (None, None)


async def test_a_command_runner_that_raises_is_a_failed_run(
    server: FaultServer, make_engine: EngineFactory, dest: Path, clock: FakeClock
) -> None:
    """A command runner that raises counts as a run that failed: the command line runs again
    after the minimum retry delay. The exception escaped the notifier, which left the
    notification due and delivered it again at once, thousands of times a second."""
    server.add("/ok", b"ok")
    runs: list[str] = []

    async def runner(program: str, argv: list[str]) -> int:
        runs.append(program)
        if len(runs) < 2:
            raise ValueError("embedded null byte")
        return 0

    async with make_engine(command_runner=runner) as engine:
        job = await engine.create_job("runner raises")
        await job.set_minimum_retry_delay(30)
        await job.set_notify_cmd_line("/bin/true", None)
        await job.add_file(server.url("/ok"), str(dest / "ok"))
        await job.resume()
        await until(lambda: len(runs) >= 1)
        await asyncio.sleep(0.1)
        assert len(runs) == 1  # not again before the delay
        await advance(clock, 30)
        await until(lambda: len(runs) == 2)
        await advance(clock, 60)
        await asyncio.sleep(0.05)
    assert runs == ["/bin/true"] * 2
