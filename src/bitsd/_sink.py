"""The sink of one file's transfer: its temporary file, progress and checkpoints.

Rules:
- Bytes are appended to the temporary file; progress counts them at once, in memory. While a
  file transfers, the engine shows its sink's live record (``FileSink.record``), built when
  someone looks: a write changes a counter, not a record.
- A checkpoint flushes the data (fsync) and only then stores the offset it covers, so a stored
  offset is always backed by data on disk; checkpoints come every ``checkpoint_bytes`` or
  ``checkpoint_seconds``, and when the transfer stops for any reason (``close``).
- When the remote file restarts (it changed, or dynamic content), the file is cut to zero and
  that is stored before any new byte is written. A new size or validator learned without a
  restart is stored with the next checkpoint (no stored offset relies on it before).
- Flushes go through a :class:`Flusher`: the sinks that flush in the same turn of the event loop
  share one hop to a worker thread (group flush), so many small files do not pay a thread hop
  each.
- ``finish`` flushes the whole file and checks its digest (when the job gave a SHA-256; a
  mismatch empties the file and fails the job with BG_E_VALIDATION_FAILED), then hands back
  the file's record marked completed. The engine stores that record and only then counts the
  file as transferred, in index order; until then the file shows all its bytes, not completed.
- Bytes beyond the job's maximum download size fail the job with
  BG_E_MAX_DOWNLOAD_SIZE_LIMIT_REACHED before they are written.
- A transfer whose bytes keep coming lets the loop's other tasks (the control API, other jobs)
  run at least every ``_FAIR_SHARE`` seconds of real time: a transport that never waits for
  its socket (spliced bytes always there) would otherwise hold the loop for the whole file.
- Throttling (``bitsd._bandwidth``): with a :class:`Throttle`, ``write`` cuts the data into
  the throttle's pieces and awaits the throttle before writing each; bytes a transport wrote
  itself (``advance``) are paced after the fact. Every byte is counted as bitsd's own traffic
  (background courtesy subtracts it from the link's).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import time
from collections.abc import Sequence
from typing import Any, Protocol

from bitsd import codes
from bitsd._clock import Clock
from bitsd._enums import ErrorContext
from bitsd._errors import TransferError
from bitsd._files import flush_temp, memory_backed, open_temp
from bitsd._model import FileRecord, evolve
from bitsd._policy import EngineConfig
from bitsd._transfer import classify

__all__ = ["FileSink", "Flusher", "SinkHost", "TempWriter", "Throttle"]

log = logging.getLogger("bitsd.engine")


# Seconds of real time a transfer may hold the event loop while its bytes keep coming, before
# it lets the other tasks run once (bitsd's choice: a control request, which takes a few turns
# of the loop, is answered within ~5 ms during a 2.5 GB/s download; a yield costs ~10 us, about
# 1 % of the time).
_FAIR_SHARE = 0.001
# Real time for the fair share (not the engine's clock: this is about CPU, not BITS timers).
_now = time.monotonic


class SinkHost(Protocol):
    """What a sink needs from the engine."""

    clock: Clock
    config: EngineConfig

    def _file_changed(self, record: FileRecord, *, durable: bool) -> None: ...

    def _connected(self, job_id: str) -> None: ...

    def _made_progress(self, job_id: str) -> None: ...

    def _file_renamed_remotely(self, job_id: str) -> None: ...


class Throttle(Protocol):
    """The bandwidth hook of one job's transfer (``BandwidthManager.pacer``)."""

    def piece(self) -> int | None:
        """Bytes to write at once now; None writes what arrived in one go."""
        ...

    async def pace(self, count: int) -> None:
        """Wait until ``count`` bytes may move."""
        ...

    def count(self, count: int) -> None:
        """Count ``count`` bytes received."""
        ...


class Flusher:
    """Makes temporary files durable (``flush_temp``: fsync) in a worker thread, one batch at
    a time: the requests made while a batch is being flushed wait and form the next batch, so
    under load a batch holds every file that finished meanwhile and each costs a fraction of
    a thread hop. A request whose file failed to flush gets that file's OSError. A file on a
    memory-backed file system (``memory_backed``: its fsync waits for no device) is flushed at
    once, on the loop: there the thread hop would be the whole cost.
    """

    def __init__(self) -> None:
        self._batch: list[tuple[int, asyncio.Future[None]]] = []
        self._running = False  # a batch is in the worker thread

    async def flush(self, fd: int) -> None:
        """Flush ``fd``'s data and metadata to disk.

        Raises:
            OSError: the flush failed (or the file lost its name).
        """
        if memory_backed(fd):
            flush_temp(fd)
            return
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        if not self._running:
            self._running = True
            loop.call_soon(self._start, loop)
        self._batch.append((fd, done))
        await done

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        batch, self._batch = self._batch, []
        work = loop.run_in_executor(None, _flush_all, [fd for fd, _ in batch])

        def deliver(work: asyncio.Future[list[OSError | None]]) -> None:
            failure = work.exception()
            results: Sequence[BaseException | None] = (
                [failure] * len(batch) if failure is not None else work.result()
            )
            for (_, done), error in zip(batch, results, strict=True):
                if done.done():
                    continue  # the sink was cancelled meanwhile
                if error is None:
                    done.set_result(None)
                else:
                    done.set_exception(error)
            if self._batch:
                self._start(loop)  # the requests made meanwhile: the next batch
            else:
                self._running = False

        work.add_done_callback(deliver)


def _flush_all(fds: list[int]) -> list[OSError | None]:
    results: list[OSError | None] = []
    for fd in fds:
        try:
            flush_temp(fd)
        except OSError as exc:
            results.append(exc)
        else:
            results.append(None)
    return results


class TempWriter:
    """What the sinks of a temporary file share: its descriptor, written in the throttle's
    pieces (``_write_paced``), flushed through the group flusher, OS errors classified as the
    local file's. Subclasses say what written bytes mean (``_advance``)."""

    _fd: int

    def __init__(
        self,
        engine: SinkHost,
        record: FileRecord,
        *,
        throttle: Throttle | None = None,
        flusher: Flusher | None = None,
    ) -> None:
        self._engine = engine
        self._throttle = throttle
        self._flusher = flusher or Flusher()
        self._record = record
        self._config = engine.config
        self._closed = False
        self._shared = _now()  # when the transfer last let other tasks run
        self._lead = 0  # bytes a transport may have written and not reported (``lead``)

    @property
    def fd(self) -> int:
        return self._fd

    @property
    def local_name(self) -> str:
        return self._record.local_name

    def piece(self) -> int | None:
        """Bytes a transport that writes through :attr:`fd` should move at once now: the
        job's bandwidth limits, and the room left before the next checkpoint by bytes
        (``_room``); None: as many as arrive."""
        piece = self._throttle.piece() if self._throttle is not None else None
        room = self._room()
        if room is None:
            return piece
        return room if piece is None else min(piece, room)

    def _room(self) -> int | None:
        """Bytes that may be written before a checkpoint by bytes is due (None: no bound)."""
        return None

    def lead(self, count: int) -> None:
        """A transport that writes through :attr:`fd` may be up to ``count`` bytes ahead of
        its reports (the splice helper's window): a checkpoint by bytes is taken that much
        earlier (at most half an interval), so the transport is not held at the interval's
        end while the checkpoint is taken."""
        self._lead = min(count, self._config.checkpoint_bytes // 2)

    async def _write_paced(self, data: bytes) -> None:
        """Write ``data`` at the file's position, in pieces (:meth:`piece`), each awaited
        before it is written and counted (``_advance``) after."""
        if not data:
            await self._advance(0)
            return
        view = memoryview(data)
        throttle = self._throttle
        while view:
            step = self.piece() or len(view)
            piece, view = view[:step], view[step:]
            size = len(piece)
            if throttle is not None:
                await throttle.pace(size)
            while piece:
                written = self._local(os.write, self._fd, piece)
                piece = piece[written:]
            await self._advance(size)
            await self._share()

    async def advance(self, count: int) -> None:
        await self._advance(count)
        if self._throttle is not None:
            await self._throttle.pace(count)  # the transport wrote them: pace after the fact
        await self._share()

    async def _share(self) -> None:
        """Let the loop's other tasks run if this transfer held it for ``_FAIR_SHARE``."""
        if _now() - self._shared >= _FAIR_SHARE:
            await asyncio.sleep(0)
            self._shared = _now()

    async def _advance(self, count: int) -> None:
        raise NotImplementedError

    def _checkpoint_due(self, pending: int, since: float) -> bool:
        """Whether ``pending`` bytes written since the monotonic time ``since`` call for a
        checkpoint."""
        return (
            pending + self._lead >= self._config.checkpoint_bytes
            or self._engine.clock.monotonic() - since >= self._config.checkpoint_seconds
        )

    async def _flush(self) -> None:
        try:
            await self._flusher.flush(self._fd)
        except OSError as exc:
            raise classify.from_local_os_error(exc, local_name=self._record.local_name) from exc

    async def _digest_mismatch(self) -> TransferError | None:
        """The error of a file whose SHA-256 is not the one the job expects, or None (also
        when the job expects none)."""
        expected = self._record.sha256
        if expected is None:
            return None
        digest = await asyncio.to_thread(self._local, _sha256_of, self._record.temp_name)
        if digest == expected:
            return None
        return TransferError(
            codes.BG_E_VALIDATION_FAILED,
            ErrorContext.LOCAL_FILE,
            transient=False,
            message=f"the SHA-256 of {self._record.local_name} is {digest}, not the "
            f"expected {expected}; Resume downloads it again",
        )

    def _local(self, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except OSError as exc:
            raise classify.from_local_os_error(exc, local_name=self._record.local_name) from exc

    def close(self) -> None:
        """Checkpoint what is written (the transfer stopped) and close the file."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._unsaved():
                os.fsync(self._fd)
                self._saved()
        except Exception:  # the transfer's own error, if any, is the one to report
            log.warning("could not checkpoint %s", self._record.temp_name, exc_info=True)
        finally:
            os.close(self._fd)

    def _unsaved(self) -> bool:
        """Whether bytes were written since the last checkpoint."""
        raise NotImplementedError

    def _saved(self) -> None:
        """Record the checkpoint of every byte written (they were just flushed)."""
        raise NotImplementedError


class FileSink(TempWriter):
    """One file's temporary file during a transfer: writes, progress, checkpoints.

    While the file transfers, its live record is :attr:`record`, built when someone asks (the
    engine shows it in place of the stored one), not at every write: progress is a counter.

    Args:
        engine: the engine that owns the file's record.
        record: the file.
        budget: bytes this file may have (what the job's maximum download size leaves), or
            None.
        throttle: the job's bandwidth hook, or None (unthrottled, uncounted).
        flusher: the engine's group flusher (default: one of the sink's own).
    """

    def __init__(
        self,
        engine: SinkHost,
        record: FileRecord,
        *,
        budget: int | None = None,
        throttle: Throttle | None = None,
        flusher: Flusher | None = None,
    ) -> None:
        super().__init__(engine, record, throttle=throttle, flusher=flusher)
        self._budget = budget
        self._done: FileRecord | None = None  # the completed record, once ``finish`` returned
        # What a response taught (begin), kept here and put in a record when one is built.
        self._total = record.bytes_total
        self._validator = record.validator
        try:
            self._fd, kept = open_temp(record.temp_name, record.bytes_transferred)
        except OSError as exc:
            raise classify.from_local_os_error(exc, local_name=record.local_name) from exc
        self._offset = kept
        self._checkpointed = kept
        if kept != record.bytes_transferred:
            self._validator = None
            self._store()
        self._checkpoint_time = engine.clock.monotonic()

    @property
    def offset(self) -> int:
        return self._offset

    @property
    def record(self) -> FileRecord:
        """The file's live record: every byte written counted, not completed (also once
        ``finish`` returned: the engine reports files completed in order)."""
        if self._done is not None:
            return evolve(self._done, completed=False)
        return self._build(self._offset)

    @property
    def stored(self) -> FileRecord:
        """The file's record as its last checkpoint stored it: what a restart resumes from
        (after :meth:`close`, every byte written unless the checkpoint failed)."""
        return self._build(self._checkpointed)

    def _build(self, offset: int, **changes: Any) -> FileRecord:
        return evolve(
            self._record,
            bytes_total=self._total,
            validator=self._validator,
            bytes_transferred=offset,
            **changes,
        )

    def _store(self) -> None:
        """Store the record now, with the offset of the last checkpoint."""
        self._engine._file_changed(self._build(self._checkpointed), durable=True)

    async def redirected(self, url: str) -> None:
        """The redirect policy changed the file's remote name (ALLOW_REPORT, DISALLOW): store
        the new name at once, so it survives a restart and the owner sees it."""
        if url == self._record.remote_name:
            return
        self._record = evolve(self._record, remote_name=url)
        self._store()
        self._engine._file_renamed_remotely(self._record.job_id)

    async def begin(self, *, bytes_total: int | None, validator: str | None, restart: bool) -> None:
        if bytes_total is not None:
            self._check_budget(bytes_total)
        if restart:
            self._local(os.ftruncate, self._fd, 0)
            self._local(os.lseek, self._fd, 0, os.SEEK_SET)
            self._offset = self._checkpointed = 0
        self._total = bytes_total
        self._validator = validator
        if restart:
            # A restart discards bytes a stored offset may cover: store it before new bytes
            # come. Otherwise the size and validator ride with the next checkpoint.
            self._store()
        self._engine._connected(self._record.job_id)

    def _check_budget(self, size: int) -> None:
        if self._budget is not None and size > self._budget:
            raise TransferError(
                codes.BG_E_MAX_DOWNLOAD_SIZE_LIMIT_REACHED,
                ErrorContext.REMOTE_FILE,
                transient=False,
                message=f"the file needs {size} bytes and the job's maximum download size "
                f"leaves {max(self._budget, 0)}: {self._record.remote_name}",
            )

    async def write(self, data: bytes) -> None:
        self._check_budget(self._offset + len(data))
        await self._write_paced(data)

    def _room(self) -> int | None:
        # The bytes up to the next checkpoint by bytes, at least one: no transport writes past
        # it before the checkpoint is taken (``_advance``), so a crash makes bitsd fetch again
        # at most ``checkpoint_bytes``, whatever the size of a transport's steps.
        return max(1, self._config.checkpoint_bytes - (self._offset - self._checkpointed))

    async def _advance(self, count: int) -> None:
        if self._throttle is not None:
            self._throttle.count(count)
        self._offset += count
        self._engine._made_progress(self._record.job_id)
        if self._checkpoint_due(self._offset - self._checkpointed, self._checkpoint_time):
            await self.checkpoint()

    async def checkpoint(self) -> None:
        """Flush the data, then store the offset it covers."""
        offset = self._offset
        await self._flush()
        self._mark_checkpoint(offset)

    def _mark_checkpoint(self, offset: int) -> None:
        # Stored first: a write the store refuses leaves the checkpoint where it was.
        self._engine._file_changed(self._build(offset), durable=True)
        self._checkpointed = offset
        self._checkpoint_time = self._engine.clock.monotonic()

    async def finish(self) -> FileRecord:
        """The whole file is here: make it durable and check its digest.

        Returns:
            The file's record marked completed, for the engine to store and publish in order
            (until then :attr:`record` shows every byte held, not completed).

        Raises:
            TransferError: the flush failed, or the digest did not match.
        """
        await self._flush()
        mismatch = await self._digest_mismatch()
        if mismatch is not None:
            self._local(os.ftruncate, self._fd, 0)
            self._offset = self._checkpointed = 0
            self._validator = None
            self._store()
            raise mismatch
        self._checkpointed = self._offset
        if self._total is None:
            self._total = self._offset
        self._done = self._build(self._offset, completed=True)
        return self._done

    def _unsaved(self) -> bool:
        return self._offset != self._checkpointed

    def _saved(self) -> None:
        self._mark_checkpoint(self._offset)


def _sha256_of(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()
