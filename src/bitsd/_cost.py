"""Network cost: what the current network costs, and whether a job's transfer policy allows it.

Rules (bits-inventory §5.11):
- A job's transfer policy (BITS_JOB_PROPERTY_ID_COST_FLAGS) is a mask of the BITS_COST_STATE_*
  bits in which it may transfer. When the current network's cost bit is not in it, the job does
  not transfer: it waits in TRANSIENT_ERROR with BG_E_BLOCKED_BY_COST_TRANSFER_POLICY ("the
  network is too expensive") and is queued again when the cost changes. The option bits
  (IGNORE_CONGESTION, RESERVED) never decide.
- On Linux the cost comes from NetworkManager's ``Metered`` property (D-Bus, system bus,
  ``org.freedesktop.NetworkManager``), read every ``cost_poll_interval`` seconds:
  NM_METERED_YES and NM_METERED_GUESS_YES → the configured metered cost (USAGE_BASED by
  default: "pay per byte" is what NetworkManager's metered flag says, and BITS's default
  STANDARD policy allows it); NM_METERED_NO, NM_METERED_GUESS_NO, NM_METERED_UNKNOWN and any
  failure to ask → UNRESTRICTED (BITS: no cost information means unrestricted).
- The D-Bus client is ``dbus-fast`` when installed (the ``nm`` extra), else the ``busctl`` or
  ``gdbus`` command; with none of them, or no system bus, the network is UNRESTRICTED.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
from collections.abc import Awaitable, Callable, Sequence

from bitsd._clock import Clock
from bitsd._enums import CostStates

__all__ = [
    "COST_STATE_MASK",
    "DEFAULT_COST_POLL_INTERVAL",
    "DEFAULT_METERED_COST",
    "NM_METERED_GUESS_NO",
    "NM_METERED_GUESS_YES",
    "NM_METERED_NO",
    "NM_METERED_UNKNOWN",
    "NM_METERED_YES",
    "CostMonitor",
    "CostSource",
    "NetworkManagerCost",
    "allows",
    "cost_of_metered",
    "parse_busctl",
    "parse_gdbus",
]

log = logging.getLogger("bitsd.cost")

# NMMetered (NetworkManager's libnm/nm-dbus-interface.h).
NM_METERED_UNKNOWN = 0
NM_METERED_YES = 1
NM_METERED_NO = 2
NM_METERED_GUESS_YES = 3
NM_METERED_GUESS_NO = 4

# Seconds between two reads of the network's cost. bitsd's choice: NetworkManager's metered
# flag changes when the network changes, which a transfer notices within this time.
DEFAULT_COST_POLL_INTERVAL = 30.0
# The cost state a metered network is reported as. bitsd's choice (see the module docstring).
DEFAULT_METERED_COST = CostStates.USAGE_BASED
# The cost-state bits of a transfer policy (the higher bits are options).
COST_STATE_MASK = 0xFF
# Seconds one question to NetworkManager may take.
_TIMEOUT = 2.0
_SYSTEM_BUS_SOCKET = "/run/dbus/system_bus_socket"
_NM = "org.freedesktop.NetworkManager"
_NM_PATH = "/org/freedesktop/NetworkManager"

# The current network's cost, asked anew on every call.
CostSource = Callable[[], Awaitable[CostStates]]


def cost_of_metered(
    metered: int | None, metered_cost: CostStates = DEFAULT_METERED_COST
) -> CostStates:
    """The BITS cost state of a network whose NetworkManager ``Metered`` value is ``metered``
    (None: unknown)."""
    if metered in (NM_METERED_YES, NM_METERED_GUESS_YES):
        return CostStates(metered_cost)
    return CostStates.UNRESTRICTED


def allows(policy: int, cost: CostStates | int) -> bool:
    """Whether a job with transfer policy ``policy`` may transfer on a network of ``cost``."""
    return bool(int(policy) & int(cost) & COST_STATE_MASK)


def parse_busctl(text: str) -> int | None:
    """The value of ``busctl get-property …`` output such as ``u 4``."""
    parts = text.split()
    if len(parts) == 2 and parts[0] == "u" and parts[1].isdigit():
        return int(parts[1])
    return None


def parse_gdbus(text: str) -> int | None:
    """The value of ``gdbus call … Properties.Get`` output such as ``(<uint32 4>,)``."""
    inner = text.strip().removeprefix("(<").removesuffix(">,)")
    kind, _, number = inner.partition(" ")
    if kind == "uint32" and number.isdigit():
        return int(number)
    return None


class NetworkManagerCost:
    """A :data:`CostSource` that asks NetworkManager whether the network is metered.

    Args:
        address: a D-Bus address to use instead of the system bus (tests run a bus of their
            own).
        metered_cost: the cost state a metered network is reported as.
        backends: the clients to try, in order: "dbus-fast", "busctl", "gdbus".
    """

    def __init__(
        self,
        *,
        address: str | None = None,
        metered_cost: CostStates = DEFAULT_METERED_COST,
        backends: Sequence[str] = ("dbus-fast", "busctl", "gdbus"),
    ) -> None:
        self.address = address
        self.metered_cost = metered_cost
        self.backends = tuple(backends)

    def _bus_exists(self) -> bool:
        if self.address is not None or os.environ.get("DBUS_SYSTEM_BUS_ADDRESS"):
            return True
        return os.path.exists(_SYSTEM_BUS_SOCKET)

    async def metered(self) -> int | None:
        """NetworkManager's ``Metered`` value, or None when no backend could read it."""
        if not self._bus_exists():
            return None
        for backend in self.backends:
            try:
                async with asyncio.timeout(_TIMEOUT):
                    value = await self._ask(backend)
            except (OSError, TimeoutError, ValueError, ImportError) as exc:
                log.debug("cost: %s could not ask NetworkManager: %r", backend, exc)
                continue
            except Exception as exc:  # a D-Bus library's own errors (no such name, …)
                log.debug("cost: %s could not ask NetworkManager: %r", backend, exc)
                continue
            if value is not None:
                return value
        return None

    async def __call__(self) -> CostStates:
        return cost_of_metered(await self.metered(), self.metered_cost)

    async def _ask(self, backend: str) -> int | None:
        if backend == "dbus-fast":
            return await self._ask_dbus_fast()
        if backend == "busctl":
            where = [f"--address={self.address}"] if self.address else ["--system"]
            argv = ["busctl", *where, "get-property", _NM, _NM_PATH, _NM, "Metered"]
            return parse_busctl(await _run(argv))
        if backend == "gdbus":
            where = ["--address", self.address] if self.address else ["--system"]
            argv = [
                "gdbus",
                "call",
                *where,
                "--dest",
                _NM,
                "--object-path",
                _NM_PATH,
                "--method",
                "org.freedesktop.DBus.Properties.Get",
                _NM,
                "Metered",
            ]
            return parse_gdbus(await _run(argv))
        raise ValueError(f"unknown D-Bus backend {backend!r}")

    async def _ask_dbus_fast(self) -> int | None:
        from dbus_fast import BusType, Message, MessageType  # the optional "nm" extra
        from dbus_fast.aio import MessageBus

        bus = MessageBus(bus_address=self.address, bus_type=BusType.SYSTEM)
        await bus.connect()
        try:
            reply = await bus.call(
                Message(
                    destination=_NM,
                    path=_NM_PATH,
                    interface="org.freedesktop.DBus.Properties",
                    member="Get",
                    signature="ss",
                    body=[_NM, "Metered"],
                )
            )
        finally:
            bus.disconnect()
            with contextlib.suppress(Exception):
                await bus.wait_for_disconnect()  # type: ignore[no-untyped-call]
        if reply is None or reply.message_type is MessageType.ERROR:
            return None
        value = reply.body[0].value
        return value if isinstance(value, int) else None


async def _run(argv: list[str]) -> str:
    """The standard output of a command that must succeed."""
    if shutil.which(argv[0]) is None:
        raise FileNotFoundError(argv[0])
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        out, _ = await proc.communicate()
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        raise
    if proc.returncode != 0:
        raise OSError(f"{argv[0]} exited with {proc.returncode}")
    return out.decode(errors="replace")


class CostMonitor:
    """Keeps the current network cost, asking ``source`` every ``interval`` seconds.

    Args:
        clock: the injected clock (polls use its monotonic time).
        source: the cost source.
        interval: seconds between two reads (read again from ``interval_of`` each time).
        on_change: called after the cost changed.
    """

    def __init__(
        self,
        clock: Clock,
        source: CostSource,
        interval: Callable[[], float],
        on_change: Callable[[CostStates], None],
    ) -> None:
        self._clock = clock
        self._source = source
        self._interval = interval
        self._on_change = on_change
        self.current = CostStates.UNRESTRICTED
        self._task: asyncio.Task[None] | None = None

    async def refresh(self) -> bool:
        """Read the cost now. Returns whether it changed. A source that fails or hangs
        reports UNRESTRICTED."""
        try:
            async with asyncio.timeout(2 * _TIMEOUT + 1):
                cost = CostStates(await self._source())
        except asyncio.CancelledError:
            raise
        except Exception:
            log.warning("cost: reading the network cost failed; assuming UNRESTRICTED")
            cost = CostStates.UNRESTRICTED
        if cost == self.current:
            return False
        log.info("network cost: %s -> %s", self.current.name, cost.name)
        self.current = cost
        self._on_change(cost)
        return True

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="bitsd-cost")

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _loop(self) -> None:
        while True:
            await self._clock.sleep_until(self._clock.monotonic() + self._interval())
            await self.refresh()
