"""The JSON shapes the daemon adds to ``bitsd._wire``: the Job object and checked request bodies.

Rules:
- A Job is one snapshot of the job (``Job.snapshot``) in the shape of ``bitsd._wire``.
- A request body is checked whole before anything is applied: :func:`job_changes` turns a PATCH
  body into setter calls only when every field has a valid type and value, so a 400 never
  leaves a job half-changed. The setters still check again (the engine is the authority).
- Query parameters are checked the same way (:func:`page_params`, :func:`wait_params`).
- Every mistake is an InvalidArgumentError naming the field (400), or BG_E_STRING_TOO_LONG for a
  string over its limit, as the engine reports it.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from bitsd import codes
from bitsd._enums import JobState, JobType, Priority
from bitsd._errors import InvalidArgumentError
from bitsd._job import Job
from bitsd._policy import (
    MAX_DESCRIPTION_LENGTH,
    MAX_DISPLAY_NAME_LENGTH,
    MAX_NOTIFY_PARAMETERS_LENGTH,
    MAX_NOTIFY_PROGRAM_LENGTH,
)
from bitsd._wire import JSON, enum_from_json, snapshot_to_json

__all__ = [
    "PAGE_LIMIT_DEFAULT",
    "PAGE_LIMIT_MAX",
    "WAIT_TIMEOUT_DEFAULT",
    "WAIT_TIMEOUT_MAX",
    "Change",
    "file_pairs",
    "job_changes",
    "job_to_json",
    "new_job",
    "object_body",
    "page_params",
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

# The notify flags BITS defines (BG_NOTIFY_JOB_TRANSFERRED .. BG_NOTIFY_FILE_RANGES_TRANSFERRED).
_NOTIFY_FLAGS_MASK = 0x3F


async def job_to_json(job: Job) -> JSON:
    """The Job object of the control API (one consistent read of the job)."""
    return snapshot_to_json(await job.snapshot())


def object_body(body: object) -> Mapping[str, Any]:
    """``body`` if it is a JSON object."""
    if not isinstance(body, Mapping):
        raise InvalidArgumentError(f"the body must be a JSON object, not {_kind(body)}")
    return body


def new_job(body: object) -> tuple[str, JobType]:
    """The (display name, type) of a ``POST /v1/jobs`` body."""
    fields = object_body(body)
    _only(fields, ("display_name", "type"))
    name = fields.get("display_name")
    if not isinstance(name, str):
        raise InvalidArgumentError(f"display_name must be a string, not {_kind(name)}")
    job_type = enum_from_json(JobType, fields.get("type", "DOWNLOAD"), "type")
    return name, job_type


def file_pairs(body: object) -> list[tuple[str, str]]:
    """The (remote name, local name) pairs of a ``POST /v1/jobs/{id}/files`` body."""
    fields = object_body(body)
    _only(fields, ("files",))
    files = fields.get("files")
    if not isinstance(files, list) or not files:
        raise InvalidArgumentError("files must be a non-empty list of {remote_name, local_name}")
    pairs = []
    for i, item in enumerate(files):
        entry = object_body(item)
        _only(entry, ("remote_name", "local_name"), where=f"files[{i}]")
        remote, local = entry.get("remote_name"), entry.get("local_name")
        if not isinstance(remote, str) or not isinstance(local, str):
            raise InvalidArgumentError(f"files[{i}] needs remote_name and local_name strings")
        pairs.append((remote, local))
    return pairs


def page_params(query: Mapping[str, str]) -> tuple[int, int]:
    """The (offset, limit) of ``GET /v1/jobs``."""
    offset = _int_param(query, "offset", 0, low=0)
    limit = _int_param(query, "limit", PAGE_LIMIT_DEFAULT, low=1, high=PAGE_LIMIT_MAX)
    return offset, limit


def wait_params(query: Mapping[str, str]) -> tuple[frozenset[JobState], float]:
    """The (states, timeout) of ``GET /v1/jobs/{id}/wait``; the timeout is capped."""
    names = [name.strip() for name in query.get("states", "").split(",") if name.strip()]
    if not names:
        raise InvalidArgumentError("states must list at least one state, e.g. TRANSFERRED,ERROR")
    states = frozenset(
        enum_from_json(JobState, int(name) if name.isdigit() else name, "states") for name in names
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


def job_changes(body: object) -> list[Change]:
    """The setter calls of a ``PATCH /v1/jobs/{id}`` body, after checking every field.

    ``dynamic_content`` comes first: it is the one property the job's state can refuse
    (BG_E_READ_ONLY_PROPERTY_AFTER_RESUME), so a refusal comes before anything has changed.
    """
    fields = object_body(body)
    _only(fields, tuple(_CHECKS))
    return [_CHECKS[name](fields[name]) for name in _CHECKS if name in fields]


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
    return functools.partial(Job.set_priority, priority=enum_from_json(Priority, value, "priority"))


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


def _dynamic_content(value: object) -> Change:
    if not isinstance(value, bool):
        raise InvalidArgumentError(f"dynamic_content must be true or false, not {_kind(value)}")
    return functools.partial(Job.set_dynamic_content, enabled=value)


def _notify_flags(value: object) -> Change:
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidArgumentError(f"notify_flags must be an integer, not {_kind(value)}")
    if value < 0 or value & ~_NOTIFY_FLAGS_MASK:
        raise InvalidArgumentError(f"notify_flags 0x{value:X} has bits BITS does not define")
    return functools.partial(Job.set_notify_flags, flags=value)


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
    return functools.partial(Job.set_notify_cmd_line, program=program, parameters=parameters)


# PATCH fields and their checks, in the order their setters are applied.
_CHECKS: dict[str, Callable[[object], Change]] = {
    "dynamic_content": _dynamic_content,
    "display_name": _display_name,
    "description": _description,
    "priority": _priority,
    "minimum_retry_delay": _minimum_retry_delay,
    "no_progress_timeout": _no_progress_timeout,
    "maximum_download_time": _maximum_download_time,
    "notify_flags": _notify_flags,
    "notify_cmd_line": _notify_cmd_line,
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
    if not math.isfinite(value) or value < 0:
        raise InvalidArgumentError(f"{what} must be a finite number >= 0, not {value!r}")
    return float(value)


def _kind(value: object) -> str:
    """How a JSON value reads in a message."""
    if value is None:
        return "null"
    if isinstance(value, bool | int | float):
        return repr(value).lower() if isinstance(value, bool) else repr(value)
    if isinstance(value, str):
        return repr(value) if len(value) <= 40 else "a string"
    return "an object" if isinstance(value, Mapping) else "a list"
