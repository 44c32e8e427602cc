"""BITS enumerations with BITS's own numeric values.

Rules:
- Every value equals the one in Microsoft's headers (bits.h, bits5_0.h), so numbers that cross
  process or language boundaries mean the same thing they mean on Windows.
- Members print as their names (``str(JobState.QUEUED) == "QUEUED"``) for logs and the CLI.
"""

from __future__ import annotations

import enum

__all__ = [
    "AuthScheme",
    "AuthTarget",
    "CostStates",
    "ErrorContext",
    "JobState",
    "JobType",
    "NotifyFlags",
    "Priority",
    "ProxyUsage",
    "SecurityFlags",
]


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


class ProxyUsage(_NamedIntEnum):
    """BG_JOB_PROXY_USAGE (SetProxySettings)."""

    PRECONFIG = 0
    NO_PROXY = 1
    OVERRIDE = 2
    AUTODETECT = 3


class AuthTarget(_NamedIntEnum):
    """BG_AUTH_TARGET (SetCredentials)."""

    SERVER = 1
    PROXY = 2


class AuthScheme(_NamedIntEnum):
    """BG_AUTH_SCHEME (SetCredentials)."""

    BASIC = 1
    DIGEST = 2
    NTLM = 3
    NEGOTIATE = 4
    PASSPORT = 5


class SecurityFlags(enum.IntFlag):
    """BG_SSL_* and BG_HTTP_REDIRECT_POLICY_* (SetSecurityFlags). The redirect policy is the
    value under REDIRECT_POLICY_MASK: 0 (ALLOW_SILENT, the default), ALLOW_REPORT or DISALLOW."""

    ENABLE_CRL_CHECK = 0x1
    IGNORE_CERT_CN_INVALID = 0x2
    IGNORE_CERT_DATE_INVALID = 0x4
    IGNORE_UNKNOWN_CA = 0x8
    IGNORE_CERT_WRONG_USAGE = 0x10
    REDIRECT_POLICY_ALLOW_REPORT = 0x100
    REDIRECT_POLICY_DISALLOW = 0x200
    REDIRECT_POLICY_ALLOW_HTTPS_TO_HTTP = 0x800

    REDIRECT_POLICY_ALLOW_SILENT = 0x0
    REDIRECT_POLICY_MASK = 0x700


class CostStates(enum.IntFlag):
    """BITS_COST_STATE_* bits, and the named transfer policies (BITS_JOB_TRANSFER_POLICY)."""

    UNRESTRICTED = 0x1
    CAPPED_USAGE_UNKNOWN = 0x2
    BELOW_CAP = 0x4
    NEAR_CAP = 0x8
    OVERCAP_CHARGED = 0x10
    OVERCAP_THROTTLED = 0x20
    USAGE_BASED = 0x40
    ROAMING = 0x80
    IGNORE_CONGESTION = 0x80000000
    RESERVED = 0x40000000

    TRANSFER_UNRESTRICTED = 0x80000021
    TRANSFER_STANDARD = 0x80000067
    TRANSFER_NO_SURCHARGE = 0x8000006F
    TRANSFER_NOT_ROAMING = 0x8000007F
    TRANSFER_ALWAYS = 0x800000FF
