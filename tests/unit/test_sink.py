"""A file sink's share of the event loop (``bitsd._sink``): a transfer whose bytes keep coming
lets the loop's other tasks run once it has held the loop for ``_FAIR_SHARE`` seconds of real
time, and a short transfer (a small file) does not pay a turn of the loop for it."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

import pytest

import bitsd._sink
from bitsd import FakeClock
from bitsd._clock import Clock
from bitsd._model import FileRecord
from bitsd._policy import EngineConfig
from bitsd._sink import FileSink


class _Host:
    """What a sink needs of the engine, doing nothing."""

    def __init__(self) -> None:
        self.clock: Clock = FakeClock()
        self.config = EngineConfig()

    def _file_changed(self, record: FileRecord, *, durable: bool) -> None:
        pass

    def _connected(self, job_id: str) -> None:
        pass

    def _made_progress(self, job_id: str) -> None:
        pass

    def _file_renamed_remotely(self, job_id: str) -> None:
        pass


def _sink(folder: Path) -> FileSink:
    record = FileRecord("job", 0, "http://example.test/f", str(folder / "f"), str(folder / ".f"))
    return FileSink(_Host(), record)


async def _count_turns_during(work: object) -> int:
    """How many turns of the loop another task got while ``work`` (a coroutine) ran."""
    turns = 0

    async def ticker() -> None:
        nonlocal turns
        while True:
            await asyncio.sleep(0)
            turns += 1

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)  # the ticker is waiting for its next turn
    start = turns
    await work  # type: ignore[misc]
    during = turns - start
    task.cancel()
    return during


async def test_bytes_that_keep_coming_let_other_tasks_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each report after a share of the loop is used up yields once, whether the transport
    wrote the bytes itself (``advance``) or through the sink (``write``)."""
    seconds = itertools.count(step=bitsd._sink._FAIR_SHARE)  # a share passes between reads
    monkeypatch.setattr(bitsd._sink, "_now", lambda: float(next(seconds)))
    sink = _sink(tmp_path)

    async def transfer() -> None:
        for _ in range(10):
            await sink.advance(0)
        for _ in range(10):
            await sink.write(b"x")

    try:
        assert await _count_turns_during(transfer()) >= 20
    finally:
        sink.close()


async def test_a_transfer_within_its_share_does_not_yield(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bitsd._sink, "_now", lambda: 100.0)  # no time passes
    sink = _sink(tmp_path)

    async def transfer() -> None:
        for _ in range(10):
            await sink.write(b"x")

    try:
        assert await _count_turns_during(transfer()) == 0
    finally:
        sink.close()
    assert (tmp_path / ".f").read_bytes() == b"x" * 10
