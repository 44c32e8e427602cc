"""What an HTTP answer means for the bytes we hold: the resume decisions every HTTP transport
shares (aiohttp's in ``http.py``, bitsd's own in ``rawhttp.py``).

Rules (bits-inventory §5.2–§5.4):
- Every request asks for a range (``Range: bytes=OFFSET-``), so range support is known from the
  first answer; a resumed request adds ``If-Range`` with the validator of the bytes we hold (a
  strong ETag, else Last-Modified): :func:`range_headers`.
- 206 with the asked range: append. A different size or validator than the bytes we hold means
  the remote file changed: that file restarts from zero (its finished siblings stay).
- 200 to a resumed request with a new validator is the whole new file (If-Range mismatch):
  restart from zero with that body. 200 otherwise means the server ignores ranges:
  BG_E_INSUFFICIENT_RANGE_SUPPORT. No size anywhere: BG_E_MISSING_FILE_SIZE. Both are fatal
  (dynamic content and custom methods take the whole body instead: :func:`whole`).
- 416 with ``bytes */N``: N equal to what we hold means the file is complete; N smaller means the
  remote changed.

:func:`decide` is pure: it reads a response head (:class:`Head`) and returns an :class:`Answer`
(what to tell the sink, how much body to take, whether to ask again) or raises the classified
:class:`~bitsd._errors.TransferError`. :func:`follow` carries an answer out on a sink.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Awaitable, Callable, Mapping

from bitsd import codes
from bitsd._enums import ErrorContext
from bitsd._errors import TransferError
from bitsd._transfer import classify
from bitsd._transfer.base import Sink

__all__ = [
    "CONTENT_RANGE",
    "MAX_RESTARTS",
    "Answer",
    "Head",
    "bad_response",
    "closed_early",
    "content_range_total",
    "decide",
    "decide_span",
    "follow",
    "kept_changing",
    "missing_size",
    "no_random_access",
    "no_ranges",
    "range_headers",
    "span_headers",
    "status_error",
    "validator_of",
    "whole",
]

CONTENT_RANGE = re.compile(r"^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$", re.IGNORECASE)
_UNSATISFIED_RANGE = re.compile(r"^\s*bytes\s+\*/(\d+)\s*$", re.IGNORECASE)
# A remote file that keeps changing under us is restarted at most this often per attempt; then
# the attempt fails transiently and the retry delay applies.
MAX_RESTARTS = 3


@dataclasses.dataclass(frozen=True, slots=True)
class Head:
    """What a transport learned from a response before its body.

    Attributes:
        status: the HTTP status.
        headers: the response headers; ``get`` must ignore the case of names.
        content_length: the body's Content-Length, or None (chunked, or read to the close).
    """

    status: int
    headers: Mapping[str, str]
    content_length: int | None


@dataclasses.dataclass(frozen=True, slots=True)
class Answer:
    """What to do with a response.

    Attributes:
        bytes_total, validator, restart: what to tell ``sink.begin``.
        body_end: take the body until the sink holds this many bytes (None: to its end, size
            unknown); only when ``take_body``.
        take_body: the body is the file's bytes.
        again: the remote changed and the sink restarted: ask again from zero.
    """

    bytes_total: int | None
    validator: str | None
    restart: bool
    body_end: int | None = None
    take_body: bool = False
    again: bool = False


_RESTART = Answer(None, None, restart=True, again=True)


def validator_of(headers: Mapping[str, str] | object) -> str | None:
    """The validator of a response: a strong ETag, else Last-Modified, else None."""
    get = getattr(headers, "get", None)
    if get is None:
        return None
    etag = get("ETag")
    if etag and not etag.startswith("W/"):
        return str(etag)
    last_modified = get("Last-Modified")
    return str(last_modified) if last_modified else None


def range_headers(offset: int, validator: str | None) -> dict[str, str]:
    """The headers of a request for the bytes from ``offset`` of the version ``validator``."""
    headers = {"Range": f"bytes={offset}-"}
    if offset > 0 and validator:
        headers["If-Range"] = validator
    return headers


def span_headers(first: int, last: int | None, held: bool, validator: str | None) -> dict[str, str]:
    """The headers of a request for the bytes ``first``-``last`` (None: to the end), with
    ``If-Range`` when bytes of the version ``validator`` are held."""
    headers = {"Range": f"bytes={first}-{'' if last is None else last}"}
    if held and validator:
        headers["If-Range"] = validator
    return headers


def decide(
    head: Head,
    *,
    url: str,
    offset: int,
    total: int | None,
    validator: str | None,
    now_wall: float,
) -> Answer:
    """What a response to ``range_headers(offset, validator)`` means.

    Args:
        head: the response.
        url: the file's URL (for messages).
        offset: bytes held when the request was sent.
        total, validator: the size and version those bytes belong to, if known.
        now_wall: the wall time, for Retry-After dates.

    Raises:
        TransferError: the response is not a usable answer.
    """
    status = head.status
    new_validator = validator_of(head.headers)
    if status == 416:
        match = _UNSATISFIED_RANGE.match(head.headers.get("Content-Range", ""))
        size = int(match.group(1)) if match else None
        if size is not None and size == offset and (total in (None, size)):
            return Answer(size, new_validator or validator, restart=False)
        if size is not None and offset > 0:
            return _RESTART
        raise status_error(head, url, now_wall)
    if status == 206:
        match = CONTENT_RANGE.match(head.headers.get("Content-Range", ""))
        if match is None:
            raise bad_response(url, "a 206 response without a usable Content-Range")
        first, last, size_text = match.groups()
        if size_text == "*":
            raise missing_size(url)
        size = int(size_text)
        changed = offset > 0 and (
            (total is not None and size != total)
            or (validator is not None and new_validator is not None and new_validator != validator)
        )
        if changed:
            return _RESTART
        if int(first) != offset or int(last) < int(first) - 1 or int(last) >= size:
            raise bad_response(url, f"asked for bytes {offset}- and got {first}-{last}")
        return Answer(size, new_validator, restart=False, body_end=size, take_body=True)
    if status == 200:
        length = head.content_length
        if length is None:
            raise missing_size(url)
        if offset > 0 and validator is not None and new_validator != validator:
            # If-Range did not match: this is the whole new file.
            return Answer(length, new_validator, restart=True, body_end=length, take_body=True)
        if length == 0 and offset == 0:
            return Answer(0, new_validator, restart=False)
        raise no_ranges(url)
    raise status_error(head, url, now_wall)


def decide_span(
    head: Head,
    *,
    url: str,
    first: int,
    last: int | None,
    held: bool,
    total: int | None,
    validator: str | None,
    now_wall: float,
    ignored: Callable[[str], TransferError],
) -> Answer:
    """What a response to a request for the bytes ``first``-``last`` (``last`` None: to the
    end) means, for a file of which bytes are ``held`` (of size ``total``, version
    ``validator``) and asked with ``If-Range`` then. For the ranges of AddFileWithRanges and of
    on-demand jobs.

    - 416 is BG_E_INVALID_RANGE (the range is outside the file), unless bytes are held and
      ``bytes */N`` names another size (the remote changed), or the request ran to the end
      from at or past N: then the answer is the size N and no body.
    - 200 is the remote changed when bytes are held and the validator differs (If-Range did
      not match; the body is not taken, the caller asks again); else the server ignores ranges:
      ``ignored(url)``.
    - 206 must carry ``bytes first-last/size``; another size or validator than the held bytes'
      is the remote changed. The body runs to ``last + 1`` (the end of the file for None).

    Returns:
        An Answer whose ``again`` means: the remote changed, restart the file and ask again.

    Raises:
        TransferError: the response is not a usable answer.
    """
    status = head.status
    new_validator = validator_of(head.headers)
    changed = held and validator is not None and new_validator not in (None, validator)
    if status == 416:
        match = _UNSATISFIED_RANGE.match(head.headers.get("Content-Range", ""))
        size = int(match.group(1)) if match is not None else None
        if held and size is not None and total is not None and size != total:
            return _RESTART
        if size is not None and last is None and first >= size:
            # Nothing from ``first`` on: the answer is the size (the caller judges the range).
            return Answer(size, new_validator or validator, restart=False)
        raise _invalid_range(url, first, last)
    if status == 200:
        if changed:
            return _RESTART
        raise ignored(url)
    if status != 206:
        raise status_error(head, url, now_wall)
    size = content_range_total(head.headers, url)
    if changed or (held and total is not None and size != total):
        return _RESTART
    if last is not None and last >= size:
        raise _invalid_range(url, first, last)
    match = CONTENT_RANGE.match(head.headers.get("Content-Range", ""))
    assert match is not None  # content_range_total checked it
    end = size - 1 if last is None else last
    if int(match.group(1)) != first or int(match.group(2)) != end:
        raise bad_response(
            url, f"asked for bytes {first}-{end} and got {match.group(1)}-{match.group(2)}"
        )
    return Answer(size, new_validator, restart=False, body_end=end + 1, take_body=True)


def whole(head: Head, *, url: str, method: str, now_wall: float) -> Answer:
    """What a response means when the whole body is taken from zero (dynamic content, or a
    custom HTTP method, whose every 2xx is an answer).

    Raises:
        TransferError: the response is not a usable answer.
    """
    status = head.status
    if status not in (200, 206) and not (method.upper() != "GET" and 200 <= status < 300):
        raise status_error(head, url, now_wall)
    length = head.content_length
    return Answer(length, None, restart=True, body_end=length, take_body=True)


async def follow(
    answer: Answer, sink: Sink, stream: Callable[[int | None], Awaitable[None]]
) -> bool:
    """Carry ``answer`` out: tell the sink, then ``stream(body_end)`` if the body is wanted.
    Returns True when the file is done, False when the caller must ask again."""
    await sink.begin(
        bytes_total=answer.bytes_total, validator=answer.validator, restart=answer.restart
    )
    if answer.take_body:
        await stream(answer.body_end)
    return not answer.again


def status_error(head: Head, url: str, now_wall: float) -> TransferError:
    """The classified error of a status that is not an answer."""
    return classify.from_http_status(head.status, head.headers, url=url, now_wall=now_wall)


def content_range_total(headers: Mapping[str, str], url: str) -> int:
    """The total size a 206 response announces.

    Raises:
        TransferError: no usable Content-Range, or one without a size.
    """
    match = CONTENT_RANGE.match(headers.get("Content-Range", ""))
    if match is None:
        raise bad_response(url, "a 206 response without a usable Content-Range")
    if match.group(3) == "*":
        raise missing_size(url)
    return int(match.group(3))


def _scheme(url: str) -> str:
    return url.split(":", 1)[0].lower()


def bad_response(url: str, what: str) -> TransferError:
    """BG_E_INVALID_SERVER_RESPONSE (transient), saying ``what`` was wrong."""
    return TransferError(
        codes.BG_E_INVALID_SERVER_RESPONSE,
        ErrorContext.REMOTE_FILE,
        transient=True,
        message=f"{codes.describe(codes.BG_E_INVALID_SERVER_RESPONSE)} ({what}) URL: {url}",
        protocol=_scheme(url),
    )


def _fatal(code: int, url: str, detail: str = "") -> TransferError:
    """A fatal error of the remote file with BITS's description of ``code``."""
    return TransferError(
        code,
        ErrorContext.REMOTE_FILE,
        transient=False,
        message=f"{codes.describe(code)}{detail} URL: {url}",
        protocol=_scheme(url),
    )


def missing_size(url: str) -> TransferError:
    """BG_E_MISSING_FILE_SIZE (fatal)."""
    return _fatal(codes.BG_E_MISSING_FILE_SIZE, url)


def no_ranges(url: str) -> TransferError:
    """BG_E_INSUFFICIENT_RANGE_SUPPORT (fatal)."""
    return _fatal(codes.BG_E_INSUFFICIENT_RANGE_SUPPORT, url)


def no_random_access(url: str) -> TransferError:
    """BG_E_RANDOM_ACCESS_NOT_SUPPORTED (fatal): an on-demand job's server ignores ranges."""
    return _fatal(codes.BG_E_RANDOM_ACCESS_NOT_SUPPORTED, url)


def _invalid_range(url: str, first: int, last: int | None) -> TransferError:
    """BG_E_INVALID_RANGE (fatal): the bytes ``first``-``last`` are not in the file."""
    return _fatal(codes.BG_E_INVALID_RANGE, url, f" (bytes {first}-{'' if last is None else last})")


def kept_changing(url: str) -> TransferError:
    """The remote file changed on every try of this attempt (transient)."""
    return TransferError(
        codes.BG_E_INVALID_SERVER_RESPONSE,
        ErrorContext.REMOTE_FILE,
        transient=True,
        message=f"the remote file kept changing during the download: {url}",
        protocol=_scheme(url),
    )


def closed_early(url: str, got: int, size: int) -> TransferError:
    """BG_E_CONNECTION_CLOSED (transient): the body ended before its announced size."""
    return TransferError(
        codes.BG_E_CONNECTION_CLOSED,
        ErrorContext.GENERAL_TRANSPORT,
        transient=True,
        message=f"the connection closed after {got} of {size} bytes: {url}",
        protocol=_scheme(url),
    )
