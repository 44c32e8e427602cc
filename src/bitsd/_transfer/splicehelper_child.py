"""The program of bitsd's splice helper process: on a core of its own, for the raw HTTP
transport's plain connections, it moves large response bodies socket → pipe → file with
``os.splice`` (pours), and fetches bulks of small files whole: each file's request, the
answer's head, the body into its file (``splicehelper.py`` and ``bulkfetch.py`` are the
parent's side and state why).

Run as ``python -I -S splicehelper_child.py FD PARENT [PATH]``: the standard library, this
folder's ``bulkfetch_child.py`` and httptools (found in PATH, the folder the parent imported it
from) only; the package is not imported, so the process starts in a few milliseconds. FD is its
end of an AF_UNIX SOCK_SEQPACKET pair with the parent, PARENT the parent's process id.

Rules:
- One message is one :data:`MESSAGE` (kind, pour id, four integers). The parent sends START
  with the socket's and the file's descriptors (SCM_RIGHTS), GRANT and CANCEL; the helper
  answers PROGRESS, then exactly one DONE or FAILED per pour, after which it holds none of that
  pour's descriptors.
- A pour moves at most the bytes granted and not yet reported: the parent grants as its sink
  takes the bytes, so the helper runs at most a window ahead of the parent's progress
  (checkpoints, bandwidth pacing).
- Bytes are reported (PROGRESS) at least every ``chunk`` bytes (no report holds more; a step
  stops at the chunk's end), before every wait for the socket and whenever the grant is used
  up; DONE carries what was not reported yet and the bytes the server did not send (a
  connection that ended early, or was reset, is the end of the body, as in
  ``splice.PlainStream``).
- Every wait for the socket is bounded by the pour's read timeout (FAILED with TIMED_OUT);
  waiting for a grant is not a wait for the server.
- Writing the file fails as FAILED with FILE_ERROR and the errno; another error of the socket
  as SOCKET_ERROR; a file system that cannot splice is written with ``os.write``.
- Pours are served round-robin, at most ``chunk`` bytes each per turn.
- Messages to the parent that carry no descriptor are sent at the end of the loop's turn,
  several as one BATCH (each after its length), in the order they were made; a message with
  a descriptor, or a pour's, sends those first.
- Bulks of small files (``bulkfetch_child.py``, whose rules they follow): each file an
  exchange on the bulk's own connections, its body written into its temporary file; their
  messages are BULK_OPEN, BULK_ADD, BULK_CANCEL and BULK_CLOSE, answered with RESULT and
  CANCELLED. They need httptools: HELLO says whether the helper found it.
- The helper dies with its parent (PR_SET_PDEATHSIG) and exits (status 0) when the parent
  closes its end, also while it sends to it; it ignores SIGINT, SIGTERM and SIGHUP, which
  reach it with the daemon's process group or service, so the daemon's orderly stop is not cut
  short by its helper's death.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import fcntl
import importlib
import math
import os
import select
import selectors
import signal
import socket
import struct
import sys
import time
from collections.abc import Iterator
from typing import Any, Final

__all__ = [
    "BATCH",
    "BULKS",
    "CANCEL",
    "DONE",
    "FAILED",
    "FILE_ERROR",
    "GRANT",
    "HELLO",
    "MESSAGE",
    "MESSAGE_MAX",
    "PIPE_SIZE",
    "PROGRESS",
    "SOCKET_ERROR",
    "SPLICE_IN",
    "SPLICE_MIN",
    "SPLICE_OUT",
    "START",
    "TIMED_OUT",
    "FileWriteError",
    "drain",
    "main",
    "new_pipe",
]

# kind, pour id, a, b, c, d.
MESSAGE: Final = struct.Struct("<BxxxIqqqq")
# Parent → helper. START: a = bytes to move, b = first grant, c = chunk, d = read timeout in
# microseconds; with two descriptors: the socket, the file (at the position to write).
START: Final = 1
GRANT: Final = 2  # a = more bytes the pour may move
CANCEL: Final = 3  # stop; answered with DONE
# 4 to 8: a bulk's messages (``bulkfetch_child``).
# Helper → parent.
# The helper runs (pour id 0), sent once before anything else; a = BULKS if it can fetch bulks
# (it found httptools).
HELLO: Final = 10
BULKS: Final = 1
PROGRESS: Final = 11  # a = bytes moved since the last report
DONE: Final = 12  # a = bytes moved and not reported yet, b = bytes the server did not send
FAILED: Final = 13  # a = reason, b = errno
# 14 and 15: a bulk's messages (``bulkfetch_child``).
# Reasons of FAILED.
TIMED_OUT: Final = 1
SOCKET_ERROR: Final = 2
FILE_ERROR: Final = 3
# Bytes. A body at most this large is read into memory by the in-process path, a larger one
# spliced (``splice.PlainStream``).
SPLICE_MIN: Final = 64 * 1024
# Bytes of a message from the parent (a BULK_ADD's files fill at most this), and of a BATCH.
MESSAGE_MAX: Final = 64 * 1024
# Several messages to the parent in one: a = how many; after it each message (MESSAGE and its
# bytes) after its length (``_LENGTH``).
BATCH: Final = 16
_LENGTH: Final = struct.Struct("<I")

# Bytes asked for each pipe: Linux's default /proc/sys/fs/pipe-max-size (what an unprivileged
# process may ask for); 16 times the default 64 KiB, so a step costs a sixteenth of the
# system calls. ``splice.PlainStream`` splices in process with the same pipes.
PIPE_SIZE: Final = 1024 * 1024
# splice(2) flags: from the socket (never block: the caller waits for readability), into a file.
SPLICE_IN: Final = getattr(os, "SPLICE_F_MOVE", 1) | getattr(os, "SPLICE_F_NONBLOCK", 2)
SPLICE_OUT: Final = getattr(os, "SPLICE_F_MOVE", 1)
_PIPES_KEPT = 8
_F_SETPIPE_SZ: Final = getattr(fcntl, "F_SETPIPE_SZ", 1031)
_PR_SET_PDEATHSIG: Final = 1


class FileWriteError(Exception):
    """Writing the file failed (:func:`drain`); ``error`` is the OSError."""

    def __init__(self, error: OSError) -> None:
        super().__init__(str(error))
        self.error = error


class _Pour:
    __slots__ = (
        "chunk",
        "deadline",
        "file",
        "granted",
        "id",
        "queued",
        "rest",
        "sock",
        "timeout",
        "unreported",
        "watched",
    )

    def __init__(
        self, pour_id: int, sock: int, file: int, rest: int, grant: int, chunk: int, timeout: float
    ) -> None:
        self.id = pour_id
        self.sock = sock
        self.file = file
        self.rest = rest
        self.granted = grant
        self.chunk = max(1, chunk)
        self.timeout = timeout
        self.unreported = 0
        self.deadline: float | None = None  # while waiting for the socket
        self.watched = 0  # the selector events it is registered for
        self.queued = False  # in the line of pours to run


class _Helper:
    def __init__(self, control: socket.socket, bulks: Any = None, parser_class: Any = None) -> None:
        self.control = control
        # The bulkfetch_child module and httptools.HttpResponseParser (None: no bulks).
        self.bulk_module = bulks
        self.parser_class = parser_class
        # epoll itself, not ``selectors``: a bulk registers and unregisters a socket per file,
        # and the wrapper's keys and lookups cost more than the two system calls.
        self.epoll = select.epoll()
        self.control_fd = control.fileno()
        self.epoll.register(self.control_fd, select.EPOLLIN)
        self.watching: dict[int, Any] = {self.control_fd: None}  # the item of each fd watched
        # The fd each item is watched by: found again when its socket was closed meanwhile.
        self.fd_of: dict[Any, int] = {}
        self.pours: dict[int, _Pour] = {}
        self.bulks: dict[int, Any] = {}  # bulkfetch_child.Bulk by id
        self.outbox: list[bytes] = []  # messages to send at the end of this turn (``post``)
        self.outgoing = 0  # their bytes
        # Pours to turn and bulk exchanges to run (``run()``) at the loop's next turn.
        self.runnable: collections.deque[Any] = collections.deque()
        self.pipes: list[tuple[int, int, int]] = []  # (read end, write end, size), empty

    # -- the loop ------------------------------------------------------------------------------

    def run(self) -> None:
        while True:
            timeout: float | None = 0.0
            if not self.runnable:
                deadlines = [w.deadline for w in self.waits() if w.deadline is not None]
                timeout = max(0.0, min(deadlines) - time.monotonic()) if deadlines else None
            # Whole milliseconds, rounded up (as ``selectors`` does): a wait never ends early.
            wait = -1.0 if timeout is None else math.ceil(timeout * 1e3) * 1e-3
            watching = self.watching
            for fd, _ in self.epoll.poll(wait, len(watching)):
                item = watching.get(fd)
                if item is not None:
                    self.queue(item)
                elif fd == self.control_fd and not self.read_control():
                    return
            for _ in range(len(self.runnable)):
                item = self.runnable.popleft()
                item.queued = False
                if isinstance(item, _Pour):
                    if self.pours.get(item.id) is item:
                        self.turn(item)
                elif item.bulk.busy.get(item.position) is item:
                    item.run()
            now = time.monotonic()
            for waiting in list(self.waits()):
                if waiting.deadline is not None and now >= waiting.deadline:
                    if isinstance(waiting, _Pour):
                        self.fail(waiting, TIMED_OUT, 0)
                    elif waiting.bulk.busy.get(waiting.position) is waiting:
                        waiting.timed_out()
            self.flush()

    def waits(self) -> Iterator[Any]:
        """The pours and bulk exchanges, any of which may wait for its socket."""
        yield from self.pours.values()
        for bulk in self.bulks.values():
            yield from bulk.busy.values()

    def read_control(self) -> bool:
        """Handle the parent's messages; False when the parent is gone."""
        fd_space = socket.CMSG_SPACE(2 * 4)
        while True:
            try:
                data, ancillary, _, _ = self.control.recvmsg(
                    MESSAGE.size + MESSAGE_MAX, fd_space, socket.MSG_DONTWAIT
                )
            except BlockingIOError:
                return True
            except ConnectionError:
                return False
            if not data:
                return False
            fds: list[int] = []
            for level, kind, payload in ancillary:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    usable = len(payload) - len(payload) % 4
                    fds.extend(struct.unpack(f"{usable // 4}i", payload[:usable]))
            message, pour_id, a, b, c, d = MESSAGE.unpack_from(data)
            if message == START and len(fds) == 2:
                pour = _Pour(pour_id, fds[0], fds[1], a, b, c, d / 1e6)
                self.pours[pour_id] = pour
                self.queue(pour)
                continue
            for fd in fds:  # not a START: descriptors nobody asked for
                os.close(fd)
            if self.bulk_module is not None and self.bulk_message(message, pour_id, data):
                continue
            known = self.pours.get(pour_id)
            if known is None:
                continue
            if message == GRANT:
                was_stopped = known.granted <= 0
                known.granted += a
                if was_stopped and known.granted > 0 and not known.watched:
                    self.queue(known)
            elif message == CANCEL:
                self.finish(known, DONE, known.unreported, known.rest)

    def bulk_message(self, message: int, bulk_id: int, data: bytes) -> bool:
        """Handle a bulk's message; False if ``message`` is none."""
        bulks = self.bulk_module
        _, _, a, b, c, d = MESSAGE.unpack_from(data)
        rest = data[MESSAGE.size :]
        if message == bulks.BULK_OPEN:
            self.bulks[bulk_id] = bulks.Bulk(
                self,
                bulk_id,
                self.parser_class,
                width=a,
                most=b,
                connect_timeout=c / 1e6,
                read_timeout=d / 1e6,
                addresses=bulks.Bulk.addresses_of(rest),
            )
        elif message == bulks.BULK_ADD:
            if bulk_id in self.bulks:
                self.bulks[bulk_id].add(rest)
        elif message == bulks.BULK_CANCEL:
            if bulk_id in self.bulks:
                self.bulks[bulk_id].cancel(a)
            else:
                self.post(bulks.CANCELLED, bulk_id, a, 0, 0, 0, b"")
        elif message == bulks.BULK_RELEASE:
            if bulk_id in self.bulks:
                self.bulks[bulk_id].release(a)
        elif message == bulks.BULK_CLOSE:
            bulk = self.bulks.pop(bulk_id, None)
            if bulk is not None:
                bulk.close()
        else:
            return False
        return True

    def post(
        self, kind: int, ident: int, a: int, b: int, c: int, d: int, data: bytes, fd: int = -1
    ) -> None:
        """Send a message (and the bytes after it, and a duplicate of ``fd`` unless it is -1)
        to the parent (``bulkfetch_child.Host``)."""
        message = MESSAGE.pack(kind, ident, a, b, c, d) + data
        if fd < 0:
            # Sent with the others of this turn of the loop (``flush``): a bulk's results come
            # several at a time, each a system call and a wake-up of the parent if sent alone.
            if self.outgoing + len(message) + _LENGTH.size > MESSAGE_MAX:
                self.flush()
            self.outbox.append(_LENGTH.pack(len(message)) + message)
            self.outgoing += _LENGTH.size + len(message)
        else:
            self.flush()  # in order
            fds = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack("i", fd))]
            self.control.sendmsg([message], fds)  # blocking, as every send to the parent

    def flush(self) -> None:
        """Send the messages ``post`` kept: one alone, several as one BATCH."""
        if not self.outbox:
            return
        if len(self.outbox) == 1:
            data = self.outbox[0][_LENGTH.size :]
        else:
            head = MESSAGE.pack(BATCH, 0, len(self.outbox), 0, 0, 0)
            data = head + b"".join(self.outbox)
        self.outbox.clear()
        self.outgoing = 0
        # Blocking: the parent reads all the time, and no message may be dropped.
        self.control.send(data)

    # -- one pour ------------------------------------------------------------------------------

    def turn(self, pour: _Pour) -> None:
        """Move up to a chunk of ``pour``'s bytes, then stop: waiting for the socket or a grant,
        finished, failed, or back in line behind the other pours."""
        self.unwatch(pour)  # a turn starts afresh: it watches the socket again if it must wait
        pour.deadline = None
        moved_now = 0
        pipe = self.pipes.pop() if self.pipes else new_pipe(PIPE_SIZE)
        try:
            while pour.rest:
                # Up to the next chunk's end: a report holds at most a chunk, so the parent
                # takes one chunk while the next moves, within the window it granted.
                step = min(pour.rest, pipe[2], pour.granted, pour.chunk - pour.unreported)
                if step <= 0:  # wait for the parent's grant
                    self.report(pour)
                    return
                try:
                    moved = os.splice(pour.sock, pipe[1], step, flags=SPLICE_IN)
                except BlockingIOError:
                    self.report(pour)
                    self.watch(pour)
                    return
                except ConnectionError:
                    moved = 0
                except OSError as exc:
                    self.fail(pour, SOCKET_ERROR, exc.errno or 0)
                    return
                if moved == 0:
                    break  # the server closed the connection early
                try:
                    drain(pipe[0], pour.file, moved)
                except FileWriteError as exc:
                    pipe = _discard(pipe)
                    self.fail(pour, FILE_ERROR, exc.error.errno or 0)
                    return
                pour.rest -= moved
                pour.granted -= moved
                pour.unreported += moved
                if pour.unreported >= pour.chunk:
                    self.report(pour)
                moved_now += moved
                if moved_now >= pour.chunk and pour.rest:
                    self.queue(pour)  # let the other pours have a turn
                    return
            self.finish(pour, DONE, pour.unreported, pour.rest)
        finally:
            if pipe[0] >= 0:
                if len(self.pipes) < _PIPES_KEPT:
                    self.pipes.append(pipe)
                else:
                    _discard(pipe)

    # -- the line and the selector -------------------------------------------------------------

    def queue(self, pour: Any) -> None:
        """Put ``pour`` in the line of pours to run, once."""
        if not pour.queued:
            pour.queued = True
            self.runnable.append(pour)

    def report(self, pour: _Pour) -> None:
        if pour.unreported:
            self.send(PROGRESS, pour.id, pour.unreported)
            pour.unreported = 0

    def watch(self, pour: Any, events: int = selectors.EVENT_READ) -> None:
        """Wake ``pour`` (a pour, or a bulk's exchange) when its socket is ready for
        ``events`` (``selectors.EVENT_READ`` or ``EVENT_WRITE``); a pour's wait to read lasts
        at most its read timeout."""
        if pour.watched != events:
            mask = select.EPOLLIN if events == selectors.EVENT_READ else select.EPOLLOUT
            if pour.watched:
                self.epoll.modify(self.fd_of[pour], mask)
            else:
                fd = _fd_of(pour.sock)
                self.epoll.register(fd, mask)
                self.watching[fd] = pour
                self.fd_of[pour] = fd
            pour.watched = events
        if events == selectors.EVENT_READ and isinstance(pour, _Pour):
            pour.deadline = time.monotonic() + pour.timeout

    def unwatch(self, pour: Any) -> None:
        if pour.watched:
            fd = self.fd_of.pop(pour)
            del self.watching[fd]
            with contextlib.suppress(OSError):  # closed meanwhile: epoll forgot it itself
                self.epoll.unregister(fd)
            pour.watched = 0

    def fail(self, pour: _Pour, reason: int, number: int) -> None:
        self.finish(pour, FAILED, reason, number)

    def finish(self, pour: _Pour, message: int, a: int, b: int) -> None:
        """End ``pour``: its descriptors closed, then its one last message sent."""
        self.unwatch(pour)
        del self.pours[pour.id]
        os.close(pour.sock)
        os.close(pour.file)
        self.send(message, pour.id, a, b)

    def send(self, message: int, pour_id: int, a: int = 0, b: int = 0) -> None:
        self.flush()  # in order
        # Blocking: the parent reads all the time, and no message may be dropped.
        self.control.send(MESSAGE.pack(message, pour_id, a, b, 0, 0))


def _fd_of(sock: int | socket.socket) -> int:
    """The descriptor of a pour's socket (a descriptor) or an exchange's (a socket)."""
    return sock if isinstance(sock, int) else sock.fileno()


def new_pipe(size: int) -> tuple[int, int, int]:
    """A non-blocking pipe (read end, write end, its size): ``size`` bytes asked with
    F_SETPIPE_SZ, what the kernel gave."""
    read_end, write_end = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
    with contextlib.suppress(OSError):
        fcntl.fcntl(write_end, _F_SETPIPE_SZ, size)
    return read_end, write_end, fcntl.fcntl(write_end, fcntl.F_GETPIPE_SZ)


def _discard(pipe: tuple[int, int, int]) -> tuple[int, int, int]:
    """Close a pipe that may hold bytes; returns a marker that is no pipe."""
    os.close(pipe[0])
    os.close(pipe[1])
    return (-1, -1, 0)


def drain(pipe: int, fd: int, count: int) -> None:
    """Move ``count`` bytes that are in ``pipe`` to the file ``fd`` at its position; a file
    system that cannot splice is written with ``os.write``.

    Raises:
        FileWriteError: writing the file failed.
    """
    while count:
        try:
            count -= os.splice(pipe, fd, count, flags=SPLICE_OUT)
        except OSError as exc:
            if exc.errno not in (22, 95):  # EINVAL, EOPNOTSUPP: the file cannot splice
                raise FileWriteError(exc) from exc
            try:
                data = memoryview(os.read(pipe, count))
                count -= len(data)
                while data:
                    data = data[os.write(fd, data) :]
            except OSError as exc2:
                raise FileWriteError(exc2) from exc2


def _die_with_parent(parent: int) -> None:
    """Ask for SIGKILL when the parent dies, then check it has not died already."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # pragma: no cover - not Linux: EOF on the socket ends us
        pass
    if os.getppid() != parent:
        sys.exit(0)


def main(argv: list[str]) -> int:
    fd, parent = int(argv[1]), int(argv[2])
    _die_with_parent(parent)
    bulks = parser_class = None
    if len(argv) > 3:  # where httptools is: bulks need it (pours do not)
        sys.path.append(argv[3])
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        try:
            import httptools

            bulks = importlib.import_module("bulkfetch_child")
            parser_class = httptools.HttpResponseParser
        except ImportError:
            bulks = parser_class = None  # no bulks: HELLO says so
    # Signals sent to the daemon's whole process group or service (^C in a terminal, a
    # hang-up, systemd's stop of the control group) are the daemon's to handle: it stops its
    # transfers after a checkpoint, then closes its end, and the helper ends at that EOF.
    for number in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(number, signal.SIG_IGN)
    control = socket.socket(fileno=fd)  # blocking; reads ask MSG_DONTWAIT
    with contextlib.suppress(ConnectionError):  # the parent closed its end as we sent: the end
        control.send(MESSAGE.pack(HELLO, 0, BULKS if bulks else 0, 0, 0, 0))
        _Helper(control, bulks, parser_class).run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
