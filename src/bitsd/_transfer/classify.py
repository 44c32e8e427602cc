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
  in GENERAL_TRANSPORT; an untrusted certificate is fatal (BG_E_TRUST_FAILURE, whichever check
  failed: chain, name, dates or usage; the message says which), and so is a server that
  wants a client certificate the job does not have
  (HRESULT_FROM_WIN32(ERROR_WINHTTP_CLIENT_AUTH_CERT_NEEDED)).
- A proxy that refuses a CONNECT answers with an HTTP status: the same table as a server's.
- The job's network options (docs/network.md), :func:`from_option_error`: a proxy list bitsd
  cannot read is BG_E_INVALID_PROXY_INFO, fatal (E_INVALIDARG, transient, for a bad proxy in
  the environment, as BITS treats a bad Internet Explorer proxy); no reachable proxy is
  BG_E_CONNECT_FAILURE (BG_E_PROXY_NAME_RESOLUTION_FAILURE when its name did not resolve),
  transient; a redirect refused under DISALLOW is HRESULT_FROM_WIN32(status), and a refused
  HTTPS→HTTP or non-HTTP redirect, a loop or too many redirects is
  HRESULT_FROM_WIN32(ERROR_WINHTTP_REDIRECT_FAILED), all fatal in REMOTE_FILE; an unusable CA
  bundle or client certificate is fatal (the OS error, else E_INVALIDARG); a challenge bitsd
  cannot answer (NTLM without pyspnego) is the HTTP 401/407 error, fatal, saying why.
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
from bitsd._transfer.auth import AuthUnavailableError
from bitsd._transfer.proxy import InvalidProxyInfoError, ProxyUnreachableError
from bitsd._transfer.redirects import RedirectRefusedError, Refusal
from bitsd._transfer.tls import TlsSetupError

__all__ = [
    "MAX_RETRY_AFTER",
    "from_http_status",
    "from_local_os_error",
    "from_network_exception",
    "from_option_error",
    "from_source_os_error",
    "is_transient_status",
    "parse_retry_after",
]

# Seconds. A Retry-After longer than a day is capped (urllib3 caps too); the no-progress timeout
# still bounds the total wait.
MAX_RETRY_AFTER = 86_400.0

# Win32 error of a redirect that cannot be followed (ERROR_HTTP_REDIRECT_FAILED).
_ERROR_HTTP_REDIRECT_FAILED = 12156
# Win32 error of a server that wants a client certificate (ERROR_WINHTTP_CLIENT_AUTH_CERT_NEEDED).
_ERROR_WINHTTP_CLIENT_AUTH_CERT_NEEDED = 12044
# The OpenSSL reason of a server's alert for a missing client certificate (TLS 1.3; a TLS 1.2
# "handshake failure" alert has other causes too, so it stays a secure-channel failure).
_CERT_NEEDED_REASONS = frozenset({"TLSV13_ALERT_CERTIFICATE_REQUIRED"})


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
    if _certificate_needed(exc):
        return err(codes.HRESULT_FROM_WIN32(_ERROR_WINHTTP_CLIENT_AUTH_CERT_NEEDED), False)
    if isinstance(exc, aiohttp.ClientSSLError | ssl.SSLError):
        return err(codes.BG_E_SECURE_CHANNEL_FAILURE, True)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return err(codes.BG_E_CONNECT_FAILURE, True)
    if isinstance(exc, aiohttp.TooManyRedirects):
        return err(
            codes.HRESULT_FROM_WIN32(_ERROR_HTTP_REDIRECT_FAILED), False, ErrorContext.REMOTE_FILE
        )
    if isinstance(exc, aiohttp.ClientHttpProxyError) and 100 <= exc.status <= 599:
        code = codes.http_error(exc.status)
        return err(code, is_transient_status(exc.status), ErrorContext.REMOTE_FILE)
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


def _certificate_needed(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it wraps) is a server's alert for a missing client certificate."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if (
            isinstance(current, ssl.SSLError)
            and getattr(current, "reason", None) in _CERT_NEEDED_REASONS
        ):
            return True
        nested = getattr(current, "os_error", None)
        current = nested if isinstance(nested, BaseException) else current.__cause__
    return False


def from_option_error(
    exc: TlsSetupError
    | InvalidProxyInfoError
    | ProxyUnreachableError
    | RedirectRefusedError
    | AuthUnavailableError,
    *,
    url: str,
) -> TransferError:
    """The error for a request that a job's network options made impossible (see the rules)."""
    protocol = _protocol(url)
    if isinstance(exc, InvalidProxyInfoError):
        if exc.from_environment:
            code, transient = codes.E_INVALIDARG, True
        else:
            code, transient = codes.BG_E_INVALID_PROXY_INFO, False
        return TransferError(
            code,
            ErrorContext.GENERAL_TRANSPORT,
            transient=transient,
            message=f"{codes.describe(code)} ({exc})",
            protocol=protocol,
        )
    if isinstance(exc, ProxyUnreachableError):
        code = (
            codes.BG_E_PROXY_NAME_RESOLUTION_FAILURE
            if exc.name_resolution
            else codes.BG_E_CONNECT_FAILURE
        )
        return TransferError(
            code,
            ErrorContext.GENERAL_TRANSPORT,
            transient=True,
            message=f"{codes.describe(code)} ({exc})",
            protocol=protocol,
        )
    if isinstance(exc, RedirectRefusedError):
        if exc.reason is Refusal.DISALLOWED:
            code = codes.HRESULT_FROM_WIN32(exc.status)
            message = (
                f"The server redirected the request (HTTP {exc.status}) to {exc.location} and "
                f"the job's redirect policy is DISALLOW. URL: {url}"
            )
        else:
            code = codes.HRESULT_FROM_WIN32(_ERROR_HTTP_REDIRECT_FAILED)
            message = f"The redirect failed: {exc}. URL: {url}"
        return TransferError(
            code, ErrorContext.REMOTE_FILE, transient=False, message=message, protocol=protocol
        )
    if isinstance(exc, AuthUnavailableError):
        code = codes.http_error(exc.status)
        return TransferError(
            code,
            ErrorContext.REMOTE_FILE,
            transient=False,
            message=f"{codes.describe(code)} ({exc}) URL: {url}",
            protocol=protocol,
        )
    code = codes.hresult_from_errno(exc.errno) if exc.errno else codes.E_INVALIDARG
    return TransferError(
        code,
        ErrorContext.GENERAL_TRANSPORT,
        transient=False,
        message=f"{codes.describe(code)} ({exc})",
        protocol=protocol,
    )


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
