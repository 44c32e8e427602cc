"""Downloads end to end against a real loopback server: resume, remote changes, ranges."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pytest

from bitsd import ErrorContext, FakeClock, JobState, codes
from tests.engine.conftest import (
    EngineFactory,
    FileWritesSpy,
    advance,
    body,
    leftovers,
    settle,
)
from tests.servers.faulty import Fault, FaultServer

# The key download behaviours hold on every HTTP transport: bitsd's own client over HTTP
# (zero-copy: large bodies spliced by the splice helper process, or all on the event loop's
# thread) and over HTTPS, and aiohttp.
pytestmark = pytest.mark.parametrize(
    "transport", ["raw", "raw-inloop", "raw-tls", "aiohttp", "bulk"], indirect=True
)


async def test_download_completes_byte_identical(
    server: FaultServer, make_engine: EngineFactory, dest: Path
) -> None:
    """A job of two files reaches TRANSFERRED; Complete puts both at their final names."""
    a, b = body(300_000, 1), body(5, 2)
    server.add("/a.bin", a)
    server.add("/b.bin", b)
    async with make_engine() as engine:
        job = await engine.create_job("two files")
        await job.add_file_set(
            [
                (server.url("/a.bin"), str(dest / "a.bin")),
                (server.url("/b.bin"), str(dest / "b.bin")),
            ]
        )
        assert (dest / "a.bin").exists() is False
        await job.resume()
        assert await settle(job) is JobState.TRANSFERRED
        progress = await job.get_progress()
        assert (progress.bytes_total, progress.bytes_transferred) == (300_005, 300_005)
        assert (progress.files_total, progress.files_transferred) == (2, 2)
        assert (dest / "a.bin").exists() is False, "the final name appears only on Complete"
        times = await job.get_times()
        assert times.transfer_completion_time is not None
        assert await job.complete() == codes.S_OK
        assert await job.get_state() is JobState.ACKNOWLEDGED
    assert (dest / "a.bin").read_bytes() == a
    assert (dest / "b.bin").read_bytes() == b
    assert leftovers(dest) == []
    first = server.requests_for("/a.bin")[0]
    assert first.range == "bytes=0-"


async def test_empty_remote_file(
    server: FaultServer, make_engine: EngineFactory, dest: Path
) -> None:
    """A zero-byte remote file transfers as a zero-byte local file."""
    server.add("/empty", b"")
    async with make_engine() as engine:
        job = await engine.create_job("empty")
        await job.add_file(server.url("/empty"), str(dest / "empty"))
        await job.resume()
        assert await settle(job) is JobState.TRANSFERRED
        await job.complete()
    assert (dest / "empty").read_bytes() == b""


async def test_resume_after_drop_fetches_only_missing_bytes(
    server: FaultServer, make_engine: EngineFactory, dest: Path, clock: FakeClock
) -> None:
    """A connection cut mid-body is a transient error; the retry asks for the rest with Range
    and If-Range, so the bytes already on disk are not fetched again."""
    data = body(2_000_000)
    server.add("/big", data)
    server.set_fault("/big", Fault(drop_after=700_000, rate=4_000_000, times=1))
    async with make_engine() as engine:
        job = await engine.create_job("drop")
        await job.set_minimum_retry_delay(30)
        await job.add_file(server.url("/big"), str(dest / "big"))
        await job.resume()
        assert await settle(job, (JobState.TRANSIENT_ERROR,)) is JobState.TRANSIENT_ERROR
        err = await job.get_error()
        assert err.context is ErrorContext.GENERAL_TRANSPORT
        assert err.code == codes.BG_E_CONNECTION_CLOSED
        kept = (await job.get_progress()).bytes_transferred
        assert 0 < kept <= 700_000
        await advance(clock, 29)
        assert await job.get_state() is JobState.TRANSIENT_ERROR, "retried before the delay"
        await advance(clock, 1)
        assert await settle(job) is JobState.TRANSFERRED
        await job.complete()
    assert (dest / "big").read_bytes() == data
    first, second = server.requests_for("/big")
    assert second.range == f"bytes={kept}-"
    assert second.if_range == first.headers.get("if-range") or second.if_range is not None
    assert second.bytes_sent == len(data) - kept


async def test_changed_remote_restarts_that_file_from_zero(
    server: FaultServer, make_engine: EngineFactory, dest: Path, clock: FakeClock
) -> None:
    """When the remote file changes between attempts (new ETag), If-Range fails and the file
    restarts from zero with the new content; the result is the new file, never a mix."""
    old, new = body(1_000_000, 1), body(1_200_000, 2)
    server.add("/f", old)
    server.set_fault("/f", Fault(drop_after=400_000, rate=4_000_000, times=1))
    async with make_engine() as engine:
        job = await engine.create_job("changes")
        await job.set_minimum_retry_delay(5)
        await job.add_file(server.url("/f"), str(dest / "f"))
        await job.resume()
        await settle(job, (JobState.TRANSIENT_ERROR,))
        server.change("/f", new)
        await advance(clock, 5)
        assert await settle(job) is JobState.TRANSFERRED
        assert (await job.get_progress()).bytes_total == len(new)
        await job.complete()
    assert (dest / "f").read_bytes() == new
    retry = server.requests_for("/f")[1]
    assert retry.if_range is not None
    assert retry.status == 200


async def test_changed_size_without_validators_restarts(
    server: FaultServer, make_engine: EngineFactory, dest: Path, clock: FakeClock
) -> None:
    """With no ETag nor Last-Modified, a different size in Content-Range still reveals a change
    (BITS checks size and time stamp) and the file restarts from zero."""
    old, new = body(900_000, 3), body(950_000, 4)
    server.add("/nv", old, etag=None, last_modified=None)
    server.set_fault("/nv", Fault(drop_after=300_000, rate=4_000_000, times=1))
    async with make_engine() as engine:
        job = await engine.create_job("no validators")
        await job.set_minimum_retry_delay(5)
        await job.add_file(server.url("/nv"), str(dest / "nv"))
        await job.resume()
        await settle(job, (JobState.TRANSIENT_ERROR,))
        server.change("/nv", new)
        await advance(clock, 5)
        assert await settle(job) is JobState.TRANSFERRED
        await job.complete()
    assert (dest / "nv").read_bytes() == new
    ranges = [r.range for r in server.requests_for("/nv")]
    assert ranges[-1] == "bytes=0-"


async def test_server_ignoring_range_is_fatal_unless_dynamic(
    server: FaultServer, make_engine: EngineFactory, dest: Path
) -> None:
    """A server that answers 200 to a Range request fails the job with
    BG_E_INSUFFICIENT_RANGE_SUPPORT; with dynamic content the same server works."""
    data = body(100_000)
    server.add("/nr", data)
    server.set_fault("/nr", Fault(ignore_range=True))
    async with make_engine() as engine:
        job = await engine.create_job("no ranges")
        await job.add_file(server.url("/nr"), str(dest / "nr"))
        await job.resume()
        assert await settle(job) is JobState.ERROR
        err = await job.get_error()
        assert (err.code, err.context) == (
            codes.BG_E_INSUFFICIENT_RANGE_SUPPORT,
            ErrorContext.REMOTE_FILE,
        )
        await job.cancel()

        dyn = await engine.create_job("dynamic")
        await dyn.set_dynamic_content(True)
        await dyn.add_file(server.url("/nr"), str(dest / "nr"))
        await dyn.resume()
        assert await settle(dyn) is JobState.TRANSFERRED
        await dyn.complete()
    assert (dest / "nr").read_bytes() == data


async def test_missing_size_is_fatal_unless_dynamic(
    server: FaultServer, make_engine: EngineFactory, dest: Path
) -> None:
    """A chunked answer with no size fails with BG_E_MISSING_FILE_SIZE; a dynamic job takes it
    and reports SIZE_UNKNOWN as its total until the file is done."""
    data = body(70_000)
    server.add("/chunked", data)
    server.set_fault("/chunked", Fault(no_content_length=True))
    async with make_engine() as engine:
        job = await engine.create_job("chunked")
        await job.add_file(server.url("/chunked"), str(dest / "c"))
        assert (await job.get_progress()).bytes_total == codes.SIZE_UNKNOWN
        await job.resume()
        assert await settle(job) is JobState.ERROR
        assert (await job.get_error()).code == codes.BG_E_MISSING_FILE_SIZE
        await job.cancel()

        dyn = await engine.create_job("chunked dynamic")
        await dyn.set_dynamic_content(True)
        await dyn.add_file(server.url("/chunked"), str(dest / "c"))
        await dyn.resume()
        assert await settle(dyn) is JobState.TRANSFERRED
        assert (await dyn.get_progress()).bytes_total == len(data)
        await dyn.complete()
    assert (dest / "c").read_bytes() == data


async def test_suspend_keeps_progress_and_resume_continues(
    server: FaultServer, make_engine: EngineFactory, dest: Path
) -> None:
    """Suspend mid-transfer checkpoints what was written; Resume continues with a Range from
    there instead of starting again."""
    data = body(3_000_000)
    server.add("/slow", data)
    server.set_fault("/slow", Fault(rate=3_000_000))
    async with make_engine() as engine:
        job = await engine.create_job("suspend")
        await job.add_file(server.url("/slow"), str(dest / "slow"))
        await job.resume()
        await settle(job, (JobState.TRANSFERRING,))
        while (await job.get_progress()).bytes_transferred < 500_000:
            await settle(job, (JobState.TRANSFERRING,))
            import asyncio

            await asyncio.sleep(0.02)
        await job.suspend()
        assert await job.get_state() is JobState.SUSPENDED
        held = (await job.get_progress()).bytes_transferred
        assert held > 0
        server.clear_fault("/slow")
        await job.resume()
        assert await settle(job) is JobState.TRANSFERRED
        await job.complete()
    assert (dest / "slow").read_bytes() == data
    assert server.requests_for("/slow")[-1].range == f"bytes={held}-"


async def test_local_paths_and_file_urls_are_copied(
    make_engine: EngineFactory, dest: Path, tmp_path: Path
) -> None:
    """Absolute paths and file:// URLs are sources too (BITS copies from SMB paths)."""
    src = tmp_path / "src.bin"
    data = body(3_000_000, 9)
    src.write_bytes(data)
    async with make_engine() as engine:
        job = await engine.create_job("local")
        await job.add_file(str(src), str(dest / "one"))
        await job.add_file(src.as_uri(), str(dest / "two"))
        await job.resume()
        assert await settle(job) is JobState.TRANSFERRED
        await job.complete()
    for name in ("one", "two"):
        assert hashlib.sha256((dest / name).read_bytes()).digest() == hashlib.sha256(data).digest()


async def test_missing_local_source_is_a_remote_file_error(
    make_engine: EngineFactory, dest: Path, tmp_path: Path
) -> None:
    """A local source that does not exist fails with ERROR_FILE_NOT_FOUND in REMOTE_FILE."""
    async with make_engine() as engine:
        job = await engine.create_job("missing")
        await job.add_file(str(tmp_path / "nope"), str(dest / "x"))
        await job.resume()
        assert await settle(job) is JobState.ERROR
        err = await job.get_error()
        assert (err.code, err.context) == (codes.HRESULT_FROM_WIN32(2), ErrorContext.REMOTE_FILE)
        assert err.file is not None
        assert err.file.local_name == str(dest / "x")


class _CheckpointsSeen(FileWritesSpy):
    """The real store, noting at each write of a file's record the bytes it stores and the
    bytes its temporary file holds at that moment."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.seen: list[tuple[int, int]] = []

    def before(self, files: Any) -> None:
        for record in files:
            if os.path.exists(record.temp_name):
                self.seen.append((record.bytes_transferred, os.path.getsize(record.temp_name)))


async def test_a_crash_fetches_again_at_most_the_checkpoint_interval(
    server: FaultServer, make_engine: EngineFactory, dest: Path, state_dir: Path
) -> None:
    """No transport writes more than ``checkpoint_bytes`` past the last stored checkpoint
    before the next one is stored, whatever its steps (1 MiB splice steps, the splice helper's
    window, TLS buffers, aiohttp's chunks): when each checkpoint is stored, the temporary file
    holds at most ``checkpoint_bytes`` beyond the one before, so a crash at any moment makes
    bitsd fetch again at most that."""
    interval = 300_000  # a multiple of no transport's step
    data = body(3_000_000, 7)
    server.add("/ck", data)
    os.mkdir(state_dir)
    store = _CheckpointsSeen(state_dir / "jobs.sqlite")
    try:
        async with make_engine(store=store, checkpoint_bytes=interval) as engine:
            job = await engine.create_job("checkpoints")
            await job.add_file(server.url("/ck"), str(dest / "ck"))
            await job.resume()
            assert await settle(job) is JobState.TRANSFERRED
            await job.complete()
    finally:
        store.close()
    assert (dest / "ck").read_bytes() == data
    stored = [0]
    for checkpointed, held in store.seen:
        assert held - stored[-1] <= interval, (held, stored[-1], store.seen)
        stored.append(checkpointed)
    assert len(stored) > len(data) // interval  # one checkpoint per interval at least
