"""Pins the public surface of bitsd: the exported names, the enums' BITS values, the frozen
records and the typing marker. A change here is a change of the public API."""

from __future__ import annotations

import dataclasses
import importlib.resources
from datetime import UTC, datetime
from typing import Any

import pytest

import bitsd
import bitsd.aio
from bitsd import ErrorContext, JobState, JobType, NotifyFlags, Priority

# Copied from bitsd/__init__.py, in its isort-style order (constants, classes, then the rest).
EXPECTED_ALL = [
    "LENGTH_TO_EOF",
    "SIZE_UNKNOWN",
    "S_OK",
    "AuthScheme",
    "AuthTarget",
    "BandwidthSchedule",
    "BitsError",
    "Clock",
    "CostStates",
    "EmptyJobError",
    "EngineConfig",
    "ErrorContext",
    "ErrorInfo",
    "ErrorInfoUnavailableError",
    "FakeClock",
    "FileInfo",
    "FileProgress",
    "InvalidArgumentError",
    "InvalidStateError",
    "JobProgress",
    "JobSnapshot",
    "JobState",
    "JobTimes",
    "JobType",
    "Manager",
    "NotFoundError",
    "NotSupportedError",
    "NotifyFlags",
    "Priority",
    "ProxyUsage",
    "ReadOnlyPropertyError",
    "ReplyProgress",
    "RetryPolicy",
    "SecurityFlags",
    "StoreError",
    "SystemClock",
    "TransferError",
    "__version__",
    "aio",
    "codes",
    "connect",
]


def test_bitsd_all_is_pinned() -> None:
    """bitsd.__all__ is exactly the pinned list, in order, without duplicates."""
    assert bitsd.__all__ == EXPECTED_ALL
    assert len(set(bitsd.__all__)) == len(bitsd.__all__)


def test_every_exported_name_exists() -> None:
    """Every name in bitsd.__all__ is an attribute of the package."""
    assert [name for name in bitsd.__all__ if not hasattr(bitsd, name)] == []


def test_star_import_gives_exactly_all() -> None:
    """``from bitsd import *`` binds exactly the names of __all__."""
    namespace: dict[str, Any] = {}
    exec("from bitsd import *", namespace)  # noqa: S102 (a fixed, trusted statement)
    namespace.pop("__builtins__", None)
    assert sorted(EXPECTED_ALL) == sorted(namespace)


def test_aio_all_is_pinned() -> None:
    """bitsd.aio exports the engine, the job handle, the daemon's Manager and connect, and
    nothing else."""
    assert bitsd.aio.__all__ == ["Engine", "Job", "Manager", "connect"]
    assert all(hasattr(bitsd.aio, name) for name in bitsd.aio.__all__)


def test_version_is_a_string() -> None:
    """bitsd.__version__ is a non-empty string."""
    assert isinstance(bitsd.__version__, str)
    assert bitsd.__version__


# --- enums carry BITS's numeric values ----------------------------------------------------------


def _values(enum_type: Any) -> dict[str, int]:
    return {member.name: int(member.value) for member in enum_type}


def test_job_type_values() -> None:
    """JobType is BG_JOB_TYPE: DOWNLOAD=0, UPLOAD=1, UPLOAD_REPLY=2."""
    assert _values(JobType) == {"DOWNLOAD": 0, "UPLOAD": 1, "UPLOAD_REPLY": 2}


def test_job_state_values() -> None:
    """JobState is BG_JOB_STATE, QUEUED=0 .. CANCELLED=8."""
    expected = {
        "QUEUED": 0,
        "CONNECTING": 1,
        "TRANSFERRING": 2,
        "SUSPENDED": 3,
        "ERROR": 4,
        "TRANSIENT_ERROR": 5,
        "TRANSFERRED": 6,
        "ACKNOWLEDGED": 7,
        "CANCELLED": 8,
    }
    assert expected == _values(JobState)


def test_priority_values() -> None:
    """Priority is BG_JOB_PRIORITY: FOREGROUND=0, HIGH=1, NORMAL=2, LOW=3."""
    assert _values(Priority) == {"FOREGROUND": 0, "HIGH": 1, "NORMAL": 2, "LOW": 3}


def test_error_context_values() -> None:
    """ErrorContext is BG_ERROR_CONTEXT, NONE=0 .. SERVER_CERTIFICATE_CALLBACK=8."""
    expected = {
        "NONE": 0,
        "UNKNOWN": 1,
        "GENERAL_QUEUE_MANAGER": 2,
        "QUEUE_MANAGER_NOTIFICATION": 3,
        "LOCAL_FILE": 4,
        "REMOTE_FILE": 5,
        "GENERAL_TRANSPORT": 6,
        "REMOTE_APPLICATION": 7,
        "SERVER_CERTIFICATE_CALLBACK": 8,
    }
    assert expected == _values(ErrorContext)


def test_notify_flags_values() -> None:
    """NotifyFlags are the BG_NOTIFY_* bits 0x1, 0x2, 0x4, 0x8, 0x10, 0x20."""
    expected = {
        "JOB_TRANSFERRED": 0x1,
        "JOB_ERROR": 0x2,
        "DISABLE": 0x4,
        "JOB_MODIFICATION": 0x8,
        "FILE_TRANSFERRED": 0x10,
        "FILE_RANGES_TRANSFERRED": 0x20,
    }
    assert expected == _values(NotifyFlags)


@pytest.mark.parametrize(
    "member",
    [
        JobState.QUEUED,
        JobState.TRANSIENT_ERROR,
        JobType.UPLOAD_REPLY,
        Priority.FOREGROUND,
        ErrorContext.REMOTE_FILE,
    ],
    ids=str,
)
def test_enum_members_print_their_names(member: Any) -> None:
    """Enum members print as their BITS names, e.g. str(JobState.QUEUED) == "QUEUED"."""
    assert member.name == str(member)
    assert member.name == f"{member}"


def test_job_state_queued_prints_queued() -> None:
    """str(JobState.QUEUED) is exactly "QUEUED"."""
    assert str(JobState.QUEUED) == "QUEUED"


def test_job_state_classes() -> None:
    """The final states are ACKNOWLEDGED and CANCELLED; the action states are the four of §1.3."""
    assert {JobState.ACKNOWLEDGED, JobState.CANCELLED} == {s for s in JobState if s.is_final}
    expected_active = {
        JobState.QUEUED,
        JobState.CONNECTING,
        JobState.TRANSFERRING,
        JobState.TRANSIENT_ERROR,
    }
    assert expected_active == {s for s in JobState if s.is_active}


def test_size_unknown_is_uint64_minus_one() -> None:
    """bitsd.SIZE_UNKNOWN is BG_SIZE_UNKNOWN, (UINT64)-1."""
    assert bitsd.SIZE_UNKNOWN == 2**64 - 1
    assert bitsd.S_OK == 0


# --- frozen records -----------------------------------------------------------------------------

_NOW = datetime(2027, 1, 15, 8, 0, tzinfo=UTC)
_PROGRESS = bitsd.FileProgress(bytes_total=10, bytes_transferred=5, completed=False)
_FILE = bitsd.FileInfo("http://example.test/x", "/srv/x", _PROGRESS, "/srv/.x.tmp")

RECORDS: list[tuple[object, str]] = [
    (bitsd.JobProgress(1, 2, 3, 4), "bytes_total"),
    (_PROGRESS, "completed"),
    (bitsd.ReplyProgress(1, 2), "bytes_transferred"),
    (bitsd.JobTimes(_NOW, _NOW, None), "transfer_completion_time"),
    (_FILE, "local_name"),
    (bitsd.ErrorInfo(1, ErrorContext.NONE, "d", "c", _FILE, "http"), "code"),
    (bitsd.RetryPolicy(), "minimum_retry_delay"),
    (bitsd.EngineConfig(), "max_background_jobs"),
]


@pytest.mark.parametrize(("record", "field"), RECORDS, ids=[type(r).__name__ for r, _ in RECORDS])
def test_records_are_frozen(record: object, field: str) -> None:
    """Assigning to a field of a public record raises dataclasses.FrozenInstanceError."""
    assert dataclasses.is_dataclass(record)
    before = getattr(record, field)
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(record, field, 0)
    assert before == getattr(record, field)


def test_py_typed_marker_is_shipped() -> None:
    """The package carries py.typed, so type checkers use its annotations."""
    assert importlib.resources.files("bitsd").joinpath("py.typed").is_file()
