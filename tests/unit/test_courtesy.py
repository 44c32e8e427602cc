"""Unit tests of bitsd._courtesy: reading the link's counters, and the AIMD controller fed
with synthetic counter readings."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

import pytest

from bitsd import FakeClock
from bitsd._courtesy import (
    CAPACITY_DECAY,
    DEFAULT_COURTESY_FLOOR,
    INCREASE_SHARE,
    NOISE_RATE,
    SAMPLE_INTERVAL,
    CourtesyController,
    CourtesyMonitor,
    ProcNetDev,
    default_route_interface,
    read_rx_bytes,
)

ROUTE = """\
Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
lo\t00000000\t00000000\t0001\t0\t0\t0\t00000000\t0\t0\t0
wlan0\t0001A8C0\t00000000\t0001\t0\t0\t600\t00FFFFFF\t0\t0\t0
wlan0\t00000000\t0101A8C0\t0003\t0\t0\t600\t00000000\t0\t0\t0
eth0\t00000000\t0102A8C0\t0003\t0\t0\t700\t00000000\t0\t0\t0
"""
DEV = """\
Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs
    lo: 14826748728  454859    0    0    0     0          0         0 14826748728  454859 0
 wlan0: 135645977    4206    0    0    0     0          0         0   304096    2914    0
"""
MB = 1_000_000


def test_default_route_interface_skips_loopback_and_non_default_routes() -> None:
    """The first default route (destination and mask 0, flag UP) names the interface; a
    loopback default route never counts."""
    assert default_route_interface(ROUTE) == "wlan0"
    assert default_route_interface(ROUTE.splitlines()[0]) is None
    assert default_route_interface("Iface\nlo\t00000000\t0\t0001\t0\t0\t0\t00000000\n") is None


def test_read_rx_bytes_and_loopback_never_counts() -> None:
    """Received bytes are the first number after the interface's colon; lo is never read."""
    assert read_rx_bytes(DEV, "wlan0") == 135645977
    assert read_rx_bytes(DEV, "lo") is None
    assert read_rx_bytes(DEV, "eth9") is None


def test_proc_net_dev_reads_files_under_a_root(tmp_path: Path) -> None:
    """ProcNetDev follows the default route unless an interface is named, and answers None
    when the files are missing."""
    (tmp_path / "net").mkdir()
    (tmp_path / "net" / "route").write_text(ROUTE)
    (tmp_path / "net" / "dev").write_text(DEV)
    assert ProcNetDev(root=tmp_path)() == 135645977
    assert ProcNetDev("lo", root=tmp_path)() is None
    assert ProcNetDev(root=tmp_path / "missing")() is None


class Link:
    """Synthetic counters: advance both by rates over a number of seconds."""

    def __init__(self) -> None:
        self.t = 0.0
        self.link = 10**9
        self.own = 0

    def run(self, seconds: float, others: float, own: float) -> None:
        self.t += seconds
        self.own += int(own * seconds)
        self.link += int((others + own) * seconds)


def feed(
    controller: CourtesyController, link: Link, seconds: int, others: float, own: float
) -> list[float | None]:
    """Sample once a second for ``seconds`` seconds of constant traffic."""
    limits = []
    for _ in range(seconds):
        link.run(1.0, others, own)
        limits.append(controller.sample(link.t, link.link, link.own))
    return limits


def started(link: Link) -> CourtesyController:
    controller = CourtesyController()
    controller.sample(link.t, link.link, link.own)
    return controller


def test_bitsd_alone_on_the_link_is_not_contention() -> None:
    """bitsd saturating the link by itself (its own bytes subtracted, headers included) keeps
    its rate unlimited, and the capacity follows what the link carried."""
    link = Link()
    controller = started(link)
    assert feed(controller, link, 5, others=0.0, own=10 * MB) == [None] * 5
    assert controller.capacity == pytest.approx(10 * MB)
    assert controller.others == 0.0


def test_contention_halves_down_to_the_floor_then_recovers_additively() -> None:
    """Others taking more than the threshold of the capacity halve the background limit each
    sample, starting from what bitsd received, never below the floor; once they stop, the
    limit rises by INCREASE_SHARE of the capacity per sample and is lifted at the capacity."""
    link = Link()
    controller = started(link)
    feed(controller, link, 3, others=0.0, own=8 * MB)
    limits = feed(controller, link, 10, others=6 * MB, own=2 * MB)
    assert limits[0] == pytest.approx(1 * MB)  # half of the 2 MB/s bitsd got
    assert limits[1] == pytest.approx(0.5 * MB)
    assert limits[-1] == DEFAULT_COURTESY_FLOOR
    assert all(a is not None and b is not None and b <= a for a, b in itertools.pairwise(limits))
    capacity = controller.capacity
    after = feed(controller, link, 1, others=0.0, own=DEFAULT_COURTESY_FLOOR)
    assert after[0] == pytest.approx(
        DEFAULT_COURTESY_FLOOR + INCREASE_SHARE * capacity * CAPACITY_DECAY, rel=1e-6
    )
    rest = feed(controller, link, 12, others=0.0, own=DEFAULT_COURTESY_FLOOR)
    assert rest[-1] is None


def test_small_or_proportionally_small_traffic_is_not_contention() -> None:
    """Others under NOISE_RATE, or under the threshold share of the capacity, never count."""
    link = Link()
    controller = started(link)
    assert feed(controller, link, 3, others=NOISE_RATE * 0.9, own=0.0) == [None] * 3
    feed(controller, link, 2, others=0.0, own=50 * MB)
    assert feed(controller, link, 3, others=4 * MB, own=40 * MB) == [None] * 3  # 4/44 < 10 %


def test_others_on_an_idle_bitsd_bring_the_limit_to_the_floor() -> None:
    """When bitsd is not transferring and others use the link, background jobs start from
    the floor."""
    link = Link()
    controller = started(link)
    assert feed(controller, link, 1, others=5 * MB, own=0.0) == [DEFAULT_COURTESY_FLOOR]


def test_unreadable_or_reset_counters() -> None:
    """An unreadable counter lifts the limit; a counter that went back (interface reset or
    changed) is skipped without a change."""
    link = Link()
    controller = started(link)
    feed(controller, link, 1, others=5 * MB, own=0.0)
    assert controller.sample(link.t + 1, 0, link.own) == DEFAULT_COURTESY_FLOOR
    assert controller.sample(link.t + 2, None, link.own) is None
    assert controller.sample(link.t + 3, 5, link.own) is None  # the first reading again


def test_threshold_and_floor_are_settings() -> None:
    """A higher threshold tolerates more of others' traffic; the floor is the config's."""
    link = Link()
    controller = CourtesyController(floor=1000.0, threshold=0.5)
    controller.sample(link.t, link.link, link.own)
    feed(controller, link, 2, others=0.0, own=10 * MB)
    assert feed(controller, link, 1, others=4 * MB, own=6 * MB) == [None]
    assert feed(controller, link, 20, others=9 * MB, own=1 * MB)[-1] == 1000.0


async def test_monitor_samples_on_the_injected_clock() -> None:
    """The monitor samples once at start and then every SAMPLE_INTERVAL of the fake clock,
    handing each limit to the bandwidth manager; close lifts the limit."""
    clock = FakeClock(start=0.0)
    link = Link()
    applied: list[float | None] = []
    monitor = CourtesyMonitor(
        clock,
        lambda: link.link,
        lambda: link.own,
        applied.append,
        CourtesyController(),
    )
    monitor.start()
    await asyncio.sleep(0)
    assert applied == [None]
    link.run(SAMPLE_INTERVAL, others=5 * MB, own=0.0)
    clock.advance(SAMPLE_INTERVAL)
    for _ in range(3):
        await asyncio.sleep(0)
    assert applied == [None, DEFAULT_COURTESY_FLOOR]
    await monitor.close()
    assert applied[-1] is None
