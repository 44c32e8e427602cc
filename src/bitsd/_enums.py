"""BITS enumerations with BITS's own numeric values.

Rules:
- Every value equals the one in Microsoft's headers (bits.h, bits5_0.h), so numbers that cross
  process or language boundaries mean the same thing they mean on Windows.
- Members print as their names (``str(JobState.QUEUED) == "QUEUED"``) for logs and the CLI.
"""

from __future__ import annotations

import enum

__all__ = ["ErrorContext", "JobState", "JobType", "NotifyFlags", "Priority"]


class _NamedIntEnum(enum.IntEnum):
    def __str__(self) -> str:
        return self.name


class JobType(_NamedIntEnum):
    """BG_JOB_TYPE."""

    DOWNLOAD = 0
    UPLOAD = 1
    UPLOAD_REPLY = 2


class JobState(_NamedIntEnum):
    """BG_JOB_STATE: the nine states of a BITS job."""

    QUEUED = 0
    CONNECTING = 1
    TRANSFERRING = 2
    SUSPENDED = 3
    ERROR = 4
    TRANSIENT_ERROR = 5
    TRANSFERRED = 6
    ACKNOWLEDGED = 7
    CANCELLED = 8

    @property
    def is_final(self) -> bool:
        """ACKNOWLEDGED and CANCELLED: the job never leaves them."""
        return self in (JobState.ACKNOWLEDGED, JobState.CANCELLED)

    @property
    def is_active(self) -> bool:
        """The action states in which the service works on the job."""
        return self in (
            JobState.QUEUED,
            JobState.CONNECTING,
            JobState.TRANSFERRING,
            JobState.TRANSIENT_ERROR,
        )


class Priority(_NamedIntEnum):
    """BG_JOB_PRIORITY. FOREGROUND runs at once; the others are background levels."""

    FOREGROUND = 0
    HIGH = 1
    NORMAL = 2
    LOW = 3


class ErrorContext(_NamedIntEnum):
    """BG_ERROR_CONTEXT: where an error happened."""

    NONE = 0
    UNKNOWN = 1
    GENERAL_QUEUE_MANAGER = 2
    QUEUE_MANAGER_NOTIFICATION = 3
    LOCAL_FILE = 4
    REMOTE_FILE = 5
    GENERAL_TRANSPORT = 6
    REMOTE_APPLICATION = 7
    SERVER_CERTIFICATE_CALLBACK = 8


class NotifyFlags(enum.IntFlag):
    """BG_NOTIFY_*: which events a job notifies. The default is JOB_TRANSFERRED | JOB_ERROR."""

    JOB_TRANSFERRED = 0x1
    JOB_ERROR = 0x2
    DISABLE = 0x4
    JOB_MODIFICATION = 0x8
    FILE_TRANSFERRED = 0x10
    FILE_RANGES_TRANSFERRED = 0x20

    def __str__(self) -> str:
        return "|".join(m.name for m in NotifyFlags if m in self and m.name) or "0"
