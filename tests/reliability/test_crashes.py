"""Crashes: a real daemon process killed with SIGKILL at seeded random moments, during
transfers, during ``complete()`` (the renames) and during ``cancel()`` (the deletions), and
started again each time. Nothing handed to it is lost or corrupted.

Each test prints its seed; ``BITSD_SEED=N`` replays it, ``BITSD_LONG=1`` runs more kills.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import http.client
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bitsd import JobState, Priority, codes
from bitsd.aio import connect
from tests.client.daemon import fault_server, http_json, short_tmp
from tests.reliability.conftest import Held
from tests.reliability.procs import (
    LONG,
    KillableDaemon,
    final_names,
    kernel_in_flight,
    sha256,
    temp_files,
)
from tests.servers.faulty import Fault, FaultServer, RequestRecord

pytestmark = pytest.mark.e2e

KIB, MIB = 1024, 1024 * 1024
CHECKPOINT_BYTES = 1 * MIB
# Bytes a kill may cost beyond the last checkpoint and the kernel's socket buffers (measured
# just before the kill): a read chunk, aiohttp's and uvicorn's buffers, what moved between the
# measurement and the kill.
SLACK = 512 * KIB
DAEMON_CONFIG = (
    f"checkpoint_bytes = {CHECKPOINT_BYTES}\n"
    "chunk_size = 65536\n"
    "notify_retry_interval = 0.2\n"
    "max_jobs_per_user = 0\n"
)  # file_concurrency stays the default (8): kills cut several files' transfers at once

# The storm's job: 50 files from 1 KiB to 50 MiB (sizes in a geometric series, ~264 MB in
# all), in a fixed shuffled order, each a different slice of one random block.
STORM_FILES = 50
STORM_SIZES = [round(KIB * (50 * KIB) ** (i / (STORM_FILES - 1))) for i in range(STORM_FILES)]
random.Random(0).shuffle(STORM_SIZES)
STORM_KILLS = 100 if LONG else 20
# Bytes per second per response while the storm lasts, so that kills land mid-transfer (the
# daemon transfers up to 8 files of a job at once: EngineConfig.file_concurrency).
STORM_RATE = 1_500_000


def _storm_data() -> list[memoryview]:
    block = memoryview(random.Random(1).randbytes(max(STORM_SIZES) + 4099 * STORM_FILES))
    return [block[i * 4099 : i * 4099 + size] for i, size in enumerate(STORM_SIZES)]


class Arrivals:
    """The job's callback object in the test process: counts ``job_transferred`` calls."""

    def __init__(self) -> None:
        self.transferred = 0
        self.event = asyncio.Event()

    async def job_transferred(self, job: object) -> None:
        self.transferred += 1
        self.event.set()

    async def job_error(self, job: object, error: object) -> None:
        raise AssertionError(f"job_error: {error}")


def _range_start(record: RequestRecord) -> int:
    assert record.range is not None, record
    assert record.range.startswith("bytes="), record
    return int(record.range.removeprefix("bytes=").split("-")[0])


def fetched_twice(records: list[RequestRecord]) -> list[int]:
    """Bytes each request fetched again of what earlier requests already sent (from the
    server's log); a gap (bytes never sent) fails at once."""
    again = []
    end = 0
    for record in (r for r in records if r.method == "GET"):
        start = _range_start(record)
        assert start <= end, f"a request skipped bytes {end}-{start}: {record}"
        again.append(end - start)
        end = start + record.bytes_sent
    return again


async def test_kill_storm_loses_and_corrupts_nothing(seed: int, held: Held) -> None:
    """SIGKILL the daemon at seeded random moments while a 50-file job transfers (some kills
    during start-up), restarting it each time: at each restart every byte the job reports is on
    disk and right; at the end every file is byte-identical, the progress is the truth, no kill
    cost more than one checkpoint interval of refetched bytes (beyond what sat in the kernel's
    socket buffers when it died), and the job_transferred callback registered from this
    process through the event stream arrived."""
    rng = random.Random(seed)
    data = _storm_data()
    names = [f"f{i:02d}-{len(d)}" for i, d in enumerate(data)]
    total = sum(STORM_SIZES)
    with fault_server() as server, short_tmp() as root:
        port = int(server.base_url.rsplit(":", 1)[1])
        dest = root / "dest"
        dest.mkdir()
        for name, body in zip(names, data, strict=True):
            server.add(f"/{name}", bytes(body))
            server.set_fault(f"/{name}", Fault(rate=STORM_RATE))
        daemon = KillableDaemon(root, DAEMON_CONFIG)
        await asyncio.to_thread(daemon.start)
        arrivals = Arrivals()
        sizes = {f"/{n}": len(d) for n, d in zip(names, data, strict=True)}
        # Per kill of a transferring daemon: (indexes of the requests it cut in the server's
        # log, bytes in the kernel's buffers just before the kill).
        cuts: list[tuple[list[int], int]] = []
        kills = startup_kills = restarts = checked = 0
        async with await connect(socket_path=daemon.socket, autostart=False) as manager:
            job = await manager.create_job("kill storm")
            await job.set_priority(Priority.FOREGROUND)
            await job.set_minimum_retry_delay(5)
            await job.add_file_set([(server.url(f"/{n}"), str(dest / n)) for n in names])
            await job.set_notify_interface(arrivals)
            await job.resume()
            while kills < STORM_KILLS:
                await asyncio.sleep(rng.uniform(0.05, 0.7))
                if await job.get_state() is JobState.TRANSFERRING:
                    cuts.append((_unfinished(server.requests, sizes), kernel_in_flight(port)))
                daemon.kill()
                kills += 1
                if rng.random() < 0.3:  # a kill during start-up (recovery, opening the store)
                    daemon.spawn()
                    await asyncio.sleep(rng.uniform(0.0, 0.8))
                    daemon.kill()
                    kills += 1
                    startup_kills += 1
                await asyncio.to_thread(daemon.start)
                restarts += 1
                checked += await _check_reported_bytes(job, data)

            assert len(cuts) >= STORM_KILLS // 2, "the job was not transferring for the storm"
            for name in names:
                server.clear_fault(f"/{name}")
            await asyncio.wait_for(arrivals.event.wait(), 120)
            assert await job.get_state() is JobState.TRANSFERRED
            progress = await job.get_progress()
            assert (progress.bytes_total, progress.bytes_transferred) == (total, total)
            assert (progress.files_total, progress.files_transferred) == (50, 50)
            for info, body in zip(await job.files(), data, strict=True):
                assert info.progress.completed
                assert info.progress.bytes_transferred == info.progress.bytes_total == len(body)
            assert await job.complete() == codes.S_OK

        assert temp_files(dest) == []
        for name, body in zip(names, data, strict=True):
            assert sha256((dest / name).read_bytes()) == sha256(body), f"{name} (seed {seed})"
        worst = 0
        for indexes, in_flight in cuts:
            for index in indexes:
                again = _refetched_after(server.requests, index)
                assert again <= CHECKPOINT_BYTES + in_flight + SLACK, (index, in_flight, seed)
                worst = max(worst, again - in_flight)
        most_in_flight = max(in_flight for _, in_flight in cuts)
        for name in names:  # no gap in any file's requests, no refetch beyond the bound
            twice = fetched_twice(server.requests_for(f"/{name}"))
            assert max(twice) <= CHECKPOINT_BYTES + most_in_flight + SLACK, (name, seed)
        log = daemon.log_text()
        assert daemon.stop() == 0
        assert daemon.helpers_killed > 0, "no kill found a splice helper at work"
    for bad in ("event=http.bug", "unexpected failure", "Traceback"):
        assert bad not in log
    held(
        "crashes",
        f"kill storm: a 50-file job (1 KiB-50 MiB, {total // MIB} MiB) through a daemon process "
        f"killed with SIGKILL at seeded random moments ({kills} kills: {len(cuts)} "
        f"mid-transfer, {startup_kills} during start-up; the seed is printed, BITSD_SEED "
        f"replays): after each of {restarts} restarts every byte reported for a file was on "
        f"disk and right ({checked} files checked); every file SHA-256-identical; progress "
        f"equal to the truth; a kill cost at most {worst} refetched bytes beyond the kernel's "
        f"socket buffers (checkpoint interval {CHECKPOINT_BYTES}; server's request log; up to "
        f"8 files in transfer at once); the splice helper process died with the daemon "
        f"({daemon.helpers_killed} helpers); "
        f"job_transferred arrived in the test process through the event stream "
        f"({arrivals.transferred}x)",
        kills,
    )


def _unfinished(requests: list[RequestRecord], sizes: dict[str, int]) -> list[int]:
    """Indexes of the GET requests whose answer is still going out."""
    return [
        i
        for i, r in enumerate(requests)
        if r.method == "GET"
        and r.status in (0, 206)
        and r.bytes_sent < sizes[r.path] - _range_start(r)
    ]


def _refetched_after(requests: list[RequestRecord], index: int) -> int:
    """Bytes the next request for the same file fetched again of what request ``index`` (cut
    by a kill) had sent."""
    cut = requests[index]
    later = (r for r in requests[index + 1 :] if r.path == cut.path and r.method == "GET")
    following = next(later, None)
    if following is None:
        return 0
    return max(0, _range_start(cut) + cut.bytes_sent - _range_start(following))


async def _check_reported_bytes(job: Any, data: list[memoryview]) -> int:
    """Every byte the restarted daemon reports for a file is in its temporary file and equal
    to the source; returns how many files were checked."""
    checked = 0
    for info, body in zip(await job.files(), data, strict=True):
        count = info.progress.bytes_transferred
        if count == 0:
            continue
        assert _head(info.temporary_name, count) == body[:count], info
        if info.progress.completed:
            assert count == len(body)
        checked += 1
    return checked


def _head(path: str, count: int) -> bytes:
    with open(path, "rb") as f:
        return f.read(count)


# -- kills during complete() and cancel() ----------------------------------------------------

ROUNDS = 20 if LONG else 4
# The renames of Complete take a few milliseconds: more kills to land some inside them.
COMPLETE_ROUNDS = 30 if LONG else 7
ROUND_FILES = 200


def _job_of_small_files(
    daemon: KillableDaemon,
    server: FaultServer,
    dest: Path,
    rng: random.Random,
    tag: str,
    count: int = ROUND_FILES,
) -> tuple[str, dict[str, bytes]]:
    """A FOREGROUND job of ``count`` files of 1-64 KiB, resumed; its id and the files'
    bodies."""
    bodies = {f"s{i:03d}": rng.randbytes(rng.randint(KIB, 64 * KIB)) for i in range(count)}
    for name, body in bodies.items():
        server.add(f"/{tag}/{name}", body)
    status, job = http_json(daemon.socket, "POST", "/v1/jobs", {"display_name": tag})
    assert status == 201, job
    files = [
        {"remote_name": server.url(f"/{tag}/{n}"), "local_name": str(dest / n)} for n in bodies
    ]
    jid = job["id"]
    assert http_json(daemon.socket, "POST", f"/v1/jobs/{jid}/files", {"files": files})[0] == 200
    patch = {"priority": "FOREGROUND", "minimum_retry_delay": 5}
    assert http_json(daemon.socket, "PATCH", f"/v1/jobs/{jid}", patch)[0] == 200
    assert http_json(daemon.socket, "POST", f"/v1/jobs/{jid}/resume")[0] == 200
    return jid, bodies


def _wait_state(daemon: KillableDaemon, jid: str, states: str) -> str:
    status, body = http_json(
        daemon.socket, "GET", f"/v1/jobs/{jid}/wait?states={states}&timeout=30", timeout=40
    )
    assert status == 200, body
    return str(body["state"])


@dataclasses.dataclass
class _Window:
    """Seconds after the call within which a kill lands in the middle of the operation: each
    delay is drawn (seeded) between ``low`` and ``high``; a kill that came before any file was
    touched raises ``low``, one after all of them lowers ``high``, so later kills land inside
    the operation more often."""

    low: float
    high: float

    def pick(self, rng: random.Random) -> float:
        return rng.uniform(self.low, self.high)

    def narrow(self, delay: float, *, early: bool, late: bool) -> None:
        if early:
            self.low = delay
        elif late:
            self.high = delay


def _kill_during(daemon: KillableDaemon, call: Callable[[], object], delay: float) -> None:
    """Start ``call`` in a thread and SIGKILL the daemon ``delay`` seconds later."""

    def run() -> None:
        with contextlib.suppress(OSError, http.client.HTTPException):
            call()  # the daemon may die under the request

    thread = threading.Thread(target=run)
    thread.start()
    time.sleep(delay)
    daemon.kill()
    thread.join(10)


def test_kills_during_complete_leave_each_file_whole_or_absent(seed: int, held: Held) -> None:
    """SIGKILL the daemon at a seeded random moment during ``complete()`` of 200 finished
    files: each final name then holds the whole file or nothing, never part of one; after the
    restart ``complete()`` (again, if it had not finished) leaves every file byte-identical
    and no temporary file."""
    rng = random.Random(seed)
    with fault_server() as server, short_tmp() as root:
        daemon = KillableDaemon(root, DAEMON_CONFIG)
        daemon.start()
        window = _Window(0.0, 0.0)
        partial_rounds = []
        for round_no in range(COMPLETE_ROUNDS + 1):
            dest = root / f"dest{round_no}"
            dest.mkdir()
            jid, bodies = _job_of_small_files(daemon, server, dest, rng, f"c{round_no}")
            assert _wait_state(daemon, jid, "TRANSFERRED,ERROR") == "TRANSFERRED"

            def complete(jid: str = jid) -> tuple[int, Any]:
                return http_json(daemon.socket, "POST", f"/v1/jobs/{jid}/complete", timeout=30)

            if round_no == 0:  # calibration: how long Complete of the files takes here
                began = time.monotonic()
                status, ended = complete()
                assert (status, ended["hresult"], ended["state"]) == (200, 0, "ACKNOWLEDGED")
                window = _Window(0.0, (time.monotonic() - began) * 1.2)
            else:
                delay = window.pick(rng)
                _kill_during(daemon, complete, delay)
                present = final_names(dest)
                for name in present:
                    assert (dest / name).read_bytes() == bodies[name], f"{name} half-written"
                if 0 < len(present) < ROUND_FILES:
                    partial_rounds.append(len(present))
                window.narrow(delay, early=not present, late=len(present) == ROUND_FILES)
                daemon.start()
                status, _ = http_json(daemon.socket, "GET", f"/v1/jobs/{jid}")
                if status == 200:
                    assert complete()[0] == 200
                else:
                    assert status == 404, "the job vanished without Complete"
            assert temp_files(dest) == []
            for name, body in bodies.items():
                assert (dest / name).read_bytes() == body, name
        assert daemon.stop() == 0
    held(
        "crashes",
        f"SIGKILL during complete() of {ROUND_FILES} finished files, at seeded random moments "
        f"narrowed round by round to the renames' window ({COMPLETE_ROUNDS} kills, "
        f"{len(partial_rounds)} of them mid-rename, leaving "
        f"{sorted(partial_rounds)} of {ROUND_FILES} renamed): every final file whole or absent, "
        "never half-written; after the restart complete() finished the rest byte-identical with no "
        "temporary file left",
        COMPLETE_ROUNDS,
    )


def test_kills_during_cancel_leave_no_temporary_file(seed: int, held: Held) -> None:
    """SIGKILL the daemon at a seeded random moment during ``cancel()`` of a job with 199
    finished temporary files and one in transfer: no final file ever appears; after the
    restart (and cancel() again if the cancel had not been recorded) no temporary file is left
    and the job is gone."""
    rng = random.Random(seed)
    with fault_server() as server, short_tmp() as root:
        daemon = KillableDaemon(root, DAEMON_CONFIG)
        daemon.start()
        window = _Window(0.0, 0.0)
        partial_rounds = []
        for round_no in range(ROUNDS + 1):
            dest = root / f"dest{round_no}"
            dest.mkdir()
            tag = f"x{round_no}"
            server.add(f"/{tag}/big", rng.randbytes(16 * MIB))
            server.set_fault(f"/{tag}/big", Fault(rate=2_000_000))
            jid, _ = _job_of_small_files(daemon, server, dest, rng, tag, ROUND_FILES - 1)
            big = {"remote_name": server.url(f"/{tag}/big"), "local_name": str(dest / "big")}
            answer = http_json(daemon.socket, "POST", f"/v1/jobs/{jid}/files", {"files": [big]})
            assert answer[0] == 200, answer
            deadline = time.monotonic() + 30
            while (
                _progress(daemon, jid)["files_transferred"] < ROUND_FILES - 1
                or len(temp_files(dest)) < ROUND_FILES
            ):
                assert time.monotonic() < deadline
                time.sleep(0.05)

            def cancel(jid: str = jid) -> object:
                return http_json(daemon.socket, "POST", f"/v1/jobs/{jid}/cancel", timeout=30)

            if round_no == 0:
                began = time.monotonic()
                assert cancel()[0] == 200  # type: ignore[index]
                window = _Window(0.0, (time.monotonic() - began) * 1.2)
            else:
                delay = window.pick(rng)
                _kill_during(daemon, cancel, delay)
                left = len(temp_files(dest))
                if 0 < left < ROUND_FILES:
                    partial_rounds.append(left)
                window.narrow(delay, early=left == ROUND_FILES, late=not left)
                daemon.start()
                status, _ = http_json(daemon.socket, "GET", f"/v1/jobs/{jid}")
                if status == 200:  # the cancel was not recorded before the kill
                    assert cancel()[0] == 200  # type: ignore[index]
                assert http_json(daemon.socket, "GET", f"/v1/jobs/{jid}")[0] == 404
            assert temp_files(dest) == []
            assert final_names(dest) == []
        assert daemon.stop() == 0
    held(
        "crashes",
        f"SIGKILL during cancel() of a job with {ROUND_FILES} temporary files, one in "
        f"transfer, at seeded random moments narrowed round by round to the deletions' window "
        f"({ROUNDS} kills, {len(partial_rounds)} of them "
        "mid-deletion): after the restart no temporary file was left, no final file ever "
        "appeared, the job was gone",
        ROUNDS,
    )


def _progress(daemon: KillableDaemon, jid: str) -> dict[str, Any]:
    status, body = http_json(daemon.socket, "GET", f"/v1/jobs/{jid}")
    assert status == 200, body
    return dict(body["progress"])
