"""A process killed with SIGKILL while several files of one job transfer at once: what the
store says is done is on disk and right, files are done in index order, and the job finishes
byte-identical after a restart."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from bitsd import JobState
from bitsd.aio import Engine
from tests.servers.faulty import Fault, FaultServer

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
COUNT = 40


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return b""


async def test_kill_during_concurrent_files_keeps_the_store_true(tmp_path: Path) -> None:
    """Kill -9 the engine while 8 files of a 40-file job are in flight; at restart the files
    recorded as transferred are a prefix of the job, each temporary file complete and right;
    files finished early keep at most their bytes; the job then ends byte-identical."""
    rng = random.Random(11)
    data = [rng.randbytes(rng.randrange(20_000, 300_000)) for _ in range(COUNT)]
    state, dest = tmp_path / "state", tmp_path / "dest"
    dest.mkdir()
    with FaultServer.in_thread() as server:
        for i, d in enumerate(data):
            server.add(f"/f{i}", d)
            server.set_fault(f"/f{i}", Fault(rate=400_000))
        child = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.e2e.many_child",
                str(state),
                server.url("").rstrip("/"),
                str(dest),
                str(COUNT),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert child.stdout is not None
        job_id = child.stdout.readline().split()[1]
        for line in child.stdout:
            if line.startswith("progress") and int(line.split()[1]) >= 10:
                break
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        child.stdout.close()
        assert child.returncode == -signal.SIGKILL
        for i in range(COUNT):
            server.clear_fault(f"/f{i}")

        async with Engine(state, file_concurrency=8) as engine:
            job = await engine.get_job(job_id)
            files = await job.files()
            done = [f.progress.completed for f in files]
            assert 10 <= done.count(True) < COUNT
            assert done == sorted(done, reverse=True), "completed files are not a prefix"
            for info, d in zip(files, data, strict=True):
                held = _read(info.temporary_name)
                if info.progress.completed:
                    assert held == d
                assert info.progress.bytes_transferred <= len(held)
                assert (
                    held[: info.progress.bytes_transferred] == d[: info.progress.bytes_transferred]
                )
            await job.resume()
            assert await job.wait((JobState.TRANSFERRED, JobState.ERROR), timeout=60) is (
                JobState.TRANSFERRED
            )
            await job.complete()
    for i, d in enumerate(data):
        assert (dest / f"f{i}").read_bytes() == d
