"""The sink of an on-demand file (IBackgroundCopyFile6): spans written at their offsets, the
filled set, checkpoints.

Rules:
- One sink writes one span, from ``first`` on: its bytes go to their offsets in the temporary
  file, which is never cut (what lies between spans is a hole).
- The record's ``filled`` spans are always backed by flushed data. Bytes written since the
  last checkpoint are the sink's ``fresh`` spans; a checkpoint flushes them, then moves them
  into ``filled`` and out of ``requested`` in one store write. Checkpoints come every
  ``checkpoint_bytes`` or ``checkpoint_seconds``, and when the sink closes.
- Progress (``bytes_transferred``) counts the bytes held at once, in memory, as FileSink's does;
  a stored record counts its ``filled`` bytes only.
- The record is read from the engine for every change, never kept: RequestFileRanges and
  UpdateDownloadPosition change it while a span is written.
- A remote that changed (``begin(restart=True)``) empties the temporary file and ``filled``, and
  that is stored before any new byte is written; the requested spans stay requested.
- Bytes beyond the job's maximum download size (counting those held) fail the job with
  BG_E_MAX_DOWNLOAD_SIZE_LIMIT_REACHED before they are written.
- A span stopped at any point (its task cancelled) keeps the bytes written: ``close``
  checkpoints them.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Protocol

from bitsd import codes
from bitsd._enums import ErrorContext
from bitsd._errors import TransferError
from bitsd._files import open_temp
from bitsd._intervals import Span, Spans, end_of, gaps, remove, total, union
from bitsd._model import FileRecord
from bitsd._sink import Flusher, SinkHost, TempWriter, Throttle
from bitsd._transfer import classify

__all__ = ["RangeSink", "RangeSinkHost", "keep"]


class RangeSinkHost(SinkHost, Protocol):
    """What a range sink needs from the engine: a sink's host, and the current records."""

    def _files_of(self, job_id: str) -> list[FileRecord]: ...


def keep(host: SinkHost, record: FileRecord, *, durable: bool) -> None:
    """Make ``record`` its file's live record; ``durable``: store it too, counting its filled
    bytes only (bytes written since the last checkpoint are not flushed yet)."""
    if durable:
        host._file_changed(
            dataclasses.replace(record, bytes_transferred=total(record.filled)), durable=True
        )
    host._file_changed(record, durable=False)


class RangeSink(TempWriter):
    """One span of an on-demand file, written at its offsets.

    Args:
        engine: the engine that owns the file's record.
        record: the file (read again from the engine for every change).
        first: the offset of the span's first byte.
        budget: bytes this file may hold (what the job's maximum download size leaves), or None.
        throttle, flusher: as for FileSink.
    """

    def __init__(
        self,
        engine: RangeSinkHost,
        record: FileRecord,
        *,
        first: int,
        budget: int | None = None,
        throttle: Throttle | None = None,
        flusher: Flusher | None = None,
    ) -> None:
        super().__init__(engine, record, throttle=throttle, flusher=flusher)
        self._host = engine
        self._budget = budget
        self._fresh: Spans = ()
        self._first = self._pos = first
        try:
            self._fd, _ = open_temp(record.temp_name, None)
            size = os.fstat(self._fd).st_size
        except OSError as exc:
            raise classify.from_local_os_error(exc, local_name=record.local_name) from exc
        if size < end_of(record.filled):
            # Fewer bytes than the filled spans say: the file was damaged; start again.
            self._update(filled=(), bytes_transferred=0, validator=None, durable=True)
        self._held = total(self.record.filled)
        self._checkpoint_time = engine.clock.monotonic()

    @property
    def record(self) -> FileRecord:
        """The file's current record."""
        return self._host._files_of(self._record.job_id)[self._record.index]

    @property
    def offset(self) -> int:
        """Where the next byte goes."""
        return self._pos

    @property
    def fresh(self) -> Spans:
        """Bytes written and not yet checkpointed."""
        return self._fresh

    @property
    def written(self) -> Span:
        """The part of the span written so far."""
        return (self._first, self._pos - self._first)

    def _update(self, *, durable: bool, **changes: Any) -> None:
        keep(self._host, dataclasses.replace(self.record, **changes), durable=durable)

    async def redirected(self, url: str) -> None:
        """The redirect policy changed the file's remote name: store it at once."""
        if url != self.record.remote_name:
            self._update(remote_name=url, durable=True)
            self._host._file_renamed_remotely(self._record.job_id)

    async def begin(self, *, bytes_total: int | None, validator: str | None, restart: bool) -> None:
        if restart:
            self._local(os.ftruncate, self._fd, 0)
            self._fresh, self._held, self._pos = (), 0, self._first
            self._update(
                filled=(), bytes_transferred=0, bytes_total=None, validator=None, durable=True
            )
        else:
            # Stored with the next checkpoint: no stored span relies on them before.
            self._update(bytes_total=bytes_total, validator=validator, durable=False)
        self._host._connected(self._record.job_id)

    async def write(self, data: bytes) -> None:
        if self._budget is not None and self._held + len(data) > self._budget:
            raise TransferError(
                codes.BG_E_MAX_DOWNLOAD_SIZE_LIMIT_REACHED,
                ErrorContext.REMOTE_FILE,
                transient=False,
                message=f"the file would hold {self._held + len(data)} bytes and the job's "
                f"maximum download size leaves {max(self._budget, 0)}: "
                f"{self._record.remote_name}",
            )
        self._local(os.lseek, self._fd, self._pos, os.SEEK_SET)
        await self._write_paced(data)

    async def _advance(self, count: int) -> None:
        if self._throttle is not None:
            self._throttle.count(count)
        if count:
            self._fresh = union(self._fresh, ((self._pos, count),))
        self._pos += count
        self._held += count
        self._update(bytes_transferred=self._held, durable=False)
        self._host._made_progress(self._record.job_id)
        if self._checkpoint_due(total(self._fresh), self._checkpoint_time):
            await self.checkpoint()

    async def checkpoint(self) -> None:
        """Flush the fresh bytes, then store them as filled (and no longer requested)."""
        await self._flush()
        self._mark_checkpoint()

    def _mark_checkpoint(self) -> None:
        self._checkpoint_time = self._engine.clock.monotonic()
        if not self._fresh:
            return
        current = self.record
        filled = union(current.filled, self._fresh)
        self._fresh = ()
        self._held = total(filled)
        self._update(
            filled=filled,
            requested=remove(current.requested, filled),
            bytes_transferred=self._held,
            durable=True,
        )

    def whole(self) -> bool:
        """Whether the file's every byte is filled (its size is known)."""
        current = self.record
        return current.bytes_total is not None and not gaps(
            union(current.filled, self._fresh), current.bytes_total
        )

    async def finish(self) -> FileRecord:
        """The whole file is here (:meth:`whole`): make it durable and check its digest.

        Returns:
            The file's record marked completed, for the engine to store and publish.

        Raises:
            TransferError: the flush failed, or the digest did not match (the file is emptied).
        """
        await self.checkpoint()
        mismatch = await self._digest_mismatch()
        if mismatch is not None:
            self._local(os.ftruncate, self._fd, 0)
            self._held = 0
            self._update(filled=(), bytes_transferred=0, validator=None, durable=True)
            raise mismatch
        return dataclasses.replace(self.record, completed=True)

    def _unsaved(self) -> bool:
        return bool(self._fresh)

    def _saved(self) -> None:
        self._mark_checkpoint()
