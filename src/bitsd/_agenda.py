"""The scheduler's bookkeeping, so that one round costs what changed, not every job there is.

Rules:
- :class:`WaitingLine` holds the QUEUED jobs of each priority in ``queue_seq`` order. The
  engine tells it every job record it keeps (``update``) and every job it forgets
  (``remove``); ``heads(n)`` answers every waiting FOREGROUND job and the first ``n`` waiting
  jobs of each background priority, which is all ``bitsd._scheduler.plan`` can choose from
  (it starts at most ``max_background`` jobs of one level, and needs one more to know that
  others wait).
- :class:`Agenda` holds, for each job, the next monotonic time the engine must look at it by
  itself (job inactivity, retry delay, maximum download time). ``touch`` marks a job to be
  looked at in the next round whatever its time: the engine touches a job whenever it keeps a
  changed record of it. ``due(now)`` hands back, once each, the jobs touched or whose time has
  come; after looking at a job the engine ``schedule``s its next time (None: no time).
- Pure: no clock, no I/O. Both cost O(log n) per change, not O(n) per round.
"""

from __future__ import annotations

import bisect
import heapq
from collections.abc import Iterable, Iterator

from bitsd._enums import Priority

__all__ = ["Agenda", "WaitingLine"]

# A heap with more stale entries than this factor times its live ones is rebuilt.
_STALE_FACTOR = 2
_STALE_SLACK = 64


class WaitingLine:
    """The QUEUED jobs, per priority, in queue order."""

    def __init__(self) -> None:
        self._lines: dict[Priority, list[tuple[int, str]]] = {p: [] for p in Priority}
        self._where: dict[str, tuple[Priority, int]] = {}

    def __len__(self) -> int:
        return len(self._where)

    def __contains__(self, job_id: object) -> bool:
        return job_id in self._where

    def update(self, job_id: str, *, waiting: bool, priority: Priority, queue_seq: int) -> None:
        """Record a job's current state: ``waiting`` is True while it is QUEUED."""
        place = (priority, queue_seq)
        if waiting and self._where.get(job_id) == place:
            return
        self.remove(job_id)
        if waiting:
            bisect.insort(self._lines[priority], (queue_seq, job_id))
            self._where[job_id] = place

    def remove(self, job_id: str) -> None:
        """Forget a job (no error when it is not here)."""
        place = self._where.pop(job_id, None)
        if place is None:
            return
        line = self._lines[place[0]]
        entry = (place[1], job_id)
        i = bisect.bisect_left(line, entry)
        if i < len(line) and line[i] == entry:
            del line[i]

    def is_head(self, job_id: str, n: int) -> bool:
        """Whether ``job_id`` is among what ``heads(n)`` answers (a waiting FOREGROUND job, or
        one of the first ``n`` of its priority)."""
        place = self._where.get(job_id)
        if place is None:
            return False
        if place[0] is Priority.FOREGROUND:
            return True
        line = self._lines[place[0]]
        return bisect.bisect_left(line, (place[1], job_id)) < n

    def heads(self, n: int) -> Iterator[str]:
        """Every waiting FOREGROUND job, then the first ``n`` of each other priority."""
        for priority, line in self._lines.items():
            chosen = line if priority is Priority.FOREGROUND else line[:n]
            for _seq, job_id in chosen:
                yield job_id


class Agenda:
    """When each job next needs a look, and which jobs changed since the last round."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, str]] = []
        self._at: dict[str, float] = {}
        self._touched: dict[str, None] = {}  # insertion-ordered set

    def __len__(self) -> int:
        return len(self._at)

    def touch(self, job_id: str) -> None:
        """Look at ``job_id`` in the next round."""
        self._touched[job_id] = None

    def touch_all(self, job_ids: Iterable[str]) -> None:
        """Look at every one of ``job_ids`` in the next round (after a change of settings)."""
        for job_id in job_ids:
            self._touched[job_id] = None

    def schedule(self, job_id: str, when: float | None) -> None:
        """Look at ``job_id`` at monotonic time ``when`` (None: only when touched)."""
        if when is None:
            self._at.pop(job_id, None)
            return
        if self._at.get(job_id) == when:
            return
        self._at[job_id] = when
        heapq.heappush(self._heap, (when, job_id))
        if len(self._heap) > _STALE_FACTOR * len(self._at) + _STALE_SLACK:
            self._heap = [(t, j) for j, t in self._at.items()]
            heapq.heapify(self._heap)

    def forget(self, job_id: str) -> None:
        """Never look at ``job_id`` again (it ended)."""
        self._at.pop(job_id, None)
        self._touched.pop(job_id, None)

    def due(self, now: float) -> list[str]:
        """The jobs touched since the last call, then those whose time is ``now`` or before;
        each once, and each taken off the agenda until scheduled again."""
        out = self._touched
        self._touched = {}
        heap = self._heap
        while heap and heap[0][0] <= now:
            when, job_id = heapq.heappop(heap)
            if self._at.get(job_id) == when:
                del self._at[job_id]
                out[job_id] = None
        return list(out)

    def next_at(self) -> float | None:
        """The earliest scheduled time, or None."""
        heap = self._heap
        while heap and self._at.get(heap[0][1]) != heap[0][0]:
            heapq.heappop(heap)
        return heap[0][0] if heap else None
