"""BITS result codes (HRESULTs) by their BITS names, and helpers to build, name and describe them.

Rules:
- Every constant has the exact name and value Microsoft gives it in bitsmsg.h (the mingw-w64
  copy) or in win32metadata, so a number that crosses a process or language boundary means
  what it means on Windows. Nothing here invents a code.
- Values are unsigned 32-bit ints (``0x80200001``, never ``-2145386495``). Every helper that
  takes an HRESULT also accepts the signed form that comes out of C, ctypes or .NET and treats
  it as the same code.
- Success codes have the severity bit (0x80000000) clear; failures have it set.
- HTTP failures are ``0x80190000 + status`` (``http_error``); bitsmsg.h names only some statuses,
  and only those get a ``BG_E_HTTP_ERROR_nnn`` constant and name.
- OS failures are reported the way a Windows BITS client would see them: a Linux errno goes to
  the nearest Win32 error code, then through ``HRESULT_FROM_WIN32`` (``hresult_from_errno``).
- ``SIZE_UNKNOWN`` and ``LENGTH_TO_EOF`` are sizes, not codes: ``name_of`` never returns them.
- ``BG_E_SERVER_EXECUTE_ENABLED`` is the documentation's spelling of the header's
  ``BG_E_SERVER_EXECUTE_ENABLE``; it is the only alias, and ``name_of`` gives the header name.
"""

from __future__ import annotations

import errno
from http import HTTPStatus
from typing import Final

__all__ = [
    "BG_E_APP_PACKAGE_NOT_FOUND",
    "BG_E_APP_PACKAGE_SCENARIO_NOT_SUPPORTED",
    "BG_E_BLOCKED_BY_BACKGROUND_ACCESS_POLICY",
    "BG_E_BLOCKED_BY_BATTERY_POLICY",
    "BG_E_BLOCKED_BY_BATTERY_SAVER",
    "BG_E_BLOCKED_BY_COST_TRANSFER_POLICY",
    "BG_E_BLOCKED_BY_GAME_MODE",
    "BG_E_BLOCKED_BY_POLICY",
    "BG_E_BLOCKED_BY_SYSTEM_POLICY",
    "BG_E_BUSYCACHERECORD",
    "BG_E_CLIENT_SERVER_PROTOCOL_MISMATCH",
    "BG_E_COMMIT_IN_PROGRESS",
    "BG_E_CONNECTION_CLOSED",
    "BG_E_CONNECT_FAILURE",
    "BG_E_DATABASE_CORRUPT",
    "BG_E_DESTINATION_LOCKED",
    "BG_E_DISCOVERY_IN_PROGRESS",
    "BG_E_EMPTY",
    "BG_E_ERROR_CONTEXT_GENERAL_QUEUE_MANAGER",
    "BG_E_ERROR_CONTEXT_GENERAL_TRANSPORT",
    "BG_E_ERROR_CONTEXT_LOCAL_FILE",
    "BG_E_ERROR_CONTEXT_QUEUE_MANAGER_NOTIFICATION",
    "BG_E_ERROR_CONTEXT_REMOTE_APPLICATION",
    "BG_E_ERROR_CONTEXT_REMOTE_FILE",
    "BG_E_ERROR_CONTEXT_SERVER_CERTIFICATE_CALLBACK",
    "BG_E_ERROR_CONTEXT_UNKNOWN",
    "BG_E_ERROR_INFORMATION_UNAVAILABLE",
    "BG_E_FILE_NOT_AVAILABLE",
    "BG_E_FILE_NOT_FOUND",
    "BG_E_HTTP_ERROR_100",
    "BG_E_HTTP_ERROR_101",
    "BG_E_HTTP_ERROR_200",
    "BG_E_HTTP_ERROR_201",
    "BG_E_HTTP_ERROR_202",
    "BG_E_HTTP_ERROR_203",
    "BG_E_HTTP_ERROR_204",
    "BG_E_HTTP_ERROR_205",
    "BG_E_HTTP_ERROR_206",
    "BG_E_HTTP_ERROR_300",
    "BG_E_HTTP_ERROR_301",
    "BG_E_HTTP_ERROR_302",
    "BG_E_HTTP_ERROR_303",
    "BG_E_HTTP_ERROR_304",
    "BG_E_HTTP_ERROR_305",
    "BG_E_HTTP_ERROR_307",
    "BG_E_HTTP_ERROR_400",
    "BG_E_HTTP_ERROR_401",
    "BG_E_HTTP_ERROR_402",
    "BG_E_HTTP_ERROR_403",
    "BG_E_HTTP_ERROR_404",
    "BG_E_HTTP_ERROR_405",
    "BG_E_HTTP_ERROR_406",
    "BG_E_HTTP_ERROR_407",
    "BG_E_HTTP_ERROR_408",
    "BG_E_HTTP_ERROR_409",
    "BG_E_HTTP_ERROR_410",
    "BG_E_HTTP_ERROR_411",
    "BG_E_HTTP_ERROR_412",
    "BG_E_HTTP_ERROR_413",
    "BG_E_HTTP_ERROR_414",
    "BG_E_HTTP_ERROR_415",
    "BG_E_HTTP_ERROR_416",
    "BG_E_HTTP_ERROR_417",
    "BG_E_HTTP_ERROR_449",
    "BG_E_HTTP_ERROR_500",
    "BG_E_HTTP_ERROR_501",
    "BG_E_HTTP_ERROR_502",
    "BG_E_HTTP_ERROR_503",
    "BG_E_HTTP_ERROR_504",
    "BG_E_HTTP_ERROR_505",
    "BG_E_INSUFFICIENT_HTTP_SUPPORT",
    "BG_E_INSUFFICIENT_RANGE_SUPPORT",
    "BG_E_INVALID_AUTH_SCHEME",
    "BG_E_INVALID_AUTH_TARGET",
    "BG_E_INVALID_CREDENTIALS",
    "BG_E_INVALID_HASH_ALGORITHM",
    "BG_E_INVALID_PROXY_INFO",
    "BG_E_INVALID_RANGE",
    "BG_E_INVALID_SERVER_RESPONSE",
    "BG_E_INVALID_STATE",
    "BG_E_KEEP_ALIVE_FAILURE",
    "BG_E_LOCAL_FILE_CHANGED",
    "BG_E_MAXDOWNLOAD_TIMEOUT",
    "BG_E_MAX_DOWNLOAD_SIZE_INVALID_VALUE",
    "BG_E_MAX_DOWNLOAD_SIZE_LIMIT_REACHED",
    "BG_E_MESSAGE_LENGTH_LIMIT_EXCEEDED",
    "BG_E_MISSING_FILE_SIZE",
    "BG_E_NAME_RESOLUTION_FAILURE",
    "BG_E_NETWORK_DISCONNECTED",
    "BG_E_NEW_OWNER_DIFF_MAPPING",
    "BG_E_NEW_OWNER_NO_FILE_ACCESS",
    "BG_E_NOT_FOUND",
    "BG_E_NOT_SUPPORTED_WITH_CUSTOM_HTTP_METHOD",
    "BG_E_NO_PROGRESS",
    "BG_E_OVERLAPPING_RANGES",
    "BG_E_PASSWORD_TOO_LARGE",
    "BG_E_PEERCACHING_DISABLED",
    "BG_E_PENDING",
    "BG_E_PIPELINE_FAILURE",
    "BG_E_PROPERTY_SUPPORTED_FOR_DOWNLOAD_JOBS_ONLY",
    "BG_E_PROTOCOL_ERROR",
    "BG_E_PROTOCOL_NOT_AVAILABLE",
    "BG_E_PROXY_BYPASS_LIST_TOO_LARGE",
    "BG_E_PROXY_LIST_TOO_LARGE",
    "BG_E_PROXY_NAME_RESOLUTION_FAILURE",
    "BG_E_RANDOM_ACCESS_NOT_SUPPORTED",
    "BG_E_READ_ONLY_PROPERTY",
    "BG_E_READ_ONLY_PROPERTY_AFTER_ADDFILE",
    "BG_E_READ_ONLY_PROPERTY_AFTER_RESUME",
    "BG_E_READ_ONLY_WHEN_JOB_ACTIVE",
    "BG_E_RECEIVE_FAILURE",
    "BG_E_RECORD_DELETED",
    "BG_E_REMOTE_FILE_CHANGED",
    "BG_E_REMOTE_NOT_SUPPORTED",
    "BG_E_REQUEST_CANCELED",
    "BG_E_SECURE_CHANNEL_FAILURE",
    "BG_E_SEND_FAILURE",
    "BG_E_SERVER_CERT_VALIDATION_INTERFACE_REQUIRED",
    "BG_E_SERVER_EXECUTE_ENABLE",
    "BG_E_SERVER_EXECUTE_ENABLED",
    "BG_E_SERVER_PROTOCOL_VIOLATION",
    "BG_E_SESSION_NOT_FOUND",
    "BG_E_STANDBY_MODE",
    "BG_E_STRING_TOO_LONG",
    "BG_E_TEST_OPTION_BLOCKED_DOWNLOAD",
    "BG_E_TIMEOUT",
    "BG_E_TOKEN_REQUIRED",
    "BG_E_TOO_LARGE",
    "BG_E_TOO_MANY_FILES",
    "BG_E_TOO_MANY_FILES_IN_JOB",
    "BG_E_TOO_MANY_JOBS_PER_MACHINE",
    "BG_E_TOO_MANY_JOBS_PER_USER",
    "BG_E_TOO_MANY_RANGES_IN_FILE",
    "BG_E_TRUST_FAILURE",
    "BG_E_UNKNOWN_ERROR",
    "BG_E_UNKNOWN_PROPERTY_ID",
    "BG_E_UNSUPPORTED_JOB_CONFIGURATION",
    "BG_E_UPNP_ERROR",
    "BG_E_USERNAME_TOO_LARGE",
    "BG_E_USE_STORED_CREDENTIALS_NOT_SUPPORTED",
    "BG_E_VALIDATION_FAILED",
    "BG_E_VOLUME_CHANGED",
    "BG_E_WATCHDOG_TIMEOUT",
    "BG_S_ERROR_CONTEXT_NONE",
    "BG_S_OVERRIDDEN_BY_POLICY",
    "BG_S_PARTIAL_COMPLETE",
    "BG_S_PROXY_CHANGED",
    "BG_S_UNABLE_TO_DELETE_FILES",
    "BITS_MC_FAILED_TO_START",
    "BITS_MC_FATAL_IGD_ERROR",
    "BITS_MC_FILE_DELETION_FAILED",
    "BITS_MC_FILE_DELETION_FAILED_MORE",
    "BITS_MC_JOB_CANCELLED",
    "BITS_MC_JOB_NOTIFICATION_FAILURE",
    "BITS_MC_JOB_PROPERTY_CHANGE",
    "BITS_MC_JOB_SCAVENGED",
    "BITS_MC_JOB_TAKE_OWNERSHIP",
    "BITS_MC_PEERCACHING_PORT",
    "BITS_MC_STATE_FILE_CORRUPT",
    "BITS_MC_WSD_PORT",
    "E_ACCESSDENIED",
    "E_FAIL",
    "E_INVALIDARG",
    "E_NOTIMPL",
    "E_OUTOFMEMORY",
    "E_PENDING",
    "E_UNEXPECTED",
    "HRESULT_FROM_WIN32",
    "LENGTH_TO_EOF",
    "SIZE_UNKNOWN",
    "S_FALSE",
    "S_OK",
    "describe",
    "hresult_from_errno",
    "http_error",
    "http_status_of",
    "is_failure",
    "is_success",
    "name_of",
    "to_unsigned",
]

# --- Generic COM results and sizes --------------------------------------------------------------

S_OK: Final[int] = 0
S_FALSE: Final[int] = 1

SIZE_UNKNOWN: Final[int] = 0xFFFFFFFFFFFFFFFF
"""BG_SIZE_UNKNOWN: (UINT64)-1, the size of a file whose size is not known yet."""
LENGTH_TO_EOF: Final[int] = 0xFFFFFFFFFFFFFFFF
"""BG_LENGTH_TO_EOF: a range length meaning "to the end of the file"."""

E_NOTIMPL: Final[int] = 0x80004001
E_FAIL: Final[int] = 0x80004005
E_PENDING: Final[int] = 0x8000000A
E_UNEXPECTED: Final[int] = 0x8000FFFF
E_ACCESSDENIED: Final[int] = 0x80070005
E_OUTOFMEMORY: Final[int] = 0x8007000E
E_INVALIDARG: Final[int] = 0x80070057

# --- BITS success codes -------------------------------------------------------------------------

BG_S_ERROR_CONTEXT_NONE: Final[int] = 0x00200006
BG_S_PARTIAL_COMPLETE: Final[int] = 0x00200017
BG_S_UNABLE_TO_DELETE_FILES: Final[int] = 0x0020001A
BG_S_PROXY_CHANGED: Final[int] = 0x0020002A
BG_S_OVERRIDDEN_BY_POLICY: Final[int] = 0x00200055

# --- BITS failure codes (facility 0x20) ---------------------------------------------------------

BG_E_NOT_FOUND: Final[int] = 0x80200001
BG_E_INVALID_STATE: Final[int] = 0x80200002
BG_E_EMPTY: Final[int] = 0x80200003
BG_E_FILE_NOT_AVAILABLE: Final[int] = 0x80200004
BG_E_PROTOCOL_NOT_AVAILABLE: Final[int] = 0x80200005
BG_E_ERROR_CONTEXT_UNKNOWN: Final[int] = 0x80200007
BG_E_ERROR_CONTEXT_GENERAL_QUEUE_MANAGER: Final[int] = 0x80200008
BG_E_ERROR_CONTEXT_LOCAL_FILE: Final[int] = 0x80200009
BG_E_ERROR_CONTEXT_REMOTE_FILE: Final[int] = 0x8020000A
BG_E_ERROR_CONTEXT_GENERAL_TRANSPORT: Final[int] = 0x8020000B
BG_E_ERROR_CONTEXT_QUEUE_MANAGER_NOTIFICATION: Final[int] = 0x8020000C
BG_E_DESTINATION_LOCKED: Final[int] = 0x8020000D
BG_E_VOLUME_CHANGED: Final[int] = 0x8020000E
BG_E_ERROR_INFORMATION_UNAVAILABLE: Final[int] = 0x8020000F
BG_E_NETWORK_DISCONNECTED: Final[int] = 0x80200010
BG_E_MISSING_FILE_SIZE: Final[int] = 0x80200011
BG_E_INSUFFICIENT_HTTP_SUPPORT: Final[int] = 0x80200012
BG_E_INSUFFICIENT_RANGE_SUPPORT: Final[int] = 0x80200013
BG_E_REMOTE_NOT_SUPPORTED: Final[int] = 0x80200014
BG_E_NEW_OWNER_DIFF_MAPPING: Final[int] = 0x80200015
BG_E_NEW_OWNER_NO_FILE_ACCESS: Final[int] = 0x80200016
BG_E_PROXY_LIST_TOO_LARGE: Final[int] = 0x80200018
BG_E_PROXY_BYPASS_LIST_TOO_LARGE: Final[int] = 0x80200019
BG_E_INVALID_SERVER_RESPONSE: Final[int] = 0x8020001B
BG_E_TOO_MANY_FILES: Final[int] = 0x8020001C
BG_E_LOCAL_FILE_CHANGED: Final[int] = 0x8020001D
BG_E_ERROR_CONTEXT_REMOTE_APPLICATION: Final[int] = 0x8020001E
BG_E_SESSION_NOT_FOUND: Final[int] = 0x8020001F
BG_E_TOO_LARGE: Final[int] = 0x80200020
BG_E_STRING_TOO_LONG: Final[int] = 0x80200021
BG_E_CLIENT_SERVER_PROTOCOL_MISMATCH: Final[int] = 0x80200022
BG_E_SERVER_EXECUTE_ENABLE: Final[int] = 0x80200023
BG_E_SERVER_EXECUTE_ENABLED: Final[int] = BG_E_SERVER_EXECUTE_ENABLE
"""The documentation's spelling of BG_E_SERVER_EXECUTE_ENABLE (the header's name)."""
BG_E_NO_PROGRESS: Final[int] = 0x80200024
BG_E_USERNAME_TOO_LARGE: Final[int] = 0x80200025
BG_E_PASSWORD_TOO_LARGE: Final[int] = 0x80200026
BG_E_INVALID_AUTH_TARGET: Final[int] = 0x80200027
BG_E_INVALID_AUTH_SCHEME: Final[int] = 0x80200028
BG_E_FILE_NOT_FOUND: Final[int] = 0x80200029
BG_E_INVALID_RANGE: Final[int] = 0x8020002B
BG_E_OVERLAPPING_RANGES: Final[int] = 0x8020002C
# Transport errors, 0x8020002D-0x8020003D.
BG_E_CONNECT_FAILURE: Final[int] = 0x8020002D
BG_E_CONNECTION_CLOSED: Final[int] = 0x8020002E
BG_E_KEEP_ALIVE_FAILURE: Final[int] = 0x8020002F
BG_E_MESSAGE_LENGTH_LIMIT_EXCEEDED: Final[int] = 0x80200030
BG_E_NAME_RESOLUTION_FAILURE: Final[int] = 0x80200031
BG_E_PENDING: Final[int] = 0x80200032
BG_E_PIPELINE_FAILURE: Final[int] = 0x80200033
BG_E_PROTOCOL_ERROR: Final[int] = 0x80200034
BG_E_PROXY_NAME_RESOLUTION_FAILURE: Final[int] = 0x80200035
BG_E_RECEIVE_FAILURE: Final[int] = 0x80200036
BG_E_REQUEST_CANCELED: Final[int] = 0x80200037
BG_E_SECURE_CHANNEL_FAILURE: Final[int] = 0x80200038
BG_E_SEND_FAILURE: Final[int] = 0x80200039
BG_E_SERVER_PROTOCOL_VIOLATION: Final[int] = 0x8020003A
BG_E_TIMEOUT: Final[int] = 0x8020003B
BG_E_TRUST_FAILURE: Final[int] = 0x8020003C
BG_E_UNKNOWN_ERROR: Final[int] = 0x8020003D
BG_E_BLOCKED_BY_POLICY: Final[int] = 0x8020003E
BG_E_INVALID_PROXY_INFO: Final[int] = 0x8020003F
BG_E_INVALID_CREDENTIALS: Final[int] = 0x80200040
# Peer-caching errors, 0x80200041-0x80200048.
BG_E_INVALID_HASH_ALGORITHM: Final[int] = 0x80200041
BG_E_RECORD_DELETED: Final[int] = 0x80200042
BG_E_COMMIT_IN_PROGRESS: Final[int] = 0x80200043
BG_E_DISCOVERY_IN_PROGRESS: Final[int] = 0x80200044
BG_E_UPNP_ERROR: Final[int] = 0x80200045
BG_E_TEST_OPTION_BLOCKED_DOWNLOAD: Final[int] = 0x80200046
BG_E_PEERCACHING_DISABLED: Final[int] = 0x80200047
BG_E_BUSYCACHERECORD: Final[int] = 0x80200048
BG_E_TOO_MANY_JOBS_PER_USER: Final[int] = 0x80200049
BG_E_TOO_MANY_JOBS_PER_MACHINE: Final[int] = 0x80200050
BG_E_TOO_MANY_FILES_IN_JOB: Final[int] = 0x80200051
BG_E_TOO_MANY_RANGES_IN_FILE: Final[int] = 0x80200052
BG_E_VALIDATION_FAILED: Final[int] = 0x80200053
BG_E_MAXDOWNLOAD_TIMEOUT: Final[int] = 0x80200054
BG_E_TOKEN_REQUIRED: Final[int] = 0x80200056
BG_E_UNKNOWN_PROPERTY_ID: Final[int] = 0x80200057
BG_E_READ_ONLY_PROPERTY: Final[int] = 0x80200058
BG_E_BLOCKED_BY_COST_TRANSFER_POLICY: Final[int] = 0x80200059
BG_E_PROPERTY_SUPPORTED_FOR_DOWNLOAD_JOBS_ONLY: Final[int] = 0x80200060
BG_E_READ_ONLY_PROPERTY_AFTER_ADDFILE: Final[int] = 0x80200061
BG_E_READ_ONLY_PROPERTY_AFTER_RESUME: Final[int] = 0x80200062
BG_E_MAX_DOWNLOAD_SIZE_INVALID_VALUE: Final[int] = 0x80200063
BG_E_MAX_DOWNLOAD_SIZE_LIMIT_REACHED: Final[int] = 0x80200064
BG_E_STANDBY_MODE: Final[int] = 0x80200065
BG_E_USE_STORED_CREDENTIALS_NOT_SUPPORTED: Final[int] = 0x80200066
BG_E_BLOCKED_BY_BATTERY_POLICY: Final[int] = 0x80200067
BG_E_BLOCKED_BY_BATTERY_SAVER: Final[int] = 0x80200068
BG_E_WATCHDOG_TIMEOUT: Final[int] = 0x80200069
BG_E_APP_PACKAGE_NOT_FOUND: Final[int] = 0x8020006A
BG_E_APP_PACKAGE_SCENARIO_NOT_SUPPORTED: Final[int] = 0x8020006B
BG_E_DATABASE_CORRUPT: Final[int] = 0x8020006C
BG_E_RANDOM_ACCESS_NOT_SUPPORTED: Final[int] = 0x8020006D
BG_E_BLOCKED_BY_BACKGROUND_ACCESS_POLICY: Final[int] = 0x8020006E
BG_E_BLOCKED_BY_GAME_MODE: Final[int] = 0x8020006F
BG_E_BLOCKED_BY_SYSTEM_POLICY: Final[int] = 0x80200070
BG_E_NOT_SUPPORTED_WITH_CUSTOM_HTTP_METHOD: Final[int] = 0x80200071
BG_E_UNSUPPORTED_JOB_CONFIGURATION: Final[int] = 0x80200072
BG_E_REMOTE_FILE_CHANGED: Final[int] = 0x80200073
BG_E_SERVER_CERT_VALIDATION_INTERFACE_REQUIRED: Final[int] = 0x80200074
BG_E_READ_ONLY_WHEN_JOB_ACTIVE: Final[int] = 0x80200075
BG_E_ERROR_CONTEXT_SERVER_CERTIFICATE_CALLBACK: Final[int] = 0x80200076

# --- HTTP failures: 0x80190000 + status (the statuses bitsmsg.h names) ---------------------------

BG_E_HTTP_ERROR_100: Final[int] = 0x80190064
BG_E_HTTP_ERROR_101: Final[int] = 0x80190065
BG_E_HTTP_ERROR_200: Final[int] = 0x801900C8
BG_E_HTTP_ERROR_201: Final[int] = 0x801900C9
BG_E_HTTP_ERROR_202: Final[int] = 0x801900CA
BG_E_HTTP_ERROR_203: Final[int] = 0x801900CB
BG_E_HTTP_ERROR_204: Final[int] = 0x801900CC
BG_E_HTTP_ERROR_205: Final[int] = 0x801900CD
BG_E_HTTP_ERROR_206: Final[int] = 0x801900CE
BG_E_HTTP_ERROR_300: Final[int] = 0x8019012C
BG_E_HTTP_ERROR_301: Final[int] = 0x8019012D
BG_E_HTTP_ERROR_302: Final[int] = 0x8019012E
BG_E_HTTP_ERROR_303: Final[int] = 0x8019012F
BG_E_HTTP_ERROR_304: Final[int] = 0x80190130
BG_E_HTTP_ERROR_305: Final[int] = 0x80190131
BG_E_HTTP_ERROR_307: Final[int] = 0x80190133
BG_E_HTTP_ERROR_400: Final[int] = 0x80190190
BG_E_HTTP_ERROR_401: Final[int] = 0x80190191
BG_E_HTTP_ERROR_402: Final[int] = 0x80190192
BG_E_HTTP_ERROR_403: Final[int] = 0x80190193
BG_E_HTTP_ERROR_404: Final[int] = 0x80190194
BG_E_HTTP_ERROR_405: Final[int] = 0x80190195
BG_E_HTTP_ERROR_406: Final[int] = 0x80190196
BG_E_HTTP_ERROR_407: Final[int] = 0x80190197
BG_E_HTTP_ERROR_408: Final[int] = 0x80190198
BG_E_HTTP_ERROR_409: Final[int] = 0x80190199
BG_E_HTTP_ERROR_410: Final[int] = 0x8019019A
BG_E_HTTP_ERROR_411: Final[int] = 0x8019019B
BG_E_HTTP_ERROR_412: Final[int] = 0x8019019C
BG_E_HTTP_ERROR_413: Final[int] = 0x8019019D
BG_E_HTTP_ERROR_414: Final[int] = 0x8019019E
BG_E_HTTP_ERROR_415: Final[int] = 0x8019019F
BG_E_HTTP_ERROR_416: Final[int] = 0x801901A0
BG_E_HTTP_ERROR_417: Final[int] = 0x801901A1
BG_E_HTTP_ERROR_449: Final[int] = 0x801901C1
BG_E_HTTP_ERROR_500: Final[int] = 0x801901F4
BG_E_HTTP_ERROR_501: Final[int] = 0x801901F5
BG_E_HTTP_ERROR_502: Final[int] = 0x801901F6
BG_E_HTTP_ERROR_503: Final[int] = 0x801901F7
BG_E_HTTP_ERROR_504: Final[int] = 0x801901F8
BG_E_HTTP_ERROR_505: Final[int] = 0x801901F9

# --- Event-log message IDs ----------------------------------------------------------------------

BITS_MC_JOB_CANCELLED: Final[int] = 0x80194000
BITS_MC_FILE_DELETION_FAILED: Final[int] = 0x80194001
BITS_MC_FILE_DELETION_FAILED_MORE: Final[int] = 0x80194002
BITS_MC_JOB_PROPERTY_CHANGE: Final[int] = 0x80194003
BITS_MC_JOB_TAKE_OWNERSHIP: Final[int] = 0x80194004
BITS_MC_JOB_SCAVENGED: Final[int] = 0x80194005
BITS_MC_JOB_NOTIFICATION_FAILURE: Final[int] = 0x80194006
BITS_MC_STATE_FILE_CORRUPT: Final[int] = 0x80194007
BITS_MC_FAILED_TO_START: Final[int] = 0x80194008
BITS_MC_FATAL_IGD_ERROR: Final[int] = 0x80194009
BITS_MC_PEERCACHING_PORT: Final[int] = 0x8019400A
BITS_MC_WSD_PORT: Final[int] = 0x8019400B

# --- Private layout constants and tables --------------------------------------------------------

_SEVERITY_BIT: Final[int] = 0x80000000
_UINT32_SPAN: Final[int] = 0x1_0000_0000
_HTTP_BASE: Final[int] = 0x80190000
_HTTP_MIN_STATUS: Final[int] = 100
_HTTP_MAX_STATUS: Final[int] = 599
_WIN32_FACILITY_BASE: Final[int] = 0x80070000  # SEVERITY_ERROR | FACILITY_WIN32 << 16

# Names that share a value with a canonical name; name_of never returns them.
_ALIASES: Final[frozenset[str]] = frozenset({"BG_E_SERVER_EXECUTE_ENABLED"})
# Module constants whose names start with these are codes (SIZE_UNKNOWN, LENGTH_TO_EOF are not).
_CODE_PREFIXES: Final[tuple[str, ...]] = ("S_", "E_", "BG_S_", "BG_E_", "BITS_MC_")

# Win32 error codes (winerror.h) that Linux errno values are mapped to.
_ERROR_FILE_NOT_FOUND: Final[int] = 2
_ERROR_PATH_NOT_FOUND: Final[int] = 3
_ERROR_TOO_MANY_OPEN_FILES: Final[int] = 4
_ERROR_ACCESS_DENIED: Final[int] = 5
_ERROR_NOT_ENOUGH_MEMORY: Final[int] = 8
_ERROR_NOT_SAME_DEVICE: Final[int] = 17
_ERROR_WRITE_PROTECT: Final[int] = 19
_ERROR_FILE_EXISTS: Final[int] = 80
_ERROR_INVALID_PARAMETER: Final[int] = 87
_ERROR_DISK_FULL: Final[int] = 112
_ERROR_BUSY: Final[int] = 170
_ERROR_FILENAME_EXCED_RANGE: Final[int] = 206
_ERROR_DIRECTORY: Final[int] = 267
_ERROR_IO_DEVICE: Final[int] = 1117
_ERROR_CANT_RESOLVE_FILENAME: Final[int] = 1921
_RPC_S_SERVER_UNAVAILABLE: Final[int] = 1722
_ERROR_WINHTTP_CLIENT_AUTH_CERT_NEEDED: Final[int] = 12044
_ERROR_WINHTTP_REDIRECT_FAILED: Final[int] = 12156

# Win32 code -> (winerror.h name, system message text).
_WIN32_ERRORS: Final[dict[int, tuple[str, str]]] = {
    _ERROR_FILE_NOT_FOUND: ("ERROR_FILE_NOT_FOUND", "The system cannot find the file specified."),
    _ERROR_PATH_NOT_FOUND: ("ERROR_PATH_NOT_FOUND", "The system cannot find the path specified."),
    _ERROR_TOO_MANY_OPEN_FILES: ("ERROR_TOO_MANY_OPEN_FILES", "The system cannot open the file."),
    _ERROR_ACCESS_DENIED: ("ERROR_ACCESS_DENIED", "Access is denied."),
    _ERROR_NOT_ENOUGH_MEMORY: (
        "ERROR_NOT_ENOUGH_MEMORY",
        "Not enough memory resources are available to process this command.",
    ),
    _ERROR_NOT_SAME_DEVICE: (
        "ERROR_NOT_SAME_DEVICE",
        "The system cannot move the file to a different disk drive.",
    ),
    _ERROR_WRITE_PROTECT: ("ERROR_WRITE_PROTECT", "The media is write protected."),
    _ERROR_FILE_EXISTS: ("ERROR_FILE_EXISTS", "The file exists."),
    _ERROR_INVALID_PARAMETER: ("ERROR_INVALID_PARAMETER", "The parameter is incorrect."),
    _ERROR_DISK_FULL: ("ERROR_DISK_FULL", "There is not enough space on the disk."),
    _ERROR_BUSY: ("ERROR_BUSY", "The requested resource is in use."),
    _ERROR_FILENAME_EXCED_RANGE: (
        "ERROR_FILENAME_EXCED_RANGE",
        "The filename or extension is too long.",
    ),
    _ERROR_DIRECTORY: ("ERROR_DIRECTORY", "The directory name is invalid."),
    _ERROR_IO_DEVICE: (
        "ERROR_IO_DEVICE",
        "The request could not be performed because of an I/O device error.",
    ),
    _ERROR_CANT_RESOLVE_FILENAME: (
        "ERROR_CANT_RESOLVE_FILENAME",
        "The name of the file cannot be resolved by the system.",
    ),
    # What a client sees when the service does not answer (bitsd: the daemon is unreachable).
    _RPC_S_SERVER_UNAVAILABLE: ("RPC_S_SERVER_UNAVAILABLE", "The RPC server is unavailable."),
    _ERROR_WINHTTP_CLIENT_AUTH_CERT_NEEDED: (
        "ERROR_WINHTTP_CLIENT_AUTH_CERT_NEEDED",
        "The server requires a client certificate.",
    ),
    _ERROR_WINHTTP_REDIRECT_FAILED: (
        "ERROR_WINHTTP_REDIRECT_FAILED",
        "The redirection failed: it was refused by policy, looped or went on too long.",
    ),
}

# Linux errno -> the Win32 code a Windows BITS client would see for the same failure.
_ERRNO_TO_WIN32: Final[dict[int, int]] = {
    errno.ENOENT: _ERROR_FILE_NOT_FOUND,
    errno.ENOTDIR: _ERROR_PATH_NOT_FOUND,
    errno.EACCES: _ERROR_ACCESS_DENIED,
    errno.EPERM: _ERROR_ACCESS_DENIED,
    errno.ENOSPC: _ERROR_DISK_FULL,
    errno.EDQUOT: _ERROR_DISK_FULL,  # over quota looks like a full disk on Windows
    errno.EROFS: _ERROR_WRITE_PROTECT,
    errno.EEXIST: _ERROR_FILE_EXISTS,
    errno.EISDIR: _ERROR_DIRECTORY,  # a directory where a file name was expected
    errno.ENAMETOOLONG: _ERROR_FILENAME_EXCED_RANGE,
    errno.EMFILE: _ERROR_TOO_MANY_OPEN_FILES,
    errno.ENOMEM: _ERROR_NOT_ENOUGH_MEMORY,
    errno.EIO: _ERROR_IO_DEVICE,
    errno.EBUSY: _ERROR_BUSY,
    errno.ELOOP: _ERROR_CANT_RESOLVE_FILENAME,  # too many symbolic links
    errno.EXDEV: _ERROR_NOT_SAME_DEVICE,
    errno.EINVAL: _ERROR_INVALID_PARAMETER,
}

# Descriptions. BITS texts follow the "Meaning" column of the inventory (§3.1, §3.2), which
# paraphrases Microsoft's "BITS return values" page; codes it gives no text for are left out and
# get a generic sentence from describe().
_DESCRIPTIONS: Final[dict[int, str]] = {
    S_OK: "The operation completed successfully.",
    S_FALSE: "The operation succeeded but returned false.",
    E_NOTIMPL: "Not implemented.",
    E_FAIL: "Unspecified error.",
    E_PENDING: "The data necessary to complete this operation is not yet available.",
    E_UNEXPECTED: "Catastrophic failure.",
    E_ACCESSDENIED: "Access is denied.",
    E_OUTOFMEMORY: "Not enough memory resources are available to complete this operation.",
    E_INVALIDARG: "One or more arguments are invalid.",
    # Error-context message IDs.
    BG_S_ERROR_CONTEXT_NONE: "Error context: no error.",
    BG_E_ERROR_CONTEXT_UNKNOWN: "Error context: unknown.",
    BG_E_ERROR_CONTEXT_GENERAL_QUEUE_MANAGER: (
        "Error context: the error was raised by the transfer queue manager."
    ),
    BG_E_ERROR_CONTEXT_QUEUE_MANAGER_NOTIFICATION: (
        "Error context: the error was raised while notifying the client."
    ),
    BG_E_ERROR_CONTEXT_LOCAL_FILE: (
        "Error context: a problem with the local file (permission, or the volume is unavailable)."
    ),
    BG_E_ERROR_CONTEXT_REMOTE_FILE: (
        "Error context: a problem with the remote file (the URL is not accessible),"
        " or an HTTP error during an upload or its reply."
    ),
    BG_E_ERROR_CONTEXT_GENERAL_TRANSPORT: (
        "Error context: a transport failure that is not specific to the file."
    ),
    BG_E_ERROR_CONTEXT_REMOTE_APPLICATION: (
        "Error context: the server application that received the upload failed."
    ),
    BG_E_ERROR_CONTEXT_SERVER_CERTIFICATE_CALLBACK: (
        "Error context: the application's server-certificate validation callback."
    ),
    # Success codes.
    BG_S_PARTIAL_COMPLETE: (
        "Some files were transferred before Complete was called; the rest were deleted."
    ),
    BG_S_UNABLE_TO_DELETE_FILES: "BITS could not delete all of the temporary files.",
    BG_S_OVERRIDDEN_BY_POLICY: "The preference was saved, but a Group Policy setting overrides it.",
    # Failures.
    BG_E_NOT_FOUND: "The requested job was not found.",
    BG_E_INVALID_STATE: "The requested action is not allowed in the current job state.",
    BG_E_EMPTY: "The job must contain at least one file before it can be resumed.",
    BG_E_FILE_NOT_AVAILABLE: "The error is not associated with a file.",
    BG_E_PROTOCOL_NOT_AVAILABLE: "The error is not associated with a protocol.",
    BG_E_DESTINATION_LOCKED: "The destination volume is locked.",
    BG_E_VOLUME_CHANGED: "The destination volume has changed.",
    BG_E_ERROR_INFORMATION_UNAVAILABLE: (
        "Error information is available only while the job is in an error state."
    ),
    BG_E_NETWORK_DISCONNECTED: (
        "No network adapter is active, so all jobs are in the TRANSIENT_ERROR state."
    ),
    BG_E_MISSING_FILE_SIZE: (
        "The server did not return the file size (Content-Length),"
        " so dynamic content cannot be downloaded."
    ),
    BG_E_INSUFFICIENT_HTTP_SUPPORT: "The server does not support HTTP/1.1.",
    BG_E_INSUFFICIENT_RANGE_SUPPORT: (
        "The server does not support Content-Range requests,"
        " or a proxy strips Content-Range or Content-Length."
    ),
    BG_E_REMOTE_NOT_SUPPORTED: "Remote use of BITS is not supported.",
    BG_E_NEW_OWNER_DIFF_MAPPING: "The drive mapping differs for the new owner.",
    BG_E_NEW_OWNER_NO_FILE_ACCESS: "The new owner cannot access the job's temporary files.",
    BG_E_PROXY_LIST_TOO_LARGE: "The proxy list is larger than 32 KB.",
    BG_E_PROXY_BYPASS_LIST_TOO_LARGE: "The proxy bypass list is larger than 32 KB.",
    BG_E_INVALID_SERVER_RESPONSE: (
        "The server returned an invalid response, for example it merged overlapping ranges."
    ),
    BG_E_TOO_MANY_FILES: "An upload job can contain only one file.",
    BG_E_LOCAL_FILE_CHANGED: "The local file changed after the upload began.",
    BG_E_SESSION_NOT_FOUND: "The server does not know the upload session.",
    BG_E_TOO_LARGE: (
        "The upload is larger than the server allows, or the reply data is larger than 1 MB."
    ),
    BG_E_STRING_TOO_LONG: "The string is too long.",
    BG_E_CLIENT_SERVER_PROTOCOL_MISMATCH: (
        "The client and server could not agree on an upload protocol."
    ),
    BG_E_SERVER_EXECUTE_ENABLE: (
        "The IIS virtual directory has script or execute permission enabled."
    ),
    BG_E_USERNAME_TOO_LARGE: "The user name is longer than 300 characters.",
    BG_E_PASSWORD_TOO_LARGE: "The password is longer than 65,535 characters.",
    BG_E_INVALID_AUTH_TARGET: "The authentication target is invalid.",
    BG_E_INVALID_AUTH_SCHEME: "The authentication scheme is invalid.",
    BG_E_INVALID_RANGE: "The requested range is outside the remote file.",
    BG_E_OVERLAPPING_RANGES: "The requested ranges are duplicated or overlap.",
    BG_E_CONNECT_FAILURE: "Transport error: connect failure.",
    BG_E_CONNECTION_CLOSED: "Transport error: connection closed.",
    BG_E_KEEP_ALIVE_FAILURE: "Transport error: keep-alive failure.",
    BG_E_MESSAGE_LENGTH_LIMIT_EXCEEDED: "Transport error: message length limit exceeded.",
    BG_E_NAME_RESOLUTION_FAILURE: "Transport error: name resolution failure.",
    BG_E_PENDING: "Transport error: pending.",
    BG_E_PIPELINE_FAILURE: "Transport error: pipeline failure.",
    BG_E_PROTOCOL_ERROR: "Transport error: protocol error.",
    BG_E_PROXY_NAME_RESOLUTION_FAILURE: "Transport error: proxy name resolution failure.",
    BG_E_RECEIVE_FAILURE: "Transport error: receive failure.",
    BG_E_REQUEST_CANCELED: "Transport error: request canceled.",
    BG_E_SECURE_CHANNEL_FAILURE: "Transport error: secure channel failure.",
    BG_E_SEND_FAILURE: "Transport error: send failure.",
    BG_E_SERVER_PROTOCOL_VIOLATION: "Transport error: server protocol violation.",
    BG_E_TIMEOUT: "Transport error: timeout.",
    BG_E_TRUST_FAILURE: "Transport error: trust failure.",
    BG_E_UNKNOWN_ERROR: "Transport error: unknown error.",
    BG_E_BLOCKED_BY_POLICY: ("The MaxInternetBandwidth policy currently blocks background jobs."),
    BG_E_INVALID_PROXY_INFO: "The proxy list or proxy bypass list is invalid.",
    BG_E_INVALID_CREDENTIALS: "The credentials have an invalid format.",
    BG_E_INVALID_HASH_ALGORITHM: "Peer-caching error: invalid hash algorithm.",
    BG_E_RECORD_DELETED: "Peer-caching error: record deleted.",
    BG_E_COMMIT_IN_PROGRESS: "Peer-caching error: commit in progress.",
    BG_E_DISCOVERY_IN_PROGRESS: "Peer-caching error: discovery in progress.",
    BG_E_UPNP_ERROR: "Peer-caching error: UPnP error.",
    BG_E_TEST_OPTION_BLOCKED_DOWNLOAD: "Peer-caching error: a test option blocked the download.",
    BG_E_PEERCACHING_DISABLED: "Peer-caching error: peer caching is disabled.",
    BG_E_BUSYCACHERECORD: "Peer-caching error: the cache record is busy.",
    BG_E_TOO_MANY_JOBS_PER_USER: "The MaxJobsPerUser limit has been exceeded.",
    BG_E_TOO_MANY_JOBS_PER_MACHINE: "The MaxJobsPerMachine limit has been exceeded.",
    BG_E_TOO_MANY_FILES_IN_JOB: "The MaxFilesPerJob limit has been exceeded.",
    BG_E_TOO_MANY_RANGES_IN_FILE: "The MaxRangesPerFile limit has been exceeded.",
    BG_E_VALIDATION_FAILED: (
        "The server response was invalid, or the file was rejected with SetValidationState(FALSE)."
    ),
    BG_E_MAXDOWNLOAD_TIMEOUT: "The job exceeded its MaxDownloadTime or the policy limit.",
    BG_E_TOKEN_REQUIRED: "The job needs a helper token.",
    BG_E_RANDOM_ACCESS_NOT_SUPPORTED: (
        "The job is not a download job, or the server no longer supports ranges."
    ),
    # Event-log message IDs.
    BITS_MC_JOB_CANCELLED: "BITS event-log message: job cancelled.",
    BITS_MC_FILE_DELETION_FAILED: "BITS event-log message: file deletion failed.",
    BITS_MC_FILE_DELETION_FAILED_MORE: (
        "BITS event-log message: file deletion failed for more files."
    ),
    BITS_MC_JOB_PROPERTY_CHANGE: "BITS event-log message: job property changed.",
    BITS_MC_JOB_TAKE_OWNERSHIP: "BITS event-log message: job ownership taken.",
    BITS_MC_JOB_SCAVENGED: "BITS event-log message: job scavenged.",
    BITS_MC_JOB_NOTIFICATION_FAILURE: "BITS event-log message: job notification failed.",
    BITS_MC_STATE_FILE_CORRUPT: "BITS event-log message: state file corrupt.",
    BITS_MC_FAILED_TO_START: "BITS event-log message: failed to start.",
    BITS_MC_FATAL_IGD_ERROR: "BITS event-log message: fatal IGD error.",
    BITS_MC_PEERCACHING_PORT: "BITS event-log message: peer-caching port.",
    BITS_MC_WSD_PORT: "BITS event-log message: WSD port.",
}

# Extra text for HTTP statuses that Microsoft's "BITS return values" page explains.
_HTTP_NOTES: Final[dict[int, str]] = {
    400: "the syntax of the remote name is invalid",
    401: "authentication is required",
    404: (
        "the URL does not exist; on IIS 7 it can also mean that uploads are not enabled on the"
        " virtual directory or that BITSMaximumUploadSize was exceeded"
    ),
    407: "proxy authentication is required",
    414: "the URI is too long",
    501: "on IIS 6 this means that uploads are not enabled",
    503: "the server is overloaded; resume later",
    504: "the gateway timed out; resume later",
    505: "the HTTP version is not supported",
}


# --- Functions ----------------------------------------------------------------------------------


def to_unsigned(hresult: int) -> int:
    """Return the unsigned 32-bit form of a signed 32-bit HRESULT; other values are unchanged."""
    if -_SEVERITY_BIT <= hresult < 0:
        return hresult + _UINT32_SPAN
    return hresult


def is_failure(hresult: int) -> bool:
    """True when the severity bit is set (any negative int counts as a signed failure)."""
    return hresult < 0 or bool(hresult & _SEVERITY_BIT)


def is_success(hresult: int) -> bool:
    """True when the severity bit is clear: S_OK, S_FALSE and the BG_S_* codes."""
    return not is_failure(hresult)


def http_error(status: int) -> int:
    """The HRESULT BITS reports for an HTTP status: ``0x80190000 + status``.

    Raises ValueError for a status outside 100..599.
    """
    if not _HTTP_MIN_STATUS <= status <= _HTTP_MAX_STATUS:
        msg = f"HTTP status must be in {_HTTP_MIN_STATUS}..{_HTTP_MAX_STATUS}, got {status}"
        raise ValueError(msg)
    return _HTTP_BASE + status


def http_status_of(hresult: int) -> int | None:
    """The HTTP status inside an ``http_error`` code (0x80190064..0x80190257), else None."""
    value = to_unsigned(hresult)
    if _HTTP_BASE + _HTTP_MIN_STATUS <= value <= _HTTP_BASE + _HTTP_MAX_STATUS:
        return value - _HTTP_BASE
    return None


def HRESULT_FROM_WIN32(code: int) -> int:  # noqa: N802 (the Windows macro's own name)
    """Wrap a Win32 error code as an HRESULT, like the winerror.h macro.

    ``0x80070000 | (code & 0xFFFF)`` for a positive code. As in C, 0 stays 0 and a value that
    is already a failure HRESULT (signed or unsigned) is returned unchanged (in unsigned form).
    """
    if code <= 0 or is_failure(code):
        return to_unsigned(code)
    return _WIN32_FACILITY_BASE | (code & 0xFFFF)


def hresult_from_errno(err: int) -> int:
    """The HRESULT a Windows BITS client would see for the failure a Linux errno describes.

    Known errno values become ``HRESULT_FROM_WIN32`` of the matching Win32 code (ENOSPC ->
    ERROR_DISK_FULL -> 0x80070070); anything else, 0 included, becomes E_FAIL.
    """
    win32 = _ERRNO_TO_WIN32.get(err)
    if win32 is None:
        return E_FAIL
    return HRESULT_FROM_WIN32(win32)


def _hex(value: int) -> str:
    if value < 0:
        return f"-0x{-value:08X}"
    return f"0x{value:08X}"


def _win32_entry(value: int) -> tuple[str, str] | None:
    """(name, message) of an HRESULT_FROM_WIN32 code whose Win32 code is in the errno table."""
    if value & 0xFFFF0000 != _WIN32_FACILITY_BASE:
        return None
    return _WIN32_ERRORS.get(value & 0xFFFF)


def _build_names() -> dict[int, str]:
    """Value -> canonical name, from this module's own code constants, first definition wins."""
    names: dict[int, str] = {}
    for name, value in list(globals().items()):
        if name in _ALIASES or not name.startswith(_CODE_PREFIXES) or not isinstance(value, int):
            continue
        names.setdefault(value, name)
    return names


_NAMES: Final[dict[int, str]] = _build_names()


def name_of(hresult: int) -> str:
    """The BITS name of a code, e.g. ``"BG_E_HTTP_ERROR_404"``; never raises.

    Codes without a constant here: ``"HRESULT_FROM_WIN32(ERROR_DISK_FULL)"`` for the Win32
    codes of the errno table, otherwise the hex value (``"0x80123456"``).
    """
    value = to_unsigned(hresult)
    name = _NAMES.get(value)
    if name is not None:
        return name
    win32 = _win32_entry(value)
    if win32 is not None:
        return f"HRESULT_FROM_WIN32({win32[0]})"
    return _hex(value)


def _describe_http(status: int) -> str:
    try:
        phrase: str | None = HTTPStatus(status).phrase
    except ValueError:
        phrase = None
    head = f"The server returned HTTP status {status}"
    if phrase:
        head += f" ({phrase})"
    note = _HTTP_NOTES.get(status)
    if note is not None:
        return f"{head}: {note}."
    return f"{head}."


def describe(hresult: int) -> str:
    """A one-sentence English description of a code; never raises, never empty."""
    value = to_unsigned(hresult)
    text = _DESCRIPTIONS.get(value)
    if text is not None:
        return text
    status = http_status_of(value)
    if status is not None:
        return _describe_http(status)
    win32 = _win32_entry(value)
    if win32 is not None:
        return win32[1]
    name = _NAMES.get(value)
    if name is not None:
        return f"BITS error {name} ({_hex(value)}); no description is recorded for it."
    return f"Unknown error {_hex(value)}."
