"""The splice helper: a child process that moves large plain-HTTP bodies into their files on a
core of its own, while the daemon's one thread goes on with everything else.

Why: with zero copy (``splice.PlainStream``) the cost of a plain-HTTP download is the kernel's
copy into the file, paid inside ``os.splice`` on the daemon's event-loop thread; with many jobs
at once (scenario 4 of bench/suite.py) that copy and the jobs' own work (requests, state
changes, the store) take turns on one core while the machine's other cores idle. A thread does
not help: it needs the GIL back after every system call and waits for it while the loop runs
Python (measured, docs/performance.md). A process has no GIL to wait for.

Rules:
- The parent's side of the protocol of ``splicehelper_child.py``: one helper per
  :class:`SpliceHelper`, started at its first pour; the helper gets duplicates of the socket's
  and the file's descriptors (SCM_RIGHTS), so it writes at the file's position, as the
  in-process path does, and the parent learns of the bytes through PROGRESS messages, which it
  passes to ``sink.advance`` in order.
- Grants keep the helper at most :data:`WINDOW_CHUNKS` chunks ahead of what the sink has taken,
  and at most the sink's ``piece()`` (its bandwidth limits, and the room before its next
  checkpoint by bytes): a checkpoint the sink waits for, or its bandwidth pacing, holds the
  helper back as it holds the in-process path back, and a crash makes bitsd fetch again at most
  ``checkpoint_bytes``. A sink that takes a lead (``splice.LeadingSink``) hears of the window,
  and checkpoints that much earlier, so the helper runs on while the checkpoint is taken.
- A pour that ends in the parent for any reason (cancelled, an error of the sink) cancels the
  helper's pour and waits for its answer, so no descriptor of a pour is used after
  :meth:`SpliceHelper.pour` returns or raises; a helper that does not answer within
  :data:`CANCEL_TIMEOUT` is killed (its other pours fail).
- Failures mean what they mean on the in-process path: a silent server is ``TimeoutError``, a
  failed write of the file the LOCAL_FILE error of ``classify``, another socket error the
  ``OSError``. A helper that dies fails its pours with :class:`SpliceHelperError` (an
  ``OSError``: a transient BG_E_UNKNOWN_ERROR; the next pour starts a new helper).
- A helper that cannot start, or does not say HELLO within ``_START_TIMEOUT`` (an interpreter
  that cannot run the program), or has died ``_DEATHS_TOLERATED`` times, makes
  :meth:`SpliceHelper.pour` return None from then on, having moved nothing: the caller splices
  in process.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import itertools
import logging
import os
import socket
import struct
import subprocess
import sys
from collections.abc import Callable
from importlib.util import find_spec
from typing import Final, Protocol

from bitsd._transfer import classify
from bitsd._transfer.base import Sink
from bitsd._transfer.bulkfetch_child import RAW_MAX
from bitsd._transfer.splice import LeadingSink, ThrottledSink
from bitsd._transfer.splicehelper_child import (
    BATCH,
    BULKS,
    CANCEL,
    DONE,
    FAILED,
    FILE_ERROR,
    GRANT,
    HELLO,
    MESSAGE,
    MESSAGE_MAX,
    PROGRESS,
    START,
    TIMED_OUT,
)

__all__ = [
    "CANCEL_TIMEOUT",
    "DIED",
    "WINDOW_CHUNKS",
    "Message",
    "SpliceHelper",
    "SpliceHelperError",
]

log = logging.getLogger(__name__)

# Chunks the helper may move beyond what the sink has taken: one the parent is taking, one
# being moved, so the helper never waits for the parent's grant while the parent keeps up.
WINDOW_CHUNKS: Final = 2
# Seconds a cancelled pour waits for the helper's answer before the helper is killed.
CANCEL_TIMEOUT: Final = 5.0
# Seconds a new helper has to say HELLO; one that does not (an interpreter that cannot run
# the program) leaves the splicing in process.
_START_TIMEOUT: Final = 10.0
# Helpers that may die in an engine's life before the splicing stays in process: each death
# fails the transfers it served (transient errors), so a helper killed again and again must not
# keep failing them.
_DEATHS_TOLERATED: Final = 3
_LENGTH: Final = struct.Struct("<I")  # a message's length in a BATCH
_FD_SPACE: Final = socket.CMSG_SPACE(4)  # room for the one descriptor a message may carry
_PROGRAM: Final = os.path.join(os.path.dirname(os.path.abspath(__file__)), "splicehelper_child.py")


Message = tuple[int, int, int, int, int, bytes, int]
"""A message from the helper: kind, a, b, c, d (``MESSAGE`` without its id), the bytes after
it and the descriptor that came with it (-1: none; its listener owns it)."""
DIED: Final[Message] = (FAILED, 0, 0, 0, 0, b"", -1)  # what a pour or bulk hears of a death


class _Inbox(Protocol):
    """Where a pour's or a bulk's messages from the helper go."""

    def put_nowait(self, item: Message, /) -> None: ...


class _Listener:
    """A bulk's end of the helper's messages: each goes to its handler at once."""

    __slots__ = ("put_nowait",)

    def __init__(self, handler: Callable[[Message], None]) -> None:
        self.put_nowait = handler


class SpliceHelperError(OSError):
    """The helper process ended while it moved a body (its bytes are then unknown)."""


class SpliceHelper:
    """One helper process and the pours it serves (see the module rules).

    Args:
        enabled: whether :meth:`pour` uses the helper (:attr:`enabled`; False: it returns
            None, and the caller splices in process).
    """

    def __init__(self, *, enabled: bool = True) -> None:
        self.enabled = enabled
        self._proc: subprocess.Popen[bytes] | None = None
        self._control: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # Each pour's messages from the helper, in order.
        self._pours: dict[int, _Inbox] = {}
        self._ids = itertools.count(1)
        # Done when the control socket can take a message again: shared by every sender that
        # found it full (one writer callback per descriptor), and by the helper's end.
        self._writable: asyncio.Future[None] | None = None
        self._unavailable = False  # no helper any more: splice in process
        self._hello: asyncio.Future[bool] | None = None  # while a new helper starts
        self._starting: asyncio.Lock | None = None
        self._deaths = 0
        self._bulks = False  # the running helper fetches bulks (its HELLO said)
        self._inbox = bytearray(MESSAGE.size + RAW_MAX)  # one message from the helper

    @property
    def pid(self) -> int | None:
        """The helper's process id while it runs."""
        return self._proc.pid if self._proc is not None else None

    def close(self) -> None:
        """Stop the helper (its pours fail) and reap it."""
        self._gone("the splice helper was closed")

    def kill(self, why: str) -> None:
        """Stop the helper now (its pours fail, its bulks end), saying ``why`` in the log; the
        next pour or bulk starts another."""
        self._gone(why)

    async def pour(
        self, sock: int, sink: Sink, count: int, *, chunk: int, read_timeout: float
    ) -> int | None:
        """Move up to ``count`` body bytes from the socket ``sock`` into the sink's file, the
        sink hearing of them through ``sink.advance``. Returns the bytes the server did not
        send (0 unless it closed the connection early), or None if there is no helper (then
        nothing was moved)."""
        if not self.enabled:
            return None
        control = self._control
        if control is None:
            control = await self._start()
            if control is None:
                return None
        loop = asyncio.get_running_loop()
        pour_id = next(self._ids)
        pour = self._pours[pour_id] = asyncio.Queue()
        throttle = sink if isinstance(sink, ThrottledSink) else None
        window = WINDOW_CHUNKS * chunk
        grant = _ahead(window, throttle)
        leading = sink if isinstance(sink, LeadingSink) else None
        if leading is not None:
            leading.lead(window)  # its checkpoints come early: the helper runs on meanwhile
        ended = False
        try:
            await self._send(
                loop,
                control,
                MESSAGE.pack(START, pour_id, count, grant, chunk, round(read_timeout * 1e6)),
                (sock, sink.fd),
            )
            outstanding = grant  # granted and not reported
            while True:
                kind, a, b, *_ = await pour.get()
                if kind == PROGRESS:
                    outstanding -= a
                    await sink.advance(a)
                    more = _ahead(window, throttle) - outstanding
                    if more > 0:
                        outstanding += more
                        await self._send(loop, control, MESSAGE.pack(GRANT, pour_id, more, 0, 0, 0))
                    continue
                ended = True
                if kind == DONE:
                    if a:
                        await sink.advance(a)
                    return b
                raise _failure(a, b, sink.local_name)
        except BaseException:
            if not ended:
                await self._cancel(loop, pour_id, pour)
            raise
        finally:
            self._pours.pop(pour_id, None)
            if leading is not None:
                leading.lead(0)

    async def open_channel(self, handler: Callable[[Message], None]) -> int | None:
        """A channel for a bulk of small files (``bulkfetch.py``): an id whose messages from
        the helper go to ``handler`` as they come (``DIED`` if the helper dies), until
        :meth:`close_channel`; None if there is no helper that fetches bulks."""
        if not self.enabled:
            return None
        if self._control is None and await self._start() is None:
            return None
        if not self._bulks:
            return None
        channel = next(self._ids)
        self._pours[channel] = _Listener(handler)
        return channel

    def close_channel(self, channel: int) -> None:
        self._pours.pop(channel, None)

    async def send(self, data: bytes) -> None:
        """Send a message (and the bytes after it, at most ``MESSAGE_MAX``) to the helper.

        Raises:
            SpliceHelperError: there is no helper (it died, or was closed).
        """
        assert len(data) <= MESSAGE.size + MESSAGE_MAX
        control = self._control
        if control is None:
            raise SpliceHelperError("the splice helper is not running")
        await self._send(asyncio.get_running_loop(), control, data)

    async def _cancel(
        self, loop: asyncio.AbstractEventLoop, pour_id: int, pour: asyncio.Queue[Message]
    ) -> None:
        """Cancel a pour in the helper and wait for its last answer (see the module rules)."""
        control = self._control
        if control is None or pour_id not in self._pours:
            return
        deadline = loop.time() + CANCEL_TIMEOUT
        with contextlib.suppress(OSError, asyncio.CancelledError, TimeoutError):
            async with asyncio.timeout_at(deadline):
                await self._send(loop, control, MESSAGE.pack(CANCEL, pour_id, 0, 0, 0, 0))
        while (remaining := deadline - loop.time()) > 0:
            try:
                kind, *_ = await asyncio.wait_for(pour.get(), remaining)
            except (asyncio.CancelledError, TimeoutError):
                continue  # cancelled again meanwhile: the answer is still awaited
            if kind != PROGRESS:
                return
        # A helper that does not answer (stopped, or stuck in a write that does not end) may
        # still use the pour's descriptors: it is killed, and its other pours fail.
        self._gone(f"the splice helper did not answer a cancel within {CANCEL_TIMEOUT:g} s")

    # -- the process ---------------------------------------------------------------------------

    async def _start(self) -> socket.socket | None:
        """The control socket of a running helper, started now if needed; None when there is
        none (it cannot start, or died too often): the caller splices in process."""
        if self._starting is None:
            self._starting = asyncio.Lock()
        async with self._starting:  # pours that come while a helper starts wait for it
            if self._control is None and not self._unavailable:
                await self._launch()
        return self._control

    async def _launch(self) -> None:
        loop = asyncio.get_running_loop()
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self._proc = _spawn(child.fileno())
        except OSError as exc:
            parent.close()
            self._give_up(f"the splice helper could not start ({exc})")
            return
        finally:
            child.close()
        parent.setblocking(False)
        self._control, self._loop = parent, loop
        hello = self._hello = loop.create_future()
        loop.add_reader(parent.fileno(), self._on_readable)
        try:
            started = await asyncio.wait_for(asyncio.shield(hello), _START_TIMEOUT)
        except TimeoutError:
            started = False
        finally:
            self._hello = None
        if not started:
            self._gone("the splice helper did not start")
            self._give_up("the splice helper did not start")

    def _give_up(self, why: str) -> None:
        self._unavailable = True
        log.warning("%s: splicing on the event loop's thread from now on", why)

    def _on_readable(self) -> None:
        control = self._control
        if control is None:
            return
        inbox = self._inbox
        while True:
            try:
                size, ancillary, _, _ = control.recvmsg_into([inbox], _FD_SPACE)
            except BlockingIOError:
                return
            except OSError:
                size, ancillary = 0, []
            fd = _descriptor(ancillary)
            if size < MESSAGE.size:
                if fd >= 0:
                    os.close(fd)
                if self._hello is None:
                    self._deaths += 1
                    if self._deaths >= _DEATHS_TOLERATED:
                        self._give_up(f"the splice helper died {self._deaths} times")
                self._gone("the splice helper process ended")
                return
            kind, pour_id, a, b, c, d = MESSAGE.unpack_from(inbox)
            if kind == BATCH:
                self._batch(memoryview(inbox)[MESSAGE.size : size], a)
                continue
            if kind == HELLO:
                self._bulks = bool(a & BULKS)
                if self._hello is not None and not self._hello.done():
                    self._hello.set_result(True)
                continue
            pour = self._pours.get(pour_id)
            if pour is not None:
                rest = bytes(inbox[MESSAGE.size : size]) if size > MESSAGE.size else b""
                pour.put_nowait((kind, a, b, c, d, rest, fd))
            elif fd >= 0:
                os.close(fd)  # nobody listens any more

    def _batch(self, data: memoryview, count: int) -> None:
        """Hand each message of a BATCH to its listener."""
        at = 0
        for _ in range(count):
            (length,) = _LENGTH.unpack_from(data, at)
            at += _LENGTH.size
            kind, pour_id, a, b, c, d = MESSAGE.unpack_from(data, at)
            listener = self._pours.get(pour_id)
            if listener is not None:
                rest = bytes(data[at + MESSAGE.size : at + length])
                listener.put_nowait((kind, a, b, c, d, rest, -1))
            at += length

    def _gone(self, why: str) -> None:
        """The helper ended (or is stopped now): fail its pours, reap it."""
        self._wake_senders()
        if self._hello is not None and not self._hello.done():
            self._hello.set_result(False)
        control, proc = self._control, self._proc
        self._control = self._proc = None
        self._bulks = False
        if control is not None:
            loop = self._loop
            if loop is not None and not loop.is_closed():
                loop.remove_reader(control.fileno())
            control.close()
        self._loop = None
        if proc is not None:
            try:
                status = proc.wait(timeout=1)
            except subprocess.TimeoutExpired:
                proc.kill()
                status = proc.wait()
            if status != 0:
                why = f"{why} (exit status {status})"
        if self._pours:
            log.warning("%s; its transfers fail and are retried", why)
        for pour in self._pours.values():
            pour.put_nowait(DIED)

    async def _send(
        self,
        loop: asyncio.AbstractEventLoop,
        control: socket.socket,
        data: bytes,
        fds: tuple[int, int] | None = None,
    ) -> None:
        ancillary = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))] if fds else []
        while True:
            try:
                control.sendmsg([data], ancillary)
                return
            except BlockingIOError:
                pass  # the helper is behind with its messages: wait until it takes this one
            except OSError as exc:  # the helper is gone (EPIPE, ECONNRESET) or closed
                raise SpliceHelperError(f"the splice helper cannot be reached ({exc})") from exc
            waiter = self._writable
            if waiter is None:
                waiter = self._writable = loop.create_future()
                loop.add_writer(control.fileno(), self._wake_senders)
            await asyncio.shield(waiter)  # a sender cancelled leaves the others waiting

    def _wake_senders(self) -> None:
        """Let the senders waiting for room try again (they fail if the helper is gone)."""
        waiter, self._writable = self._writable, None
        if waiter is None:
            return
        if self._control is not None and self._loop is not None and not self._loop.is_closed():
            self._loop.remove_writer(self._control.fileno())
        if not waiter.done():
            waiter.set_result(None)


def _descriptor(ancillary: list[tuple[int, int, bytes]]) -> int:
    """The descriptor that came with a message (-1: none); any more are closed."""
    fds: list[int] = []
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            usable = len(data) - len(data) % 4
            fds.extend(array.array("i", data[:usable]))
    for extra in fds[1:]:
        os.close(extra)
    return fds[0] if fds else -1


def _ahead(window: int, throttle: ThrottledSink | None) -> int:
    """Bytes the helper may have moved beyond what the sink has taken: the window, or less if
    the sink's ``piece()`` says so (bandwidth limits, the room before its next checkpoint)."""
    piece = throttle.piece() if throttle is not None else None
    return window if not piece else min(window, piece)


def _spawn(child_fd: int) -> subprocess.Popen[bytes]:
    """Start the helper's program on ``child_fd`` (a few milliseconds: vfork and exec, on the
    loop's thread, which PR_SET_PDEATHSIG ties the helper to), telling it where httptools
    is."""
    argv = [sys.executable, "-I", "-S", _PROGRAM, str(child_fd), str(os.getpid())]
    spec = find_spec("httptools")
    if spec is not None and spec.origin is not None:
        argv.append(os.path.dirname(os.path.dirname(spec.origin)))
    return subprocess.Popen(
        argv,
        pass_fds=(child_fd,),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
    )


def _failure(reason: int, number: int, local_name: str) -> BaseException:
    """What the in-process path raises where the helper reported ``reason``."""
    if reason == TIMED_OUT:
        return classify.read_timed_out()
    if reason == FILE_ERROR:
        return classify.from_local_os_error(
            OSError(number, os.strerror(number)), local_name=local_name
        )
    if reason == 0:
        return SpliceHelperError("the splice helper process ended while it moved the body")
    return OSError(number, os.strerror(number))
