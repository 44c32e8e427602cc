"""A process killed with SIGKILL during a download loses nothing that was safely on disk."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from bitsd import JobState
from bitsd.aio import Engine
from tests.e2e.engine_child import CHECKPOINT_BYTES
from tests.servers.faulty import Fault, FaultServer

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


async def test_kill_during_transfer_then_restart_finishes_byte_identical(tmp_path: Path) -> None:
    """Kill -9 the engine's process mid-transfer; a new engine on the same state resumes from
    the last checkpoint (a Range request, not from zero) and the file is byte-identical."""
    import random

    data = random.Random(7).randbytes(6_000_000)
    state, dest = tmp_path / "state", tmp_path / "dest"
    dest.mkdir()
    with FaultServer.in_thread() as server:
        server.add("/big", data)
        server.set_fault("/big", Fault(rate=3_000_000))
        child = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.e2e.engine_child",
                str(state),
                server.url("/big"),
                str(dest / "big"),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert child.stdout is not None
        job_id = child.stdout.readline().split()[1]
        for line in child.stdout:
            if line.startswith("progress") and int(line.split()[1]) > 2_000_000:
                break
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        child.stdout.close()
        assert child.returncode == -signal.SIGKILL
        sent_before_kill = server.requests_for("/big")[0].bytes_sent
        server.clear_fault("/big")

        async with Engine(state) as engine:
            job = await engine.get_job(job_id)
            assert await job.wait((JobState.TRANSFERRED, JobState.ERROR), timeout=30) is (
                JobState.TRANSFERRED
            )
            await job.complete()
        second = server.requests_for("/big")[1]

    assert hashlib.sha256((dest / "big").read_bytes()).hexdigest() == (
        hashlib.sha256(data).hexdigest()
    )
    assert second.range is not None
    assert second.range.startswith("bytes=")
    resumed_at = int(second.range.removeprefix("bytes=").rstrip("-"))
    assert resumed_at > 0, "restarted from zero"
    fetched_twice = sent_before_kill - resumed_at
    # At most one checkpoint interval, plus what was in flight in socket buffers.
    assert fetched_twice <= CHECKPOINT_BYTES + 512 * 1024
