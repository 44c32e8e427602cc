"""The fast paths of issue 7: which transport the engine chooses (bitsd's own HTTP client only
where it behaves exactly like aiohttp), its keep-alive pool and redirect hand-over over HTTP and
HTTPS, TLS connections kept apart per TLS settings, TLS handshake failures classified as on
aiohttp, and the files of one job transferred several at once with BITS's observable order."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from yarl import URL

import bitsd._engine
import bitsd._files
import bitsd._sink
from bitsd import ErrorContext, FileInfo, JobState, NotifyFlags, codes
from bitsd._enums import SecurityFlags
from bitsd._sink import Flusher
from bitsd._transfer.base import FileRequest, HttpOptions
from bitsd._transfer.rawhttp import RawHttpTransport, _target_of, proxy_environment
from bitsd.aio import Job
from tests.engine.conftest import CompletedWrites, EngineFactory, body, settle
from tests.servers.faulty import Fault, FaultServer
from tests.servers.tls import Pki

# bitsd's own client over plain HTTP and over HTTPS (the ``server`` fixture follows it).
both_schemes = pytest.mark.parametrize("transport", ["raw", "raw-tls"], indirect=True)


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
        (_request("https://127.0.0.1:8000/f"), True),
        (_request("HTTPS://127.0.0.1/f", ca_bundle="/ca.pem", security_flags=0x10), True),
        (_request(method="POST"), False),
        (_request(dynamic=True), False),
        (_request(ranges=((0, 10),)), False),
        (_request(credentials=((0, 1, "u", "p"),)), False),
        (_request(proxy_usage=2, proxy_list="proxy.example:3128"), False),  # OVERRIDE
        (_request("https://h.example/f", proxy_usage=2, proxy_list="https=p.example"), False),
        (_request("https://h.example/f", proxy_usage=2, proxy_list="http=p.example"), True),
        (_request(headers=(("Connection", "close"),)), False),
        (_request(headers=(("Transfer-Encoding", "chunked"),)), False),
        (_request("file:///tmp/x"), False),
        (_request("ftp://127.0.0.1/x"), False),
    ],
    ids=[
        "plain",
        "custom-headers",
        "no-proxy",
        "https",
        "https-tls-options",
        "post",
        "dynamic",
        "ranges",
        "credentials",
        "proxy",
        "https-proxy",
        "https-other-scheme-proxy",
        "hop-header",
        "framing-header",
        "file-url",
        "other-scheme",
    ],
)
def test_raw_client_applies_only_where_it_behaves_like_aiohttp(
    request_: FileRequest, applies: bool
) -> None:
    """http:// and https:// GETs of whole files, direct, without credentials or framing
    headers go through bitsd's own client (TLS options travel in the SSL context); everything
    else stays on aiohttp."""
    assert RawHttpTransport.applies(request_) is applies


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1",
        "http://127.0.0.1?x=/y",
        "http://127.0.0.1#frag/x",
        "HTTP://Example.ORG:8080/a/b?c#d",
        "https://[::1]:8443/x",
        "https://user:p%40ss@example.org/x",
        "http://example.org:99999/x",
        "http://[::1/x",
        "http://exa\\mple.org/x",
        "http:example.org/x",
        "http:///nohost",
        "file://example.org/x",
    ],
)
def test_the_route_is_decided_on_the_host_and_port_yarl_finds_in_the_whole_url(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``applies`` decides the route from the URL's origin only (cached per origin): the
    answer is the one a parse of the whole URL gives, for hosts bypassed and not; a URL with
    userinfo goes to aiohttp (which sends it as Basic credentials)."""
    monkeypatch.setenv("http_proxy", "http://proxy.example:3128")
    monkeypatch.setenv("https_proxy", "http://proxy.example:3128")
    for bypass in ("example.org,127.0.0.1,::1", "other.example"):
        monkeypatch.setenv("no_proxy", bypass)
        try:
            whole = URL(url)
            expected = (
                whole.scheme in ("http", "https")
                and bool(whole.raw_host)
                and whole.raw_user is None
                and (whole.raw_host or "") in bypass.split(",")
            )
        except ValueError:
            expected = False
        assert RawHttpTransport.applies(_request(url)) is expected, (url, bypass)


_ORIGINS = [
    "http://127.0.0.1:8080",
    "HTTP://Example.ORG",
    "https://example.org:443",
    "http://[::1]:8080",
    "https://user:p%40ss@example.org",
    "http://xn--bcher-kva.example",
    "http://bücher.example",
]


_SEGMENTS = st.sampled_from(
    ["", ".", "..", ".a", "a.", "f0", "b.c", "%41", "%zz", "a b", "é", "~_-"]
)
_PATHS = st.builds(
    lambda segments, query, fragment: "/" + "/".join(segments) + query + fragment,
    st.lists(_SEGMENTS, max_size=5),
    st.sampled_from(["", "?", "?a=1&b=/./", "?x y", "?%", "?a?b"]),
    st.sampled_from(["", "#", "#f/../g"]),
)


@settings(max_examples=400, deadline=None)
@given(
    origin=st.sampled_from(_ORIGINS),
    rest=st.one_of(
        _PATHS,
        st.text(alphabet="/abcAZ09-._~!$&'()*+,;=:@?#% \u00e9\\[]{}|^`\"<>", max_size=24),
    ),
)
def test_the_request_target_is_the_one_yarl_gives(origin: str, rest: str) -> None:
    """The request target split by hand for plain paths (``_target_of``) is yarl's: scheme,
    host, port and path with query, for any path; a URL yarl refuses is refused alike."""
    url = origin + rest
    try:
        parsed = URL(url)
        expected = (
            parsed.scheme,
            parsed.raw_host or "",
            # Port 0 (refused when a file is added) stands for the scheme's, as it always did.
            parsed.port or {"http": 80, "https": 443}[parsed.scheme],
            parsed.raw_path_qs or "/",
        )
    except Exception as exc:  # whatever yarl raises, the split raises too
        with pytest.raises(type(exc)):
            _target_of(url)
        return
    assert tuple(_target_of(url)) == expected, url


def test_environment_proxy_keeps_aiohttp(monkeypatch: pytest.MonkeyPatch) -> None:
    """A proxy from the environment (PRECONFIG, the default) sends the file through aiohttp,
    for the scheme it is set for; a host the environment bypasses goes through bitsd's client."""
    monkeypatch.setenv("http_proxy", "http://proxy.example:3128")
    monkeypatch.setenv("no_proxy", "bypassed.example")
    assert RawHttpTransport.applies(_request("http://example.org/f")) is False
    assert RawHttpTransport.applies(_request("http://bypassed.example/f")) is True
    assert RawHttpTransport.applies(_request("https://example.org/f")) is True
    monkeypatch.setenv("https_proxy", "http://proxy.example:3128")
    assert RawHttpTransport.applies(_request("https://example.org/f")) is False
    assert RawHttpTransport.applies(_request("https://bypassed.example/f")) is True


def test_a_route_decided_for_a_run_holds_for_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """The engine reads the proxy environment once per run and decides with it: a route
    decided for that environment holds while the run lasts, even if the environment changes;
    one not decided yet is decided with the environment as it is then, and cached for that
    environment only."""
    monkeypatch.setenv("http_proxy", "http://proxy.example:3128")
    with_proxy = proxy_environment()
    held = _request("http://held.example/f")
    assert RawHttpTransport.applies(held, with_proxy) is False  # decided and cached
    monkeypatch.delenv("http_proxy")
    without = proxy_environment()
    assert RawHttpTransport.applies(held, with_proxy) is False  # the run's decision holds
    assert RawHttpTransport.applies(held, without) is True  # the next run's environment
    late = _request("http://late.example/f")
    assert RawHttpTransport.applies(late, with_proxy) is True  # decided with the environment now
    monkeypatch.setenv("http_proxy", "http://proxy.example:3128")
    assert RawHttpTransport.applies(late, with_proxy) is False  # nothing wrong was cached


@both_schemes
async def test_raw_download_reuses_connections(
    server: FaultServer, make_engine: EngineFactory, dest: Path
) -> None:
    """The engine's default HTTP and HTTPS path is bitsd's own client (its requests carry
    bitsd's own User-Agent); a big body (several buffers) and small ones arrive byte-identical;
    finished connections wait in the pool for the next request."""
    big = body(3_000_000, 5)
    server.add("/big", big)
    small = [body(16_384 + i, i) for i in range(12)]
    for i, data in enumerate(small):
        server.add(f"/s{i}", data)
    async with make_engine() as engine:
        job = await engine.create_job("raw client")
        await job.add_file(server.url("/big"), str(dest / "big"))
        await job.add_file_set(
            [(server.url(f"/s{i}"), str(dest / f"s{i}")) for i in range(len(small))]
        )
        await job.resume()
        assert await settle(job) is JobState.TRANSFERRED
        await job.complete()
        assert sum(len(s) for s in engine._raw._idle.values()) >= 1
    assert (dest / "big").read_bytes() == big
    for i, data in enumerate(small):
        assert (dest / f"s{i}").read_bytes() == data
    assert {r.headers.get("user-agent") for r in server.requests} == {"bitsd"}


@both_schemes
async def test_redirect_is_handed_to_aiohttp(
    server: FaultServer, make_engine: EngineFactory, dest: Path
) -> None:
    """A 302 on bitsd's own client hands the fetch to aiohttp, which follows it under the
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


@both_schemes
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
        for streams in engine._raw._idle.values():
            for stream in streams:
                stream.sock.shutdown(2)  # as if the server had closed it: EOF on the next read
        await job.add_file(server.url("/two"), str(dest / "two"))
        await job.resume()
        assert await settle(job) is JobState.TRANSFERRED
        assert await job.get_error_count() == 0
        await job.complete()
    assert (dest / "two").read_bytes() == second


async def test_tls_connections_are_reused_only_under_the_same_tls_settings(
    tmp_path: Path, make_engine: EngineFactory, dest: Path
) -> None:
    """Files of a job share one TLS connection (one handshake for three files); a job with
    other TLS settings never gets that connection: one that ignores unknown CAs makes its own,
    and one that trusts only the system store fails with BG_E_TRUST_FAILURE although trusted
    connections to the same server wait in the pool."""
    pki = Pki(tmp_path / "pki")
    context = pki.server_context("127.0.0.1")
    data = [body(70_000 + i, i) for i in range(3)]

    async def run(engine_job: Job, name: str) -> JobState:
        await engine_job.set_no_progress_timeout(0)
        await engine_job.add_file_set(
            [(server.url(f"/f{i}"), str(dest / f"{name}{i}")) for i in range(len(data))]
        )
        await engine_job.resume()
        return await settle(engine_job)

    async with FaultServer(ssl=context) as server, make_engine(file_concurrency=1) as engine:
        for i, d in enumerate(data):
            server.add(f"/f{i}", d)
        trusted = await engine.create_job("bundle")
        await trusted.set_ca_bundle(pki.ca_file)
        assert await run(trusted, "a") is JobState.TRANSFERRED
        assert context.session_stats()["accept"] == 1
        lenient = await engine.create_job("ignore unknown CA")
        await lenient.set_security_flags(SecurityFlags.IGNORE_UNKNOWN_CA)
        assert await run(lenient, "b") is JobState.TRANSFERRED
        assert context.session_stats()["accept"] == 2
        strict = await engine.create_job("system trust")
        assert await run(strict, "c") is JobState.ERROR
        assert (await strict.get_error()).code == codes.BG_E_TRUST_FAILURE
        assert len(server.requests) == 6
        for job in (trusted, lenient):
            await job.complete()
    for i, d in enumerate(data):
        assert (dest / f"a{i}").read_bytes() == d
        assert (dest / f"b{i}").read_bytes() == d


@pytest.mark.parametrize("transport", ["raw", "aiohttp"], indirect=True)
async def test_unusable_ca_bundle_fails_the_job_as_on_aiohttp(
    tmp_path: Path, make_engine: EngineFactory, dest: Path
) -> None:
    """A CA bundle that holds no certificate, or is gone at run time, fails the job before any
    request with the same fatal error on both clients: E_INVALIDARG, else the OS error
    (ERROR_FILE_NOT_FOUND), in GENERAL_TRANSPORT."""
    pki = Pki(tmp_path / "pki")
    garbage, gone = tmp_path / "garbage.pem", tmp_path / "gone.pem"
    garbage.write_text("not a certificate\n")
    shutil.copyfile(pki.ca_file, gone)
    async with (
        FaultServer(ssl=pki.server_context("127.0.0.1")) as server,
        make_engine() as engine,
    ):
        server.add("/f", body(1000))
        for bundle, code in (
            (garbage, codes.E_INVALIDARG),
            (gone, codes.HRESULT_FROM_WIN32(2)),
        ):
            job = await engine.create_job(bundle.name)
            await job.set_ca_bundle(str(bundle))
            if bundle == gone:
                gone.unlink()  # after it was checked: gone at run time
            await job.add_file(server.url("/f"), str(dest / bundle.name))
            await job.resume()
            assert await settle(job) is JobState.ERROR
            err = await job.get_error()
            assert (err.code, err.context) == (code, ErrorContext.GENERAL_TRANSPORT)
            assert str(bundle) in err.description
        assert server.requests == []


Serve = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@contextlib.asynccontextmanager
async def tcp_server(serve: Serve) -> AsyncIterator[int]:
    """A TCP server on 127.0.0.1 running ``serve`` per connection; yields its port."""
    tasks: set[asyncio.Task[None]] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)
        try:
            await serve(reader, writer)
        except asyncio.CancelledError:
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()


async def _close_at_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.transport.abort()


async def _close_politely(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read(64 * 1024)  # the ClientHello: closing with it unread would send a RST
    writer.close()  # a FIN: an EOF in the middle of the handshake


async def _never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await asyncio.sleep(30)


async def _speak_plain_http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
    await writer.drain()
    await asyncio.sleep(30)


@pytest.mark.parametrize("transport", ["raw", "aiohttp"], indirect=True)
@pytest.mark.parametrize(
    ("serve", "code"),
    [
        (_close_at_once, codes.BG_E_CONNECT_FAILURE),
        (_close_politely, codes.BG_E_CONNECT_FAILURE),
        (_never_answer, codes.BG_E_TIMEOUT),
        (_speak_plain_http, codes.BG_E_SECURE_CHANNEL_FAILURE),
    ],
    ids=["reset", "closed", "silent", "not-tls"],
)
async def test_tls_handshake_failures_are_classified_as_on_aiohttp(
    make_engine: EngineFactory, dest: Path, serve: Serve, code: int
) -> None:
    """A server that resets the connection during the TLS handshake, one that never answers
    it (bounded by the connect timeout) and one that answers in plain HTTP give the same
    transient errors on bitsd's own client as on aiohttp."""
    async with tcp_server(serve) as port, make_engine(connect_timeout=0.3) as engine:
        job = await engine.create_job("handshake")
        await job.add_file(f"https://127.0.0.1:{port}/f", str(dest / "f"))
        await job.resume()
        assert await settle(job, (JobState.TRANSIENT_ERROR,)) is JobState.TRANSIENT_ERROR
        err = await job.get_error()
        assert (err.code, err.context) == (code, ErrorContext.GENERAL_TRANSPORT), err.description


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


async def test_files_reportable_close_together_are_stored_in_one_write(
    server: FaultServer,
    make_engine: EngineFactory,
    dest: Path,
    state_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Files that become reportable within the publish delay of each other, while a file is
    still in flight, are stored completed in one transaction, before the file in flight
    ends; with nothing in flight, the last file is reported at once."""
    monkeypatch.setattr(bitsd._engine, "_PUBLISH_DELAY", 0.5)
    data = [body(5_000 + i, i) for i in range(5)]
    for i, d in enumerate(data):
        server.add(f"/f{i}", d)
        # They end 30 ms apart: each would be a write of its own without the delay.
        server.set_fault(f"/f{i}", Fault(stall_before_headers=0.03 * i))
    slow = body(300_000, 9)
    server.add("/slow", slow)
    server.set_fault("/slow", Fault(rate=150_000))  # about 2 s
    os.mkdir(state_dir)
    store = CompletedWrites(state_dir / "jobs.sqlite")
    try:
        async with make_engine(store=store, file_concurrency=6) as engine:
            job = await engine.create_job("one write")
            files = [(server.url(f"/f{i}"), str(dest / f"f{i}")) for i in range(5)]
            await job.add_file_set([*files, (server.url("/slow"), str(dest / "slow"))])
            await job.resume()
            while not store.completed:
                await asyncio.sleep(0.01)
            assert store.completed == [[0, 1, 2, 3, 4]]
            assert server.requests_for("/slow")[0].bytes_sent < len(slow)
            assert (await job.get_progress()).files_transferred == 5
            assert await settle(job) is JobState.TRANSFERRED
            assert store.completed == [[0, 1, 2, 3, 4], [5]]
            await job.complete()
    finally:
        store.close()
    for i, d in enumerate(data):
        assert (dest / f"f{i}").read_bytes() == d
    assert (dest / "slow").read_bytes() == slow


async def test_running_files_show_live_progress_and_finished_ones_wait_uncompleted(
    server: FaultServer, make_engine: EngineFactory, dest: Path
) -> None:
    """A file in flight shows its size and the bytes written so far (its sink's live record);
    a later file that finished first shows all its bytes, not completed, until its turn."""
    slow = body(600_000, 1)
    fast = body(30_000, 2)
    server.add("/slow", slow)
    server.add("/fast", fast)
    server.set_fault("/slow", Fault(rate=600_000))
    async with make_engine(file_concurrency=2) as engine:
        job = await engine.create_job("live")
        await job.add_file_set(
            [(server.url("/slow"), str(dest / "slow")), (server.url("/fast"), str(dest / "fast"))]
        )
        await job.resume()
        while True:
            files = await job.files()
            if files[0].progress.bytes_transferred > 0 and files[1].progress.bytes_transferred:
                break
            await asyncio.sleep(0.01)
        while (await job.files())[1].progress.bytes_transferred < len(fast):
            await asyncio.sleep(0.01)
        files = await job.files()
        progress = await job.get_progress()
        if server.requests_for("/slow")[0].bytes_sent < len(slow):
            assert files[0].progress.bytes_total == len(slow)
            assert 0 < files[0].progress.bytes_transferred < len(slow)
            assert (files[1].progress.bytes_transferred, files[1].progress.completed) == (
                len(fast),
                False,
            )
            assert progress.files_transferred == 0
            assert progress.bytes_total == len(slow) + len(fast)
            # One file's getters read the same live record, not the stored checkpoint.
            held = (await job.get_filled_file_ranges(0))[0][1]
            assert files[0].progress.bytes_transferred <= held <= len(slow)
            assert await job.get_filled_file_ranges(1) == [(0, len(fast))]
        assert await settle(job) is JobState.TRANSFERRED
        files = await job.files()
        assert [(f.progress.bytes_transferred, f.progress.completed) for f in files] == [
            (len(slow), True),
            (len(fast), True),
        ]
        await job.complete()
    assert (dest / "slow").read_bytes() == slow
    assert (dest / "fast").read_bytes() == fast


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


async def test_a_file_whose_body_is_in_frees_its_place_while_it_is_flushed(
    server: FaultServer,
    make_engine: EngineFactory,
    dest: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The file concurrency bounds the files being fetched, not the files waiting for their
    flush: while every flush is held, files beyond the two places are still fetched (up to
    four per place), and none is reported transferred before its flush returned."""
    held = threading.Event()
    flushed: list[int] = []
    real_flush = bitsd._files.flush_temp

    def slow_flush(fd: int) -> None:
        held.wait(10)
        real_flush(fd)
        flushed.append(fd)

    monkeypatch.setattr(bitsd._sink, "flush_temp", slow_flush)
    monkeypatch.setattr(bitsd._sink, "memory_backed", lambda fd: False)  # the thread's path
    data = [body(10_000 + i, i) for i in range(6)]
    for i, d in enumerate(data):
        server.add(f"/f{i}", d)
    try:
        async with make_engine(file_concurrency=2) as engine:
            job = await engine.create_job("places")
            await job.add_file_set([(server.url(f"/f{i}"), str(dest / f"f{i}")) for i in range(6)])
            await job.resume()

            def all_sent() -> bool:
                return all(
                    (sent := server.requests_for(f"/f{i}")) and sent[0].bytes_sent == len(d)
                    for i, d in enumerate(data)
                )

            for _ in range(500):
                if all_sent():
                    break
                await asyncio.sleep(0.01)
            assert all(len(server.requests_for(f"/f{i}")) == 1 for i in range(6))
            assert (await job.get_progress()).files_transferred == 0
            assert flushed == []
            held.set()
            assert await settle(job) is JobState.TRANSFERRED
            await job.complete()
    finally:
        held.set()
    for i, d in enumerate(data):
        assert (dest / f"f{i}").read_bytes() == d


async def test_flushes_asked_for_during_a_flush_form_the_next_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The group flusher has one batch in the worker thread at a time: the files that ask
    while it runs are flushed together after it, each answered with its own result."""
    release = threading.Event()
    batches: list[list[int]] = []
    real_flush_all = bitsd._sink._flush_all

    def flush_all(fds: list[int]) -> list[OSError | None]:
        batches.append(list(fds))
        if len(batches) == 1:
            release.wait(10)
        return real_flush_all(fds)

    monkeypatch.setattr(bitsd._sink, "_flush_all", flush_all)
    monkeypatch.setattr(bitsd._sink, "memory_backed", lambda fd: False)  # the thread's path
    fds = [os.open(tmp_path / f"t{i}", os.O_CREAT | os.O_WRONLY, 0o600) for i in range(4)]
    try:
        flusher = Flusher()
        first = asyncio.create_task(flusher.flush(fds[0]))
        while not batches:
            await asyncio.sleep(0.001)
        later = [asyncio.create_task(flusher.flush(fd)) for fd in fds[1:]]
        await asyncio.sleep(0.05)
        assert batches == [[fds[0]]]
        release.set()
        await asyncio.gather(first, *later)
        assert batches == [[fds[0]], fds[1:]]
        os.unlink(tmp_path / "t3")  # a file that lost its name fails alone
        failing = asyncio.create_task(flusher.flush(fds[3]))
        fine = asyncio.create_task(flusher.flush(fds[2]))
        with pytest.raises(FileNotFoundError):
            await failing
        await fine
    finally:
        release.set()
        for fd in fds:
            os.close(fd)


async def test_options_changed_while_the_job_runs_apply_to_the_next_files(
    server: FaultServer, make_engine: EngineFactory, dest: Path
) -> None:
    """Custom headers set while a job runs reach the files asked for after the change (the
    HTTP options are made again whenever the job's record changes, not once per run)."""
    for name in ("a", "b", "c"):
        server.add(f"/{name}", body(20_000))
    server.set_fault("/a", Fault(stall_before_headers=0.5, times=1))
    async with make_engine(file_concurrency=1) as engine:
        job = await engine.create_job("headers")
        await job.set_custom_headers("X-Round: 1\r\n")
        await job.add_file_set([(server.url(f"/{n}"), str(dest / n)) for n in ("a", "b", "c")])
        await job.resume()
        while not server.requests_for("/a"):
            await asyncio.sleep(0.01)
        await job.set_custom_headers("X-Round: 2\r\n")
        assert await settle(job) is JobState.TRANSFERRED
        await job.complete()
    assert server.requests_for("/a")[0].headers.get("x-round") == "1"
    assert [server.requests_for(f"/{n}")[0].headers.get("x-round") for n in "bc"] == ["2", "2"]


async def test_files_on_a_memory_backed_file_system_are_flushed_without_a_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where fsync waits for no device the flush runs at once, on the loop, and still fails
    for a file that lost its name."""

    def no_thread(fds: list[int]) -> list[OSError | None]:
        raise AssertionError("a memory-backed file went to the worker thread")

    monkeypatch.setattr(bitsd._sink, "_flush_all", no_thread)
    monkeypatch.setattr(bitsd._sink, "memory_backed", lambda fd: True)
    flusher = Flusher()
    fd = os.open(tmp_path / "t", os.O_CREAT | os.O_WRONLY, 0o600)
    try:
        os.write(fd, b"data")
        await flusher.flush(fd)
        os.unlink(tmp_path / "t")
        with pytest.raises(FileNotFoundError):
            await flusher.flush(fd)
    finally:
        os.close(fd)


@pytest.mark.skipif(not os.path.isdir("/dev/shm"), reason="needs /dev/shm")
async def test_a_job_on_tmpfs_completes_with_its_flushes_on_the_loop(
    server: FaultServer,
    make_engine: EngineFactory,
    monkeypatch: pytest.MonkeyPatch,
    tmpfs_folder: Path,
) -> None:
    """Downloads into a memory-backed folder flush without the worker thread, checkpoints and
    files alike, and end byte-identical."""
    folder = tmpfs_folder

    def no_thread(fds: list[int]) -> list[OSError | None]:
        raise AssertionError("a file on tmpfs went to the worker thread")

    monkeypatch.setattr(bitsd._sink, "_flush_all", no_thread)
    data = [body(200_000 + i, i) for i in range(5)]  # several checkpoints each
    for i, d in enumerate(data):
        server.add(f"/m{i}", d)
    async with make_engine(checkpoint_bytes=32 * 1024) as engine:
        job = await engine.create_job("tmpfs")
        await job.add_file_set([(server.url(f"/m{i}"), str(folder / f"m{i}")) for i in range(5)])
        await job.resume()
        assert await settle(job) is JobState.TRANSFERRED
        await job.complete()
    for i, d in enumerate(data):
        assert (folder / f"m{i}").read_bytes() == d


async def test_the_splice_helper_follows_the_engine_settings(
    server: FaultServer, make_engine: EngineFactory, dest: Path
) -> None:
    """``splice_helper`` can change while the engine runs (the daemon's SIGHUP): off, a large
    http:// body is spliced in process and no helper starts; on again, the next one is spliced
    by a helper process; each file is whole."""
    data = body(600_000, 3)
    server.add("/big", data)
    async with make_engine(splice_helper=False) as engine:
        helper = engine._splice_helper
        for name, on in (("off", False), ("on", True)):
            engine.reconfigure(splice_helper=on)
            job = await engine.create_job(name)
            await job.add_file(server.url("/big"), str(dest / name))
            await job.resume()
            assert await settle(job) is JobState.TRANSFERRED
            await job.complete()
            assert (helper.pid is not None) is on
            assert (dest / name).read_bytes() == data
