"""bitsd: background file transfers with the semantics of Microsoft BITS.

The in-process engine is :class:`bitsd.aio.Engine`; its jobs are :class:`bitsd.aio.Job`.
:func:`bitsd.connect` returns a synchronous :class:`Manager` of the user's daemon (and
``await bitsd.aio.connect()`` an asynchronous one) with the same verbs.
Enumerations, records and errors carry BITS's names and numeric values; ``bitsd.codes`` holds the
HRESULTs.
"""

from __future__ import annotations

from bitsd import aio, codes
from bitsd._bandwidth import BandwidthSchedule
from bitsd._clock import Clock, FakeClock, SystemClock
from bitsd._enums import (
    AuthScheme,
    AuthTarget,
    CostStates,
    ErrorContext,
    JobState,
    JobType,
    NotifyFlags,
    Priority,
    ProxyUsage,
    SecurityFlags,
)
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
from bitsd._records import (
    ErrorInfo,
    FileInfo,
    FileProgress,
    JobProgress,
    JobSnapshot,
    JobTimes,
    ReplyProgress,
)
from bitsd._sync import Manager, connect
from bitsd.codes import LENGTH_TO_EOF, S_OK, SIZE_UNKNOWN

__version__ = "0.1.0"

__all__ = [
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
