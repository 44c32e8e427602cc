"""Unit tests for the pure scheduler bitsd._scheduler.plan (bits-inventory §1.5)."""

from __future__ import annotations

import random

import pytest

from bitsd._enums import Priority
from bitsd._scheduler import Candidate, Plan, plan

FG, HIGH, NORMAL, LOW = Priority.FOREGROUND, Priority.HIGH, Priority.NORMAL, Priority.LOW
SLICE = 300.0
T0 = 1000.0  # a turn start; 0.0 has its own test


def queued(job_id: str, priority: Priority = NORMAL, *, seq: int = 0) -> Candidate:
    """A job that wants to transfer."""
    return Candidate(job_id=job_id, priority=priority, queue_seq=seq, running=False)


def running(job_id: str, priority: Priority = NORMAL, *, seq: int = 0, since: float) -> Candidate:
    """A job transferring since ``since``."""
    return Candidate(
        job_id=job_id, priority=priority, queue_seq=seq, running=True, run_started=since
    )


def test_no_candidates_no_plan() -> None:
    """With nothing to run, nothing starts, nothing stops and there is no wake-up."""
    assert Plan(start=(), stop=(), wake_at=None) == plan(
        [], now=0.0, max_background=1, time_slice=SLICE
    )


def test_all_foreground_jobs_start_regardless_of_max_background() -> None:
    """Every FOREGROUND job starts at once, even beyond max_background."""
    jobs = [queued(f"fg{i}", FG, seq=i) for i in range(5)]
    result = plan(jobs, now=0.0, max_background=1, time_slice=SLICE)
    assert Plan(start=("fg0", "fg1", "fg2", "fg3", "fg4"), stop=(), wake_at=None) == result


def test_foreground_jobs_take_no_background_slot() -> None:
    """Foreground jobs run beside the background ones and do not use their slots."""
    jobs = [
        queued("fg", FG, seq=2),
        running("fg-run", FG, seq=1, since=T0),
        queued("bg", NORMAL, seq=0),
    ]
    result = plan(jobs, now=T0, max_background=1, time_slice=SLICE)
    assert Plan(start=("fg", "bg"), stop=(), wake_at=None) == result


def test_running_foreground_job_is_never_stopped() -> None:
    """A running FOREGROUND job keeps running however long it has run and whoever waits."""
    jobs = [running("fg", FG, seq=0, since=T0), queued("fg2", FG, seq=1)]
    result = plan(jobs, now=T0 + 10 * SLICE, max_background=1, time_slice=SLICE)
    assert Plan(start=("fg2",), stop=(), wake_at=None) == result


def test_high_preempts_running_normal() -> None:
    """With max_background=1, a queued HIGH job stops the running NORMAL job and starts."""
    jobs = [running("normal", NORMAL, seq=0, since=T0), queued("high", HIGH, seq=1)]
    result = plan(jobs, now=T0 + 1.0, max_background=1, time_slice=SLICE)
    assert Plan(start=("high",), stop=("normal",), wake_at=None) == result


def test_only_the_best_level_gets_slots_even_when_slots_are_free() -> None:
    """A lower level gets no time while a higher level has runnable jobs, free slots or not."""
    jobs = [
        running("normal", NORMAL, seq=0, since=T0),
        queued("low", LOW, seq=1),
        queued("high", HIGH, seq=2),
    ]
    result = plan(jobs, now=T0 + 1.0, max_background=4, time_slice=SLICE)
    assert Plan(start=("high",), stop=("normal",), wake_at=None) == result


def test_normal_preempts_low() -> None:
    """NORMAL pre-empts LOW just as HIGH pre-empts NORMAL."""
    jobs = [running("low", LOW, seq=0, since=T0), queued("normal", NORMAL, seq=5)]
    result = plan(jobs, now=T0 + 1.0, max_background=1, time_slice=SLICE)
    assert Plan(start=("normal",), stop=("low",), wake_at=None) == result


def test_low_runs_when_nothing_better_waits() -> None:
    """LOW jobs run when they are the best level present."""
    jobs = [queued("low", LOW, seq=0), queued("fg", FG, seq=1)]
    result = plan(jobs, now=0.0, max_background=1, time_slice=SLICE)
    assert Plan(start=("fg", "low"), stop=(), wake_at=None) == result


@pytest.mark.parametrize("max_background", [1, 2, 4])
def test_up_to_max_background_start_at_once(max_background: int) -> None:
    """At most max_background jobs of the best level run; the earliest queued go first."""
    jobs = [queued(f"j{i}", NORMAL, seq=i) for i in range(6)]
    result = plan(jobs, now=0.0, max_background=max_background, time_slice=SLICE)
    expected = tuple(f"j{i}" for i in range(max_background))
    assert Plan(start=expected, stop=(), wake_at=None) == result


def test_running_jobs_count_against_max_background() -> None:
    """A running job of the level holds its slot; only the remaining slots are filled."""
    jobs = [
        running("r", NORMAL, seq=9, since=T0),
        queued("a", NORMAL, seq=1),
        queued("b", NORMAL, seq=2),
    ]
    result = plan(jobs, now=T0 + 1.0, max_background=2, time_slice=SLICE)
    assert result.start == ("a",)
    assert result.stop == ()


def test_fifo_by_queue_seq_whatever_the_input_order() -> None:
    """Within a level, jobs start in queue_seq order, not in the order they are given."""
    jobs = [queued(f"j{seq}", NORMAL, seq=seq) for seq in (7, 3, 11, 1, 5)]
    random.Random(1234).shuffle(jobs)
    result = plan(jobs, now=0.0, max_background=3, time_slice=SLICE)
    assert result.start == ("j1", "j3", "j5")


def test_round_robin_stops_running_job_after_its_slice() -> None:
    """max_background=1, two NORMAL jobs: once the slice ends the waiting job takes the turn."""
    jobs = [running("a", NORMAL, seq=0, since=100.0), queued("b", NORMAL, seq=1)]
    result = plan(jobs, now=100.0 + SLICE, max_background=1, time_slice=SLICE)
    assert Plan(start=("b",), stop=("a",), wake_at=None) == result


@pytest.mark.parametrize("elapsed", [0.0, 1.0, SLICE / 2, SLICE - 0.001])
def test_round_robin_does_not_stop_before_the_slice_ends(elapsed: float) -> None:
    """Before its slice ends the running job keeps its turn; wake_at is the slice end."""
    jobs = [running("a", NORMAL, seq=0, since=100.0), queued("b", NORMAL, seq=1)]
    result = plan(jobs, now=100.0 + elapsed, max_background=1, time_slice=SLICE)
    assert Plan(start=(), stop=(), wake_at=100.0 + SLICE) == result


def test_expired_slice_without_waiters_keeps_running() -> None:
    """A job whose slice has ended keeps running when no job of its level waits."""
    jobs = [running("a", NORMAL, seq=0, since=T0), queued("low", LOW, seq=1)]
    result = plan(jobs, now=T0 + 5 * SLICE, max_background=1, time_slice=SLICE)
    assert Plan(start=(), stop=(), wake_at=None) == result


def test_wake_at_is_the_earliest_slice_end_of_the_running_jobs() -> None:
    """With others of the level waiting, wake_at is the first running job's slice end."""
    jobs = [
        running("a", NORMAL, seq=0, since=50.0),
        running("b", NORMAL, seq=1, since=20.0),
        queued("c", NORMAL, seq=2),
    ]
    result = plan(jobs, now=100.0, max_background=2, time_slice=SLICE)
    assert Plan(start=(), stop=(), wake_at=20.0 + SLICE) == result


def test_no_wake_when_nothing_waits() -> None:
    """Running jobs with no waiting job of their level need no wake-up."""
    jobs = [running("a", NORMAL, seq=0, since=T0), running("b", NORMAL, seq=1, since=10.0)]
    result = plan(jobs, now=T0 + 100.0, max_background=2, time_slice=SLICE)
    assert Plan(start=(), stop=(), wake_at=None) == result


def test_no_wake_for_a_lower_level_that_waits() -> None:
    """A waiting lower-level job does not make the scheduler wake at a higher job's slice end."""
    jobs = [running("high", HIGH, seq=0, since=T0), queued("normal", NORMAL, seq=1)]
    result = plan(jobs, now=T0 + 100.0, max_background=1, time_slice=SLICE)
    assert Plan(start=(), stop=(), wake_at=None) == result


def test_round_robin_rotates_through_three_jobs() -> None:
    """Three NORMAL jobs with one slot: each turn goes to the next waiting job in queue order."""
    t0 = 1000.0
    jobs = [
        running("a", NORMAL, seq=0, since=t0),
        queued("b", NORMAL, seq=1),
        queued("c", NORMAL, seq=2),
    ]
    first = plan(jobs, now=t0 + SLICE, max_background=1, time_slice=SLICE)
    assert Plan(start=("b",), stop=("a",), wake_at=None) == first
    # The engine re-queues "a" at the back (new queue_seq) and starts "b".
    jobs = [
        queued("a", NORMAL, seq=3),
        running("b", NORMAL, seq=1, since=t0 + SLICE),
        queued("c", NORMAL, seq=2),
    ]
    second = plan(jobs, now=t0 + 2 * SLICE, max_background=1, time_slice=SLICE)
    assert Plan(start=("c",), stop=("b",), wake_at=None) == second


def test_turn_started_at_monotonic_zero_still_ends() -> None:
    """A turn that began at monotonic time 0.0 ends after its slice like any other (0.0 is a time,
    not "unknown")."""
    jobs = [running("a", NORMAL, seq=0, since=0.0), queued("b", NORMAL, seq=1)]
    before = plan(jobs, now=SLICE / 2, max_background=1, time_slice=SLICE)
    assert Plan(start=(), stop=(), wake_at=SLICE) == before
    after = plan(jobs, now=SLICE, max_background=1, time_slice=SLICE)
    assert Plan(start=("b",), stop=("a",), wake_at=None) == after
