"""Frozen records that the engine hands out: progress, times, errors, files.

Rules:
- Every record is a frozen dataclass; nothing handed to a caller can change the engine's state.
- Sizes that are not known yet are ``SIZE_UNKNOWN`` (2**64 - 1), exactly as BITS reports them.
- Times are timezone-aware UTC datetimes; ``None`` means "not yet" (e.g. no completion time).
"""

from __future__ import annotations

import dataclasses
from datetime import datetime

from bitsd._enums import ErrorContext, JobState, JobType, NotifyFlags, Priority

__all__ = [
    "ErrorInfo",
    "FileInfo",
    "FileProgress",
    "JobProgress",
    "JobSnapshot",
    "JobTimes",
    "ReplyProgress",
]


@dataclasses.dataclass(frozen=True, slots=True)
class JobProgress:
    """BG_JOB_PROGRESS. ``bytes_total`` is SIZE_UNKNOWN while any file's size is unknown."""

    bytes_total: int
    bytes_transferred: int
    files_total: int
    files_transferred: int


@dataclasses.dataclass(frozen=True, slots=True)
class FileProgress:
    """BG_FILE_PROGRESS. ``completed`` is True once the whole file is in its temporary file."""

    bytes_total: int
    bytes_transferred: int
    completed: bool


@dataclasses.dataclass(frozen=True, slots=True)
class ReplyProgress:
    """BG_JOB_REPLY_PROGRESS (upload-reply jobs)."""

    bytes_total: int
    bytes_transferred: int


@dataclasses.dataclass(frozen=True, slots=True)
class JobTimes:
    """BG_JOB_TIMES."""

    creation_time: datetime
    modification_time: datetime
    transfer_completion_time: datetime | None


@dataclasses.dataclass(frozen=True, slots=True)
class FileInfo:
    """A file of a job: its names (BG_FILE_INFO), progress and temporary file."""

    remote_name: str
    local_name: str
    progress: FileProgress
    temporary_name: str


@dataclasses.dataclass(frozen=True, slots=True)
class ErrorInfo:
    """What IBackgroundCopyError reports.

    Attributes:
        code: the HRESULT.
        context: where the error happened.
        description: a sentence describing the error.
        context_description: a sentence describing the context.
        file: the file in error (remote and local name), or None when the error is not tied to a
            file (BITS answers BG_E_FILE_NOT_AVAILABLE then).
        protocol: "http", "https" or "file", or None when not tied to a protocol.
    """

    code: int
    context: ErrorContext
    description: str
    context_description: str
    file: FileInfo | None
    protocol: str | None


@dataclasses.dataclass(frozen=True, slots=True)
class JobSnapshot:
    """Everything about a job that may be shown, read at one moment (credentials never are).

    Attributes mirror the job's getters; ``error`` is set in ERROR and TRANSIENT_ERROR only;
    ``custom_headers`` is None when the headers are write-only.
    """

    id: str
    display_name: str
    description: str
    type: JobType
    state: JobState
    priority: Priority
    owner: int
    notify_flags: NotifyFlags
    notify_program: str | None
    notify_parameters: str | None
    minimum_retry_delay: float
    no_progress_timeout: float
    maximum_download_time: float
    dynamic_content: bool
    error_count: int
    progress: JobProgress
    times: JobTimes
    error: ErrorInfo | None
    maximum_download_size: int | None = None
    custom_headers: str | None = None
    custom_headers_write_only: bool = False
    http_method: str | None = None
    security_flags: int = 0
    proxy_usage: int = 0
    proxy_list: str | None = None
    proxy_bypass: str | None = None
    ca_bundle: str | None = None
    client_certificate: str | None = None
    transfer_policy: int = 0x80000067
    bandwidth_limit: int | None = None
    on_demand: bool = False
