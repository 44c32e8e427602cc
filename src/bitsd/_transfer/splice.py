"""A plain TCP connection of the raw HTTP transport (``rawhttp.py``), whose bodies move
socket → pipe → temporary file with ``os.splice`` without ever entering Python.

Rules:
- The socket is non-blocking; every wait for it is bounded by the read timeout (a stall is a
  ``TimeoutError``, which ``classify`` makes a transient BG_E_TIMEOUT).
- A body (:meth:`PlainStream.pour`) larger than ``_SPLICE_MIN`` moves with ``os.splice`` in steps
  of up to the pipe's size (raised with F_SETPIPE_SZ); a smaller one is read into memory and
  written through the sink (a pipe costs three system calls to set up, more than a small copy).
  One of at least ``HELPER_MIN`` bytes is spliced by the stream's splice helper, if it has one
  (``splicehelper.py``: another process, so the copy runs on another core), the same way.
- The sink hears of spliced bytes through ``sink.advance`` at least every ``chunk_size`` bytes
  and before every wait, so progress, checkpoints and bandwidth pacing work as on the aiohttp
  path (a throttled sink, :class:`ThrottledSink`, bounds each step by its ``piece()``).
- Writing the temporary file fails as a LOCAL_FILE error (``classify.from_local_os_error``);
  a file system that cannot splice is written with ``os.write`` instead.
- An idle connection is usable (:meth:`PlainStream.alive`) while a non-blocking peek finds
  nothing: EOF or stray bytes mean the server closed it or broke the protocol.
"""

from __future__ import annotations

import asyncio
import os
import socket
from typing import TYPE_CHECKING, Final, Protocol, runtime_checkable

from bitsd._deadline import Deadline
from bitsd._transfer import classify
from bitsd._transfer.base import Sink
from bitsd._transfer.splicehelper_child import (
    PIPE_SIZE,
    SPLICE_IN,
    FileWriteError,
    drain,
    new_pipe,
)

if TYPE_CHECKING:
    from bitsd._transfer.splicehelper import SpliceHelper

__all__ = [
    "DEFAULT_PIPE_SIZE",
    "HELPER_MIN",
    "LeadingSink",
    "PlainStream",
    "ThrottledSink",
    "write_all",
]

# Bytes. The pipe between socket and file: one splice step moves at most this much (the
# splice helper's pipes, ``splicehelper_child.PIPE_SIZE``, which says why 1 MiB).
DEFAULT_PIPE_SIZE = PIPE_SIZE
# Bytes. A body at most this large is read into memory instead of spliced.
_SPLICE_MIN = 64 * 1024
# Bytes. A body at least this large is spliced by the splice helper, when the stream has one:
# below, the messages to and from the helper cost the loop about what the copy would.
HELPER_MIN = 256 * 1024
# Bytes read from the socket at once into memory (heads, small bodies).
_READ = 64 * 1024
# The plain socket's recv, for a peek under TLS too (an SSLSocket refuses flags).
_peek: Final = socket.socket.recv


@runtime_checkable
class ThrottledSink(Protocol):
    """The optional part of a :class:`Sink` that bounds how much a transport that writes through
    ``sink.fd`` moves at once (the job's bandwidth limits)."""

    def piece(self) -> int | None:
        """Bytes to move at once now; None: as many as arrive."""
        ...


@runtime_checkable
class LeadingSink(Protocol):
    """The optional part of a :class:`Sink` that hears how far ahead of its reports a transport
    that writes through ``sink.fd`` runs (the splice helper's window)."""

    def lead(self, count: int) -> None:
        """Up to ``count`` bytes may be written and not reported yet (0: none): checkpoints
        by bytes should come that much earlier, so that the transport runs on while one is
        taken and a crash still loses at most the checkpoint interval."""
        ...


class PlainStream:
    """One non-blocking TCP connection (see the module rules).

    Args:
        sock: the connected, non-blocking socket; the stream owns it.
        read_timeout: seconds any wait for the server may last.
        chunk_size: bytes between two progress reports of a spliced body.
        pipe_size: bytes asked for the pipe (F_SETPIPE_SZ); the kernel may give less.
        helper: the splice helper that moves large bodies (None: they move in process).
    """

    __slots__ = (
        "_chunk",
        "_deadline",
        "_helper",
        "_loop",
        "_pipe_size",
        "_read_timeout",
        "_reading",
        "_waiter",
        "sock",
    )

    def __init__(
        self,
        sock: socket.socket,
        *,
        read_timeout: float,
        chunk_size: int,
        pipe_size: int = DEFAULT_PIPE_SIZE,
        helper: SpliceHelper | None = None,
    ) -> None:
        self.sock = sock
        self._helper = helper
        self._read_timeout = read_timeout
        self._chunk = chunk_size
        self._pipe_size = pipe_size
        # The descriptor registered with the loop for reading (-1: none), and the wait for it.
        self._reading = -1
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiter: asyncio.Future[None] | None = None
        # The waits' deadline, on the loop the socket is registered with (None: not registered).
        self._deadline: Deadline | None = None

    def close(self) -> None:
        self._stop_reading()
        self.sock.close()

    def retune(self, *, read_timeout: float, chunk_size: int) -> None:
        """Use new settings from the next wait and body on (a pooled connection taken again
        after the engine's settings changed)."""
        self._read_timeout = read_timeout
        self._chunk = chunk_size

    async def send(self, data: bytes) -> None:
        try:
            sent = self.sock.send(data)  # a request head fits in the socket's buffer at once
        except BlockingIOError:
            sent = 0
        if sent < len(data):
            await asyncio.get_running_loop().sock_sendall(self.sock, memoryview(data)[sent:])

    async def recv(self, size: int) -> bytes:
        """Up to ``size`` bytes; b"" at EOF. Reads at once what the socket holds; waits (at
        most the read timeout) only when it holds nothing."""
        while True:
            try:
                return self.sock.recv(size)
            except BlockingIOError:
                await self.readable()

    async def readable(self) -> None:
        """Wait until the socket has data (or EOF), at most the read timeout (then
        TimeoutError).

        The socket stays registered with the loop between waits, so a stream of small
        answers on one connection does not register and unregister it for each; it is
        unregistered when it becomes readable with nobody waiting (level-triggered: the loop
        would call again and again) and when the stream closes.

        A wait sets its deadline on the stream's one ``Deadline`` (``bitsd._deadline``), so
        a stream of short waits does not make and cancel a timer for each."""
        loop = asyncio.get_running_loop()
        deadline = self._deadline  # set exactly while the socket is registered
        if deadline is None or self._loop is not loop:
            self._stop_reading()
            fd = self.sock.fileno()
            loop.add_reader(fd, self._on_readable)
            self._reading, self._loop = fd, loop
            deadline = self._deadline = Deadline(loop, self._timed_out)
        waiter = self._waiter = loop.create_future()
        deadline.start(self._read_timeout)
        try:
            await waiter
        finally:
            self._waiter = None
            deadline.stop()  # harmless if the stream closed meanwhile

    def _timed_out(self) -> None:
        if self._waiter is not None:
            _time_out(self._waiter)

    def _on_readable(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            if not waiter.done():
                waiter.set_result(None)
            return
        # Nobody waits. The event may be stale (the loop saw the bytes before the woken
        # reader took them, and queued this call after it): then the socket stays registered.
        if not self.alive():
            self._stop_reading()

    def _stop_reading(self) -> None:
        if self._deadline is not None:
            self._deadline.close()
            self._deadline = None
        if self._reading < 0:
            return
        fd, loop = self._reading, self._loop
        self._reading, self._loop = -1, None
        if loop is not None and not loop.is_closed():
            loop.remove_reader(fd)

    async def writable(self) -> None:
        """Wait until the socket can take more bytes, at most the read timeout."""
        loop = asyncio.get_running_loop()
        fd = self.sock.fileno()
        ready = loop.create_future()
        loop.add_writer(fd, _set_done, ready)
        timer = loop.call_later(self._read_timeout, _time_out, ready)
        try:
            await ready
        finally:
            timer.cancel()
            loop.remove_writer(fd)

    def alive(self) -> bool:
        """Whether an idle connection can carry another request: nothing to read on it."""
        try:
            _peek(self.sock, 1, socket.MSG_PEEK)
        except BlockingIOError:
            return True
        except OSError:
            pass
        return False  # closed by the server (EOF) or unexpected bytes

    async def pour(self, sink: Sink, count: int) -> int:
        """Move up to ``count`` body bytes into the sink's file. Returns the bytes left (0
        unless the server closed the connection early)."""
        if count >= HELPER_MIN and self._helper is not None:
            self._stop_reading()  # the helper reads the socket now: no wake-ups of the loop
            left = await self._helper.pour(
                self.sock.fileno(),
                sink,
                count,
                chunk=self._chunk,
                read_timeout=self._read_timeout,
            )
            if left is not None:
                return left
        if count > _SPLICE_MIN:
            count = await self._splice(sink, count)
        while count:
            data = await self.recv(min(count, _READ))
            if not data:
                break
            count -= len(data)
            await sink.write(data)
        return count

    async def _splice(self, sink: Sink, rest: int) -> int:
        read_end, write_end, step_max = new_pipe(self._pipe_size)
        try:
            src, dst = self.sock.fileno(), sink.fd
            piece = sink.piece if isinstance(sink, ThrottledSink) else None
            unreported = 0
            while rest:
                step = min(rest, step_max)
                if piece is not None:
                    step = min(step, piece() or step)
                try:
                    moved = os.splice(src, write_end, step, flags=SPLICE_IN)
                except BlockingIOError:
                    if unreported:
                        await sink.advance(unreported)
                        unreported = 0
                    await self.readable()
                    continue
                except ConnectionError:
                    moved = 0
                if moved == 0:
                    break
                try:
                    drain(read_end, dst, moved)
                except FileWriteError as exc:
                    error = exc.error
                    raise classify.from_local_os_error(error, local_name=sink.local_name) from error
                rest -= moved
                unreported += moved
                if unreported >= self._chunk or piece is not None:
                    await sink.advance(unreported)
                    unreported = 0
            if unreported:
                await sink.advance(unreported)
            return rest
        finally:
            os.close(read_end)
            os.close(write_end)


def write_all(fd: int, data: bytes | memoryview, local_name: str) -> None:
    """Write all of ``data`` to the file ``fd`` at its position; a failure is the LOCAL_FILE
    error of ``local_name``."""
    view = memoryview(data)
    try:
        while view:
            view = view[os.write(fd, view) :]
    except OSError as exc:
        raise classify.from_local_os_error(exc, local_name=local_name) from exc


def _set_done(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _time_out(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_exception(classify.read_timed_out())
