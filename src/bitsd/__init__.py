"""bitsd: background file transfers with the semantics of Microsoft BITS.

The in-process engine is :class:`bitsd.aio.Engine`; its jobs are :class:`bitsd.aio.Job`.
Enumerations, records and errors carry BITS's names and numeric values; ``bitsd.codes`` holds the
HRESULTs.
"""

from __future__ import annotations

from bitsd import aio, codes
from bitsd._clock import Clock, FakeClock, SystemClock
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
    TransferError,
)
from bitsd._policy import EngineConfig, RetryPolicy
from bitsd._records import ErrorInfo, FileInfo, FileProgress, JobProgress, JobTimes, ReplyProgress
from bitsd.codes import LENGTH_TO_EOF, S_OK, SIZE_UNKNOWN

__version__ = "0.1.0"

__all__ = [
    "LENGTH_TO_EOF",
    "SIZE_UNKNOWN",
    "S_OK",
    "BitsError",
    "Clock",
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
    "JobState",
    "JobTimes",
    "JobType",
    "NotFoundError",
    "NotSupportedError",
    "NotifyFlags",
    "Priority",
    "ReadOnlyPropertyError",
    "ReplyProgress",
    "RetryPolicy",
    "StoreError",
    "SystemClock",
    "TransferError",
    "__version__",
    "aio",
    "codes",
]
