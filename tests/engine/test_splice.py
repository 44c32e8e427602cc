"""The fast paths of issue 7: which transport the engine chooses (the zero-copy one only where it
behaves exactly like aiohttp), its keep-alive and redirect hand-over, and the files of one job
transferred several at once with BITS's observable order."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bitsd import ErrorContext, FileInfo, JobState, NotifyFlags, codes
from bitsd._transfer.base import FileRequest, HttpOptions
from bitsd._transfer.splice import SpliceTransport
from bitsd.aio import Job
from tests.engine.conftest import EngineFactory, body, settle
from tests.servers.faulty import Fault, FaultServer


def _request(url: str = "http://127.0.0.1:8000/f", **changes: object) -> FileRequest:
    options = {k: v for k, v in changes.items() if k in HttpOptions.__slots__}
    rest = {k: v for k, v in changes.items() if k not in HttpOptions.__slots__}
    return FileRequest(url, 0, None, None, options=HttpOptions(**options), **rest)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("request_", "applies"),
    [
        (_request(), True),
        (_request(headers=(("X-Token", "abc"), ("Authorization", "Bearer t"))), True),
        (_request(proxy_usage=1), True),  # NO_PROXY
        (_request("https://127.0.0.1:8000/f"), False),
        (_request(method="POST"), False),
        (_request(dynamic=True), False),
        (_request(ranges=((0, 10),)), False),
        (_request(credentials=((0, 1, "u", "p"),)), False),
        (_request(proxy_usage=2, proxy_list="proxy.example:3128"), False),  # OVERRIDE
        (_request(headers=(("Connection", "close"),)), False),
        (_request(headers=(("Transfer-Encoding", "chunked"),)), False),
        (_request("file:///tmp/x"), False),
    ],
    ids=[
        "plain",
        "custom-headers",
        "no-proxy",
        "https",
        "post",
        "dynamic",
        "ranges",
        "credentials",
        "proxy",
        "hop-header",
        "framing-header",
        "file-url",
    ],
)
def test_zero_copy_applies_only_where_it_behaves_like_aiohttp(
    request_: FileRequest, applies: bool
) -> None:
    """Plain http:// GETs of whole files, direct, without credentials or framing headers go
    zero-copy; everything else stays on aiohttp."""
    assert SpliceTransport.applies(request_) is applies


def test_environment_proxy_keeps_aiohttp(monkeypatch: pytest.MonkeyPatch) -> None:
    """A proxy from the environment (PRECONFIG, the default) sends the file through aiohttp;
    a host the environment bypasses goes zero-copy."""
    monkeypatch.setenv("http_proxy", "http://proxy.example:3128")
    monkeypatch.setenv("no_proxy", "bypassed.example")
    assert SpliceTransport.applies(_request("http://example.org/f")) is False
    assert SpliceTransport.applies(_request("http://bypassed.example/f")) is True


async def test_zero_copy_download_reuses_connections(
    server: FaultServer, make_engine: EngineFactory, dest: Path
) -> None:
    """The engine's default plain-HTTP path is the zero-copy one (its requests carry bitsd's
    own User-Agent); a big body and small ones arrive byte-identical; finished connections wait
    in the pool for the next request."""
    big = body(3_000_000, 5)
    server.add("/big", big)
    small = [body(16_384 + i, i) for i in range(12)]
    for i, data in enumerate(small):
        server.add(f"/s{i}", data)
    async with make_engine() as engine:
        job = await engine.create_job("zero copy")
        await job.add_file(server.url("/big"), str(dest / "big"))
        await job.add_file_set(
            [(server.url(f"/s{i}"), str(dest / f"s{i}")) for i in range(len(small))]
        )
        await job.resume()
        assert await settle(job) is JobState.TRANSFERRED
        await job.complete()
        assert sum(len(s) for s in engine._splice._idle.values()) >= 1
    assert (dest / "big").read_bytes() == big
    for i, data in enumerate(small):
        assert (dest / f"s{i}").read_bytes() == data
    assert {r.headers.get("user-agent") for r in server.requests} == {"bitsd"}


async def test_redirect_is_handed_to_aiohttp(
    server: FaultServer, make_engine: EngineFactory, dest: Path
) -> None:
    """A 302 on the zero-copy path hands the fetch to aiohttp, which follows it under the
    job's redirect policy; the file arrives from the target."""
    data = body(200_000, 3)
    server.add("/target", data)
    server.add("/moved", b"")
    server.set_fault("/moved", Fault(status=302, location=server.url("/target")))
    async with make_engine() as engine:
        job = await engine.create_job("redirect")
        await job.add_file(server.url("/moved"), str(dest / "r"))
        await job.resume()
        assert await settle(job) is JobState.TRANSFERRED
        await job.complete()
    assert (dest / "r").read_bytes() == data
    agents = [r.headers.get("user-agent") for r in server.requests_for("/moved")]
    assert agents[0] == "bitsd"
    assert any(a != "bitsd" for a in agents[1:]), "aiohttp asked again"


async def test_stale_pooled_connection_is_replaced(
    server: FaultServer, make_engine: EngineFactory, dest: Path
) -> None:
    """A pooled connection that died while idle (shut down here, as if the server had closed
    it) is replaced before the next request, without an error on the job."""
    first, second = body(100_000, 1), body(100_000, 2)
    server.add("/one", first)
    server.add("/two", second)
    async with make_engine(file_concurrency=1) as engine:
        job = await engine.create_job("stale")
        await job.add_file(server.url("/one"), str(dest / "one"))
        await job.resume()
        assert await settle(job) is JobState.TRANSFERRED
        for socks in engine._splice._idle.values():
            for sock in socks:
                sock.shutdown(2)  # as if the server had closed it: EOF on the next read
        await job.add_file(server.url("/two"), str(dest / "two"))
        await job.resume()
        assert await settle(job) is JobState.TRANSFERRED
        assert await job.get_error_count() == 0
        await job.complete()
    assert (dest / "two").read_bytes() == second


class FileOrder:
    """Records file_transferred calls and the job's progress seen at each."""

    def __init__(self) -> None:
        self.files: list[str] = []
        self.counts: list[int] = []

    async def file_transferred(self, job: Job, file: FileInfo) -> None:
        self.files.append(Path(file.local_name).name)
        self.counts.append((await job.get_progress()).files_transferred)


async def test_concurrent_files_are_reported_in_index_order(
    server: FaultServer, make_engine: EngineFactory, dest: Path
) -> None:
    """With several files in flight, later files that finish first wait for the earlier ones:
    file_transferred comes in index order and files_transferred never counts a file whose
    predecessors are not done."""
    slow = body(400_000, 1)
    server.add("/f0", slow)
    server.set_fault("/f0", Fault(rate=1_000_000))
    fast = [body(20_000 + i, i + 2) for i in range(6)]
    for i, data in enumerate(fast, start=1):
        server.add(f"/f{i}", data)
    order = FileOrder()
    async with make_engine(file_concurrency=4) as engine:
        job = await engine.create_job("order")
        await job.set_notify_flags(NotifyFlags.JOB_TRANSFERRED | NotifyFlags.FILE_TRANSFERRED)
        await job.set_notify_interface(order)
        await job.add_file_set([(server.url(f"/f{i}"), str(dest / f"f{i}")) for i in range(7)])
        await job.resume()
        while len(server.requests_for("/f3")) == 0 or server.requests_for("/f3")[0].status == 0:
            await asyncio.sleep(0.01)
        # /f1../f3 answered while /f0 is still streaming: none is reported yet.
        while not all(
            r.bytes_sent == len(fast[i - 1])
            for i in (1, 2, 3)
            for r in server.requests_for(f"/f{i}")
        ):
            await asyncio.sleep(0.01)
        progress = await job.get_progress()
        if server.requests_for("/f0")[0].bytes_sent < len(slow):
            assert progress.files_transferred == 0
        assert await settle(job) is JobState.TRANSFERRED
        for _ in range(50):
            if len(order.files) == 7:
                break
            await asyncio.sleep(0.02)
        await job.complete()
    assert order.files == [f"f{i}" for i in range(7)]
    assert order.counts == sorted(order.counts)
    for i, data in enumerate([slow, *fast]):
        assert (dest / f"f{i}").read_bytes() == data


async def test_first_failure_in_order_stops_the_job(
    server: FaultServer, make_engine: EngineFactory, dest: Path
) -> None:
    """Files 2 and 4 answer 404 while file 0 is still streaming: the job goes to ERROR naming
    file 2 (the first in order), file 1 is reported transferred, file 3, finished early, keeps
    its bytes but is not counted; after the server is fixed, Resume confirms file 3 with one
    request (416) instead of fetching it again."""
    data = [body(30_000 + i, i) for i in range(6)]
    for i, d in enumerate(data):
        server.add(f"/f{i}", d)
    server.set_fault("/f0", Fault(rate=300_000))
    server.set_fault("/f2", Fault(status=404))
    server.set_fault("/f4", Fault(status=404))
    async with make_engine(file_concurrency=6) as engine:
        job = await engine.create_job("first failure")
        await job.add_file_set([(server.url(f"/f{i}"), str(dest / f"f{i}")) for i in range(6)])
        await job.resume()
        assert await settle(job) is JobState.ERROR
        err = await job.get_error()
        assert (err.code, err.context) == (codes.http_error(404), ErrorContext.REMOTE_FILE)
        assert err.file is not None
        assert err.file.local_name == str(dest / "f2")
        files = await job.files()
        assert [f.progress.completed for f in files] == [True, True, False, False, False, False]
        assert files[3].progress.bytes_transferred == len(data[3])
        assert (await job.get_progress()).files_transferred == 2
        sent_f3 = sum(r.bytes_sent for r in server.requests_for("/f3"))
        for path in ("/f0", "/f2", "/f4"):
            server.clear_fault(path)
        await job.resume()
        assert await settle(job) is JobState.TRANSFERRED
        await job.complete()
    for i, d in enumerate(data):
        assert (dest / f"f{i}").read_bytes() == d
    assert sum(r.bytes_sent for r in server.requests_for("/f3")) == sent_f3
    assert server.requests_for("/f3")[-1].status == 416


async def test_maximum_download_size_keeps_one_file_at_a_time(
    server: FaultServer, make_engine: EngineFactory, dest: Path
) -> None:
    """A job with a maximum download size transfers its files one at a time (the budget of a
    file depends on the sizes learned before it): the second file is asked for only after the
    first is done."""
    server.add("/a", body(50_000, 1))
    server.add("/b", body(50_000, 2))
    server.set_fault("/a", Fault(rate=500_000))
    async with make_engine(file_concurrency=8) as engine:
        job = await engine.create_job("budget")
        await job.set_maximum_download_size(1_000_000)
        await job.add_file_set([(server.url(p), str(dest / p[1:])) for p in ("/a", "/b")])
        await job.resume()
        assert await settle(job) is JobState.TRANSFERRED
        await job.complete()
    requests = [r.path for r in server.requests]
    assert requests == ["/a", "/b"]
