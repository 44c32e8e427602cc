"""Bulks of small files (``bitsd._transfer.bulkfetch``) end to end: a real engine, its real
splice helper process, and a real loopback fault server; jobs of at least ``_BULK_MIN_FILES``
files, so the engine's own rule decides to fetch them in a bulk."""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import signal
import socket
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, Self

import pytest

import bitsd._engine
from bitsd import ErrorContext, FakeClock, JobState, NotifyFlags, SecurityFlags, codes
from bitsd._bulkrun import BulkRun
from bitsd._files import TEMP_SUFFIX
from bitsd._records import FileInfo
from bitsd._transfer.bulkfetch import Failed, Fetched, Outcome
from bitsd.aio import Engine, Job
from tests.engine.conftest import (
    CompletedWrites,
    EngineFactory,
    advance,
    body,
    leftovers,
    settle,
)
from tests.servers.faulty import Fault, FaultServer
from tests.servers.tls import Pki

# Seconds any wait for something the test cannot drive itself takes, at most.
_BOUND = 10.0


class BulkSpy:
    """Notes the positions each job run handed to its bulk (and the bulk took), in order and
    by hand-over, and the files whose bulk result the engine took (``Engine._bulk_landed``)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.handed: list[int] = []
        self.batches: list[list[int]] = []
        self.landed: list[tuple[int, Outcome]] = []
        hand_over = BulkRun.hand_over
        landed = Engine._bulk_landed

        async def spy_hand_over(
            run: BulkRun, positions: list[int], on_result: Callable[[int, Outcome], None]
        ) -> list[int]:
            refused = await hand_over(run, positions, on_result)
            self.batches.append([p for p in positions if p not in refused])
            self.handed.extend(self.batches[-1])
            return refused

        def spy_landed(engine: Engine, job_id: str, index: int, outcome: Fetched | Failed) -> None:
            self.landed.append((index, outcome))
            landed(engine, job_id, index, outcome)

        monkeypatch.setattr(BulkRun, "hand_over", spy_hand_over)
        monkeypatch.setattr(Engine, "_bulk_landed", spy_landed)


class ConnectionCounter:
    """A TCP proxy to a loopback server that counts the connections open through it at once.

    A connection counts from its accept until its client closes it; at each accept, the
    connections whose client has already shut down (POLLRDHUP, though the proxy has not read
    the end yet) no longer count, so a client that closes a connection and opens another is
    not counted twice.
    """

    def __init__(self, port: int) -> None:
        self._port = port
        self._open: set[socket.socket] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self.most = 0
        """Connections open at once, at most."""
        self.accepted = 0

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks)
        await self._server.wait_closed()

    def url(self, path: str) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}{path}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        sock = writer.get_extra_info("socket")
        # A socket the stream closed already (a reset) has no descriptor any more.
        self._open = {other for other in self._open if other.fileno() >= 0}
        poller = select.poll()
        for other in self._open:
            poller.register(other.fileno(), select.POLLRDHUP)
        ended = {fd for fd, _ in poller.poll(0)}
        self._open = {other for other in self._open if other.fileno() not in ended}
        self._open.add(sock)
        self.accepted += 1
        self.most = max(self.most, len(self._open))
        # The proxy's end cancels this task; the stream server's callback must not see it
        # cancelled (it logs that as an error).
        with contextlib.suppress(asyncio.CancelledError):
            await self._pipe(reader, writer, sock, task)

    async def _pipe(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        sock: socket.socket,
        task: asyncio.Task[None],
    ) -> None:
        upstream_writer: asyncio.StreamWriter | None = None
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(
                "127.0.0.1", self._port
            )
            pumps = [
                asyncio.create_task(_pump(reader, upstream_writer)),
                asyncio.create_task(_pump(upstream_reader, writer)),
            ]
            try:
                await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for pump in pumps:
                    pump.cancel()
                await asyncio.wait(pumps)
        finally:
            self._open.discard(sock)
            self._tasks.discard(task)
            for w in (writer, upstream_writer):
                if w is not None:
                    w.close()


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()


class FileOrder:
    """Records the files reported transferred (FileTransferred), by local name."""

    def __init__(self) -> None:
        self.files: list[str] = []

    async def file_transferred(self, job: Job, file: FileInfo) -> None:
        self.files.append(Path(file.local_name).name)


def serve(server: FaultServer, sizes: Sequence[int]) -> list[bytes]:
    """Serve files ``/f{i}`` of ``sizes``; returns their bodies."""
    data = [body(size, i + 1) for i, size in enumerate(sizes)]
    for i, d in enumerate(data):
        server.add(f"/f{i}", d)
    return data


async def fetch_job(
    engine: Engine,
    urls: Sequence[str],
    folder: Path,
    *,
    configure: Callable[[Job], Any] | None = None,
) -> Job:
    """A job of ``urls`` into ``folder/f{i}``, resumed."""
    await asyncio.to_thread(folder.mkdir, exist_ok=True)
    job = await engine.create_job(folder.name)
    if configure is not None:
        await configure(job)
    await job.add_file_set([(url, str(folder / f"f{i}")) for i, url in enumerate(urls)])
    await job.resume()
    return job


async def eventually(check: Callable[[], bool], what: str) -> None:
    """Wait (real time, bounded) until ``check()`` holds."""
    try:
        async with asyncio.timeout(_BOUND):
            while not check():
                await asyncio.sleep(0.005)
    except TimeoutError:
        pytest.fail(f"not within {_BOUND} s: {what}")


async def until_reported(job: Job, count: int) -> None:
    """Wait (real time, bounded) until ``count`` files of ``job`` are reported transferred."""
    try:
        async with asyncio.timeout(_BOUND):
            while (await job.get_progress()).files_transferred < count:
                await asyncio.sleep(0.005)
    except TimeoutError:
        pytest.fail(f"not within {_BOUND} s: {count} files reported")


def retry_delay(seconds: float) -> Callable[[Job], Awaitable[None]]:
    """A ``fetch_job`` set-up giving the job a minimum retry delay of ``seconds``."""

    async def configure(job: Job) -> None:
        await job.set_minimum_retry_delay(seconds)

    return configure


def helper_fds(engine: Engine) -> list[str]:
    """What the splice helper's descriptors point to (none while no helper runs)."""
    pid = engine._splice_helper.pid
    if pid is None:
        return []
    found = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(FileNotFoundError):
            found.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
    return found


def temp_files_held(engine: Engine, folder: Path) -> list[str]:
    """The temporary files in ``folder`` the splice helper holds a descriptor of."""
    return [
        target
        for target in helper_fds(engine)
        if target.startswith(str(folder)) and TEMP_SUFFIX in target
    ]


def port_of(server: FaultServer) -> int:
    """The port ``server`` listens on."""
    return int(server.base_url.rsplit(":", 1)[1])


def sent(server: FaultServer, path: str) -> int:
    """Body bytes the server sent for ``path``, over all its requests."""
    return sum(r.bytes_sent for r in server.requests_for(path))


async def test_small_files_come_in_one_request_each_within_the_file_concurrency(
    server: FaultServer, make_engine: EngineFactory, dest: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A job of 40 files, mostly at most the checkpoint interval (64 KiB here, fetched whole
    by the splice helper) and some larger (handed back to the per-file path with the answer
    begun; so is the empty one, whose answer is a 416), ends byte-identical; each file was
    asked for exactly once; and the helper's connections and the per-file path's together
    (counted by a proxy) never exceed the job's file concurrency."""
    spy = BulkSpy(monkeypatch)
    sizes = [0, 1, 65_535, 65_536, 65_537, 100_000, 150_000, 200_000, 250_000, 300_000]
    sizes += [(i * 7_919) % 65_536 for i in range(1, 31)]
    data = serve(server, sizes)
    async with (
        ConnectionCounter(port_of(server)) as proxy,
        make_engine(file_concurrency=4) as engine,
    ):
        job = await fetch_job(engine, [proxy.url(f"/f{i}") for i in range(40)], dest / "j")
        assert await settle(job) is JobState.TRANSFERRED
        assert engine._splice_helper.pid is not None
        progress = await job.get_progress()
        assert (progress.files_transferred, progress.bytes_transferred) == (40, sum(sizes))
        await job.complete()
    for i, d in enumerate(data):
        assert (dest / "j" / f"f{i}").read_bytes() == d, f"f{i}"
    assert [len(server.requests_for(f"/f{i}")) for i in range(40)] == [1] * 40
    assert sorted(spy.handed) == list(range(40)), "every file went in the bulk"
    whole = {i for i, outcome in spy.landed if isinstance(outcome, Fetched)}
    assert whole == {i for i, size in enumerate(sizes) if 0 < size <= 65_536}
    assert proxy.most <= 4, f"{proxy.most} connections at once ({proxy.accepted} in all)"


async def test_first_failure_in_order_is_the_per_file_paths_error(
    server: FaultServer, make_engine: EngineFactory, dest: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """File 7 of 30 answers 404: the job goes to ERROR naming file 7, with the code, context
    and messages the per-file path gives for the same job; files 0-6 are reported
    transferred (FileTransferred, and completed in ``files()``), no file after 7 is."""
    spy = BulkSpy(monkeypatch)
    data = serve(server, [1_000 + 997 * i for i in range(30)])
    server.set_fault("/f7", Fault(status=404))
    urls = [server.url(f"/f{i}") for i in range(30)]

    async def failing(engine: Engine, folder: Path) -> tuple[object, ...]:
        order = FileOrder()

        async def notify(job: Job) -> None:
            await job.set_notify_flags(NotifyFlags.FILE_TRANSFERRED)
            await job.set_notify_interface(order)

        job = await fetch_job(engine, urls, folder, configure=notify)
        assert await settle(job) is JobState.ERROR
        err = await job.get_error()
        assert err.file is not None
        assert err.file.local_name == str(folder / "f7")
        files = await job.files()
        assert [f.progress.completed for f in files] == [True] * 7 + [False] * 23
        assert (await job.get_progress()).files_transferred == 7
        await eventually(lambda: len(order.files) >= 7, "FileTransferred for files 0-6")
        await asyncio.sleep(0.05)  # room for a wrong one
        assert order.files == [f"f{i}" for i in range(7)]
        for i in range(7):
            temp = Path(files[i].temporary_name)
            assert await asyncio.to_thread(temp.read_bytes) == data[i]
        return (
            err.code,
            err.context,
            err.description,
            err.context_description,
            err.protocol,
            err.file.remote_name,
        )

    async with make_engine() as engine:
        in_bulk = await failing(engine, dest / "bulk")
        assert spy.handed, "no bulk"
        handed = len(spy.handed)
        monkeypatch.setattr(bitsd._engine, "_BULK_MIN_FILES", 10**9)
        per_file = await failing(engine, dest / "per-file")
        assert len(spy.handed) == handed
    assert in_bulk == per_file
    assert in_bulk[:2] == (codes.http_error(404), ErrorContext.REMOTE_FILE)


async def test_dropped_body_is_transient_and_the_retry_fetches_only_the_rest(
    server: FaultServer, make_engine: EngineFactory, dest: Path, clock: FakeClock
) -> None:
    """The last file of a bulk loses its connection after 20 000 of its 40 000 bytes: the job
    goes to TRANSIENT_ERROR (the connection closed) with those bytes kept, durable; after the
    retry delay it completes, the retry asking for the rest only (Range from 20 000), and no
    byte of any file was sent twice."""
    sizes = [3_000 + 101 * i for i in range(19)] + [40_000]
    data = serve(server, sizes)
    server.set_fault("/f19", Fault(drop_after=20_000, times=1))
    async with make_engine() as engine:
        job = await fetch_job(
            engine,
            [server.url(f"/f{i}") for i in range(20)],
            dest / "j",
            configure=retry_delay(30),
        )
        assert await settle(job, (JobState.TRANSIENT_ERROR,)) is JobState.TRANSIENT_ERROR
        err = await job.get_error()
        assert (err.code, err.context) == (
            codes.BG_E_CONNECTION_CLOSED,
            ErrorContext.GENERAL_TRANSPORT,
        )
        assert err.file is not None
        assert err.file.remote_name == server.url("/f19")
        files = await job.files()
        assert files[19].progress.bytes_transferred == 20_000
        temp = Path(files[19].temporary_name)
        assert await asyncio.to_thread(temp.read_bytes) == data[19][:20_000]
        assert (await job.get_progress()).files_transferred == 19
        await advance(clock, 29)
        assert await job.get_state() is JobState.TRANSIENT_ERROR, "retried before the delay"
        await advance(clock, 1)
        assert await settle(job) is JobState.TRANSFERRED
        await job.complete()
    for i, d in enumerate(data):
        assert (dest / "j" / f"f{i}").read_bytes() == d
    first, retry = server.requests_for("/f19")
    assert (first.range, retry.range) == ("bytes=0-", "bytes=20000-")
    assert [sent(server, f"/f{i}") for i in range(20)] == sizes


async def test_a_failure_mid_bulk_keeps_the_bytes_of_every_file_fetched(
    server: FaultServer,
    make_engine: EngineFactory,
    dest: Path,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """File 3 of 30 loses its connection mid-body while the bulk fetches the files after it:
    the retry asks for the rest of file 3 only, and each file the helper had fetched whole is
    confirmed (416) rather than fetched again; the job ends byte-identical."""
    spy = BulkSpy(monkeypatch)
    sizes = [9_000 + 17 * i for i in range(30)]
    sizes[3] = 50_000
    data = serve(server, sizes)
    # The cut comes 0.3 s after the 20 000 bytes: the files after file 3 are in by then.
    server.set_fault(
        "/f3", Fault(drop_after=20_000, stall_after=20_000, stall_seconds=0.3, times=1)
    )
    async with make_engine() as engine:
        job = await fetch_job(engine, [server.url(f"/f{i}") for i in range(30)], dest / "j")
        assert await settle(job, (JobState.TRANSIENT_ERROR,)) is JobState.TRANSIENT_ERROR
        fetched = {i for i, outcome in spy.landed if isinstance(outcome, Fetched)}
        assert max(fetched) > 3, "no file after file 3 finished early"
        assert (await job.files())[3].progress.bytes_transferred == 20_000
        await advance(clock, 600)
        assert await settle(job) is JobState.TRANSFERRED
        await job.complete()
    for i, d in enumerate(data):
        assert (dest / "j" / f"f{i}").read_bytes() == d
    assert [r.range for r in server.requests_for("/f3")] == ["bytes=0-", "bytes=20000-"]
    for i in fetched - {3}:
        requests = server.requests_for(f"/f{i}")
        assert sum(r.bytes_sent for r in requests) == sizes[i], f"f{i} fetched again"
        if len(requests) > 1:
            assert [r.status for r in requests[1:]] == [416], f"f{i}"


async def test_a_bulk_larger_than_its_window_is_handed_over_as_it_drains(
    server: FaultServer, make_engine: EngineFactory, dest: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With at most 3 files handed to the helper ahead of their results, a job of 24 small
    files is handed over a few at a time, in order, and completes byte-identical, each file
    asked for once."""
    monkeypatch.setattr(bitsd._engine, "_BULK_AHEAD", 3)
    spy = BulkSpy(monkeypatch)
    data = serve(server, [700 * i for i in range(24)])
    async with make_engine(file_concurrency=2) as engine:
        job = await fetch_job(engine, [server.url(f"/f{i}") for i in range(24)], dest / "j")
        assert await settle(job) is JobState.TRANSFERRED
        await job.complete()
    for i, d in enumerate(data):
        assert (dest / "j" / f"f{i}").read_bytes() == d
    assert spy.handed == list(range(24))
    assert max(len(batch) for batch in spy.batches) <= 3
    assert [len(server.requests_for(f"/f{i}")) for i in range(24)] == [1] * 24


async def test_retry_after_in_a_bulk_is_honoured_and_done_files_stay_done(
    server: FaultServer, make_engine: EngineFactory, dest: Path, clock: FakeClock
) -> None:
    """File 5 of 20 answers 503 with Retry-After: 120: TRANSIENT_ERROR, retried after 120 s
    (not the 5 s retry delay); the files before it, reported, are not asked for again."""
    data = serve(server, [2_000 + 13 * i for i in range(20)])
    server.set_fault("/f5", Fault(status=503, retry_after="120", times=1))
    async with make_engine() as engine:
        job = await fetch_job(
            engine,
            [server.url(f"/f{i}") for i in range(20)],
            dest / "j",
            configure=retry_delay(5),
        )
        assert await settle(job, (JobState.TRANSIENT_ERROR,)) is JobState.TRANSIENT_ERROR
        err = await job.get_error()
        assert err.code == codes.http_error(503)
        assert err.file is not None
        assert err.file.remote_name == server.url("/f5")
        assert (await job.get_progress()).files_transferred == 5
        await advance(clock, 119)
        assert await job.get_state() is JobState.TRANSIENT_ERROR
        await advance(clock, 1)
        assert await settle(job) is JobState.TRANSFERRED
        await job.complete()
    for i, d in enumerate(data):
        assert (dest / "j" / f"f{i}").read_bytes() == d
    assert [len(server.requests_for(f"/f{i}")) for i in range(5)] == [1] * 5
    assert [r.range for r in server.requests_for("/f5")] == ["bytes=0-", "bytes=0-"]


@pytest.mark.parametrize(
    "policy",
    [
        SecurityFlags.REDIRECT_POLICY_ALLOW_SILENT,
        SecurityFlags.REDIRECT_POLICY_ALLOW_REPORT,
        SecurityFlags.REDIRECT_POLICY_DISALLOW,
    ],
    ids=["allow-silent", "allow-report", "disallow"],
)
async def test_a_redirect_in_a_bulk_follows_the_jobs_redirect_policy(
    server: FaultServer,
    make_engine: EngineFactory,
    dest: Path,
    monkeypatch: pytest.MonkeyPatch,
    policy: SecurityFlags,
) -> None:
    """File 5 of 20 redirects (302): the bulk hands it back and the job's redirect policy
    applies: ALLOW_SILENT fetches the target and keeps the remote name, ALLOW_REPORT fetches
    it and records the final URL, DISALLOW fails the job naming file 5 (the target never
    asked for), after files 0-4."""
    spy = BulkSpy(monkeypatch)
    data = serve(server, [4_000 + 7 * i for i in range(20)])
    target = body(30_000, 99)
    server.add("/target", target)
    server.set_fault("/f5", Fault(status=302, location="/target"))
    async with make_engine() as engine:

        async def secure(job: Job) -> None:
            await job.set_security_flags(policy)

        job = await fetch_job(
            engine, [server.url(f"/f{i}") for i in range(20)], dest / "j", configure=secure
        )
        state = await settle(job)
        assert 5 in spy.handed
        files = await job.files()
        if policy is SecurityFlags.REDIRECT_POLICY_DISALLOW:
            assert state is JobState.ERROR
            err = await job.get_error()
            assert (err.code, err.context) == (
                codes.HRESULT_FROM_WIN32(302),
                ErrorContext.REMOTE_FILE,
            )
            assert err.file is not None
            assert err.file.local_name == str(dest / "j" / "f5")
            assert server.requests_for("/target") == []
            assert [f.progress.completed for f in files[:6]] == [True] * 5 + [False]
            return
        assert state is JobState.TRANSFERRED
        expected = server.url("/target" if policy else "/f5")
        assert files[5].remote_name == expected
        await job.complete()
    data[5] = target
    for i, d in enumerate(data):
        assert (dest / "j" / f"f{i}").read_bytes() == d
    assert len(server.requests_for("/target")) == 1


async def slow_bulk(
    server: FaultServer,
    engine: Engine,
    folder: Path,
    *,
    fast: int = 12,
    slow: int = 6,
    url: Callable[[str], str] | None = None,
) -> tuple[Job, list[bytes]]:
    """A job of ``fast`` small files then ``slow`` of 60 000 bytes sent at 30 000 bytes/s
    (from ``url(path)``, by default the server's), resumed; returns once the fast ones are
    reported and the splice helper holds a slow file's temporary file."""
    data = serve(server, [1_000 + i for i in range(fast)] + [60_000] * slow)
    for i in range(fast, fast + slow):
        server.set_fault(f"/f{i}", Fault(rate=30_000))
    url = url or server.url
    job = await fetch_job(engine, [url(f"/f{i}") for i in range(fast + slow)], folder)
    slow_temps = {f.temporary_name for f in (await job.files())[fast:]}
    await eventually(
        lambda: not slow_temps.isdisjoint(temp_files_held(engine, folder)),
        "the helper writes a slow file",
    )
    await until_reported(job, fast)
    return job, data


async def test_suspend_stops_the_bulk_and_resume_completes_it(
    server: FaultServer, make_engine: EngineFactory, dest: Path
) -> None:
    """Suspend while the splice helper is writing files of a bulk: once it returns the job is
    SUSPENDED and the helper (still the same process) holds no descriptor of the job's
    temporary files; the files reported before stay reported; Resume completes the job
    byte-identical without asking again for them."""
    async with make_engine() as engine:
        job, data = await slow_bulk(server, engine, dest / "j")
        pid = engine._splice_helper.pid
        await job.suspend()
        assert await job.get_state() is JobState.SUSPENDED
        assert engine._splice_helper.pid == pid, "the helper answered the cancel in time"
        assert temp_files_held(engine, dest / "j") == []
        progress = await job.get_progress()
        assert progress.files_transferred == 12
        assert progress.bytes_transferred >= sum(len(d) for d in data[:12])
        for i in range(12, 18):
            server.clear_fault(f"/f{i}")
        await job.resume()
        assert await settle(job) is JobState.TRANSFERRED
        await job.complete()
    for i, d in enumerate(data):
        assert (dest / "j" / f"f{i}").read_bytes() == d
    assert [len(server.requests_for(f"/f{i}")) for i in range(12)] == [1] * 12


async def test_cancel_during_a_bulk_leaves_no_temporary_file(
    server: FaultServer, make_engine: EngineFactory, dest: Path
) -> None:
    """Cancel while the splice helper is writing files of a bulk: no temporary file is left,
    the helper holds none, and none appears afterwards."""
    async with make_engine() as engine:
        job, _ = await slow_bulk(server, engine, dest / "j")
        assert leftovers(dest / "j") != []
        await job.cancel()
        assert leftovers(dest / "j") == []
        assert temp_files_held(engine, dest / "j") == []
        for _ in range(20):
            await asyncio.sleep(0.02)
            assert leftovers(dest / "j") == []
    assert os.listdir(dest / "j") == []


async def test_helper_killed_during_a_bulk_hands_its_files_back(
    server: FaultServer, make_engine: EngineFactory, dest: Path
) -> None:
    """The splice helper killed (SIGKILL) while it has files of a bulk (two under way, more
    waiting): the files it had are fetched again from their start by the per-file path, no
    more at once than the job's file concurrency (2); the job completes byte-identical
    without an error."""
    async with (
        ConnectionCounter(port_of(server)) as proxy,
        make_engine(file_concurrency=2) as engine,
    ):
        job, data = await slow_bulk(server, engine, dest / "j", slow=12, url=proxy.url)
        pid = engine._splice_helper.pid
        assert pid is not None
        for i in range(12, 24):
            server.clear_fault(f"/f{i}")
        os.kill(pid, signal.SIGKILL)
        assert await settle(job) is JobState.TRANSFERRED
        assert await job.get_error_count() == 0
        await job.complete()
    for i, d in enumerate(data):
        assert (dest / "j" / f"f{i}").read_bytes() == d
    again = [i for i in range(24) if len(server.requests_for(f"/f{i}")) > 1]
    assert again, "no file was under way in the helper"
    for i in again:
        assert [r.range for r in server.requests_for(f"/f{i}")] == ["bytes=0-", "bytes=0-"]
    assert proxy.most <= 2, f"{proxy.most} connections at once"


async def test_only_the_first_origins_plain_http_files_go_in_the_bulk(
    server: FaultServer,
    make_engine: EngineFactory,
    dest: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A job mixing file:// sources, an https origin and two plain-HTTP origins (the job's
    first plain-HTTP file on the first): the bulk takes that origin's files only; every file
    completes byte-identical, each asked for once."""
    spy = BulkSpy(monkeypatch)
    pki = Pki(tmp_path / "pki")
    monkeypatch.setenv("SSL_CERT_FILE", pki.ca_file)
    sources = tmp_path / "sources"
    sources.mkdir()
    kinds = ["file", "https", "first", "other", "first", "first", "other", "first"] * 4
    data = [body(2_000 + 31 * i, i) for i in range(len(kinds))]
    async with (
        FaultServer() as other,
        FaultServer(ssl=pki.server_context("127.0.0.1")) as secure,
    ):
        servers = {"first": server, "other": other, "https": secure}
        urls = []
        for i, (kind, d) in enumerate(zip(kinds, data, strict=True)):
            if kind == "file":
                (sources / f"f{i}").write_bytes(d)
                urls.append(f"file://{sources}/f{i}")
            else:
                servers[kind].add(f"/f{i}", d)
                urls.append(servers[kind].url(f"/f{i}"))
        async with make_engine() as engine:
            job = await fetch_job(engine, urls, dest / "j")
            assert await settle(job) is JobState.TRANSFERRED
            await job.complete()
        for i, kind in enumerate(kinds):
            if kind != "file":
                assert len(servers[kind].requests_for(f"/f{i}")) == 1, urls[i]
    for i, d in enumerate(data):
        assert (dest / "j" / f"f{i}").read_bytes() == d
    assert sorted(spy.handed) == [i for i, kind in enumerate(kinds) if kind == "first"]


async def test_files_the_bulk_finished_early_survive_a_restart(
    server: FaultServer,
    make_engine: EngineFactory,
    dest: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """File 0 of a bulk stalls while the helper fetches files 1-16: they cannot be reported
    before file 0, and the engine stops. Their bytes are kept: the restarted engine confirms
    each with one request (416, no body) instead of fetching it again, and the job completes
    byte-identical."""
    spy = BulkSpy(monkeypatch)
    data = serve(server, [5_000 + 3 * i for i in range(17)])
    server.set_fault("/f0", Fault(stall_before_headers=60))
    async with make_engine() as engine:
        job = await fetch_job(engine, [server.url(f"/f{i}") for i in range(17)], dest / "j")

        def early() -> bool:
            return {i for i, outcome in spy.landed if isinstance(outcome, Fetched)} == set(
                range(1, 17)
            )

        await eventually(early, "files 1-16 fetched by the bulk")
        assert (await job.get_progress()).files_transferred == 0
    server.clear_fault("/f0")
    async with make_engine() as engine:
        job = await engine.get_job(job.id)
        files = await job.files()
        assert [f.progress.bytes_transferred for f in files[1:]] == [len(d) for d in data[1:]]
        assert not any(f.progress.completed for f in files)
        await job.resume()
        assert await settle(job) is JobState.TRANSFERRED
        await job.complete()
    for i, d in enumerate(data):
        assert (dest / "j" / f"f{i}").read_bytes() == d
    for i in range(1, 17):
        _, confirm = server.requests_for(f"/f{i}")
        assert (confirm.range, confirm.status, confirm.bytes_sent) == (
            f"bytes={len(data[i])}-",
            416,
            0,
        )


async def test_progress_counts_only_bytes_on_disk(
    server: FaultServer, make_engine: EngineFactory, dest: Path
) -> None:
    """While a bulk runs, the job's progress never counts more bytes, nor files, than the
    temporary files already whole on disk hold, and never goes back; at the end it equals the
    job's totals."""
    sizes = [3_000 + i for i in range(10)] + [20_000 + i for i in range(20)]
    data = serve(server, sizes)
    for i in range(10, 30):
        server.set_fault(f"/f{i}", Fault(rate=100_000))
    async with make_engine() as engine:
        job = await fetch_job(engine, [server.url(f"/f{i}") for i in range(30)], dest / "j")
        temps = [Path(f.temporary_name) for f in await job.files()]
        samples = []
        while await job.get_state() is not JobState.TRANSFERRED:
            progress = await job.get_progress()
            whole = [
                size
                for temp, size in zip(temps, sizes, strict=True)
                if temp.exists() and temp.stat().st_size == size
            ]
            assert progress.bytes_transferred <= sum(whole)
            assert progress.files_transferred <= len(whole)
            samples.append(progress.bytes_transferred)
            await asyncio.sleep(0.005)
        assert samples == sorted(samples), "progress went back"
        assert any(0 < s < sum(sizes) for s in samples), "no sample while the bulk ran"
        progress = await job.get_progress()
        assert (progress.bytes_total, progress.bytes_transferred) == (sum(sizes), sum(sizes))
        assert (progress.files_total, progress.files_transferred) == (30, 30)
        await job.complete()
    for i, d in enumerate(data):
        assert (dest / "j" / f"f{i}").read_bytes() == d


async def test_files_on_the_per_file_path_and_in_a_bulk_share_the_file_concurrency(
    server: FaultServer,
    make_engine: EngineFactory,
    dest: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A run whose files 1-16 hold their bytes already (the per-file path confirms each with a
    416) and whose files 17-39 are new (they go in a bulk) keeps the connections of both
    paths to the one server within the job's file concurrency."""
    spy = BulkSpy(monkeypatch)
    data = serve(server, [5_000 + 3 * i for i in range(40)])
    server.set_fault("/f0", Fault(stall_before_headers=60))
    async with ConnectionCounter(port_of(server)) as proxy:
        urls = [proxy.url(f"/f{i}") for i in range(40)]
        async with make_engine(file_concurrency=4) as engine:
            job = await fetch_job(engine, urls[:17], dest / "j")

            def early() -> bool:
                return {i for i, outcome in spy.landed if isinstance(outcome, Fetched)} == set(
                    range(1, 17)
                )

            await eventually(early, "files 1-16 fetched by the bulk")
            await job.suspend()
            await job.add_file_set([(urls[i], str(dest / "j" / f"f{i}")) for i in range(17, 40)])
        server.clear_fault("/f0")
        proxy.most = 0
        async with make_engine(file_concurrency=4) as engine:
            job = await engine.get_job(job.id)
            await job.resume()
            assert await settle(job) is JobState.TRANSFERRED
            await job.complete()
        assert proxy.most <= 4, f"{proxy.most} connections at once"
    for i, d in enumerate(data):
        assert (dest / "j" / f"f{i}").read_bytes() == d


async def test_files_a_bulk_reports_close_together_are_stored_in_one_write(
    server: FaultServer,
    make_engine: EngineFactory,
    dest: Path,
    state_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Files of a bulk that become reportable within the publish delay of each other, while
    another file of the bulk is still in flight, are stored completed in one transaction (as
    on the per-file path), not one write per result; the last file is reported at once."""
    monkeypatch.setattr(bitsd._engine, "_PUBLISH_DELAY", 1.0)
    spy = BulkSpy(monkeypatch)
    data = serve(server, [3_000 + i for i in range(16)] + [60_000])
    for i in range(16):
        # Their answers come 20 ms apart: each would be a write of its own without the delay.
        server.set_fault(f"/f{i}", Fault(stall_before_headers=0.02 * i))
    server.set_fault("/f16", Fault(rate=20_000))  # about 3 s
    os.mkdir(state_dir)
    store = CompletedWrites(state_dir / "jobs.sqlite")
    try:
        async with make_engine(store=store, file_concurrency=17) as engine:
            job = await fetch_job(engine, [server.url(f"/f{i}") for i in range(17)], dest / "j")
            async with asyncio.timeout(_BOUND):
                while not store.completed:
                    await asyncio.sleep(0.01)
            assert store.completed == [list(range(16))]
            assert sent(server, "/f16") < 60_000, "the last file was still in flight"
            assert await settle(job) is JobState.TRANSFERRED
            assert store.completed == [list(range(16)), [16]]
            await job.complete()
    finally:
        store.close()
    assert sorted(spy.handed) == list(range(17)), "every file went in the bulk"
    assert {i for i, outcome in spy.landed if isinstance(outcome, Fetched)} == set(range(17))
    for i, d in enumerate(data):
        assert (dest / "j" / f"f{i}").read_bytes() == d
