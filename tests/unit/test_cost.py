"""Unit tests of bitsd._cost and the policy gate: metered → cost state, transfer policies,
reading NetworkManager over a real (private) D-Bus, and the cost monitor on a fake clock."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator

import pytest

from bitsd import FakeClock, Priority, codes
from bitsd import _cost as cost_module
from bitsd._cost import (
    NM_METERED_GUESS_NO,
    NM_METERED_GUESS_YES,
    NM_METERED_NO,
    NM_METERED_UNKNOWN,
    NM_METERED_YES,
    CostMonitor,
    NetworkManagerCost,
    allows,
    cost_of_metered,
    parse_busctl,
    parse_gdbus,
)
from bitsd._enums import CostStates
from bitsd._limits import blocked_by

try:  # the optional "nm" extra (installed with "test"); its annotations are read by name
    from dbus_fast.annotations import DBusUInt32
except ImportError:  # pragma: no cover
    DBusUInt32 = int  # type: ignore[misc]

NAMED_POLICIES = [
    CostStates.TRANSFER_UNRESTRICTED,
    CostStates.TRANSFER_STANDARD,
    CostStates.TRANSFER_NO_SURCHARGE,
    CostStates.TRANSFER_NOT_ROAMING,
    CostStates.TRANSFER_ALWAYS,
]


@pytest.mark.parametrize(
    ("metered", "expected"),
    [
        (NM_METERED_UNKNOWN, CostStates.UNRESTRICTED),
        (NM_METERED_YES, CostStates.USAGE_BASED),
        (NM_METERED_NO, CostStates.UNRESTRICTED),
        (NM_METERED_GUESS_YES, CostStates.USAGE_BASED),
        (NM_METERED_GUESS_NO, CostStates.UNRESTRICTED),
        (None, CostStates.UNRESTRICTED),
        (42, CostStates.UNRESTRICTED),
    ],
)
def test_metered_maps_to_a_cost_state(metered: int | None, expected: CostStates) -> None:
    """NetworkManager's Metered (yes / guess-yes → USAGE_BASED; no, guess-no, unknown, no
    answer → UNRESTRICTED)."""
    assert cost_of_metered(metered) is expected


def test_metered_cost_is_configurable() -> None:
    """A metered network can be reported as another cost state (e.g. NEAR_CAP, which
    BITS's STANDARD policy does not allow)."""
    assert cost_of_metered(NM_METERED_YES, CostStates.NEAR_CAP) is CostStates.NEAR_CAP
    assert cost_of_metered(NM_METERED_NO, CostStates.NEAR_CAP) is CostStates.UNRESTRICTED


@pytest.mark.parametrize("policy", NAMED_POLICIES, ids=lambda p: p.name)
@pytest.mark.parametrize(
    "cost",
    [s for s in CostStates if s.value <= 0x80],
    ids=lambda s: s.name,
)
def test_named_policies_against_every_cost_state(policy: CostStates, cost: CostStates) -> None:
    """A job may transfer exactly when its policy has the network's cost bit (bits-inventory
    §5.11); the option bits never decide."""
    assert allows(policy, cost) == bool(policy & cost & 0xFF)


def test_standard_policy_table() -> None:
    """BITS's STANDARD (the default) allows unrestricted, usage-based and capped-below-cap
    networks, and refuses near or over a charged cap and roaming; UNRESTRICTED allows only
    unrestricted (and throttled over-cap) networks."""
    standard = CostStates.TRANSFER_STANDARD
    assert allows(standard, CostStates.UNRESTRICTED)
    assert allows(standard, CostStates.USAGE_BASED)
    assert not allows(standard, CostStates.ROAMING)
    assert not allows(standard, CostStates.NEAR_CAP)
    assert not allows(standard, CostStates.OVERCAP_CHARGED)
    assert not allows(CostStates.TRANSFER_UNRESTRICTED, CostStates.USAGE_BASED)
    assert not allows(CostStates.IGNORE_CONGESTION, CostStates.UNRESTRICTED)


def test_gate_checks_cost_first_and_spares_foreground_from_bandwidth() -> None:
    """The cost policy holds any job; a 0 bandwidth limit holds background jobs only."""
    usage = CostStates.USAGE_BASED
    unmetered = CostStates.TRANSFER_UNRESTRICTED
    for priority in Priority:
        assert (
            blocked_by(
                priority=priority, transfer_policy=unmetered, cost=usage, bandwidth_blocked=True
            )
            == codes.BG_E_BLOCKED_BY_COST_TRANSFER_POLICY
        )
    assert (
        blocked_by(
            priority=Priority.LOW,
            transfer_policy=CostStates.TRANSFER_STANDARD,
            cost=usage,
            bandwidth_blocked=True,
        )
        == codes.BG_E_BLOCKED_BY_POLICY
    )
    assert (
        blocked_by(
            priority=Priority.FOREGROUND,
            transfer_policy=CostStates.TRANSFER_STANDARD,
            cost=usage,
            bandwidth_blocked=True,
        )
        is None
    )


def test_cli_output_parsers() -> None:
    """busctl prints ``u 4``; gdbus prints ``(<uint32 4>,)``; anything else is no answer."""
    assert parse_busctl("u 4\n") == 4
    assert parse_busctl("s 'x'") is None
    assert parse_gdbus("(<uint32 1>,)\n") == 1
    assert parse_gdbus("Error: no bus") is None


async def test_no_system_bus_means_unrestricted(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a system bus, nothing is asked and the network is UNRESTRICTED."""
    monkeypatch.delenv("DBUS_SYSTEM_BUS_ADDRESS", raising=False)
    monkeypatch.setattr(cost_module, "_SYSTEM_BUS_SOCKET", "/nonexistent/bus")
    source = NetworkManagerCost()
    assert await source.metered() is None
    assert await source() is CostStates.UNRESTRICTED


async def test_unreachable_bus_means_unrestricted() -> None:
    """A bus address nobody listens on gives no answer from any backend: UNRESTRICTED."""
    source = NetworkManagerCost(address="unix:path=/nonexistent/bitsd-test-bus")
    assert await source() is CostStates.UNRESTRICTED


@contextlib.asynccontextmanager
async def fake_network_manager(metered: int) -> AsyncIterator[str]:
    """A private dbus-daemon with an object that plays NetworkManager's main object (its
    Metered property); yields the bus address."""
    dbus_fast = pytest.importorskip("dbus_fast")
    from dbus_fast.aio import MessageBus
    from dbus_fast.constants import PropertyAccess
    from dbus_fast.service import ServiceInterface, dbus_property

    if shutil.which("dbus-daemon") is None:
        pytest.skip("dbus-daemon is not installed")

    class FakeNetworkManager(ServiceInterface):
        def __init__(self) -> None:
            super().__init__("org.freedesktop.NetworkManager")

        @dbus_property(access=PropertyAccess.READ)
        def Metered(self) -> DBusUInt32:  # noqa: N802 - NetworkManager's property name
            return metered

    with tempfile.TemporaryDirectory(prefix="bitsd-dbus-") as folder:
        proc = subprocess.Popen(
            [
                "dbus-daemon",
                "--session",
                "--nofork",
                "--print-address=1",
                f"--address=unix:path={folder}/bus",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        try:
            assert proc.stdout is not None
            address = proc.stdout.readline().strip()
            bus = await MessageBus(bus_address=address).connect()
            bus.export("/org/freedesktop/NetworkManager", FakeNetworkManager())
            reply = await bus.request_name("org.freedesktop.NetworkManager")
            assert reply == dbus_fast.RequestNameReply.PRIMARY_OWNER
            try:
                yield address
            finally:
                bus.disconnect()
                await bus.wait_for_disconnect()  # type: ignore[no-untyped-call]
        finally:
            proc.terminate()
            proc.wait(timeout=10)
            if proc.stdout is not None:
                proc.stdout.close()


@pytest.mark.parametrize("backend", ["dbus-fast", "busctl", "gdbus"])
@pytest.mark.parametrize(
    ("metered", "expected"),
    [(NM_METERED_YES, CostStates.USAGE_BASED), (NM_METERED_GUESS_NO, CostStates.UNRESTRICTED)],
)
async def test_reads_metered_from_a_real_bus(
    backend: str, metered: int, expected: CostStates
) -> None:
    """Each D-Bus backend reads the Metered property of NetworkManager's main object over a
    real bus and maps it to the cost state."""
    if backend != "dbus-fast" and shutil.which(backend) is None:
        pytest.skip(f"{backend} is not installed")
    async with fake_network_manager(metered) as address:
        source = NetworkManagerCost(address=address, backends=(backend,))
        assert await source.metered() == metered
        assert await source() is expected


async def test_monitor_polls_on_the_injected_clock() -> None:
    """The monitor reads the cost once on refresh, then every interval of the fake clock, and
    calls back only on a change; a failing source counts as UNRESTRICTED."""
    clock = FakeClock(start=0.0)
    answers = [CostStates.USAGE_BASED]
    changes: list[CostStates] = []

    async def source() -> CostStates:
        if not answers:
            raise RuntimeError("NetworkManager went away")
        return answers[0]

    monitor = CostMonitor(clock, source, lambda: 30.0, changes.append)
    assert await monitor.refresh() is True
    assert monitor.current is CostStates.USAGE_BASED
    monitor.start()
    clock.advance(30)
    for _ in range(3):
        await asyncio.sleep(0)
    assert changes == [CostStates.USAGE_BASED]
    answers.clear()
    clock.advance(30)
    for _ in range(3):
        await asyncio.sleep(0)
    assert changes == [CostStates.USAGE_BASED, CostStates.UNRESTRICTED]
    await monitor.close()
