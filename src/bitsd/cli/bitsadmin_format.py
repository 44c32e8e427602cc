"""How ``bitsadmin`` prints things: pure functions from values to the lines Windows prints.

Rules:
- Nothing here talks to the daemon or writes to a stream; every function returns strings, so
  the layout is tested without a daemon and stays in one place. A job is shown from one
  :class:`bitsd.JobSnapshot` (``job.snapshot()``, the same record ``bitsd`` shows).
- The layout follows Microsoft's bitsadmin (the samples of the bitsadmin examples page):
  GUIDs upper case in braces, sizes unknown to BITS print as ``UNKNOWN``, times in the
  ``M/D/YYYY h:mm:ss AM`` form of an en-US Windows, in local time.
- Where Windows prints only an HRESULT, bitsd adds its BITS name beside it
  (``0x80190194 (BG_E_HTTP_ERROR_404)``): a script that reads the hex still finds it first.
"""

from __future__ import annotations

import pwd
import uuid
from collections.abc import Sequence
from datetime import datetime

from bitsd import codes
from bitsd._enums import ErrorContext, ProxyUsage
from bitsd._errors import without_userinfo
from bitsd._records import ErrorInfo, FileInfo, JobSnapshot, ReplyProgress

__all__ = [
    "NULL",
    "UNKNOWN",
    "certificate_text",
    "cmd_line_text",
    "error_lines",
    "failure_lines",
    "file_line",
    "guid",
    "hex_dump_lines",
    "info_lines",
    "list_line",
    "null_text",
    "owner_name",
    "proxy_usage_text",
    "reply_progress_text",
    "seconds_text",
    "size_text",
    "time_text",
    "transfer_lines",
]

UNKNOWN = "UNKNOWN"
"""What bitsadmin prints for a size or a time BITS does not know (yet)."""
NULL = "NULL"
"""What bitsadmin prints for a string property that is not set (a proxy list, ...)."""

# Width of the labels of the error block, as bitsadmin aligns them.
_ERROR_LABEL_WIDTH = len("ERROR CONTEXT: ")
# Bytes per line of /GETREPLYDATA's hex dump (hexdump -C's layout).
_DUMP_WIDTH = 16


def owner_name(uid: int) -> str:
    """The login name of a uid (the uid itself when it has none)."""
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


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


def null_text(value: str | None) -> str:
    """A string property as bitsadmin prints it: NULL when it is not set."""
    return NULL if value is None else value


def proxy_usage_text(usage: int) -> str:
    """BG_JOB_PROXY_USAGE by name (PRECONFIG, NO_PROXY, OVERRIDE, AUTODETECT)."""
    try:
        return ProxyUsage(usage).name
    except ValueError:
        return str(usage)


def certificate_text(certificate: tuple[str, str | None] | None) -> str:
    """The client certificate as ``'cert.pem' 'key.pem'`` (NULL: the key is in the
    certificate's file), or ``none``."""
    if certificate is None:
        return "none"
    return cmd_line_text(*certificate)


def reply_progress_text(progress: ReplyProgress) -> str:
    """``/getreplyprogress``: ``12 of 21 bytes transferred (57%)``; the total is UNKNOWN until
    the upload part is done (BG_JOB_REPLY_PROGRESS)."""
    done, total = progress.bytes_transferred, progress.bytes_total
    percent = f" ({done * 100 // total}%)" if total not in (0, codes.SIZE_UNKNOWN) else ""
    return f"{done} of {size_text(total)} bytes transferred{percent}"


def hex_dump_lines(data: bytes) -> list[str]:
    """``/getreplydata``: the reply in hexadecimal, ``hexdump -C``'s layout: the offset, 16
    bytes in two groups of 8, and the printable ASCII characters (others as ``.``)."""
    lines = []
    for offset in range(0, len(data), _DUMP_WIDTH):
        chunk = data[offset : offset + _DUMP_WIDTH]
        first, second = chunk[:8].hex(" "), chunk[8:].hex(" ")
        text = "".join(chr(b) if 0x20 <= b < 0x7F else "." for b in chunk)
        lines.append(f"{offset:08x}  {first:<23}  {second:<23}  |{text}|")
    return lines


def _progress_pair(transferred: int, total: int) -> str:
    return f"{transferred} / {size_text(total)}"


def list_line(view: JobSnapshot) -> str:
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
            "ERROR FILE:".ljust(width)
            + f"{without_userinfo(error.file.remote_name)} -> {error.file.local_name}"
        )
    lines.append("ERROR CODE:".ljust(width) + f"{_hresult_text(error.code)} - {error.description}")
    context = ErrorContext(error.context)
    lines.append(
        "ERROR CONTEXT:".ljust(width)
        + f"0x{int(context):08x} ({context.name}) - {error.context_description}"
    )
    return lines


def info_lines(
    view: JobSnapshot, *, verbose: bool, files: Sequence[FileInfo] | None = None
) -> list[str]:
    """The block ``/info`` prints, and ``/list /verbose`` prints for every job.

    The first three lines are bitsadmin's summary; ``verbose`` adds the detail lines in
    bitsadmin's order (times, notification, retry settings, proxy, the error if any,
    description, the job's ``files``, command line), without the Windows-only ones (ACL flags,
    peer caching), plus bitsd's maximum download time and dynamic-content flag.
    """
    p = view.progress
    lines = [
        f"GUID: {guid(view.id)} DISPLAY: '{view.display_name}'",
        f"TYPE: {view.type.name} STATE: {view.state.name} OWNER: {owner_name(view.owner)}",
        f"PRIORITY: {view.priority.name} FILES: {p.files_transferred} / {p.files_total} "
        f"BYTES: {_progress_pair(p.bytes_transferred, p.bytes_total)}",
    ]
    if not verbose:
        return lines
    times = view.times
    lines.append(
        f"CREATION TIME: {time_text(times.creation_time)} "
        f"MODIFICATION TIME: {time_text(times.modification_time)}"
    )
    lines.append(f"COMPLETION TIME: {time_text(times.transfer_completion_time)}")
    # The control API does not say whether another process holds the job's callback.
    lines.append(f"NOTIFY INTERFACE: {UNKNOWN} NOTIFICATION FLAGS: {int(view.notify_flags)}")
    lines.append(
        f"RETRY DELAY: {seconds_text(view.minimum_retry_delay)} "
        f"NO PROGRESS TIMEOUT: {seconds_text(view.no_progress_timeout)} "
        f"ERROR COUNT: {view.error_count}"
    )
    lines.append(
        f"PROXY USAGE: {proxy_usage_text(view.proxy_usage)} "
        f"PROXY LIST: {null_text(view.proxy_list)} "
        f"PROXY BYPASS LIST: {null_text(view.proxy_bypass)}"
    )
    dynamic = str(view.dynamic_content).upper()
    lines.append(
        f"MAX DOWNLOAD TIME: {seconds_text(view.maximum_download_time)} DYNAMIC CONTENT: {dynamic}"
    )
    if view.error is not None:
        lines.extend(error_lines(view.error))
    lines.append(f"DESCRIPTION: {view.description}".rstrip())
    lines.append("JOB FILES:")
    lines.extend("\t" + file_line(f) for f in files or ())
    lines.append(
        f"NOTIFICATION COMMAND LINE: {cmd_line_text(view.notify_program, view.notify_parameters)}"
    )
    return lines


def transfer_lines(view: JobSnapshot) -> list[str]:
    """The two progress lines ``/transfer`` prints while it waits."""
    p = view.progress
    percent = ""
    if p.bytes_total not in (0, codes.SIZE_UNKNOWN):
        percent = f" ({p.bytes_transferred * 100 // p.bytes_total}%)"
    return [
        f"DISPLAY: '{view.display_name}' TYPE: {view.type.name} STATE: {view.state.name}",
        f"PRIORITY: {view.priority.name} FILES: {p.files_transferred} / {p.files_total} "
        f"BYTES: {_progress_pair(p.bytes_transferred, p.bytes_total)}{percent}",
    ]


def failure_lines(action: str, hresult: int, message: str) -> list[str]:
    """What a failed call prints: ``Unable to add file - 0x80070057`` and the reason."""
    value = codes.to_unsigned(hresult)
    return [f"Unable to {action} - 0x{value:08x}", f"{codes.name_of(value)}: {message}"]
