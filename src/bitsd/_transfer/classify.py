"""The one place that decides what a failure means: transient or fatal, context, code.

Rules:
- Transports catch what the world throws at them (aiohttp exceptions, OS errors, HTTP statuses)
  and pass it here; what comes back is a :class:`TransferError` the engine records as is. No
  other module decides whether an error is transient.
- HTTP statuses follow the BITS table for server responses (bits-inventory §3.3): 3xx fatal for
  300–305 and 307, else transient; 4xx fatal except 408, 409 and 429 (429 is bitsd's addition:
  "too many requests" is a request to come back later); 5xx transient except 501 and 505. The
  code is ``BG_E_HTTP_ERROR_nnn`` in REMOTE_FILE. Retry-After is honoured in both of its forms.
- Connection failures (refused, reset, closed early, timed out, name not resolved) are transient
  in GENERAL_TRANSPORT; an untrusted certificate is fatal.
- Failures writing the local file (disk full, permission denied, read-only file system) are fatal
  in LOCAL_FILE, with the OS error as an HRESULT.
"""

from __future__ import annotations

import asyncio
import email.utils
import errno
import ssl
from collections.abc import Mapping

import aiohttp

from bitsd import codes
from bitsd._enums import ErrorContext
from bitsd._errors import TransferError

__all__ = [
    "MAX_RETRY_AFTER",
    "from_http_status",
    "from_local_os_error",
    "from_network_exception",
    "from_source_os_error",
    "is_transient_status",
    "parse_retry_after",
]

# Seconds. A Retry-After longer than a day is capped (urllib3 caps too); the no-progress timeout
# still bounds the total wait.
MAX_RETRY_AFTER = 86_400.0

# Win32 error of a redirect that cannot be followed (ERROR_HTTP_REDIRECT_FAILED).
_ERROR_HTTP_REDIRECT_FAILED = 12156


def is_transient_status(status: int) -> bool:
    """Whether an HTTP error status is retried (the BITS server-response table, plus 429)."""
    if 300 <= status < 400:
        return not (300 <= status <= 305 or status == 307)
    if 400 <= status < 500:
        return status in (408, 409, 429)
    if 500 <= status < 600:
        return status not in (501, 505)
    return True


def parse_retry_after(value: str | None, *, now_wall: float) -> float | None:
    """Seconds to wait from a Retry-After value: delta-seconds or an HTTP-date; None if absent
    or unreadable. Negative results become 0; large ones are capped at :data:`MAX_RETRY_AFTER`.
    """
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        seconds = float(value)
    else:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            return None
        seconds = when.timestamp() - now_wall
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def from_http_status(
    status: int, headers: Mapping[str, str], *, url: str, now_wall: float
) -> TransferError:
    """The error for an HTTP response that is not a usable answer to our request."""
    try:
        hresult = codes.http_error(status)
    except ValueError:
        hresult = codes.BG_E_INVALID_SERVER_RESPONSE
    return TransferError(
        hresult,
        ErrorContext.REMOTE_FILE,
        transient=is_transient_status(status),
        message=f"{codes.describe(hresult)} URL: {url}",
        retry_after=parse_retry_after(headers.get("Retry-After"), now_wall=now_wall),
        protocol=_protocol(url),
    )


def from_network_exception(exc: BaseException, *, url: str) -> TransferError:
    """The error for an exception raised while talking to a server."""
    protocol = _protocol(url)

    def err(
        code: int, transient: bool, ctx: ErrorContext = ErrorContext.GENERAL_TRANSPORT
    ) -> TransferError:
        detail = str(exc) or type(exc).__name__
        return TransferError(
            code,
            ctx,
            transient=transient,
            message=f"{codes.describe(code)} ({detail})",
            protocol=protocol,
        )

    # Order matters: the aiohttp classes form a hierarchy, most specific first.
    if isinstance(exc, (aiohttp.ClientConnectorCertificateError, ssl.SSLCertVerificationError)):
        return err(codes.BG_E_TRUST_FAILURE, False)
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return err(codes.BG_E_NAME_RESOLUTION_FAILURE, True)
    if isinstance(exc, aiohttp.ClientSSLError | ssl.SSLError):
        return err(codes.BG_E_SECURE_CHANNEL_FAILURE, True)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return err(codes.BG_E_CONNECT_FAILURE, True)
    if isinstance(exc, aiohttp.TooManyRedirects):
        return err(
            codes.HRESULT_FROM_WIN32(_ERROR_HTTP_REDIRECT_FAILED), False, ErrorContext.REMOTE_FILE
        )
    if isinstance(exc, aiohttp.InvalidURL | aiohttp.NonHttpUrlClientError):
        return err(codes.E_INVALIDARG, False, ErrorContext.REMOTE_FILE)
    if isinstance(exc, aiohttp.ServerTimeoutError | asyncio.TimeoutError | TimeoutError):
        return err(codes.BG_E_TIMEOUT, True)
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError):
        return err(codes.BG_E_CONNECTION_CLOSED, True)
    if isinstance(exc, aiohttp.ClientOSError | ConnectionError):
        return err(codes.BG_E_RECEIVE_FAILURE, True)
    if isinstance(exc, aiohttp.ClientResponseError):
        return err(codes.BG_E_INVALID_SERVER_RESPONSE, True)
    if isinstance(exc, aiohttp.ClientError):
        return err(codes.BG_E_UNKNOWN_ERROR, True)
    return err(codes.BG_E_UNKNOWN_ERROR, True)


def from_local_os_error(exc: OSError, *, local_name: str) -> TransferError:
    """The error for a failure reading or writing the local (temporary) file: fatal, LOCAL_FILE."""
    code = codes.hresult_from_errno(exc.errno or 0)
    return TransferError(
        code,
        ErrorContext.LOCAL_FILE,
        transient=False,
        message=f"{codes.describe(code)} ({exc.strerror or exc}; file {local_name})",
    )


def from_source_os_error(exc: OSError, *, url: str) -> TransferError:
    """The error for a failure reading a local or file:// source: REMOTE_FILE; I/O errors are
    transient (a network file system may come back), the others fatal."""
    code = codes.hresult_from_errno(exc.errno or 0)
    transient = exc.errno in (errno.EIO, errno.EAGAIN, errno.ETIMEDOUT, errno.ESTALE)
    return TransferError(
        code,
        ErrorContext.REMOTE_FILE,
        transient=transient,
        message=f"{codes.describe(code)} ({exc.strerror or exc}; source {url})",
        protocol="file",
    )


def _protocol(url: str) -> str | None:
    scheme = url.split(":", 1)[0].lower() if "://" in url else ""
    return scheme if scheme in ("http", "https", "file") else None
