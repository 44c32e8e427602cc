"""The upload server's settings: one frozen value, checked whole when it is made.

Rules:
- Every default is a named constant with its unit and its source.
- ``notify_url`` set means upload-reply: every upload to this server is handed to the server
  application at that URL, by reference (the file's path in a header) or by value (the file as
  the body), and the application's answer is the reply. Unset means plain uploads.
- ``max_upload_size`` (None: no limit) bounds the total an upload announces;
  ``max_fragment_size`` bounds one fragment's body (larger ones get 413, so the client
  shrinks them).
- Sizes are bytes, durations seconds.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path
from typing import Final

__all__ = [
    "DEFAULT_MAX_FRAGMENT_SIZE",
    "DEFAULT_SESSION_TIMEOUT",
    "NOTIFY_TIMEOUT",
    "NotifyType",
    "ServerConfig",
]

# Seconds without progress before a session and its data are deleted: IIS's BITSSessionTimeout
# default, 14 days (SDK "BITS IIS Extension Properties").
DEFAULT_SESSION_TIMEOUT: Final = 1_209_600.0
# Bytes in one fragment's body before 413 (ours; Windows clients send at most 13 MB, notes
# <10> and <16>, and IIS 7's default request limit is 30,000,000 bytes).
DEFAULT_MAX_FRAGMENT_SIZE: Final = 64 * 1024 * 1024
# Seconds the server application has to answer a notification (SDK "BITS IIS Extension
# Properties": 5 minutes since BITS 2.0).
NOTIFY_TIMEOUT: Final = 300.0


class NotifyType(enum.StrEnum):
    """How the server application gets the upload (BITSServerNotificationType 1 and 2)."""

    BY_REFERENCE = "by-ref"  # the path of the uploaded file in BITS-Request-DataFile-Name
    BY_VALUE = "by-value"  # the uploaded file as the body of the POST


@dataclass(frozen=True)
class ServerConfig:
    """What one upload server does.

    Args:
        root: the folder uploads land in; the URL path ``/a/b.bin`` is ``root/a/b.bin``.
        notify_url: the server application's URL (absolute, or relative to the upload URL's
            folder as IIS resolves it); None for plain uploads.
        notify_type: by reference or by value.
        max_upload_size: the largest upload accepted, in bytes; None for no limit.
        session_timeout: seconds a session may go without progress before it is deleted.
        max_fragment_size: the largest fragment body accepted, in bytes.
        allow_overwrites: whether an upload may replace an existing file (IIS's
            BITSAllowOverwrites, default off).
        notify_timeout: seconds the server application has to answer.

    Raises:
        ValueError: a value out of range.
    """

    root: Path
    notify_url: str | None = None
    notify_type: NotifyType = NotifyType.BY_REFERENCE
    max_upload_size: int | None = None
    session_timeout: float = DEFAULT_SESSION_TIMEOUT
    max_fragment_size: int = DEFAULT_MAX_FRAGMENT_SIZE
    allow_overwrites: bool = False
    notify_timeout: float = NOTIFY_TIMEOUT

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))
        object.__setattr__(self, "notify_type", NotifyType(self.notify_type))
        if self.max_upload_size is not None and self.max_upload_size < 0:
            raise ValueError(f"max_upload_size must be >= 0, got {self.max_upload_size}")
        if self.session_timeout <= 0:
            raise ValueError(f"session_timeout must be > 0, got {self.session_timeout}")
        if self.max_fragment_size <= 0:
            raise ValueError(f"max_fragment_size must be > 0, got {self.max_fragment_size}")
        if self.notify_timeout <= 0:
            raise ValueError(f"notify_timeout must be > 0, got {self.notify_timeout}")
        if self.notify_url is not None and not self.notify_url.strip():
            raise ValueError("notify_url must not be empty")

    @property
    def upload_reply(self) -> bool:
        """Whether uploads are handed to a server application (upload-reply)."""
        return self.notify_url is not None
