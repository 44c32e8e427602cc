"""Background courtesy: background jobs yield the link to the user's other traffic.

BITS measures how busy the link is (byte counters of the gateway or the network card) and
gives background jobs only the bandwidth nobody else uses, yet "still moves a small amount of
data" so jobs make progress (bits-inventory §5.12). bitsd does the Linux equivalent:

- Every :data:`SAMPLE_INTERVAL` seconds (the injected clock's monotonic time) it reads the bytes
  received by one network interface: the one carrying the default route (``/proc/net/route``)
  unless configured; the loopback interface never counts. From the same interval it subtracts
  what bitsd itself received (counted by the file sinks), plus :data:`OVERHEAD` for the
  TCP/IP headers the sinks never see. What is left is the others' traffic.
- The link's capacity is the highest total receive rate seen, decaying by :data:`CAPACITY_DECAY`
  per second so that it follows a link that got slower.
- The link is contended when the others' rate is above ``threshold`` × capacity and above
  :data:`NOISE_RATE` (background chatter never counts).
- AIMD on the background rate: contended → halve it (starting from what bitsd was actually
  receiving), never below ``floor``; not contended → raise it by :data:`INCREASE_SHARE` of the
  capacity (at least ``floor``) each sample, and lift the limit once it reaches the capacity.
- Foreground jobs are never slowed (BITS); they are still bitsd's own traffic.

:class:`CourtesyController` is the pure arithmetic; :class:`CourtesyMonitor` is the task that
samples and hands the rate to the bandwidth manager.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Callable
from pathlib import Path

from bitsd._clock import Clock

__all__ = [
    "CAPACITY_DECAY",
    "DEFAULT_COURTESY_FLOOR",
    "DEFAULT_COURTESY_THRESHOLD",
    "INCREASE_SHARE",
    "NOISE_RATE",
    "OVERHEAD",
    "SAMPLE_INTERVAL",
    "CourtesyController",
    "CourtesyMonitor",
    "LinkCounter",
    "ProcNetDev",
    "default_route_interface",
    "read_rx_bytes",
]

log = logging.getLogger("bitsd.courtesy")

# Seconds between two samples of the link. bitsd's choice: quick enough to yield within a few
# seconds, slow enough that one sample spans many TCP round trips.
SAMPLE_INTERVAL = 1.0
# Share of the link's capacity the others may use before background jobs back off. bitsd's
# choice: above the measurement error (headers, timing), below any real competing download.
DEFAULT_COURTESY_THRESHOLD = 0.1
# Bytes per second background jobs keep under contention. BITS: background jobs "still move a
# small amount of data"; bitsd's value (about 230 MB an hour).
DEFAULT_COURTESY_FLOOR = 64 * 1024.0
# Bytes per second of others' traffic that never counts as contention (name lookups, chat,
# keep-alives). bitsd's choice.
NOISE_RATE = 32 * 1024.0
# Share added to bitsd's payload bytes for the TCP/IP headers an interface counts too
# (about 3 % at a 1,500-byte MTU, more with small segments). bitsd's choice.
OVERHEAD = 0.06
# Factor per second by which the capacity estimate shrinks when nothing reaches it.
CAPACITY_DECAY = 0.99
# Share of the capacity added to the background rate per uncontended sample.
INCREASE_SHARE = 0.1

# The received-bytes counter of the monitored interface; None when it cannot be read.
LinkCounter = Callable[[], int | None]

_PROC_ROUTE = Path("/proc/net/route")
_PROC_DEV = Path("/proc/net/dev")
_RTF_UP = 0x1


def default_route_interface(route_table: str) -> str | None:
    """The interface of the first default route in a ``/proc/net/route`` text, or None."""
    for line in route_table.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 8:
            continue
        iface, destination, flags, mask = fields[0], fields[1], fields[3], fields[7]
        try:
            up = int(flags, 16) & _RTF_UP
        except ValueError:
            continue
        if destination == "00000000" and mask == "00000000" and up and iface != "lo":
            return iface
    return None


def read_rx_bytes(dev_table: str, interface: str) -> int | None:
    """Bytes received by ``interface`` in a ``/proc/net/dev`` text, or None if absent.
    Loopback is never counted."""
    if interface == "lo":
        return None
    for line in dev_table.splitlines()[2:]:
        name, sep, rest = line.partition(":")
        if sep and name.strip() == interface:
            fields = rest.split()
            return int(fields[0]) if fields else None
    return None


class ProcNetDev:
    """A :data:`LinkCounter` over ``/proc/net/dev``.

    Args:
        interface: the interface to watch; None follows the default route (looked up again
            on every read, so a change of network is followed).
        root: where ``net/route`` and ``net/dev`` live (``/proc``; tests pass a folder).
    """

    def __init__(self, interface: str | None = None, *, root: Path = Path("/proc")) -> None:
        self.interface = interface
        self._route = root / "net" / "route"
        self._dev = root / "net" / "dev"

    def __call__(self) -> int | None:
        try:
            iface = self.interface or default_route_interface(self._route.read_text())
            if iface is None:
                return None
            return read_rx_bytes(self._dev.read_text(), iface)
        except (OSError, ValueError):
            return None


@dataclasses.dataclass(slots=True)
class CourtesyController:
    """The AIMD arithmetic of courtesy, fed with counter readings.

    Attributes:
        floor: bytes per second background jobs keep under contention.
        threshold: share of the capacity others may use before background jobs back off.
        limit: the background rate it asks for now (None: no limit).
        capacity: the link's estimated capacity in bytes per second.
    """

    floor: float = DEFAULT_COURTESY_FLOOR
    threshold: float = DEFAULT_COURTESY_THRESHOLD
    limit: float | None = None
    capacity: float = 0.0
    others: float = 0.0
    _last: tuple[float, int, int] | None = None

    def sample(self, now: float, link_bytes: int | None, own_bytes: int) -> float | None:
        """Take one reading and return the background limit that follows.

        Args:
            now: monotonic seconds.
            link_bytes: the interface's received-bytes counter (None: unreadable; the limit
                is then lifted, as with no link to be courteous on).
            own_bytes: bytes bitsd has received so far (a counter too).
        """
        if link_bytes is None:
            self._last = None
            self.limit = None
            return None
        last, self._last = self._last, (now, link_bytes, own_bytes)
        if last is None:
            return self.limit
        elapsed = now - last[0]
        link, own = link_bytes - last[1], own_bytes - last[2]
        if elapsed <= 0 or link < 0 or own < 0:
            return self.limit  # the counter was reset (interface changed, or a wrap)
        total_rate, own_rate = link / elapsed, own / elapsed
        self.others = max(0.0, total_rate - own_rate * (1 + OVERHEAD))
        self.capacity = max(self.capacity * CAPACITY_DECAY**elapsed, total_rate)
        contended = self.others > max(NOISE_RATE, self.threshold * self.capacity)
        if contended:
            base = self.limit if self.limit is not None else own_rate
            self.limit = max(self.floor, base / 2)
        elif self.limit is not None:
            self.limit += max(self.floor, INCREASE_SHARE * self.capacity)
            if self.limit >= self.capacity:
                self.limit = None
        return self.limit


class CourtesyMonitor:
    """Samples the link every :data:`SAMPLE_INTERVAL` and hands the limit on.

    Args:
        clock: the injected clock.
        counter: the interface's received-bytes counter.
        own_bytes: bitsd's own received bytes so far.
        apply: receives each new limit (None: no limit).
        controller: the arithmetic (its floor and threshold come from the config).
    """

    def __init__(
        self,
        clock: Clock,
        counter: LinkCounter,
        own_bytes: Callable[[], int],
        apply: Callable[[float | None], None],
        controller: CourtesyController,
    ) -> None:
        self._clock = clock
        self._counter = counter
        self._own = own_bytes
        self._apply = apply
        self.controller = controller
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="bitsd-courtesy")

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._apply(None)

    def step(self) -> float | None:
        """Take one sample now and apply the limit it gives."""
        before = self.controller.limit
        limit = self.controller.sample(self._clock.monotonic(), self._counter(), self._own())
        if limit != before:
            log.debug(
                "courtesy: others %.0f B/s of %.0f B/s capacity; background limit %s",
                self.controller.others,
                self.controller.capacity,
                "none" if limit is None else f"{limit:.0f} B/s",
            )
        self._apply(limit)
        return limit

    async def _loop(self) -> None:
        while True:
            try:
                self.step()
            except Exception:  # pragma: no cover - a bug; courtesy must not stop the service
                log.exception("courtesy sample failed")
            await self._clock.sleep_until(self._clock.monotonic() + SAMPLE_INTERVAL)
