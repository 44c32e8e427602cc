"""On-demand jobs (BITS_JOB_PROPERTY_ON_DEMAND_MODE, IBackgroundCopyFile6) against a real
loopback server: requested ranges fetched first and written at their offsets, the filled set
kept across restarts, FileRangesTransferred, the gaps filled from the download position, and
the errors of BITS."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

import bitsd
from bitsd import ErrorContext, JobState, NotifyFlags, codes
from bitsd.aio import Job
from tests.engine.conftest import EngineFactory, body, leftovers, settle
from tests.servers.faulty import Fault, FaultServer

SIZE = 1_000_000
ENDED = (JobState.SUSPENDED, JobState.TRANSFERRED, JobState.ERROR)


class Ranges:
    """A callback object that records FileRangesTransferred calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[tuple[int, int]]]] = []
        self.files_done: list[str] = []
        self.arrived = asyncio.Event()

    async def file_ranges_transferred(
        self, job: Job, file: bitsd.FileInfo, ranges: list[tuple[int, int]]
    ) -> None:
        self.calls.append((file.local_name, ranges))
        self.arrived.set()

    async def file_transferred(self, job: Job, file: bitsd.FileInfo) -> None:
        self.files_done.append(file.local_name)


def served(server: FaultServer, path: str) -> int:
    """Body bytes the server sent for ``path``."""
    return sum(r.bytes_sent for r in server.requests_for(path))


async def ask(job: Job, ranges: list[tuple[int, int]]) -> JobState:
    """Request ``ranges`` of the job's first file, resume it and wait for the run's end."""
    await job.request_file_ranges(0, ranges)
    await job.resume()
    return await settle(job, ENDED)


def read_at(path: str, offset: int, length: int) -> bytes:
    """``length`` bytes of the file at ``offset``."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.pread(fd, length, offset)
    finally:
        os.close(fd)


async def on_demand_job(engine: bitsd.aio.Engine, url: str, local: Path) -> Job:
    job = await engine.create_job("on demand")
    await job.set_on_demand(True)
    await job.add_file(url, str(local))
    return job


async def test_requested_ranges_land_at_their_offsets_then_the_job_suspends(
    server: FaultServer, make_engine: EngineFactory, dest: Path
) -> None:
    """Ranges asked out of order are fetched in the order asked, each written at its offset in
    the temporary file; overlapping requests fetch only the missing bytes; when they are in
    and the file is not whole, the job is SUSPENDED; FileRangesTransferred names each range."""
    data = body(SIZE)
    server.add("/f", data)
    seen = Ranges()
    async with make_engine() as engine:
        job = await on_demand_job(engine, server.url("/f"), dest / "f")
        await job.set_notify_flags(NotifyFlags.FILE_RANGES_TRANSFERRED)
        await job.set_notify_interface(seen)
        await job.request_file_ranges(0, [(700_000, 50_000), (100_000, 20_000)])
        await job.request_file_ranges(0, [(110_000, 20_000), (700_000, 10)])  # overlaps
        await job.resume()
        assert await settle(job, ENDED) is JobState.SUSPENDED
        filled = [(100_000, 30_000), (700_000, 50_000)]
        assert await job.get_filled_file_ranges(0) == filled
        assert (await job.get_progress()).bytes_transferred == 80_000
        [info] = await job.files()
        for offset, length in filled:
            assert read_at(info.temporary_name, offset, length) == data[offset : offset + length]
        for _ in range(100):
            if len(seen.calls) == 3:
                break
            await asyncio.sleep(0.01)
        await job.cancel()
    assert [r.range for r in server.requests_for("/f")] == [
        "bytes=700000-749999",
        "bytes=100000-119999",
        "bytes=120000-129999",
    ]
    assert seen.calls == [
        (str(dest / "f"), [(700_000, 50_000)]),
        (str(dest / "f"), [(100_000, 20_000)]),
        (str(dest / "f"), [(120_000, 10_000)]),
    ]
    assert leftovers(dest) == []


async def test_filled_ranges_survive_a_restart_and_are_not_fetched_again(
    server: FaultServer, make_engine: EngineFactory, dest: Path
) -> None:
    """The filled set is stored: a new engine on the same store knows it, a request that
    overlaps it fetches only the rest, and the whole file then becomes TRANSFERRED; Complete
    gives the remote file byte for byte; the server sent each byte once."""
    data = body(SIZE, seed=2)
    server.add("/r", data)
    async with make_engine() as engine:
        job = await on_demand_job(engine, server.url("/r"), dest / "r")
        assert await ask(job, [(0, 300_000), (600_000, 100_000)]) is JobState.SUSPENDED
        job_id = job.id
    first_run = served(server, "/r")
    assert first_run == 400_000
    async with make_engine() as engine:
        job = await engine.get_job(job_id)
        assert await job.get_on_demand() is True
        assert await job.get_filled_file_ranges(0) == [(0, 300_000), (600_000, 100_000)]
        assert await ask(job, [(200_000, bitsd.LENGTH_TO_EOF)]) is JobState.TRANSFERRED
        assert await job.get_filled_file_ranges(0) == [(0, SIZE)]
        assert await job.complete() == codes.S_OK
    assert served(server, "/r") == SIZE
    assert [r.range for r in server.requests_for("/r")][2:] == [
        "bytes=300000-599999",
        "bytes=700000-999999",
    ]
    assert all(r.if_range for r in server.requests_for("/r")[2:])
    assert (dest / "r").read_bytes() == data


async def test_a_damaged_temporary_file_is_started_again(
    server: FaultServer, make_engine: EngineFactory, dest: Path
) -> None:
    """A temporary file found shorter than its last filled range at start-up is not trusted:
    the filled ranges are forgotten and the next run fetches what is asked again."""
    data = body(SIZE, seed=8)
    server.add("/d", data)
    async with make_engine() as engine:
        job = await on_demand_job(engine, server.url("/d"), dest / "d")
        assert await ask(job, [(800_000, 100_000)]) is JobState.SUSPENDED
        job_id, temp = job.id, (await job.files())[0].temporary_name
    os.truncate(temp, 850_000)
    async with make_engine() as engine:
        job = await engine.get_job(job_id)
        assert await job.get_filled_file_ranges(0) == []
        assert (await job.get_progress()).bytes_transferred == 0
        assert await ask(job, [(800_000, 100_000)]) is JobState.SUSPENDED
        assert read_at(temp, 800_000, 100_000) == data[800_000:900_000]
    assert served(server, "/d") == 200_000


async def test_a_cut_range_resumes_where_it_stopped(
    server: FaultServer, make_engine: EngineFactory, dest: Path
) -> None:
    """A connection cut inside a requested range keeps the bytes that arrived (checkpointed)
    and the retry asks for the rest only, with If-Range."""
    data = body(SIZE, seed=3)
    server.add("/cut", data)
    server.set_fault("/cut", Fault(drop_after=200_000, times=1))
    async with make_engine(checkpoint_bytes=64 * 1024) as engine:
        job = await on_demand_job(engine, server.url("/cut"), dest / "cut")
        await job.set_minimum_retry_delay(5)
        await job.request_file_ranges(0, [(500_000, 400_000)])
        await job.resume()
        assert await settle(job, (JobState.TRANSIENT_ERROR, *ENDED)) is JobState.TRANSIENT_ERROR
        [(start, kept)] = await job.get_filled_file_ranges(0)
        assert start == 500_000
        assert 0 < kept <= 200_000
        await job.resume()
        assert await settle(job, ENDED) is JobState.SUSPENDED
        assert await job.get_filled_file_ranges(0) == [(500_000, 400_000)]
        await job.cancel()
    last = server.requests_for("/cut")[-1]
    assert last.range == f"bytes={500_000 + kept}-899999"
    assert last.if_range


async def test_resume_without_requests_fills_the_gaps_from_the_download_position(
    server: FaultServer, make_engine: EngineFactory, dest: Path
) -> None:
    """A Resume with nothing requested fills the gaps: from the download position to the end,
    then from the start; the file becomes TRANSFERRED and complete() gives it whole."""
    data = body(SIZE, seed=4)
    server.add("/p", data)
    seen = Ranges()
    async with make_engine() as engine:
        job = await on_demand_job(engine, server.url("/p"), dest / "p")
        await job.set_notify_interface(seen)
        await job.set_notify_flags(NotifyFlags.FILE_TRANSFERRED | NotifyFlags.JOB_TRANSFERRED)
        assert await ask(job, [(400_000, 100_000)]) is JobState.SUSPENDED
        await job.update_download_position(0, 800_000)
        await job.resume()
        assert await settle(job, ENDED) is JobState.TRANSFERRED
        assert (await job.get_progress()).files_transferred == 1
        assert await job.complete() == codes.S_OK
    assert [r.range for r in server.requests_for("/p")] == [
        "bytes=400000-499999",
        "bytes=800000-999999",
        "bytes=0-399999",
        "bytes=500000-799999",
    ]
    assert (dest / "p").read_bytes() == data
    assert seen.files_done == [str(dest / "p")]


async def test_a_request_interrupts_the_filling_and_ends_the_run(
    server: FaultServer, make_engine: EngineFactory, dest: Path
) -> None:
    """While the gaps are filled, a request is served first, at once even when the server has
    stalled mid-body (no TRANSIENT_ERROR by the read timeout); once it is in, the job is
    SUSPENDED with the bytes filled before kept."""
    data = body(SIZE, seed=5)
    server.add("/slow", data)
    server.set_fault("/slow", Fault(stall_after=300_000, stall_seconds=60, times=1))
    async with make_engine(checkpoint_bytes=16 * 1024, read_timeout=30.0) as engine:
        job = await on_demand_job(engine, server.url("/slow"), dest / "slow")
        await job.resume()
        while sum(n for _, n in await job.get_filled_file_ranges(0)) < 300_000:
            await asyncio.sleep(0.01)
        await job.request_file_ranges(0, [(900_000, 50_000)])
        assert await settle(job, (JobState.TRANSIENT_ERROR, *ENDED), 10) is JobState.SUSPENDED
        assert await job.get_filled_file_ranges(0) == [(0, 300_000), (900_000, 50_000)]
        await job.cancel()
    assert server.requests_for("/slow")[1].range == "bytes=900000-949999"


async def test_a_new_download_position_moves_the_filling(
    server: FaultServer, make_engine: EngineFactory, dest: Path
) -> None:
    """UpdateDownloadPosition while the gaps are filled interrupts the gap being fetched and
    the filling goes on from the new position, then wraps; the file ends whole."""
    data = body(SIZE, seed=9)
    server.add("/pos", data)
    server.set_fault("/pos", Fault(stall_after=200_000, stall_seconds=60, times=1))
    async with make_engine(read_timeout=30.0) as engine:
        job = await on_demand_job(engine, server.url("/pos"), dest / "pos")
        await job.resume()
        while sum(n for _, n in await job.get_filled_file_ranges(0)) < 200_000:
            await asyncio.sleep(0.01)
        await job.update_download_position(0, 600_000)
        assert await settle(job, (JobState.TRANSIENT_ERROR, *ENDED), 10) is JobState.TRANSFERRED
        assert await job.complete() == codes.S_OK
    assert [r.range for r in server.requests_for("/pos")] == [
        "bytes=0-",
        "bytes=600000-999999",
        "bytes=200000-599999",
    ]
    assert (dest / "pos").read_bytes() == data


async def test_several_files_are_served_in_file_order(
    server: FaultServer, make_engine: EngineFactory, dest: Path
) -> None:
    """Requests of several files are served files in index order; a Resume with nothing asked
    fills every file, each published (file_transferred) as it becomes whole."""
    first, second = body(100_000, seed=11), body(80_000, seed=12)
    server.add("/one", first)
    server.add("/two", second)
    seen = Ranges()
    async with make_engine() as engine:
        job = await on_demand_job(engine, server.url("/one"), dest / "one")
        await job.add_file(server.url("/two"), str(dest / "two"))
        await job.set_notify_interface(seen)
        await job.set_notify_flags(NotifyFlags.FILE_TRANSFERRED)
        await job.request_file_ranges(1, [(0, 10)])
        assert await ask(job, [(50_000, 10)]) is JobState.SUSPENDED
        assert await job.get_filled_file_ranges(1) == [(0, 10)]
        await job.resume()
        assert await settle(job, ENDED) is JobState.TRANSFERRED
        assert await job.complete() == codes.S_OK
    assert [r.range for r in server.requests_for("/one")] == [
        "bytes=50000-50009",
        "bytes=0-49999",
        "bytes=50010-99999",
    ]
    assert [r.range for r in server.requests_for("/two")] == ["bytes=0-9", "bytes=10-79999"]
    assert [r.path for r in server.requests][:2] == ["/one", "/two"]  # asked last, served first
    assert ((dest / "one").read_bytes(), (dest / "two").read_bytes()) == (first, second)
    assert seen.files_done == [str(dest / "one"), str(dest / "two")]


async def test_asking_for_bytes_held_ends_the_next_run_at_once(
    server: FaultServer, make_engine: EngineFactory, dest: Path
) -> None:
    """Asking only for bytes already held queues nothing, but the next run still ends when
    the queue is empty (SUSPENDED at once), without filling the gaps or fetching anything."""
    server.add("/held", body(SIZE, seed=10))
    async with make_engine() as engine:
        job = await on_demand_job(engine, server.url("/held"), dest / "held")
        assert await ask(job, [(0, 100_000)]) is JobState.SUSPENDED
        assert await ask(job, [(10_000, 50_000)]) is JobState.SUSPENDED
        assert await job.get_filled_file_ranges(0) == [(0, 100_000)]
        await job.cancel()
    assert served(server, "/held") == 100_000


async def test_a_server_that_ignores_ranges_is_random_access_not_supported(
    server: FaultServer, make_engine: EngineFactory, dest: Path
) -> None:
    """A server answering 200 to a range request fails the job with
    BG_E_RANDOM_ACCESS_NOT_SUPPORTED (fatal), and RequestFileRanges says the same until the
    job is resumed."""
    server.add("/whole", body(10_000))
    server.set_fault("/whole", Fault(ignore_range=True))
    async with make_engine() as engine:
        job = await on_demand_job(engine, server.url("/whole"), dest / "whole")
        assert await ask(job, [(100, 100)]) is JobState.ERROR
        err = await job.get_error()
        assert (err.code, err.context) == (
            codes.BG_E_RANDOM_ACCESS_NOT_SUPPORTED,
            ErrorContext.REMOTE_FILE,
        )
        with pytest.raises(bitsd.BitsError) as lost:
            await job.request_file_ranges(0, [(0, 10)])
        assert lost.value.hresult == codes.BG_E_RANDOM_ACCESS_NOT_SUPPORTED
        assert await job.get_filled_file_ranges(0) == []


async def test_ranges_beyond_the_file_are_invalid_range(
    server: FaultServer, make_engine: EngineFactory, dest: Path
) -> None:
    """A range found outside the file at run time fails the job with BG_E_INVALID_RANGE and
    leaves the queue (Resume goes on with the others); once the size is known, such a
    request is refused at once, as are negative offsets and empty lengths."""
    server.add("/s", body(10_000, seed=6))
    async with make_engine() as engine:
        job = await on_demand_job(engine, server.url("/s"), dest / "s")
        assert await ask(job, [(0, 100), (9_000, 2_000), (5_000, 10)]) is JobState.ERROR
        assert (await job.get_error()).code == codes.BG_E_INVALID_RANGE
        await job.resume()
        assert await settle(job, ENDED) is JobState.SUSPENDED
        assert await job.get_filled_file_ranges(0) == [(0, 100), (5_000, 10)]
        for bad in ([(9_999, 2)], [(10_000, bitsd.LENGTH_TO_EOF)], [(-1, 5)], [(0, 0)]):
            with pytest.raises(bitsd.BitsError) as refused:
                await job.request_file_ranges(0, bad)
            assert refused.value.hresult == codes.BG_E_INVALID_RANGE, bad
        with pytest.raises(bitsd.InvalidArgumentError):
            await job.request_file_ranges(0, [])
        with pytest.raises(bitsd.BitsError) as position:
            await job.update_download_position(0, 10_001)
        assert position.value.hresult == codes.BG_E_INVALID_RANGE
        assert await ask(job, [(9_990, bitsd.LENGTH_TO_EOF)]) is JobState.SUSPENDED
        assert (await job.get_filled_file_ranges(0))[-1] == (9_990, 10)


async def test_a_whole_file_by_requests_is_transferred_and_complete_is_identical(
    server: FaultServer, make_engine: EngineFactory, dest: Path
) -> None:
    """When the requested ranges cover the whole file, the job is TRANSFERRED (not SUSPENDED),
    and complete() gives the remote file byte for byte."""
    data = body(300_000, seed=7)
    server.add("/all", data)
    async with make_engine() as engine:
        job = await on_demand_job(engine, server.url("/all"), dest / "all")
        assert await ask(job, [(200_000, 100_000), (0, 200_000)]) is JobState.TRANSFERRED
        assert await job.complete() == codes.S_OK
    assert (dest / "all").read_bytes() == data


async def test_on_demand_mode_rules(
    server: FaultServer, make_engine: EngineFactory, dest: Path
) -> None:
    """The mode is set before the first Resume only; it does not go with dynamic content, a
    custom HTTP method, ranged or non-HTTP files, either way round; the IBackgroundCopyFile6
    verbs need it."""
    server.add("/x", body(100))
    async with make_engine() as engine:
        plain = await engine.create_job("plain")
        await plain.add_file(server.url("/x"), str(dest / "plain"))
        for call in (
            plain.request_file_ranges(0, [(0, 1)]),
            plain.update_download_position(0, 1),
        ):
            with pytest.raises(bitsd.BitsError) as refused:
                await call
            assert refused.value.hresult == codes.BG_E_RANDOM_ACCESS_NOT_SUPPORTED
        assert await plain.get_filled_file_ranges(0) == []
        await plain.resume()
        await settle(plain)
        assert await plain.get_filled_file_ranges(0) == [(0, 100)]
        with pytest.raises(bitsd.ReadOnlyPropertyError):
            await plain.set_on_demand(True)

        dynamic = await engine.create_job("dynamic")
        await dynamic.set_dynamic_content(True)
        with pytest.raises(bitsd.BitsError) as clash:
            await dynamic.set_on_demand(True)
        assert clash.value.hresult == codes.BG_E_UNSUPPORTED_JOB_CONFIGURATION
        method = await engine.create_job("method")
        await method.set_http_method("POST")
        with pytest.raises(bitsd.BitsError) as clash:
            await method.set_on_demand(True)
        assert clash.value.hresult == codes.BG_E_NOT_SUPPORTED_WITH_CUSTOM_HTTP_METHOD

        job = await engine.create_job("on demand")
        await job.set_on_demand(True)
        with pytest.raises(bitsd.BitsError) as clash:
            await job.set_dynamic_content(True)
        assert clash.value.hresult == codes.BG_E_UNSUPPORTED_JOB_CONFIGURATION
        with pytest.raises(bitsd.BitsError) as clash:
            await job.set_http_method("POST")
        assert clash.value.hresult == codes.BG_E_NOT_SUPPORTED_WITH_CUSTOM_HTTP_METHOD
        await job.set_http_method("GET")  # the default verb is no change
        for add in (
            job.add_file_with_ranges(server.url("/x"), str(dest / "r"), [(0, 10)]),
            job.add_file(f"file://{dest}/plain", str(dest / "local")),
        ):
            with pytest.raises(bitsd.BitsError) as clash:
                await add
            assert clash.value.hresult == codes.BG_E_UNSUPPORTED_JOB_CONFIGURATION
        assert await job.files() == []

        ranged = await engine.create_job("ranged")
        await ranged.add_file_with_ranges(server.url("/x"), str(dest / "r2"), [(0, 10)])
        with pytest.raises(bitsd.BitsError) as clash:
            await ranged.set_on_demand(True)
        assert clash.value.hresult == codes.BG_E_UNSUPPORTED_JOB_CONFIGURATION
        with pytest.raises(bitsd.BitsError) as ranged_file:
            await ranged.get_filled_file_ranges(0)
        assert ranged_file.value.hresult == codes.BG_E_RANDOM_ACCESS_NOT_SUPPORTED
        assert (await job.snapshot()).on_demand is True
