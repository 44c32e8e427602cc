"""Checks of a caller's arguments that look at the value alone, shared by the engine's verbs
and the daemon's clients (``bitsd._client``, which check before they send), so that both refuse
a value alike, with the same code.

Rules:
- A check needs no job, no store and no I/O. It returns the value in the form the engine keeps,
  or raises the BitsError the engine raises for it: InvalidArgumentError (E_INVALIDARG) for a
  value of the wrong type, and for a value of the right type BITS refuses, BITS's own code.
- A bool is no number: ``isinstance(True, int)`` holds in Python, but True is not a priority,
  a set of flags, a byte count, a file index or a time, and the control API's JSON keeps
  ``true`` and ``1`` apart.
- A BOOL property (dynamic content, on-demand mode, a file's validation state, ``create_job``'s
  ``resume``) takes a bool only: anything else is E_INVALIDARG, as the control API answers a
  value that is not true or false. No truthiness: ``"no"`` is not False.
- An enum takes the integer value of one of its members (a member is one). An integer BITS's
  enum does not have is the code BITS answers for it: E_NOTIMPL for SetPriority and
  SetNotifyFlags (bits-inventory §2.2, §4.1). A value of another type (a bool, a float, a
  name) is E_INVALIDARG. Job types and job states, which no BITS setter takes, are
  E_INVALIDARG either way.
- Seconds are an int or a float, finite and >= 0. A byte count is an int from 1 to
  ``MAX_BYTE_COUNT``.
- Messages quote the value with ``bitsd._errors.shown``: any value can be refused, even an int
  too long to write in decimal.
"""

from __future__ import annotations

import math
from typing import TypeGuard

from bitsd import codes
from bitsd._enums import JobState, JobType, NotifyFlags, Priority
from bitsd._errors import BitsError, InvalidArgumentError, NotSupportedError, shown
from bitsd._policy import MAX_BYTE_COUNT
from bitsd._records import FileInfo

__all__ = [
    "MAX_TRANSFER_POLICY",
    "NOTIFY_FLAGS_MASK",
    "check_bandwidth_limit",
    "check_bool",
    "check_download_position",
    "check_file_ref",
    "check_job_type",
    "check_maximum_download_size",
    "check_notify_flags",
    "check_priority",
    "check_seconds",
    "check_transfer_policy",
    "file_pairs",
    "is_byte_count",
    "is_int",
    "job_states",
    "wait_timeout",
]

# The BG_NOTIFY_* bits BITS defines (JOB_TRANSFERRED .. FILE_RANGES_TRANSFERRED).
NOTIFY_FLAGS_MASK = 0x3F
# BITS_JOB_PROPERTY_ID_COST_FLAGS is a DWORD.
MAX_TRANSFER_POLICY = 0xFFFFFFFF

_STATE_VALUES = frozenset(int(s) for s in JobState)


def is_int(value: object) -> TypeGuard[int]:
    """An integer that is not a bool (True is not a byte count)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_byte_count(value: object) -> TypeGuard[int]:
    """A positive integer a job can keep as a byte count (at most ``MAX_BYTE_COUNT``)."""
    return is_int(value) and 0 < value <= MAX_BYTE_COUNT


def check_bool(what: str, value: object) -> bool:
    """``value`` if it is a bool (a BOOL property or argument).

    Raises:
        InvalidArgumentError: anything else, however truthy.
    """
    if not isinstance(value, bool):
        raise InvalidArgumentError(f"{what} must be True or False, not {shown(value)}")
    return value


def check_seconds(what: str, value: object) -> float:
    """``value`` as seconds: an int or a float (not a bool, not a string), finite and >= 0, as
    the daemon's control API takes it.

    Raises:
        InvalidArgumentError: anything else (an int beyond the floats is not finite).
    """
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise InvalidArgumentError(f"{what} must be a number of seconds, not {shown(value)}")
    try:
        number = float(value)
    except OverflowError:  # an int beyond the floats
        number = math.inf
    if not math.isfinite(number) or number < 0:
        raise InvalidArgumentError(f"{what} must be a finite number >= 0, not {shown(value)}")
    return number


def check_priority(value: object) -> Priority:
    """SetPriority's argument.

    Raises:
        InvalidArgumentError: not an integer (a bool, a float, a name).
        NotSupportedError: an integer that is no priority (E_NOTIMPL, as BITS answers it).
    """
    if not is_int(value):
        raise InvalidArgumentError(f"the priority must be a Priority, not {shown(value)}")
    try:
        return Priority(value)
    except ValueError:
        raise NotSupportedError(f"{shown(value)} is not a priority") from None


def check_notify_flags(value: object) -> NotifyFlags:
    """SetNotifyFlags' argument.

    Raises:
        InvalidArgumentError: not an integer (a bool, a float, a string, None).
        NotSupportedError: bits outside the BG_NOTIFY_* flags, or a negative number (E_NOTIMPL,
            as BITS answers invalid flags).
    """
    if not is_int(value):
        raise InvalidArgumentError(f"notify flags must be an integer, not {shown(value)}")
    flags = int(value)
    if flags < 0 or flags & ~NOTIFY_FLAGS_MASK:
        raise NotSupportedError(f"notify flags {shown(value)} have bits BITS does not define")
    return NotifyFlags(flags)


def check_job_type(value: object) -> JobType:
    """CreateJob's job type.

    Raises:
        InvalidArgumentError: not the integer value of a JobType.
    """
    if is_int(value):
        try:
            return JobType(value)
        except ValueError:
            pass
    raise InvalidArgumentError(f"{shown(value)} is not a job type")


def check_transfer_policy(value: object) -> int:
    """BITS_JOB_PROPERTY_ID_COST_FLAGS: cost-state bits in a DWORD.

    Raises:
        InvalidArgumentError: not an integer from 0 to 0xFFFFFFFF.
    """
    if not is_int(value) or not 0 <= value <= MAX_TRANSFER_POLICY:
        raise InvalidArgumentError(f"invalid transfer policy {shown(value)}")
    return int(value)


def check_maximum_download_size(value: object) -> int | None:
    """BITS_JOB_PROPERTY_MAX_DOWNLOAD_SIZE: a byte count, or None for no limit.

    Raises:
        BitsError: BG_E_MAX_DOWNLOAD_SIZE_INVALID_VALUE for anything else.
    """
    if value is None or is_byte_count(value):
        return value
    raise BitsError(
        f"invalid maximum download size {shown(value)}",
        hresult=codes.BG_E_MAX_DOWNLOAD_SIZE_INVALID_VALUE,
    )


def check_bandwidth_limit(value: object) -> int | None:
    """A job's bandwidth limit (a bitsd extension): bytes per second, or None for no limit.

    Raises:
        InvalidArgumentError: anything else.
    """
    if value is None or is_byte_count(value):
        return value
    raise InvalidArgumentError("the bandwidth limit is a positive byte rate")


def check_download_position(value: object) -> int:
    """UpdateDownloadPosition's offset as a value alone: an integer >= 0 (whether the file
    has it is the job's to say).

    Raises:
        InvalidArgumentError: anything else.
    """
    if not is_int(value) or value < 0:
        raise InvalidArgumentError(f"invalid download position {shown(value)}")
    return int(value)


def check_file_ref(file: object) -> None:
    """A file argument as a value alone: an index (an integer; a bool is none) or a FileInfo
    (whether the job has that file is the job's to say).

    Raises:
        InvalidArgumentError: anything else.
    """
    if not is_int(file) and not isinstance(file, FileInfo):
        raise InvalidArgumentError(f"the job has no file number {shown(file)}")


def file_pairs(files: object) -> list[tuple[str, str]]:
    """AddFileSet's ``files`` as a list of (remote name, local name) pairs of strings.

    Raises:
        InvalidArgumentError: not an iterable of pairs of strings.
    """
    try:
        items = iter(files)  # type: ignore[call-overload]
    except TypeError:
        raise InvalidArgumentError("the files must be (remote name, local name) pairs") from None
    pairs = []
    for item in items:
        try:
            remote, local = item
        except (TypeError, ValueError):
            raise InvalidArgumentError(
                f"a file must be a (remote name, local name) pair, not {shown(item)}"
            ) from None
        if not isinstance(remote, str) or not isinstance(local, str):
            raise InvalidArgumentError("remote and local names must be strings")
        pairs.append((remote, local))
    return pairs


def job_states(states: object) -> frozenset[JobState]:
    """``wait``'s states: one JobState, or an iterable of JobState values.

    Raises:
        InvalidArgumentError: anything else.
    """
    if isinstance(states, JobState):
        return frozenset([states])
    try:
        items = iter(states)  # type: ignore[call-overload]
    except TypeError:
        raise InvalidArgumentError(
            f"not a JobState or an iterable of them: {shown(states)}"
        ) from None
    wanted = set()
    for state in items:
        if not is_int(state) or state not in _STATE_VALUES:
            raise InvalidArgumentError(f"not a JobState: {shown(state)}")
        wanted.add(JobState(state))
    return frozenset(wanted)


def wait_timeout(timeout: object) -> float | None:
    """``wait``'s timeout as the event loop takes it: None (no timeout) for None and for
    numbers too large to be a time (infinity, an int beyond the floats).

    Raises:
        InvalidArgumentError: not None, an int or a float (a bool is none), or NaN.
    """
    if timeout is None:
        return None
    if not isinstance(timeout, int | float) or isinstance(timeout, bool) or timeout != timeout:
        raise InvalidArgumentError(f"the timeout must be None or seconds, not {shown(timeout)}")
    try:
        seconds = float(timeout)
    except OverflowError:  # an int beyond the floats
        return None
    return None if seconds == math.inf else seconds
