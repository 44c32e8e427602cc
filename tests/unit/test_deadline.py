"""A moving deadline enforced by one timer (``bitsd._deadline``): it expires once when reached,
not before; a later start moves it without a new timer; stop and close clear it."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bitsd._deadline import Deadline


def _timers(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """The owner of each timer callback the running loop is asked for from now on (a
    deadline's own timers name the deadline)."""
    loop = asyncio.get_running_loop()
    real = loop.call_at
    seen: list[object] = []

    def noting(when: float, callback: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(getattr(callback, "__self__", None))
        return real(when, callback, *args, **kwargs)

    monkeypatch.setattr(loop, "call_at", noting)
    return seen


async def test_expires_once_when_reached() -> None:
    loop = asyncio.get_running_loop()
    expired: list[float] = []
    deadline = Deadline(loop, lambda: expired.append(loop.time()))
    started = loop.time()
    deadline.start(0.05)
    await asyncio.sleep(0.2)
    assert len(expired) == 1
    assert 0.049 <= expired[0] - started < 0.2
    deadline.close()


async def test_a_later_start_moves_the_deadline_with_the_same_timer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loop = asyncio.get_running_loop()
    timers = _timers(monkeypatch)
    expired: list[float] = []
    deadline = Deadline(loop, lambda: expired.append(loop.time()))
    for _ in range(5):
        deadline.start(0.1)
    await asyncio.sleep(0.05)
    started = loop.time()
    deadline.start(0.1)  # moved past the first timer: that one sets itself again
    await asyncio.sleep(0.3)
    assert len(expired) == 1
    assert expired[0] - started >= 0.099
    # The first start's timer, then the one it set for the moved deadline.
    assert [owner for owner in timers if owner is deadline] == [deadline, deadline]
    deadline.close()


async def test_stop_and_close_clear_the_deadline() -> None:
    loop = asyncio.get_running_loop()
    expired: list[str] = []
    stopped = Deadline(loop, lambda: expired.append("stopped"))
    stopped.start(0.02)
    stopped.stop()
    closed = Deadline(loop, lambda: expired.append("closed"))
    closed.start(0.02)
    closed.close()
    await asyncio.sleep(0.1)
    assert expired == []
    stopped.start(0.02)  # a stopped deadline can be started again
    await asyncio.sleep(0.1)
    assert expired == ["stopped"]
    stopped.close()
