"""On-demand jobs (BITS_JOB_PROPERTY_ON_DEMAND_MODE, IBackgroundCopyFile6): the owner asks for
ranges of a file and gets them first, written at their offsets in the temporary file.

Rules (bits-inventory §5.6; docs/design-choices.md):
- The mode is a download-job property, set before the first Resume; not with dynamic content
  (BG_E_UNSUPPORTED_JOB_CONFIGURATION), a custom HTTP method
  (BG_E_NOT_SUPPORTED_WITH_CUSTOM_HTTP_METHOD), files added with ranges or files that are not
  http(s) (BG_E_UNSUPPORTED_JOB_CONFIGURATION), either way round.
- ``request_file_ranges`` and ``update_download_position`` check their arguments alone first,
  as the daemon checks a request (ranges that are no pairs of integers, an offset that is no
  integer >= 0, a file that is neither an index nor a FileInfo: E_INVALIDARG). Then they need
  an on-demand download job: otherwise BG_E_RANDOM_ACCESS_NOT_SUPPORTED, as after the server
  stopped honouring ranges (the job's ERROR says so until the next Resume). Requested bytes
  already held or queued are not queued again; the queue keeps the order asked; bad ranges
  are BG_E_INVALID_RANGE (``bitsd._ranges.check_requested``). At most
  ``max_ranges_per_file`` spans wait per file (BG_E_TOO_MANY_RANGES_IN_FILE).
- A run fetches the queued spans first, files in order, each span in the order asked. Once
  one was fetched, or ranges were asked since the run began (or since the last run, even if
  all their bytes were held), the run ends when the queue is empty: TRANSFERRED if every file
  is whole, else SUSPENDED (the RangesDone event). Otherwise it fills each
  file's gaps from its download position (wrapping to the start) until every file is whole;
  a request or a new position interrupts the gap being filled at once (its fetch is
  cancelled, the bytes written are kept), and is served first.
- A requested span is reported to ``file_ranges_transferred(job, file, ranges)`` once its bytes
  are flushed and stored (BG_NOTIFY_FILE_RANGES_TRANSFERRED); a file whose every byte is held
  is finished (digest checked) and published like any file (``file_transferred``).
- When the size becomes known, queued spans are resolved against it: one that does not fit
  fails the job with BG_E_INVALID_RANGE and leaves the queue, so Resume goes on with the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import TYPE_CHECKING

from bitsd import codes
from bitsd._args import check_download_position, check_file_ref
from bitsd._enums import ErrorContext, JobState
from bitsd._errors import BitsError, TransferError, shown
from bitsd._httpopts import check_http_method
from bitsd._intervals import EOF_END, Span, gaps, next_gap, remove, request, resolve, union
from bitsd._model import FileRecord, JobRecord
from bitsd._policy import MAX_BYTE_COUNT
from bitsd._ranges import check_requested, range_pairs
from bitsd._rangesink import RangeSink, keep
from bitsd._records import FileInfo
from bitsd._transfer.base import FileRequest, HttpOptions
from bitsd._upload import is_upload
from bitsd._urls import RemoteKind, remote_kind

if TYPE_CHECKING:
    from bitsd._engine import Engine

__all__ = ["OnDemand", "check_file", "check_property"]


def _unsupported(
    message: str, hresult: int = codes.BG_E_UNSUPPORTED_JOB_CONFIGURATION
) -> BitsError:
    return BitsError(message, hresult=hresult)


def check_property(job: JobRecord, files: Sequence[FileRecord], name: str, value: object) -> None:
    """Refuse a property that does not go with on-demand mode, or on-demand mode with the
    job's other properties and files (see the module's rules)."""
    if name == "on_demand" and value:
        if job.dynamic_content:
            raise _unsupported("on-demand mode does not go with dynamic content")
        if job.http_method is not None:
            raise _unsupported(
                "on-demand mode does not go with a custom HTTP method",
                codes.BG_E_NOT_SUPPORTED_WITH_CUSTOM_HTTP_METHOD,
            )
        for f in files:
            check_file(f.remote_name, f.ranges)
    elif name == "dynamic_content" and value and job.on_demand:
        raise _unsupported("dynamic content does not go with on-demand mode")
    elif name == "http_method" and job.on_demand and check_http_method(_text(value)) is not None:
        raise _unsupported(
            "a custom HTTP method does not go with on-demand mode",
            codes.BG_E_NOT_SUPPORTED_WITH_CUSTOM_HTTP_METHOD,
        )


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def check_file(remote_name: str, ranges: object) -> None:
    """Refuse a file an on-demand job cannot have: one with ranges, or not http(s)."""
    if ranges is not None:
        raise _unsupported("an on-demand job's files have no ranges (request them instead)")
    if remote_kind(remote_name) is not RemoteKind.HTTP:
        raise _unsupported(f"an on-demand job's files are http:// or https://: {remote_name}")


def _no_random_access(message: str) -> BitsError:
    return BitsError(message, hresult=codes.BG_E_RANDOM_ACCESS_NOT_SUPPORTED)


class OnDemand:
    """The on-demand part of an engine: IBackgroundCopyFile6's verbs and the runs of on-demand
    jobs.

    Args:
        engine: the engine (its records, funnel, transports and notifier).
        http_options: what the HTTP transport needs of a job's options.
    """

    def __init__(self, engine: Engine, http_options: Callable[[JobRecord], HttpOptions]) -> None:
        self._engine = engine
        self._http_options = http_options
        self._stops: dict[str, asyncio.Event] = {}  # running jobs: set to interrupt a gap
        self._asked: set[str] = set()  # jobs asked for ranges since their last run began
        self._sinks: dict[tuple[str, int], RangeSink] = {}  # spans being written

    # -- IBackgroundCopyFile6 --------------------------------------------------------------

    def _on_demand_file(self, job_id: str, file: int | FileInfo) -> FileRecord:
        """The file of a live on-demand download job that accepts requests."""
        check_file_ref(file)  # the value alone first
        engine = self._engine
        job = engine._live(job_id)
        if is_upload(job) or not job.on_demand:
            raise _no_random_access("the job is not an on-demand download job (set_on_demand)")
        error = job.error
        lost = error is not None and error.code == codes.BG_E_RANDOM_ACCESS_NOT_SUPPORTED
        if job.state is JobState.ERROR and lost:
            raise _no_random_access("the server does not support ranges (Resume to retry)")
        return engine._files[job_id][engine._file_index(job_id, file)]

    async def request_file_ranges(
        self, job_id: str, file: int | FileInfo, ranges: Iterable[tuple[int, int]]
    ) -> None:
        """Queue ranges of a file (RequestFileRanges); see the module's rules."""
        pairs = range_pairs(ranges)  # their type first, as the daemon checks a body's
        record = self._on_demand_file(job_id, file)
        spans = check_requested(pairs, record.bytes_total)
        held = union(record.filled, self._fresh(job_id, record.index))
        queue = request(record.requested, held, spans)
        limit = self._engine.config.max_ranges_per_file
        if limit and len(queue) > limit:
            raise BitsError(
                f"{len(queue)} ranges would wait for this file; at most {limit} "
                "(max_ranges_per_file)",
                hresult=codes.BG_E_TOO_MANY_RANGES_IN_FILE,
            )
        self._asked.add(job_id)  # even for bytes held: the next run ends when the queue is empty
        if queue != record.requested:
            self._store(dataclasses.replace(record, requested=queue))
        self._interrupt(job_id)

    def filled_file_ranges(self, job_id: str, file: int | FileInfo) -> list[tuple[int, int]]:
        """The ranges of a file held in its temporary file (GetFilledFileRanges), merged and
        by offset. A file of a job that is not on-demand holds its first bytes."""
        engine = self._engine
        filled = self.filled_of(engine._record(job_id), engine._file_record(job_id, file))
        if filled is None:
            raise _no_random_access("only the files of download jobs without ranges have these")
        return filled

    def filled_of(self, job: JobRecord, record: FileRecord) -> list[tuple[int, int]] | None:
        """What GetFilledFileRanges answers for ``record`` (a file of ``job``, as the owner
        sees it), or None where it does not apply (an upload, a file added with ranges)."""
        if is_upload(job) or record.ranges is not None:
            return None
        if not job.on_demand:
            return [(0, record.bytes_transferred)] if record.bytes_transferred else []
        return list(union(record.filled, self._fresh(job.id, record.index)))

    async def update_download_position(
        self, job_id: str, file: int | FileInfo, offset: int
    ) -> None:
        """Fill the file's gaps from ``offset`` on (UpdateDownloadPosition)."""
        offset = check_download_position(offset)  # the value alone first
        record = self._on_demand_file(job_id, file)
        size = record.bytes_total
        if size is not None and offset > size:
            raise BitsError(
                f"the position {shown(offset)} is beyond the remote file of {size} bytes",
                hresult=codes.BG_E_INVALID_RANGE,
            )
        if offset > MAX_BYTE_COUNT:  # no file has such an offset (off_t), nor can it be stored
            raise BitsError(
                f"the position {shown(offset)} is beyond any file",
                hresult=codes.BG_E_INVALID_RANGE,
            )
        if offset != record.download_position:
            self._store(dataclasses.replace(record, download_position=offset))
            self._interrupt(job_id)

    def _fresh(self, job_id: str, index: int) -> tuple[Span, ...]:
        sink = self._sinks.get((job_id, index))
        return sink.fresh if sink is not None else ()

    def _store(self, record: FileRecord) -> None:
        """Store a changed record and keep it live; tell the listeners."""
        keep(self._engine, record, durable=True)
        self._engine._emit(record.job_id, "files")

    def _interrupt(self, job_id: str) -> None:
        stop = self._stops.get(job_id)
        if stop is not None:
            stop.set()

    # -- runs ------------------------------------------------------------------------------

    async def run(self, job_id: str) -> bool:
        """Transfer an on-demand job (see the module's rules).

        Returns:
            True when every file is whole and published; False when the requested ranges are
            in and a file is not whole (the job goes SUSPENDED).

        Raises:
            TransferError: the classified failure; the run's ``file_index`` names the file.
        """
        engine = self._engine
        stop = self._stops[job_id] = asyncio.Event()
        asked = job_id in self._asked
        self._asked.discard(job_id)
        try:
            while True:
                stop.clear()
                asked = asked or job_id in self._asked
                self._asked.discard(job_id)
                step = self._next(engine._files[job_id], fill=not asked)
                if step is None:
                    return all(f.completed for f in engine._files[job_id])
                index, span, requested = step
                asked = asked or requested
                await self._transfer_span(job_id, index, span, None if requested else stop)
        finally:
            self._stops.pop(job_id, None)

    @staticmethod
    def _next(files: Sequence[FileRecord], *, fill: bool) -> tuple[int, Span, bool] | None:
        """(file index, span, whether it was requested) to do next, or None: a file whose every
        byte is held but that is not finished (an empty span at its end); the queued spans;
        then, when ``fill``, the gaps from each file's download position."""
        for f in files:
            if not f.completed and f.bytes_total is not None and not gaps(f.filled, f.bytes_total):
                return f.index, (f.bytes_total, 0), False
        for f in files:
            if f.requested:
                return f.index, f.requested[0], True
        for f in files if fill else ():
            gap = None if f.completed else next_gap(f.filled, f.bytes_total, f.download_position)
            if gap is not None:
                return f.index, gap, False
        return None

    async def _transfer_span(
        self, job_id: str, index: int, span: Span, stop: asyncio.Event | None
    ) -> None:
        engine = self._engine
        run = engine._runs.get(job_id)
        if run is not None:
            run.file_index = index
        job = engine._jobs[job_id]
        first, length = span
        sink = RangeSink(
            engine,
            engine._files[job_id][index],
            first=first,
            budget=engine._file_budget(job_id, index),
            throttle=engine._bandwidth.pacer(job_id),
            flusher=engine._flusher,
        )
        self._sinks[(job_id, index)] = sink
        try:
            if length:
                await self._fetch(job, sink, span, stop)
            await sink.checkpoint()
            self._resolve(sink.record)
            if stop is None and sink.written[1]:
                info = engine._file_info(sink.record)
                engine._notifier.file_ranges_transferred(job_id, info, [sink.written])
            if sink.whole():
                engine._publish(job_id, [await sink.finish()])
        finally:
            del self._sinks[(job_id, index)]
            sink.close()

    async def _fetch(
        self, job: JobRecord, sink: RangeSink, span: Span, stop: asyncio.Event | None
    ) -> None:
        """Fetch ``span`` into ``sink``; a requested span (``stop`` None) runs to its end, a
        gap stops when ``stop`` is set (the bytes written are kept)."""
        first, length = span
        last = None if first + length == EOF_END else first + length - 1
        record = sink.record
        fetch = FileRequest(
            record.remote_name,
            sum(n for _, n in record.filled),
            record.bytes_total,
            record.validator,
            options=self._http_options(job),
        )
        work = self._engine._http.fetch_span(fetch, sink, first, last)
        try:
            await (work if stop is None else _until_set(stop, work))
        except TransferError as err:
            if stop is None and err.hresult == codes.BG_E_INVALID_RANGE:
                # Reported once: Resume goes on with the other requested ranges.
                current = sink.record
                self._store(
                    dataclasses.replace(current, requested=remove(current.requested, [span]))
                )
            raise

    def _resolve(self, record: FileRecord) -> None:
        """Resolve the file's queued spans against its size, now known.

        Raises:
            TransferError: BG_E_INVALID_RANGE for spans outside the file (they leave the queue).
        """
        size = record.bytes_total
        if size is None:
            return
        kept, outside = resolve(record.requested, size)
        if kept != record.requested:
            self._store(dataclasses.replace(record, requested=kept))
        if outside:
            listed = ", ".join(f"({o}, {'EOF' if o + n == EOF_END else n})" for o, n in outside)
            raise TransferError(
                codes.BG_E_INVALID_RANGE,
                ErrorContext.REMOTE_FILE,
                transient=False,
                message=f"the requested ranges {listed} are outside the remote file of {size} "
                f"bytes: {record.remote_name}",
            )


async def _until_set(stop: asyncio.Event, work: Awaitable[None]) -> None:
    """Run ``work`` until it ends or ``stop`` is set: then it is cancelled (a stopped span
    keeps its bytes) and this returns.

    Raises:
        What ``work`` raised.
    """
    task = asyncio.ensure_future(work)
    waiter = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait((task, waiter), return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    if not task.cancelled():
        task.result()
