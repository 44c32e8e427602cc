"""HTTP(S) downloads with resume, on aiohttp.

Rules (bits-inventory §5.2–§5.4):
- Every request asks for a range (``Range: bytes=OFFSET-``), so range support is known from the
  first answer; a resumed request adds ``If-Range`` with the validator of the bytes we hold (a
  strong ETag, else Last-Modified).
- 206 with the asked range: append. A different size or validator than the bytes we hold means
  the remote file changed: that file restarts from zero (its finished siblings stay).
- 200 to a resumed request with a new validator is the whole new file (If-Range mismatch):
  restart from zero with that body. 200 otherwise means the server ignores ranges:
  BG_E_INSUFFICIENT_RANGE_SUPPORT. No size anywhere: BG_E_MISSING_FILE_SIZE. Both are fatal
  unless the job has dynamic content, which downloads whole, from zero, on every try.
- 416 with ``bytes */N``: N equal to what we hold means the file is complete; N smaller means the
  remote changed.
- Memory stays flat: the body is read in ``chunk_size`` pieces and written straight to disk.
"""

from __future__ import annotations

import re
from contextlib import AbstractAsyncContextManager

import aiohttp

from bitsd import codes
from bitsd._clock import Clock
from bitsd._enums import ErrorContext
from bitsd._errors import TransferError
from bitsd._ranges import Ranges, local_size, locate, resolve
from bitsd._transfer import classify
from bitsd._transfer.base import FileRequest, Sink
from bitsd._transfer.exchange import Exchanger, conversation

__all__ = ["HttpTransport"]

_CONTENT_RANGE = re.compile(r"^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$", re.IGNORECASE)
_UNSATISFIED_RANGE = re.compile(r"^\s*bytes\s+\*/(\d+)\s*$", re.IGNORECASE)
# A remote file that keeps changing under us is restarted at most this often per attempt; then
# the attempt fails transiently and the retry delay applies.
_MAX_RESTARTS = 3


def validator_of(headers: aiohttp.typedefs.LooseHeaders | object) -> str | None:
    """The validator of a response: a strong ETag, else Last-Modified, else None."""
    get = getattr(headers, "get", None)
    if get is None:
        return None
    etag = get("ETag")
    if etag and not etag.startswith("W/"):
        return str(etag)
    last_modified = get("Last-Modified")
    return str(last_modified) if last_modified else None


class HttpTransport:
    """Fetches http:// and https:// URLs through one shared aiohttp session.

    Args:
        session: the session (connection pool) to use; owned by the caller.
        clock: for Retry-After dates.
        chunk_size: bytes per read.
        connect_timeout, read_timeout: seconds; a stalled read is a transient BG_E_TIMEOUT.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        clock: Clock,
        *,
        chunk_size: int,
        connect_timeout: float,
        read_timeout: float,
    ) -> None:
        self._session = session
        self._clock = clock
        self._chunk = chunk_size
        self._timeout = aiohttp.ClientTimeout(
            total=None, connect=None, sock_connect=connect_timeout, sock_read=read_timeout
        )
        self._exchanger = Exchanger(session, self._timeout)

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
        if request.dynamic or request.options.method.upper() != "GET":
            async with self._open(request, {}) as resp:
                await self._whole(request, resp, sink)
            return
        if request.ranges is not None:
            await self._fetch_ranges(request, sink)
            return
        validator = request.validator
        total = request.bytes_total
        for _ in range(_MAX_RESTARTS + 1):
            offset = sink.offset
            headers = {"Range": f"bytes={offset}-"}
            if offset > 0 and validator:
                headers["If-Range"] = validator
            async with self._open(request, headers) as resp:
                outcome = await self._answer(request, resp, sink, offset, total, validator)
                if outcome is None:
                    return
                total, validator = outcome
        raise _kept_changing(request.url)

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
            last = "" if length == codes.LENGTH_TO_EOF else str(offset + length - 1)
            headers = {"Range": f"bytes={start}-{last}"}
            if sink.offset > 0 and validator:
                headers["If-Range"] = validator
            async with self._open(request, headers) as resp:
                new_validator = validator_of(resp.headers)
                if resp.status == 416:
                    raise TransferError(
                        codes.BG_E_INVALID_RANGE,
                        ErrorContext.REMOTE_FILE,
                        transient=False,
                        message=f"{codes.describe(codes.BG_E_INVALID_RANGE)} "
                        f"(bytes {start}-{last}) URL: {request.url}",
                        protocol=_scheme(request.url),
                    )
                changed = (
                    sink.offset > 0
                    and validator is not None
                    and (new_validator is not None and new_validator != validator)
                )
                if resp.status == 200 and not changed:
                    raise _no_ranges(request.url)
                if resp.status not in (200, 206):
                    raise self._status_error(resp, request.url)
                size = _content_range_total(resp, request.url) if resp.status == 206 else None
                if changed or (remote_size is not None and size not in (None, remote_size)):
                    # The remote file changed: the ranges are read again from the first one.
                    restarts += 1
                    if restarts > _MAX_RESTARTS:
                        raise _kept_changing(request.url)
                    await sink.begin(bytes_total=None, validator=None, restart=True)
                    validator, remote_size = None, None
                    continue
                match = _CONTENT_RANGE.match(resp.headers.get("Content-Range", ""))
                assert match is not None
                assert size is not None
                remote_size = size
                ranges = resolve(request.ranges, remote_size)
                offset, length = ranges[index]
                if int(match.group(1)) != start or int(match.group(2)) != offset + length - 1:
                    raise _bad_response(
                        request.url,
                        f"asked for bytes {start}-{offset + length - 1} and got "
                        f"{match.group(1)}-{match.group(2)}",
                    )
                validator = new_validator
                await sink.begin(bytes_total=local_size(ranges), validator=validator, restart=False)
                end = sum(n for _, n in ranges[: index + 1])
                await self._stream(resp, sink, end, request.url)

    async def _answer(
        self,
        request: FileRequest,
        resp: aiohttp.ClientResponse,
        sink: Sink,
        offset: int,
        total: int | None,
        validator: str | None,
    ) -> tuple[int | None, str | None] | None:
        """Handle one response. Returns None when the file is done, or the (total, validator)
        to ask again with after the remote changed and the sink was restarted."""
        url = request.url
        new_validator = validator_of(resp.headers)
        if resp.status == 416:
            match = _UNSATISFIED_RANGE.match(resp.headers.get("Content-Range", ""))
            size = int(match.group(1)) if match else None
            if size is not None and size == offset and (total in (None, size)):
                await sink.begin(
                    bytes_total=size, validator=new_validator or validator, restart=False
                )
                return None
            if size is not None and offset > 0:
                await sink.begin(bytes_total=None, validator=None, restart=True)
                return (None, None)
            raise self._status_error(resp, url)
        if resp.status == 206:
            match = _CONTENT_RANGE.match(resp.headers.get("Content-Range", ""))
            if match is None:
                raise _bad_response(url, "a 206 response without a usable Content-Range")
            first, last, size_text = match.groups()
            if size_text == "*":
                raise _missing_size(url)
            size = int(size_text)
            changed = offset > 0 and (
                (total is not None and size != total)
                or (
                    validator is not None
                    and new_validator is not None
                    and new_validator != validator
                )
            )
            if changed:
                await sink.begin(bytes_total=None, validator=None, restart=True)
                return (None, None)
            if int(first) != offset or int(last) < int(first) - 1 or int(last) >= size:
                raise _bad_response(url, f"asked for bytes {offset}- and got {first}-{last}")
            await sink.begin(bytes_total=size, validator=new_validator, restart=False)
            await self._stream(resp, sink, size, url)
            return None
        if resp.status == 200:
            length = resp.content_length
            if length is None:
                raise _missing_size(url)
            if offset > 0 and validator is not None and new_validator != validator:
                # If-Range did not match: this is the whole new file.
                await sink.begin(bytes_total=length, validator=new_validator, restart=True)
                await self._stream(resp, sink, length, url)
                return None
            if length == 0 and offset == 0:
                await sink.begin(bytes_total=0, validator=new_validator, restart=False)
                return None
            raise _no_ranges(url)
        raise self._status_error(resp, url)

    async def _whole(self, request: FileRequest, resp: aiohttp.ClientResponse, sink: Sink) -> None:
        """Take the whole body from zero (dynamic content, or a custom HTTP method)."""
        if resp.status not in (200, 206) and not (
            request.options.method.upper() != "GET" and 200 <= resp.status < 300
        ):
            raise self._status_error(resp, request.url)
        await sink.begin(bytes_total=resp.content_length, validator=None, restart=True)
        await self._stream(resp, sink, resp.content_length, request.url)

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
                raise _bad_response(url, "the server sent more bytes than it announced")
            await sink.write(data)
        if size is not None and sink.offset != size:
            raise TransferError(
                codes.BG_E_CONNECTION_CLOSED,
                ErrorContext.GENERAL_TRANSPORT,
                transient=True,
                message=f"the connection closed after {sink.offset} of {size} bytes: {url}",
                protocol=_scheme(url),
            )

    def _status_error(self, resp: aiohttp.ClientResponse, url: str) -> TransferError:
        return classify.from_http_status(
            resp.status, resp.headers, url=url, now_wall=self._clock.wall()
        )


def _scheme(url: str) -> str:
    return url.split(":", 1)[0].lower()


def _bad_response(url: str, what: str) -> TransferError:
    return TransferError(
        codes.BG_E_INVALID_SERVER_RESPONSE,
        ErrorContext.REMOTE_FILE,
        transient=True,
        message=f"{codes.describe(codes.BG_E_INVALID_SERVER_RESPONSE)} ({what}) URL: {url}",
        protocol=_scheme(url),
    )


def _missing_size(url: str) -> TransferError:
    return TransferError(
        codes.BG_E_MISSING_FILE_SIZE,
        ErrorContext.REMOTE_FILE,
        transient=False,
        message=f"{codes.describe(codes.BG_E_MISSING_FILE_SIZE)} URL: {url}",
        protocol=_scheme(url),
    )


def _no_ranges(url: str) -> TransferError:
    return TransferError(
        codes.BG_E_INSUFFICIENT_RANGE_SUPPORT,
        ErrorContext.REMOTE_FILE,
        transient=False,
        message=f"{codes.describe(codes.BG_E_INSUFFICIENT_RANGE_SUPPORT)} URL: {url}",
        protocol=_scheme(url),
    )


def _kept_changing(url: str) -> TransferError:
    return TransferError(
        codes.BG_E_INVALID_SERVER_RESPONSE,
        ErrorContext.REMOTE_FILE,
        transient=True,
        message=f"the remote file kept changing during the download: {url}",
        protocol=_scheme(url),
    )


def _content_range_total(resp: aiohttp.ClientResponse, url: str) -> int:
    """The total size a 206 response announces."""
    match = _CONTENT_RANGE.match(resp.headers.get("Content-Range", ""))
    if match is None:
        raise _bad_response(url, "a 206 response without a usable Content-Range")
    if match.group(3) == "*":
        raise _missing_size(url)
    return int(match.group(3))
