"""Bulks of small files (``bulkfetch.Bulk`` in the daemon, ``bulkfetch_child.py`` in the splice
helper process) against real loopback servers, real temporary files and a real helper: small files
are taken whole, each into its temporary file, with the size and validator the per-file path
records, one request each, on at most ``width`` kept connections, 1xx answers before them skipped;
an answer the helper does not take (a body larger than the bulk's largest, a chunked 206, an empty
file's 416, a redirect, a head larger than one message) is handed back with its connection (the
helper keeps no descriptor of it) and the bytes read, and goes on in the per-file path without a
second request; a connection handed back counts within the width until it is released, also one
handed back for a file cancelled meanwhile; every failure (a status, a 200 to the Range request, a
malformed or inconsistent head, a refused connection, a connect or read timeout, a connection closed
before the answer, closed or reset in the body, a temporary file that cannot be made or is deleted
while written) is the error the per-file path gives for the same server, with the bytes made durable
before it; a connection is kept only where its answer lets it, and a kept connection that the server
ended is replaced once; ``cancel_after`` and ``close`` stop the files under way and leave the helper
none of their descriptors (a helper that does not answer is killed); a helper that dies hands every
file under way back, and without a helper no bulk opens; a hand-over larger than one message goes in
several."""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import errno
import itertools
import os
import select
import signal
import socket
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from starlette.requests import Request
from starlette.responses import Response

from bitsd import FakeClock, codes
from bitsd._errors import TransferError
from bitsd._files import flush_temp, open_temp
from bitsd._transfer import classify
from bitsd._transfer.base import FileRequest, Sink
from bitsd._transfer.bulkfetch import (
    BULK_MOST,
    Answered,
    Bulk,
    BulkEntry,
    Failed,
    Fetched,
    Outcome,
)
from bitsd._transfer.bulkfetch_child import RAW_MAX, SPLICE_MIN
from bitsd._transfer.rawhttp import RawHttpTransport, answer_of, head_of, proxy_environment
from bitsd._transfer.splicehelper import SpliceHelper
from bitsd._transfer.tls import TlsContexts
from tests.servers.faulty import Fault, FaultServer
from tests.servers.raw import RawServer

KiB = 1024
# Seconds any wait of a test may last before it counts as hung (bounds, not timings).
PATIENCE = 10.0
# Seconds: the connect and read timeouts of the tests that do not time out, and of those that do.
TIMEOUT = 5.0
SHORT = 0.3


# -- the per-file path ---------------------------------------------------------------------------


class _Sink:
    """A sink over a real file, as the engine's: ``begin`` records what the answer taught (and
    empties the file on a restart), writes go to the file at its position."""

    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        self.local_name = path
        self.offset = 0
        self.begun: list[tuple[int | None, str | None, bool]] = []

    async def begin(self, *, bytes_total: int | None, validator: str | None, restart: bool) -> None:
        self.begun.append((bytes_total, validator, restart))
        if restart:
            os.ftruncate(self.fd, 0)
            os.lseek(self.fd, 0, os.SEEK_SET)
            self.offset = 0

    async def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view) :]
        self.offset += len(data)

    async def advance(self, count: int) -> None:
        self.offset += count

    def content(self) -> bytes:
        return Path(self.local_name).read_bytes()


class _Fallback:
    """The per-file path's fallback transport (aiohttp's, for redirects): it notes the
    requests it is given, and moves nothing."""

    def __init__(self) -> None:
        self.fetched: list[str] = []

    async def fetch(self, request: FileRequest, sink: Sink) -> None:
        self.fetched.append(request.url)


def _said(error: TransferError) -> tuple[object, ...]:
    """All an error tells: code, context, transient or fatal, message, Retry-After, protocol."""
    return (
        codes.name_of(error.hresult),
        error.context,
        error.transient,
        error.message,
        error.retry_after,
        error.protocol,
    )


# -- the bulk's side -----------------------------------------------------------------------------


class _Results:
    """What a bulk says of its files (``on_result``), by position: at most once each."""

    def __init__(self) -> None:
        self.got: dict[int, Outcome] = {}
        self._changed = asyncio.Event()

    def __call__(self, position: int, outcome: Outcome) -> None:
        assert position not in self.got, f"a second result for file {position}"
        self.got[position] = outcome
        self._changed.set()

    async def of(self, *positions: int) -> list[Outcome]:
        """The results of ``positions``, once all came."""
        async with asyncio.timeout(PATIENCE):
            while not all(position in self.got for position in positions):
                self._changed.clear()
                await self._changed.wait()
        return [self.got[position] for position in positions]

    async def one(self, position: int) -> Outcome:
        return (await self.of(position))[0]

    def close(self) -> None:
        for outcome in self.got.values():
            if isinstance(outcome, Answered):
                outcome.close()


class _Kit:
    """A test's helper, bulks, files and per-file path (the raw transport, without a helper:
    every body it reads moves in process)."""

    def __init__(self, folder: Path, clock: FakeClock) -> None:
        self.folder = folder
        self.clock = clock
        self.helper = SpliceHelper()
        self.results = _Results()
        self.fallback = _Fallback()
        self.raw = RawHttpTransport(
            clock,
            self.fallback,
            tls=TlsContexts(),
            chunk_size=64 * KiB,
            connect_timeout=TIMEOUT,
            read_timeout=TIMEOUT,
        )
        self._bulks: list[Bulk] = []
        self.sinks: list[_Sink] = []  # the per-file path's, in the order made

    async def open(
        self,
        port: int,
        *,
        width: int = 2,
        most: int = BULK_MOST,
        connect_timeout: float = TIMEOUT,
        read_timeout: float = TIMEOUT,
        host: str = "127.0.0.1",
    ) -> Bulk:
        """A bulk for ``host:port`` (its addresses as the engine resolves them) whose results
        go to :attr:`results`; the per-file path gets the same timeouts."""
        self.raw.retune(
            chunk_size=64 * KiB, connect_timeout=connect_timeout, read_timeout=read_timeout
        )
        bulk = await Bulk.open(
            self.helper,
            self.clock,
            host,
            port,
            await self.raw.addresses(host, port),
            self.results,
            width=width,
            most=most,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
        )
        assert bulk is not None
        self._bulks.append(bulk)
        return bulk

    def temp(self, position: int) -> str:
        return str(self.folder / f"f{position}.tmp")

    def entry(
        self, position: int, url: str, *, temp: str | None = None, local: str | None = None
    ) -> BulkEntry:
        """What ``Bulk.add`` takes for the file at ``position``: the GET the per-file path
        would send, the temporary file ``temp`` (default: :meth:`temp`)."""
        found = self.raw.bulk_file(FileRequest(url, 0, None, None), proxy_environment())
        assert found is not None
        return (
            position,
            url,
            None,
            os.fsencode(temp if temp is not None else self.temp(position)),
            found.wire,
            local if local is not None else str(self.folder / f"f{position}"),
        )

    def next_per_file(self) -> str:
        """The file the next :meth:`per_file` writes."""
        return str(self.folder / f"per-file-{len(self.sinks)}")

    async def per_file(self, url: str, answered: Answered | None = None) -> _Sink:
        """Fetch ``url`` with the per-file path (going on with ``answered``, if given) into a
        new file."""
        sink = _Sink(self.next_per_file())
        self.sinks.append(sink)
        async with asyncio.timeout(PATIENCE):
            await self.raw.fetch(FileRequest(url, 0, None, None), sink, answered)
        return sink

    async def per_file_error(self, url: str) -> TransferError:
        """The error the per-file path gives for ``url``."""
        with pytest.raises(TransferError) as caught:
            await self.per_file(url)
        return caught.value

    async def aclose(self) -> None:
        for bulk in self._bulks:
            await bulk.close()
        self.results.close()
        await self.raw.aclose()
        self.helper.close()
        for sink in self.sinks:
            os.close(sink.fd)


@pytest.fixture
async def kit(tmp_path: Path) -> AsyncIterator[_Kit]:
    kit = _Kit(tmp_path, FakeClock())
    yield kit
    await kit.aclose()


def _fetched(outcome: Outcome) -> Fetched:
    assert isinstance(outcome, Fetched), outcome
    return outcome


def _failed(outcome: Outcome) -> Failed:
    assert isinstance(outcome, Failed), outcome
    return outcome


def _answered(outcome: Outcome) -> Answered:
    assert isinstance(outcome, Answered), outcome
    return outcome


def _on_disk(path: str) -> bytes | None:
    """The bytes of the file ``path``; None if there is none."""
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        return None


def _open_files(pid: int) -> set[str]:
    """The paths the process ``pid``'s descriptors refer to."""
    found: set[str] = set()
    for name in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):  # closed meanwhile
            found.add(os.readlink(f"/proc/{pid}/fd/{name}"))
    return found


def _queued(local: int, remote: int) -> tuple[int, int]:
    """The bytes not yet sent and not yet read (tx_queue, rx_queue) of the loopback IPv4 TCP
    socket from port ``local`` to port ``remote``."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if (int(fields[1].split(":")[1], 16), int(fields[2].split(":")[1], 16)) == (local, remote):
            sent, read = fields[4].split(":")
            return int(sent, 16), int(read, 16)
    raise AssertionError(f"no TCP socket from port {local} to {remote}")


def _reaped(pid: int) -> bool:
    """Whether the child ``pid`` is gone altogether (reaped: not even a zombie)."""
    return not Path(f"/proc/{pid}").exists()


async def _state_becomes(pid: int, state: str) -> None:
    """Wait until the process ``pid`` is in ``state`` (a letter of /proc/PID/status)."""

    def state_now() -> str:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("State:"):
                return line.split()[1]
        return ""

    await _until(lambda: state_now() == state, f"process {pid} in state {state}")


async def _until(condition: Callable[[], bool], what: str) -> None:
    """Wait until ``condition()`` holds (polled: /proc and the servers' records have no
    event to wait for)."""
    deadline = time.monotonic() + PATIENCE
    while not condition():
        assert time.monotonic() < deadline, f"never: {what}"
        await asyncio.sleep(0.005)


# -- servers -------------------------------------------------------------------------------------


class _PeerServer(FaultServer):
    """A FaultServer that notes the client's port of each request: the connection it came on."""

    def __init__(self) -> None:
        super().__init__()
        self.peers: list[tuple[str, int]] = []  # (path, client port), in arrival order

    @property
    def port(self) -> int:
        return int(self.base_url.rsplit(":", 1)[1])

    async def _endpoint(self, request: Request) -> Response:
        client = request.scope.get("client")
        self.peers.append((request.url.path, int(client[1]) if client else 0))
        return await super()._endpoint(request)


@pytest.fixture
async def server() -> AsyncIterator[_PeerServer]:
    async with _PeerServer() as s:
        yield s


class _Peer:
    """One request that came on a connection of :class:`_Origin`, for its route to answer."""

    def __init__(
        self, number: int, path: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.number = number  # the connection's, from 1 in the order accepted
        self.path = path
        self.reader = reader
        self.writer = writer

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def until_closed(self) -> None:
        """Wait until the client closes the connection (or resets it)."""
        with contextlib.suppress(ConnectionError):
            while await self.reader.read(64 * KiB):
                pass

    async def delivered(self) -> None:
        """Wait until all that was sent is with the client (in its socket, read or not)."""
        ours = int(self.writer.get_extra_info("sockname")[1])
        theirs = int(self.writer.get_extra_info("peername")[1])
        await _until(
            lambda: (
                self.writer.transport.get_write_buffer_size() == 0 and _queued(ours, theirs)[0] == 0
            ),
            "the client has all that was sent",
        )

    async def read_by_client(self) -> None:
        """Wait until the client has read all that was sent (nothing is on its way or unread),
        so the next bytes sent come in a read of their own."""
        ours = int(self.writer.get_extra_info("sockname")[1])
        theirs = int(self.writer.get_extra_info("peername")[1])
        await _until(
            lambda: (
                self.writer.transport.get_write_buffer_size() == 0
                and _queued(ours, theirs) == (0, 0)
                and _queued(theirs, ours) == (0, 0)
            ),
            "the client read all that was sent",
        )

    def reset(self) -> None:
        """End the connection with a reset (RST), not a close."""
        sock = self.writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.writer.transport.abort()


Route = Callable[[_Peer], Awaitable[bool]]  # True: the connection carries the next request


def _partial(body: bytes, *, fields: str = "") -> bytes:
    """A keep-alive 206 of all of ``body`` (not empty), with ``fields`` ("Name: value\\r\\n"
    lines) in its head."""
    size = len(body)
    return (
        f"HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 0-{size - 1}/{size}\r\n"
        f"Content-Length: {size}\r\n{fields}\r\n"
    ).encode() + body


class _Origin:
    """A keep-alive HTTP/1.1 server on 127.0.0.1 whose answers the test writes, byte by byte:
    each request's path picks its route, which answers it (or not) and says whether the
    connection goes on."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[tuple[int, str]] = []  # (connection number, path), as they came
        self.accepted = 0
        self.ended: dict[int, asyncio.Event] = {}  # by connection number: it is closed
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> _Origin:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def add(self, path: str, body: bytes, *, fields: str = "") -> None:
        """Answer ``path`` with a keep-alive 206 of ``body``."""
        answer = _partial(body, fields=fields)

        async def route(peer: _Peer) -> bool:
            await peer.send(answer)
            return True

        self.routes[path] = route

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.accepted += 1
        number = self.accepted
        self.ended[number] = asyncio.Event()
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                path = head.split(b" ", 2)[1].decode()
                self.requests.append((number, path))
                if not await self.routes[path](_Peer(number, path, reader, writer)):
                    return
        except asyncio.CancelledError:
            return  # the server stops (asyncio 3.11 logs a handler that ends cancelled)
        finally:
            self._tasks.discard(task)
            self.ended[number].set()
            writer.close()


@pytest.fixture
async def origin() -> AsyncIterator[_Origin]:
    async with _Origin() as o:
        yield o


# -- files taken whole ---------------------------------------------------------------------------


async def test_small_files_are_taken_whole_on_at_most_width_kept_connections(
    kit: _Kit, server: _PeerServer
) -> None:
    """Each file's body is in its temporary file exactly, and its result is ``Fetched`` with
    the size and validator the per-file path records for it (a strong ETag, else
    Last-Modified, else none), up to a body of the bulk's largest size; each file is asked for
    once, from its start, and twelve files go over at most ``width`` connections (kept
    alive)."""
    most = 100 * KiB
    sizes = [1, 1000, 10 * KiB, SPLICE_MIN + 1, most]  # the last one spliced by the parent
    bodies: dict[str, bytes] = {}
    for n in range(12):
        path = f"/small{n}"
        bodies[path] = os.urandom(sizes[n % len(sizes)])
        kind = n % 4
        if kind == 0:
            server.add(path, bodies[path])  # a strong ETag and Last-Modified
        elif kind == 1:
            server.add(path, bodies[path], weak_etag=True)  # Last-Modified is the validator
        elif kind == 2:
            server.add(path, bodies[path], etag=None)
        else:
            server.add(path, bodies[path], etag=None, last_modified=None)
    paths = list(bodies)
    width = 3
    bulk = await kit.open(server.port, width=width, most=most)
    assert await bulk.add([kit.entry(n, server.url(path)) for n, path in enumerate(paths)])
    outcomes = [_fetched(outcome) for outcome in await kit.results.of(*range(len(paths)))]
    assert bulk.under_way == 0

    for n, path in enumerate(paths):
        assert _on_disk(kit.temp(n)) == bodies[path]
        assert [(r.method, r.range) for r in server.requests_for(path)] == [("GET", "bytes=0-")]
    ports = {port for _, port in server.peers}
    assert 1 <= len(ports) <= width
    for n, path in enumerate(paths):
        sink = await kit.per_file(server.url(path))
        assert sink.content() == bodies[path]
        ((total, validator, _),) = sink.begun
        assert total == len(bodies[path])
        assert outcomes[n] == Fetched(total, validator, len(bodies[path]))
    assert {validator for _, validator, _ in outcomes} != {None}  # validators were recorded


async def test_an_informational_answer_before_the_206_is_skipped(kit: _Kit) -> None:
    """1xx answers before the 206 (here 100 Continue and 103 Early Hints) are skipped, as the
    per-file path skips them: the 206's body is taken."""
    body = os.urandom(3000)
    answer = (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        + b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
        + _partial(body, fields='ETag: "v1"\r\n')
    )
    async with RawServer(lambda head, number: answer) as raw_server:
        bulk = await kit.open(raw_server.port)
        await bulk.add([kit.entry(0, raw_server.url("/f"))])
        fetched = _fetched(await kit.results.one(0))
        sink = await kit.per_file(raw_server.url("/f"))
    assert fetched == Fetched(len(body), '"v1"', len(body))
    assert sink.begun == [(len(body), '"v1"', False)]
    assert _on_disk(kit.temp(0)) == body


async def test_a_hand_over_larger_than_one_message_goes_in_several(
    kit: _Kit, server: _PeerServer
) -> None:
    """Files whose entries (long temporary names, their GETs) fill more than one message to
    the helper are handed over in several; every one of them is fetched."""
    server.add("/one", b"x")
    count = 300
    folder = kit.folder / ("d" * 150)
    folder.mkdir()
    entries = [
        kit.entry(n, server.url("/one"), temp=str(folder / f"{'t' * 90}{n}.tmp"))
        for n in range(count)
    ]
    assert sum(len(entry[3]) + len(entry[4]) for entry in entries) > 64 * KiB
    bulk = await kit.open(server.port, width=4)
    assert await bulk.add(entries)
    outcomes = await kit.results.of(*range(count))
    assert all(outcome == Fetched(1, outcome.validator, 1) for outcome in map(_fetched, outcomes))
    assert all(_on_disk(os.fsdecode(entry[3])) == b"x" for entry in entries)
    assert len(server.requests_for("/one")) == count


# -- answers handed back -------------------------------------------------------------------------


async def _goes_on(kit: _Kit, answered: Answered, url: str, body: bytes) -> _Sink:
    """The per-file path goes on with ``answered`` to the whole file ``body``."""
    sink = await kit.per_file(url, answered)
    assert sink.content() == body
    assert sink.offset == len(body)
    return sink


@pytest.mark.parametrize("size", [16 * KiB + 1, 300 * KiB], ids=["most+1", "larger"])
async def test_a_body_larger_than_the_bulks_largest_goes_on_in_the_per_file_path(
    kit: _Kit, server: _PeerServer, size: int
) -> None:
    """A 206 longer than the bulk's largest body is handed back (``Answered``) with its
    connection, which the helper no longer holds, and the bytes read; the per-file path reads
    the rest from there into the file exactly, and the server saw one request for it."""
    body = os.urandom(size)
    server.add("/large", body)
    bulk = await kit.open(server.port, most=16 * KiB)
    await bulk.add([kit.entry(0, server.url("/large"))])
    answered = _answered(await kit.results.one(0))
    assert answered.raw.startswith(b"HTTP/1.1 206 ")
    sock = answered.take()
    answered = kit.results.got[0] = Answered(sock, answered.raw)  # closed after the test
    pid = kit.helper.pid
    assert pid is not None
    link = f"socket:[{os.fstat(sock.fileno()).st_ino}]"
    await _until(lambda: link not in _open_files(pid), "the helper closes its descriptor")
    await _goes_on(kit, answered, server.url("/large"), body)
    assert len(server.requests_for("/large")) == 1
    assert _on_disk(kit.temp(0)) is None  # the helper never made it


async def test_a_chunked_206_goes_on_in_the_per_file_path(kit: _Kit, origin: _Origin) -> None:
    """A 206 whose body is chunked (its length unknown to the helper) is handed back; the
    per-file path decodes the rest of it into the file, with one request."""
    body = os.urandom(5000)

    async def chunked(peer: _Peer) -> bool:
        await peer.send(
            b"HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 0-4999/5000\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        for piece in (body[:3000], body[3000:]):
            await peer.send(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
        await peer.send(b"0\r\n\r\n")
        return True

    origin.routes["/chunked"] = chunked
    bulk = await kit.open(origin.port)
    await bulk.add([kit.entry(0, origin.url("/chunked"))])
    answered = _answered(await kit.results.one(0))
    await _goes_on(kit, answered, origin.url("/chunked"), body)
    assert origin.requests == [(1, "/chunked")]


async def test_an_empty_files_416_goes_on_in_the_per_file_path(
    kit: _Kit, server: _PeerServer
) -> None:
    """An empty file's answer to ``Range: bytes=0-`` (416, ``bytes */0``) is no body the
    helper takes: handed back, the per-file path completes the file empty, with one
    request."""
    server.add("/empty", b"")
    bulk = await kit.open(server.port)
    await bulk.add([kit.entry(0, server.url("/empty"))])
    answered = _answered(await kit.results.one(0))
    sink = await _goes_on(kit, answered, server.url("/empty"), b"")
    assert [(total, restart) for total, _, restart in sink.begun] == [(0, False)]
    assert [r.status for r in server.requests_for("/empty")] == [416]


async def test_a_redirect_is_handed_back_with_the_rest_of_its_answer_unread(
    kit: _Kit, server: _PeerServer
) -> None:
    """A redirect is handed back with its connection, where the rest of its answer is, from
    the end of the bytes read on (read here to its end: nothing more is on the connection);
    the per-file path gives such a fetch to its fallback transport (which applies the job's
    redirect policy) without writing a byte. One request each."""
    target = server.url("/elsewhere")
    for path in ("/moved0", "/moved1"):
        server.set_fault(path, Fault(status=302, location=target))
    bulk = await kit.open(server.port)
    await bulk.add([kit.entry(n, server.url(f"/moved{n}")) for n in range(2)])
    first, second = map(_answered, await kit.results.of(0, 1))

    sock = first.take()
    try:
        answer = answer_of(first.raw)
        loop = asyncio.get_running_loop()
        while not answer.complete:
            data = await asyncio.wait_for(loop.sock_recv(sock, 64 * KiB), PATIENCE)
            assert data, "the connection ended before the answer"
            answer.parser.feed_data(data)
        head = head_of(answer)
        assert (head.status, head.headers["Location"]) == (302, target)
        assert answer.take() == b"302 Found\n"
        with pytest.raises(BlockingIOError):
            sock.recv(1)  # the answer's end is the end of what the server sent
    finally:
        sock.close()

    sink = await kit.per_file(server.url("/moved1"), second)
    assert kit.fallback.fetched == [server.url("/moved1")]
    assert sink.begun == []
    assert sink.content() == b""
    for path in ("/moved0", "/moved1"):
        assert len(server.requests_for(path)) == 1


async def test_a_head_too_large_for_one_message_is_handed_back_whole(
    kit: _Kit, origin: _Origin
) -> None:
    """A head larger than ``RAW_MAX`` is handed back with at most ``RAW_MAX`` bytes read, so
    the helper's message holds every byte it read, whatever the sizes of its reads (here
    it has read just under ``RAW_MAX`` when a large read comes); the per-file path reads the
    rest of the head and the body, with one request."""
    body = os.urandom(300 * KiB)
    filler = "".join(f"X-Filler-{n}: {'f' * 1000}\r\n" for n in range(150))
    answer = _partial(body, fields=filler)
    cuts = [0, 100, 100 + 64 * KiB, RAW_MAX - 100]

    async def in_pieces(peer: _Peer) -> bool:
        for start, end in itertools.pairwise(cuts):
            await peer.send(answer[start:end])
            await peer.read_by_client()
        await peer.send(answer[cuts[-1] :])
        return True

    origin.routes["/head"] = in_pieces
    bulk = await kit.open(origin.port)
    await bulk.add([kit.entry(0, origin.url("/head"))])
    answered = _answered(await kit.results.one(0))
    assert len(answered.raw) <= RAW_MAX
    assert answer.startswith(answered.raw)
    await _goes_on(kit, answered, origin.url("/head"), body)
    assert origin.requests == [(1, "/head")]


async def test_a_connection_handed_back_counts_within_the_width_until_released(
    kit: _Kit, server: _PeerServer
) -> None:
    """A connection handed back with an answer counts among the bulk's until ``release``: a
    bulk of width 1 starts its next file only then (a later bulk's file, fetched meanwhile
    on the same helper, shows the helper went on)."""
    large = os.urandom(32 * KiB)
    server.add("/large", large)
    server.add("/next", b"next")
    bulk = await kit.open(server.port, width=1, most=16 * KiB)
    await bulk.add([kit.entry(0, server.url("/large")), kit.entry(1, server.url("/next"))])
    answered = _answered(await kit.results.one(0))

    other = await kit.open(server.port, width=1)
    await other.add([kit.entry(100, server.url("/next"), temp=kit.temp(100))])
    _fetched(await kit.results.one(100))
    assert 1 not in kit.results.got
    assert len(server.requests_for("/next")) == 1  # the other bulk's

    await _goes_on(kit, answered, server.url("/large"), large)
    await bulk.release(1)
    assert _fetched(await kit.results.one(1)).size == 4
    assert _on_disk(kit.temp(1)) == b"next"


async def test_a_connection_handed_back_for_a_file_cancelled_meanwhile_is_released(
    kit: _Kit, origin: _Origin
) -> None:
    """An answer handed back with its connection for a file cancelled while the answer was on
    its way: the parent closes the connection (the server sees it end) and the helper counts
    it no more, so a file handed over later still gets a connection within the width."""
    origin.add("/first", b"first")
    origin.add("/later", b"later")
    large = _partial(os.urandom(32 * KiB))
    go, sent = asyncio.Event(), asyncio.Event()

    async def when_told(peer: _Peer) -> bool:
        await go.wait()
        await peer.send(large)
        sent.set()
        return True

    origin.routes["/large"] = when_told
    bulk = await kit.open(origin.port, width=1, most=16 * KiB)
    await bulk.add([kit.entry(0, origin.url("/first")), kit.entry(1, origin.url("/large"))])
    _fetched(await kit.results.one(0))
    await _until(lambda: len(origin.requests) == 2, "the second file asked for")
    pid = kit.helper.pid
    assert pid is not None
    control = kit.helper._control
    assert control is not None
    # The helper answers only once the loop is held here (it is stopped until then), and the
    # loop is held until that answer waits to be read: the cancel (the first step of the task
    # made then) comes before the bulk reads the answer.
    os.kill(pid, signal.SIGSTOP)
    try:
        await _state_becomes(pid, "T")
        go.set()
        await sent.wait()
    finally:
        os.kill(pid, signal.SIGCONT)
    readable, _, _ = select.select([control], [], [], PATIENCE)
    assert readable
    cancelled = asyncio.ensure_future(bulk.cancel_after(0))
    await asyncio.wait_for(cancelled, PATIENCE)
    await asyncio.wait_for(origin.ended[1].wait(), PATIENCE)
    assert 1 not in kit.results.got

    await bulk.add([kit.entry(2, origin.url("/later"))])
    assert _fetched(await kit.results.one(2)).size == 5


# -- failures, as the per-file path gives them ---------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "code"),
    [
        (Fault(status=404), codes.http_error(404)),
        (Fault(status=503, retry_after="120"), codes.http_error(503)),
        # An HTTP-date: the bulk reads it with the clock the per-file path reads it with.
        (
            Fault(status=503, retry_after=email.utils.formatdate(1_800_000_060, usegmt=True)),
            codes.http_error(503),
        ),
        (Fault(ignore_range=True), codes.BG_E_INSUFFICIENT_RANGE_SUPPORT),
        (Fault(no_content_length=True), codes.BG_E_MISSING_FILE_SIZE),  # a chunked 200
    ],
    ids=["404", "503-retry-after-seconds", "503-retry-after-date", "200-to-range", "chunked-200"],
)
async def test_an_answer_that_is_no_file_is_the_per_file_paths_error(
    kit: _Kit, server: _PeerServer, fault: Fault, code: int
) -> None:
    """A status that is not an answer (404, 503 with Retry-After in both forms), a 200 to the
    Range request and a chunked 200 without a size fail the file with the error the per-file
    path gives for the same answer: code, context, transient or fatal, message, Retry-After;
    nothing is held, no temporary file made, one request."""
    body = os.urandom(3000)
    server.add("/f", body)
    server.set_fault("/f", fault)
    bulk = await kit.open(server.port)
    await bulk.add([kit.entry(0, server.url("/f"))])
    failed = _failed(await kit.results.one(0))
    assert len(server.requests_for("/f")) == 1
    expected = await kit.per_file_error(server.url("/f"))
    assert _said(failed.error) == _said(expected)
    assert failed.error.hresult == code
    assert failed.held is None
    assert _on_disk(kit.temp(0)) is None


_HEAD = "HTTP/1.1 206 Partial Content\r\n"


@pytest.mark.parametrize(
    ("answer", "code"),
    [
        (None, codes.BG_E_CONNECTION_CLOSED),  # closed without a byte
        (b"HTTP/1.1 206 Partial Con", codes.BG_E_CONNECTION_CLOSED),  # closed in the head
        (b"NOT HTTP AT ALL\r\n\r\n", codes.BG_E_INVALID_SERVER_RESPONSE),
        (
            b"HTTP/1.1 206 Partial Content\r\nContent-Length: 1x\r\n\r\n",
            codes.BG_E_INVALID_SERVER_RESPONSE,
        ),
        (_partial(b"12345") + b"extra", codes.BG_E_INVALID_SERVER_RESPONSE),
        (
            f"{_HEAD}Content-Range: bytes 5-9/10\r\nContent-Length: 5\r\n\r\n12345".encode(),
            codes.BG_E_INVALID_SERVER_RESPONSE,
        ),
        (
            f"{_HEAD}Content-Range: bytes 0-4/5\r\nContent-Length: 6\r\n\r\n123456".encode(),
            codes.BG_E_INVALID_SERVER_RESPONSE,
        ),
        (
            f"{_HEAD}Content-Range: bytes 0-4/*\r\nContent-Length: 5\r\n\r\n12345".encode(),
            codes.BG_E_MISSING_FILE_SIZE,
        ),
        (
            f"{_HEAD}Content-Length: 5\r\n\r\n12345".encode(),
            codes.BG_E_INVALID_SERVER_RESPONSE,
        ),
    ],
    ids=[
        "closed-before-answer",
        "closed-in-head",
        "not-http",
        "bad-content-length",
        "bytes-after-answer",
        "other-range",
        "longer-than-range",
        "unknown-size",
        "no-content-range",
    ],
)
async def test_a_broken_answer_is_the_per_file_paths_error(
    kit: _Kit, answer: bytes | None, code: int
) -> None:
    """A connection closed before or in the head, a head httptools cannot parse, bytes after
    the answer, and a 206 whose framing contradicts its Content-Range (other bytes, more
    bytes, no size, none) fail the file with the error the per-file path gives for the same
    bytes."""
    async with RawServer(lambda head, number: answer) as raw_server:
        bulk = await kit.open(raw_server.port)
        await bulk.add([kit.entry(0, raw_server.url("/f"))])
        failed = _failed(await kit.results.one(0))
        assert len(raw_server.heads) == 1
        expected = await kit.per_file_error(raw_server.url("/f"))
    assert _said(failed.error) == _said(expected)
    assert failed.error.hresult == code
    assert failed.held is None


def _closed_port(host: str) -> int:
    """A port of the loopback address ``host`` nobody listens on (a connection to it is
    refused); skips the test where ``host`` cannot be bound."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        listener = socket.create_server((host, 0), family=family)
    except OSError as exc:
        pytest.skip(f"no {host} here ({exc})")
    with listener:
        return int(listener.getsockname()[1])


def _unreachable_port(host: str) -> int:
    """A port of ``host`` (a multicast address) whose connect fails at once (ENETUNREACH, no
    TCP route); skips the test where it does not."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setblocking(False)
        if sock.connect_ex((host, 9)) != errno.ENETUNREACH:
            pytest.skip(f"a connection to {host} does not fail at once here")
    return 9


@pytest.mark.parametrize(
    ("host", "port_of", "failure"),
    [
        ("127.0.0.1", _closed_port, "Connect call failed ('127.0.0.1', "),
        ("::1", _closed_port, "Connect call failed ('::1', "),
        ("224.0.0.1", _unreachable_port, "] Network is unreachable"),
    ],
    ids=["refused-ipv4", "refused-ipv6", "unreachable-at-once"],
)
async def test_a_connection_that_fails_is_the_per_file_paths_connect_error(
    kit: _Kit, host: str, port_of: Callable[[str], int], failure: str
) -> None:
    """A connection that cannot be made (every address tried: refused, over IPv4 and IPv6,
    or failing at once) fails each file with the per-file path's connect error:
    BG_E_CONNECT_FAILURE, the same message (``rawhttp.connect_failed``: the host, the port,
    the last address's failure as asyncio words it)."""
    port = port_of(host)
    url = f"http://{f'[{host}]' if ':' in host else host}:{port}/f"
    bulk = await kit.open(port, host=host)
    await bulk.add([kit.entry(0, url), kit.entry(1, url)])
    outcomes = [_failed(outcome) for outcome in await kit.results.of(0, 1)]
    expected = await kit.per_file_error(url)
    for failed in outcomes:
        assert _said(failed.error) == _said(expected)
        assert failed.error.hresult == codes.BG_E_CONNECT_FAILURE
        assert failure in failed.error.message
        assert failed.held is None


@contextlib.contextmanager
def _unanswering_listener() -> Iterator[int]:
    """The port of a listener whose accept queue is full (nothing accepts): Linux drops the
    SYN of a new connection to it, so connecting waits until it times out. Skips the test
    where the kernel answers anyway."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    fillers: list[socket.socket] = []
    try:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        address = listener.getsockname()
        for _ in range(8):
            probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            probe.setblocking(False)
            probe.connect_ex(address)
            _, connected, _ = select.select([], [probe], [], 0.2)
            if not connected:
                probe.close()
                yield int(address[1])
                return
            fillers.append(probe)
        pytest.skip("the kernel completes connections to a full listener here")
    finally:
        for sock in fillers:
            sock.close()
        listener.close()


async def test_a_connect_that_times_out_is_the_per_file_paths_connect_error(kit: _Kit) -> None:
    """A connection that is not made within the connect timeout fails the file with the
    per-file path's connect error for a timeout (BG_E_CONNECT_FAILURE, the same message)."""
    with _unanswering_listener() as port:
        url = f"http://127.0.0.1:{port}/f"
        bulk = await kit.open(port, connect_timeout=SHORT)
        await bulk.add([kit.entry(0, url)])
        failed = _failed(await kit.results.one(0))
        expected = await kit.per_file_error(url)
    assert _said(failed.error) == _said(expected)
    assert failed.error.hresult == codes.BG_E_CONNECT_FAILURE
    assert failed.held is None


@pytest.mark.parametrize(
    ("size", "drop"), [(50 * KiB, 20 * KiB), (200 * KiB, 150 * KiB)], ids=["read", "spliced"]
)
async def test_a_body_cut_short_is_the_per_file_paths_error_with_its_bytes_held(
    kit: _Kit, server: _PeerServer, size: int, drop: int
) -> None:
    """A connection closed in the body (fewer bytes than its Content-Length, in a body the
    parent would read in memory or splice) fails the file with the per-file path's error
    (BG_E_CONNECTION_CLOSED, the bytes counted alike), holding the bytes before the cut:
    the file's size and validator, and those bytes in the temporary file."""
    body = os.urandom(size)
    server.add("/cut", body)
    server.set_fault("/cut", Fault(drop_after=drop))
    bulk = await kit.open(server.port)
    await bulk.add([kit.entry(0, server.url("/cut"))])
    failed = _failed(await kit.results.one(0))
    expected = await kit.per_file_error(server.url("/cut"))
    assert _said(failed.error) == _said(expected)
    assert failed.error.hresult == codes.BG_E_CONNECTION_CLOSED
    assert len(server.requests_for("/cut")) == 2  # the bulk's, the per-file path's
    ((total, validator, _),) = kit.sinks[-1].begun  # what the per-file path records
    assert total == size
    assert validator is not None
    assert failed.held == Fetched(total, validator, drop)
    assert _on_disk(kit.temp(0)) == body[:drop]


@pytest.mark.parametrize(
    ("size", "sent", "code"),
    [
        (40 * KiB, 10 * KiB, codes.BG_E_RECEIVE_FAILURE),
        (200 * KiB, 20 * KiB, codes.BG_E_CONNECTION_CLOSED),
    ],
    ids=["read", "spliced"],
)
async def test_a_reset_in_the_body_is_the_per_file_paths_error(
    kit: _Kit, origin: _Origin, size: int, sent: int, code: int
) -> None:
    """A connection reset in the body is an error where the parent would read the rest of
    the body in memory (BG_E_RECEIVE_FAILURE), and the end of the body where it would splice
    it (a splice takes a reset as the end: BG_E_CONNECTION_CLOSED), as on the per-file path;
    the bytes before the reset are held."""
    body = os.urandom(size)
    answer = _partial(body)
    head = len(answer) - size

    async def resets(peer: _Peer) -> bool:
        await peer.send(answer[: head + sent])
        await peer.read_by_client()
        peer.reset()
        return False

    origin.routes["/reset"] = resets
    bulk = await kit.open(origin.port)
    await bulk.add([kit.entry(0, origin.url("/reset"))])
    failed = _failed(await kit.results.one(0))
    expected = await kit.per_file_error(origin.url("/reset"))
    assert _said(failed.error) == _said(expected)
    assert failed.error.hresult == code
    assert failed.held == Fetched(size, None, sent)
    assert _on_disk(kit.temp(0)) == body[:sent]


@pytest.mark.parametrize(
    ("fault", "held"),
    [
        (Fault(stall_before_headers=PATIENCE), 0),
        (Fault(stall_after=20 * KiB, stall_seconds=PATIENCE), 20 * KiB),
    ],
    ids=["before-head", "in-body"],
)
async def test_a_silent_server_is_the_per_file_paths_timeout(
    kit: _Kit, server: _PeerServer, fault: Fault, held: int
) -> None:
    """A server silent for the read timeout, before its head or in the body, fails the file
    with the per-file path's timeout (BG_E_TIMEOUT, the same message), holding the bytes
    before the silence."""
    body = os.urandom(50 * KiB)
    server.add("/slow", body)
    server.set_fault("/slow", fault)
    bulk = await kit.open(server.port, read_timeout=SHORT)
    await bulk.add([kit.entry(0, server.url("/slow"))])
    failed = _failed(await kit.results.one(0))
    expected = await kit.per_file_error(server.url("/slow"))
    assert _said(failed.error) == _said(expected)
    assert failed.error.hresult == codes.BG_E_TIMEOUT
    if not held:
        assert failed.held is None
        return
    assert failed.held is not None
    assert (failed.held.size, failed.held.bytes_total) == (held, len(body))
    assert _on_disk(kit.temp(0)) == body[:held]


def _sink_error(temp: str, local: str) -> TransferError:
    """The error the per-file path gives for a temporary file it cannot open: its sink's
    (``FileSink`` opens it with ``open_temp`` and classifies the failure)."""
    try:
        os.close(open_temp(temp, 0)[0])
    except OSError as exc:
        return classify.from_local_os_error(exc, local_name=local)
    raise AssertionError(f"the per-file path opened {temp}")


@pytest.mark.parametrize(
    "place",
    [
        "missing-folder",
        "file-as-folder",
        "folder-in-place",
        "symlink-in-place",
        pytest.param(
            "read-only-folder",
            marks=pytest.mark.skipif(
                os.geteuid() == 0, reason="root writes into a read-only folder"
            ),
        ),
    ],
)
async def test_a_temporary_file_that_cannot_be_made_is_the_per_file_paths_local_error(
    kit: _Kit, server: _PeerServer, tmp_path: Path, place: str
) -> None:
    """A temporary file that cannot be opened (its folder missing, a file in the folder's
    place, a folder or a symbolic link in its own place, a read-only folder) fails the file
    with the LOCAL_FILE error the per-file path gives when it opens it (``open_temp``, as
    ``FileSink`` classifies it); a symbolic link is not followed."""
    server.add("/f", b"body")
    folder = tmp_path / "files"
    folder.mkdir()
    temp = folder / "f.tmp"
    target = tmp_path / "target"
    target.write_bytes(b"untouched")
    if place == "missing-folder":
        folder = tmp_path / "missing"
        temp = folder / "f.tmp"
    elif place == "file-as-folder":
        folder = tmp_path / "plain"
        folder.write_bytes(b"")
        temp = folder / "f.tmp"
    elif place == "folder-in-place":
        temp.mkdir()
    elif place == "symlink-in-place":
        temp.symlink_to(target)
    else:
        folder.chmod(0o500)
    local = str(folder / "f")
    bulk = await kit.open(server.port)
    try:
        await bulk.add([kit.entry(0, server.url("/f"), temp=str(temp), local=local)])
        failed = _failed(await kit.results.one(0))
        expected = _sink_error(str(temp), local)
    finally:
        if place == "read-only-folder":
            folder.chmod(0o700)
    assert _said(failed.error) == _said(expected)
    assert failed.held is None
    assert _on_disk(str(target)) == b"untouched"
    assert len(server.requests_for("/f")) == 1


def _flush_error(local: str) -> TransferError:
    """The error the per-file path gives for a temporary file deleted while it was written:
    its sink's, when it makes the file durable (``flush_temp``, as ``FileSink`` classifies
    it)."""
    fd, _ = open_temp(local + ".gone", 0)
    try:
        os.unlink(local + ".gone")
        flush_temp(fd)
    except OSError as exc:
        return classify.from_local_os_error(exc, local_name=local)
    finally:
        os.close(fd)
    raise AssertionError("a deleted file was flushed without an error")


async def test_a_temporary_file_deleted_while_written_is_the_per_file_paths_error(
    kit: _Kit, origin: _Origin
) -> None:
    """A temporary file deleted while the helper writes it fails the file with the error the
    per-file path gives when it makes such a file durable (LOCAL_FILE, not found), and
    nothing is held: the bytes went with the file."""
    body = os.urandom(60 * KiB)
    answer = _partial(body)
    go = asyncio.Event()

    async def in_two(peer: _Peer) -> bool:
        await peer.send(answer[: 30 * KiB])
        await go.wait()
        await peer.send(answer[30 * KiB :])
        return True

    origin.routes["/f"] = in_two
    bulk = await kit.open(origin.port)
    await bulk.add([kit.entry(0, origin.url("/f"))])
    pid = kit.helper.pid
    assert pid is not None
    await _until(lambda: kit.temp(0) in _open_files(pid), "the helper writes the file")
    os.unlink(kit.temp(0))
    go.set()
    failed = _failed(await kit.results.one(0))
    expected = _flush_error(str(kit.folder / "f0"))
    assert _said(failed.error) == _said(expected)
    assert failed.held is None


# -- kept connections ----------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["closed", "reset"])
async def test_a_kept_connection_the_server_ended_is_replaced(
    kit: _Kit, origin: _Origin, how: str
) -> None:
    """A kept connection that the server ends (closed or reset) before any byte of the next
    answer is replaced by a new one, which carries the request again: the file is fetched
    without an error."""
    first, second = os.urandom(3000), os.urandom(4000)
    origin.add("/first", first)

    async def ends_the_first_connection(peer: _Peer) -> bool:
        if peer.number == 1:
            if how == "reset":
                peer.reset()
            return False  # closed
        await peer.send(_partial(second))
        return True

    origin.routes["/second"] = ends_the_first_connection
    bulk = await kit.open(origin.port, width=1)
    await bulk.add([kit.entry(0, origin.url("/first")), kit.entry(1, origin.url("/second"))])
    outcomes = [_fetched(outcome) for outcome in await kit.results.of(0, 1)]
    assert [outcome.size for outcome in outcomes] == [len(first), len(second)]
    assert _on_disk(kit.temp(1)) == second
    assert origin.requests == [(1, "/first"), (1, "/second"), (2, "/second")]


async def test_a_replacement_connection_ended_too_is_the_per_file_paths_error(
    kit: _Kit, origin: _Origin
) -> None:
    """A kept connection is replaced once: when the new connection too ends before the
    answer, the file fails with the per-file path's error for it."""
    origin.add("/first", b"first")

    async def never(peer: _Peer) -> bool:
        return False

    origin.routes["/second"] = never
    bulk = await kit.open(origin.port, width=1)
    await bulk.add([kit.entry(0, origin.url("/first")), kit.entry(1, origin.url("/second"))])
    _, second = await kit.results.of(0, 1)
    failed = _failed(second)
    assert origin.requests == [(1, "/first"), (1, "/second"), (2, "/second")]
    expected = await kit.per_file_error(origin.url("/second"))
    assert _said(failed.error) == _said(expected)
    assert failed.error.hresult == codes.BG_E_CONNECTION_CLOSED


@pytest.mark.parametrize(
    ("version", "fields", "kept"),
    [
        ("1.1", "", True),
        ("1.1", "Connection: close\r\n", False),
        ("1.0", "", False),
        ("1.0", "Connection: keep-alive\r\n", True),
    ],
    ids=["1.1", "1.1-close", "1.0", "1.0-keep-alive"],
)
async def test_a_connection_is_kept_only_where_its_answer_lets_it(
    kit: _Kit, origin: _Origin, version: str, fields: str, kept: bool
) -> None:
    """A connection carries the next file only if its answer lets it, as the per-file path
    reads it: HTTP/1.1 unless ``Connection: close``, HTTP/1.0 only with a Connection field
    that does not say close."""
    for path in ("/a", "/b"):
        answer = _partial(path.encode(), fields=fields).replace(
            b"HTTP/1.1", f"HTTP/{version}".encode(), 1
        )

        async def route(peer: _Peer, answer: bytes = answer) -> bool:
            await peer.send(answer)
            return True  # the server would go on: the client decides

        origin.routes[path] = route
    bulk = await kit.open(origin.port, width=1)
    await bulk.add([kit.entry(0, origin.url("/a")), kit.entry(1, origin.url("/b"))])
    assert [_fetched(outcome).size for outcome in await kit.results.of(0, 1)] == [2, 2]
    for path in ("/a", "/b"):
        sink = await kit.per_file(origin.url(path))
        assert sink.content() == path.encode()
    first, second, third, fourth = origin.requests
    assert (first[0] == second[0], third[0] == fourth[0]) == (kept, kept)


async def test_a_kept_connection_with_bytes_after_its_answer_is_not_used_again(
    kit: _Kit, origin: _Origin
) -> None:
    """A kept connection on which the server sent bytes after its answer (here what looks
    like an answer) carries no other request, as on the per-file path (``alive``): the next
    file goes on a new connection and gets its own bytes."""
    second = os.urandom(3000)
    first_read = asyncio.Event()
    stray_sent = asyncio.Event()

    async def then_more(peer: _Peer) -> bool:
        await peer.send(_partial(b"first"))
        await first_read.wait()
        await peer.send(_partial(b"STRAY"))
        await peer.delivered()
        stray_sent.set()
        return True

    origin.routes["/first"] = then_more
    origin.add("/second", second)
    bulk = await kit.open(origin.port, width=1)
    await bulk.add([kit.entry(0, origin.url("/first"))])
    assert _fetched(await kit.results.one(0)).size == 5
    first_read.set()
    await asyncio.wait_for(stray_sent.wait(), PATIENCE)
    await bulk.add([kit.entry(1, origin.url("/second"))])
    fetched = _fetched(await kit.results.one(1))
    assert _on_disk(kit.temp(1)) == second
    assert fetched.size == len(second)
    assert origin.requests == [(1, "/first"), (2, "/second")]


# -- cancel, death -------------------------------------------------------------------------------


async def test_cancel_after_stops_the_later_files_and_leaves_the_helper_none_of_them(
    kit: _Kit, origin: _Origin
) -> None:
    """``cancel_after(p)`` returns once the helper holds no descriptor of a file after ``p``
    (neither its temporary file nor its connection, which the server sees closed); those
    files get no result and none of their temporary files is made again, nor are the files
    waiting asked for. A file before ``p`` still under way goes on and is fetched, and so is
    a file added later."""
    bodies = {n: os.urandom(2000 + n) for n in range(7)}
    origin.add("/f0", bodies[0])
    gate = asyncio.Event()

    async def gated(peer: _Peer) -> bool:
        await gate.wait()
        await peer.send(_partial(bodies[1]))
        return True

    origin.routes["/f1"] = gated
    closed = {n: asyncio.Event() for n in (2, 3)}

    async def stalls_in_the_body(peer: _Peer) -> bool:
        n = int(peer.path[2:])
        await peer.send(_partial(os.urandom(60 * KiB))[: 30 * KiB])
        await peer.until_closed()
        closed[n].set()
        return False

    for n in (2, 3):
        origin.routes[f"/f{n}"] = stalls_in_the_body
    for n in (4, 5, 6):
        origin.add(f"/f{n}", bodies[n])

    bulk = await kit.open(origin.port, width=3)
    await bulk.add([kit.entry(n, origin.url(f"/f{n}")) for n in range(6)])
    _fetched(await kit.results.one(0))
    pid = kit.helper.pid
    assert pid is not None
    cut = {kit.temp(2), kit.temp(3)}
    await _until(lambda: cut <= _open_files(pid), "the helper writes files 2 and 3")

    await bulk.cancel_after(1)
    assert not {kit.temp(n) for n in (2, 3, 4, 5)} & _open_files(pid)
    for n in (2, 3):
        await asyncio.wait_for(closed[n].wait(), PATIENCE)
        os.unlink(kit.temp(n))

    await bulk.add([kit.entry(6, origin.url("/f6"))])
    assert _fetched(await kit.results.one(6)).size == len(bodies[6])
    assert _on_disk(kit.temp(6)) == bodies[6]
    assert 1 not in kit.results.got  # still waiting for its answer, not stopped
    gate.set()
    assert _fetched(await kit.results.one(1)).size == len(bodies[1])
    assert _on_disk(kit.temp(1)) == bodies[1]

    assert sorted(kit.results.got) == [0, 1, 6]
    assert not any(_on_disk(kit.temp(n)) is not None for n in (2, 3, 4, 5))
    assert [path for _, path in origin.requests] == ["/f0", "/f1", "/f2", "/f3", "/f6"]
    assert bulk.under_way == 0


async def test_a_caller_cancelled_during_cancel_after_is_cancelled_once_the_helper_answered(
    kit: _Kit, origin: _Origin
) -> None:
    """A cancel of the task waiting in ``cancel_after`` (a Suspend while a failure stops a
    bulk) does not cut the wait short, and is not lost: ``cancel_after`` raises it once the
    helper holds no descriptor of the stopped files."""
    closed = asyncio.Event()

    async def stalls_in_the_body(peer: _Peer) -> bool:
        await peer.send(_partial(os.urandom(60 * KiB))[: 30 * KiB])
        await peer.until_closed()
        closed.set()
        return False

    origin.routes["/f0"] = stalls_in_the_body
    bulk = await kit.open(origin.port, width=1)
    await bulk.add([kit.entry(0, origin.url("/f0"))])
    pid = kit.helper.pid
    assert pid is not None
    await _until(lambda: kit.temp(0) in _open_files(pid), "the helper writes file 0")
    waiting = asyncio.create_task(bulk.cancel_after(-1))
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert kit.temp(0) not in _open_files(pid)
    await asyncio.wait_for(closed.wait(), PATIENCE)
    assert bulk.alive
    assert kit.helper.pid == pid  # the helper answered: it was not killed


async def test_close_stops_the_files_under_way_and_closes_every_connection(
    kit: _Kit, origin: _Origin
) -> None:
    """``close`` stops every file under way (no result, no descriptor left with the helper)
    and closes the bulk's kept connections, which the server sees end; the helper goes on
    serving other bulks."""
    origin.add("/f0", b"zero")

    async def stalls_in_the_body(peer: _Peer) -> bool:
        await peer.send(_partial(os.urandom(60 * KiB))[: 30 * KiB])
        await peer.until_closed()
        return False

    origin.routes["/f1"] = stalls_in_the_body
    bulk = await kit.open(origin.port, width=2)
    await bulk.add([kit.entry(0, origin.url("/f0")), kit.entry(1, origin.url("/f1"))])
    _fetched(await kit.results.one(0))
    pid = kit.helper.pid
    assert pid is not None
    await _until(lambda: kit.temp(1) in _open_files(pid), "the helper writes file 1")
    await bulk.close()
    assert not bulk.alive
    assert kit.temp(1) not in _open_files(pid)
    for number in (1, 2):
        await asyncio.wait_for(origin.ended[number].wait(), PATIENCE)
    assert sorted(kit.results.got) == [0]

    later = await kit.open(origin.port)
    await later.add([kit.entry(2, origin.url("/f0"))])
    assert _fetched(await kit.results.one(2)).size == 4
    assert kit.helper.pid == pid


async def _silent(peer: _Peer) -> bool:
    """A route that never answers: it waits until the client closes the connection."""
    await peer.until_closed()
    return False


async def test_a_helper_that_does_not_answer_a_cancel_is_killed(
    kit: _Kit, origin: _Origin, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``cancel_after`` waits for the helper's answer at most ``CANCEL_TIMEOUT``; a helper
    that does not answer (stopped here) may still hold the files' descriptors, so it is
    killed and reaped: the files before the position still under way are handed back
    (outcome None), those after it get no result, and the bulk is gone."""
    monkeypatch.setattr("bitsd._transfer.bulkfetch.CANCEL_TIMEOUT", SHORT)

    for n in range(3):
        origin.routes[f"/f{n}"] = _silent
    bulk = await kit.open(origin.port, width=3)
    await bulk.add([kit.entry(n, origin.url(f"/f{n}")) for n in range(3)])
    await _until(lambda: len(origin.requests) == 3, "three files asked for")
    pid = kit.helper.pid
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)
    await _state_becomes(pid, "T")
    await asyncio.wait_for(bulk.cancel_after(0), PATIENCE)
    assert _reaped(pid)
    assert kit.helper.pid is None
    assert kit.results.got == {0: None}
    assert not bulk.alive


async def test_no_bulk_opens_without_a_helper(kit: _Kit) -> None:
    """Where the splice helper is off, no bulk opens (the files stay on the per-file
    path)."""
    off = SpliceHelper(enabled=False)
    bulk = await Bulk.open(
        off,
        kit.clock,
        "127.0.0.1",
        80,
        [(socket.AF_INET, ("127.0.0.1", 80))],
        kit.results,
        width=1,
        most=BULK_MOST,
        connect_timeout=TIMEOUT,
        read_timeout=TIMEOUT,
    )
    assert bulk is None
    assert off.pid is None


async def test_a_helper_that_dies_hands_back_every_file_under_way(
    kit: _Kit, origin: _Origin
) -> None:
    """A helper killed while files are under way (being fetched, or waiting for a
    connection) hands each back to be fetched from the start (outcome None); the bulk is gone:
    it takes no more files, and cancelling or closing it returns at once."""

    for n in range(4):
        origin.routes[f"/f{n}"] = _silent
    bulk = await kit.open(origin.port, width=2)
    await bulk.add([kit.entry(n, origin.url(f"/f{n}")) for n in range(4)])
    await _until(lambda: len(origin.requests) == 2, "two files asked for")
    pid = kit.helper.pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    assert await kit.results.of(0, 1, 2, 3) == [None] * 4
    assert not bulk.alive
    assert bulk.under_way == 0
    assert not await bulk.add([kit.entry(4, origin.url("/f0"))])
    async with asyncio.timeout(PATIENCE):
        await bulk.cancel_after(-1)
        await bulk.close()
    assert sorted(kit.results.got) == [0, 1, 2, 3]
