"""The persisted shape of jobs and files: what the store saves and the engine holds.

Rules:
- Records are frozen; the engine makes a new one with :func:`evolve` (``dataclasses.replace``'s
  result at a fraction of its cost: the engine makes several per state change and per file)
  for every change and hands it to the store before anyone can observe it.
- Times named ``*_at`` are on the engine's monotonic clock while in memory; the engine converts
  them to wall time when it saves and back when it loads, so a restart picks up a new clock as
  BITS does. The store keeps records verbatim.
  Times named ``*_time`` are wall-clock Unix seconds shown to people (JobTimes).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, TypeVar

from bitsd._enums import ErrorContext, JobState, JobType, NotifyFlags, Priority

__all__ = [
    "DEFAULT_NOTIFY_FLAGS",
    "ErrorRecord",
    "FileRecord",
    "JobRecord",
    "PendingNotification",
    "evolve",
]

# BITS default notify flags: JOB_TRANSFERRED | JOB_ERROR (Wine's tests on Windows; PowerShell docs).
DEFAULT_NOTIFY_FLAGS = NotifyFlags.JOB_TRANSFERRED | NotifyFlags.JOB_ERROR


@dataclasses.dataclass(frozen=True, slots=True)
class ErrorRecord:
    """The last error of a job (what get_error() reports)."""

    code: int
    context: ErrorContext
    description: str
    file_index: int | None
    protocol: str | None


@dataclasses.dataclass(frozen=True, slots=True)
class FileRecord:
    """One file of a job.

    Attributes:
        index: position in the job (files transfer in this order).
        bytes_total: the remote size, or None while unknown.
        bytes_transferred: bytes in the temporary file. In the store this is the last checkpoint,
            which is always backed by flushed data.
        completed: the whole file is in the temporary file.
        validator: what identifies the remote version the bytes belong to (a strong ETag or a
            Last-Modified date for HTTP; size and mtime for local files), or None.
        renamed: Complete() has moved the temporary file to its final name.
    """

    job_id: str
    index: int
    remote_name: str
    local_name: str
    temp_name: str
    bytes_total: int | None = None
    bytes_transferred: int = 0
    completed: bool = False
    validator: str | None = None
    renamed: bool = False
    # AddFileWithRanges: the (offset, length) ranges whose concatenation is the local file, in
    # the order given; length LENGTH_TO_EOF means "to the end". None for a whole file.
    ranges: tuple[tuple[int, int], ...] | None = None
    # bitsd extension: the expected SHA-256 of the local file (hex), checked before TRANSFERRED.
    sha256: str | None = None
    # SetValidationState(TRUE) was called (IBackgroundCopyFile3::GetValidationState).
    validated: bool = False
    # On-demand jobs (IBackgroundCopyFile6, docs/design-choices.md): the (offset, length) spans
    # of the remote file held in the temporary file at their offsets, normalised
    # (bitsd._intervals), each backed by flushed data; the spans RequestFileRanges asked for
    # and not yet held, in the order asked (one ending at EOF_END runs to the end of a file
    # of unknown size); and UpdateDownloadPosition's offset, where filling the gaps starts.
    filled: tuple[tuple[int, int], ...] = ()
    requested: tuple[tuple[int, int], ...] = ()
    download_position: int = 0


@dataclasses.dataclass(frozen=True, slots=True)
class JobRecord:
    """One job, everything that survives a restart."""

    id: str
    display_name: str
    type: JobType
    state: JobState
    creation_time: float
    modification_time: float
    description: str = ""
    priority: Priority = Priority.NORMAL
    notify_flags: NotifyFlags = DEFAULT_NOTIFY_FLAGS
    notify_program: str | None = None
    notify_parameters: str | None = None
    minimum_retry_delay: float = 600.0
    no_progress_timeout: float = 1_209_600.0
    maximum_download_time: float = 7_776_000.0
    dynamic_content: bool = False
    # BITS_JOB_PROPERTY_ON_DEMAND_MODE: files are fetched by the ranges the owner requests.
    on_demand: bool = False
    transfer_completion_time: float | None = None
    error: ErrorRecord | None = None
    error_count: int = 0
    ever_resumed: bool = False
    # Monotonic engine times (converted by the store).
    retry_at: float | None = None
    no_progress_since: float | None = None
    last_activity_at: float = 0.0
    # Seconds spent CONNECTING or TRANSFERRING since the last Resume (MaxDownloadTime).
    download_time_used: float = 0.0
    # Order of arrival in the queue; a job that ends its time slice goes to the back.
    queue_seq: int = 0
    # BITS_JOB_PROPERTY_MAX_DOWNLOAD_SIZE: bytes the job may download in all, None = no limit.
    maximum_download_size: int | None = None
    # IBackgroundCopyJobHttpOptions: CRLF-terminated header lines, and whether other processes
    # may read them back (MakeCustomHeadersWriteOnly).
    custom_headers: str | None = None
    custom_headers_write_only: bool = False
    # IBackgroundCopyJobHttpOptions2::SetHttpMethod; None is the default verb (GET).
    http_method: str | None = None
    # IBackgroundCopyJobHttpOptions::SetSecurityFlags (BG_SSL_* and BG_HTTP_REDIRECT_POLICY_*).
    security_flags: int = 0
    # SetProxySettings: BG_JOB_PROXY_USAGE and the two space-separated lists.
    proxy_usage: int = 0
    proxy_list: str | None = None
    proxy_bypass: str | None = None
    # bitsd's equivalents of the certificate stores: a CA bundle file, a client certificate and
    # key (PEM files).
    ca_bundle: str | None = None
    client_certificate: str | None = None
    client_key: str | None = None
    # SetCredentials: (target, scheme, user name, password), one per (target, scheme); never
    # shown, never logged (the store file is readable by its owner only).
    credentials: tuple[tuple[int, int, str, str], ...] = dataclasses.field(default=(), repr=False)
    # BITS_JOB_PROPERTY_ID_COST_FLAGS (SetTransferPolicy); BITS_COST_STATE_TRANSFER_STANDARD.
    transfer_policy: int = 0x80000067
    # bitsd extension: a per-job bandwidth limit in bytes per second; None = none.
    bandwidth_limit: int | None = None
    # Upload and upload-reply jobs (docs/uploads.md). The upload's own progress is its file
    # record: bytes_total the source's size, bytes_transferred the offset the server has
    # acknowledged, validator the source's "size:mtime_ns" at the first Resume, completed once
    # the server acknowledged the last byte.
    # SetReplyFileName; None until set or generated at the first Resume.
    reply_file_name: str | None = None
    # BG_JOB_REPLY_PROGRESS: total None (SIZE_UNKNOWN) until the upload part is done.
    reply_bytes_total: int | None = None
    reply_bytes_transferred: int = 0
    # The reply's absolute URL (BITS-Reply-URL resolved), the validator of the reply bytes
    # held, and whether the whole reply is in its temporary file.
    reply_url: str | None = None
    reply_validator: str | None = None
    reply_completed: bool = False
    # The MC-BUP session: its id (None before Create-Session and after Close-Session), the
    # BITS-Host-Id host later packets go to and its fallback timeout (seconds; None = never),
    # when requests to that host started failing (wall time), and whether a Close-Session was
    # sent for the session (a lost Ack makes its repetition answer BG_E_SESSION_NOT_FOUND).
    upload_session_id: str | None = None
    upload_host_id: str | None = None
    upload_host_fallback: float | None = None
    upload_host_error_time: float | None = None
    upload_close_sent: bool = False
    # A cancelled upload's Cancel-Session (or Close-Session) still to deliver: until this wall
    # time the CANCELLED row stays in the store and the packet is retried.
    upload_cancel_until_time: float | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class PendingNotification:
    """A JobTransferred or JobError notification not yet acknowledged by its receiver.

    Attributes:
        kind: "job_transferred" or "job_error".
        state: the job state the notification is about; it is dropped when the job leaves it.
        attempts: callback calls made so far.
        cmdline_due: the callback failed (or none is live) and the command line must run.
        next_at: monotonic time of the next attempt.
    """

    job_id: str
    kind: str
    state: JobState
    attempts: int = 0
    cmdline_due: bool = False
    next_at: float = 0.0


_R = TypeVar("_R")
_Maker = Callable[[Any, dict[str, Any]], Any]
# The makers by class and the names changed, in the order given: one per call site, in
# practice. Emptied when it grows beyond this (changes of any subset of fields would).
_MAKERS: dict[tuple[type, tuple[str, ...]], _Maker] = {}
_MAKERS_KEPT = 1024


def evolve(record: _R, /, **changes: Any) -> _R:
    """``dataclasses.replace(record, **changes)``, 4-5 times faster for a slotted frozen
    dataclass whose fields are all set by ``__init__`` (no ``__post_init__``): the copy is one
    generated function per class and set of names changed that sets every slot, as
    ``dataclasses`` itself generates ``__init__``. Other dataclasses go through
    ``dataclasses.replace``.

    Raises:
        TypeError: a name in ``changes`` is not a field of the record.
    """
    key = (type(record), tuple(changes))
    make = _MAKERS.get(key)
    if make is None:
        make = _maker(*key)
        if len(_MAKERS) >= _MAKERS_KEPT:
            _MAKERS.clear()
        _MAKERS[key] = make
    return make(record, changes)  # type: ignore[no-any-return]


def _maker(cls: type, changed: tuple[str, ...]) -> _Maker:
    fields = dataclasses.fields(cls)
    if (
        "__slots__" not in cls.__dict__
        or hasattr(cls, "__post_init__")
        or any(not f.init for f in fields)
    ):
        return lambda record, changes: dataclasses.replace(record, **changes)
    names = [f.name for f in fields]
    unknown = sorted(set(changed) - set(names))
    if unknown:
        raise TypeError(f"not a field of {cls.__name__}: {unknown}")
    space: dict[str, Any] = {"new": object.__new__, "cls": cls}
    lines = ["def make(old, changes):", "    record = new(cls)"]
    for i, name in enumerate(names):
        space[f"set{i}"] = cls.__dict__[name].__set__  # the slot itself: frozen only blocks setattr
        value = f"changes[{name!r}]" if name in changed else f"old.{name}"
        lines.append(f"    set{i}(record, {value})")
    lines.append("    return record")
    exec("\n".join(lines), space)  # noqa: S102 - code made here from field names only
    return space["make"]  # type: ignore[no-any-return]
