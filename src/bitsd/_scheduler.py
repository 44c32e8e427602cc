"""Who transfers now: a pure decision from the jobs that want to run and the time.

Rules (bits-inventory §1.5):
- Every FOREGROUND job runs at once, beside the background ones.
- Background jobs run only from the best (lowest-numbered) priority level that has a job wanting
  to run: HIGH pre-empts NORMAL pre-empts LOW, and a lower level gets no time while a higher level
  has runnable jobs. Within that level up to ``max_background`` run at once.
- Jobs of one level share time round-robin: a running job whose time slice has ended gives its
  place to a waiting job of the same level (it goes back to the end of the queue: the engine gives
  it a new ``queue_seq``).
- Within a rank, order is first come first served (``queue_seq``), then by job id: the order
  of the waiting line's heads (``bitsd._agenda``), so a plan over the heads is the plan over
  every job even where two jobs share a ``queue_seq``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from bitsd._enums import Priority

__all__ = ["Candidate", "Plan", "plan"]


@dataclasses.dataclass(frozen=True, slots=True)
class Candidate:
    """A job that wants to transfer (QUEUED) or is transferring (``running``).

    Attributes:
        run_started: monotonic time its current turn began, for running jobs.
    """

    job_id: str
    priority: Priority
    queue_seq: int
    running: bool
    run_started: float | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Plan:
    """The scheduler's answer: jobs to start, jobs to stop (back to QUEUED), when to ask again."""

    start: tuple[str, ...]
    stop: tuple[str, ...]
    wake_at: float | None


def plan(
    candidates: Iterable[Candidate], *, now: float, max_background: int, time_slice: float
) -> Plan:
    """Decide which jobs run.

    Args:
        candidates: every QUEUED or running job.
        now: the current monotonic time.
        max_background: background jobs that may run at once.
        time_slice: seconds of a background job's turn while others of its level wait.

    Returns:
        The jobs to start and stop, and the time of the next slice end worth waking for.
    """
    jobs = list(candidates)
    fg = [c for c in jobs if c.priority is Priority.FOREGROUND]
    bg = [c for c in jobs if c.priority is not Priority.FOREGROUND]
    chosen = {c.job_id for c in fg}
    wake_at: float | None = None
    if bg:
        level = min(c.priority for c in bg)
        same = [c for c in bg if c.priority is level]
        waiting = any(not c.running for c in same)

        def rank(c: Candidate) -> tuple[int, int, str]:
            if not c.running:
                return (1, c.queue_seq, c.job_id)
            expired = waiting and now - _started(c, now) >= time_slice
            return (2 if expired else 0, c.queue_seq, c.job_id)

        ordered = sorted(same, key=rank)
        chosen.update(c.job_id for c in ordered[:max_background])
        if len(same) > max_background:
            # Others of this level wait: wake when the first running one's slice ends.
            ends = [
                _started(c, now) + time_slice
                for c in ordered[:max_background]
                if c.running and _started(c, now) + time_slice > now
            ]
            wake_at = min(ends) if ends else None
    start = tuple(
        c.job_id
        for c in sorted(jobs, key=lambda c: (c.priority, c.queue_seq, c.job_id))
        if not c.running and c.job_id in chosen
    )
    stop = tuple(c.job_id for c in jobs if c.running and c.job_id not in chosen)
    return Plan(start=start, stop=stop, wake_at=wake_at)


def _started(c: Candidate, now: float) -> float:
    """When ``c``'s turn began (``now`` for a job that has not started)."""
    return now if c.run_started is None else c.run_started
