"""Fixtures of the engine tier: a real loopback fault server, an engine on a fake clock."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import bitsd._files
from bitsd import FakeClock, JobState, JobType
from bitsd._store import SqliteStore
from bitsd.aio import Engine, Job
from tests.servers.faulty import FaultServer
from tests.servers.tls import Pki

EngineFactory = Callable[..., contextlib.AbstractAsyncContextManager[Engine]]

DONE = (JobState.TRANSFERRED, JobState.ERROR)


@pytest.fixture
async def server(
    transport: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[FaultServer]:
    """A fault-injecting HTTP server on 127.0.0.1 in this test's event loop; HTTPS for the
    "raw-tls" transport, with a certificate from a private CA that the process trusts
    (``SSL_CERT_FILE``, which OpenSSL's default trust store reads)."""
    context = None
    if transport == "raw-tls":
        pki = Pki(tmp_path / "server-pki")
        monkeypatch.setenv("SSL_CERT_FILE", pki.ca_file)
        context = pki.server_context("127.0.0.1")
    async with FaultServer(ssl=context) as s:
        yield s


@pytest.fixture
def clock() -> FakeClock:
    """The engine's clock; tests move it with ``advance``."""
    return FakeClock()


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    """The destination folder of downloads."""
    d = tmp_path / "dest"
    d.mkdir()
    return d


@pytest.fixture
def tmpfs_folder() -> Iterator[Path]:
    """A new folder on a memory-backed file system (/dev/shm), removed after the test; the
    test is skipped where /dev/shm is missing or not tmpfs."""
    if not os.path.isdir("/dev/shm"):
        pytest.skip("needs /dev/shm")
    folder = Path(tempfile.mkdtemp(dir="/dev/shm"))
    try:
        if not bitsd._files.folder_memory_backed(str(folder)):
            pytest.skip("/dev/shm is not tmpfs here")
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    """The engine's state folder (kept across engine restarts within a test)."""
    return tmp_path / "state"


@pytest.fixture
def transport(request: pytest.FixtureRequest) -> str:
    """How downloads from the ``server`` fixture travel: "raw" (bitsd's own HTTP client over
    plain HTTP, zero-copy: the engine's default, bodies of ``splice.HELPER_MIN`` bytes and more
    spliced by the splice helper process), "raw-inloop" (the same, with every body spliced on
    the event loop's thread: ``splice_helper=False``), "raw-tls" (the same client over HTTPS)
    or "aiohttp" (``zero_copy=False``), or "bulk" (as "raw", with every job's plain-HTTP files
    of at most ``checkpoint_bytes`` fetched in a bulk by the splice helper, however few:
    ``bulkfetch.py``). Modules that pin several parametrize it indirectly."""
    return str(getattr(request, "param", "raw"))


@pytest.fixture
def make_engine(
    state_dir: Path, clock: FakeClock, transport: str, monkeypatch: pytest.MonkeyPatch
) -> EngineFactory:
    """Build engines on the same state folder and clock; keywords override the config."""
    if transport == "bulk":
        monkeypatch.setattr(bitsd._engine, "_BULK_MIN_FILES", 1)

    def factory(**overrides: Any) -> contextlib.AbstractAsyncContextManager[Engine]:
        settings: dict[str, Any] = {
            "checkpoint_bytes": 64 * 1024,
            "connect_timeout": 5.0,
            "read_timeout": 5.0,
            "chunk_size": 64 * 1024,
            "zero_copy": transport != "aiohttp",
            "splice_helper": transport != "raw-inloop",
        }
        settings.update(overrides)
        return Engine(state_dir, clock=clock, **settings)

    return factory


def body(size: int, seed: int = 1) -> bytes:
    """``size`` bytes of deterministic, non-repeating-looking content."""
    import random

    return random.Random(seed).randbytes(size)


async def settle(job: Job, states: tuple[JobState, ...] = DONE, timeout: float = 15) -> JobState:
    """Wait (real time, bounded) until ``job`` is in one of ``states``."""
    return await job.wait(states, timeout=timeout)


async def advance(clock: FakeClock, seconds: float) -> None:
    """Move the fake clock and let the engine's tasks react."""
    clock.advance(seconds)
    for _ in range(5):
        await asyncio.sleep(0)


def leftovers(folder: Path) -> list[str]:
    """Temporary files of bitsd left in ``folder``."""
    return sorted(p for p in os.listdir(folder) if p.endswith(bitsd._files.TEMP_SUFFIX))


async def jobs_of_every_kind(
    engine: Engine, server: FaultServer, dest: Path, tmp_path: Path
) -> tuple[Job, Job, Job, Job]:
    """Jobs whose files show every kind of listed value: TRANSFERRED (a file validated, one
    added with ranges), fresh (files of unknown size), on-demand (a range from the middle of
    one file held, another file untouched, SUSPENDED) and an upload (no filled ranges). Serves
    ``/a`` (50,000 bytes) and ``/b`` (40,000)."""
    server.add("/a", body(50_000))
    server.add("/b", body(40_000, 2))
    source = tmp_path / "up"
    source.write_bytes(b"x" * 10)
    done = await engine.create_job("transferred")
    await done.add_file(server.url("/a"), str(dest / "a"))
    await done.add_file_with_ranges(server.url("/b"), str(dest / "b"), [(0, 100), (1000, 10)])
    await done.resume()
    assert await settle(done) is JobState.TRANSFERRED
    await done.set_validation_state(0, True)
    fresh = await engine.create_job("fresh")
    await fresh.add_file_set([(server.url("/a"), str(dest / f"f{i}")) for i in range(3)])
    on_demand = await engine.create_job("on demand")
    await on_demand.set_on_demand(True)
    await on_demand.add_file(server.url("/a"), str(dest / "od"))
    await on_demand.add_file(server.url("/b"), str(dest / "od2"))
    await on_demand.request_file_ranges(0, [(1000, 500)])
    await on_demand.resume()
    assert await settle(on_demand, (JobState.SUSPENDED, JobState.ERROR)) is JobState.SUSPENDED
    upload = await engine.create_job("upload", JobType.UPLOAD)
    await upload.add_file("http://127.0.0.1:1/u", str(source))
    return done, fresh, on_demand, upload


class WritesSeen(SqliteStore):
    """The real store, noting the name of every write call."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.writes: list[str] = []

    def put_job(self, job: Any, files: Any = ()) -> None:
        self.writes.append("put_job")
        super().put_job(job, files)

    def put_files(self, files: Any) -> None:
        self.writes.append("put_files")
        super().put_files(files)

    def put_progress(self, files: Any) -> None:
        self.writes.append("put_progress")
        super().put_progress(files)

    def delete_job(self, job_id: str) -> None:
        self.writes.append("delete_job")
        super().delete_job(job_id)

    def put_notification(self, notification: Any) -> None:
        self.writes.append("put_notification")
        super().put_notification(notification)

    def delete_notification(self, job_id: str, kind: str) -> None:
        self.writes.append("delete_notification")
        super().delete_notification(job_id, kind)


class FileWritesSpy(SqliteStore):
    """The real store, showing the records of each ``put_files`` and ``put_progress`` call to
    :meth:`before` (which may raise, refusing the write) and, once written, to :meth:`after`.
    Spies override either."""

    def put_files(self, files: Any) -> None:
        self.before(files)
        super().put_files(files)
        self.after(files)

    def put_progress(self, files: Any) -> None:
        self.before(files)
        super().put_progress(files)
        self.after(files)

    def before(self, files: Any) -> None:
        pass

    def after(self, files: Any) -> None:
        pass


class CompletedWrites(FileWritesSpy):
    """The real store, noting the indexes of the completed files of each put_files and
    put_progress call."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.completed: list[list[int]] = []

    def before(self, files: Any) -> None:
        done = [f.index for f in files if f.completed]
        if done:
            self.completed.append(done)
