"""The JSON shapes of the control API, shared by the daemon and its clients.

Rules:
- Enums travel as their BITS names ("QUEUED", "REMOTE_FILE"); inputs accept names or numbers.
  Notify flags travel as their integer value. HRESULTs travel as unsigned integers, with their
  name beside them where a person may read the JSON.
- Times travel as ISO 8601 strings in UTC; sizes as integers (SIZE_UNKNOWN is 2**64 - 1).
- An error body is ``{"error": {"hresult", "name", "message"}}``; :func:`error_from_json`
  rebuilds the same exception class on the client side, so ``except bitsd.NotFoundError``
  works the same in-process and through the daemon.
- Every ``*_from_json`` validates what it reads and raises InvalidArgumentError (E_INVALIDARG)
  on a malformed value: the daemon answers 400 for it, never 500.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, TypeVar

from bitsd import codes
from bitsd._enums import ErrorContext, JobState, JobType, NotifyFlags, Priority
from bitsd._errors import (
    BitsError,
    EmptyJobError,
    ErrorInfoUnavailableError,
    InvalidArgumentError,
    InvalidStateError,
    NotFoundError,
    NotSupportedError,
    ReadOnlyPropertyError,
    StoreError,
)
from bitsd._records import ErrorInfo, FileInfo, FileProgress, JobProgress, JobSnapshot, JobTimes

__all__ = [
    "API_VERSION",
    "FILE_ROW_FIELDS",
    "JSON",
    "enum_from_json",
    "error_from_json",
    "error_info_from_json",
    "error_info_to_json",
    "error_to_json",
    "file_info_from_json",
    "file_info_to_json",
    "files_from_rows",
    "http_status_for",
    "progress_from_json",
    "progress_to_json",
    "ranges_from_json",
    "ranges_to_json",
    "snapshot_from_json",
    "snapshot_to_json",
    "time_from_json",
    "times_from_json",
    "times_to_json",
]

API_VERSION = 1

JSON = dict[str, Any]
E = TypeVar("E", bound=enum.IntEnum)

# Exception class and HTTP status for each caller-error HRESULT.
_ERRORS: dict[int, tuple[type[BitsError], int]] = {
    codes.BG_E_NOT_FOUND: (NotFoundError, 404),
    codes.BG_E_INVALID_STATE: (InvalidStateError, 409),
    codes.BG_E_EMPTY: (EmptyJobError, 409),
    codes.BG_E_ERROR_INFORMATION_UNAVAILABLE: (ErrorInfoUnavailableError, 409),
    codes.BG_E_READ_ONLY_PROPERTY_AFTER_RESUME: (ReadOnlyPropertyError, 409),
    codes.BG_E_READ_ONLY_PROPERTY_AFTER_ADDFILE: (ReadOnlyPropertyError, 409),
    codes.E_INVALIDARG: (InvalidArgumentError, 400),
    codes.BG_E_STRING_TOO_LONG: (InvalidArgumentError, 400),
    codes.E_NOTIMPL: (NotSupportedError, 501),
    codes.BG_E_DATABASE_CORRUPT: (StoreError, 500),
    # The job's state or its other properties refuse the call.
    codes.E_PENDING: (BitsError, 409),
    codes.BG_E_NOT_SUPPORTED_WITH_CUSTOM_HTTP_METHOD: (BitsError, 409),
    codes.BG_E_UNSUPPORTED_JOB_CONFIGURATION: (BitsError, 409),
    codes.BG_E_RANDOM_ACCESS_NOT_SUPPORTED: (BitsError, 409),
    # Write-only custom headers.
    codes.E_ACCESSDENIED: (BitsError, 403),
}


def http_status_for(error: BitsError) -> int:
    """The HTTP status the daemon answers a caller error with."""
    if isinstance(error, NotFoundError):
        return 404
    if isinstance(
        error, InvalidStateError | EmptyJobError | ErrorInfoUnavailableError | ReadOnlyPropertyError
    ):
        return 409
    if isinstance(error, NotSupportedError):
        return 501
    if isinstance(error, StoreError):
        return 500
    return _ERRORS.get(error.hresult, (BitsError, 400))[1]


def error_to_json(error: BitsError) -> JSON:
    """The body of an error response."""
    return {"error": {"hresult": error.hresult, "name": error.name, "message": error.message}}


def error_from_json(body: Mapping[str, Any]) -> BitsError:
    """The exception an error response stands for (same class as in-process where known)."""
    detail = body.get("error") if isinstance(body, Mapping) else None
    if not isinstance(detail, Mapping) or not isinstance(detail.get("hresult"), int):
        return BitsError("the daemon answered with an unreadable error", hresult=codes.E_UNEXPECTED)
    hresult = int(detail["hresult"])
    message = str(detail.get("message") or codes.describe(hresult))
    cls = _ERRORS.get(hresult, (BitsError, 400))[0]
    return cls(message, hresult=hresult)


def enum_from_json(kind: type[E], value: object, what: str) -> E:
    """An enum member from its name (any case) or its number."""
    try:
        if isinstance(value, str):
            return kind[value.upper()]
        if isinstance(value, int) and not isinstance(value, bool):
            return kind(value)
    except (KeyError, ValueError):
        pass
    raise InvalidArgumentError(f"{what} must be one of {[m.name for m in kind]}, not {value!r}")


def _int(value: object, what: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise InvalidArgumentError(f"{what} must be an integer, not {value!r}")


def _str(value: object, what: str) -> str:
    if isinstance(value, str):
        return value
    raise InvalidArgumentError(f"{what} must be a string, not {value!r}")


def _obj(value: object, what: str) -> Mapping[str, Any]:
    if isinstance(value, Mapping):
        return value
    raise InvalidArgumentError(f"{what} must be an object, not {value!r}")


def time_from_json(value: object, what: str) -> datetime:
    try:
        return datetime.fromisoformat(_str(value, what))
    except ValueError:
        raise InvalidArgumentError(f"{what} must be an ISO 8601 time, not {value!r}") from None


def progress_to_json(p: JobProgress) -> JSON:
    return {
        "bytes_total": p.bytes_total,
        "bytes_transferred": p.bytes_transferred,
        "files_total": p.files_total,
        "files_transferred": p.files_transferred,
    }


def progress_from_json(value: object) -> JobProgress:
    d = _obj(value, "progress")
    return JobProgress(
        *(
            _int(d.get(k), k)
            for k in ("bytes_total", "bytes_transferred", "files_total", "files_transferred")
        )
    )


def times_to_json(t: JobTimes) -> JSON:
    done = t.transfer_completion_time
    return {
        "creation_time": t.creation_time.isoformat(),
        "modification_time": t.modification_time.isoformat(),
        "transfer_completion_time": done.isoformat() if done else None,
    }


def times_from_json(value: object) -> JobTimes:
    d = _obj(value, "times")
    done = d.get("transfer_completion_time")
    return JobTimes(
        time_from_json(d.get("creation_time"), "creation_time"),
        time_from_json(d.get("modification_time"), "modification_time"),
        None if done is None else time_from_json(done, "transfer_completion_time"),
    )


def file_info_to_json(f: FileInfo) -> JSON:
    return {
        "remote_name": f.remote_name,
        "local_name": f.local_name,
        "temporary_name": f.temporary_name,
        "progress": {
            "bytes_total": f.progress.bytes_total,
            "bytes_transferred": f.progress.bytes_transferred,
            "completed": f.progress.completed,
        },
    }


def file_info_from_json(value: object) -> FileInfo:
    d = _obj(value, "file")
    p = _obj(d.get("progress"), "file progress")
    completed = p.get("completed")
    if not isinstance(completed, bool):
        raise InvalidArgumentError("completed must be a boolean")
    return FileInfo(
        _str(d.get("remote_name"), "remote_name"),
        _str(d.get("local_name"), "local_name"),
        FileProgress(
            _int(p.get("bytes_total"), "bytes_total"),
            _int(p.get("bytes_transferred"), "bytes_transferred"),
            completed,
        ),
        _str(d.get("temporary_name"), "temporary_name"),
    )


def ranges_to_json(ranges: Iterable[tuple[int, int]]) -> list[list[int]]:
    """(offset, length) ranges as ``[[offset, length], ...]``."""
    return [[offset, length] for offset, length in ranges]


def ranges_from_json(value: object, what: str = "ranges") -> list[tuple[int, int]]:
    """``[[offset, length], ...]`` as (offset, length) pairs of integers."""
    if not isinstance(value, list):
        raise InvalidArgumentError(f"{what} must be a list of [offset, length]")
    out = []
    for pair in value:
        if not isinstance(pair, list) or len(pair) != 2:
            raise InvalidArgumentError(f"{what} must be [offset, length] pairs, not {pair!r}")
        out.append((_int(pair[0], f"{what} offset"), _int(pair[1], f"{what} length")))
    return out


# The columns of a file row (FileRows, ``?files=rows`` of Cancel's and Complete's answers), in
# the order the daemon sends them: a listed File's members, with its progress's three in place
# of ``progress``.
FILE_ROW_FIELDS = (
    "remote_name",
    "local_name",
    "temporary_name",
    "bytes_total",
    "bytes_transferred",
    "completed",
    "ranges",
    "validated",
    "filled_ranges",
)


def files_from_rows(value: object) -> list[JSON]:
    """The listed File objects of a FileRows ``{"fields": [name, ...], "rows": [[value, ...],
    ...]}``: each row as the object form has it, ``progress`` gathered from its three columns.
    Columns are found by their names in ``fields`` (a daemon may add columns; they are left
    out); the values are checked where they are read, as the object form's are
    (:func:`file_info_from_json`, :func:`ranges_from_json`).

    Raises:
        InvalidArgumentError: not that shape, a column of FILE_ROW_FIELDS missing, or a row that
            is not a list of one value per field.
    """
    d = _obj(value, "file rows")
    fields, rows = d.get("fields"), d.get("rows")
    if not isinstance(fields, list) or not isinstance(rows, list):
        raise InvalidArgumentError("file rows must have a fields list and a rows list")
    missing = [name for name in FILE_ROW_FIELDS if name not in fields]
    if missing:
        raise InvalidArgumentError(f"file rows have no {missing[0]} column")
    at = {name: fields.index(name) for name in FILE_ROW_FIELDS}
    files = []
    for row in rows:
        if not isinstance(row, list) or len(row) != len(fields):
            raise InvalidArgumentError(f"a file row must be a list of {len(fields)} values")
        files.append(
            {
                "remote_name": row[at["remote_name"]],
                "local_name": row[at["local_name"]],
                "temporary_name": row[at["temporary_name"]],
                "progress": {
                    "bytes_total": row[at["bytes_total"]],
                    "bytes_transferred": row[at["bytes_transferred"]],
                    "completed": row[at["completed"]],
                },
                "ranges": row[at["ranges"]],
                "validated": row[at["validated"]],
                "filled_ranges": row[at["filled_ranges"]],
            }
        )
    return files


def error_info_to_json(e: ErrorInfo) -> JSON:
    return {
        "code": e.code,
        "name": codes.name_of(e.code),
        "context": e.context.name,
        "description": e.description,
        "context_description": e.context_description,
        "file": file_info_to_json(e.file) if e.file else None,
        "protocol": e.protocol,
    }


def error_info_from_json(value: object) -> ErrorInfo:
    d = _obj(value, "error")
    file = d.get("file")
    protocol = d.get("protocol")
    return ErrorInfo(
        _int(d.get("code"), "code"),
        enum_from_json(ErrorContext, d.get("context"), "context"),
        _str(d.get("description"), "description"),
        _str(d.get("context_description"), "context_description"),
        None if file is None else file_info_from_json(file),
        None if protocol is None else _str(protocol, "protocol"),
    )


# Optional fields of a Job object beside the ones docs/control-api.md draws, with their types.
_EXTRA_FIELDS: dict[str, type | tuple[type, ...]] = {
    "maximum_download_size": (int, type(None)),
    "custom_headers": (str, type(None)),
    "custom_headers_write_only": bool,
    "http_method": (str, type(None)),
    "security_flags": int,
    "proxy_usage": int,
    "proxy_list": (str, type(None)),
    "proxy_bypass": (str, type(None)),
    "ca_bundle": (str, type(None)),
    "client_certificate": (str, type(None)),
    "transfer_policy": int,
    "bandwidth_limit": (int, type(None)),
    "on_demand": bool,
}


def snapshot_to_json(s: JobSnapshot) -> JSON:
    """The Job object of the control API."""
    body: JSON = {
        "id": s.id,
        "display_name": s.display_name,
        "description": s.description,
        "type": s.type.name,
        "state": s.state.name,
        "priority": s.priority.name,
        "owner": s.owner,
        "notify_flags": int(s.notify_flags),
        "notify_cmd_line": {"program": s.notify_program, "parameters": s.notify_parameters},
        "minimum_retry_delay": s.minimum_retry_delay,
        "no_progress_timeout": s.no_progress_timeout,
        "maximum_download_time": s.maximum_download_time,
        "dynamic_content": s.dynamic_content,
        "error_count": s.error_count,
        "progress": progress_to_json(s.progress),
        "times": times_to_json(s.times),
        "error": error_info_to_json(s.error) if s.error else None,
    }
    body.update({name: getattr(s, name) for name in _EXTRA_FIELDS})
    return body


def _number(value: object, what: str) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    raise InvalidArgumentError(f"{what} must be a number, not {value!r}")


def snapshot_from_json(value: object) -> JobSnapshot:
    """A JobSnapshot from a Job object (what the daemon answers for a job)."""
    d = _obj(value, "job")
    cmd = _obj(d.get("notify_cmd_line") or {}, "notify_cmd_line")
    error = d.get("error")
    extras: dict[str, Any] = {}
    for name, kind in _EXTRA_FIELDS.items():
        if name in d:
            if not isinstance(d[name], kind) or (kind is int and isinstance(d[name], bool)):
                raise InvalidArgumentError(f"{name} has the wrong type: {d[name]!r}")
            extras[name] = d[name]
    program, parameters = cmd.get("program"), cmd.get("parameters")
    return JobSnapshot(
        id=_str(d.get("id"), "id"),
        display_name=_str(d.get("display_name"), "display_name"),
        description=_str(d.get("description", ""), "description"),
        type=enum_from_json(JobType, d.get("type"), "type"),
        state=enum_from_json(JobState, d.get("state"), "state"),
        priority=enum_from_json(Priority, d.get("priority"), "priority"),
        owner=_int(d.get("owner"), "owner"),
        notify_flags=NotifyFlags(_int(d.get("notify_flags"), "notify_flags")),
        notify_program=None if program is None else _str(program, "program"),
        notify_parameters=None if parameters is None else _str(parameters, "parameters"),
        minimum_retry_delay=_number(d.get("minimum_retry_delay"), "minimum_retry_delay"),
        no_progress_timeout=_number(d.get("no_progress_timeout"), "no_progress_timeout"),
        maximum_download_time=_number(d.get("maximum_download_time"), "maximum_download_time"),
        dynamic_content=bool(d.get("dynamic_content")),
        error_count=_int(d.get("error_count"), "error_count"),
        progress=progress_from_json(d.get("progress")),
        times=times_from_json(d.get("times")),
        error=None if error is None else error_info_from_json(error),
        **extras,
    )
