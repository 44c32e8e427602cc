"""Bandwidth limits: the weekly schedule, the limits that govern a job, and token buckets.

Rules (bits-inventory §1.5, §5.12):
- FOREGROUND jobs are never throttled (MaxInternetBandwidth and the bandwidth-limit policies do
  not affect them). Every limit here governs background jobs (HIGH, NORMAL, LOW) only, except
  the per-job limit (a bitsd extension), which governs its job whatever its priority.
- Limits are byte rates (bytes per second; BITS's policies are in kbps). ``None`` is no limit,
  ``0`` blocks: a background job governed by a 0 limit does not transfer (the engine shows it
  in TRANSIENT_ERROR with BG_E_BLOCKED_BY_POLICY). A positive limit below
  :data:`MIN_RATE` acts as :data:`MIN_RATE` (BITS: "values below about 2 kbps act as about
  2 kbps").
- A job is governed by every limit that applies to it, each a token bucket shared by all the
  jobs it governs: the service-wide background bucket (``bandwidth_limit``, the scheduled
  ``bandwidth_schedule`` limit and the courtesy controller's rate, the smallest wins), the bucket
  of its priority level (``priority_limits``) and its own bucket (``bandwidth_limit`` of the job).
- Buckets lend: a write of ``n`` bytes takes ``n`` tokens from each of its buckets at once, even
  into debt, and waits until every bucket it took from is out of debt. Jobs that share a bucket
  thus queue in the order they asked and together move at the bucket's rate. A bucket saves up
  at most :data:`BURST_SECONDS` of its rate while idle.
- Writes are cut into pieces of :data:`PIECE_SECONDS` of the slowest rate (between
  :data:`MIN_PIECE` and :data:`MAX_PIECE` bytes), so a slow rate still moves bytes steadily.
- Schedule windows are in local time (the wall clock of the injected clock, in the schedule's
  time zone or the system's); waits are on the monotonic clock.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import types
import zoneinfo
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from bitsd._clock import Clock
from bitsd._enums import Priority

__all__ = [
    "BURST_SECONDS",
    "DEFAULT_WORK_DAYS",
    "DEFAULT_WORK_END",
    "DEFAULT_WORK_START",
    "MAX_PIECE",
    "MIN_PIECE",
    "MIN_RATE",
    "PIECE_SECONDS",
    "BandwidthManager",
    "BandwidthSchedule",
    "Limit",
    "Pacer",
    "TokenBucket",
    "limit_at",
    "local_time",
    "next_change",
    "parse_limit",
    "parse_priority_limits",
    "smallest",
]

# Bytes per second. BITS MaxInternetBandwidth: "values below about 2 kbps act as about 2 kbps".
MIN_RATE = 250.0
# Seconds of its rate a bucket saves up while idle. bitsd's choice: small enough that a limit
# holds over a second, large enough that timer jitter costs no throughput.
BURST_SECONDS = 0.1
# Seconds of the slowest governing rate written at once. bitsd's choice (20 writes a second).
PIECE_SECONDS = 0.05
# Bytes: bounds of a piece.
MIN_PIECE = 512
MAX_PIECE = 256 * 1024
# Seconds a write governed by a 0 limit waits before asking again; the scheduler stops such a
# job long before (it is blocked), this only keeps a racing write from spinning.
_BLOCKED_RECHECK = 1.0
# BITS's default work schedule for EnableBandwidthLimits: Monday to Friday, 8:00 to 17:00.
DEFAULT_WORK_DAYS: frozenset[int] = frozenset({0, 1, 2, 3, 4})  # datetime.weekday(): Monday = 0
DEFAULT_WORK_START = dt.time(8, 0)
DEFAULT_WORK_END = dt.time(17, 0)

_DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_ONE_DAY = dt.timedelta(days=1)


def _rate(what: str, value: object) -> float | None:
    """A limit as a float byte rate (None: no limit); raises ValueError for anything else."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{what} must be a byte rate (bytes per second) or None, not {value!r}")
    if math.isnan(value) or value < 0:
        raise ValueError(f"{what} must be >= 0 (0 blocks background jobs), not {value!r}")
    return float(value)


def _clock_time(what: str, value: object) -> dt.time:
    if isinstance(value, dt.time):
        return value.replace(tzinfo=None)
    if isinstance(value, str):
        try:
            return dt.time.fromisoformat(value)
        except ValueError:
            pass
    raise ValueError(f"{what} must be a time of day such as '08:00', not {value!r}")


def _days(value: object) -> frozenset[int]:
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise ValueError(f"work_days must be a list of days, not {value!r}")
    days: set[int] = set()
    for day in value:
        if isinstance(day, str) and day[:3].lower() in _DAY_NAMES:
            days.add(_DAY_NAMES.index(day[:3].lower()))
        elif isinstance(day, int) and not isinstance(day, bool) and 0 <= day <= 6:
            days.add(day)
        else:
            raise ValueError(f"a work day is 0 (Monday) to 6 (Sunday) or a day name, not {day!r}")
    return frozenset(days)


@dataclasses.dataclass(frozen=True, slots=True)
class BandwidthSchedule:
    """A weekly bandwidth limit: one limit in work hours, another at other times
    (BITS MaxInternetBandwidth and EnableBandwidthLimits, in bytes per second).

    The work window opens at ``work_start`` on each of ``work_days`` and lasts until
    ``work_end``; when ``work_end`` is not after ``work_start`` the window runs past midnight
    into the next day (``work_start == work_end`` is a 24-hour window).

    Attributes:
        work_limit: bytes per second in the work window; None = no limit, 0 = blocked.
        other_limit: bytes per second outside it; None = no limit, 0 = blocked.
        work_days: days a window opens, ``datetime.weekday()`` numbers (Monday = 0); names
            ("mon", "Tuesday") are accepted and converted.
        work_start, work_end: local times of day (``datetime.time`` or "HH:MM").
        timezone: an IANA zone name for the window; None uses the system's local time.
    """

    work_limit: float | None = None
    other_limit: float | None = None
    work_days: frozenset[int] = DEFAULT_WORK_DAYS
    work_start: dt.time = DEFAULT_WORK_START
    work_end: dt.time = DEFAULT_WORK_END
    timezone: str | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "work_limit", _rate("work_limit", self.work_limit))
        set_(self, "other_limit", _rate("other_limit", self.other_limit))
        set_(self, "work_days", _days(self.work_days))
        set_(self, "work_start", _clock_time("work_start", self.work_start))
        set_(self, "work_end", _clock_time("work_end", self.work_end))
        if self.timezone is not None:
            try:
                zoneinfo.ZoneInfo(self.timezone)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError):
                raise ValueError(f"unknown time zone {self.timezone!r}") from None

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> BandwidthSchedule:
        """Build a schedule from a config-file table (keys are the attribute names).

        Raises:
            ValueError: an unknown key or a bad value.
        """
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown bandwidth_schedule keys: {', '.join(unknown)}")
        return cls(**dict(data))

    @property
    def tz(self) -> dt.tzinfo | None:
        """The zone of the window (None: the system's local time)."""
        return None if self.timezone is None else zoneinfo.ZoneInfo(self.timezone)

    def _length(self) -> dt.timedelta:
        start = dt.datetime.combine(dt.date.min, self.work_start)
        end = dt.datetime.combine(dt.date.min, self.work_end)
        length = (end - start) % _ONE_DAY
        return length or _ONE_DAY

    def _opens(self, day: dt.date, like: dt.datetime) -> dt.datetime:
        return dt.datetime.combine(day, self.work_start, tzinfo=like.tzinfo)

    def in_work_hours(self, local: dt.datetime) -> bool:
        """Whether the local time ``local`` is inside a work window."""
        length = self._length()
        for back in (0, 1):  # a window is at most a day long: it opened today or yesterday
            day = local.date() - back * _ONE_DAY
            if day.weekday() in self.work_days:
                opens = self._opens(day, local)
                if opens <= local < opens + length:
                    return True
        return False

    def limit_at(self, local: dt.datetime) -> float | None:
        """The limit in force at the local time ``local``."""
        return self.work_limit if self.in_work_hours(local) else self.other_limit

    def next_change(self, local: dt.datetime) -> dt.datetime | None:
        """The first local time after ``local`` at which the window opens or closes, or None
        when the limit never changes (same limit in and out of work hours, or no work day)."""
        if self.work_limit == self.other_limit or not self.work_days:
            return None
        inside = self.in_work_hours(local)
        length = self._length()
        edges: list[dt.datetime] = []
        for offset in range(-1, 9):
            day = local.date() + offset * _ONE_DAY
            if day.weekday() in self.work_days:
                opens = self._opens(day, local)
                edges += [opens, opens + length]
        for edge in sorted(e for e in edges if e > local):
            if self.in_work_hours(edge) != inside:
                return edge
        return None  # every day a 24-hour window: always inside  # pragma: no cover


# A limit as the configuration gives it: a byte rate, None, or a weekly schedule.
Limit = float | BandwidthSchedule | None


def local_time(wall: float, tz: dt.tzinfo | None) -> dt.datetime:
    """The wall-clock reading ``wall`` (Unix seconds) as a local time: aware in ``tz``, naive
    in the system's local time when ``tz`` is None."""
    return dt.datetime.fromtimestamp(wall, tz)


def limit_at(limit: Limit, wall: float) -> float | None:
    """The rate a limit allows at the wall time ``wall`` (None: no limit, 0: blocked)."""
    if isinstance(limit, BandwidthSchedule):
        return limit.limit_at(local_time(wall, limit.tz))
    return limit


def next_change(limit: Limit, wall: float) -> float | None:
    """The wall time at which a scheduled limit next changes, or None."""
    if not isinstance(limit, BandwidthSchedule):
        return None
    edge = limit.next_change(local_time(wall, limit.tz))
    # A naive edge is in the system's local time; .timestamp() converts it as such.
    return None if edge is None else edge.timestamp()


def smallest(*rates: float | None) -> float | None:
    """The strictest of several limits (None is no limit)."""
    present = [r for r in rates if r is not None]
    return min(present) if present else None


def parse_limit(what: str, value: object) -> Limit:
    """A limit from Python or a config file: a number, None, a schedule or a schedule table.

    Raises:
        ValueError: anything else.
    """
    if isinstance(value, BandwidthSchedule):
        return value
    if isinstance(value, Mapping):
        return BandwidthSchedule.from_mapping(value)
    return _rate(what, value)


def parse_priority_limits(value: object) -> Mapping[Priority, Limit]:
    """``priority_limits`` as a read-only mapping of background priorities to limits; keys
    may be Priority members or their names ("high", "normal", "low").

    Raises:
        ValueError: a foreground or unknown key, or a bad limit.
    """
    if not isinstance(value, Mapping):
        raise ValueError(f"priority_limits must be a mapping of priority to limit, not {value!r}")
    out: dict[Priority, Limit] = {}
    for key, limit in value.items():
        try:
            priority = Priority[key.upper()] if isinstance(key, str) else Priority(key)
        except (KeyError, ValueError):
            raise ValueError(f"priority_limits: {key!r} is not a priority") from None
        if priority is Priority.FOREGROUND:
            raise ValueError("priority_limits: FOREGROUND jobs are never throttled (BITS)")
        out[priority] = parse_limit(f"priority_limits[{priority.name.lower()}]", limit)
    return types.MappingProxyType(out)


class TokenBucket:
    """A token bucket that lends: ``reserve`` always succeeds and says when to go on.

    Args:
        rate: bytes per second; None = no limit, 0 = nothing passes.
    """

    def __init__(self, rate: float | None = None) -> None:
        self._rate: float | None = None
        self._tokens = 0.0
        self._stamp: float | None = None
        self.set_rate(rate)

    @property
    def rate(self) -> float | None:
        return self._rate

    @property
    def capacity(self) -> float:
        """Tokens saved up at most while idle."""
        if not self._rate:
            return 0.0
        return max(self._rate * BURST_SECONDS, float(MIN_PIECE))

    def set_rate(self, rate: float | None) -> None:
        """Change the rate; tokens (or debt) already counted are kept, capped to the new
        capacity. A positive rate below MIN_RATE becomes MIN_RATE."""
        if rate is not None and 0 < rate < MIN_RATE:
            rate = MIN_RATE
        if rate == self._rate:
            return
        self._rate = rate
        if rate is None:
            self._tokens, self._stamp = 0.0, None
        else:
            self._tokens = min(self._tokens, self.capacity)

    def _refill(self, now: float) -> None:
        if self._stamp is None:
            self._tokens = self.capacity  # a new bucket starts full
        elif self._rate:
            self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self._rate)
        self._stamp = now

    def reserve(self, count: int, now: float) -> float:
        """Take ``count`` tokens at monotonic time ``now``.

        Returns:
            The monotonic time from which the bytes may move (``now`` if there were enough
            tokens, ``math.inf`` at rate 0).
        """
        if self._rate is None:
            return now
        if self._rate == 0:
            return math.inf
        self._refill(now)
        self._tokens -= count
        if self._tokens >= 0:
            return now
        return now - self._tokens / self._rate

    def piece(self) -> int | None:
        """Bytes to write at once under this bucket's rate (None: no limit)."""
        if not self._rate:
            return None
        return int(min(MAX_PIECE, max(MIN_PIECE, self._rate * PIECE_SECONDS)))


# (priority, per-job limit) of a job, by id; None when the job is gone.
JobLookup = Callable[[str], tuple[Priority, float | None] | None]


class BandwidthManager:
    """The token buckets of one engine and the rates they enforce now.

    ``update`` (called by the scheduler) sets the configured rates for a wall time;
    ``set_courtesy`` (called by the courtesy controller) caps the background rate;
    ``pace`` (called by a transfer's sink) waits until a job may write.

    Args:
        clock: the injected clock (waits use its monotonic time).
        job_lookup: a job's priority and per-job limit.
    """

    def __init__(self, clock: Clock, job_lookup: JobLookup) -> None:
        self._clock = clock
        self._lookup = job_lookup
        self._background = TokenBucket()
        self._levels = {p: TokenBucket() for p in Priority if p is not Priority.FOREGROUND}
        self._jobs: dict[str, TokenBucket] = {}
        self._configured: float | None = None
        self._courtesy: float | None = None
        self._blocked_levels: frozenset[Priority] = frozenset()
        # Bytes every job (foreground too) has received: what courtesy subtracts.
        self.received = 0

    # -- configuration -------------------------------------------------------------------

    def update(
        self,
        *,
        wall: float,
        bandwidth_limit: float | None,
        schedule: BandwidthSchedule | None,
        priority_limits: Mapping[Priority, Limit],
    ) -> float | None:
        """Set every bucket's rate for the wall time ``wall``.

        Returns:
            The wall time of the next scheduled change, or None.
        """
        self._configured = smallest(bandwidth_limit, limit_at(schedule, wall))
        self._background.set_rate(smallest(self._configured, self._courtesy))
        blocked = set()
        for priority, bucket in self._levels.items():
            rate = limit_at(priority_limits.get(priority), wall)
            bucket.set_rate(rate)
            if rate == 0:
                blocked.add(priority)
        if self._configured == 0:
            blocked.update(self._levels)
        self._blocked_levels = frozenset(blocked)
        changes = [next_change(schedule, wall)]
        changes += [next_change(limit, wall) for limit in priority_limits.values()]
        return min((c for c in changes if c is not None), default=None)

    def set_courtesy(self, rate: float | None) -> None:
        """Cap the background rate at ``rate`` (None: no cap); the courtesy controller's say."""
        self._courtesy = rate
        self._background.set_rate(smallest(self._configured, rate))

    @property
    def background_rate(self) -> float | None:
        """The service-wide background rate in force (None: no limit)."""
        return self._background.rate

    def blocked(self, priority: Priority) -> bool:
        """Whether a 0 limit blocks jobs of ``priority`` now (never FOREGROUND)."""
        return priority in self._blocked_levels

    def forget(self, job_id: str) -> None:
        """Drop a job's own bucket (the job ended)."""
        self._jobs.pop(job_id, None)

    # -- the write path ------------------------------------------------------------------

    def _buckets(self, job_id: str) -> list[TokenBucket]:
        info = self._lookup(job_id)
        if info is None:
            self._jobs.pop(job_id, None)  # the job ended
            return []
        priority, own = info
        if own is None:
            self._jobs.pop(job_id, None)
            if priority is Priority.FOREGROUND or (
                self._background.rate is None and self._levels[priority].rate is None
            ):
                return []  # nothing limits the job: the common case, once per write
        buckets: list[TokenBucket] = []
        if priority is not Priority.FOREGROUND:
            buckets += [self._background, self._levels[priority]]
        if own is not None:
            bucket = self._jobs.get(job_id)
            if bucket is None:
                bucket = self._jobs[job_id] = TokenBucket(own)
            bucket.set_rate(own)
            buckets.append(bucket)
        return [b for b in buckets if b.rate is not None]

    def piece(self, job_id: str) -> int | None:
        """Bytes the job should write at once now (None: write what arrived)."""
        buckets = self._buckets(job_id)
        if not buckets:
            return None
        pieces = [p for b in buckets if (p := b.piece()) is not None]
        return min(pieces) if pieces else None

    async def pace(self, job_id: str, count: int) -> None:
        """Take ``count`` bytes from every bucket that governs the job and wait until they
        may move."""
        while True:
            buckets = self._buckets(job_id)
            if not buckets:
                return
            now = self._clock.monotonic()
            if any(b.rate == 0 for b in buckets):
                await self._clock.sleep_until(now + _BLOCKED_RECHECK)
                continue
            until = max(b.reserve(count, now) for b in buckets)
            if until > now:
                await self._clock.sleep_until(until)
            return

    def count(self, received: int) -> None:
        """Count bytes a job received (all jobs, throttled or not)."""
        self.received += received

    def pacer(self, job_id: str) -> Pacer:
        """The throttle hook of one job's transfer (what ``FileSink`` takes)."""
        return Pacer(self, job_id)


class Pacer:
    """One job's view of a :class:`BandwidthManager` (the sink's ``Throttle``)."""

    __slots__ = ("_job_id", "_manager")

    def __init__(self, manager: BandwidthManager, job_id: str) -> None:
        self._manager = manager
        self._job_id = job_id

    def piece(self) -> int | None:
        return self._manager.piece(self._job_id)

    async def pace(self, count: int) -> None:
        await self._manager.pace(self._job_id, count)

    def count(self, count: int) -> None:
        self._manager.count(count)
