"""Unit tests for the injected clocks (bitsd._clock): FakeClock for tests, SystemClock for real."""

from __future__ import annotations

import asyncio
import time

import pytest

from bitsd import Clock, FakeClock, SystemClock


async def _settle() -> None:
    """Let every ready task run until it blocks again."""
    for _ in range(5):
        await asyncio.sleep(0)


async def test_fake_clock_wakes_sleepers_in_deadline_order_when_due() -> None:
    """advance() wakes exactly the sleepers whose deadline has come, earliest first."""
    clock = FakeClock(start=1000.0)
    woken: list[str] = []

    async def sleeper(name: str, deadline: float) -> None:
        await clock.sleep_until(deadline)
        woken.append(name)

    tasks = [
        asyncio.create_task(sleeper("c", 1020.0)),
        asyncio.create_task(sleeper("a", 1005.0)),
        asyncio.create_task(sleeper("b", 1010.0)),
        asyncio.create_task(sleeper("b2", 1010.0)),
    ]
    await _settle()
    assert woken == []

    clock.advance(4.0)  # 1004: nobody is due
    await _settle()
    assert woken == []

    clock.advance(1.0)  # 1005: "a" is due, exactly at its deadline
    await _settle()
    assert woken == ["a"]

    clock.advance(20.0)  # 1025: the rest, in deadline order (ties in arrival order)
    await _settle()
    assert woken == ["a", "b", "b2", "c"]
    await asyncio.gather(*tasks)


async def test_fake_clock_sleep_until_past_deadline_returns_at_once() -> None:
    """sleep_until a time that has already come returns without an advance."""
    clock = FakeClock(start=50.0)
    await asyncio.wait_for(clock.sleep_until(50.0), timeout=1.0)
    await asyncio.wait_for(clock.sleep_until(10.0), timeout=1.0)
    assert clock.next_deadline is None


def _next_deadline(clock: FakeClock) -> float | None:
    """Read the property through a call, so each reading is fresh to the type checker."""
    return clock.next_deadline


async def test_fake_clock_next_deadline_tracks_live_sleepers() -> None:
    """next_deadline is the earliest pending deadline; cancelled sleepers do not count."""
    clock = FakeClock(start=0.0)
    late = asyncio.create_task(clock.sleep_until(30.0))
    early = asyncio.create_task(clock.sleep_until(10.0))
    await _settle()
    assert _next_deadline(clock) == 10.0
    early.cancel()
    await _settle()
    assert _next_deadline(clock) == 30.0
    clock.advance(30.0)  # a cancelled sleeper in the heap is skipped without error
    await _settle()
    assert late.done()
    assert _next_deadline(clock) is None
    with pytest.raises(asyncio.CancelledError):
        await early


@pytest.mark.parametrize("seconds", [-1.0, -0.001])
def test_fake_clock_refuses_negative_advance(seconds: float) -> None:
    """Time does not go back: a negative advance raises ValueError and changes nothing."""
    clock = FakeClock(start=100.0, wall_start=5000.0)
    with pytest.raises(ValueError, match="back"):
        clock.advance(seconds)
    assert (clock.monotonic(), clock.wall()) == (100.0, 5000.0)


def test_fake_clock_advance_moves_both_clocks() -> None:
    """advance() moves monotonic and wall time together; zero is allowed."""
    clock = FakeClock(start=100.0, wall_start=5000.0)
    clock.advance(0.0)
    clock.advance(2.5)
    assert (clock.monotonic(), clock.wall()) == (102.5, 5002.5)


def test_fake_clock_defaults() -> None:
    """A default FakeClock starts at 1000 monotonic and 1,800,000,000 wall seconds."""
    clock = FakeClock()
    assert (clock.monotonic(), clock.wall()) == (1000.0, 1_800_000_000.0)


def test_system_clock_monotonic_is_non_decreasing() -> None:
    """SystemClock.monotonic never goes back between readings."""
    clock = SystemClock()
    readings = [clock.monotonic() for _ in range(1000)]
    assert readings == sorted(readings)


def test_system_clock_wall_is_unix_time() -> None:
    """SystemClock.wall reads Unix time (UTC seconds since the epoch)."""
    before = time.time()
    wall = SystemClock().wall()
    after = time.time()
    assert before <= wall <= after


async def test_system_clock_sleep_until_past_returns_at_once() -> None:
    """SystemClock.sleep_until a past deadline returns without waiting."""
    clock = SystemClock()
    await asyncio.wait_for(clock.sleep_until(clock.monotonic() - 10.0), timeout=1.0)


def test_both_clocks_satisfy_the_protocol() -> None:
    """FakeClock and SystemClock can be used wherever a Clock is expected."""
    clocks: list[Clock] = [FakeClock(), SystemClock()]
    assert all(isinstance(c.monotonic(), float) for c in clocks)
