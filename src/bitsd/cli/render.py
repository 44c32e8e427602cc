"""What a person reads: sizes, rates and times in human units, and rich tables of jobs and files.

Rules:
- Sizes are in decimal units (kB, MB, GB: what download tools and disks show); a size that is
  not known yet (``SIZE_UNKNOWN``) reads "?".
- Renderers take :class:`bitsd.JobSnapshot` values (and file lists) and return rich
  renderables; they never talk to the daemon. Consoles: results on stdout, progress and notes
  on stderr.
- Colours are decoration only: every state is also spelled out, so the text reads the same
  without a colour terminal (and when piped).
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Iterable
from datetime import datetime

import click
from rich.console import Console, Group, RenderableType
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from bitsd import codes
from bitsd._enums import CostStates, JobState, NotifyFlags, ProxyUsage, SecurityFlags
from bitsd._records import FileInfo, JobSnapshot, ReplyProgress

__all__ = [
    "files_table",
    "human_duration",
    "human_rate",
    "human_size",
    "info_table",
    "jobs_table",
    "percent",
    "progress_bars",
    "reply_table",
    "security_flags_text",
    "short_id",
    "show",
    "state_text",
    "transfer_policy_text",
]

_UNITS = ("B", "kB", "MB", "GB", "TB", "PB")
_STATE_STYLES = {
    JobState.QUEUED: "cyan",
    JobState.CONNECTING: "cyan",
    JobState.TRANSFERRING: "blue",
    JobState.SUSPENDED: "yellow",
    JobState.ERROR: "bold red",
    JobState.TRANSIENT_ERROR: "red",
    JobState.TRANSFERRED: "bold green",
    JobState.ACKNOWLEDGED: "green",
    JobState.CANCELLED: "dim",
}


# Columns of the text printed when stdout is not a terminal: wide enough that no id or path is
# cut, since nobody's window width applies.
_PIPE_WIDTH = 10_000


def show(renderable: RenderableType) -> None:
    """Print on stdout: styled to the window's width on a terminal; otherwise plain text, as
    wide as it needs, without trailing blanks (for grep, awk and cut)."""
    console = Console(highlight=False)
    if console.is_terminal:
        console.print(renderable)
        return
    plain = Console(width=_PIPE_WIDTH, no_color=True, highlight=False, file=io.StringIO())
    with plain.capture() as captured:
        plain.print(renderable)
    lines = [line.rstrip() for line in captured.get().splitlines()]
    click.echo("\n".join(lines))


def human_size(size: int) -> str:
    """``1234567`` → ``"1.2 MB"``; SIZE_UNKNOWN → ``"?"``."""
    if size == codes.SIZE_UNKNOWN or size < 0:
        return "?"
    if size < 1000:
        return f"{size} B"
    exponent = min(int(math.log(size, 1000)), len(_UNITS) - 1)
    value = size / 1000**exponent
    if round(value, 1) >= 1000 and exponent + 1 < len(_UNITS):
        exponent, value = exponent + 1, value / 1000
    return f"{value:.1f} {_UNITS[exponent]}"


def human_rate(bytes_per_second: float | None) -> str:
    """``2_500_000.0`` → ``"2.5 MB/s"``; None (not measured yet) → ``""``."""
    if bytes_per_second is None:
        return ""
    return f"{human_size(round(bytes_per_second))}/s"


def human_duration(seconds: float) -> str:
    """``5400`` → ``"1h30m"``, ``600`` → ``"10m"``, ``7`` → ``"7s"``, days for the long ones."""
    total = round(seconds)
    days, rest = divmod(total, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [(days, "d"), (hours, "h"), (minutes, "m"), (secs, "s")]
    text = "".join(f"{n}{unit}" for n, unit in parts if n)
    return text or "0s"


def percent(done: int, total: int) -> float | None:
    """Percent done, or None while the total is unknown."""
    if total == codes.SIZE_UNKNOWN:
        return None
    if total == 0:
        return 100.0
    return min(100.0, 100.0 * done / total)


def short_id(job_id: str) -> str:
    """The first block of a job id: enough to tell a user's jobs apart in a table."""
    return job_id.split("-", 1)[0]


def state_text(state: JobState) -> Text:
    """A state's name in its colour."""
    return Text(state.name, style=_STATE_STYLES.get(state, ""))


def _progress_cell(done: int, total: int) -> str:
    share = percent(done, total)
    sizes = f"{human_size(done)} / {human_size(total)}"
    return sizes if share is None else f"{share:3.0f}% {sizes}"


def _time(value: datetime | None) -> str:
    return "-" if value is None else value.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _job_progress_cell(view: JobSnapshot) -> str:
    p = view.progress
    return "-" if p.files_total == 0 else _progress_cell(p.bytes_transferred, p.bytes_total)


def jobs_table(views: Iterable[JobSnapshot]) -> Table:
    """``bitsd list``: one row per job."""
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("ID", "NAME", "STATE", "PRIORITY", "PROGRESS", "FILES"):
        table.add_column(column, no_wrap=column in ("ID", "STATE", "PROGRESS"))
    for v in views:
        p = v.progress
        table.add_row(
            v.id,
            v.display_name,
            state_text(v.state),
            v.priority.name,
            _job_progress_cell(v),
            f"{p.files_transferred}/{p.files_total}",
        )
    return table


def _rows_table(rows: Iterable[tuple[str, RenderableType]]) -> Table:
    """Two columns without a header: a property's name in bold, its value."""
    table = Table(box=None, show_header=False, pad_edge=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    for name, value in rows:
        table.add_row(name, value)
    return table


def _reply_rows(file_name: str | None, progress: ReplyProgress) -> list[tuple[str, str]]:
    done, total = progress.bytes_transferred, progress.bytes_total
    cell = _progress_cell(done, total)
    if total == codes.SIZE_UNKNOWN:
        cell += " (the upload is not done yet)"
    return [
        ("reply file", file_name or "- (named at the first resume)"),
        ("reply progress", cell),
    ]


def reply_table(file_name: str | None, progress: ReplyProgress) -> Table:
    """``bitsd reply --progress``: the reply's file and progress, as ``bitsd info`` shows them."""
    return _rows_table(_reply_rows(file_name, progress))


def info_table(
    view: JobSnapshot,
    error_line: str | None,
    reply: tuple[str | None, ReplyProgress] | None = None,
) -> Table:
    """``bitsd info``: every property, one per row; ``reply`` (an upload-reply job's reply file
    name and progress) adds its rows."""
    p, t = view.progress, view.times
    program, parameters = view.notify_program, view.notify_parameters
    rows: list[tuple[str, RenderableType]] = [
        ("id", view.id),
        ("display name", view.display_name),
        ("description", view.description or "-"),
        ("type", view.type.name),
        ("state", state_text(view.state)),
        ("priority", view.priority.name),
        ("owner", str(view.owner)),
        ("progress", _job_progress_cell(view)),
        ("files", f"{p.files_transferred}/{p.files_total}"),
        ("errors", str(view.error_count)),
        ("created", _time(t.creation_time)),
        ("modified", _time(t.modification_time)),
        ("transferred", _time(t.transfer_completion_time)),
        ("retry delay", human_duration(view.minimum_retry_delay)),
        ("no-progress timeout", human_duration(view.no_progress_timeout)),
        ("max download time", human_duration(view.maximum_download_time)),
        ("dynamic content", "yes" if view.dynamic_content else "no"),
        ("on demand", "yes" if view.on_demand else "no"),
        ("notify flags", f"{int(view.notify_flags)} ({NotifyFlags(view.notify_flags)})"),
        ("notify command", "-" if program is None else f"{program} [{parameters or ''}]"),
        ("max download size", _limit(view.maximum_download_size, human_size)),
        ("bandwidth limit", _limit(view.bandwidth_limit, human_rate)),
        ("transfer policy", transfer_policy_text(view.transfer_policy)),
        ("http method", view.http_method or "GET"),
        ("custom headers", _headers_cell(view)),
        ("security flags", security_flags_text(view.security_flags)),
        ("proxy", _proxy_cell(view)),
        ("ca bundle", view.ca_bundle or "- (the system's CAs)"),
        ("client certificate", view.client_certificate or "-"),
    ]
    if reply is not None:
        rows.extend(_reply_rows(*reply))
    if error_line is not None:
        rows.append(("error", Text(error_line, style="red")))
    return _rows_table(rows)


def _limit(value: int | None, text: Callable[[int], str]) -> str:
    if value is None:
        return "none"
    shown = text(value)
    return shown if value < 1000 else f"{shown} ({value:,} B{'/s' if '/s' in shown else ''})"


def _headers_cell(view: JobSnapshot) -> str:
    if view.custom_headers_write_only:
        return "(write-only)"
    if not view.custom_headers:
        return "-"
    return "\n".join(view.custom_headers.removesuffix("\r\n").split("\r\n"))


def _proxy_cell(view: JobSnapshot) -> str:
    try:
        usage = ProxyUsage(view.proxy_usage).name
    except ValueError:
        usage = str(view.proxy_usage)
    parts = [usage]
    if view.proxy_list:
        parts.append(view.proxy_list)
    if view.proxy_bypass:
        parts.append(f"(bypass: {view.proxy_bypass})")
    return " ".join(parts)


def security_flags_text(flags: int) -> str:
    """``0x208 (IGNORE_UNKNOWN_CA|REDIRECT_POLICY_DISALLOW)``; 0 reads ``0 (none)``."""
    if not flags:
        return "0 (none)"
    mask = SecurityFlags.REDIRECT_POLICY_MASK
    policy = flags & mask
    names = [n for n, m in SecurityFlags.__members__.items() if m and not m & mask and flags & m]
    names += [n for n, m in SecurityFlags.__members__.items() if policy and m == policy != mask]
    return f"0x{flags:X} ({'|'.join(names)})"


def transfer_policy_text(policy: int) -> str:
    """``STANDARD (0x80000067)`` for a named policy, else the hex value and its cost states."""
    for name, member in CostStates.__members__.items():
        if name.startswith("TRANSFER_") and member == policy:
            return f"{name.removeprefix('TRANSFER_')} (0x{policy:08X})"
    names = [
        name
        for name, member in CostStates.__members__.items()
        if not name.startswith("TRANSFER_") and policy & member
    ]
    return f"0x{policy:08X} ({'|'.join(names) or 'none'})"


def files_table(files: Iterable[FileInfo]) -> Table:
    """``bitsd files``: one row per file, in transfer order."""
    table = Table(box=None, pad_edge=False, header_style="bold")
    table.add_column("DONE", no_wrap=True)
    table.add_column("PROGRESS", no_wrap=True)
    table.add_column("REMOTE")
    table.add_column("LOCAL")
    for f in files:
        p = f.progress
        table.add_row(
            "yes" if p.completed else "no",
            _progress_cell(p.bytes_transferred, p.bytes_total),
            f.remote_name,
            f.local_name,
        )
    return table


def progress_bars(console: Console) -> Progress:
    """The bars of ``bitsd transfer``: name, bar, percent, bytes, rate, time left."""
    return Progress(
        TextColumn("{task.description}", table_column=None),
        BarColumn(),
        TaskProgressColumn(),
        DownloadColumn(binary_units=False),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )


def bar(done: int, total: int, *, moving: bool, width: int = 20) -> RenderableType:
    """A progress bar cell; while the total is unknown, a pulsing one if the job is ``moving``
    (connecting or transferring), else an empty one."""
    if total == codes.SIZE_UNKNOWN:
        return ProgressBar(total=None if moving else 1, completed=0, width=width)
    return ProgressBar(total=max(total, 1), completed=done if total else 1, width=width)


def group(*items: RenderableType) -> Group:
    """Renderables one under the other."""
    return Group(*items)
