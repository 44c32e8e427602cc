"""Job verbs, caller errors with BITS codes, persistence across engine restarts, scheduling."""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
import sys
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import pytest

import bitsd
from bitsd import ErrorContext, FakeClock, JobState, JobType, NotifyFlags, Priority, codes
from bitsd._wire import file_info_to_json, ranges_to_json
from bitsd.daemon.shapes import file_to_json
from tests.engine.conftest import (
    EngineFactory,
    FileWritesSpy,
    WritesSeen,
    advance,
    body,
    jobs_of_every_kind,
    leftovers,
    settle,
)
from tests.servers.faulty import Fault, FaultServer


async def test_new_job_defaults(make_engine: EngineFactory) -> None:
    """A new job is SUSPENDED, NORMAL, notify flags 0x3, retry 600 s, no-progress 14 days,
    empty progress 0/0/0/0."""
    async with make_engine() as engine:
        job = await engine.create_job("defaults")
        assert await job.get_state() is JobState.SUSPENDED
        assert await job.get_type() is JobType.DOWNLOAD
        assert await job.get_priority() is Priority.NORMAL
        assert await job.get_notify_flags() == NotifyFlags.JOB_TRANSFERRED | NotifyFlags.JOB_ERROR
        assert await job.get_minimum_retry_delay() == 600
        assert await job.get_no_progress_timeout() == 1_209_600
        assert await job.get_maximum_download_time() == 7_776_000
        assert await job.get_progress() == bitsd.JobProgress(0, 0, 0, 0)
        assert await job.get_notify_interface() is None
        assert await job.get_notify_cmd_line() == (None, None)
        assert await job.get_owner() == os.getuid()


async def test_caller_errors_carry_bits_codes(
    server: FaultServer, make_engine: EngineFactory, dest: Path
) -> None:
    """Resume of an empty job → BG_E_EMPTY; unknown id → BG_E_NOT_FOUND; get_error outside an
    error state → BG_E_ERROR_INFORMATION_UNAVAILABLE; any change of a final job →
    BG_E_INVALID_STATE."""
    server.add("/ok", b"ok")
    async with make_engine() as engine:
        job = await engine.create_job("errors")
        with pytest.raises(bitsd.EmptyJobError) as empty:
            await job.resume()
        assert empty.value.hresult == codes.BG_E_EMPTY
        assert await job.get_state() is JobState.SUSPENDED
        with pytest.raises(bitsd.NotFoundError) as missing:
            await engine.get_job("6a4f5c3e-0000-4000-8000-000000000000")
        assert missing.value.hresult == codes.BG_E_NOT_FOUND
        with pytest.raises(bitsd.NotFoundError):
            await engine.get_job("not a guid")
        with pytest.raises(bitsd.ErrorInfoUnavailableError) as unavailable:
            await job.get_error()
        assert unavailable.value.hresult == codes.BG_E_ERROR_INFORMATION_UNAVAILABLE
        assert await job.cancel() == codes.S_OK
        for verb in (
            job.resume(),
            job.suspend(),
            job.cancel(),
            job.complete(),
            job.set_priority(Priority.HIGH),
            job.add_file(server.url("/ok"), str(dest / "x")),
            job.set_notify_interface(object()),
        ):
            with pytest.raises(bitsd.InvalidStateError) as final:
                await verb
            assert final.value.hresult == codes.BG_E_INVALID_STATE
        assert await job.get_state() is JobState.CANCELLED
        assert [j.id for j in await engine.jobs()] == []


@pytest.mark.parametrize(
    ("remote", "local", "code"),
    [
        ("ftp://example.org/a", "{dest}/a", codes.E_INVALIDARG),
        ("not a url", "{dest}/a", codes.E_INVALIDARG),
        ("http:///nohost", "{dest}/a", codes.E_INVALIDARG),
        ("http://h/" + "a" * 2200, "{dest}/a", codes.E_INVALIDARG),
        ("http://h/a\r\nX-Evil: 1", "{dest}/a", codes.E_INVALIDARG),
        ("http://h/a", "relative/a", codes.E_INVALIDARG),
        ("http://h/a", "{dest}/no/such/folder/a", 0x80070003),
        ("http://h/a", "{dest}", codes.E_INVALIDARG),
    ],
)
async def test_bad_input_is_refused_and_nothing_is_stored(
    make_engine: EngineFactory, dest: Path, remote: str, local: str, code: int
) -> None:
    """add_file refuses malformed URLs, unsupported schemes, over-long URLs, CR/LF, relative
    and missing local folders with the right code, and stores nothing (even across a
    restart)."""
    async with make_engine() as engine:
        job = await engine.create_job("bad")
        with pytest.raises(bitsd.BitsError) as info:
            await job.add_file(remote, local.format(dest=dest))
        assert info.value.hresult == code
        assert await job.files() == []
    async with make_engine() as engine:
        assert await (await engine.get_job(job.id)).files() == []


async def test_file_set_is_all_or_nothing(make_engine: EngineFactory, dest: Path) -> None:
    """add_file_set with one bad pair adds none; a local name used twice in a job is
    refused."""
    async with make_engine() as engine:
        job = await engine.create_job("set")
        with pytest.raises(bitsd.InvalidArgumentError):
            await job.add_file_set(
                [("http://h/a", str(dest / "a")), ("gopher://h/b", str(dest / "b"))]
            )
        assert await job.files() == []
        await job.add_file("http://h/a", str(dest / "a"))
        with pytest.raises(bitsd.InvalidArgumentError):
            await job.add_file("http://h/other", str(dest / "a"))
        assert len(await job.files()) == 1


async def test_create_job_with_files_priority_and_resume(
    server: FaultServer, make_engine: EngineFactory, dest: Path
) -> None:
    """create_job(files=, priority=, resume=) hands out a job with its files, its priority and
    queued, as the separate calls would; it transfers; and it is stored so (a restart sees
    it)."""
    server.add("/a", b"first")
    server.add("/b", b"second")
    pairs = [(server.url("/a"), str(dest / "a")), (server.url("/b"), str(dest / "b"))]
    async with make_engine() as engine:
        job = await engine.create_job(
            "at once", files=pairs, priority=Priority.FOREGROUND, resume=True
        )
        assert await job.get_priority() is Priority.FOREGROUND
        assert [(f.remote_name, f.local_name) for f in await job.files()] == pairs
        assert await job.get_state() is not JobState.SUSPENDED
        assert await job.wait([JobState.TRANSFERRED, JobState.ERROR], 10) is JobState.TRANSFERRED
        queued = await engine.create_job("queued later", files=pairs[:1], priority=Priority.LOW)
        assert await queued.get_state() is JobState.SUSPENDED
    async with make_engine() as engine:
        again = await engine.get_job(queued.id)
        assert await again.get_priority() is Priority.LOW
        assert [(f.remote_name, f.local_name) for f in await again.files()] == pairs[:1]


@pytest.mark.parametrize(
    ("setup", "error"),
    [
        ({"files": [("http://h/a", "relative/a")]}, bitsd.InvalidArgumentError),
        ({"files": [("gopher://h/a", "{dest}/a")], "resume": True}, bitsd.InvalidArgumentError),
        ({"resume": True}, bitsd.EmptyJobError),
        ({"files": [("http://h/a", "{dest}/a")], "priority": 7}, bitsd.NotSupportedError),
    ],
)
async def test_create_job_that_cannot_be_set_up_leaves_no_job(
    make_engine: EngineFactory, dest: Path, setup: dict[str, Any], error: type[Exception]
) -> None:
    """A file AddFileSet refuses, Resume of a job without files, or a priority that is none:
    create_job raises that error and no job remains, now or after a restart."""
    files = setup.get("files")
    if files is not None:
        setup = {**setup, "files": [(r, local.format(dest=dest)) for r, local in files]}
    async with make_engine() as engine:
        with pytest.raises(error):
            await engine.create_job("half-made", **setup)
        assert await engine.jobs() == []
    async with make_engine() as engine:
        assert await engine.jobs() == []


async def test_jobs_and_properties_survive_a_restart(
    make_engine: EngineFactory, dest: Path
) -> None:
    """A job, its files and every property are the same after the engine restarts."""
    async with make_engine() as engine:
        job = await engine.create_job("persist")
        await job.add_file("http://example.invalid/a", str(dest / "a"))
        await job.set_priority(Priority.LOW)
        await job.set_description("a description")
        await job.set_minimum_retry_delay(42)
        await job.set_no_progress_timeout(4242)
        await job.set_notify_flags(NotifyFlags.JOB_ERROR | NotifyFlags.JOB_MODIFICATION)
        await job.set_notify_cmd_line("/bin/true", "true x")
        before = (await job.get_times(), await job.files())
    async with make_engine() as engine:
        again = await engine.get_job(job.id)
        assert [j.id for j in await engine.jobs()] == [job.id]
        assert await again.get_display_name() == "persist"
        assert await again.get_description() == "a description"
        assert await again.get_priority() is Priority.LOW
        assert await again.get_minimum_retry_delay() == 42
        assert await again.get_no_progress_timeout() == 4242
        flags = NotifyFlags.JOB_ERROR | NotifyFlags.JOB_MODIFICATION
        assert await again.get_notify_flags() == flags
        assert await again.get_notify_cmd_line() == ("/bin/true", "true x")
        assert (await again.get_times(), await again.files()) == before


async def test_setters_validate(make_engine: EngineFactory) -> None:
    """Retry delay is floored at 5 s; a description over 1,024 characters is
    BG_E_STRING_TOO_LONG; bad flags and priorities are E_NOTIMPL; dynamic content is read-only
    after the first Resume."""
    async with make_engine() as engine:
        job = await engine.create_job("setters")
        await job.set_minimum_retry_delay(1)
        assert await job.get_minimum_retry_delay() == 5
        with pytest.raises(bitsd.BitsError) as long:
            await job.set_description("x" * 1025)
        assert long.value.hresult == codes.BG_E_STRING_TOO_LONG
        with pytest.raises(bitsd.NotSupportedError):
            await job.set_notify_flags(0x40)
        with pytest.raises(bitsd.NotSupportedError):
            await job.set_priority(7)  # type: ignore[arg-type]
        with pytest.raises(bitsd.InvalidArgumentError):
            await job.set_notify_cmd_line("relative/prog", None)
        await job.add_file("http://example.invalid/a", "/tmp/bitsd-never-written")
        await job.resume()
        await job.suspend()
        with pytest.raises(bitsd.ReadOnlyPropertyError) as ro:
            await job.set_dynamic_content(True)
        assert ro.value.hresult == codes.BG_E_READ_ONLY_PROPERTY_AFTER_RESUME


async def test_complete_with_unfinished_file_is_partial(
    server: FaultServer, make_engine: EngineFactory, dest: Path
) -> None:
    """Complete of a job whose second file failed keeps the first, deletes the partial one,
    returns BG_S_PARTIAL_COMPLETE and leaves no temporary file."""
    server.add("/good", body(100_000))
    server.add("/bad", body(500_000))
    server.set_fault("/bad", Fault(drop_after=200_000))
    async with make_engine() as engine:
        job = await engine.create_job("partial")
        await job.set_no_progress_timeout(0)
        await job.add_file_set(
            [(server.url("/good"), str(dest / "good")), (server.url("/bad"), str(dest / "bad"))]
        )
        await job.resume()
        assert await settle(job) is JobState.ERROR
        assert (await job.get_error()).file.local_name == str(dest / "bad")  # type: ignore[union-attr]
        assert await job.complete() == codes.BG_S_PARTIAL_COMPLETE
    assert (dest / "good").read_bytes() == body(100_000)
    assert not (dest / "bad").exists()
    assert leftovers(dest) == []


async def test_cancel_deletes_temporary_files(
    server: FaultServer, make_engine: EngineFactory, dest: Path
) -> None:
    """Cancel stops the transfer and deletes finished and partial temporary files."""
    server.add("/a", body(1000))
    server.add("/slow", body(2_000_000))
    server.set_fault("/slow", Fault(rate=1_000_000))
    async with make_engine() as engine:
        job = await engine.create_job("cancel")
        await job.add_file_set(
            [(server.url("/a"), str(dest / "a")), (server.url("/slow"), str(dest / "slow"))]
        )
        await job.resume()
        while (await job.get_progress()).files_transferred < 1:
            await asyncio.sleep(0.01)
        assert len(leftovers(dest)) >= 1
        assert await job.cancel() == codes.S_OK
        assert await job.get_state() is JobState.CANCELLED
    assert os.listdir(dest) == []


async def test_existing_final_file_is_replaced_on_complete(
    server: FaultServer, make_engine: EngineFactory, dest: Path
) -> None:
    """A file already at the final name is replaced by Complete (BITS: REPLACE_EXISTING), and
    left alone until then."""
    (dest / "f").write_bytes(b"old")
    server.add("/f", b"new content")
    async with make_engine() as engine:
        job = await engine.create_job("replace")
        await job.add_file(server.url("/f"), str(dest / "f"))
        await job.resume()
        await settle(job)
        assert (dest / "f").read_bytes() == b"old"
        await job.complete()
    assert (dest / "f").read_bytes() == b"new content"


async def test_job_inactivity_timeout_cancels_and_deletes(
    server: FaultServer, make_engine: EngineFactory, dest: Path, clock: FakeClock
) -> None:
    """A job untouched for the job inactivity timeout is cancelled and its temporary files
    deleted; touching it resets the timer."""
    server.add("/a", body(1000))
    async with make_engine(job_inactivity_timeout=1000) as engine:
        job = await engine.create_job("idle")
        await job.add_file(server.url("/a"), str(dest / "a"))
        await job.resume()
        await settle(job)
        assert leftovers(dest)
        await advance(clock, 900)
        await job.set_description("touched")
        await advance(clock, 900)
        assert await job.get_state() is JobState.TRANSFERRED
        await advance(clock, 101)
        assert await settle(job, (JobState.CANCELLED,)) is JobState.CANCELLED
    assert os.listdir(dest) == []


async def test_a_lone_job_never_touched_is_cancelled_for_inactivity(
    make_engine: EngineFactory, clock: FakeClock
) -> None:
    """The only job of an engine, created and left alone: nothing else wakes the scheduler,
    and its inactivity timeout still cancels it."""
    async with make_engine(job_inactivity_timeout=1000) as engine:
        await advance(clock, 0)
        job = await engine.create_job("alone")
        await advance(clock, 999)
        assert await job.get_state() is JobState.SUSPENDED
        await advance(clock, 2)
        assert await job.get_state() is JobState.CANCELLED


async def test_the_scheduler_keeps_its_sleep_while_the_next_deadline_moves_later(
    make_engine: EngineFactory, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Touching a job moves its inactivity deadline later: the scheduler keeps the sleep it
    has (waking early finds nothing due) instead of starting one per round, and the job is
    still cancelled when the deadline of its last touch passes."""
    async with make_engine(job_inactivity_timeout=1000) as engine:
        job = await engine.create_job("touched often")
        await advance(clock, 0)
        sleeps: list[float] = []  # the scheduler's (the clock has other sleepers)
        sleep_until = clock.sleep_until

        def noting(deadline: float) -> Coroutine[Any, Any, None]:
            caller = sys._getframe(1).f_code.co_name
            if caller == "_schedule_loop":
                sleeps.append(deadline)
            return sleep_until(deadline)

        monkeypatch.setattr(clock, "sleep_until", noting)
        for i in range(20):
            await advance(clock, 10)
            await job.set_description(f"touch {i}")
            await advance(clock, 0)
        assert sleeps == []  # the sleep until the first deadline (1000 s after creation) stays
        await advance(clock, 1000 - 200 + 1)  # past the first deadline: an early wake
        assert await job.get_state() is JobState.SUSPENDED
        await advance(clock, 200)  # past the last touch's deadline
        assert await job.get_state() is JobState.CANCELLED
        assert len(sleeps) == 1  # one new sleep, from the early wake to the real deadline


async def test_a_scheduler_round_looks_only_at_what_changed(
    server: FaultServer,
    make_engine: EngineFactory,
    dest: Path,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With many jobs queued and waiting, a change to one job costs a round that looks at that
    job alone (bitsd._agenda), and the waiting jobs still start in queue order as slots free."""
    server.add("/a", body(1000))
    async with make_engine(
        max_background_jobs=1, job_inactivity_timeout=1000, max_jobs_per_user=0
    ) as engine:
        other = await engine.create_job("suspended")
        jobs = []
        for i in range(120):
            job = await engine.create_job(f"j{i}")
            await job.add_file(server.url("/a"), str(dest / f"a{i}"))
            jobs.append(job)
        for job in jobs:
            await job.resume()
        await advance(clock, 0)
        looked: list[str] = []
        look_at = engine._look_at

        async def counting(job_id: str, now: float) -> None:
            looked.append(job_id)
            await look_at(job_id, now)

        monkeypatch.setattr(engine, "_look_at", counting)
        await other.set_description("changed")
        for _ in range(20):
            await asyncio.sleep(0)
        assert looked.count(other.id) == 1
        assert len(looked) < 10  # only the changed job and the few that ran meanwhile
        for job in jobs:
            assert await settle(job) is JobState.TRANSFERRED
        done = [(await job.get_times()).transfer_completion_time for job in jobs]
        assert None not in done
        # One slot: they ran one after the other, in order.
        assert done == sorted(t for t in done if t is not None)
        await advance(clock, 1001)  # every job goes idle: each is still looked at in time
        for job in [other, *jobs]:
            assert await settle(job, (JobState.CANCELLED,)) is JobState.CANCELLED


async def test_a_round_plans_again_only_when_the_plan_can_change(
    server: FaultServer, make_engine: EngineFactory, dest: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Property changes of a suspended job run rounds that do not plan; a Resume does, and so
    does a priority change of a queued job: raised to HIGH, it pre-empts the running one."""
    for name in ("slow", "next"):
        server.add(f"/{name}", body(3_000_000))
        server.set_fault(f"/{name}", Fault(rate=2_000_000))
    async with make_engine(max_background_jobs=1) as engine:
        idle = await engine.create_job("idle")
        slow = await engine.create_job("slow")
        await slow.add_file(server.url("/slow"), str(dest / "slow"))
        waiting = await engine.create_job("next")
        await waiting.add_file(server.url("/next"), str(dest / "next"))
        for _ in range(20):
            await asyncio.sleep(0)
        plans: list[float] = []
        plan = engine._plan

        async def counting(now: float) -> float | None:
            plans.append(now)
            return await plan(now)

        monkeypatch.setattr(engine, "_plan", counting)
        await idle.set_description("changed")
        await idle.set_priority(Priority.HIGH)
        for _ in range(20):
            await asyncio.sleep(0)
        assert plans == []
        await slow.resume()
        await settle(slow, (JobState.TRANSFERRING,))
        assert plans
        await waiting.resume()
        for _ in range(20):
            await asyncio.sleep(0)
        assert await waiting.get_state() is JobState.QUEUED
        await waiting.set_priority(Priority.HIGH)
        await settle(waiting, (JobState.TRANSFERRING,))
        assert await slow.get_state() is JobState.QUEUED
        for name in ("slow", "next"):
            server.clear_fault(f"/{name}")
        for job in (slow, waiting):
            assert await settle(job) is JobState.TRANSFERRED


async def test_a_run_going_from_connecting_to_transferring_plans_nothing_again(
    server: FaultServer, make_engine: EngineFactory, dest: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The plan sees a run by its priority, queue place and start, not by which running state
    it is in: the round after CONNECTING -> TRANSFERRING does not plan, the run's end does."""
    server.add("/slow", body(600_000))
    server.set_fault("/slow", Fault(rate=2_000_000))
    async with make_engine() as engine:
        job = await engine.create_job("one run")
        await job.add_file(server.url("/slow"), str(dest / "slow"))
        states: list[JobState] = []
        plan = engine._plan

        async def noting(now: float) -> float | None:
            states.append(await job.get_state())
            return await plan(now)

        monkeypatch.setattr(engine, "_plan", noting)
        await job.resume()
        assert await settle(job, (JobState.TRANSFERRING,)) is JobState.TRANSFERRING
        for _ in range(20):
            await asyncio.sleep(0)  # the round after the change has run
        assert JobState.TRANSFERRING not in states
        assert await settle(job) is JobState.TRANSFERRED
        for _ in range(20):
            await asyncio.sleep(0)
        assert states[-1] is JobState.TRANSFERRED  # the run's end plans again


async def test_maximum_download_time_fails_the_job(
    server: FaultServer, make_engine: EngineFactory, dest: Path, clock: FakeClock
) -> None:
    """Time spent transferring beyond the maximum download time fails the job with
    BG_E_MAXDOWNLOAD_TIMEOUT."""
    server.add("/slow", body(5_000_000))
    server.set_fault("/slow", Fault(rate=500_000))
    async with make_engine() as engine:
        job = await engine.create_job("max time")
        await job.set_maximum_download_time(60)
        await job.add_file(server.url("/slow"), str(dest / "slow"))
        await job.resume()
        await settle(job, (JobState.TRANSFERRING,))
        await advance(clock, 59)
        assert await job.get_state() is JobState.TRANSFERRING
        await advance(clock, 2)
        assert await settle(job) is JobState.ERROR
        assert (await job.get_error()).code == codes.BG_E_MAXDOWNLOAD_TIMEOUT


async def test_foreground_runs_beside_background_and_priority_preempts(
    server: FaultServer, make_engine: EngineFactory, dest: Path
) -> None:
    """With one background slot, a HIGH job pre-empts a running LOW job (back to QUEUED) and a
    FOREGROUND job runs at the same time as the background one."""
    for name in ("low", "high", "fg"):
        server.add(f"/{name}", body(3_000_000))
        server.set_fault(f"/{name}", Fault(rate=2_000_000))
    async with make_engine(max_background_jobs=1) as engine:
        low = await engine.create_job("low")
        await low.set_priority(Priority.LOW)
        await low.add_file(server.url("/low"), str(dest / "low"))
        await low.resume()
        await settle(low, (JobState.TRANSFERRING,))
        high = await engine.create_job("high")
        await high.set_priority(Priority.HIGH)
        await high.add_file(server.url("/high"), str(dest / "high"))
        await high.resume()
        await settle(high, (JobState.TRANSFERRING,))
        assert await low.get_state() is JobState.QUEUED
        fg = await engine.create_job("fg")
        await fg.set_priority(Priority.FOREGROUND)
        await fg.add_file(server.url("/fg"), str(dest / "fg"))
        await fg.resume()
        await settle(fg, (JobState.TRANSFERRING,))
        assert await high.get_state() is JobState.TRANSFERRING
        for name in ("low", "high", "fg"):
            server.clear_fault(f"/{name}")
        for job in (low, high, fg):
            assert await settle(job) is JobState.TRANSFERRED


async def test_same_priority_jobs_share_time(
    server: FaultServer, make_engine: EngineFactory, dest: Path, clock: FakeClock
) -> None:
    """With one background slot, a running job gives way to a waiting one of its level when
    its time slice ends, and continues later from where it stopped."""
    for name in ("one", "two"):
        server.add(f"/{name}", body(4_000_000))
        server.set_fault(f"/{name}", Fault(rate=2_000_000))
    async with make_engine(max_background_jobs=1, time_slice=100) as engine:
        one = await engine.create_job("one")
        await one.add_file(server.url("/one"), str(dest / "one"))
        await one.resume()
        await settle(one, (JobState.TRANSFERRING,))
        two = await engine.create_job("two")
        await two.add_file(server.url("/two"), str(dest / "two"))
        await two.resume()
        await asyncio.sleep(0.1)
        assert await two.get_state() is JobState.QUEUED
        await advance(clock, 100)
        await settle(two, (JobState.TRANSFERRING,))
        assert await one.get_state() is JobState.QUEUED
        held = (await one.get_progress()).bytes_transferred
        for name in ("one", "two"):
            server.clear_fault(f"/{name}")
        await advance(clock, 100)
        for job in (one, two):
            assert await settle(job) is JobState.TRANSFERRED
    assert held > 0
    assert f"bytes={held}-" in [r.range for r in server.requests_for("/one")]


async def test_failed_rename_keeps_the_job_and_its_transfer(
    server: FaultServer, make_engine: EngineFactory, dest: Path
) -> None:
    """When Complete cannot move a file into place, it raises with the OS error as an HRESULT,
    the job stays in the queue, and a transfer it interrupted goes on."""
    server.add("/a", body(1000))
    server.add("/slow", body(2_000_000))
    server.set_fault("/slow", Fault(rate=1_000_000, times=1))
    async with make_engine() as engine:
        job = await engine.create_job("rename fails")
        await job.add_file_set(
            [(server.url("/a"), str(dest / "a")), (server.url("/slow"), str(dest / "slow"))]
        )
        await job.resume()
        while (await job.get_progress()).files_transferred < 1:
            await asyncio.sleep(0.01)
        (dest / "a").mkdir()
        (dest / "a" / "blocker").write_bytes(b"x")
        with pytest.raises(bitsd.BitsError) as info:
            await job.complete()
        assert codes.is_failure(info.value.hresult)
        assert await job.get_state() in (
            JobState.QUEUED,
            JobState.CONNECTING,
            JobState.TRANSFERRING,
        )
        assert await settle(job) is JobState.TRANSFERRED
        (dest / "a" / "blocker").unlink()
        (dest / "a").rmdir()
        assert await job.complete() == codes.S_OK
    assert (dest / "a").read_bytes() == body(1000)
    assert (dest / "slow").read_bytes() == body(2_000_000)


def _rename_threads(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Note, for each call of Complete's renames, whether it ran on the loop's thread."""
    seen: list[bool] = []
    real = bitsd._files.rename_all_into_place

    def noting(pairs: list[tuple[str, str]]) -> tuple[int, OSError | None]:
        seen.append(threading.current_thread() is threading.main_thread())
        return real(pairs)

    monkeypatch.setattr(bitsd._engine, "rename_all_into_place", noting)
    return seen


@pytest.mark.skipif(not os.path.isdir("/dev/shm"), reason="needs /dev/shm")
async def test_complete_renames_a_few_files_in_memory_on_the_loop(
    server: FaultServer,
    make_engine: EngineFactory,
    monkeypatch: pytest.MonkeyPatch,
    tmpfs_folder: Path,
) -> None:
    """Complete of a job of a few files in a memory-backed folder renames them on the loop (no
    worker-thread hop); a failed rename there still leaves the job queued with its error."""
    folder = tmpfs_folder
    seen = _rename_threads(monkeypatch)
    server.add("/a", body(1000, 1))
    server.add("/b", body(2000, 2))
    async with make_engine() as engine:
        job = await engine.create_job("tmpfs complete")
        await job.add_file_set(
            [(server.url("/a"), str(folder / "a")), (server.url("/b"), str(folder / "b"))]
        )
        await job.resume()
        assert await settle(job) is JobState.TRANSFERRED
        (folder / "b").mkdir()
        (folder / "b" / "blocker").write_bytes(b"x")
        with pytest.raises(bitsd.BitsError):
            await job.complete()
        assert await job.get_state() is JobState.TRANSFERRED
        shutil.rmtree(folder / "b")
        assert await job.complete() == codes.S_OK
    assert seen == [True, True]
    assert (folder / "a").read_bytes() == body(1000, 1)
    assert (folder / "b").read_bytes() == body(2000, 2)
    assert leftovers(folder) == []


async def test_complete_renames_on_a_worker_thread_off_memory_or_for_many_files(
    server: FaultServer,
    make_engine: EngineFactory,
    dest: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Renames whose folder is not memory-backed (a folder sync may wait for a disk), or of
    more files than the loop takes, run on a worker thread."""
    seen = _rename_threads(monkeypatch)
    count = bitsd._engine._RENAMES_ON_LOOP + 1
    for i in range(count):
        server.add(f"/f{i}", body(100 + i, i))
    async with make_engine() as engine:
        monkeypatch.setattr(bitsd._engine, "folder_memory_backed", lambda folder: False)
        one = await engine.create_job("disk")
        await one.add_file(server.url("/f0"), str(dest / "one"))
        await one.resume()
        assert await settle(one) is JobState.TRANSFERRED
        assert await one.complete() == codes.S_OK
        monkeypatch.setattr(bitsd._engine, "folder_memory_backed", lambda folder: True)
        many = await engine.create_job("many")
        await many.add_file_set([(server.url(f"/f{i}"), str(dest / f"m{i}")) for i in range(count)])
        await many.resume()
        assert await settle(many) is JobState.TRANSFERRED
        assert await many.complete() == codes.S_OK
    assert seen == [False, False]
    assert (dest / "one").read_bytes() == body(100, 0)
    assert [(dest / f"m{i}").read_bytes() == body(100 + i, i) for i in range(count)] == [
        True
    ] * count


async def test_crash_between_rename_and_record_is_repaired(
    server: FaultServer, make_engine: EngineFactory, dest: Path
) -> None:
    """If the process died after Complete renamed a file but before that was stored, the next
    start sees the final file in place and Complete finishes with S_OK, fetching nothing."""
    server.add("/a", body(5000, 1))
    server.add("/b", body(7000, 2))
    async with make_engine() as engine:
        job = await engine.create_job("crash in complete")
        await job.add_file_set(
            [(server.url("/a"), str(dest / "a")), (server.url("/b"), str(dest / "b"))]
        )
        await job.resume()
        await settle(job)
        first = (await job.files())[0]
    os.replace(first.temporary_name, first.local_name)  # what the crashed Complete had done
    requests = len(server.requests)
    async with make_engine() as engine:
        again = await engine.get_job(job.id)
        assert await again.get_state() is JobState.TRANSFERRED
        assert await again.complete() == codes.S_OK
    assert (dest / "a").read_bytes() == body(5000, 1)
    assert (dest / "b").read_bytes() == body(7000, 2)
    assert len(server.requests) == requests


async def test_file_details_answer_what_each_files_getters_answer(
    server: FaultServer, make_engine: EngineFactory, dest: Path, tmp_path: Path
) -> None:
    """The daemon lists files with ``Job._file_details`` (one pass) and ``shapes.file_to_json``
    (built from the record); it must answer, file by file, what the file's FileInfo,
    GetFileRanges, the validation state and GetFilledFileRanges answer (None where that
    getter fails with BG_E_RANDOM_ACCESS_NOT_SUPPORTED), for every kind of job."""
    async with make_engine() as engine:
        done, *others = await jobs_of_every_kind(engine, server, dest, tmp_path)
        for job in (done, *others):
            expected = []
            for i, info in enumerate(await job.files()):
                filled: list[tuple[int, int]] | None
                try:
                    filled = await job.get_filled_file_ranges(i)
                except bitsd.BitsError as exc:
                    filled = None
                    refused = exc.hresult
                    assert refused == codes.BG_E_RANDOM_ACCESS_NOT_SUPPORTED
                ranges = await job.get_file_ranges(i)
                expected.append(
                    {
                        **file_info_to_json(info),
                        "ranges": ranges_to_json(ranges),
                        "validated": await job.get_validation_state(i),
                        "filled_ranges": None if filled is None else ranges_to_json(filled),
                    }
                )
            assert [file_to_json(d) for d in await job._file_details()] == expected
            assert [file_to_json(d) for d in await job._file_details(1)] == expected[1:]
        shown = [file_to_json(d) for d in await done._file_details()]
        assert [f["filled_ranges"] for f in shown] == [[[0, 50_000]], None]
        assert [f["ranges"] for f in shown] == [[], [[0, 100], [1000, 10]]]
        assert [f["validated"] for f in shown] == [True, False]
        assert [f["progress"]["bytes_total"] for f in shown] == [50_000, 110]


async def test_complete_ends_the_job_in_the_store_with_one_write(
    server: FaultServer, make_engine: EngineFactory, dest: Path, state_dir: Path
) -> None:
    """Complete of a transferred job writes the store once: the job's row leaves with its
    files and its pending JobTransferred notification (nothing of it is loaded again)."""
    server.add("/a", body(3000, 1))
    server.add("/b", body(4000, 2))
    os.mkdir(state_dir)
    store = WritesSeen(state_dir / "jobs.sqlite")
    try:
        async with make_engine(store=store) as engine:
            job = await engine.create_job("one write")
            await job.add_file_set(
                [(server.url("/a"), str(dest / "a")), (server.url("/b"), str(dest / "b"))]
            )
            await job.resume()
            assert await settle(job) is JobState.TRANSFERRED
            await asyncio.sleep(0.1)  # nothing else is written meanwhile
            assert "put_notification" in store.writes
            del store.writes[:]
            assert await job.complete() == codes.S_OK
            assert store.writes == ["delete_job"]
        snapshot = store.load()
        assert (snapshot.jobs, snapshot.files, snapshot.notifications) == ([], {}, [])
    finally:
        store.close()
    assert (dest / "a").read_bytes() == body(3000, 1)
    assert (dest / "b").read_bytes() == body(4000, 2)


async def test_wait_for_a_state_reached_already_returns_it_even_with_no_time(
    make_engine: EngineFactory,
) -> None:
    """wait() of a job in one of the states returns that state at once, even with a zero
    timeout (a poll), and times out only for a state not reached."""
    async with make_engine() as engine:
        job = await engine.create_job("poll")
        assert await job.wait([JobState.SUSPENDED], timeout=0) is JobState.SUSPENDED
        with pytest.raises(TimeoutError):
            await job.wait([JobState.TRANSFERRED], timeout=0)


async def test_ended_jobs_kept_in_memory_are_bounded(
    make_engine: EngineFactory, dest: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Handles of ended jobs answer from memory, for the most recent ended jobs only (at most
    FINAL_JOBS_KEPT jobs and FINAL_FILES_KEPT files): an older one answers BG_E_NOT_FOUND,
    so a long-running daemon does not keep every job it ever ended."""
    import bitsd._engine

    monkeypatch.setattr(bitsd._engine, "FINAL_JOBS_KEPT", 2)
    monkeypatch.setattr(bitsd._engine, "FINAL_FILES_KEPT", 5)
    async with make_engine() as engine:
        jobs = []
        for n in range(3):
            job = await engine.create_job(f"ended {n}")
            await job.add_file_set(
                [(f"http://127.0.0.1:9/{n}-{i}", str(dest / f"{n}-{i}")) for i in range(2)]
            )
            await job.cancel()
            jobs.append(job)
        with pytest.raises(bitsd.BitsError) as caught:
            await jobs[0].get_state()
        assert caught.value.hresult == codes.BG_E_NOT_FOUND
        for job in jobs[1:]:
            assert await job.get_state() is JobState.CANCELLED
            assert len(await job.files()) == 2
        # Files count too: one ended job of 6 files is kept alone (the last one always is).
        big = await engine.create_job("big")
        await big.add_file_set(
            [(f"http://127.0.0.1:9/big-{i}", str(dest / f"big-{i}")) for i in range(6)]
        )
        await big.cancel()
        assert len(await big.files()) == 6
        for job in jobs[1:]:
            with pytest.raises(bitsd.BitsError):
                await job.get_state()


class _RefusesWrites(FileWritesSpy):
    """The real store, refusing the next ``refusals`` calls of ``put_files`` and
    ``put_progress`` (as sqlite does on a full disk), and noting the offsets it stored."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.refusals = 0
        self.stored: list[int] = []

    def before(self, files: Any) -> None:
        if self.refusals:
            self.refusals -= 1
            raise sqlite3.OperationalError("database or disk is full")

    def after(self, files: Any) -> None:
        self.stored.extend(record.bytes_transferred for record in files)


@pytest.mark.parametrize("refusals", [1, 2], ids=["checkpoint", "checkpoint-and-close"])
async def test_a_checkpoint_the_store_refuses_is_not_shown_as_progress(
    server: FaultServer, make_engine: EngineFactory, dest: Path, state_dir: Path, refusals: int
) -> None:
    """A checkpoint whose write the store refuses fails the job (an internal error, E_FAIL),
    and the progress shown is the last offset stored, which a restart resumes from: the one
    the stopped transfer's last checkpoint stored, or the one before if the store refuses that
    too; never the refused one (the engine showed it before it was stored, and the sink took
    it as checkpointed)."""
    server.add("/f", body(2_000_000))
    server.set_fault("/f", Fault(rate=2_000_000))
    os.mkdir(state_dir)
    store = _RefusesWrites(state_dir / "jobs.sqlite")
    async with make_engine(store=store, checkpoint_bytes=256 * 1024) as engine:
        job = await engine.create_job("refused checkpoint")
        await job.add_file(server.url("/f"), str(dest / "f"))
        await job.resume()
        while not any(store.stored):  # real time: the first checkpoint with bytes
            await asyncio.sleep(0.005)
        store.refusals = refusals
        assert await settle(job) is JobState.ERROR
        err = await job.get_error()
        assert (err.code, err.context) == (codes.E_FAIL, ErrorContext.GENERAL_QUEUE_MANAGER)
        shown = (await job.get_progress()).bytes_transferred
        assert shown == store.stored[-1] > 0
        assert [f.progress.bytes_transferred for f in await job.files()] == [shown]
