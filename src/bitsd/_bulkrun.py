"""The bulk of one job run: which of its files the splice helper fetches in a bulk
(``bitsd._transfer.bulkfetch``, which says why and how), and handing them over.

Rules:
- A file goes in the run's bulk when the per-file path would fetch it from its start with the
  raw transport over plain HTTP (``RawHttpTransport.bulk_file``): no bytes, validator, ranges
  or SHA-256 of its own, and the same origin (host and port) as the bulk's first file. The
  engine decides what the job must be (``Engine._bulk_plan``).
- The bulk opens at the first hand-over: the origin's addresses resolved, then the helper
  asked. If it cannot open (no helper that fetches bulks, a name that does not resolve) or
  the helper dies, no file goes in it any more, and the files handed back go to the per-file
  path, which meets what went wrong itself.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

from bitsd._clock import Clock
from bitsd._model import FileRecord
from bitsd._transfer.base import FileRequest, HttpOptions
from bitsd._transfer.bulkfetch import Bulk, Outcome, fits
from bitsd._transfer.rawhttp import BulkOrigin, RawHttpTransport
from bitsd._transfer.splicehelper import SpliceHelper

__all__ = ["BulkRun"]

# The URL, the size known, the temporary file's path (os.fsencode), the GET, the local name.
_Entry = tuple[str, int | None, bytes, bytes, str]


class BulkRun:
    """The bulk of one job run (see the module rules).

    Args:
        record_of: a file's record by its index.
        pending: the run's files (indexes) by position.
        options, environment: the job's HTTP options and the run's proxy environment.
        width: connections the bulk may hold (the job's file concurrency).
        most: the largest body the helper takes (the checkpoint interval, at most).
    """

    def __init__(
        self,
        raw: RawHttpTransport,
        helper: SpliceHelper,
        clock: Clock,
        record_of: Callable[[int], FileRecord],
        pending: Sequence[int],
        options: HttpOptions,
        environment: tuple[str | None, ...],
        *,
        width: int,
        most: int,
    ) -> None:
        self._raw = raw
        self._helper = helper
        self._clock = clock
        self._record_of = record_of
        self._pending = pending
        self._options = options
        self._environment = environment
        self._width = width
        self._most = most
        self._origin: tuple[str, int] | None = None
        # The GET of the origin's plain paths, from the first file with one (options and
        # proxy environment are the run's): the next files' GETs without deciding each.
        self._gets: BulkOrigin | None = None
        self._entries: dict[int, _Entry] = {}  # by position: taken, not handed over yet
        self._bulk: Bulk | None = None
        self._unavailable = False  # the bulk could not open, or is gone

    @property
    def under_way(self) -> int:
        """Files handed over and not answered yet."""
        return self._bulk.under_way if self._bulk is not None else 0

    def takes(self, position: int) -> bool:
        """Whether the file at ``position`` goes in the bulk (then :meth:`hand_over` it)."""
        if self._unavailable or (self._bulk is not None and not self._bulk.alive):
            self._unavailable = True
            return False
        record = self._record_of(self._pending[position])
        if (
            record.bytes_transferred
            or record.validator is not None
            or record.ranges is not None
            or record.sha256 is not None
        ):
            return False
        url = record.remote_name
        wire = self._gets.get(url) if self._gets is not None else None
        if wire is None:  # not a plain path of the bulk's origin: decided in full
            request = FileRequest(url, 0, record.bytes_total, None, options=self._options)
            found = self._raw.bulk_file(request, self._environment)
            if found is None:
                return False
            if self._origin is None:
                self._origin = found.where
            elif found.where != self._origin:
                return False
            if self._gets is None:
                self._gets = found.origin
            wire = found.wire
        path = os.fsencode(record.temp_name)
        if not fits(path, wire):
            return False
        self._entries[position] = (url, record.bytes_total, path, wire, record.local_name)
        return True

    async def hand_over(
        self, positions: list[int], on_result: Callable[[int, Outcome], None]
    ) -> list[int]:
        """Hand the files at ``positions`` (each taken by :meth:`takes`) to the bulk, whose
        results go to ``on_result``; returns those it could not take (no bulk after all)."""
        items = [(position, *self._entries.pop(position)) for position in positions]
        if self._bulk is None and not self._unavailable:
            self._bulk = await self._open(on_result)
            if self._bulk is None:
                self._unavailable = True
            else:
                assert self._origin is not None
                self._raw.bulk_opened(*self._origin)
        if self._bulk is None or not await self._bulk.add(items):
            self._unavailable = True
            return positions
        return []

    async def _open(self, on_result: Callable[[int, Outcome], None]) -> Bulk | None:
        assert self._origin is not None
        host, port = self._origin
        try:
            addresses = await self._raw.addresses(host, port)
        except (OSError, TimeoutError):
            return None  # the per-file path meets it, and says what it is
        return await Bulk.open(
            self._helper,
            self._clock,
            host,
            port,
            addresses,
            on_result,
            width=self._width,
            most=self._most,
            connect_timeout=self._raw.connect_timeout,
            read_timeout=self._raw.read_timeout,
        )

    async def drop_idle(self) -> None:
        """Files on the per-file path take their turn: the bulk's idle connections close."""
        if self._bulk is not None:
            await self._bulk.drop_idle()

    async def release(self, count: int) -> None:
        """``count`` files the bulk handed back with their connection ended."""
        if self._bulk is not None:
            await self._bulk.release(count)

    async def cancel_after(self, position: int) -> None:
        """Stop the bulk's files after ``position``; they get no result."""
        if self._bulk is not None:
            await self._bulk.cancel_after(position)

    async def close(self) -> None:
        """Stop what is under way and forget the bulk."""
        if self._bulk is not None:
            await self._bulk.close()
            assert self._origin is not None
            self._raw.bulk_closed(*self._origin)
