"""On-demand jobs through every layer: the same test bodies against the in-process engine and
a real daemon process (async client), the control API's routes and shapes as raw HTTP, the
FileRangesTransferred callback across the event stream, and the synchronous client."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

import bitsd
from bitsd import FileInfo, JobState, NotifyFlags, codes
from tests.client.conftest import AnyJob, Backend
from tests.client.daemon import Daemon, http_json
from tests.client.test_roundtrip import body, raised, unique_path
from tests.servers.faulty import FaultServer

pytestmark = pytest.mark.e2e  # the daemon side talks to a real daemon process

ENDED = (JobState.SUSPENDED, JobState.TRANSFERRED, JobState.ERROR)


class RangesSeen:
    """A callback object that records FileRangesTransferred calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[tuple[int, int]]]] = []

    async def file_ranges_transferred(
        self, job: AnyJob, file: FileInfo, ranges: list[tuple[int, int]]
    ) -> None:
        self.calls.append((file.local_name, ranges))


async def test_on_demand_job_end_to_end(backend: Backend, server: FaultServer, dest: Path) -> None:
    """Ranges asked out of order are fetched, SUSPENDED then, filled ranges listed merged; the
    callback gets each range with its file; the rest asked to the end makes the job
    TRANSFERRED and complete() gives the remote file; on_demand is in the snapshot."""
    data = body(500_000, seed=11)
    path = unique_path("on-demand")
    server.add(path, data)
    seen = RangesSeen()
    job = await backend.create_job("on demand")
    await job.set_on_demand(True)
    assert await job.get_on_demand() is True
    assert (await job.snapshot()).on_demand is True
    await job.set_notify_flags(NotifyFlags.FILE_RANGES_TRANSFERRED | NotifyFlags.JOB_TRANSFERRED)
    await job.set_notify_interface(seen)
    await job.add_file(server.url(path), str(dest / "f"))
    [info] = await job.files()
    await job.request_file_ranges(info, [(300_000, 100_000), (0, 50_000)])
    await job.resume()
    assert await job.wait(ENDED, timeout=15) is JobState.SUSPENDED
    assert await job.get_filled_file_ranges(0) == [(0, 50_000), (300_000, 100_000)]
    for _ in range(500):
        if len(seen.calls) == 2:
            break
        await asyncio.sleep(0.01)
    assert seen.calls == [
        (str(dest / "f"), [(300_000, 100_000)]),
        (str(dest / "f"), [(0, 50_000)]),
    ]
    assert await raised(job.request_file_ranges(0, [(499_999, 2)])) == (
        bitsd.BitsError,
        codes.BG_E_INVALID_RANGE,
    )
    await job.update_download_position(info, 450_000)
    await job.request_file_ranges(0, [(40_000, bitsd.LENGTH_TO_EOF)])
    await job.resume()
    assert await job.wait(ENDED, timeout=15) is JobState.TRANSFERRED
    assert await job.get_filled_file_ranges(0) == [(0, 500_000)]
    assert await job.complete() == codes.S_OK
    assert (dest / "f").read_bytes() == data
    ranges = [r.range for r in server.requests_for(path)]
    assert ranges[2:] == ["bytes=50000-299999", "bytes=400000-499999"]


async def test_on_demand_errors_are_the_engines(
    backend: Backend, server: FaultServer, dest: Path
) -> None:
    """The errors of the on-demand verbs come back with the engine's classes and codes: not
    an on-demand job, a property clash, read-only after Resume, malformed ranges."""
    job = await backend.create_job("plain")
    await job.add_file(server.url(unique_path("x")), str(dest / "x"))
    not_on_demand = (bitsd.BitsError, codes.BG_E_RANDOM_ACCESS_NOT_SUPPORTED)
    assert await raised(job.request_file_ranges(0, [(0, 1)])) == not_on_demand
    assert await raised(job.update_download_position(0, 1)) == not_on_demand
    assert await job.get_filled_file_ranges(0) == []
    await job.set_http_method("POST")
    assert await raised(job.set_on_demand(True)) == (
        bitsd.BitsError,
        codes.BG_E_NOT_SUPPORTED_WITH_CUSTOM_HTTP_METHOD,
    )
    on_demand = await backend.create_job("on demand")
    await on_demand.set_on_demand(True)
    await on_demand.add_file(server.url(unique_path("y")), str(dest / "y"))
    assert await raised(on_demand.request_file_ranges(0, [])) == (
        bitsd.InvalidArgumentError,
        codes.E_INVALIDARG,
    )
    assert await raised(on_demand.request_file_ranges(0, [(-1, 5)])) == (
        bitsd.BitsError,
        codes.BG_E_INVALID_RANGE,
    )
    assert await raised(on_demand.update_download_position(0, -1)) == (
        bitsd.InvalidArgumentError,
        codes.E_INVALIDARG,
    )
    await on_demand.suspend()
    await on_demand.request_file_ranges(0, [(0, 1)])
    await on_demand.resume()
    await on_demand.wait(ENDED, timeout=15)
    assert await raised(on_demand.set_on_demand(False)) == (
        bitsd.ReadOnlyPropertyError,
        codes.BG_E_READ_ONLY_PROPERTY_AFTER_RESUME,
    )
    for j in (job, on_demand):
        await j.cancel()


async def test_a_download_position_beyond_any_file_is_refused_and_changes_nothing(
    backend: Backend, server: FaultServer, dest: Path
) -> None:
    """A download position over 2**63 - 1 (``MAX_BYTE_COUNT``, beyond any file) while the
    file's size is unknown is BG_E_INVALID_RANGE, and the file's record stays as it was: its
    ranges can still be requested. (It raised OverflowError, a 500 through the daemon, with
    the position already in the live record, so every later write of the file failed too.)"""
    job = await backend.create_job("far")
    await job.set_on_demand(True)
    await job.add_file(server.url(unique_path("far")), str(dest / "far"))
    for offset in (2**63, 2**64 - 1, 2**70):
        assert await raised(job.update_download_position(0, offset)) == (
            bitsd.BitsError,
            codes.BG_E_INVALID_RANGE,
        )
    await job.request_file_ranges(0, [(0, 1)])
    await job.update_download_position(0, 2**63 - 1)
    await job.cancel()


def call(daemon: Daemon, method: str, path: str, body: object = None) -> tuple[int, Any]:
    return http_json(daemon.socket, method, path, body)


def test_on_demand_routes(daemon: Daemon, server: FaultServer, dest: Path) -> None:
    """PATCH on_demand (checked with the other fields first), POST requested-ranges, PUT
    download-position, and the file list's filled_ranges, as raw HTTP; malformed bodies are
    400 E_INVALIDARG and change nothing."""
    status, job = call(daemon, "POST", "/v1/jobs", {"display_name": "routes"})
    assert status == 201
    base = f"/v1/jobs/{job['id']}"
    status, _ = call(
        daemon,
        "POST",
        f"{base}/files",
        {"files": [{"remote_name": "http://127.0.0.1:9/p", "local_name": str(dest / "p")}]},
    )
    assert status == 200
    status, refused = call(daemon, "POST", f"{base}/files/0/requested-ranges", {"ranges": [[0, 1]]})
    assert (status, refused["error"]["name"]) == (409, "BG_E_RANDOM_ACCESS_NOT_SUPPORTED")
    call(daemon, "POST", f"{base}/cancel")
    status, job = call(daemon, "POST", "/v1/jobs", {"display_name": "routes"})
    base = f"/v1/jobs/{job['id']}"
    status, clash = call(daemon, "PATCH", base, {"on_demand": True, "dynamic_content": True})
    assert (status, clash["error"]["name"]) == (409, "BG_E_UNSUPPORTED_JOB_CONFIGURATION")
    status, clash = call(daemon, "PATCH", base, {"on_demand": True, "http_method": "POST"})
    assert (status, clash["error"]["name"]) == (409, "BG_E_NOT_SUPPORTED_WITH_CUSTOM_HTTP_METHOD")
    status, bad = call(daemon, "PATCH", base, {"on_demand": 1})
    assert (status, bad["error"]["name"]) == (400, "E_INVALIDARG")
    status, changed = call(daemon, "PATCH", base, {"on_demand": True})
    assert (status, changed["on_demand"], changed["dynamic_content"]) == (200, True, False)
    path = unique_path("routes")
    server.add(path, body(10_000, seed=12))
    local = str(dest / "r")
    status, added = call(
        daemon,
        "POST",
        f"{base}/files",
        {"files": [{"remote_name": server.url(path), "local_name": local}]},
    )
    assert (status, added["files"][0]["filled_ranges"]) == (200, [])
    bad_ranges: list[object] = [{"ranges": [[0, "1"]]}, {"ranges": [[0]]}, {"range": [[0, 1]]}]
    for bad_body in [*bad_ranges, [[0, 1]]]:
        status, bad = call(daemon, "POST", f"{base}/files/0/requested-ranges", bad_body)
        assert (status, bad["error"]["name"]) == (400, "E_INVALIDARG"), bad_body
    bad_positions: list[object] = [{"offset": "5"}, {"offset": True}, {}]
    for bad_body in bad_positions:
        status, bad = call(daemon, "PUT", f"{base}/files/0/download-position", bad_body)
        assert (status, bad["error"]["name"]) == (400, "E_INVALIDARG"), bad_body
    status, done = call(daemon, "PUT", f"{base}/files/0/download-position", {"offset": 100})
    assert (status, done["name"]) == (200, "S_OK")
    status, done = call(
        daemon, "POST", f"{base}/files/0/requested-ranges", {"ranges": [[5_000, 100], [0, 10]]}
    )
    assert (status, done["name"]) == (200, "S_OK")
    status, missing = call(daemon, "POST", f"{base}/files/7/requested-ranges", {"ranges": [[0, 1]]})
    assert (status, missing["error"]["name"]) == (400, "E_INVALIDARG")
    call(daemon, "POST", f"{base}/resume")
    status, waited = call(daemon, "GET", f"{base}/wait?states=SUSPENDED,ERROR&timeout=15")
    assert waited["state"] == "SUSPENDED"
    status, listed = call(daemon, "GET", f"{base}/files")
    assert listed["files"][0]["filled_ranges"] == [[0, 10], [5_000, 100]]
    call(daemon, "POST", f"{base}/cancel")


def test_sync_client_on_demand(daemon: Daemon, server: FaultServer, dest: Path) -> None:
    """The synchronous client's on-demand methods: the async client's results, blocking."""
    data = body(100_000, seed=13)
    path = unique_path("sync-on-demand")
    server.add(path, data)
    with bitsd.connect(socket_path=daemon.socket, autostart=False) as manager:
        job = manager.create_job("sync on demand")
        job.set_on_demand(True)
        assert job.get_on_demand() is True
        job.add_file(server.url(path), str(dest / "s"))
        job.update_download_position(0, 10)
        job.request_file_ranges(0, [(60_000, 40_000)])
        job.resume()
        assert job.wait(ENDED, timeout=15) is JobState.SUSPENDED
        assert job.get_filled_file_ranges(0) == [(60_000, 40_000)]
        job.resume()  # nothing requested: the gaps are filled from the position
        assert job.wait(ENDED, timeout=15) is JobState.TRANSFERRED
        assert job.complete() == codes.S_OK
    assert (dest / "s").read_bytes() == data
    assert [r.range for r in server.requests_for(path)] == [
        "bytes=60000-99999",
        "bytes=10-59999",
        "bytes=0-9",
    ]
