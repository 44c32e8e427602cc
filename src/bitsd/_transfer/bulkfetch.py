"""Bulks of small files: a job's many small plain-HTTP files fetched by the splice helper
process, each whole (request, answer, body into its temporary file, fsync) on the helper's
own connections, while the daemon's loop only hands the files over and records the results.

Why: a job of thousands of small files (scenario 3 of bench/suite.py) costs the daemon's one
thread ~150 µs of Python per file on the per-file path (a task, a sink, the request, the
answer, the write, the flush, the bookkeeping), spread thin over many small steps; moving
only the socket's system calls to another process saved nothing, as each step's message cost
what the step did (measured, docs/performance.md). A bulk moves the whole exchange and the
file's writes to the helper, on another core, and the daemon's share of a file is one
message in each direction and one record.

Rules:
- A bulk serves one origin (plain ``http://``, host and port) of one job run; the engine puts
  in it only files the raw transport would fetch from their start with nothing special
  (``RawHttpTransport.applies``; no bytes, validator, ranges or SHA-256; a job without a
  maximum download size, dynamic content, custom method or bandwidth limit). The addresses
  are resolved once, when the bulk opens (a failure leaves the files to the per-file path,
  which meets it).
- The helper takes a body only where the per-file path would write it in one go: a 206
  framed by a Content-Length of at most :data:`BULK_MOST` bytes and at most the checkpoint
  interval (so a crash fetches again at most the interval, as on the per-file path). Its
  result is decided here by the per-file path's code (``resume.decide``, ``classify``, the
  same messages). A file is :class:`Fetched` (its record completed); or :class:`Failed`
  (the classified error, and the bytes the helper made durable before it); or handed back
  to the per-file path with its connection and the answer's bytes read so far
  (``rawhttp.Answered``: a body the helper does not take, a redirect, a head too large for
  one message), which goes on with the answer as if it had sent the GET itself, so no file
  is asked for twice. Its connection counts among the bulk's until :meth:`Bulk.release` (one
  handed back for a file cancelled meanwhile is closed here, and released before the next
  files): the job's file concurrency bounds both together.
- A file's error is the per-file path's for the same answer or failure: a connection
  refused or timed out (every address tried), a reset, a silent server (the read timeout), a
  connection closed before the answer or in the body, a malformed head, a status, a failed
  write of the temporary file.
- :meth:`Bulk.cancel_after` stops the files after a position, closes the bulk's idle
  connections and waits until the helper holds none of their descriptors (a helper that does
  not answer within ``CANCEL_TIMEOUT`` is killed); so does :meth:`Bulk.close` for every
  file still under way. A helper that dies hands every file under way back
  (``on_result(position, None)``: to be fetched from the start); the bulk is then gone
  (``alive`` is False).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import socket
from collections.abc import Callable, Sequence
from typing import Final, NamedTuple

import httptools

from bitsd._clock import Clock
from bitsd._errors import TransferError
from bitsd._transfer import classify
from bitsd._transfer.bulkfetch_child import (
    AT_ONCE,
    BULK_ADD,
    BULK_CANCEL,
    BULK_CLOSE,
    BULK_OPEN,
    BULK_RELEASE,
    CANCELLED,
    CLOSED,
    CONNECT_FAILED,
    DELETED,
    FILE_ERROR,
    FILE_HEAD,
    RESULT,
    TAKEN,
    TIMED_OUT,
    UNSET,
)
from bitsd._transfer.rawhttp import Answered, answer_of, connect_failed, head_of
from bitsd._transfer.redirects import REDIRECT_STATUSES
from bitsd._transfer.resume import Answer, Head, bad_response, closed_early, decide
from bitsd._transfer.splice import HELPER_MIN
from bitsd._transfer.splicehelper import (
    CANCEL_TIMEOUT,
    DIED,
    Message,
    SpliceHelper,
    SpliceHelperError,
)
from bitsd._transfer.splicehelper_child import MESSAGE, MESSAGE_MAX

__all__ = [
    "BULK_MOST",
    "Answered",
    "Bulk",
    "BulkEntry",
    "Failed",
    "Fetched",
    "Outcome",
    "fits",
    "taken_answer",
]

log = logging.getLogger(__name__)

# Bytes. The largest body the helper takes in a bulk: a larger one is handed back, and poured
# by the per-file path (spliced, reporting every chunk) from the start.
BULK_MOST: Final = HELPER_MIN - 1


def fits(path: bytes, wire: bytes) -> bool:
    """Whether a file (its temporary file's path, ``os.fsencode``d, and its GET) fits in one
    message to the helper."""
    return FILE_HEAD.size + len(path) + len(wire) <= MESSAGE_MAX


class Fetched(NamedTuple):
    """A file the helper fetched whole: its size, validator and bytes (all durable)."""

    bytes_total: int
    validator: str | None
    size: int


class Failed(NamedTuple):
    """A file whose fetch failed: the classified error, and what the helper made durable
    before it (None: nothing to keep)."""

    error: TransferError
    held: Fetched | None


Outcome = Fetched | Failed | Answered | None
"""What became of a file of a bulk: fetched, failed, or handed back to the per-file path with
the answer begun (``Answered``) or from the start (None: the helper died)."""


BulkEntry = tuple[int, str, int | None, bytes, bytes, str]
"""A file handed to a bulk: its position, URL, size known before (``FileRequest.bytes_total``),
temporary file's path (``os.fsencode``d), GET (``RawHttpTransport.bulk_file``) and local
name."""


class _Request(NamedTuple):
    url: str
    bytes_total: int | None  # the size known before (``FileRequest.bytes_total``)
    local_name: str


class Bulk:
    """One origin's small files of a job run, fetched by the splice helper (see the module
    rules). Made by :meth:`open`.

    Args:
        on_result: called with each file's position and :data:`Outcome`, on the loop, as the
            results come (never from inside a method of the bulk).
    """

    def __init__(
        self,
        helper: SpliceHelper,
        clock: Clock,
        host: str,
        port: int,
        addresses: Sequence[tuple[int, tuple[str, int]]],
        on_result: Callable[[int, Outcome], None],
    ) -> None:
        self._helper = helper
        self._clock = clock
        self._host = host
        self._port = port
        self._addresses = addresses
        self._on_result = on_result
        self._channel = 0
        self._files: dict[int, _Request] = {}  # under way in the helper, by position
        self._cancelled: dict[int, asyncio.Future[None]] = {}  # by the position asked
        # Connections handed back for files cancelled meanwhile (closed here): the helper
        # counts them until a release says so, sent before the next files.
        self._unreleased = 0
        self.alive = False

    @classmethod
    async def open(
        cls,
        helper: SpliceHelper,
        clock: Clock,
        host: str,
        port: int,
        addresses: Sequence[tuple[int, tuple[str, int]]],
        on_result: Callable[[int, Outcome], None],
        *,
        width: int,
        most: int,
        connect_timeout: float,
        read_timeout: float,
    ) -> Bulk | None:
        """Open a bulk in the helper, with at most ``width`` connections to the
        ``addresses`` of ``host:port``, taking bodies of at most ``most`` bytes (at most
        :data:`BULK_MOST`); None if there is no helper that fetches bulks."""
        bulk = cls(helper, clock, host, port, addresses, on_result)
        channel = await helper.open_channel(bulk._heard)
        if channel is None:
            return None
        bulk._channel = channel
        listed = "\n".join(f"{family} {address[0]} {address[1]}" for family, address in addresses)
        try:
            await helper.send(
                MESSAGE.pack(
                    BULK_OPEN,
                    channel,
                    width,
                    min(most, BULK_MOST),
                    round(connect_timeout * 1e6),
                    round(read_timeout * 1e6),
                )
                + listed.encode()
            )
        except SpliceHelperError:
            helper.close_channel(channel)
            return None
        bulk.alive = True
        return bulk

    @property
    def under_way(self) -> int:
        """Files handed over and not answered yet."""
        return len(self._files)

    async def add(self, files: Sequence[BulkEntry]) -> bool:
        """Hand files over (:data:`BulkEntry`). False if the bulk is gone (none of them was
        handed over)."""
        if not self.alive:
            return False
        if self._unreleased:
            await self.release(0)
        batch = bytearray(MESSAGE.pack(BULK_ADD, self._channel, 0, 0, 0, 0))
        pending: list[tuple[int, _Request]] = []
        for position, url, bytes_total, path, wire, local_name in files:
            entry = FILE_HEAD.pack(position, len(path), len(wire)) + path + wire
            if len(batch) + len(entry) > MESSAGE.size + MESSAGE_MAX and pending:
                if not await self._send(bytes(batch), pending):
                    return False
                batch = bytearray(MESSAGE.pack(BULK_ADD, self._channel, 0, 0, 0, 0))
                pending = []
            batch += entry
            pending.append((position, _Request(url, bytes_total, local_name)))
        return await self._send(bytes(batch), pending)

    async def _send(self, data: bytes, pending: list[tuple[int, _Request]]) -> bool:
        self._files.update(pending)  # before sending: an answer may come at once
        try:
            await self._helper.send(data)
        except SpliceHelperError:
            for position, _ in pending:
                self._files.pop(position, None)
            return False
        return True

    async def release(self, count: int) -> None:
        """``count`` files handed back with their connection (``Answered``) ended: the bulk
        may use as many connections again (its connections and those it handed back stay
        within its width)."""
        count, self._unreleased = count + self._unreleased, 0
        if self.alive and count:
            with contextlib.suppress(SpliceHelperError):
                await self._helper.send(MESSAGE.pack(BULK_RELEASE, self._channel, count, 0, 0, 0))

    async def drop_idle(self) -> None:
        """Have the helper close the bulk's idle connections, and wait until it has: files on
        the per-file path take their turn, and together with the bulk's they stay within the
        job's file concurrency. Nothing is under way then (``cancel_after(-1)`` stops
        nothing)."""
        assert not self._files, "files of the bulk are under way"
        await self.cancel_after(-1)

    async def cancel_after(self, position: int) -> None:
        """Stop the files after ``position`` (-1: all) and wait until the helper holds none of
        their descriptors; they get no result. A cancel of the caller meanwhile does not cut
        the wait short; it is raised once the wait is over.

        Raises:
            asyncio.CancelledError: the caller was cancelled during the wait.
        """
        if not self.alive:
            return
        for dropped in [p for p in self._files if p > position]:
            del self._files[dropped]
        loop = asyncio.get_running_loop()
        answered = self._cancelled[position] = loop.create_future()
        deadline = loop.time() + CANCEL_TIMEOUT
        interrupted = False
        try:
            try:
                async with asyncio.timeout_at(deadline):
                    await self._helper.send(
                        MESSAGE.pack(BULK_CANCEL, self._channel, position, 0, 0, 0)
                    )
            except (SpliceHelperError, TimeoutError):
                pass
            except asyncio.CancelledError:
                interrupted = True
            while not answered.done() and (remaining := deadline - loop.time()) > 0:
                try:
                    await asyncio.wait_for(asyncio.shield(answered), remaining)
                except TimeoutError:
                    pass
                except asyncio.CancelledError:
                    interrupted = True
        finally:
            self._cancelled.pop(position, None)
        if self.alive and not answered.done():
            # A helper that does not answer may still use the files' descriptors.
            self._helper.kill(
                f"the splice helper did not answer a cancel within {CANCEL_TIMEOUT:g} s"
            )
        if interrupted:
            raise asyncio.CancelledError

    async def close(self) -> None:
        """Stop what is under way (waiting for the helper, as :meth:`cancel_after`), then
        forget the bulk in the helper and here.

        Raises:
            asyncio.CancelledError: the caller was cancelled meanwhile (the bulk is closed).
        """
        try:
            if self._files:
                await self.cancel_after(-1)
        finally:
            self._helper.close_channel(self._channel)
            if self.alive:
                self.alive = False
                message = MESSAGE.pack(BULK_CLOSE, self._channel, 0, 0, 0, 0)
                # Sent even if the caller is cancelled meanwhile: the helper closes the bulk's
                # connections then.
                with contextlib.suppress(SpliceHelperError):
                    await asyncio.shield(self._helper.send(message))

    # -- the helper's messages -------------------------------------------------------------

    def _heard(self, message: Message) -> None:
        kind, a, b, c, d, data, fd = message
        sock = None
        if fd >= 0:
            sock = socket.socket(fileno=fd)
            sock.setblocking(False)
        if message is DIED or kind not in (RESULT, CANCELLED):
            self._died()
            return
        if kind == CANCELLED:
            answered = self._cancelled.get(a)
            if answered is not None and not answered.done():
                answered.set_result(None)
            return
        entry = self._files.pop(a, None)
        if entry is None:  # cancelled meanwhile
            if sock is not None:
                sock.close()
                self._unreleased += 1
            return
        outcome: Outcome = None
        try:
            outcome = self._outcome(entry, b, c, d, data, sock)
        finally:
            if sock is not None and not isinstance(outcome, Answered):
                sock.close()  # the answer was decided here
        self._on_result(a, outcome)

    def _died(self) -> None:
        """The helper ended: every file under way goes back to the per-file path."""
        self.alive = False
        for answered in self._cancelled.values():
            if not answered.done():
                answered.set_result(None)
        files, self._files = self._files, {}
        for position in sorted(files):
            self._on_result(position, None)

    def _outcome(
        self,
        entry: _Request,
        written: int,
        code: int,
        number: int,
        data: bytes,
        sock: socket.socket | None,
    ) -> Outcome:
        url, bytes_total, local_name = entry
        reason, flags = code & 0xFF, code >> 8
        held = None
        try:
            if reason == CONNECT_FAILED:
                address = _worded(*self._addresses[min(written, len(self._addresses) - 1)])
                failure: OSError
                if number == -1:
                    failure = TimeoutError()
                elif flags & AT_ONCE:  # asyncio's sock_connect raises connect's own error
                    failure = OSError(number, os.strerror(number))
                else:
                    failure = OSError(number, f"Connect call failed {address}")
                raise classify.from_network_exception(
                    connect_failed(self._host, self._port, failure), url=url
                )
            if flags & TAKEN:
                if reason == FILE_ERROR and written == 0:
                    raise _local_failure(FILE_ERROR, number, local_name)
                length, content_range, etag, modified = data.decode("latin-1").split("\0")
                if not reason:
                    whole = _whole(written, length, content_range, etag, modified)
                    if whole is not None:
                        return whole
                answer = taken_answer(
                    (length, content_range, etag, modified),
                    url=url,
                    bytes_total=bytes_total,
                    now_wall=self._clock.wall(),
                )
                end = answer.body_end
                total = answer.bytes_total if answer.bytes_total is not None else written
                if written:
                    held = Fetched(total, answer.validator, written)
                if reason:
                    raise _failure(reason, number, local_name, url)
                if end is not None and written != end:
                    raise closed_early(url, written, end)
                return Fetched(total, answer.validator, written)
            if reason == FILE_ERROR:
                raise _local_failure(FILE_ERROR, number, local_name)
            return self._unanswered(url, bytes_total, reason, number, data, sock)
        except TransferError as err:
            return Failed(err, held)

    def _unanswered(
        self,
        url: str,
        bytes_total: int | None,
        reason: int,
        number: int,
        data: bytes,
        sock: socket.socket | None,
    ) -> Outcome:
        """A file whose body the helper did not take: what its bytes and failure mean, as
        ``RawHttpTransport._request`` and ``_fetch`` read them. An answer the per-file path
        goes on with is handed back with its connection (``Answered``).

        Raises:
            TransferError: the answer, or the failure, is the file's error.
        """
        try:
            answer = answer_of(data)
        except httptools.HttpParserError as exc:
            raise classify.from_network_exception(exc, url=url) from exc
        if reason:
            raise _failure(reason, number, "", url)
        if sock is None:  # pragma: no cover - the helper sends the connection with the answer
            raise classify.from_network_exception(classify.closed_before_answer(), url=url)
        if answer.head_complete:
            head = head_of(answer)
            if head.status not in REDIRECT_STATUSES or "Location" not in head.headers:
                # Raises for a status that is no answer; one to take goes back with its body.
                decide(
                    head,
                    url=url,
                    offset=0,
                    total=bytes_total,
                    validator=None,
                    now_wall=self._clock.wall(),
                )
        return Answered(sock, data)


def taken_answer(
    head: tuple[str, str, str, str], *, url: str, bytes_total: int | None, now_wall: float
) -> Answer:
    """What the per-file path's ``decide`` makes of the head of an answer the helper took (a
    206; its RESULT's Content-Length, Content-Range, ETag and Last-Modified, UNSET for a field
    not sent) to the request of a file from its start.

    Raises:
        TransferError: the head is no usable answer, or announces a body longer than its
            range.
    """
    length, content_range, etag, modified = head
    fields = {
        name: value
        for name, value in (
            ("Content-Range", content_range),
            ("ETag", etag),
            ("Last-Modified", modified),
        )
        if value != UNSET
    }
    answer = decide(
        Head(206, fields, int(length)),
        url=url,
        offset=0,
        total=bytes_total,
        validator=None,
        now_wall=now_wall,
    )
    if answer.body_end is not None and int(length) > answer.body_end:
        raise bad_response(url, "the server sent more bytes than it announced")
    return answer


def _whole(
    written: int, length: str, content_range: str, etag: str, modified: str
) -> Fetched | None:
    """The common answer taken whole, told by comparing strings: a 206 whose Content-Length
    is the ``written`` bytes and whose Content-Range is exactly ``bytes 0-{written - 1}/
    {written}``. What :func:`taken_answer` and the check of the bytes written make of such a
    head (a test pins the two), at a fraction of the cost: a 5,000-file job has 5,000 of them.
    None for any other head (``taken_answer`` says what it means)."""
    if not written or length != str(written):
        return None
    if content_range != f"bytes 0-{written - 1}/{written}":
        return None
    if etag != UNSET and etag and not etag.startswith("W/"):
        return Fetched(written, etag, written)  # a strong ETag (validator_of)
    return Fetched(written, modified if modified != UNSET and modified else None, written)


def _worded(family: int, address: tuple[str, int]) -> tuple[object, ...]:
    """``address`` as asyncio's ``sock_connect`` (the per-file path's) words it in its error:
    an IPv6 one with its flow information and scope id."""
    if family != socket.AF_INET6:
        return address
    if "%" not in address[0]:
        return (*address, 0, 0)
    with contextlib.suppress(OSError):  # a scoped address: asyncio asks getaddrinfo
        found = socket.getaddrinfo(*address, family, socket.SOCK_STREAM)
        return tuple(found[0][4])
    return address


def _failure(reason: int, number: int, local_name: str, url: str) -> TransferError:
    """The per-file path's error where the helper reported ``reason``."""
    if reason in (FILE_ERROR, DELETED):
        return _local_failure(reason, number, local_name)
    if reason == TIMED_OUT:
        exc: OSError = classify.read_timed_out()
    elif reason == CLOSED:
        exc = classify.closed_before_answer()
    else:
        exc = OSError(number, os.strerror(number))
    return classify.from_network_exception(exc, url=url)


def _local_failure(reason: int, number: int, local_name: str) -> TransferError:
    if reason == DELETED:
        error: OSError = FileNotFoundError(
            errno.ENOENT, "the temporary file was deleted during the transfer"
        )
    else:
        error = OSError(number, os.strerror(number))
    return classify.from_local_os_error(error, local_name=local_name)
