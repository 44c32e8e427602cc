"""Bulks of small files for the splice helper process (``splicehelper_child.py`` runs them;
``bulkfetch.py`` is the parent's side and states why).

Standard library and httptools only: the helper imports this module by its folder, not through
the package.

Rules:
- A bulk is one origin's files of one job run: BULK_OPEN gives its addresses (resolved by the
  parent), at most how many connections it may hold, the largest body it takes and the
  connect and read timeouts; BULK_ADD gives files (a position, a temporary file's path, the
  request's bytes), served in the order given, each on an idle connection of the bulk or a
  new one while the bulk holds fewer than its maximum.
- A new connection tries the addresses in order, each bounded by the connect timeout, as the
  parent's own client does; when all fail, the file's RESULT is CONNECT_FAILED with the errno
  of the last failure (-1: it timed out), the index of its address and whether ``connect``
  itself failed at once (AT_ONCE; the parent's client words that failure otherwise).
- An exchange sends the request, reads the answer's head and parses it with httptools as the
  parent parses it (a 1xx answer is skipped). The helper takes the body only of a ``206``
  framed by a Content-Length of at most the bulk's largest body (not chunked) when what was
  read holds nothing after the answer: it opens the temporary file (created, emptied), writes
  the body, makes it durable (fsync, and the file must still have a name) and answers RESULT
  TAKEN with the head's fields the parent decides with (Content-Length, Content-Range, ETag,
  Last-Modified). A failure after the body was taken answers what was written and made
  durable (nothing, if the file lost its name: DELETED).
- Any other answer (another status, chunked, too large, a parse error, a head of more than
  :data:`RAW_MAX` bytes) is answered with every byte read until then and the connection
  (SCM_RIGHTS), the rest of the answer unread: the parent goes on with it as if it had read
  those bytes itself. The helper closes its own descriptor of it, and counts the connection
  among its own until BULK_RELEASE says the parent's file ended: the bulk's connections and
  those it handed back together stay within its maximum.
- A reused connection that the server closed meanwhile (EOF, reset or a broken pipe before any
  byte of the answer) is replaced once by a new connection, as the parent's client does. A
  connection goes back to the bulk after an answer read to its exact end that does not ask
  to close it (an HTTP/1.0 answer without a Connection field closes it); an idle one that
  holds bytes, or was closed, when a file would take it is closed instead (as the parent's
  client checks ``PlainStream.alive``).
- In a taken body a connection reset is the end of the body when more than
  :data:`SPLICE_MIN` bytes were left after the head's read (the parent's client splices
  those, and a splice takes a reset as the end), an error otherwise; the end of the connection
  ends the body (the parent says what a short body means).
- Every wait for the server is bounded by the read timeout (TIMED_OUT), except a send, as in
  the parent's client.
- BULK_CANCEL stops the files after a position (-1: all of them): those waiting are dropped,
  those under way closed without a RESULT, and the idle connections closed; CANCELLED
  answers it once none of them holds a descriptor (the parent's own connections can take
  their turn then). BULK_CLOSE forgets a bulk, closing its connections (and anything under way).
"""

from __future__ import annotations

import collections
import errno
import os
import selectors
import socket
import struct
import time
from typing import Any, Final, Protocol

__all__ = [
    "AT_ONCE",
    "BULK_ADD",
    "BULK_CANCEL",
    "BULK_CLOSE",
    "BULK_OPEN",
    "BULK_RELEASE",
    "CANCELLED",
    "CLOSED",
    "CONNECT_FAILED",
    "DELETED",
    "FILE_ERROR",
    "FILE_HEAD",
    "GOT_ANY",
    "RAW_MAX",
    "RESULT",
    "SOCKET_ERROR",
    "SPLICE_MIN",
    "TAKEN",
    "TIMED_OUT",
    "UNSET",
    "Bulk",
    "Host",
]

# Parent → helper; the kinds of the helper's MESSAGE (kind, id, a, b, c, d), bytes after it.
# BULK_OPEN: a = connections at most, b = the largest body taken, c = connect timeout and
# d = read timeout in microseconds; after it the addresses, one "family host port" per line.
BULK_OPEN: Final = 4
BULK_ADD: Final = 5  # after it: files, each FILE_HEAD, the path (file system bytes), the request
BULK_CANCEL: Final = 6  # a = the position after which files stop (-1: all)
BULK_CLOSE: Final = 7
BULK_RELEASE: Final = 8  # a = connections handed back whose files ended in the parent
# Helper → parent. RESULT: a = the file's position, b = body bytes written (durable), c = the
# reason (0: none) | flags << 8, d = errno; after it the head's fields (TAKEN: Content-Length,
# Content-Range, ETag, Last-Modified, NUL-separated, UNSET for a field not sent) or every
# byte read. CONNECT_FAILED: b = the address's index, d = errno or -1 (timed out).
RESULT: Final = 14
CANCELLED: Final = 15  # a = the position of the BULK_CANCEL answered
# Reasons.
TIMED_OUT: Final = 1
SOCKET_ERROR: Final = 2
FILE_ERROR: Final = 3
CLOSED: Final = 4  # the server closed the connection before the answer's head was complete
CONNECT_FAILED: Final = 5
DELETED: Final = 6  # the temporary file lost its name during the transfer
# Flags.
TAKEN: Final = 1
GOT_ANY: Final = 2  # bytes of the answer came
AT_ONCE: Final = 4  # CONNECT_FAILED: the last address's connect failed at once, not later
UNSET: Final = "\x01"  # a head field the answer did not send (no field value holds it)
FILE_HEAD: Final = struct.Struct("<IHH")  # position, path bytes, request bytes
# Bytes of an answer's head (and the body bytes that came with it) read before the answer is
# left to the parent: a RESULT must fit in one message.
RAW_MAX: Final = 128 * 1024
# Bytes. A body at most this large is read into memory by the parent's client, a larger one
# spliced (``splice.PlainStream``).
SPLICE_MIN: Final = 64 * 1024
_READ: Final = 64 * 1024
_OPEN_FLAGS: Final = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_TRUNC
_STALE: Final = frozenset({errno.EPIPE, errno.ECONNRESET})
# recv's flags as a plain integer: socket's are IntFlag members, whose "|" runs Python code.
_PEEK: Final = int(socket.MSG_PEEK) | int(socket.MSG_DONTWAIT)
# Phases of an exchange.
_CONNECT, _SEND, _HEAD, _BODY = range(4)


class Host(Protocol):
    """What a bulk needs of the helper process."""

    def queue(self, item: Any) -> None:
        """Run ``item.run()`` at the loop's next turn."""
        ...

    def watch(self, item: Any, events: int) -> None:
        """Queue ``item`` when ``item.sock`` is ready for ``events``."""
        ...

    def unwatch(self, item: Any) -> None: ...

    def post(
        self, kind: int, ident: int, a: int, b: int, c: int, d: int, data: bytes, fd: int = -1
    ) -> None:
        """Send a message to the parent, with a duplicate of the descriptor ``fd`` if it is
        not -1."""
        ...


class _Conn:
    __slots__ = ("reused", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.reused = False


class Bulk:
    """One bulk (see the module rules)."""

    def __init__(
        self,
        host: Host,
        bulk_id: int,
        parser_class: Any,
        *,
        width: int,
        most: int,
        connect_timeout: float,
        read_timeout: float,
        addresses: list[tuple[int, tuple[str, int]]],
    ) -> None:
        self.host = host
        self.id = bulk_id
        self.parser_class = parser_class
        self.width = max(1, width)
        self.most = most
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.addresses = addresses
        self.waiting: collections.deque[tuple[int, bytes, bytes]] = collections.deque()
        self.idle: list[_Conn] = []
        self.busy: dict[int, _Exchange] = {}  # by position
        self.connections = 0  # open or opening, idle or busy, or handed back

    @staticmethod
    def addresses_of(data: bytes) -> list[tuple[int, tuple[str, int]]]:
        """BULK_OPEN's addresses."""
        found = []
        for line in data.decode().splitlines():
            family, address, port = line.split(" ")
            found.append((int(family), (address, int(port))))
        return found

    def add(self, data: bytes) -> None:
        """BULK_ADD: queue its files, start what may start."""
        view = memoryview(data)
        at = 0
        while at < len(view):
            position, path_size, request_size = FILE_HEAD.unpack_from(view, at)
            at += FILE_HEAD.size
            path = bytes(view[at : at + path_size])
            at += path_size
            request = bytes(view[at : at + request_size])
            at += request_size
            self.waiting.append((position, path, request))
        self.start()

    def start(self) -> None:
        while self.waiting and (self.idle or self.connections < self.width):
            conn = self.idle.pop() if self.idle else None
            if conn is not None and not _alive(conn.sock):
                # Bytes the server sent after its answer would be read as the next answer.
                conn.sock.close()
                self.connections -= 1
                continue
            position, path, request = self.waiting.popleft()
            if conn is None:
                self.connections += 1
            ex = _Exchange(self, position, path, request, conn)
            self.busy[position] = ex
            self.host.queue(ex)

    def cancel(self, after: int) -> None:
        """BULK_CANCEL: stop the files after ``after`` (-1: all), close the idle connections,
        then answer."""
        self.waiting = collections.deque(f for f in self.waiting if f[0] <= after)
        for position, ex in list(self.busy.items()):
            if position > after:
                ex.drop()
        for conn in self.idle:
            conn.sock.close()
        self.connections -= len(self.idle)
        self.idle.clear()
        self.host.post(CANCELLED, self.id, after, 0, 0, 0, b"")
        self.start()

    def close(self) -> None:
        """BULK_CLOSE (or the helper's end): close every connection and file."""
        self.waiting.clear()
        for ex in list(self.busy.values()):
            ex.drop()
        for conn in self.idle:
            conn.sock.close()
        self.idle.clear()
        self.connections = 0

    def ended(self, ex: _Exchange, keep: _Conn | None, *, lent: bool = False) -> None:
        """``ex`` ended; its connection goes back to the bulk if ``keep``, or still counts
        until BULK_RELEASE if it was handed to the parent (``lent``)."""
        del self.busy[ex.position]
        if keep is not None:
            keep.reused = True
            self.idle.append(keep)
        elif not lent:
            self.connections -= 1
        self.start()

    def release(self, count: int) -> None:
        """BULK_RELEASE: ``count`` connections handed back no longer count."""
        self.connections = max(0, self.connections - count)
        self.start()


class _Exchange:
    """One file of a bulk: its connection (made here if it has none), request, answer and
    body. The httptools callbacks keep what the choice to take the body needs, as the
    parent's ``rawhttp._Answer`` keeps the head."""

    __slots__ = (
        "address",
        "at_once",
        "bodies",
        "bulk",
        "complete",
        "conn",
        "deadline",
        "failure",
        "fields",
        "file",
        "got_any",
        "head_done",
        "informational",
        "parser",
        "path",
        "phase",
        "position",
        "queued",
        "raw",
        "replaced",
        "request",
        "rest",
        "sock",
        "spliced",
        "status",
        "taken",
        "timeout",
        "watched",
        "written",
    )

    def __init__(
        self, bulk: Bulk, position: int, path: bytes, request: bytes, conn: _Conn | None
    ) -> None:
        self.bulk = bulk
        self.position = position
        self.path = path
        self.request = memoryview(request)
        self.conn = conn
        self.sock = conn.sock if conn is not None else None
        self.phase = _SEND if conn is not None else _CONNECT
        self.address = -1  # the address being connected to
        self.failure = 0  # the errno of the last failed address, -1 if it timed out
        self.at_once = False  # that failure was connect's own (not the attempt's end)
        self.replaced = False  # a stale connection was replaced once already
        self.timeout = bulk.read_timeout
        self.parser = bulk.parser_class(self)
        self.raw = bytearray()
        self.got_any = False
        self.head_done = self.informational = self.complete = False
        self.status = 0
        # The first value of the fields the helper or the parent needs, by lowered name.
        self.fields: dict[bytes, str] = {}
        self.bodies: list[bytes] = []
        self.taken = self.spliced = False
        self.rest = self.written = 0
        self.file = -1
        self.deadline: float | None = None
        self.watched = 0
        self.queued = False

    # -- httptools callbacks ---------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self.complete:
            raise ValueError("bytes after the end of the answer")  # the parent's parser says
        self.fields = {}

    def on_header(self, name: bytes, value: bytes) -> None:
        lowered = name.lower()
        if lowered in _FIELDS and lowered not in self.fields:
            self.fields[lowered] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        self.informational = 100 <= self.status < 200
        self.head_done = not self.informational

    def on_body(self, data: bytes) -> None:
        self.bodies.append(bytes(data))

    def on_message_complete(self) -> None:
        if self.informational:
            self.informational = False
        else:
            self.complete = True

    # -- the exchange ----------------------------------------------------------------------

    def run(self) -> None:
        """Carry the exchange on until it must wait for its socket, or ends."""
        host = self.bulk.host
        host.unwatch(self)
        self.deadline = None
        if self.phase == _CONNECT and not self.connect():
            return
        if self.phase == _SEND:
            if not self.send():
                return
            # The answer is almost never there yet (the server was only now woken): wait
            # for it, instead of a read that fails.
            self.wait(selectors.EVENT_READ, self.timeout)
            return
        if self.phase == _HEAD and not self.read_head():
            return
        if self.phase == _BODY:
            self.read_body()

    def timed_out(self) -> None:
        """The deadline of the current wait passed."""
        if self.phase == _CONNECT:
            self.failure, self.at_once = -1, False
            self.next_address()
            if self.phase == _SEND:
                self.run()
            return
        self.end(TIMED_OUT, 0)

    def wait(self, events: int, seconds: float | None) -> None:
        assert self.sock is not None
        self.bulk.host.watch(self, events)
        self.deadline = None if seconds is None else time.monotonic() + seconds

    def connect(self) -> bool:
        """Go on connecting; True once connected."""
        if self.sock is not None:  # writable: the attempt ended
            error = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if not error:
                self.phase = _SEND
                self.conn = _Conn(self.sock)
                return True
            self.failure, self.at_once = error, False
        self.next_address()
        return self.phase == _SEND

    def next_address(self) -> None:
        """Close the socket being connected, start on the next address (connected at once,
        waiting, or ended with CONNECT_FAILED when none is left)."""
        if self.sock is not None:
            self.bulk.host.unwatch(self)
            self.sock.close()
            self.sock = None
        addresses = self.bulk.addresses
        while self.address + 1 < len(addresses):
            self.address += 1
            family, address = addresses[self.address]
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            code = sock.connect_ex(address)
            if code == 0:
                self.sock = sock
                self.conn = _Conn(sock)
                self.phase = _SEND
                return
            if code == errno.EINPROGRESS:
                self.sock = sock
                self.wait(selectors.EVENT_WRITE, self.bulk.connect_timeout)
                return
            sock.close()
            self.failure, self.at_once = code, True
        self.finish(CONNECT_FAILED, self.failure, keep=False, index=max(self.address, 0))

    def send(self) -> bool:
        assert self.sock is not None
        fd = self.sock.fileno()
        while self.request:
            try:
                sent = os.write(fd, self.request)
            except BlockingIOError:
                self.wait(selectors.EVENT_WRITE, None)  # no deadline: as the parent's send
                return False
            except OSError as exc:
                if exc.errno in _STALE and self.stale():
                    return False
                self.end(SOCKET_ERROR, exc.errno or 0)
                return False
            self.request = self.request[sent:]
        self.phase = _HEAD
        return True

    def stale(self) -> bool:
        """If the connection was reused and nothing of the answer came, replace it once (the
        exchange starts again on a new connection) and return True."""
        conn = self.conn
        if conn is None or not conn.reused or self.got_any or self.replaced:
            return False
        self.bulk.host.unwatch(self)
        conn.sock.close()
        self.replaced = True
        self.sock = self.conn = None
        self.address = -1
        self.phase = _CONNECT
        self.request = memoryview(self.request.obj)
        self.bulk.host.queue(self)
        return True

    def read_head(self) -> bool:
        assert self.sock is not None
        fd = self.sock.fileno()
        while True:
            try:
                # Never more than RAW_MAX bytes in all: the RESULT must carry them in one
                # message (the parent's buffer holds no more).
                data = os.read(fd, min(_READ, RAW_MAX - len(self.raw)))
            except BlockingIOError:
                self.wait(selectors.EVENT_READ, self.timeout)
                return False
            except OSError as exc:
                if exc.errno == errno.ECONNRESET and self.stale():
                    return False
                self.end(SOCKET_ERROR, exc.errno or 0)
                return False
            if not data:
                if not self.stale():
                    self.end(CLOSED, 0)
                return False
            self.got_any = True
            self.raw += data
            try:
                self.parser.feed_data(data)
            except Exception:  # the parent's parser meets the same bytes and says what is wrong
                self.end(0, 0)
                return False
            if not self.head_done:
                if len(self.raw) >= RAW_MAX:
                    self.end(0, 0)  # the parent reads the rest of it
                    return False
                continue
            if not self.takes_body():
                self.end(0, 0)
                return False
            return self.take()

    def takes_body(self) -> bool:
        """Whether the helper takes the body of the answer whose head is complete."""
        length = self.fields.get(b"content-length")
        if self.status != 206 or length is None:
            return False
        if "chunked" in self.fields.get(b"transfer-encoding", "").lower():
            return False
        try:
            size = int(length)
        except ValueError:
            return False
        return 0 <= size <= self.bulk.most

    def take(self) -> bool:
        """Open the file and write the body bytes that came with the head."""
        self.taken = True
        early = b"".join(self.bodies)
        self.bodies.clear()
        # The parent needs the head only: the body bytes that came with it (a suffix of what
        # was read, as the body is framed by its length) go to the file.
        del self.raw[len(self.raw) - len(early) :]
        self.rest = int(self.fields[b"content-length"]) - len(early)
        self.spliced = self.rest > SPLICE_MIN
        try:
            self.file = os.open(self.path, _OPEN_FLAGS, 0o666)
        except OSError as exc:
            self.end(FILE_ERROR, exc.errno or 0)
            return False
        self.phase = _BODY
        return self.write(early)

    def read_body(self) -> None:
        assert self.sock is not None
        fd = self.sock.fileno()
        while self.rest:
            try:
                data = os.read(fd, min(self.rest, _READ))
            except BlockingIOError:
                self.wait(selectors.EVENT_READ, self.timeout)
                return
            except ConnectionError as exc:
                if self.spliced:
                    break  # a splice takes a reset as the end of the body
                self.end(SOCKET_ERROR, exc.errno or 0)
                return
            except OSError as exc:
                self.end(SOCKET_ERROR, exc.errno or 0)
                return
            if not data:
                break  # closed early: the parent says what it means
            self.rest -= len(data)
            if not self.write(data):
                return
        self.end(0, 0)

    def write(self, data: bytes) -> bool:
        """Write ``data`` at the file's position; False when that failed (then ended)."""
        view = memoryview(data)
        try:
            while view:
                written = os.write(self.file, view)
                self.written += written
                view = view[written:]
        except OSError as exc:
            self.end(FILE_ERROR, exc.errno or 0)
            return False
        return True

    def end(self, reason: int, number: int) -> None:
        """End the exchange: the file made durable and closed, the connection kept or closed,
        then the RESULT sent."""
        if self.file >= 0:
            try:
                os.fsync(self.file)
                if reason == 0 and os.fstat(self.file).st_nlink == 0:
                    reason = DELETED
                    self.written = 0  # gone with the file: none of it is held
            except OSError as exc:
                if reason == 0:
                    reason, number = FILE_ERROR, exc.errno or 0
                self.written = 0  # not durable: none of it counts
            os.close(self.file)
            self.file = -1
        keep = reason == 0 and self.taken and self.rest == 0 and self.connection_kept()
        self.finish(reason, number, keep=keep)

    def connection_kept(self) -> bool:
        """Whether the answer lets the connection carry another request (as the parent's
        client reads it: an HTTP/1.0 answer without a Connection field closes it)."""
        value = self.fields.get(b"connection")
        if value is None:
            return bool(self.parser.get_http_version() == "1.1")
        return value.lower() != "close"

    def finish(self, reason: int, number: int, *, keep: bool, index: int = 0) -> None:
        """Send the RESULT (with the connection when the parent goes on with the answer), then
        close or keep the connection."""
        bulk = self.bulk
        bulk.host.unwatch(self)
        conn = self.conn
        flags = (TAKEN if self.taken else 0) | (GOT_ANY if self.got_any else 0)
        if reason == CONNECT_FAILED and self.at_once:
            flags |= AT_ONCE
        handed = -1
        if self.taken:
            get = self.fields.get
            data = (
                f"{get(b'content-length', UNSET)}\0{get(b'content-range', UNSET)}\0"
                f"{get(b'etag', UNSET)}\0{get(b'last-modified', UNSET)}"
            ).encode("latin-1")
        else:
            data = bytes(self.raw)
            if reason == 0 and self.sock is not None:
                handed = self.sock.fileno()  # the parent reads the rest of the answer
        written = self.written if reason != CONNECT_FAILED else index
        code = reason | flags << 8
        bulk.host.post(RESULT, bulk.id, self.position, written, code, number, data, handed)
        if not keep and self.sock is not None:
            self.sock.close()
        self.sock = None
        self.parser = None  # it refers to the exchange: freed now, not by the cycle collector
        bulk.ended(self, conn if keep else None, lent=handed >= 0)

    def drop(self) -> None:
        """Stop at once, without a RESULT (cancelled): close the file and the connection."""
        self.bulk.host.unwatch(self)
        if self.file >= 0:
            os.close(self.file)
            self.file = -1
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        self.bulk.ended(self, None)


def _alive(sock: socket.socket) -> bool:
    """Whether an idle connection can carry another request: nothing to read on it (no bytes,
    no end)."""
    try:
        sock.recv(1, _PEEK)
    except BlockingIOError:
        return True
    except OSError:
        pass
    return False


# The fields an exchange keeps (by lowered name): the helper's choice, the connection's reuse
# and what the parent decides a taken body with.
_FIELDS: Final = frozenset(
    {
        b"content-length",
        b"transfer-encoding",
        b"connection",
        b"content-range",
        b"etag",
        b"last-modified",
    }
)
