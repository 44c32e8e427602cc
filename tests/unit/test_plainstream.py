"""The waits of bitsd's own client's plain TCP stream (``splice.PlainStream``): a read takes what
is there without waiting; the socket stays registered with the loop across the waits of one
connection, and leaves it when bytes arrive that nobody waits for (they must not wake the loop
at every turn) and when the stream closes; every wait is bounded by the read timeout."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from bitsd._transfer.splice import PlainStream


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    yield ours, theirs
    ours.close()
    theirs.close()


def _registered(fd: int) -> bool:
    selector: Any = asyncio.get_running_loop()._selector  # type: ignore[attr-defined]
    return fd in selector.get_map()


def _calls(monkeypatch: pytest.MonkeyPatch, method: str) -> list[Any]:
    """The first argument of each call of the running loop's ``method`` from now on (the
    call itself goes through)."""
    loop = asyncio.get_running_loop()
    real = getattr(loop, method)
    seen: list[Any] = []

    def noting(first: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(first)
        return real(first, *args, **kwargs)

    monkeypatch.setattr(loop, method, noting)
    return seen


async def _turns(n: int = 3) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


async def test_one_registration_serves_every_answer_of_a_connection(
    pair: tuple[socket.socket, socket.socket], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A connection's socket is registered with the loop at its first wait and stays so for
    the next ones (registering it for each wait cost ~11 us of a ~23 us wait)."""
    ours, theirs = pair
    added = _calls(monkeypatch, "add_reader")
    stream = PlainStream(ours, read_timeout=5, chunk_size=1024)
    for n in range(3):
        reading = asyncio.create_task(stream.recv(100))
        await _turns()
        assert not reading.done()  # nothing there yet: it waits
        theirs.send(b"answer %d" % n)
        assert await reading == b"answer %d" % n
        await _turns()  # the loop may see the taken bytes' event once more: it is stale
    assert added == [ours.fileno()]
    assert _registered(ours.fileno())
    fd = ours.fileno()
    stream.close()
    assert not _registered(fd)


async def test_bytes_with_nobody_waiting_leave_the_socket_unregistered(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    """Level-triggered readiness with no waiter would wake the loop at every turn: the stream
    leaves the loop instead, and its next wait registers again."""
    ours, theirs = pair
    stream = PlainStream(ours, read_timeout=5, chunk_size=1024)
    reading = asyncio.create_task(stream.recv(100))
    await _turns()
    theirs.send(b"first")
    assert await reading == b"first"
    theirs.send(b"unasked")  # e.g. the server closing an idle kept-alive connection
    await _turns()
    assert not _registered(ours.fileno())
    assert await stream.recv(100) == b"unasked"  # there already: no wait
    reading = asyncio.create_task(stream.recv(100))
    await _turns()
    assert _registered(ours.fileno())
    theirs.close()
    assert await reading == b""  # EOF
    stream.close()


async def test_a_wait_is_bounded_by_the_read_timeout_and_the_stream_stays_usable(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    ours, theirs = pair
    stream = PlainStream(ours, read_timeout=0.05, chunk_size=1024)
    with pytest.raises(TimeoutError):
        await stream.recv(100)
    with pytest.raises(TimeoutError):
        await stream.readable()
    theirs.send(b"late")
    assert await stream.recv(100) == b"late"
    fd = ours.fileno()
    stream.close()
    assert not _registered(fd)


async def test_a_wait_cancelled_leaves_no_waiter_behind(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    ours, theirs = pair
    stream = PlainStream(ours, read_timeout=5, chunk_size=1024)
    reading = asyncio.create_task(stream.recv(100))
    await _turns()
    reading.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reading
    theirs.send(b"after")
    await _turns()
    assert not _registered(ours.fileno())  # nobody waits any more
    assert await stream.recv(100) == b"after"
    stream.close()


async def test_one_timer_bounds_a_stream_of_waits(
    pair: tuple[socket.socket, socket.socket], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Waits answered within the read timeout share one timer (making and cancelling a timer
    per wait cost ~2.5 us of a ~11 us wait)."""
    ours, theirs = pair
    timers = _calls(monkeypatch, "call_at")
    stream = PlainStream(ours, read_timeout=5, chunk_size=1024)
    for n in range(5):
        reading = asyncio.create_task(stream.recv(100))
        await _turns()
        theirs.send(b"answer %d" % n)
        assert await reading == b"answer %d" % n
    assert len(timers) == 1
    stream.close()


async def test_a_wait_begun_late_gets_its_whole_read_timeout(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    """The shared timer, set by an earlier wait, does not cut a later wait short: each wait
    may last the read timeout from its own start, and no longer."""
    ours, theirs = pair
    loop = asyncio.get_running_loop()
    stream = PlainStream(ours, read_timeout=0.3, chunk_size=1024)
    reading = asyncio.create_task(stream.recv(100))
    await _turns()
    theirs.send(b"first")
    assert await reading == b"first"
    await asyncio.sleep(0.2)  # the first wait's timer runs out 0.1 s into the next wait
    reading = asyncio.create_task(stream.recv(100))
    loop.call_later(0.2, theirs.send, b"second")
    assert await reading == b"second"
    started = loop.time()
    with pytest.raises(TimeoutError):
        await stream.recv(100)
    assert 0.29 <= loop.time() - started < 1.0
    stream.close()


async def test_a_send_larger_than_the_socket_buffer_arrives_whole(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    """A send tries the socket at once and waits for room only for what did not fit."""
    ours, theirs = pair
    theirs.setblocking(False)
    stream = PlainStream(ours, read_timeout=5, chunk_size=1024)
    data = bytes(range(256)) * 16384  # 4 MiB: more than a socket pair buffers
    received = bytearray()

    async def drain() -> None:
        loop = asyncio.get_running_loop()
        while len(received) < len(data):
            received.extend(await loop.sock_recv(theirs, 1 << 20))

    reader = asyncio.create_task(drain())
    await stream.send(data)
    await asyncio.wait_for(reader, 5)
    assert bytes(received) == data
    stream.close()
