"""The splice helper (``splicehelper.SpliceHelper`` and ``splicehelper_child.py``) against real
loopback TCP connections, real temporary files and a real helper process: a body moves exactly
and is reported at least every chunk; a connection that ends early is the end of the body; a
silent server is a TimeoutError after the bytes before it are reported; a failed write is the
LOCAL_FILE error of ``classify``; the helper stays within its window of the sink (and within a
throttled sink's piece); a pour that ends in the parent leaves no descriptor with the helper (a
helper that does not answer its cancel is killed); a helper that dies fails its pours and the
next pour starts another; a helper that cannot start leaves the body to the caller, as does
one that never says HELLO or died three times; the helper ignores the signals of the daemon's
process group, dies with its parent and ``close`` reaps it; pours run side by side on one
helper; messages that find the helper's control socket full wait for room, all of them, and
fail if the helper dies meanwhile."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import re
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest

from bitsd import codes
from bitsd._enums import ErrorContext
from bitsd._errors import TransferError
from bitsd._transfer.splicehelper import WINDOW_CHUNKS, SpliceHelper, SpliceHelperError

KiB = 1024
MiB = 1024 * KiB
SRC = Path(__file__).resolve().parents[2] / "src"
# Seconds any wait of a test may last before it counts as hung (bounds, not timings).
PATIENCE = 10.0
HAVE_DEV_FULL = os.path.exists("/dev/full")


class _Sink:
    """A sink over a real file that records what the transport tells it: each ``advance``,
    and how far the file runs ahead of the bytes told (at the call and after its pause)."""

    def __init__(self, path: str, flags: int, pause: float) -> None:
        self.fd = os.open(path, flags | os.O_CLOEXEC, 0o600)
        self.local_name = path
        self.offset = 0
        self.pause = pause  # seconds each advance takes (a slow checkpoint)
        self.calls: list[int] = []
        self.ahead: list[int] = []
        self.advanced = asyncio.Event()

    async def begin(self, *, bytes_total: int | None, validator: str | None, restart: bool) -> None:
        raise AssertionError("a pour does not begin a response")

    async def write(self, data: bytes) -> None:
        raise AssertionError("a pour writes through the file's descriptor")

    async def advance(self, count: int) -> None:
        self.calls.append(count)
        self.offset += count
        self.ahead.append(self.size() - self.offset)
        self.advanced.set()
        if self.pause:
            await asyncio.sleep(self.pause)  # the helper may move on meanwhile, in its window
            self.ahead.append(self.size() - self.offset)

    def size(self) -> int:
        return os.fstat(self.fd).st_size

    def content(self) -> bytes:
        return Path(self.local_name).read_bytes()


class _ThrottledSink(_Sink):
    """A sink with bandwidth limits: it takes ``piece()`` bytes at once."""

    def __init__(self, path: str, flags: int, pause: float, piece: int) -> None:
        super().__init__(path, flags, pause)
        self._piece = piece

    def piece(self) -> int | None:
        return self._piece


MakeSink = Callable[..., _Sink]


@pytest.fixture
def make_sink(tmp_path: Path) -> Iterator[MakeSink]:
    """Sinks over files in ``tmp_path`` (or another path), closed after the test."""
    made: list[_Sink] = []

    def make(
        name: str = "body",
        *,
        path: str | None = None,
        flags: int = os.O_RDWR | os.O_CREAT | os.O_TRUNC,
        pause: float = 0.0,
        piece: int | None = None,
    ) -> _Sink:
        where = path if path is not None else str(tmp_path / name)
        sink = (
            _Sink(where, flags, pause)
            if piece is None
            else _ThrottledSink(where, flags, pause, piece)
        )
        made.append(sink)
        return sink

    yield make
    for sink in made:
        os.close(sink.fd)


class _Connection:
    """One loopback TCP connection: ``client`` is what a pour reads, ``server`` the server's
    end, written by the test's loop (both non-blocking)."""

    def __init__(self, listener: socket.socket) -> None:
        self.client = socket.create_connection(listener.getsockname())
        self.server, _ = listener.accept()
        self.client.setblocking(False)
        self.server.setblocking(False)

    async def send(self, data: bytes, *, then_close: bool = False) -> None:
        await asyncio.get_running_loop().sock_sendall(self.server, data)
        if then_close:
            self.server.close()

    async def trickle(self, piece: int = 16 * KiB, pause: float = 0.005) -> None:
        """Send ``piece`` bytes every ``pause`` seconds, until cancelled or the client's end
        is closed."""
        loop = asyncio.get_running_loop()
        block = b"t" * piece
        with contextlib.suppress(OSError):
            while True:
                await loop.sock_sendall(self.server, block)
                await asyncio.sleep(pause)

    def close(self) -> None:
        self.client.close()
        self.server.close()


class _Net:
    """Connections and the server tasks that write them, all stopped after the test."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.connections: list[_Connection] = []
        self.tasks: list[asyncio.Task[None]] = []

    def connect(self) -> _Connection:
        connection = _Connection(self.listener)
        self.connections.append(connection)
        return connection

    def spawn(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(work)
        self.tasks.append(task)
        return task

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for connection in self.connections:
            connection.close()
        self.listener.close()


@pytest.fixture
async def net() -> AsyncIterator[_Net]:
    net = _Net()
    yield net
    await net.stop()


@pytest.fixture
async def helper() -> AsyncIterator[SpliceHelper]:
    helper = SpliceHelper()
    yield helper
    helper.close()


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[subprocess.Popen[bytes]]:
    """The helper processes started from now on (``subprocess.Popen`` goes on working)."""
    processes: list[subprocess.Popen[bytes]] = []
    real_popen = subprocess.Popen

    def popen(*args: Any, **kwargs: Any) -> subprocess.Popen[bytes]:
        process = real_popen(*args, **kwargs)
        processes.append(process)
        return process

    monkeypatch.setattr("bitsd._transfer.splicehelper.subprocess.Popen", popen)
    return processes


def _identity(fd: int) -> tuple[int, int]:
    st = os.fstat(fd)
    return st.st_dev, st.st_ino


def _held(pid: int) -> set[tuple[int, int]]:
    """What the process ``pid``'s descriptors refer to (device, inode)."""
    held: set[tuple[int, int]] = set()
    for name in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):  # closed meanwhile
            st = os.stat(f"/proc/{pid}/fd/{name}")
            held.add((st.st_dev, st.st_ino))
    return held


def _ended_within(pidfd: int, timeout: float) -> bool:
    """Whether the process of ``pidfd`` ends (a zombie has ended) within ``timeout`` s."""
    ready, _, _ = select.select([pidfd], [], [], timeout)
    return bool(ready)


def _reaped(pid: int) -> bool:
    """Whether the child ``pid`` is gone altogether (reaped: not even a zombie)."""
    return not Path(f"/proc/{pid}").exists()


async def _state_becomes(pid: int, state: str) -> None:
    """Wait until the process ``pid`` is in ``state`` (a letter of /proc/PID/status)."""
    deadline = time.monotonic() + PATIENCE
    while _state(pid) != state:
        assert time.monotonic() < deadline, f"process {pid} never got to state {state}"
        await asyncio.sleep(0.001)  # /proc has no event to wait for


def _state(pid: int) -> str:
    status = Path(f"/proc/{pid}/status").read_text()
    found = re.search(r"^State:\s+(\S)", status, re.MULTILINE)
    assert found is not None
    return found.group(1)


def _parent_of(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    found = re.search(r"^PPid:\s+(\d+)", status, re.MULTILINE)
    assert found is not None
    return int(found.group(1))


async def _recv_exactly(sock: socket.socket, count: int) -> bytes:
    loop = asyncio.get_running_loop()
    received = bytearray()
    while len(received) < count:
        data = await loop.sock_recv(sock, count - len(received))
        assert data, "the connection ended early"
        received += data
    return bytes(received)


async def _endless_pour(
    helper: SpliceHelper, net: _Net, connection: _Connection, sink: _Sink
) -> tuple[asyncio.Task[int | None], asyncio.Task[None]]:
    """A pour of a body without end (the server trickles until stopped), once the helper has
    reported its first bytes: the pour's task and the server's."""
    server = net.spawn(connection.trickle())
    pour = asyncio.create_task(
        helper.pour(
            connection.client.fileno(), sink, 1 << 40, chunk=16 * KiB, read_timeout=PATIENCE
        )
    )
    await asyncio.wait_for(sink.advanced.wait(), PATIENCE)
    return pour, server


async def _whole_pour(
    helper: SpliceHelper, net: _Net, sink: _Sink, size: int
) -> tuple[int | None, bytes, _Connection]:
    """A pour of a body of ``size`` random bytes that the server sends at once, on a new
    connection: what pour returned, the body, the connection."""
    connection = net.connect()
    data = os.urandom(size)
    net.spawn(connection.send(data))
    left = await helper.pour(
        connection.client.fileno(), sink, len(data), chunk=64 * KiB, read_timeout=PATIENCE
    )
    return left, data, connection


async def _a_new_helper_works(
    helper: SpliceHelper, net: _Net, make_sink: MakeSink, gone: int
) -> None:
    """The next pour, after the helper ``gone`` ended, starts a new helper and moves its body
    exactly."""
    later = make_sink("later")
    left, data, _ = await _whole_pour(helper, net, later, 512 * KiB)
    assert left == 0
    assert later.content() == data
    assert helper.pid not in (None, gone)


async def test_a_body_moves_exactly_at_the_files_position_reported_every_chunk(
    helper: SpliceHelper, net: _Net, make_sink: MakeSink
) -> None:
    """Every byte of the body reaches the file, in order, from the file's position on (the
    helper writes through a duplicate of the sink's descriptor, as the in-process path writes
    through the descriptor itself); the sink hears of all of them, at least every ``chunk``
    bytes; nothing is left."""
    connection = net.connect()
    sink = make_sink()
    os.write(sink.fd, b"kept head")  # bytes of an earlier try: the body goes after them
    data = os.urandom(3 * MiB)
    net.spawn(connection.send(data))
    chunk = 256 * KiB
    left = await helper.pour(
        connection.client.fileno(), sink, len(data), chunk=chunk, read_timeout=PATIENCE
    )
    assert left == 0
    assert sink.content() == b"kept head" + data
    assert os.lseek(sink.fd, 0, os.SEEK_CUR) == len(b"kept head") + len(data)
    assert sum(sink.calls) == len(data)
    assert max(sink.calls) <= chunk
    assert len(sink.calls) >= len(data) // chunk


async def test_a_connection_closed_early_ends_the_body(
    helper: SpliceHelper, net: _Net, make_sink: MakeSink
) -> None:
    """A server that closes the connection before the end of the body has ended it: pour
    returns the bytes it did not send, and the bytes it sent are in the file, all reported."""
    connection = net.connect()
    sink = make_sink()
    sent = os.urandom(MiB + 5)
    net.spawn(connection.send(sent, then_close=True))
    count = 3 * MiB
    left = await helper.pour(
        connection.client.fileno(), sink, count, chunk=256 * KiB, read_timeout=PATIENCE
    )
    assert left == count - len(sent)
    assert sink.content() == sent
    assert sum(sink.calls) == len(sent)


async def test_a_silent_server_times_out_after_its_bytes_are_reported(
    helper: SpliceHelper, net: _Net, make_sink: MakeSink
) -> None:
    """A server that stops sending (the connection open) fails the pour with TimeoutError once
    a wait for it has lasted the read timeout; the bytes it sent before are reported before
    the wait (less than a chunk: only that report tells the sink of them)."""
    connection = net.connect()
    sink = make_sink()
    sent = os.urandom(100 * KiB)
    await connection.send(sent)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(  # a helper that never times out fails the bound below
            helper.pour(connection.client.fileno(), sink, MiB, chunk=MiB, read_timeout=0.3),
            PATIENCE,
        )
    assert 0.29 <= loop.time() - started < PATIENCE / 2
    assert sum(sink.calls) == len(sent)
    assert sink.content() == sent


@pytest.mark.parametrize(
    "target",
    [
        "read-only file",
        pytest.param(
            "/dev/full", marks=pytest.mark.skipif(not HAVE_DEV_FULL, reason="no /dev/full")
        ),
    ],
)
async def test_a_failed_write_is_the_local_file_error(
    helper: SpliceHelper, net: _Net, make_sink: MakeSink, target: str
) -> None:
    """A write of the file that fails is the fatal LOCAL_FILE error ``classify`` makes of its
    errno, as on the in-process path: a descriptor that cannot write (EBADF, refused by
    splice itself) and a full disk (ENOSPC; /dev/full cannot splice, so this is the
    ``os.write`` fallback's failure)."""
    if target == "/dev/full":
        sink = make_sink(path="/dev/full", flags=os.O_WRONLY)
        number = errno.ENOSPC
    else:
        sink = make_sink(flags=os.O_RDONLY | os.O_CREAT)
        number = errno.EBADF
    connection = net.connect()
    net.spawn(connection.send(os.urandom(512 * KiB)))
    with pytest.raises(TransferError) as caught:
        await helper.pour(
            connection.client.fileno(), sink, 512 * KiB, chunk=64 * KiB, read_timeout=PATIENCE
        )
    assert caught.value.context == ErrorContext.LOCAL_FILE
    assert caught.value.hresult == codes.to_unsigned(codes.hresult_from_errno(number))
    assert not caught.value.transient
    assert os.strerror(number) in caught.value.message  # not any errno that maps to E_FAIL
    assert sink.calls == []


async def test_the_helper_runs_at_most_its_window_ahead_of_the_sink(
    helper: SpliceHelper, net: _Net, make_sink: MakeSink
) -> None:
    """While the sink takes its time over each report (a checkpoint), the helper moves at most
    WINDOW_CHUNKS chunks beyond the bytes the sink has been told of, though the server has
    sent far more."""
    connection = net.connect()
    sink = make_sink(pause=0.02)
    data = os.urandom(MiB)
    net.spawn(connection.send(data))
    chunk = 64 * KiB
    left = await helper.pour(
        connection.client.fileno(), sink, len(data), chunk=chunk, read_timeout=PATIENCE
    )
    assert left == 0
    assert sink.content() == data
    assert max(sink.ahead) <= WINDOW_CHUNKS * chunk


async def test_a_throttled_sink_bounds_each_step_by_its_piece(
    helper: SpliceHelper, net: _Net, make_sink: MakeSink
) -> None:
    """A throttled sink (``piece()``) hears of at most a piece at once, and the file never runs
    more than a piece ahead of what it heard, though the chunk and the window are larger: the
    sink's pacing holds the helper back."""
    connection = net.connect()
    piece = 64 * KiB
    sink = make_sink(pause=0.01, piece=piece)
    data = os.urandom(512 * KiB)
    net.spawn(connection.send(data))
    left = await helper.pour(
        connection.client.fileno(), sink, len(data), chunk=MiB, read_timeout=PATIENCE
    )
    assert left == 0
    assert sink.content() == data
    assert max(sink.calls) <= piece
    assert max(sink.ahead) <= piece


async def test_a_cancelled_pour_leaves_no_descriptor_with_the_helper(
    helper: SpliceHelper, net: _Net, make_sink: MakeSink
) -> None:
    """A pour cancelled in the parent has ended in the helper when the cancellation is
    raised (the parent waits for the helper's answer, here held back a while): the helper
    holds neither the socket nor the file, and the file does not grow any more while the
    server goes on sending. The helper serves the next pour."""
    connection = net.connect()
    sink = make_sink()
    pour, server = await _endless_pour(helper, net, connection, sink)
    pid = helper.pid
    assert pid is not None
    ours = {_identity(connection.client.fileno()), _identity(sink.fd)}
    assert ours <= _held(pid)  # the check sees them while the helper pours
    os.kill(pid, signal.SIGSTOP)  # the helper cannot answer the cancellation yet
    try:
        await _state_becomes(pid, "T")
        pour.cancel()
        done, _ = await asyncio.wait({pour}, timeout=0.1)
        assert not done  # the cancellation waits for the helper's answer
    finally:
        os.kill(pid, signal.SIGCONT)
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(pour, PATIENCE)
    assert not ours & _held(pid)
    size = sink.size()
    await asyncio.sleep(0.2)  # nothing to wait for: a while in which bytes would show
    assert not server.done()  # the server did go on sending
    assert sink.size() == size

    later = make_sink("later")
    left, data, _ = await _whole_pour(helper, net, later, 512 * KiB)
    assert left == 0
    assert later.content() == data
    assert helper.pid == pid


async def test_a_helper_that_does_not_answer_a_cancel_is_killed(
    helper: SpliceHelper, net: _Net, make_sink: MakeSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cancelled pour waits for the helper's answer at most ``CANCEL_TIMEOUT``; a helper that
    does not answer (stopped here) may still hold the pour's descriptors, so it is killed and
    reaped, and the cancellation goes on; the next pour starts a new helper."""
    monkeypatch.setattr("bitsd._transfer.splicehelper.CANCEL_TIMEOUT", 0.3)
    connection = net.connect()
    sink = make_sink()
    pour, _ = await _endless_pour(helper, net, connection, sink)
    pid = helper.pid
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)
    await _state_becomes(pid, "T")
    pour.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(pour, PATIENCE)
    assert _reaped(pid)
    assert helper.pid is None
    await _a_new_helper_works(helper, net, make_sink, pid)


async def test_a_killed_helper_fails_its_pour_and_the_next_pour_starts_another(
    helper: SpliceHelper, net: _Net, make_sink: MakeSink
) -> None:
    """A helper that dies mid-body fails its pour with SpliceHelperError (the bytes it moved
    are unknown) and is reaped; the next pour starts a new helper, which works."""
    connection = net.connect()
    sink = make_sink()
    pour, _ = await _endless_pour(helper, net, connection, sink)
    first = helper.pid
    assert first is not None
    os.kill(first, signal.SIGKILL)
    with pytest.raises(SpliceHelperError):
        await asyncio.wait_for(pour, PATIENCE)
    assert _reaped(first)  # reaped: no zombie left

    await _a_new_helper_works(helper, net, make_sink, first)


async def test_a_helper_that_cannot_start_leaves_the_body_to_the_caller(
    helper: SpliceHelper, net: _Net, make_sink: MakeSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the helper process cannot start, pour returns None having moved nothing: the body
    is still in the socket, whole, for the caller to splice in process."""
    monkeypatch.setattr("bitsd._transfer.splicehelper.sys.executable", "/nonexistent/python")
    sink = make_sink()
    left, data, connection = await _whole_pour(helper, net, sink, 300 * KiB)
    assert left is None
    assert helper.pid is None
    assert sink.calls == []
    assert sink.size() == 0
    assert await asyncio.wait_for(_recv_exactly(connection.client, len(data)), PATIENCE) == data


async def test_a_helper_that_does_not_say_hello_leaves_splicing_in_process(
    helper: SpliceHelper,
    net: _Net,
    make_sink: MakeSink,
    started: list[subprocess.Popen[bytes]],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """A helper that starts but never says HELLO (an interpreter that cannot run the program)
    is reaped and pour returns None, having moved nothing; later pours do not try again, so a
    broken interpreter costs one start, not a failed transfer per body."""
    broken = tmp_path / "broken.py"
    broken.write_text("import sys\nsys.exit(3)\n")
    monkeypatch.setattr("bitsd._transfer.splicehelper._PROGRAM", str(broken))
    for name in ("first", "second"):
        sink = make_sink(name)
        left, data, connection = await _whole_pour(helper, net, sink, 300 * KiB)
        assert left is None
        assert sink.calls == []
        assert await asyncio.wait_for(_recv_exactly(connection.client, len(data)), PATIENCE) == data
    assert len(started) == 1
    assert started[0].returncode == 3  # reaped
    assert helper.pid is None


async def test_a_helper_killed_again_and_again_is_given_up(
    helper: SpliceHelper,
    net: _Net,
    make_sink: MakeSink,
    started: list[subprocess.Popen[bytes]],
) -> None:
    """Each helper death fails the pours it served; after the third, pours return None (the
    caller splices in process) and no helper is started again."""
    for death in range(3):
        connection = net.connect()
        sink = make_sink(f"killed{death}")
        pour, _ = await _endless_pour(helper, net, connection, sink)
        assert helper.pid is not None
        os.kill(helper.pid, signal.SIGKILL)
        with pytest.raises(SpliceHelperError):
            await asyncio.wait_for(pour, PATIENCE)
    left, _, _ = await _whole_pour(helper, net, make_sink("after"), 300 * KiB)
    assert left is None
    assert len(started) == 3
    assert helper.pid is None


async def test_the_helper_ignores_the_signals_of_the_daemons_process_group(
    helper: SpliceHelper, net: _Net, make_sink: MakeSink
) -> None:
    """SIGTERM, SIGINT and SIGHUP reach the helper with the daemon's process group or service
    (systemd stops a unit's whole control group); the helper goes on, so the daemon can stop
    its transfers in order: the pour in progress ends exactly."""
    connection = net.connect()
    sink = make_sink()
    data = os.urandom(4 * MiB)
    pour = asyncio.create_task(
        helper.pour(
            connection.client.fileno(), sink, len(data), chunk=64 * KiB, read_timeout=PATIENCE
        )
    )
    await connection.send(data[: 1 * MiB])
    await asyncio.wait_for(sink.advanced.wait(), PATIENCE)
    pid = helper.pid
    assert pid is not None
    for number in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        os.kill(pid, number)
    await connection.send(data[1 * MiB :])
    assert await asyncio.wait_for(pour, PATIENCE) == 0
    assert sink.content() == data
    assert helper.pid == pid


# A process with a helper busy with a pour: it prints the helper's pid and the keeper's, then
# waits to be killed.
_ORPHANING = """
import asyncio, os, socket, subprocess, sys
from bitsd._transfer.splicehelper import SpliceHelper

class Sink:
    def __init__(self, fd):
        self.fd, self.offset, self.local_name = fd, 0, sys.argv[1]
        self.started = asyncio.Event()
    async def begin(self, **_): pass
    async def write(self, data): pass
    async def advance(self, count):
        self.offset += count
        self.started.set()

async def trickle(server):
    loop = asyncio.get_running_loop()
    while True:
        await loop.sock_sendall(server, b"t" * 16384)
        await asyncio.sleep(0.005)

async def main():
    listener = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(listener.getsockname())
    server, _ = listener.accept()
    client.setblocking(False)
    server.setblocking(False)
    sink = Sink(os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT, 0o600))
    helper = SpliceHelper()
    tasks = [
        asyncio.create_task(trickle(server)),
        asyncio.create_task(
            helper.pour(client.fileno(), sink, 1 << 40, chunk=16384, read_timeout=60)
        ),
    ]
    await asyncio.wait_for(sink.started.wait(), 10)
    # A process that keeps the daemon's end of the control socket open: the helper sees no
    # EOF when the daemon dies, so only the death signal can end it.
    keeper = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(30)"],
        pass_fds=(helper._control.fileno(),),
    )
    print(helper.pid, keeper.pid, flush=True)
    await asyncio.sleep(60)

asyncio.run(main())
"""


def test_the_helper_dies_with_its_parent(tmp_path: Path) -> None:
    """A daemon killed outright (no chance to close its helper) takes its helper with it, in
    the middle of a pour, even while its end of the control socket lives on in another
    process (PR_SET_PDEATHSIG, not the EOF, ends the helper)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]))
    parent = subprocess.Popen(
        [sys.executable, "-c", _ORPHANING, str(tmp_path / "body")],
        stdout=subprocess.PIPE,
        env=env,
    )
    helper_fd = keeper_fd = -1
    try:
        assert parent.stdout is not None
        line = parent.stdout.readline()  # the script gives up (and exits) within 10 s
        assert re.fullmatch(rb"\d+ \d+\n", line), f"the script printed {line!r}"
        helper_pid, keeper_pid = map(int, line.split())
        helper_fd = os.pidfd_open(helper_pid)
        keeper_fd = os.pidfd_open(keeper_pid)
        assert _parent_of(helper_pid) == parent.pid
        assert not _ended_within(helper_fd, 0)
        parent.kill()
        parent.wait(PATIENCE)
        assert _ended_within(helper_fd, 2.0)
    finally:
        if keeper_fd >= 0:
            signal.pidfd_send_signal(keeper_fd, signal.SIGKILL)
            os.close(keeper_fd)
        if helper_fd >= 0:
            os.close(helper_fd)
        parent.kill()
        parent.wait()
        if parent.stdout is not None:
            parent.stdout.close()


async def test_close_fails_the_pours_stops_the_helper_and_reaps_it(
    helper: SpliceHelper,
    net: _Net,
    make_sink: MakeSink,
    started: list[subprocess.Popen[bytes]],
) -> None:
    """``close`` fails the helper's pours with SpliceHelperError, ends the helper and reaps
    it: no process, no zombie left. The helper, busy with a pour, takes the closed control
    socket as the end, not as an error (exit status 0), whether it was waiting or sending."""
    connection = net.connect()
    sink = make_sink()
    pour, _ = await _endless_pour(helper, net, connection, sink)
    pid = helper.pid
    assert pid is not None
    helper.close()
    assert helper.pid is None
    assert _reaped(pid)
    with pytest.raises(SpliceHelperError):
        await asyncio.wait_for(pour, PATIENCE)
    assert [(process.pid, process.returncode) for process in started] == [(pid, 0)]


async def test_pours_side_by_side_share_one_helper(
    helper: SpliceHelper,
    net: _Net,
    make_sink: MakeSink,
    started: list[subprocess.Popen[bytes]],
) -> None:
    """Several pours at once, on one helper, each move their whole body into their own file."""
    bodies = [os.urandom(2 * MiB) for _ in range(4)]
    sinks = [make_sink(f"body{n}") for n in range(len(bodies))]
    pours = []
    for sink, data in zip(sinks, bodies, strict=True):
        connection = net.connect()
        net.spawn(connection.send(data))
        pours.append(
            helper.pour(
                connection.client.fileno(), sink, len(data), chunk=256 * KiB, read_timeout=PATIENCE
            )
        )
    assert await asyncio.wait_for(asyncio.gather(*pours), PATIENCE) == [0] * len(bodies)
    for sink, data in zip(sinks, bodies, strict=True):
        assert sink.content() == data
        assert sum(sink.calls) == len(data)
    assert [process.pid for process in started] == [helper.pid]


_Queued = list[tuple[_Sink, bytes, asyncio.Task[int | None]]]


async def _stopped_behind_a_full_control_socket(
    helper: SpliceHelper, net: _Net, make_sink: MakeSink
) -> tuple[int, _Queued]:
    """A helper stopped (SIGSTOP) behind a control socket that holds only a few messages, and
    pours started meanwhile: several of them wait together for room to send their START."""
    warm = net.connect()
    sink = make_sink("warm")
    net.spawn(warm.send(b"w" * 64 * KiB))
    await helper.pour(warm.client.fileno(), sink, 64 * KiB, chunk=16 * KiB, read_timeout=PATIENCE)
    pid, control = helper.pid, helper._control
    assert pid is not None
    assert control is not None
    control.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1)  # the kernel's least: ~4 KiB
    os.kill(pid, signal.SIGSTOP)
    await _state_becomes(pid, "T")
    queued: _Queued = []
    for n in range(12):
        connection = net.connect()
        sink = make_sink(f"queued{n}")
        data = os.urandom(256 * KiB)
        net.spawn(connection.send(data))
        pour = asyncio.create_task(
            helper.pour(
                connection.client.fileno(), sink, len(data), chunk=16 * KiB, read_timeout=PATIENCE
            )
        )
        queued.append((sink, data, pour))
    for _ in range(5):
        await asyncio.sleep(0)
    _, writable, _ = select.select([], [control], [], 0)
    assert not writable  # full: some pours wait for room
    return pid, queued


async def test_senders_that_find_the_control_socket_full_all_go_on(
    helper: SpliceHelper, net: _Net, make_sink: MakeSink
) -> None:
    """Messages to a helper that is behind wait for room in its control socket, however many
    pours wait at once: each goes out once the helper takes its messages again."""
    pid, queued = await _stopped_behind_a_full_control_socket(helper, net, make_sink)
    os.kill(pid, signal.SIGCONT)
    lefts = await asyncio.wait_for(asyncio.gather(*(pour for _, _, pour in queued)), PATIENCE)
    assert lefts == [0] * len(queued)
    for sink, data, _ in queued:
        assert sink.content() == data


async def test_senders_waiting_for_room_fail_when_the_helper_dies(
    helper: SpliceHelper, net: _Net, make_sink: MakeSink
) -> None:
    """A helper that dies while pours wait to send it a message fails them all with
    SpliceHelperError: none waits for room that will never come."""
    pid, queued = await _stopped_behind_a_full_control_socket(helper, net, make_sink)
    os.kill(pid, signal.SIGKILL)
    results = await asyncio.wait_for(
        asyncio.gather(*(pour for _, _, pour in queued), return_exceptions=True), PATIENCE
    )
    assert all(isinstance(result, SpliceHelperError) for result in results), results
