"""Unit tests for the one classification boundary (bitsd._transfer.classify): HTTP statuses,
Retry-After, local OS errors and network exceptions (bits-inventory §3.3)."""

from __future__ import annotations

import email.utils
import errno
import ssl

import aiohttp
import pytest
from aiohttp.client_reqrep import ConnectionKey
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from bitsd import codes
from bitsd._enums import ErrorContext
from bitsd._errors import TransferError
from bitsd._transfer.classify import (
    MAX_RETRY_AFTER,
    from_http_status,
    from_local_os_error,
    from_network_exception,
    from_source_os_error,
    is_transient_status,
    parse_retry_after,
)

NOW_WALL = 1_800_000_000.0  # a fixed "now" on the wall clock
URL_HTTP = "http://example.test/file.bin"
URL_HTTPS = "https://example.test/file.bin"

# bits-inventory §3.3, written out by hand: the codes that are fatal in each class.
FATAL_3XX = {300, 301, 302, 303, 304, 305, 307}  # all other 3xx are transient
TRANSIENT_4XX = {408, 409, 429}  # 429 is bitsd's addition; all other 4xx are fatal
FATAL_5XX = {501, 505}  # all other 5xx are transient


def expected_transient(status: int) -> bool:
    """The inventory's table for one status."""
    if 300 <= status <= 399:
        return status not in FATAL_3XX
    if 400 <= status <= 499:
        return status in TRANSIENT_4XX
    if 500 <= status <= 599:
        return status not in FATAL_5XX
    return True


def test_transient_table_over_the_whole_300_to_599_range() -> None:
    """is_transient_status matches the BITS table for every status from 300 to 599."""
    expected = {status: expected_transient(status) for status in range(300, 600)}
    actual = {status: is_transient_status(status) for status in range(300, 600)}
    assert expected == actual


@pytest.mark.parametrize(
    ("status", "transient"),
    [
        (300, False),
        (304, False),
        (305, False),
        (306, True),
        (307, False),
        (308, True),
        (400, False),
        (401, False),
        (403, False),
        (404, False),
        (407, False),
        (408, True),
        (409, True),
        (410, False),
        (416, False),
        (429, True),
        (500, True),
        (501, False),
        (502, True),
        (503, True),
        (504, True),
        (505, False),
        (599, True),
    ],
)
def test_transient_status_spot_checks(status: int, transient: bool) -> None:
    """The codes the inventory names explicitly land on the documented side."""
    assert transient == is_transient_status(status)


@pytest.mark.parametrize("status", [100, 200, 299, 600, 999])
def test_statuses_outside_the_error_classes_are_transient(status: int) -> None:
    """Any other code is transient (the table's last row)."""
    assert is_transient_status(status) is True


# --- from_http_status ---------------------------------------------------------------------------


@pytest.mark.parametrize("status", [301, 403, 404, 408, 416, 429, 500, 501, 503, 505])
def test_http_status_error_fields(status: int) -> None:
    """An HTTP error is http_error(status) in REMOTE_FILE, transient per the table."""
    err = from_http_status(status, {}, url=URL_HTTPS, now_wall=NOW_WALL)
    assert isinstance(err, TransferError)
    expected = (codes.http_error(status), ErrorContext.REMOTE_FILE, expected_transient(status))
    assert expected == (err.hresult, err.context, err.transient)
    assert 0x80190000 + status == err.hresult
    assert err.protocol == "https"
    assert err.retry_after is None
    assert URL_HTTPS in err.message


def test_http_404_is_bg_e_http_error_404() -> None:
    """404 gives BG_E_HTTP_ERROR_404 (0x80190194), fatal."""
    err = from_http_status(404, {}, url=URL_HTTP, now_wall=NOW_WALL)
    assert (err.hresult, err.transient, err.protocol) == (0x80190194, False, "http")


@pytest.mark.parametrize("status", [99, 600, 999])
def test_status_outside_http_range_is_invalid_server_response(status: int) -> None:
    """A status outside 100..599 is BG_E_INVALID_SERVER_RESPONSE, transient."""
    err = from_http_status(status, {}, url=URL_HTTP, now_wall=NOW_WALL)
    assert (
        err.hresult,
        err.context,
        err.transient,
    ) == (codes.BG_E_INVALID_SERVER_RESPONSE, ErrorContext.REMOTE_FILE, True)


def _http_date(seconds_from_now: float) -> str:
    return email.utils.formatdate(NOW_WALL + seconds_from_now, usegmt=True)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("120", 120.0),
        ("0", 0.0),
        ("  30  ", 30.0),
        ("86400", MAX_RETRY_AFTER),
        ("86401", MAX_RETRY_AFTER),
        ("99999999999", MAX_RETRY_AFTER),
        (_http_date(90), 90.0),
        (_http_date(3600), 3600.0),
        (_http_date(10 * 86_400), MAX_RETRY_AFTER),
        (_http_date(-60), 0.0),
        (_http_date(0), 0.0),
        ("garbage", None),
        ("1.5", None),
        ("-5", None),
        ("", None),
        ("Wed, 99 Foo 2027 25:61:61 GMT", None),
    ],
)
def test_retry_after_is_parsed_in_both_forms(header: str, expected: float | None) -> None:
    """Retry-After as delta-seconds or an HTTP date; capped; past dates are 0; garbage is None."""
    err = from_http_status(503, {"Retry-After": header}, url=URL_HTTP, now_wall=NOW_WALL)
    assert expected == err.retry_after
    assert expected == parse_retry_after(header, now_wall=NOW_WALL)


def test_retry_after_cap_is_one_day() -> None:
    """MAX_RETRY_AFTER is 86,400 seconds."""
    assert MAX_RETRY_AFTER == 86_400.0


def test_retry_after_absent_is_none() -> None:
    """No Retry-After value gives None."""
    assert parse_retry_after(None, now_wall=NOW_WALL) is None


def test_retry_after_date_without_zone_is_ignored() -> None:
    """An HTTP date with an unknown (-0000) zone is not trusted: None."""
    value = "Fri, 15 Jan 2027 08:00:00 -0000"
    assert parse_retry_after(value, now_wall=NOW_WALL) is None


# --- local and source OS errors -----------------------------------------------------------------


def test_disk_full_is_fatal_local_file_error() -> None:
    """ENOSPC writing the temporary file is fatal, LOCAL_FILE, HRESULT_FROM_WIN32(DISK_FULL)."""
    exc = OSError(errno.ENOSPC, "No space left on device")
    err = from_local_os_error(exc, local_name="/srv/file.bin")
    assert (err.hresult, err.context, err.transient) == (0x80070070, ErrorContext.LOCAL_FILE, False)
    assert "/srv/file.bin" in err.message


@pytest.mark.parametrize(
    ("err_no", "expected_code"),
    [
        (errno.EACCES, codes.E_ACCESSDENIED),
        (errno.EROFS, codes.HRESULT_FROM_WIN32(19)),  # ERROR_WRITE_PROTECT
        (errno.EIO, codes.HRESULT_FROM_WIN32(1117)),  # ERROR_IO_DEVICE
    ],
)
def test_local_errors_are_always_fatal(err_no: int, expected_code: int) -> None:
    """Every local file failure is fatal in LOCAL_FILE, with the errno's Win32 code."""
    err = from_local_os_error(OSError(err_no, "x"), local_name="/srv/f")
    assert (expected_code, ErrorContext.LOCAL_FILE, False) == (
        err.hresult,
        err.context,
        err.transient,
    )


@pytest.mark.parametrize(
    ("err_no", "transient"),
    [
        (errno.EIO, True),
        (errno.EAGAIN, True),
        (errno.ETIMEDOUT, True),
        (errno.ESTALE, True),
        (errno.ENOENT, False),
        (errno.EACCES, False),
    ],
)
def test_source_os_errors(err_no: int, transient: bool) -> None:
    """Reading a file:// source: REMOTE_FILE; I/O errors transient, the others fatal."""
    err = from_source_os_error(OSError(err_no, "x"), url="file:///srv/src.bin")
    assert (ErrorContext.REMOTE_FILE, transient, "file") == (
        err.context,
        err.transient,
        err.protocol,
    )
    assert codes.hresult_from_errno(err_no) == err.hresult


# --- network exceptions -------------------------------------------------------------------------


def _key() -> ConnectionKey:
    return ConnectionKey("example.test", 443, True, True, None, None, None, None)


def _request_info() -> aiohttp.RequestInfo:
    url = URL(URL_HTTP)
    return aiohttp.RequestInfo(url, "GET", CIMultiDictProxy(CIMultiDict()), url)


TRANSIENT_NETWORK: list[tuple[str, BaseException, int]] = [
    ("server disconnected", aiohttp.ServerDisconnectedError(), codes.BG_E_CONNECTION_CLOSED),
    ("payload error", aiohttp.ClientPayloadError("x"), codes.BG_E_CONNECTION_CLOSED),
    ("asyncio timeout", TimeoutError(), codes.BG_E_TIMEOUT),
    ("builtin timeout", TimeoutError(), codes.BG_E_TIMEOUT),
    ("server timeout", aiohttp.ServerTimeoutError("read"), codes.BG_E_TIMEOUT),
    (
        "connection refused",
        aiohttp.ClientConnectorError(_key(), ConnectionRefusedError(errno.ECONNREFUSED, "no")),
        codes.BG_E_CONNECT_FAILURE,
    ),
    (
        "name not resolved",
        aiohttp.ClientConnectorDNSError(_key(), OSError(-2, "Name or service not known")),
        codes.BG_E_NAME_RESOLUTION_FAILURE,
    ),
    (
        "connection reset",
        ConnectionResetError(errno.ECONNRESET, "reset"),
        codes.BG_E_RECEIVE_FAILURE,
    ),
    ("client os error", aiohttp.ClientOSError(errno.EPIPE, "pipe"), codes.BG_E_RECEIVE_FAILURE),
    ("tls failure", ssl.SSLError(1, "handshake"), codes.BG_E_SECURE_CHANNEL_FAILURE),
    ("other client error", aiohttp.ClientError("odd"), codes.BG_E_UNKNOWN_ERROR),
    ("anything else", RuntimeError("boom"), codes.BG_E_UNKNOWN_ERROR),
]


@pytest.mark.parametrize(
    ("exc", "expected_code"),
    [(exc, code) for _, exc, code in TRANSIENT_NETWORK],
    ids=[name for name, _, _ in TRANSIENT_NETWORK],
)
def test_network_failures_are_transient_transport_errors(
    exc: BaseException, expected_code: int
) -> None:
    """Connection failures are transient in GENERAL_TRANSPORT with the matching BG_E_* code."""
    err = from_network_exception(exc, url=URL_HTTPS)
    assert (expected_code, ErrorContext.GENERAL_TRANSPORT, True) == (
        err.hresult,
        err.context,
        err.transient,
    )
    assert err.protocol == "https"
    assert err.message


@pytest.mark.parametrize(
    "exc",
    [
        ssl.SSLCertVerificationError("certificate verify failed"),
        aiohttp.ClientConnectorCertificateError(
            _key(), ssl.SSLCertVerificationError("certificate verify failed")
        ),
    ],
    ids=["ssl", "aiohttp"],
)
def test_untrusted_certificate_is_fatal(exc: BaseException) -> None:
    """An untrusted server certificate is BG_E_TRUST_FAILURE and fatal."""
    err = from_network_exception(exc, url=URL_HTTPS)
    assert (
        err.hresult,
        err.context,
        err.transient,
    ) == (codes.BG_E_TRUST_FAILURE, ErrorContext.GENERAL_TRANSPORT, False)


def test_too_many_redirects_is_fatal_redirect_failed() -> None:
    """Too many redirects is HRESULT_FROM_WIN32(ERROR_HTTP_REDIRECT_FAILED), fatal, REMOTE_FILE."""
    exc = aiohttp.TooManyRedirects(_request_info(), (), status=302, message="too many")
    err = from_network_exception(exc, url=URL_HTTP)
    assert (codes.HRESULT_FROM_WIN32(12156), ErrorContext.REMOTE_FILE, False) == (
        err.hresult,
        err.context,
        err.transient,
    )


def test_invalid_url_is_fatal_invalid_argument() -> None:
    """A URL aiohttp cannot use is E_INVALIDARG, fatal, REMOTE_FILE."""
    err = from_network_exception(aiohttp.InvalidURL("nope"), url=URL_HTTP)
    assert (
        err.hresult,
        err.context,
        err.transient,
    ) == (codes.E_INVALIDARG, ErrorContext.REMOTE_FILE, False)


def test_bad_response_is_transient_invalid_server_response() -> None:
    """A malformed response is BG_E_INVALID_SERVER_RESPONSE, transient."""
    exc = aiohttp.ClientResponseError(_request_info(), (), status=400, message="bad")
    err = from_network_exception(exc, url=URL_HTTP)
    assert (err.hresult, err.transient) == (codes.BG_E_INVALID_SERVER_RESPONSE, True)
