"""Unit tests of bitsd._bandwidth: schedule windows, token buckets, the bandwidth manager."""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import types

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bitsd import EngineConfig, FakeClock, Priority
from bitsd._bandwidth import (
    BURST_SECONDS,
    MAX_PIECE,
    MIN_PIECE,
    MIN_RATE,
    BandwidthManager,
    BandwidthSchedule,
    TokenBucket,
    limit_at,
    next_change,
    parse_priority_limits,
    smallest,
)

FRI = dt.date(2027, 1, 15)  # a Friday
SAT = dt.date(2027, 1, 16)
OFFICE = BandwidthSchedule(work_limit=1000, other_limit=None)  # Mon-Fri 8:00-17:00


def at(day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute))


# -- schedule windows ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("when", "inside"),
    [
        (at(FRI, 8), True),  # the window opens at work_start
        (at(FRI, 16, 59), True),
        (at(FRI, 17), False),  # and is closed at work_end
        (at(FRI, 7, 59), False),
        (at(SAT, 12), False),  # not a work day
        (at(FRI - dt.timedelta(days=4), 9), True),  # Monday
    ],
)
def test_default_schedule_is_weekdays_eight_to_five(when: dt.datetime, inside: bool) -> None:
    """The default work window is Monday to Friday, 8:00 (included) to 17:00 (excluded), the
    default work schedule of BITS's EnableBandwidthLimits."""
    assert OFFICE.in_work_hours(when) is inside
    assert OFFICE.limit_at(when) == (1000 if inside else None)


def test_window_past_midnight_belongs_to_the_day_it_opens() -> None:
    """A 22:00-06:00 window on Fridays covers Saturday 05:00 (it opened on Friday) but not
    Friday 05:00 (Thursday is no work day here)."""
    night = BandwidthSchedule(
        work_limit=0, work_days=frozenset({4}), work_start=dt.time(22), work_end=dt.time(6)
    )
    assert night.in_work_hours(at(SAT, 5))
    assert not night.in_work_hours(at(SAT, 6))
    assert not night.in_work_hours(at(FRI, 5))
    assert night.in_work_hours(at(FRI, 22))
    assert night.next_change(at(FRI, 12)) == at(FRI, 22)
    assert night.next_change(at(FRI, 23)) == at(SAT, 6)


def test_equal_start_and_end_is_a_whole_day() -> None:
    """work_start == work_end makes a 24-hour window from work_start."""
    day = BandwidthSchedule(
        work_limit=5000, work_days=frozenset({4}), work_start=dt.time(12), work_end=dt.time(12)
    )
    assert day.in_work_hours(at(FRI, 12))
    assert day.in_work_hours(at(SAT, 11, 59))
    assert not day.in_work_hours(at(SAT, 12))
    assert day.next_change(at(FRI, 13)) == at(SAT, 12)


def test_next_change_skips_edges_that_change_nothing() -> None:
    """Back-to-back 24-hour windows on Friday and Saturday make one 48-hour window: the next
    change after Friday noon is Sunday noon."""
    weekend = BandwidthSchedule(
        work_limit=0, work_days=frozenset({4, 5}), work_start=dt.time(12), work_end=dt.time(12)
    )
    assert weekend.next_change(at(FRI, 13)) == at(SAT + dt.timedelta(days=1), 12)


def test_no_change_when_both_limits_are_equal_or_no_work_day() -> None:
    """A schedule whose two limits are equal, or that has no work day, never changes."""
    assert BandwidthSchedule(work_limit=10, other_limit=10).next_change(at(FRI, 9)) is None
    assert BandwidthSchedule(work_limit=0, work_days=frozenset()).next_change(at(FRI, 9)) is None


def test_schedule_from_a_config_table() -> None:
    """A config-file table converts: day names, "HH:MM" strings, a time zone; unknown keys
    and bad values are ValueErrors."""
    schedule = BandwidthSchedule.from_mapping(
        {
            "work_limit": 0,
            "other_limit": 2_000_000,
            "work_days": ["mon", "Tuesday", 4],
            "work_start": "09:30",
            "work_end": "18:00",
            "timezone": "Europe/Paris",
        }
    )
    assert schedule.work_days == frozenset({0, 1, 4})
    assert schedule.work_start == dt.time(9, 30)
    assert schedule.other_limit == 2_000_000.0
    assert schedule.tz is not None
    for bad in (
        {"work_limit": -1},
        {"work_limit": "fast"},
        {"work_days": ["someday"]},
        {"work_days": "mon"},
        {"work_start": "25:00"},
        {"timezone": "Mars/Olympus"},
        {"lunch": "12:00"},
    ):
        with pytest.raises(ValueError):  # noqa: PT011 - each message names its own key
            BandwidthSchedule.from_mapping(bad)


def test_wall_time_is_read_in_the_schedules_zone() -> None:
    """limit_at and next_change read a wall time (Unix seconds) as local time in the
    schedule's zone: 07:00 UTC is 08:00 in Paris in winter."""
    paris = BandwidthSchedule(work_limit=0, other_limit=None, timezone="Europe/Paris")
    wall = dt.datetime(2027, 1, 15, 7, 0, tzinfo=dt.UTC).timestamp()
    assert limit_at(paris, wall) == 0
    assert limit_at(paris, wall - 1) is None
    closes = next_change(paris, wall)
    assert closes == dt.datetime(2027, 1, 15, 16, 0, tzinfo=dt.UTC).timestamp()
    assert limit_at(1234.0, wall) == 1234.0
    assert next_change(None, wall) is None


schedules = st.builds(
    BandwidthSchedule,
    work_limit=st.sampled_from([0.0, 1000.0, None]),
    other_limit=st.sampled_from([5000.0, None]),
    work_days=st.frozensets(st.integers(0, 6)),
    work_start=st.times(),
    work_end=st.times(),
)
moments = st.datetimes(min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2100, 1, 1))


@settings(max_examples=300, deadline=None)
@given(schedule=schedules, when=moments, fractions=st.lists(st.floats(0, 1), max_size=5))
def test_next_change_is_the_first_moment_the_limit_changes(
    schedule: BandwidthSchedule, when: dt.datetime, fractions: list[float]
) -> None:
    """For any schedule and moment: the limit holds from the moment up to next_change, and
    differs at next_change; None only when the limit never changes."""
    change = schedule.next_change(when)
    now = schedule.limit_at(when)
    if change is None:
        assert (
            schedule.work_limit == schedule.other_limit
            or not schedule.work_days
            or all(
                schedule.limit_at(when + dt.timedelta(hours=h)) == now for h in range(0, 24 * 8, 7)
            )
        )
        return
    assert change > when
    assert schedule.limit_at(change) != now
    assert schedule.limit_at(change - dt.timedelta(microseconds=1)) == now
    for f in fractions:
        point = when + (change - when) * f
        assert point >= change or schedule.limit_at(point) == now


# -- token buckets ------------------------------------------------------------------------


def test_bucket_lends_and_says_when_to_go_on() -> None:
    """A new bucket is full (BURST_SECONDS of its rate, at least MIN_PIECE); taking more puts
    it in debt, and the answer is when the debt is paid."""
    bucket = TokenBucket(10_000)
    assert bucket.capacity == max(10_000 * BURST_SECONDS, MIN_PIECE)
    assert bucket.reserve(1000, now=50.0) == 50.0  # from the burst
    assert bucket.reserve(1000, now=50.0) == pytest.approx(50.1)  # 1,000 in debt at 10 kB/s
    assert bucket.reserve(500, now=50.1) == pytest.approx(50.15)
    assert bucket.reserve(0, now=60.0) == 60.0  # idle: refilled, capped at capacity


def test_bucket_without_limit_and_blocked_bucket() -> None:
    """None is no limit (always now); 0 never lets bytes through (infinity); a positive rate
    under MIN_RATE acts as MIN_RATE."""
    assert TokenBucket(None).reserve(10**9, now=1.0) == 1.0
    assert TokenBucket(0).reserve(1, now=1.0) == math.inf
    assert TokenBucket(1).rate == MIN_RATE
    assert TokenBucket(None).piece() is None


def test_piece_size_follows_the_rate() -> None:
    """Pieces are 50 ms of the rate, between MIN_PIECE and MAX_PIECE."""
    assert TokenBucket(MIN_RATE).piece() == MIN_PIECE
    assert TokenBucket(100_000).piece() == 5000
    assert TokenBucket(10**10).piece() == MAX_PIECE


@settings(max_examples=200, deadline=None)
@given(
    rate=st.floats(MIN_RATE, 1e9),
    sizes=st.lists(st.integers(1, 10**6), min_size=1, max_size=40),
    gaps=st.lists(st.floats(0, 2), min_size=40, max_size=40),
)
def test_bucket_never_lets_more_than_burst_plus_rate_times_time(
    rate: float, sizes: list[int], gaps: list[float]
) -> None:
    """Whatever the pattern of writes, bytes allowed to move by time T never exceed the burst
    plus rate × (T - start), and a writer that always waits as told moves exactly at the rate
    once the burst is spent."""
    bucket = TokenBucket(rate)
    start = now = 100.0
    moved = 0
    for size, gap in zip(sizes, gaps, strict=False):
        go = bucket.reserve(size, now)
        assert go >= now
        moved += size
        assert moved <= bucket.capacity + rate * (go - start) + 1e-6 * moved + 1
        now = go + gap
    # A writer that goes on exactly when told: the last go-time is where the rate puts it.
    bucket = TokenBucket(rate)
    now = start
    for size in sizes:
        now = bucket.reserve(size, now)
    expected = start + max(0.0, sum(sizes[:-1]) + sizes[-1] - bucket.capacity) / rate
    assert now == pytest.approx(expected, rel=1e-9, abs=1e-9)


def test_rate_change_keeps_debt_and_caps_saved_tokens() -> None:
    """set_rate keeps tokens owed and caps saved ones to the new capacity."""
    bucket = TokenBucket(100_000)
    bucket.reserve(20_000, now=0.0)  # 10,000 in debt
    bucket.set_rate(10_000)
    assert bucket.reserve(0, now=0.0) == pytest.approx(1.0)


# -- the manager --------------------------------------------------------------------------


def manager_for(
    jobs: dict[str, tuple[Priority, float | None]], clock: FakeClock | None = None
) -> BandwidthManager:
    return BandwidthManager(clock or FakeClock(), jobs.get)


def test_foreground_jobs_have_no_bucket_but_their_own() -> None:
    """A FOREGROUND job is not governed by any background limit; its own limit still
    applies."""
    jobs: dict[str, tuple[Priority, float | None]] = {
        "fg": (Priority.FOREGROUND, None),
        "fg-own": (Priority.FOREGROUND, 10_000.0),
        "bg": (Priority.NORMAL, None),
    }
    manager = manager_for(jobs)
    manager.update(wall=0.0, bandwidth_limit=0, schedule=None, priority_limits={})
    assert manager.piece("fg") is None
    assert manager.piece("fg-own") == 512  # 50 ms of 10,000 B/s is under MIN_PIECE
    assert manager.blocked(Priority.NORMAL)
    assert not manager.blocked(Priority.FOREGROUND)


def test_limits_combine_strictest_first() -> None:
    """The service-wide rate is the smallest of bandwidth_limit, the schedule's limit and
    courtesy's; priority limits are separate buckets; a 0 priority limit blocks that level."""
    jobs: dict[str, tuple[Priority, float | None]] = {"low": (Priority.LOW, None)}
    manager = manager_for(jobs)
    wall = dt.datetime(2027, 1, 15, 9, tzinfo=dt.UTC).timestamp()
    office = BandwidthSchedule(work_limit=50_000, other_limit=None, timezone="UTC")
    change = manager.update(
        wall=wall,
        bandwidth_limit=80_000,
        schedule=office,
        priority_limits=parse_priority_limits({"high": 0, "low": 20_000}),
    )
    assert change == dt.datetime(2027, 1, 15, 17, tzinfo=dt.UTC).timestamp()
    assert manager.background_rate == 50_000
    manager.set_courtesy(30_000)
    assert manager.background_rate == 30_000
    manager.set_courtesy(None)
    assert manager.background_rate == 50_000
    assert manager.piece("low") == 1000  # 50 ms of the LOW level's 20,000 B/s
    assert manager.blocked(Priority.HIGH)
    assert not manager.blocked(Priority.LOW)
    assert manager.piece("gone") is None


def test_priority_limits_refuse_foreground_and_unknown_keys() -> None:
    """priority_limits names background levels only, and is read-only."""
    with pytest.raises(ValueError, match="FOREGROUND"):
        parse_priority_limits({"foreground": 1})
    with pytest.raises(ValueError, match="urgent"):
        parse_priority_limits({"urgent": 1})
    limits = parse_priority_limits({Priority.NORMAL: 5})
    assert isinstance(limits, types.MappingProxyType)
    assert EngineConfig(priority_limits={Priority.NORMAL: 5}).priority_limits == limits


def test_smallest() -> None:
    """None is no limit; the smallest present limit wins."""
    assert smallest(None, None) is None
    assert smallest(None, 5.0, 3.0) == 3.0
    assert smallest(0.0, None) == 0.0


async def test_shared_bucket_divides_its_rate_between_jobs() -> None:
    """Two background jobs pacing through the shared background bucket move, together, at
    its rate: 40 pieces of 1,000 bytes at 10,000 B/s take 4 s less the burst on the fake
    clock, whichever job asks."""
    clock = FakeClock(start=0.0)
    jobs: dict[str, tuple[Priority, float | None]] = {
        "a": (Priority.NORMAL, None),
        "b": (Priority.NORMAL, None),
    }
    manager = manager_for(jobs, clock)
    manager.update(wall=0.0, bandwidth_limit=10_000, schedule=None, priority_limits={})
    done: dict[str, float] = {}

    async def writer(job: str) -> None:
        for _ in range(20):
            await manager.pace(job, 1000)
        done[job] = clock.monotonic()

    tasks = [asyncio.create_task(writer(j)) for j in jobs]
    for _ in range(2000):
        await asyncio.sleep(0)
        if clock.next_deadline is not None:
            clock.advance(clock.next_deadline - clock.monotonic())
        if len(done) == 2:
            break
    await asyncio.gather(*tasks)
    assert max(done.values()) == pytest.approx((40_000 - 1000) / 10_000)


async def test_counting_own_bytes() -> None:
    """Every job's received bytes are counted (for courtesy), throttled or not."""
    manager = manager_for({"fg": (Priority.FOREGROUND, None)})
    pacer = manager.pacer("fg")
    pacer.count(100)
    await pacer.pace(100)
    assert pacer.piece() is None
    assert manager.received == 100


# -- configuration ------------------------------------------------------------------------


def test_engine_config_policy_defaults() -> None:
    """No bandwidth limit, courtesy on, BITS's group-policy counts (60 / 200 / 500)."""
    config = EngineConfig()
    assert config.bandwidth_limit is None
    assert config.bandwidth_schedule is None
    assert dict(config.priority_limits) == {}
    assert config.background_courtesy is True
    assert (config.max_jobs_per_user, config.max_files_per_job) == (60, 200)
    assert config.max_ranges_per_file == 500


@pytest.mark.parametrize(
    ("settings", "key"),
    [
        ({"bandwidth_limit": -1}, "bandwidth_limit"),
        ({"bandwidth_limit": BandwidthSchedule()}, "bandwidth_limit"),
        ({"bandwidth_schedule": 5}, "bandwidth_schedule"),
        ({"priority_limits": {"normal": -5}}, "priority_limits"),
        ({"background_courtesy": 1}, "background_courtesy"),
        ({"courtesy_interface": "lo"}, "courtesy_interface"),
        ({"courtesy_floor": 0}, "courtesy_floor"),
        ({"courtesy_threshold": 1.5}, "courtesy_threshold"),
        ({"max_jobs_per_user": -1}, "max_jobs_per_user"),
        ({"max_files_per_job": 2.5}, "max_files_per_job"),
        ({"cost_poll_interval": 0}, "cost_poll_interval"),
        ({"metered_cost": 0x3}, "metered_cost"),
    ],
)
def test_engine_config_rejects_bad_policy_values(settings: dict[str, object], key: str) -> None:
    """Each policy field refuses a value of the wrong kind or range with a ValueError naming
    it."""
    with pytest.raises(ValueError, match=key):
        EngineConfig(**settings)  # type: ignore[arg-type]


def test_engine_config_accepts_config_file_forms() -> None:
    """A schedule given as a table and priority limits keyed by name become values."""
    config = EngineConfig(
        bandwidth_schedule={"work_limit": 0, "work_start": "09:00"},  # type: ignore[arg-type]
        priority_limits={"low": {"work_limit": 100, "other_limit": 1000}},  # type: ignore[dict-item]
    )
    assert config.bandwidth_schedule == BandwidthSchedule(work_limit=0, work_start=dt.time(9))
    assert config.priority_limits[Priority.LOW] == BandwidthSchedule(
        work_limit=100, other_limit=1000
    )
