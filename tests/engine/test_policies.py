"""Policies against a real loopback server: bandwidth windows, foreground exemption, per-job
limits, service limits with BITS's codes, and the network-cost transfer policy."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import pytest

import bitsd
from bitsd import ErrorContext, FakeClock, JobState, Priority, codes
from bitsd._bandwidth import BandwidthSchedule
from bitsd._enums import CostStates
from bitsd.aio import Job
from tests.engine.conftest import EngineFactory, advance, body, settle
from tests.servers.faulty import Fault, FaultServer

EVERY_DAY = frozenset(range(7))


class Cost:
    """An injected network cost the test changes at will."""

    def __init__(self, state: CostStates) -> None:
        self.state = state
        self.reads = 0

    async def __call__(self) -> CostStates:
        self.reads += 1
        return self.state


def hours_from_now(
    clock: FakeClock, start: float, end: float, limit: float | None
) -> BandwidthSchedule:
    """A UTC schedule whose work window runs from ``start`` to ``end`` hours after the fake
    clock's current wall time, every day, with ``limit`` inside and no limit outside."""
    now = dt.datetime.fromtimestamp(clock.wall(), dt.UTC)
    return BandwidthSchedule(
        work_limit=limit,
        other_limit=None,
        work_days=EVERY_DAY,
        work_start=(now + dt.timedelta(hours=start)).time(),
        work_end=(now + dt.timedelta(hours=end)).time(),
        timezone="UTC",
    )


async def progress_of(job: Job) -> int:
    return (await job.get_progress()).bytes_transferred


async def until(predicate_job: Job, minimum: int, timeout: float = 10.0) -> None:
    """Wait (real time, bounded) until the job has at least ``minimum`` bytes."""
    async with asyncio.timeout(timeout):
        while await progress_of(predicate_job) < minimum:
            await asyncio.sleep(0.01)


async def test_zero_limit_window_blocks_background_jobs_until_it_ends(
    server: FaultServer, make_engine: EngineFactory, clock: FakeClock, dest: Path
) -> None:
    """A background job under a 0 limit in the current window shows TRANSIENT_ERROR with
    BG_E_BLOCKED_BY_POLICY (queue-manager context, no file, error count unchanged), sends no
    request, and is re-queued when the fake clock passes the window's end: not on its retry
    timer (its retry delay is longer than the window) and without its no-progress timeout
    running out (shorter than the window)."""
    data = body(100_000)
    server.add("/f", data)
    schedule = hours_from_now(clock, -1, 1, 0)
    async with make_engine(bandwidth_schedule=schedule, background_courtesy=False) as engine:
        job = await engine.create_job("night only")
        await job.add_file(server.url("/f"), str(dest / "f"))
        await job.set_minimum_retry_delay(3 * 3600)
        await job.set_no_progress_timeout(1800)
        await job.resume()
        assert await settle(job, (JobState.TRANSIENT_ERROR,)) is JobState.TRANSIENT_ERROR
        error = await job.get_error()
        assert error.code == codes.BG_E_BLOCKED_BY_POLICY
        assert error.context is ErrorContext.GENERAL_QUEUE_MANAGER
        assert error.file is None
        assert await job.get_error_count() == 0
        await advance(clock, 1800)  # still inside the window, past the no-progress timeout
        assert await job.get_state() is JobState.TRANSIENT_ERROR
        assert server.requests_for("/f") == []
        await advance(clock, 1800)  # the window ends
        assert await settle(job) is JobState.TRANSFERRED
        assert await job.complete() == codes.S_OK
    assert (dest / "f").read_bytes() == data


async def test_window_opening_stops_a_running_job_and_it_continues_after(
    server: FaultServer, make_engine: EngineFactory, clock: FakeClock, dest: Path
) -> None:
    """A background job transferring when a 0-limit window opens is stopped (its progress
    checkpointed) and shows BG_E_BLOCKED_BY_POLICY; after the window it continues with a Range
    request from where it stopped."""
    data = body(200_000)
    server.add("/slow", data)
    server.set_fault("/slow", Fault(stall_after=50_000, stall_seconds=30, times=1))
    schedule = hours_from_now(clock, 1, 2, 0)
    async with make_engine(bandwidth_schedule=schedule, background_courtesy=False) as engine:
        job = await engine.create_job("until nine")
        await job.add_file(server.url("/slow"), str(dest / "slow"))
        await job.resume()
        await until(job, 50_000)
        await advance(clock, 3600)  # the window opens
        assert await settle(job, (JobState.TRANSIENT_ERROR,)) is JobState.TRANSIENT_ERROR
        assert (await job.get_error()).code == codes.BG_E_BLOCKED_BY_POLICY
        kept = await progress_of(job)
        assert kept == 50_000
        await advance(clock, 3600)  # the window closes
        assert await settle(job) is JobState.TRANSFERRED
        await job.complete()
    assert (dest / "slow").read_bytes() == data
    ranges = [r.range for r in server.requests_for("/slow")]
    assert ranges[-1] == "bytes=50000-"


async def test_foreground_jobs_ignore_every_bandwidth_limit(
    server: FaultServer, make_engine: EngineFactory, dest: Path
) -> None:
    """With every background limit at its strictest (service-wide 0, NORMAL at 0, a tiny
    scheduled limit) a FOREGROUND job transfers without the fake clock moving, while a NORMAL
    job beside it is blocked."""
    data = body(300_000)
    server.add("/f", data)
    server.add("/b", b"background")
    async with make_engine(
        bandwidth_limit=0,
        priority_limits={"normal": 0},
        bandwidth_schedule=BandwidthSchedule(work_limit=300, other_limit=300),
        background_courtesy=False,
    ) as engine:
        fg = await engine.create_job("fg")
        await fg.set_priority(Priority.FOREGROUND)
        await fg.add_file(server.url("/f"), str(dest / "f"))
        bg = await engine.create_job("bg")
        await bg.add_file(server.url("/b"), str(dest / "b"))
        await bg.resume()
        await fg.resume()
        assert await settle(fg) is JobState.TRANSFERRED
        assert await settle(bg, (JobState.TRANSIENT_ERROR,)) is JobState.TRANSIENT_ERROR
        assert (await bg.get_error()).code == codes.BG_E_BLOCKED_BY_POLICY
        await fg.complete()
    assert (dest / "f").read_bytes() == data


async def test_priority_zero_limit_blocks_only_that_level(
    server: FaultServer, make_engine: EngineFactory, dest: Path
) -> None:
    """A 0 limit for LOW blocks LOW jobs only; a NORMAL job transfers."""
    server.add("/x", b"x" * 1000)
    async with make_engine(priority_limits={Priority.LOW: 0}, background_courtesy=False) as engine:
        low = await engine.create_job("low")
        await low.set_priority(Priority.LOW)
        await low.add_file(server.url("/x"), str(dest / "low"))
        normal = await engine.create_job("normal")
        await normal.add_file(server.url("/x"), str(dest / "normal"))
        await low.resume()
        await normal.resume()
        assert await settle(normal) is JobState.TRANSFERRED
        assert await settle(low, (JobState.TRANSIENT_ERROR,)) is JobState.TRANSIENT_ERROR
        assert (await low.get_error()).code == codes.BG_E_BLOCKED_BY_POLICY


async def test_reconfigure_blocks_and_releases_a_running_job(
    server: FaultServer, make_engine: EngineFactory, dest: Path
) -> None:
    """``reconfigure(bandwidth_limit=0)`` (the daemon's SIGHUP) blocks a transferring
    background job at once; ``bandwidth_limit=None`` re-queues it and it finishes."""
    data = body(120_000)
    server.add("/s", data)
    server.set_fault("/s", Fault(stall_after=40_000, stall_seconds=30, times=1))
    async with make_engine(background_courtesy=False) as engine:
        job = await engine.create_job("sighup")
        await job.add_file(server.url("/s"), str(dest / "s"))
        await job.resume()
        await until(job, 40_000)
        engine.reconfigure(bandwidth_limit=0)
        assert await settle(job, (JobState.TRANSIENT_ERROR,)) is JobState.TRANSIENT_ERROR
        assert (await job.get_error()).code == codes.BG_E_BLOCKED_BY_POLICY
        engine.reconfigure(bandwidth_limit=None)
        assert await settle(job) is JobState.TRANSFERRED
        await job.complete()
    assert (dest / "s").read_bytes() == data


@pytest.mark.parametrize(
    "transport", ["raw", "raw-inloop", "raw-tls", "aiohttp", "bulk"], indirect=True
)
async def test_per_job_limit_holds_the_job_back_until_time_passes(
    server: FaultServer, make_engine: EngineFactory, clock: FakeClock, dest: Path, transport: str
) -> None:
    """A job with ``set_bandwidth_limit`` moves only a small piece while the fake clock stands
    still (its bucket waits on the clock), and finishes as the clock moves; a FOREGROUND job
    with a limit is throttled too (the per-job limit is the caller's own). On every transport:
    bitsd's own client writes through the sink's descriptor in pieces the bucket allows, and
    the splice helper (a body of ``HELPER_MIN`` bytes or more, "raw") moves only what the
    bucket granted."""
    data = body(400 * 1024)  # what follows the head's read is over HELPER_MIN
    server.add("/j", data)
    async with make_engine(background_courtesy=False) as engine:
        job = await engine.create_job("slow")
        await job.set_priority(Priority.FOREGROUND)
        await job.set_bandwidth_limit(8192)
        await job.add_file(server.url("/j"), str(dest / "j"))
        await job.resume()
        await until(job, 1)
        for _ in range(20):
            await asyncio.sleep(0.01)
        assert await progress_of(job) <= 2048
        async with asyncio.timeout(20):
            while await job.get_state() is not JobState.TRANSFERRED:
                await advance(clock, 0.25)
                await asyncio.sleep(0.005)
        await job.complete()
        # The helper poured the body ("bulk": a job with a bandwidth limit has no bulk).
        assert (engine._splice_helper.pid is not None) is (transport in ("raw", "bulk"))
    assert (dest / "j").read_bytes() == data


async def test_too_many_jobs_per_user(make_engine: EngineFactory) -> None:
    """Beyond max_jobs_per_user, create_job raises BG_E_TOO_MANY_JOBS_PER_USER; a cancelled
    job frees its place; 0 means unlimited; the default is BITS's 60."""
    assert bitsd.EngineConfig().max_jobs_per_user == 60
    async with make_engine(max_jobs_per_user=2) as engine:
        first = await engine.create_job("1")
        await engine.create_job("2")
        with pytest.raises(bitsd.BitsError) as info:
            await engine.create_job("3")
        assert info.value.hresult == codes.BG_E_TOO_MANY_JOBS_PER_USER
        assert len(await engine.jobs()) == 2
        await first.cancel()
        await engine.create_job("3")
        engine.reconfigure(max_jobs_per_user=0)
        for i in range(5):
            await engine.create_job(f"more {i}")


async def test_default_job_limit_is_enforced(make_engine: EngineFactory) -> None:
    """With the defaults, the 61st job of a user is refused."""
    async with make_engine() as engine:
        for i in range(60):
            await engine.create_job(f"job {i}")
        with pytest.raises(bitsd.BitsError) as info:
            await engine.create_job("one too many")
        assert info.value.hresult == codes.BG_E_TOO_MANY_JOBS_PER_USER


async def test_too_many_files_in_job(
    server: FaultServer, make_engine: EngineFactory, dest: Path
) -> None:
    """add_file_set beyond max_files_per_job raises BG_E_TOO_MANY_FILES_IN_JOB and adds
    nothing; add_file at the limit raises it too."""
    server.add("/a", b"a")
    url = server.url("/a")
    async with make_engine(max_files_per_job=3) as engine:
        job = await engine.create_job("files")
        with pytest.raises(bitsd.BitsError) as info:
            await job.add_file_set([(url, str(dest / f"{i}")) for i in range(4)])
        assert info.value.hresult == codes.BG_E_TOO_MANY_FILES_IN_JOB
        assert await job.files() == []
        await job.add_file_set([(url, str(dest / f"{i}")) for i in range(3)])
        with pytest.raises(bitsd.BitsError) as again:
            await job.add_file(url, str(dest / "x"))
        assert again.value.hresult == codes.BG_E_TOO_MANY_FILES_IN_JOB
        assert len(await job.files()) == 3


async def test_too_many_ranges_comes_from_config(
    server: FaultServer, make_engine: EngineFactory, dest: Path
) -> None:
    """max_ranges_per_file replaces the 500 of BITS: over it, BG_E_TOO_MANY_RANGES_IN_FILE."""
    server.add("/r", b"r" * 1000)
    async with make_engine(max_ranges_per_file=2) as engine:
        job = await engine.create_job("ranges")
        with pytest.raises(bitsd.BitsError) as info:
            await job.add_file_with_ranges(
                server.url("/r"), str(dest / "r"), [(0, 1), (10, 1), (20, 1)]
            )
        assert info.value.hresult == codes.BG_E_TOO_MANY_RANGES_IN_FILE
        await job.add_file_with_ranges(server.url("/r"), str(dest / "r"), [(0, 1), (10, 1)])


async def test_cost_policy_holds_the_job_until_the_network_changes(
    server: FaultServer, make_engine: EngineFactory, clock: FakeClock, dest: Path
) -> None:
    """On a USAGE_BASED network a job whose transfer policy is TRANSFER_UNRESTRICTED waits in
    TRANSIENT_ERROR with BG_E_BLOCKED_BY_COST_TRANSFER_POLICY (a FOREGROUND one too), while a
    STANDARD job transfers; when the cost becomes UNRESTRICTED the held jobs proceed at the
    next poll."""
    server.add("/c", b"c" * 5000)
    cost = Cost(CostStates.USAGE_BASED)
    async with make_engine(cost_source=cost, background_courtesy=False) as engine:
        assert cost.reads == 1  # read before the first job could start
        held = await engine.create_job("unmetered only")
        await held.set_transfer_policy(CostStates.TRANSFER_UNRESTRICTED)
        await held.add_file(server.url("/c"), str(dest / "held"))
        fg = await engine.create_job("fg, unmetered only")
        await fg.set_priority(Priority.FOREGROUND)
        await fg.set_transfer_policy(CostStates.TRANSFER_UNRESTRICTED)
        await fg.add_file(server.url("/c"), str(dest / "fg"))
        standard = await engine.create_job("standard")
        await standard.add_file(server.url("/c"), str(dest / "standard"))
        for job in (held, fg, standard):
            await job.resume()
        assert await settle(standard) is JobState.TRANSFERRED
        for job in (held, fg):
            assert await settle(job, (JobState.TRANSIENT_ERROR,)) is JobState.TRANSIENT_ERROR
            error = await job.get_error()
            assert error.code == codes.BG_E_BLOCKED_BY_COST_TRANSFER_POLICY
        cost.state = CostStates.UNRESTRICTED
        await advance(clock, engine.config.cost_poll_interval)
        assert await settle(held) is JobState.TRANSFERRED
        assert await settle(fg) is JobState.TRANSFERRED


async def test_cost_change_stops_a_running_job(
    server: FaultServer, make_engine: EngineFactory, clock: FakeClock, dest: Path
) -> None:
    """A transferring job whose network becomes ROAMING (outside TRANSFER_STANDARD) is stopped
    and held with BG_E_BLOCKED_BY_COST_TRANSFER_POLICY; Resume does not bypass the policy; the
    job continues when the network is unrestricted again."""
    data = body(150_000)
    server.add("/m", data)
    server.set_fault("/m", Fault(stall_after=30_000, stall_seconds=30, times=1))
    cost = Cost(CostStates.UNRESTRICTED)
    async with make_engine(cost_source=cost, background_courtesy=False) as engine:
        job = await engine.create_job("roaming")
        await job.add_file(server.url("/m"), str(dest / "m"))
        await job.resume()
        await until(job, 30_000)
        cost.state = CostStates.ROAMING
        await advance(clock, engine.config.cost_poll_interval)
        assert await settle(job, (JobState.TRANSIENT_ERROR,)) is JobState.TRANSIENT_ERROR
        assert (await job.get_error()).code == codes.BG_E_BLOCKED_BY_COST_TRANSFER_POLICY
        await job.resume()
        await settle(job, (JobState.TRANSIENT_ERROR,))
        assert (await job.get_error()).code == codes.BG_E_BLOCKED_BY_COST_TRANSFER_POLICY
        cost.state = CostStates.UNRESTRICTED
        await advance(clock, engine.config.cost_poll_interval)
        assert await settle(job) is JobState.TRANSFERRED
        await job.complete()
    assert (dest / "m").read_bytes() == data


async def test_block_reason_follows_the_policy_that_holds(
    server: FaultServer, make_engine: EngineFactory, clock: FakeClock, dest: Path
) -> None:
    """A job held by the cost policy that is also under a 0 window shows the cost code; when
    the cost allows it but the window still blocks, the code becomes BG_E_BLOCKED_BY_POLICY
    (the job stays in TRANSIENT_ERROR)."""
    server.add("/z", b"z")
    cost = Cost(CostStates.ROAMING)
    schedule = hours_from_now(clock, -1, 1, 0)
    async with make_engine(
        cost_source=cost, bandwidth_schedule=schedule, background_courtesy=False
    ) as engine:
        job = await engine.create_job("both")
        await job.add_file(server.url("/z"), str(dest / "z"))
        await job.resume()
        await settle(job, (JobState.TRANSIENT_ERROR,))
        assert (await job.get_error()).code == codes.BG_E_BLOCKED_BY_COST_TRANSFER_POLICY
        cost.state = CostStates.UNRESTRICTED
        await advance(clock, engine.config.cost_poll_interval)
        async with asyncio.timeout(10):
            while (await job.get_error()).code != codes.BG_E_BLOCKED_BY_POLICY:
                await asyncio.sleep(0.01)
        assert await job.get_state() is JobState.TRANSIENT_ERROR
        await advance(clock, 3600)
        assert await settle(job) is JobState.TRANSFERRED
