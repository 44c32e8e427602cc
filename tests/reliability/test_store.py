"""The job store: a process killed in the middle of a transaction leaves a usable store (WAL,
synchronous=FULL); a store the daemon cannot use (garbage, truncated, a damaged page, a newer
schema) makes it refuse to start, with a clear message, exit status 4 and a copy of the file,
and never start empty over it.

Each randomised test prints its seed; ``BITSD_SEED=N`` replays it, ``BITSD_LONG=1`` runs more
kills.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import re
import signal
import sqlite3
import stat
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bitsd._enums import JobState, JobType
from bitsd._model import FileRecord, JobRecord
from bitsd._store import SCHEMA_VERSION, SqliteStore
from bitsd.aio import Engine
from bitsd.daemon.cli import EXIT_STORE
from bitsd.daemon.store_copy import copy_aside
from tests.client.daemon import short_tmp
from tests.reliability.conftest import Held
from tests.reliability.procs import LONG, KillableDaemon

pytestmark = pytest.mark.e2e

KILLS = 100 if LONG else 25
FILES_PER_TRANSACTION = 20


def _writer(path: Path, report: int) -> None:
    """The child: commit transactions as fast as it can until killed. Transaction n puts the
    job with description n and its 20 files whose remote names end in /n, then reports n."""
    store = SqliteStore(path)
    snapshot = store.load()
    n = int(snapshot.jobs[0].description) if snapshot.jobs else 0
    while True:
        n += 1
        job = JobRecord(
            id="j",
            display_name="wal",
            type=JobType.DOWNLOAD,
            state=JobState.SUSPENDED,
            creation_time=0.0,
            modification_time=float(n),
            description=str(n),
        )
        files = [
            FileRecord("j", i, f"http://h/{i}/{n}", f"/tmp/f{i}", f"/tmp/.f{i}")
            for i in range(FILES_PER_TRANSACTION)
        ]
        store.put_job(job, files)
        os.write(report, f"{n}\n".encode())


def test_kills_mid_transaction_leave_a_usable_store(tmp_path: Path, seed: int, held: Held) -> None:
    """A forked writer commits transactions in a tight loop and is SIGKILLed at seeded random
    moments (almost always inside a transaction): each time the store opens (quick_check), is
    consistent (integrity_check), holds every transaction reported committed (durable) and
    exactly one whole transaction's rows (atomic: the job and its 20 files agree)."""
    rng = random.Random(seed)
    path = tmp_path / "jobs.sqlite"
    reported = 0
    for _ in range(KILLS):
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: never returns into pytest
            try:
                os.close(read_end)
                _writer(path, write_end)
            finally:
                os._exit(1)
        os.close(write_end)
        wanted = rng.randint(1, 60)
        committed = 0
        with os.fdopen(read_end, "rb") as lines:
            while committed < wanted:
                line = lines.readline()
                assert line, "the writer died by itself"
                committed = int(line)
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            for line in lines:  # reported between the last read and the kill
                committed = int(line)
        reported = committed
        store = SqliteStore(path)
        try:
            snapshot = store.load()
        finally:
            store.close()
        (job,) = snapshot.jobs
        stored = int(job.description)
        assert reported <= stored <= reported + 1, (reported, stored, seed)
        names = {f.remote_name.rsplit("/", 1)[1] for f in snapshot.files["j"]}
        assert names == {str(stored)}, (stored, names, seed)
        assert len(snapshot.files["j"]) == FILES_PER_TRANSACTION
        with sqlite3.connect(path) as db:
            assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    held(
        "store",
        f"a writer SIGKILLed at seeded random moments inside its transactions ({KILLS} kills, "
        f"{reported} transactions): the sqlite store (WAL, synchronous=FULL) always opened, "
        "passed integrity_check, kept every transaction reported committed and never half a "
        "transaction",
        KILLS,
    )


# -- a store the daemon cannot use -------------------------------------------------------------


def _garbage(path: Path) -> None:
    path.write_bytes(random.Random(5).randbytes(path.stat().st_size))


def _truncated(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _damaged_page(path: Path) -> None:
    data = bytearray(path.read_bytes())
    page = 4096
    data[2 * page : 3 * page] = random.Random(6).randbytes(page)
    path.write_bytes(bytes(data))


def _newer_schema(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    db.close()


DAMAGE: dict[str, Callable[[Path], None]] = {
    "garbage bytes": _garbage,
    "truncated to half": _truncated,
    "a damaged page": _damaged_page,
    "a newer schema version": _newer_schema,
}


async def _store_with_jobs(state: Path, count: int) -> None:
    async with Engine(state) as engine:
        for i in range(count):
            job = await engine.create_job(f"job {i}")
            await job.add_file("http://127.0.0.1:9/f", f"/tmp/bitsd-reliability-{i}")


def _run_daemon(daemon: KillableDaemon) -> int:
    """Start the daemon and wait for it to exit by itself; its exit status."""
    daemon.spawn()
    assert daemon.proc is not None
    try:
        return daemon.proc.wait(30)
    except subprocess.TimeoutExpired:
        daemon.kill()
        raise AssertionError(f"the daemon started over a bad store: {daemon.log_text()}") from None


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("damage", list(DAMAGE), ids=list(DAMAGE))
def test_daemon_refuses_a_store_it_cannot_use(damage: str, held: Held) -> None:
    """The daemon process over a damaged store exits with status 4 and a message naming the
    store and a copy; the copy (mode 0600) holds the damaged bytes; the store is untouched;
    the socket is removed and the lock released. For garbage bytes also: a second start
    refuses again without a second copy, and moving the store away starts a daemon with no
    jobs."""
    with short_tmp() as root:
        daemon = KillableDaemon(root)
        asyncio.run(_store_with_jobs(daemon.state_dir, 40))
        store = daemon.state_dir / "jobs.sqlite"
        DAMAGE[damage](store)
        before = _sha(store)

        assert _run_daemon(daemon) == EXIT_STORE
        log = daemon.log_text()
        match = re.search(r"a copy is at (\S+jobs\.sqlite\.corrupt-\d{8}T\d{6}Z)\. ", log)
        assert match, log
        copy = Path(match[1])
        assert "bitsd: the job store is unusable: BG_E_DATABASE_CORRUPT" in log
        assert f"move {store} away to start with no jobs" in log
        assert "event=store.refused" in log
        assert _sha(store) == before, "the store was changed"
        assert _sha(copy) == before
        assert stat.S_IMODE(copy.stat().st_mode) == 0o600
        assert not daemon.socket.exists()
        if damage == "a newer schema version":
            assert f"newer than this bitsd understands ({SCHEMA_VERSION})" in log

        if damage == "garbage bytes":
            assert _run_daemon(daemon) == EXIT_STORE  # not 3: the lock was released
            assert sorted(daemon.state_dir.glob("jobs.sqlite.corrupt-*")) == [copy]
            assert _sha(store) == before
            store.rename(root / "moved-away.sqlite")
            daemon.start()
            assert daemon.stop() == 0
            assert not list(daemon.state_dir.glob("jobs.sqlite.corrupt-*-*"))
    extra = (
        "; started again: refused again, no second copy; with the store moved away the daemon "
        "started with no jobs"
        if damage == "garbage bytes"
        else ""
    )
    held(
        "store",
        f"a damaged job store ({damage}): the daemon refused to start (exit status 4) naming the "
        "store and a copy jobs.sqlite.corrupt-<time> (mode 0600, the same bytes); the store "
        f"itself untouched, never started empty over{extra}",
    )


def test_copy_aside_keeps_the_wal_and_makes_no_duplicates(tmp_path: Path, held: Held) -> None:
    """The copy of a refused store takes its WAL too (committed changes may live there), is
    mode 0600, and is not made again while the store has not changed; a changed store gets a
    new copy."""
    store = tmp_path / "jobs.sqlite"
    store.write_bytes(b"main")
    Path(f"{store}-wal").write_bytes(b"wal")
    first = copy_aside(store, now=datetime(2026, 11, 25, 1, 2, 3, tzinfo=UTC))
    assert first.name == "jobs.sqlite.corrupt-20261125T010203Z"
    assert first.read_bytes() == b"main"
    assert Path(f"{first}-wal").read_bytes() == b"wal"
    assert {stat.S_IMODE(p.stat().st_mode) for p in (first, Path(f"{first}-wal"))} == {0o600}
    assert copy_aside(store) == first
    store.write_bytes(b"changed")
    second = copy_aside(store, now=datetime(2026, 11, 25, 1, 2, 3, tzinfo=UTC))
    assert second.name == "jobs.sqlite.corrupt-20261125T010203Z-2"
    assert second.read_bytes() == b"changed"
    held(
        "store",
        "the copy of a refused store includes its WAL, is mode 0600, is not duplicated while "
        "the store is unchanged",
    )
