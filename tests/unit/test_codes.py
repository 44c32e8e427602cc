"""Tests for bitsd.codes: BITS HRESULT values, names, descriptions and the helpers around them."""

from __future__ import annotations

import errno
from http import HTTPStatus

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bitsd import codes

# (name, value) pairs copied from the inventory, §3.1 and §3.2, spread over every range.
INVENTORY_CODES: list[tuple[str, int]] = [
    ("S_OK", 0x00000000),
    ("S_FALSE", 0x00000001),
    ("BG_S_ERROR_CONTEXT_NONE", 0x00200006),
    ("BG_S_PARTIAL_COMPLETE", 0x00200017),
    ("BG_S_UNABLE_TO_DELETE_FILES", 0x0020001A),
    ("BG_S_PROXY_CHANGED", 0x0020002A),
    ("BG_S_OVERRIDDEN_BY_POLICY", 0x00200055),
    ("BG_E_NOT_FOUND", 0x80200001),
    ("BG_E_INVALID_STATE", 0x80200002),
    ("BG_E_EMPTY", 0x80200003),
    ("BG_E_PROTOCOL_NOT_AVAILABLE", 0x80200005),
    ("BG_E_ERROR_CONTEXT_UNKNOWN", 0x80200007),
    ("BG_E_ERROR_CONTEXT_QUEUE_MANAGER_NOTIFICATION", 0x8020000C),
    ("BG_E_ERROR_INFORMATION_UNAVAILABLE", 0x8020000F),
    ("BG_E_MISSING_FILE_SIZE", 0x80200011),
    ("BG_E_INSUFFICIENT_RANGE_SUPPORT", 0x80200013),
    ("BG_E_LOCAL_FILE_CHANGED", 0x8020001D),
    ("BG_E_ERROR_CONTEXT_REMOTE_APPLICATION", 0x8020001E),
    ("BG_E_TOO_LARGE", 0x80200020),
    ("BG_E_STRING_TOO_LONG", 0x80200021),
    ("BG_E_SERVER_EXECUTE_ENABLE", 0x80200023),
    ("BG_E_SERVER_EXECUTE_ENABLED", 0x80200023),
    ("BG_E_INVALID_AUTH_TARGET", 0x80200027),
    ("BG_E_INVALID_AUTH_SCHEME", 0x80200028),
    ("BG_E_FILE_NOT_FOUND", 0x80200029),
    ("BG_E_OVERLAPPING_RANGES", 0x8020002C),
    ("BG_E_CONNECT_FAILURE", 0x8020002D),
    ("BG_E_PENDING", 0x80200032),
    ("BG_E_TIMEOUT", 0x8020003B),
    ("BG_E_UNKNOWN_ERROR", 0x8020003D),
    ("BG_E_INVALID_CREDENTIALS", 0x80200040),
    ("BG_E_INVALID_HASH_ALGORITHM", 0x80200041),
    ("BG_E_RECORD_DELETED", 0x80200042),
    ("BG_E_BUSYCACHERECORD", 0x80200048),
    ("BG_E_TOO_MANY_JOBS_PER_USER", 0x80200049),
    ("BG_E_TOO_MANY_JOBS_PER_MACHINE", 0x80200050),
    ("BG_E_TOO_MANY_FILES_IN_JOB", 0x80200051),
    ("BG_E_TOKEN_REQUIRED", 0x80200056),
    ("BG_E_PROPERTY_SUPPORTED_FOR_DOWNLOAD_JOBS_ONLY", 0x80200060),
    ("BG_E_MAX_DOWNLOAD_SIZE_LIMIT_REACHED", 0x80200064),
    ("BG_E_STANDBY_MODE", 0x80200065),
    ("BG_E_DATABASE_CORRUPT", 0x8020006C),
    ("BG_E_RANDOM_ACCESS_NOT_SUPPORTED", 0x8020006D),
    ("BG_E_BLOCKED_BY_SYSTEM_POLICY", 0x80200070),
    ("BG_E_REMOTE_FILE_CHANGED", 0x80200073),
    ("BG_E_SERVER_CERT_VALIDATION_INTERFACE_REQUIRED", 0x80200074),
    ("BG_E_READ_ONLY_WHEN_JOB_ACTIVE", 0x80200075),
    ("BG_E_ERROR_CONTEXT_SERVER_CERTIFICATE_CALLBACK", 0x80200076),
    ("BG_E_HTTP_ERROR_100", 0x80190064),
    ("BG_E_HTTP_ERROR_206", 0x801900CE),
    ("BG_E_HTTP_ERROR_307", 0x80190133),
    ("BG_E_HTTP_ERROR_404", 0x80190194),
    ("BG_E_HTTP_ERROR_416", 0x801901A0),
    ("BG_E_HTTP_ERROR_449", 0x801901C1),
    ("BG_E_HTTP_ERROR_505", 0x801901F9),
    ("BITS_MC_JOB_CANCELLED", 0x80194000),
    ("BITS_MC_WSD_PORT", 0x8019400B),
    ("E_NOTIMPL", 0x80004001),
    ("E_FAIL", 0x80004005),
    ("E_PENDING", 0x8000000A),
    ("E_UNEXPECTED", 0x8000FFFF),
    ("E_ACCESSDENIED", 0x80070005),
    ("E_OUTOFMEMORY", 0x8007000E),
    ("E_INVALIDARG", 0x80070057),
]

# The HTTP statuses bitsmsg.h names (inventory §3.2).
NAMED_HTTP_STATUSES: list[int] = [
    100,
    101,
    *range(200, 207),
    *range(300, 306),
    307,
    *range(400, 418),
    449,
    *range(500, 506),
]

# Names that share a value with a canonical name on purpose (inventory §3.2).
DOCUMENTED_ALIASES: dict[str, str] = {"BG_E_SERVER_EXECUTE_ENABLED": "BG_E_SERVER_EXECUTE_ENABLE"}

CODE_PREFIXES = ("BG_", "BITS_MC_", "E_", "S_")


def _module_codes() -> dict[str, int]:
    return {
        name: value
        for name, value in vars(codes).items()
        if name.startswith(CODE_PREFIXES) and isinstance(value, int)
    }


@pytest.mark.parametrize(("name", "value"), INVENTORY_CODES)
def test_code_values_match_inventory(name: str, value: int) -> None:
    """Pins each representative constant to the exact hex value in the inventory."""
    assert getattr(codes, name) == value


def test_sizes_are_uint64_minus_one() -> None:
    """Pins BG_SIZE_UNKNOWN / BG_LENGTH_TO_EOF to (UINT64)-1 and keeps them out of name_of."""
    assert codes.SIZE_UNKNOWN == 0xFFFFFFFFFFFFFFFF
    assert codes.LENGTH_TO_EOF == 0xFFFFFFFFFFFFFFFF
    assert codes.name_of(0xFFFFFFFFFFFFFFFF) == "0xFFFFFFFFFFFFFFFF"


def test_transport_range_is_contiguous_in_listed_order() -> None:
    """Pins 0x8020002D..0x8020003D to the transport names in the order bitsmsg.h gives."""
    names = [
        "BG_E_CONNECT_FAILURE",
        "BG_E_CONNECTION_CLOSED",
        "BG_E_KEEP_ALIVE_FAILURE",
        "BG_E_MESSAGE_LENGTH_LIMIT_EXCEEDED",
        "BG_E_NAME_RESOLUTION_FAILURE",
        "BG_E_PENDING",
        "BG_E_PIPELINE_FAILURE",
        "BG_E_PROTOCOL_ERROR",
        "BG_E_PROXY_NAME_RESOLUTION_FAILURE",
        "BG_E_RECEIVE_FAILURE",
        "BG_E_REQUEST_CANCELED",
        "BG_E_SECURE_CHANNEL_FAILURE",
        "BG_E_SEND_FAILURE",
        "BG_E_SERVER_PROTOCOL_VIOLATION",
        "BG_E_TIMEOUT",
        "BG_E_TRUST_FAILURE",
        "BG_E_UNKNOWN_ERROR",
    ]
    assert [getattr(codes, n) for n in names] == list(range(0x8020002D, 0x8020003E))


def test_http_error_values() -> None:
    """Pins http_error to 0x80190000 + status (404 -> 0x80190194, 416 -> 0x801901A0)."""
    assert codes.http_error(404) == 0x80190194
    assert codes.http_error(416) == 0x801901A0
    assert codes.http_error(100) == 0x80190064
    assert codes.http_error(599) == 0x80190257


@pytest.mark.parametrize("status", [-1, 0, 99, 600, 1000])
def test_http_error_rejects_out_of_range_status(status: int) -> None:
    """Pins that http_error only accepts statuses 100..599."""
    with pytest.raises(ValueError, match="HTTP status"):
        codes.http_error(status)


@pytest.mark.parametrize("status", NAMED_HTTP_STATUSES)
def test_named_http_constants_exist_and_match(status: int) -> None:
    """Pins a BG_E_HTTP_ERROR_nnn constant for every status the inventory lists."""
    value = getattr(codes, f"BG_E_HTTP_ERROR_{status}")
    assert value == codes.http_error(status)
    assert codes.name_of(value) == f"BG_E_HTTP_ERROR_{status}"


def test_http_status_of_round_trips() -> None:
    """Pins http_status_of as the inverse of http_error over 100..599, and None elsewhere."""
    for status in range(100, 600):
        assert codes.http_status_of(codes.http_error(status)) == status
    assert codes.http_status_of(0x80190063) is None
    assert codes.http_status_of(0x80190258) is None
    assert codes.http_status_of(codes.BITS_MC_JOB_CANCELLED) is None
    assert codes.http_status_of(codes.BG_E_NOT_FOUND) is None
    assert codes.http_status_of(codes.S_OK) is None
    # The signed form of 0x80190194 is the same code.
    assert codes.http_status_of(0x80190194 - 0x1_0000_0000) == 404


def test_no_two_canonical_names_share_a_value() -> None:
    """Pins that distinct code names have distinct values, except the documented aliases."""
    seen: dict[int, str] = {}
    for name, value in _module_codes().items():
        if name in DOCUMENTED_ALIASES:
            assert value == getattr(codes, DOCUMENTED_ALIASES[name])
            continue
        assert value not in seen, f"{name} and {seen.get(value)} share {value:#010x}"
        seen[value] = name


def test_all_lists_every_public_name_sorted() -> None:
    """Pins __all__ as the sorted list of every public constant and function."""
    public = {name for name in vars(codes) if not name.startswith("_")}
    public -= {"annotations", "errno", "HTTPStatus", "Final"}
    assert codes.__all__ == sorted(codes.__all__)
    assert set(codes.__all__) == public


def test_every_code_is_a_32_bit_value() -> None:
    """Pins every code constant inside the unsigned 32-bit range (no signed forms)."""
    for name, value in _module_codes().items():
        assert 0 <= value <= 0xFFFFFFFF, name


@pytest.mark.parametrize(
    ("value", "name"),
    [
        (0, "S_OK"),
        (1, "S_FALSE"),
        (0x80190194, "BG_E_HTTP_ERROR_404"),
        (0x80200001, "BG_E_NOT_FOUND"),
        (0x80200023, "BG_E_SERVER_EXECUTE_ENABLE"),
        (0x00200017, "BG_S_PARTIAL_COMPLETE"),
        (0x80070005, "E_ACCESSDENIED"),
        (0x80070057, "E_INVALIDARG"),
        (-2147024809, "E_INVALIDARG"),
        (0x80070070, "HRESULT_FROM_WIN32(ERROR_DISK_FULL)"),
        (0x80070002, "HRESULT_FROM_WIN32(ERROR_FILE_NOT_FOUND)"),
        (0x80123456, "0x80123456"),
        (0x801901A2, "0x801901A2"),  # HTTP 418: a valid code, but bitsmsg.h has no name for it
    ],
)
def test_name_of(value: int, name: str) -> None:
    """Pins name_of for BITS, COM, HTTP, Win32-mapped, signed and unknown codes."""
    assert codes.name_of(value) == name


def test_name_of_every_module_code_is_its_canonical_name() -> None:
    """Pins that name_of gives back each constant's own name (aliases give the canonical one)."""
    for name, value in _module_codes().items():
        assert codes.name_of(value) == DOCUMENTED_ALIASES.get(name, name)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (codes.S_OK, "The operation completed successfully."),
        (codes.E_FAIL, "Unspecified error."),
        (codes.E_NOTIMPL, "Not implemented."),
        (codes.E_INVALIDARG, "One or more arguments are invalid."),
        (codes.E_ACCESSDENIED, "Access is denied."),
        (codes.BG_E_NOT_FOUND, "The requested job was not found."),
        (
            codes.BG_E_INVALID_STATE,
            "The requested action is not allowed in the current job state.",
        ),
        (0x80070070, "There is not enough space on the disk."),
        (0x801901A0, f"The server returned HTTP status 416 ({HTTPStatus(416).phrase})."),
        (0x801901F3, "The server returned HTTP status 499."),
        (0x80123456, "Unknown error 0x80123456."),
    ],
)
def test_describe(value: int, text: str) -> None:
    """Pins describe for COM, BITS, Win32-mapped, HTTP and unknown codes."""
    assert codes.describe(value) == text


@pytest.mark.parametrize("status", [400, 401, 404, 407, 414, 501, 503, 504, 505])
def test_describe_http_uses_inventory_special_texts(status: int) -> None:
    """Pins the extra explanation for the HTTP statuses Microsoft's page documents."""
    text = codes.describe(codes.http_error(status))
    assert text.startswith(f"The server returned HTTP status {status} (")
    assert "): " in text
    assert text.endswith(".")


def test_describe_404_mentions_iis_upload_causes() -> None:
    """Pins the inventory's 404 text: missing URL or, on IIS 7, uploads disabled / too large."""
    text = codes.describe(codes.BG_E_HTTP_ERROR_404)
    assert "does not exist" in text
    assert "BITSMaximumUploadSize" in text


def test_describe_named_code_without_text_names_it() -> None:
    """Pins that a BITS code the inventory gives no text for is still described by its name."""
    text = codes.describe(codes.BG_E_REMOTE_FILE_CHANGED)
    assert "BG_E_REMOTE_FILE_CHANGED" in text
    assert "0x80200073" in text


@pytest.mark.parametrize(
    ("err", "hresult"),
    [
        (errno.ENOSPC, 0x80070070),
        (errno.EDQUOT, 0x80070070),
        (errno.EACCES, 0x80070005),
        (errno.EPERM, 0x80070005),
        (errno.ENOENT, 0x80070002),
        (errno.ENOTDIR, 0x80070003),
        (errno.EROFS, 0x80070013),
        (errno.EEXIST, 0x80070050),
        (errno.EISDIR, 0x8007010B),
        (errno.ENAMETOOLONG, 0x800700CE),
        (errno.EMFILE, 0x80070004),
        (errno.ENOMEM, 0x80070008),
        (errno.EIO, 0x8007045D),
        (errno.EBUSY, 0x800700AA),
        (errno.ELOOP, 0x80070781),
        (errno.EXDEV, 0x80070011),
        (errno.EINVAL, 0x80070057),
        (errno.ECONNRESET, codes.E_FAIL),
        (0, codes.E_FAIL),
        (99999, codes.E_FAIL),
    ],
)
def test_hresult_from_errno(err: int, hresult: int) -> None:
    """Pins the errno -> HRESULT_FROM_WIN32(Win32 code) table; unknown errno -> E_FAIL."""
    assert codes.hresult_from_errno(err) == hresult


def test_every_mapped_errno_has_a_win32_name_and_text() -> None:
    """Pins that every errno the table maps is named and described as a Win32 code."""
    for err in (errno.ENOSPC, errno.EIO, errno.ELOOP, errno.EISDIR):
        hresult = codes.hresult_from_errno(err)
        assert codes.name_of(hresult).startswith("HRESULT_FROM_WIN32(ERROR_")
        assert not codes.describe(hresult).startswith("Unknown error")


def test_hresult_from_win32() -> None:
    """Pins HRESULT_FROM_WIN32: 0 -> 0, positive -> 0x8007xxxx, failure HRESULTs unchanged."""
    assert codes.HRESULT_FROM_WIN32(0) == 0
    assert codes.HRESULT_FROM_WIN32(5) == 0x80070005
    assert codes.HRESULT_FROM_WIN32(112) == 0x80070070
    assert codes.HRESULT_FROM_WIN32(0x80200001) == 0x80200001
    assert codes.HRESULT_FROM_WIN32(-2147024809) == 0x80070057


@pytest.mark.parametrize(
    ("value", "success"),
    [
        (codes.S_OK, True),
        (codes.S_FALSE, True),
        (codes.BG_S_PARTIAL_COMPLETE, True),
        (codes.E_FAIL, False),
        (codes.BG_E_NOT_FOUND, False),
        (-2147024809, False),
        (-1, False),
    ],
)
def test_is_success_and_is_failure(value: int, success: bool) -> None:
    """Pins the severity-bit test, with negative ints read as signed 32-bit failures."""
    assert codes.is_success(value) is success
    assert codes.is_failure(value) is not success


@pytest.mark.parametrize(
    ("value", "unsigned"),
    [
        (-2147024809, 0x80070057),
        (-1, 0xFFFFFFFF),
        (-0x80000000, 0x80000000),
        (0, 0),
        (0x80200001, 0x80200001),
        (-0x80000001, -0x80000001),  # not a signed 32-bit value: left alone
    ],
)
def test_to_unsigned(value: int, unsigned: int) -> None:
    """Pins to_unsigned on signed 32-bit negatives, and that it leaves other values alone."""
    assert codes.to_unsigned(value) == unsigned


@given(st.integers(min_value=0, max_value=0xFFFFFFFF))
def test_name_of_and_describe_never_fail(value: int) -> None:
    """Pins that name_of and describe accept any 32-bit value and return non-empty text."""
    assert codes.name_of(value)
    text = codes.describe(value)
    assert text
    assert text.endswith(".")
    signed = value - 0x1_0000_0000 if value & 0x80000000 else value
    assert codes.name_of(signed) == codes.name_of(value)
    assert codes.describe(signed) == text
