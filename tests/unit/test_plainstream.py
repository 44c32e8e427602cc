"""The waits of bitsd's own client's plain TCP stream (``splice.PlainStream``): the socket is
registered with the loop only while someone waits for it (bytes nobody waits for must not wake
the loop at every turn), a read takes what is there without waiting, and every wait is bounded
by the read timeout."""

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


async def _turns(n: int = 3) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


async def test_bytes_with_nobody_waiting_leave_the_socket_unregistered(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    """Level-triggered readiness with no waiter would wake the loop at every turn: the socket
    is registered only during a wait."""
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
