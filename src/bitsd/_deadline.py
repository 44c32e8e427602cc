"""A deadline that moves often, enforced by one timer (the raw client's socket waits, the control
socket's request reads).

Rules:
- ``start(seconds)`` sets the deadline ``seconds`` from now; ``stop()`` clears it. Neither makes
  nor cancels a timer when one is set already: the one timer, when it runs before the deadline
  (the deadline moved later meanwhile), sets itself again for the deadline, and when no deadline
  is set it lapses. So a stream of short waits costs no timer each.
- When a set deadline is reached, ``expired`` is called once and the deadline is cleared. A
  deadline within ``_SLACK`` is reached: the loop may run a timer a little early, and setting
  it again for what is left would only spin.
- ``close()`` cancels the timer; the deadline is cleared.
- Times are the loop's (``loop.time()``), like asyncio's own timeouts: this is about waiting for
  a peer, not about BITS timers on the engine's clock.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

__all__ = ["Deadline"]

# Seconds: a deadline this close is reached.
_SLACK = 0.001


class Deadline:
    """A deadline on ``loop`` that calls ``expired`` when it is reached (see the module rules)."""

    __slots__ = ("_at", "_expired", "_loop", "_timer")

    def __init__(self, loop: asyncio.AbstractEventLoop, expired: Callable[[], None]) -> None:
        self._loop = loop
        self._expired = expired
        self._at: float | None = None
        self._timer: asyncio.TimerHandle | None = None

    def start(self, seconds: float) -> None:
        """Set the deadline ``seconds`` from now (replacing any deadline set before)."""
        self._at = self._loop.time() + seconds
        if self._timer is None:
            self._timer = self._loop.call_at(self._at, self._check)

    def stop(self) -> None:
        """Clear the deadline; the timer, if any, lapses when it runs."""
        self._at = None

    def close(self) -> None:
        """Clear the deadline and cancel the timer."""
        self._at = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _check(self) -> None:
        self._timer = None
        at = self._at
        if at is None:
            return  # nothing waits: the next start sets a timer again
        if self._loop.time() >= at - _SLACK:
            self._at = None
            self._expired()
        else:
            self._timer = self._loop.call_at(at, self._check)
