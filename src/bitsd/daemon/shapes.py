"""The JSON shapes the daemon adds to ``bitsd._wire``: the Job object and checked request bodies.

Rules:
- A Job is one snapshot of the job (``Job.snapshot``) in the shape of ``bitsd._wire``, plus
  ``client_key`` (the snapshot has the certificate's path only). A listed File adds ``ranges``,
  ``validated`` and ``filled_ranges`` (null where GetFilledFileRanges answers
  BG_E_RANDOM_ACCESS_NOT_SUPPORTED) to ``bitsd._wire``'s File.
- A request body is checked whole before anything is applied: :func:`job_changes` turns a PATCH
  body into setter calls only when every field has a valid type and value (checked with the
  engine's own rules and codes, ``bitsd._httpopts``), and no field conflicts with another or
  with the job as it is; the setters the job's state can refuse come first. So an error never
  leaves a job half-changed. The setters still check again (the engine is the authority).
- Credentials are only passed on: nothing here logs, returns or keeps them.
- Cancel's and Complete's answers list the job's files as File objects, or with ``?files=rows``
  as FileRows (:func:`file_rows_to_json`): the same values, one array per file in the order of
  ``bitsd._wire.FILE_ROW_FIELDS``, from which ``bitsd._wire.files_from_rows`` rebuilds the
  objects exactly.
- Query parameters are checked the same way (:func:`page_params`, :func:`wait_params`,
  :func:`brief_view`, :func:`rows_view`).
- Every mistake is an InvalidArgumentError naming the field (400), or the code the engine gives
  the value: BG_E_STRING_TOO_LONG for a string over its limit; E_NOTIMPL (501) for a number BITS
  does not define as a priority, notify flags, security flags or a proxy usage (BITS's answer,
  ``bitsd._args`` and ``bitsd._httpopts``), where a value of another type, or a name that is
  no member's, is E_INVALIDARG.
- A body is JSON (:func:`json_body`) whose strings are Unicode text: a lone surrogate
  (``"\\ud800"``, or its bytes in a body Python's decoder takes with ``surrogatepass``) can be
  neither stored nor sent, so it is refused there, for every route, naming where it is.
"""

from __future__ import annotations

import dataclasses
import errno
import functools
import json
import math
import os
import re
import shlex
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from bitsd import codes
from bitsd._args import check_notify_flags, check_priority, is_byte_count, is_int
from bitsd._engine import FileDetails
from bitsd._enums import AuthScheme, AuthTarget, JobState, JobType, Priority, ProxyUsage
from bitsd._errors import BitsError, InvalidArgumentError, NotSupportedError
from bitsd._httpopts import (
    check_custom_headers,
    check_http_method,
    check_proxy_settings,
    check_security_flags,
)
from bitsd._job import Job
from bitsd._policy import (
    MAX_BYTE_COUNT,
    MAX_DESCRIPTION_LENGTH,
    MAX_DISPLAY_NAME_LENGTH,
    MAX_NOTIFY_PARAMETERS_LENGTH,
    MAX_NOTIFY_PROGRAM_LENGTH,
)
from bitsd._records import JobSnapshot
from bitsd._text import is_utf8
from bitsd._upload import check_download_only
from bitsd._wire import (
    FILE_ROW_FIELDS,
    JSON,
    enum_from_json,
    ranges_from_json,
    ranges_to_json,
    snapshot_to_json,
)

__all__ = [
    "PAGE_LIMIT_DEFAULT",
    "PAGE_LIMIT_MAX",
    "WAIT_TIMEOUT_DEFAULT",
    "WAIT_TIMEOUT_MAX",
    "Change",
    "Credentials",
    "NewFiles",
    "NewJob",
    "auth_pair",
    "brief_view",
    "credentials",
    "download_position",
    "file_index",
    "file_rows_to_json",
    "file_to_json",
    "job_brief_to_json",
    "job_changes",
    "job_to_json",
    "json_body",
    "new_files",
    "new_job",
    "object_body",
    "page_params",
    "prefixes",
    "reply_file_name",
    "requested_ranges",
    "rows_view",
    "validation",
    "wait_params",
]

# One validated change of a job: a call of one of its setters.
Change = Callable[[Job], Awaitable[None]]

# Jobs per page of GET /v1/jobs when the client does not say, and at most.
PAGE_LIMIT_DEFAULT = 1000
PAGE_LIMIT_MAX = 10_000
# Seconds GET /v1/jobs/{id}/wait waits when the client does not say, and at most (a longer
# timeout is capped: a client waiting longer asks again).
WAIT_TIMEOUT_DEFAULT = 30.0
WAIT_TIMEOUT_MAX = 60.0


async def job_to_json(job: Job) -> JSON:
    """The Job object of the control API (one consistent read of the job: the engine's getters
    answer without yielding to the loop)."""
    body = snapshot_to_json(await job.snapshot())
    certificate = await job.get_client_certificate()
    body["client_key"] = None if certificate is None else certificate[1]
    return body


async def job_brief_to_json(job: Job) -> JSON:
    """A JobBrief of ``GET /v1/jobs?view=brief``: what a client needs to hold a handle and
    keep the list's order, at a tenth of a Job object's cost with 10,000 jobs."""
    times = await job.get_times()
    return {
        "id": job.id,
        "state": (await job.get_state()).name,
        "creation_time": times.creation_time.isoformat(),
    }


def file_to_json(details: FileDetails) -> JSON:
    """A File of the job's file list (one of ``Job._file_details``): ``bitsd._wire``'s File
    (``file_info_to_json`` of the file's FileInfo) with ``ranges``, ``validated`` and
    ``filled_ranges``, built from the record in one step: Complete answers with every file of
    the job, thousands of them (a test pins it to ``file_info_to_json``)."""
    f, filled = details
    return {
        "remote_name": f.remote_name,
        "local_name": f.local_name,
        "temporary_name": f.temp_name,
        "progress": {
            "bytes_total": codes.SIZE_UNKNOWN if f.bytes_total is None else f.bytes_total,
            "bytes_transferred": f.bytes_transferred,
            "completed": f.completed,
        },
        "ranges": [[offset, length] for offset, length in f.ranges] if f.ranges else [],
        "validated": f.validated,
        "filled_ranges": None if filled is None else ranges_to_json(filled),
    }


def file_rows_to_json(files: Sequence[FileDetails]) -> JSON:
    """The FileRows of ``?files=rows`` (Cancel's and Complete's answers): the files of
    :func:`file_to_json`, each as one array of its values in the order of
    ``FILE_ROW_FIELDS``, built from the record with no object per file: for thousands of
    files, about half the object form's bytes, encoded and decoded in about a third of its
    time (a test pins each row, rebuilt by ``bitsd._wire.files_from_rows``, to file_to_json).
    Ranges are the record's (offset, length) pairs as they are: arrays once encoded."""
    unknown = codes.SIZE_UNKNOWN
    return {
        "fields": list(FILE_ROW_FIELDS),
        "rows": [
            [
                f.remote_name,
                f.local_name,
                f.temp_name,
                unknown if f.bytes_total is None else f.bytes_total,
                f.bytes_transferred,
                f.completed,
                f.ranges or (),
                f.validated,
                filled,
            ]
            for f, filled in files
        ],
    }


def json_body(raw: bytes, *, what: str = "the body") -> object:
    """The JSON value of a request body (or of another JSON text, ``what`` in the messages:
    the events stream's messages).

    Raises:
        InvalidArgumentError: the body is not JSON (malformed, truncated, not UTF-8, -16 or -32,
            nested deeper than the decoder goes), or one of its strings or field names has a
            lone surrogate (it is no Unicode text: RFC 8259 section 8.2).
    """
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise InvalidArgumentError(f"{what} is not valid JSON: {exc}") from None
    except RecursionError:
        raise InvalidArgumentError(f"{what} is not valid JSON: it nests too deeply") from None
    if _may_hold_surrogates(raw):
        _check_text(value, what)
    return value


# A surrogate (U+D800-U+DFFF) written as a \u escape; the same as UTF-8 bytes (which the
# decoder takes: it decodes with "surrogatepass").
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_SURROGATE_UTF8 = re.compile(rb"\xed[\xa0-\xbf]")


def _may_hold_surrogates(raw: bytes) -> bool:
    """Whether a string of the JSON body ``raw`` may hold a surrogate (paired ones are fine:
    the decoder joins them), found on the bytes: the common body, ASCII or UTF-8 without
    surrogate escapes, is not walked."""
    if _SURROGATE_ESCAPE.search(raw):
        return True
    if raw.isascii():
        return False
    return not json.detect_encoding(raw).startswith("utf-8") or bool(_SURROGATE_UTF8.search(raw))


def _check_text(value: object, what: str) -> None:
    """Refuse a lone surrogate in any string or field name of ``value`` (``bitsd._text``: no
    UTF-8 text), naming where it is (iteratively: a body may nest as deep as the decoder
    went)."""
    # (value, where): where is None for the body itself, else (parent's where, key or index).
    stack: list[tuple[object, tuple[Any, str | int] | None]] = [(value, None)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, str):
            if not is_utf8(item):
                raise InvalidArgumentError(
                    f"{_path(where, what)} has a lone surrogate: a JSON string must be Unicode text"
                )
        elif isinstance(item, dict):
            for key, child in item.items():
                if not is_utf8(key):
                    raise InvalidArgumentError(
                        f"the field name {key!r} in {_path(where, what)} has a lone surrogate: a "
                        "JSON string must be Unicode text"
                    )
                stack.append((child, (where, key)))
        elif isinstance(item, list):
            stack.extend((child, (where, i)) for i, child in enumerate(item))


def _path(where: tuple[Any, str | int] | None, what: str) -> str:
    """``files[0].local_name`` for ``(((None, "files"), 0), "local_name")``; None is ``what``
    ("the body")."""
    parts: list[str] = []
    while where is not None:
        where, key = where
        parts.append(f"[{key}]" if isinstance(key, int) else f".{key}")
    path = "".join(reversed(parts)).removeprefix(".")
    return f"{what}{path}" if path[:1] in ("", "[") else path


def object_body(body: object) -> Mapping[str, Any]:
    """``body`` if it is a JSON object."""
    if not isinstance(body, Mapping):
        raise InvalidArgumentError(f"the body must be a JSON object, not {_kind(body)}")
    return body


@dataclasses.dataclass(frozen=True, slots=True)
class NewJob:
    """A checked ``POST /v1/jobs`` body: CreateJob's name and type, and what the same request
    does next (bitsd's extension, one request instead of up to four): add ``files``
    (AddFileSet), set ``priority``, and ``resume``."""

    display_name: str
    job_type: JobType
    files: list[tuple[str, str]] | None = None
    priority: Priority | None = None
    resume: bool = False


def new_job(body: object) -> NewJob:
    """The job a ``POST /v1/jobs`` body asks for."""
    fields = object_body(body)
    _only(fields, ("display_name", "type", "files", "priority", "resume"))
    name = fields.get("display_name")
    if not isinstance(name, str):
        raise InvalidArgumentError(f"display_name must be a string, not {_kind(name)}")
    job_type = enum_from_json(JobType, fields.get("type", "DOWNLOAD"), "type")
    files = None
    if fields.get("files") is not None:
        files = [pair for pair, _entry in _file_entries(fields["files"], ())]
    priority = fields.get("priority")
    return NewJob(
        name,
        job_type,
        files,
        None if priority is None else _priority_value(priority),
        _flag("resume", fields.get("resume", False)),
    )


@dataclasses.dataclass(frozen=True, slots=True)
class NewFiles:
    """A checked ``POST /v1/jobs/{id}/files`` body: several plain files (AddFileSet), or one
    file with a checksum (AddFile) or with ranges (AddFileWithRanges)."""

    pairs: list[tuple[str, str]]
    sha256: str | None = None
    ranges: list[tuple[int, int]] | None = None


def new_files(body: object) -> NewFiles:
    """The files of a ``POST /v1/jobs/{id}/files`` body."""
    fields = object_body(body)
    _only(fields, ("files",))
    pairs: list[tuple[str, str]] = []
    sha256: str | None = None
    ranges: list[tuple[int, int]] | None = None
    for i, (pair, entry) in enumerate(_file_entries(fields.get("files"), ("sha256", "ranges"))):
        where = f"files[{i}]"
        pairs.append(pair)
        if entry.get("sha256") is not None:
            sha256 = entry["sha256"]
            if not isinstance(sha256, str):
                raise InvalidArgumentError(f"{where}.sha256 must be a string, not {_kind(sha256)}")
        if entry.get("ranges") is not None:
            ranges = ranges_from_json(entry["ranges"], f"{where}.ranges")
    if sha256 is not None and ranges is not None:
        raise InvalidArgumentError("a file has sha256 or ranges, not both")
    if (sha256 is not None or ranges is not None) and len(pairs) > 1:
        raise InvalidArgumentError(
            "a file with sha256 or ranges is added alone: send it in a request of its own"
        )
    return NewFiles(pairs, sha256, ranges)


def _file_entries(
    files: object, extra: tuple[str, ...]
) -> list[tuple[tuple[str, str], Mapping[str, Any]]]:
    """The (remote name, local name) of each entry of a ``files`` list, with the entry; an
    entry may have ``extra`` fields besides the two names."""
    if not isinstance(files, list) or not files:
        raise InvalidArgumentError("files must be a non-empty list of {remote_name, local_name}")
    entries: list[tuple[tuple[str, str], Mapping[str, Any]]] = []
    allowed = ("remote_name", "local_name", *extra)
    known = frozenset(allowed)
    for i, item in enumerate(files):
        # The usual entry, told in a few operations (a create may list thousands); any other
        # goes through the checks below, which say what is wrong.
        if isinstance(item, dict) and item.keys() <= known:
            remote, local = item.get("remote_name"), item.get("local_name")
            if isinstance(remote, str) and isinstance(local, str):
                entries.append(((remote, local), item))
                continue
        where = f"files[{i}]"
        entry = object_body(item)
        _only(entry, allowed, where=where)
        remote, local = entry.get("remote_name"), entry.get("local_name")
        if not isinstance(remote, str) or not isinstance(local, str):
            raise InvalidArgumentError(f"{where} needs remote_name and local_name strings")
        entries.append(((remote, local), entry))
    return entries


def file_index(text: str) -> int:
    """The ``{index}`` of ``/v1/jobs/{id}/files/{index}/...`` (whether the job has that file is
    the engine's to say)."""
    try:
        return int(text)
    except ValueError:
        raise InvalidArgumentError(f"the job has no file number {text!r}") from None


def validation(body: object) -> bool:
    """The ``valid`` of a ``PUT .../files/{index}/validation`` body."""
    fields = object_body(body)
    _only(fields, ("valid",))
    return _flag("valid", fields.get("valid"))


def requested_ranges(body: object) -> list[tuple[int, int]]:
    """The ``ranges`` of a ``POST .../files/{index}/requested-ranges`` body."""
    fields = object_body(body)
    _only(fields, ("ranges",))
    return ranges_from_json(fields.get("ranges"))


def download_position(body: object) -> int:
    """The ``offset`` of a ``PUT .../files/{index}/download-position`` body."""
    fields = object_body(body)
    _only(fields, ("offset",))
    offset = fields.get("offset")
    if not isinstance(offset, int) or isinstance(offset, bool):
        raise InvalidArgumentError(f"offset must be an integer, not {_kind(offset)}")
    return offset


def prefixes(body: object) -> tuple[str, str]:
    """The (old, new) of a ``POST .../replace-remote-prefix`` body."""
    fields = object_body(body)
    _only(fields, ("old", "new"))
    old, new = fields.get("old"), fields.get("new")
    if not isinstance(old, str) or not isinstance(new, str):
        raise InvalidArgumentError("replace-remote-prefix needs old and new strings")
    return old, new


def reply_file_name(body: object) -> str | None:
    """The ``path`` of a ``PUT .../reply/file-name`` body (null: the generated name)."""
    fields = object_body(body)
    _only(fields, ("path",))
    path = fields.get("path")
    if path is not None and not isinstance(path, str):
        raise InvalidArgumentError(f"path must be a string or null, not {_kind(path)}")
    return path


@dataclasses.dataclass(frozen=True, slots=True)
class Credentials:
    """A checked ``PUT .../credentials`` body. ``repr`` leaves the password out."""

    target: int
    scheme: int
    user_name: str | None
    password: str | None = dataclasses.field(repr=False)


def credentials(body: object) -> Credentials:
    """The credentials of a ``PUT /v1/jobs/{id}/credentials`` body. Messages never quote the
    user name or password."""
    fields = object_body(body)
    _only(fields, ("target", "scheme", "user_name", "password"))
    target, scheme = auth_pair(fields.get("target"), fields.get("scheme"))
    user, password = fields.get("user_name"), fields.get("password")
    for what, value in (("user_name", user), ("password", password)):
        if value is not None and not isinstance(value, str):
            raise InvalidArgumentError(f"{what} must be a string or null")
    return Credentials(target, scheme, user, password)


def auth_pair(target: object, scheme: object) -> tuple[int, int]:
    """(target, scheme) from names (any case) or numbers. An unknown name is the code BITS
    gives an unknown value; a number goes to the engine as it is."""
    return (
        _auth_value(AuthTarget, target, codes.BG_E_INVALID_AUTH_TARGET, "target"),
        _auth_value(AuthScheme, scheme, codes.BG_E_INVALID_AUTH_SCHEME, "scheme"),
    )


def _auth_value(
    kind: type[AuthTarget] | type[AuthScheme], value: object, hresult: int, what: str
) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        text = value.strip()
        if _small_number(text):
            return int(text)
        if text.upper() in kind.__members__:
            return int(kind[text.upper()])
    raise BitsError(f"invalid authentication {what} {_kind(value)}", hresult=hresult)


def _small_number(text: str) -> bool:
    """Whether ``int(text)`` gives a plausible enum value: decimal digits only (not
    ``isdigit``: ``int`` refuses digits such as "\u00b9"), and fewer than 20 of them (``int``
    refuses strings over 4,300 digits)."""
    return text.isdecimal() and len(text) < 20


def page_params(query: Mapping[str, str]) -> tuple[int, int, bool]:
    """The (offset, limit, brief) of ``GET /v1/jobs``: ``brief`` for ``view=brief``."""
    offset = _int_param(query, "offset", 0, low=0)
    limit = _int_param(query, "limit", PAGE_LIMIT_DEFAULT, low=1, high=PAGE_LIMIT_MAX)
    return offset, limit, brief_view(query)


def brief_view(query: Mapping[str, str]) -> bool:
    """Whether the query asks ``view=brief`` (``view=full``, the default, otherwise)."""
    view = query.get("view", "full")
    if view not in ("full", "brief"):
        raise InvalidArgumentError(f"view must be full or brief, not {view!r}")
    return view == "brief"


def rows_view(query: Mapping[str, str]) -> bool:
    """Whether the query asks ``files=rows`` (``files=objects``, the default, otherwise): the
    files of Cancel's and Complete's answers as FileRows."""
    files = query.get("files", "objects")
    if files not in ("objects", "rows"):
        raise InvalidArgumentError(f"files must be objects or rows, not {files!r}")
    return files == "rows"


def wait_params(query: Mapping[str, str]) -> tuple[frozenset[JobState], float]:
    """The (states, timeout) of ``GET /v1/jobs/{id}/wait``; the timeout is capped."""
    names = [name.strip() for name in query.get("states", "").split(",") if name.strip()]
    if not names:
        raise InvalidArgumentError("states must list at least one state, e.g. TRANSFERRED,ERROR")
    states = frozenset(
        enum_from_json(JobState, int(name) if _small_number(name) else name, "states")
        for name in names
    )
    text = query.get("timeout")
    if text is None:
        return states, WAIT_TIMEOUT_DEFAULT
    try:
        timeout = float(text)
    except ValueError:
        raise InvalidArgumentError(f"timeout must be a number of seconds, not {text!r}") from None
    if not math.isfinite(timeout) or timeout < 0:
        raise InvalidArgumentError(f"timeout must be a finite number >= 0, not {text!r}")
    return states, min(timeout, WAIT_TIMEOUT_MAX)


async def job_changes(body: object, job: Job) -> list[Change]:
    """The setter calls of a ``PATCH /v1/jobs/{id}`` body, after checking every field, and the
    fields against each other and against ``job`` as it is now.

    The setters the job's state can refuse come first (``on_demand``, which the job's files can
    refuse too, ``dynamic_content``, ``http_method``, ``maximum_download_size``:
    BG_E_READ_ONLY_PROPERTY_AFTER_RESUME, all four alike; then ``priority``), so a refusal
    comes before anything has changed. What else a setter after the first would refuse is
    checked here (:func:`_check_conflicts`).
    """
    fields = object_body(body)
    _only(fields, tuple(_CHECKS))
    changes = [_CHECKS[name](fields[name]) for name in _CHECKS if name in fields]
    current = await job.snapshot()
    # Dynamic content, refused with file ranges, comes after on_demand: asked together, the
    # files are looked at (one at a time, as the setter does; rare enough).
    ranged = False
    if fields.get("dynamic_content") is True and "on_demand" in fields:
        files = range(current.progress.files_total)
        ranged = any([await job.get_file_ranges(i) for i in files])
    _check_conflicts(fields, current, ranged=ranged)
    return changes


def _check_conflicts(fields: Mapping[str, Any], current: JobSnapshot, *, ranged: bool) -> None:
    """What the setters would refuse because of another field of the body or of the job: a
    download-only property on an upload job; dynamic content with files added with ranges
    (``ranged``: only looked at when a setter comes before); a custom HTTP method with dynamic
    content, on-demand mode, or a priority other than FOREGROUND; on-demand mode with dynamic
    content. (The values are checked already.)"""
    if current.type is not JobType.DOWNLOAD:
        for name in _CHECKS:  # in the setters' order, as they would refuse it
            if name in fields:
                check_download_only(name, fields[name])
    if ranged:
        raise BitsError(
            "dynamic content does not go with file ranges",
            hresult=codes.BG_E_UNSUPPORTED_JOB_CONFIGURATION,
        )
    method = (
        check_http_method(fields["http_method"]) if "http_method" in fields else current.http_method
    )
    dynamic = fields.get("dynamic_content", current.dynamic_content)
    on_demand = fields.get("on_demand", current.on_demand)
    changed = {"http_method", "dynamic_content", "on_demand"} & set(fields)
    if on_demand and dynamic and changed - {"http_method"}:
        raise BitsError(
            "on-demand mode does not go with dynamic content",
            hresult=codes.BG_E_UNSUPPORTED_JOB_CONFIGURATION,
        )
    if method is None:
        return
    if on_demand and changed - {"dynamic_content"}:
        raise BitsError(
            "a custom HTTP method does not go with on-demand mode",
            hresult=codes.BG_E_NOT_SUPPORTED_WITH_CUSTOM_HTTP_METHOD,
        )
    if dynamic and ("http_method" in fields or "dynamic_content" in fields):
        raise BitsError(
            "a custom HTTP method does not go with dynamic content",
            hresult=codes.BG_E_NOT_SUPPORTED_WITH_CUSTOM_HTTP_METHOD,
        )
    if "priority" in fields:
        priority = _priority_value(fields["priority"])
        if priority is not Priority.FOREGROUND:
            raise BitsError(
                "a job with a custom HTTP method stays FOREGROUND",
                hresult=codes.BG_E_NOT_SUPPORTED_WITH_CUSTOM_HTTP_METHOD,
            )


def _display_name(value: object) -> Change:
    return functools.partial(
        Job.set_display_name, name=_string("display_name", value, MAX_DISPLAY_NAME_LENGTH)
    )


def _description(value: object) -> Change:
    return functools.partial(
        Job.set_description,
        description=_string("description", value, MAX_DESCRIPTION_LENGTH),
    )


def _priority(value: object) -> Change:
    return functools.partial(Job.set_priority, priority=_priority_value(value))


def _priority_value(value: object) -> Priority:
    """A priority from its name (any case) or its number. A number that is no priority is
    E_NOTIMPL, as SetPriority answers it (``bitsd._args.check_priority``); anything else that
    is no priority's name is E_INVALIDARG."""
    if is_int(value):
        return check_priority(value)
    return enum_from_json(Priority, value, "priority")


def _minimum_retry_delay(value: object) -> Change:
    return functools.partial(
        Job.set_minimum_retry_delay, seconds=_seconds("minimum_retry_delay", value)
    )


def _no_progress_timeout(value: object) -> Change:
    return functools.partial(
        Job.set_no_progress_timeout, seconds=_seconds("no_progress_timeout", value)
    )


def _maximum_download_time(value: object) -> Change:
    return functools.partial(
        Job.set_maximum_download_time, seconds=_seconds("maximum_download_time", value)
    )


def _flag(what: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise InvalidArgumentError(f"{what} must be true or false, not {_kind(value)}")
    return value


def _dynamic_content(value: object) -> Change:
    return functools.partial(Job.set_dynamic_content, enabled=_flag("dynamic_content", value))


def _on_demand(value: object) -> Change:
    return functools.partial(Job.set_on_demand, enabled=_flag("on_demand", value))


def _notify_flags(value: object) -> Change:
    if not is_int(value):
        raise InvalidArgumentError(f"notify_flags must be an integer, not {_kind(value)}")
    # Bits BITS does not define: E_NOTIMPL, as SetNotifyFlags answers them.
    return functools.partial(Job.set_notify_flags, flags=check_notify_flags(value))


def _notify_cmd_line(value: object) -> Change:
    fields = object_body(value)
    _only(fields, ("program", "parameters"), where="notify_cmd_line")
    program, parameters = fields.get("program"), fields.get("parameters")
    if program is None:
        if parameters is not None:
            raise InvalidArgumentError("notify_cmd_line.parameters needs a program")
    else:
        program = _string("notify_cmd_line.program", program, MAX_NOTIFY_PROGRAM_LENGTH)
        if not os.path.isabs(program):
            raise InvalidArgumentError(
                f"notify_cmd_line.program must be an absolute path, not {program!r}"
            )
        if parameters is not None:
            parameters = _string(
                "notify_cmd_line.parameters", parameters, MAX_NOTIFY_PARAMETERS_LENGTH
            )
        try:
            shlex.split(parameters or "")
        except ValueError as exc:
            raise InvalidArgumentError(f"the notify parameters cannot be parsed: {exc}") from None
    return functools.partial(Job.set_notify_cmd_line, program=program, parameters=parameters)


def _maximum_download_size(value: object) -> Change:
    size = _positive_or_none(
        value,
        BitsError(
            f"invalid maximum download size {_kind(value)}",
            hresult=codes.BG_E_MAX_DOWNLOAD_SIZE_INVALID_VALUE,
        ),
    )
    return functools.partial(Job.set_maximum_download_size, size=size)


def _custom_headers(value: object) -> Change:
    if value is not None and not isinstance(value, str):
        raise InvalidArgumentError(f"custom_headers must be a string or null, not {_kind(value)}")
    return functools.partial(Job.set_custom_headers, headers=check_custom_headers(value))


def _http_method(value: object) -> Change:
    if value is not None and not isinstance(value, str):
        raise InvalidArgumentError(f"http_method must be a string or null, not {_kind(value)}")
    return functools.partial(Job.set_http_method, method=check_http_method(value))


def _security_flags(value: object) -> Change:
    if not isinstance(value, int) or isinstance(value, bool):
        raise NotSupportedError(f"invalid security flags {_kind(value)}")
    return functools.partial(Job.set_security_flags, flags=check_security_flags(value))


def _proxy(value: object) -> Change:
    fields = object_body(value)
    _only(fields, ("usage", "list", "bypass"), where="proxy")
    usage = fields.get("usage")
    if isinstance(usage, str) and usage.strip().upper() in ProxyUsage.__members__:
        usage = ProxyUsage[usage.strip().upper()]
    if not isinstance(usage, int) or isinstance(usage, bool):
        raise NotSupportedError(f"invalid proxy usage {_kind(usage)}")
    lists = []
    for name in ("list", "bypass"):
        text = fields.get(name)
        if text is not None and not isinstance(text, str):
            raise InvalidArgumentError(f"proxy.{name} must be a string or null, not {_kind(text)}")
        lists.append(text)
    kind, proxy_list, bypass_list = check_proxy_settings(usage, lists[0], lists[1])
    return functools.partial(
        Job.set_proxy_settings, usage=kind, proxy_list=proxy_list, bypass_list=bypass_list
    )


def _ca_bundle(value: object) -> Change:
    path = None if value is None else _readable_file("ca bundle", value)
    return functools.partial(Job.set_ca_bundle, path=path)


def _client_certificate(value: object) -> Change:
    if value is None:
        return Job.remove_client_certificate
    fields = object_body(value)
    _only(fields, ("certificate", "key"), where="client_certificate")
    certificate = _readable_file("client certificate", fields.get("certificate"))
    key = fields.get("key")
    key = None if key is None else _readable_file("client key", key)
    return functools.partial(Job.set_client_certificate, certificate=certificate, key=key)


def _transfer_policy(value: object) -> Change:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 0xFFFFFFFF:
        raise InvalidArgumentError(f"invalid transfer policy {_kind(value)}")
    return functools.partial(Job.set_transfer_policy, policy=value)


def _bandwidth_limit(value: object) -> Change:
    limit = _positive_or_none(
        value,
        InvalidArgumentError(f"the bandwidth limit is a positive byte rate up to {MAX_BYTE_COUNT}"),
    )
    return functools.partial(Job.set_bandwidth_limit, bytes_per_second=limit)


def _positive_or_none(value: object, error: BitsError) -> int | None:
    """``value`` if it is null or a positive integer a job takes as a byte count (at most
    MAX_BYTE_COUNT); else raise ``error``."""
    if value is None or is_byte_count(value):
        return value
    raise error


def _readable_file(what: str, path: object) -> str:
    """``path`` if it names a readable file: the engine's check of a file option, with its
    codes."""
    if not isinstance(path, str) or not os.path.isabs(path):
        raise InvalidArgumentError(f"the {what} must be an absolute path")
    if not os.path.isfile(path) or not os.access(path, os.R_OK):
        raise BitsError(
            f"cannot read the {what} {path}", hresult=codes.hresult_from_errno(errno.ENOENT)
        )
    return path


# PATCH fields and their checks, in the order their setters are applied: first those the
# job's state can refuse.
_CHECKS: dict[str, Callable[[object], Change]] = {
    "on_demand": _on_demand,  # first: the job's files can refuse it too
    "dynamic_content": _dynamic_content,
    "http_method": _http_method,
    "maximum_download_size": _maximum_download_size,
    "priority": _priority,
    "display_name": _display_name,
    "description": _description,
    "minimum_retry_delay": _minimum_retry_delay,
    "no_progress_timeout": _no_progress_timeout,
    "maximum_download_time": _maximum_download_time,
    "notify_flags": _notify_flags,
    "notify_cmd_line": _notify_cmd_line,
    "custom_headers": _custom_headers,
    "security_flags": _security_flags,
    "proxy": _proxy,
    "ca_bundle": _ca_bundle,
    "client_certificate": _client_certificate,
    "transfer_policy": _transfer_policy,
    "bandwidth_limit": _bandwidth_limit,
}


def _int_param(
    query: Mapping[str, str], name: str, default: int, *, low: int, high: int | None = None
) -> int:
    text = query.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise InvalidArgumentError(f"{name} must be an integer, not {text!r}") from None
    if value < low or (high is not None and value > high):
        bounds = f">= {low}" if high is None else f"from {low} to {high}"
        raise InvalidArgumentError(f"{name} must be {bounds}, not {value}")
    return value


def _only(fields: Mapping[str, Any], allowed: tuple[str, ...], where: str = "the body") -> None:
    unknown = sorted(set(fields) - set(allowed))
    if unknown:
        raise InvalidArgumentError(
            f"unknown field {unknown[0]!r} in {where} (allowed: {', '.join(allowed)})"
        )


def _string(what: str, value: object, limit: int) -> str:
    if not isinstance(value, str):
        raise InvalidArgumentError(f"{what} must be a string, not {_kind(value)}")
    if len(value) > limit:
        raise InvalidArgumentError(
            f"{what} has {len(value)} characters; at most {limit}",
            hresult=codes.BG_E_STRING_TOO_LONG,
        )
    return value


def _seconds(what: str, value: object) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise InvalidArgumentError(f"{what} must be a number of seconds, not {_kind(value)}")
    try:
        seconds = float(value)
    except OverflowError:  # an integer beyond every float (10**400): not finite either
        seconds = math.inf
    if not math.isfinite(seconds) or seconds < 0:
        raise InvalidArgumentError(f"{what} must be a finite number >= 0, not {value!r}")
    return seconds


def _kind(value: object) -> str:
    """How a JSON value reads in a message."""
    if value is None:
        return "null"
    if isinstance(value, bool | int | float):
        return repr(value).lower() if isinstance(value, bool) else repr(value)
    if isinstance(value, str):
        return repr(value) if len(value) <= 40 else "a string"
    return "an object" if isinstance(value, Mapping) else "a list"
