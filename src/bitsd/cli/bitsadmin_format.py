"""How ``bitsadmin`` prints things: pure functions from values to the lines Windows prints.

Rules:
- Nothing here talks to the daemon or writes to a stream; every function returns strings, so
  the layout is tested without a daemon and stays in one place.
- The layout follows Microsoft's bitsadmin (the samples of the bitsadmin examples page):
  GUIDs upper case in braces, sizes unknown to BITS print as ``UNKNOWN``, times in the
  ``M/D/YYYY h:mm:ss AM`` form of an en-US Windows, in local time.
- Where Windows prints only an HRESULT, bitsd adds its BITS name beside it
  (``0x80190194 (BG_E_HTTP_ERROR_404)``): a script that reads the hex still finds it first.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence
from datetime import datetime

from bitsd import codes
from bitsd._enums import ErrorContext, JobState, JobType, Priority
from bitsd._records import ErrorInfo, FileInfo, JobProgress, JobTimes

__all__ = [
    "UNKNOWN",
    "JobView",
    "cmd_line_text",
    "error_lines",
    "failure_lines",
    "file_line",
    "guid",
    "info_lines",
    "list_line",
    "seconds_text",
    "size_text",
    "time_text",
    "transfer_lines",
]

UNKNOWN = "UNKNOWN"
"""What bitsadmin prints for a size or a time BITS does not know (yet)."""

# Width of the labels of the error block, as bitsadmin aligns them.
_ERROR_LABEL_WIDTH = len("ERROR CONTEXT: ")


@dataclasses.dataclass(frozen=True, slots=True)
class JobView:
    """What ``/info`` and ``/list`` show of one job, read from the daemon once.

    The fields after ``progress`` are read only for verbose output; they are None otherwise.
    """

    id: str
    display_name: str
    state: JobState
    progress: JobProgress
    type: JobType | None = None
    priority: Priority | None = None
    owner: str | None = None
    times: JobTimes | None = None
    notify_flags: int | None = None
    minimum_retry_delay: float | None = None
    no_progress_timeout: float | None = None
    maximum_download_time: float | None = None
    dynamic_content: bool | None = None
    error_count: int | None = None
    description: str | None = None
    error: ErrorInfo | None = None
    files: Sequence[FileInfo] | None = None
    notify_cmd_line: tuple[str | None, str | None] | None = None


def guid(job_id: str) -> str:
    """A job id as Windows prints a GUID: ``{0B9C...}``, upper case, in braces."""
    try:
        return "{" + str(uuid.UUID(job_id.strip("{}"))).upper() + "}"
    except ValueError:
        return job_id


def size_text(size: int) -> str:
    """A byte count, or UNKNOWN for BG_SIZE_UNKNOWN."""
    return UNKNOWN if size == codes.SIZE_UNKNOWN else str(size)


def time_text(when: datetime | None) -> str:
    """A time as an en-US Windows prints it (``12/17/2002 1:21:17 PM``), in local time."""
    if when is None:
        return UNKNOWN
    local = when.astimezone()
    hour = local.hour % 12 or 12
    half = "AM" if local.hour < 12 else "PM"
    return (
        f"{local.month}/{local.day}/{local.year} "
        f"{hour}:{local.minute:02d}:{local.second:02d} {half}"
    )


def seconds_text(seconds: float) -> str:
    """A duration in whole seconds when it is whole (``600``), else as given (``0.5``)."""
    return str(int(seconds)) if float(seconds).is_integer() else f"{seconds:g}"


def cmd_line_text(program: str | None, parameters: str | None) -> str:
    """The notify command line as bitsadmin shows it: ``'program' 'parameters'`` or none."""
    if program is None and parameters is None:
        return "none"
    shown = [f"'{part}'" if part is not None else "NULL" for part in (program, parameters)]
    return " ".join(shown)


def _progress_pair(transferred: int, total: int) -> str:
    return f"{transferred} / {size_text(total)}"


def list_line(view: JobView) -> str:
    """One line of ``/list`` and ``/monitor``: GUID, name, state, files and bytes."""
    p = view.progress
    files = f"{p.files_transferred} / {p.files_total}"
    size = _progress_pair(p.bytes_transferred, p.bytes_total)
    return f"{guid(view.id)} '{view.display_name}' {view.state.name} {files} {size}"


def file_line(info: FileInfo) -> str:
    """One line of ``/listfiles``: bytes, WORKING or COMPLETED, remote -> local."""
    p = info.progress
    status = "COMPLETED" if p.completed else "WORKING"
    return (
        f"{_progress_pair(p.bytes_transferred, p.bytes_total)} {status} "
        f"{info.remote_name} -> {info.local_name}"
    )


def _hresult_text(code: int) -> str:
    value = codes.to_unsigned(code)
    name = codes.name_of(value)
    hexed = f"0x{value:08x}"
    return hexed if name.lower() == hexed else f"{hexed} ({name})"


def error_lines(error: ErrorInfo) -> list[str]:
    """The ERROR FILE / ERROR CODE / ERROR CONTEXT block of ``/geterror`` and ``/info``."""
    width = _ERROR_LABEL_WIDTH
    lines = []
    if error.file is not None:
        lines.append(
            "ERROR FILE:".ljust(width) + f"{error.file.remote_name} -> {error.file.local_name}"
        )
    lines.append("ERROR CODE:".ljust(width) + f"{_hresult_text(error.code)} - {error.description}")
    context = ErrorContext(error.context)
    lines.append(
        "ERROR CONTEXT:".ljust(width)
        + f"0x{int(context):08x} ({context.name}) - {error.context_description}"
    )
    return lines


def info_lines(view: JobView, *, verbose: bool) -> list[str]:
    """The block ``/info`` prints, and ``/list /verbose`` prints for every job.

    The first three lines are bitsadmin's summary; ``verbose`` adds the detail lines in
    bitsadmin's order (times, notification, retry settings, the error if any, description,
    files, command line), without the Windows-only ones (proxy, ACL flags, peer caching).
    """
    p = view.progress
    job_type = view.type.name if view.type is not None else UNKNOWN
    priority = view.priority.name if view.priority is not None else UNKNOWN
    lines = [
        f"GUID: {guid(view.id)} DISPLAY: '{view.display_name}'",
        f"TYPE: {job_type} STATE: {view.state.name} OWNER: {view.owner or UNKNOWN}",
        f"PRIORITY: {priority} FILES: {p.files_transferred} / {p.files_total} "
        f"BYTES: {_progress_pair(p.bytes_transferred, p.bytes_total)}",
    ]
    if not verbose:
        return lines
    times = view.times
    lines.append(
        f"CREATION TIME: {time_text(times.creation_time if times else None)} "
        f"MODIFICATION TIME: {time_text(times.modification_time if times else None)}"
    )
    lines.append(f"COMPLETION TIME: {time_text(times.transfer_completion_time if times else None)}")
    # The control API does not say whether another process holds the job's callback.
    lines.append(f"NOTIFY INTERFACE: {UNKNOWN} NOTIFICATION FLAGS: {_opt(view.notify_flags)}")
    lines.append(
        f"RETRY DELAY: {_opt_seconds(view.minimum_retry_delay)} "
        f"NO PROGRESS TIMEOUT: {_opt_seconds(view.no_progress_timeout)} "
        f"ERROR COUNT: {_opt(view.error_count)}"
    )
    dynamic = UNKNOWN if view.dynamic_content is None else str(view.dynamic_content).upper()
    lines.append(
        f"MAX DOWNLOAD TIME: {_opt_seconds(view.maximum_download_time)} DYNAMIC CONTENT: {dynamic}"
    )
    if view.error is not None:
        lines.extend(error_lines(view.error))
    lines.append(f"DESCRIPTION: {view.description or ''}".rstrip())
    lines.append("JOB FILES:")
    lines.extend("\t" + file_line(f) for f in view.files or ())
    program, parameters = view.notify_cmd_line or (None, None)
    lines.append(f"NOTIFICATION COMMAND LINE: {cmd_line_text(program, parameters)}")
    return lines


def _opt(value: object) -> str:
    return UNKNOWN if value is None else str(value)


def _opt_seconds(value: float | None) -> str:
    return UNKNOWN if value is None else seconds_text(value)


def transfer_lines(view: JobView) -> list[str]:
    """The two progress lines ``/transfer`` prints while it waits."""
    p = view.progress
    percent = ""
    if p.bytes_total not in (0, codes.SIZE_UNKNOWN):
        percent = f" ({p.bytes_transferred * 100 // p.bytes_total}%)"
    job_type = view.type.name if view.type is not None else UNKNOWN
    priority = view.priority.name if view.priority is not None else UNKNOWN
    return [
        f"DISPLAY: '{view.display_name}' TYPE: {job_type} STATE: {view.state.name}",
        f"PRIORITY: {priority} FILES: {p.files_transferred} / {p.files_total} "
        f"BYTES: {_progress_pair(p.bytes_transferred, p.bytes_total)}{percent}",
    ]


def failure_lines(action: str, hresult: int, message: str) -> list[str]:
    """What a failed call prints: ``Unable to add file - 0x80070057`` and the reason."""
    value = codes.to_unsigned(hresult)
    return [f"Unable to {action} - 0x{value:08x}", f"{codes.name_of(value)}: {message}"]
