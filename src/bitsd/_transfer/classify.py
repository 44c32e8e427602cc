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
- bitsd's own HTTP client (``rawhttp.py``) raises plain socket and ``ssl`` errors, httptools'
  parser errors and the two classes defined here, :class:`ConnectFailedError` and
  :class:`DisconnectedError`; they map to the same codes as aiohttp's connector and
  disconnection errors.
- Failures writing the local file (disk full, permission denied, read-only file system) are fatal
  in LOCAL_FILE, with the OS error as an HRESULT.
- Upload Acks (MC-BUP, docs/uploads.md), :func:`from_upload_ack`: the code is the Ack's
  ``BITS-Error-Code`` (MC-BUP's ``BITS-Error`` too) when it is a failure HRESULT, else
  BG_E_HTTP_ERROR_nnn; context ``0x7`` is REMOTE_APPLICATION (the server application failed),
  anything else REMOTE_FILE. Transient or fatal by the same status table (the SDK's table for
  server-application errors), except BG_E_TOO_LARGE, which is fatal; a Close-Session or
  Cancel-Session is retried on 5xx only, never on BG_E_SESSION_NOT_FOUND (SDK Ack pages). A
  server that does not speak the protocol is BG_E_CLIENT_SERVER_PROTOCOL_MISMATCH, fatal; an Ack
  that breaks it is BG_E_INVALID_SERVER_RESPONSE, transient; an upload source that changed is
  BG_E_LOCAL_FILE_CHANGED, fatal in LOCAL_FILE.
"""

from __future__ import annotations

import asyncio
import email.utils
import errno
import os
import socket
import ssl
from collections.abc import Mapping

import aiohttp
import httptools

from bitsd import codes
from bitsd._enums import ErrorContext
from bitsd._errors import TransferError
from bitsd._transfer.auth import AuthUnavailableError
from bitsd._transfer.proxy import InvalidProxyInfoError, ProxyUnreachableError
from bitsd._transfer.redirects import RedirectRefusedError, Refusal
from bitsd._transfer.tls import TlsSetupError

__all__ = [
    "MAX_RETRY_AFTER",
    "ConnectFailedError",
    "DisconnectedError",
    "closed_before_answer",
    "from_http_status",
    "from_local_os_error",
    "from_network_exception",
    "from_option_error",
    "from_source_os_error",
    "from_upload_ack",
    "invalid_upload_ack",
    "is_transient_status",
    "local_file_changed",
    "parse_bits_error",
    "parse_retry_after",
    "protocol_mismatch",
    "read_timed_out",
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


class ConnectFailedError(ConnectionError):
    """No connection to the server could be made (refused, unreachable); a transport without
    aiohttp raises it (BG_E_CONNECT_FAILURE)."""


class DisconnectedError(ConnectionError):
    """The server closed the connection before its answer was complete; a transport without
    aiohttp raises it (BG_E_CONNECTION_CLOSED)."""


def closed_before_answer() -> DisconnectedError:
    """The server closed the connection before the answer's head was complete."""
    return DisconnectedError("the server closed the connection before its answer")


def read_timed_out() -> TimeoutError:
    """A wait for the server lasted the read timeout (raw transport, splice helper, bulks)."""
    return TimeoutError("the server sent nothing within the read timeout")


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
    if isinstance(exc, aiohttp.ClientConnectorDNSError | socket.gaierror):
        return err(codes.BG_E_NAME_RESOLUTION_FAILURE, True)
    if _certificate_needed(exc):
        return err(codes.HRESULT_FROM_WIN32(_ERROR_WINHTTP_CLIENT_AUTH_CERT_NEEDED), False)
    if isinstance(exc, aiohttp.ClientSSLError | ssl.SSLError):
        return err(codes.BG_E_SECURE_CHANNEL_FAILURE, True)
    if isinstance(exc, aiohttp.ClientConnectorError | ConnectFailedError):
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
    if isinstance(
        exc, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError | DisconnectedError
    ):
        return err(codes.BG_E_CONNECTION_CLOSED, True)
    if isinstance(exc, httptools.HttpParserError):
        return err(codes.BG_E_INVALID_SERVER_RESPONSE, True)
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
    """The error for a failure reading or writing the local (temporary) file: fatal, LOCAL_FILE.

    A file that is not found because its folder is gone is ERROR_PATH_NOT_FOUND, as Windows
    reports it (and as ``add_file`` does for a folder that does not exist).
    """
    number = exc.errno or 0
    if number == errno.ENOENT and not os.path.isdir(os.path.dirname(local_name)):
        number = errno.ENOTDIR  # hresult_from_errno: ERROR_PATH_NOT_FOUND
    code = codes.hresult_from_errno(number)
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


# -- the upload protocol (MC-BUP; docs/uploads.md) --------------------------------------------

# BITS-Error-Context values (MC-BUP §2.2.1.2): the server, and the server application.
BITS_CONTEXT_SERVER = 0x5
BITS_CONTEXT_SERVER_APPLICATION = 0x7
# Codes an upload server sends that no retry can cure (bits-upload-protocol §2.2: "Fatal").
_FATAL_UPLOAD_CODES = frozenset({codes.BG_E_TOO_LARGE, codes.BG_E_SERVER_EXECUTE_ENABLE})


def _hex_number(value: str | None) -> int | None:
    """A header's hexadecimal number: ``0x80070057``, ``x8020001F`` (the spec's tables) or
    ``80070057``; None if absent or unreadable."""
    if value is None:
        return None
    text = value.strip().lower()
    text = text.removeprefix("0x").removeprefix("x")
    if not text or len(text) > 8:
        return None
    try:
        return int(text, 16)
    except ValueError:
        return None


def parse_bits_error(headers: Mapping[str, str]) -> tuple[int | None, int | None]:
    """The ``(code, context)`` an upload Ack carries: ``BITS-Error-Code`` (or MC-BUP's spelling
    ``BITS-Error``) and ``BITS-Error-Context``, each None when absent or unreadable."""
    code = _hex_number(headers.get("BITS-Error-Code") or headers.get("BITS-Error"))
    return code, _hex_number(headers.get("BITS-Error-Context"))


def from_upload_ack(
    status: int, headers: Mapping[str, str], *, url: str, now_wall: float, packet: str
) -> TransferError:
    """The error for the Ack of an upload packet (``packet``: "Ping", "Create-Session",
    "Fragment", "Close-Session" or "Cancel-Session") that reports a failure."""
    code, context = parse_bits_error(headers)
    try:
        status_code = codes.http_error(status)
    except ValueError:
        status_code = codes.BG_E_INVALID_SERVER_RESPONSE
    hresult = code if code is not None and codes.is_failure(code) else status_code
    application = context == BITS_CONTEXT_SERVER_APPLICATION
    if packet in ("Close-Session", "Cancel-Session"):
        transient = 500 <= status < 600 and hresult != codes.BG_E_SESSION_NOT_FOUND
    elif hresult in _FATAL_UPLOAD_CODES:
        transient = False
    else:
        transient = is_transient_status(status)
    where = "the server application" if application else "the server"
    detail = f"{packet} answered HTTP {status} by {where}"
    if code is not None:
        detail += f", BITS-Error-Code 0x{code:08X}"
    return TransferError(
        hresult,
        ErrorContext.REMOTE_APPLICATION if application else ErrorContext.REMOTE_FILE,
        transient=transient,
        message=f"{codes.describe(hresult)} ({detail}) URL: {url}",
        retry_after=parse_retry_after(headers.get("Retry-After"), now_wall=now_wall),
        protocol=_protocol(url),
    )


def protocol_mismatch(url: str, detail: str) -> TransferError:
    """The error for a server that does not speak the BITS upload protocol: fatal."""
    code = codes.BG_E_CLIENT_SERVER_PROTOCOL_MISMATCH
    return TransferError(
        code,
        ErrorContext.REMOTE_FILE,
        transient=False,
        message=f"{codes.describe(code)} ({detail}) URL: {url}",
        protocol=_protocol(url),
    )


def invalid_upload_ack(url: str, detail: str, *, transient: bool = True) -> TransferError:
    """The error for an upload Ack that breaks the protocol: transient by default (a proxy or a
    server in trouble may answer better next time; the no-progress timeout bounds the retries),
    fatal for what the server would repeat (a reply URL that is not HTTP)."""
    code = codes.BG_E_INVALID_SERVER_RESPONSE
    return TransferError(
        code,
        ErrorContext.REMOTE_FILE,
        transient=transient,
        message=f"{codes.describe(code)} ({detail}) URL: {url}",
        protocol=_protocol(url),
    )


def local_file_changed(path: str, detail: str) -> TransferError:
    """The error for an upload source that changed after the first Resume: fatal, LOCAL_FILE."""
    code = codes.BG_E_LOCAL_FILE_CHANGED
    return TransferError(
        code,
        ErrorContext.LOCAL_FILE,
        transient=False,
        message=f"{codes.describe(code)} ({detail}; file {path})",
    )
