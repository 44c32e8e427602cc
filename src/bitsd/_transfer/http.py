"""HTTP(S) downloads with resume, on aiohttp.

Rules (bits-inventory §5.2–§5.4):
- What a response means for the bytes we hold (Range, If-Range, 206/200/416, a remote that
  changed) is decided in ``resume.py``, shared with bitsd's own client (``rawhttp.py``):
  this module sends the requests and moves the bodies.
- A job with dynamic content downloads whole, from zero, on every try; so does a custom HTTP
  method.
- Memory stays flat: the body is read in ``chunk_size`` pieces and written straight to disk.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

import aiohttp

from bitsd import codes
from bitsd._clock import Clock
from bitsd._errors import TransferError
from bitsd._ranges import Ranges, local_size, locate, resolve
from bitsd._transfer import classify
from bitsd._transfer.base import FileRequest, Sink
from bitsd._transfer.exchange import Exchanger, conversation, request_timeouts
from bitsd._transfer.resume import (
    MAX_RESTARTS,
    Answer,
    Head,
    bad_response,
    closed_early,
    decide,
    decide_span,
    follow,
    kept_changing,
    no_random_access,
    no_ranges,
    range_headers,
    span_headers,
    validator_of,
    whole,
)
from bitsd._transfer.tls import TlsContexts

__all__ = ["HttpTransport", "head_of", "validator_of"]


def head_of(resp: aiohttp.ClientResponse) -> Head:
    """The head of an aiohttp response, for the shared decisions."""
    return Head(resp.status, resp.headers, resp.content_length)


class HttpTransport:
    """Fetches http:// and https:// URLs through one shared aiohttp session.

    Args:
        session: the session (connection pool) to use; owned by the caller.
        clock: for Retry-After dates.
        chunk_size: bytes per read.
        connect_timeout, read_timeout: seconds; a stalled read is a transient BG_E_TIMEOUT.
        tls: the cache of SSL contexts (default: one of its own).
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        clock: Clock,
        *,
        chunk_size: int,
        connect_timeout: float,
        read_timeout: float,
        tls: TlsContexts | None = None,
    ) -> None:
        self._session = session
        self._clock = clock
        self._exchanger = Exchanger(session, aiohttp.ClientTimeout(), tls=tls)
        self.retune(
            chunk_size=chunk_size, connect_timeout=connect_timeout, read_timeout=read_timeout
        )

    def retune(self, *, chunk_size: int, connect_timeout: float, read_timeout: float) -> None:
        """Use new settings (the engine's were reconfigured) from the next request on."""
        self._chunk = chunk_size
        self._exchanger.timeout = request_timeouts(connect_timeout, read_timeout)

    async def fetch(self, request: FileRequest, sink: Sink) -> None:
        try:
            with conversation(sink):
                await self._fetch(request, sink)
        except TransferError:
            raise
        except (aiohttp.ClientError, TimeoutError, ConnectionError) as exc:
            raise classify.from_network_exception(exc, url=request.url) from exc

    def _open(
        self, request: FileRequest, headers: dict[str, str]
    ) -> AbstractAsyncContextManager[aiohttp.ClientResponse]:
        """Send one request of ``request``'s job: its method, custom headers and our own
        headers (ours win: a custom header cannot change the range asked for), through the
        job's proxies, TLS settings, credentials and redirect policy (exchange.py)."""
        return self._exchanger.open(request, headers)

    async def _fetch(self, request: FileRequest, sink: Sink) -> None:
        url = request.url
        if request.dynamic or request.options.method.upper() != "GET":
            async with self._open(request, {}) as resp:
                answer = whole(
                    head_of(resp), url=url, method=request.options.method, now_wall=self._now()
                )
                await follow(answer, sink, lambda end: self._stream(resp, sink, end, url))
            return
        if request.ranges is not None:
            await self._fetch_ranges(request, sink)
            return
        validator = request.validator
        total = request.bytes_total
        for _ in range(MAX_RESTARTS + 1):
            offset = sink.offset
            async with self._open(request, range_headers(offset, validator)) as resp:
                answer = decide(
                    head_of(resp),
                    url=url,
                    offset=offset,
                    total=total,
                    validator=validator,
                    now_wall=self._now(),
                )
                if await follow(answer, sink, lambda end: self._stream(resp, sink, end, url)):
                    return
                total, validator = None, None
        raise kept_changing(url)

    def _now(self) -> float:
        return self._clock.wall()

    async def _fetch_ranges(self, request: FileRequest, sink: Sink) -> None:
        """Fetch a file made of ranges (AddFileWithRanges), one range request at a time, each
        appended to the local file in the order given."""
        assert request.ranges is not None
        ranges: Ranges = request.ranges
        validator = request.validator
        remote_size: int | None = None
        restarts = 0
        while True:
            if remote_size is not None:
                ranges = resolve(request.ranges, remote_size)
            index, inside = locate(ranges, sink.offset)
            if index == len(ranges):
                return
            offset, length = ranges[index]
            start = offset + inside
            last = None if length == codes.LENGTH_TO_EOF else offset + length - 1
            held = sink.offset > 0
            async with self._open(request, span_headers(start, last, held, validator)) as resp:
                answer = self._span_answer(
                    resp, request.url, (start, last), held, remote_size, validator, no_ranges
                )
                if answer.again:
                    # The remote file changed: the ranges are read again from the first one.
                    restarts += 1
                    if restarts > MAX_RESTARTS:
                        raise kept_changing(request.url)
                    await sink.begin(bytes_total=None, validator=None, restart=True)
                    validator, remote_size = None, None
                    continue
                assert answer.bytes_total is not None
                remote_size = answer.bytes_total
                ranges = resolve(request.ranges, remote_size)
                validator = answer.validator
                await sink.begin(bytes_total=local_size(ranges), validator=validator, restart=False)
                if answer.take_body:
                    end = sum(n for _, n in ranges[: index + 1])
                    await self._stream(resp, sink, end, request.url)

    async def fetch_span(
        self, request: FileRequest, sink: Sink, first: int, last: int | None
    ) -> None:
        """Fetch the bytes ``first``-``last`` (None: to the end) of an on-demand job's file into
        ``sink``, which writes them at their offsets (``sink.offset`` is ``first`` on entry).
        ``request.offset`` > 0 says bytes of the file (of ``request.bytes_total`` and
        ``request.validator``) are held: they are asked for with If-Range, and a remote that
        changed restarts the file (``sink.begin(restart=True)``) before the span is asked
        again. A server that ignores ranges is BG_E_RANDOM_ACCESS_NOT_SUPPORTED.

        Raises:
            TransferError: the classified failure.
        """
        try:
            with conversation(sink):
                await self._fetch_span(request, sink, first, last)
        except TransferError:
            raise
        except (aiohttp.ClientError, TimeoutError, ConnectionError) as exc:
            raise classify.from_network_exception(exc, url=request.url) from exc

    async def _fetch_span(
        self, request: FileRequest, sink: Sink, first: int, last: int | None
    ) -> None:
        held, total, validator = request.offset > 0, request.bytes_total, request.validator
        for _ in range(MAX_RESTARTS + 1):
            async with self._open(request, span_headers(first, last, held, validator)) as resp:
                answer = self._span_answer(
                    resp, request.url, (first, last), held, total, validator, no_random_access
                )
                if await follow(
                    answer, sink, lambda end: self._stream(resp, sink, end, request.url)
                ):
                    return
                held, total, validator = False, None, None
        raise kept_changing(request.url)

    def _span_answer(
        self,
        resp: aiohttp.ClientResponse,
        url: str,
        span: tuple[int, int | None],
        held: bool,
        total: int | None,
        validator: str | None,
        ignored: Callable[[str], TransferError],
    ) -> Answer:
        """``decide_span`` of a response to a request for the bytes ``span`` (first, last)."""
        return decide_span(
            head_of(resp),
            url=url,
            first=span[0],
            last=span[1],
            held=held,
            total=total,
            validator=validator,
            now_wall=self._now(),
            ignored=ignored,
        )

    async def _stream(
        self, resp: aiohttp.ClientResponse, sink: Sink, size: int | None, url: str
    ) -> None:
        content = resp.content
        chunk = self._chunk
        while True:
            data = await content.read(chunk)
            if not data:
                break
            if size is not None and sink.offset + len(data) > size:
                raise bad_response(url, "the server sent more bytes than it announced")
            await sink.write(data)
        if size is not None and sink.offset != size:
            raise closed_early(url, sink.offset, size)

    def _status_error(self, resp: aiohttp.ClientResponse, url: str) -> TransferError:
        return classify.from_http_status(
            resp.status, resp.headers, url=url, now_wall=self._clock.wall()
        )
