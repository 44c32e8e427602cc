"""``bitsd monitor``: a live view of every job, redrawn as the daemon's events arrive.

Rules:
- The view changes only when an event arrives (``{"op": "watch"}`` on the event stream): a
  state or progress event updates its row directly; a property or files event, a job not seen
  yet, or an error state makes the monitor read that job again. Nothing polls the daemon.
- The subscription is opened before the jobs are listed, so no change falls in between.
- On a terminal the view is full-screen (rich Live on the alternate screen) and q or Ctrl+C
  leaves; elsewhere each state change is one plain line. ``--once`` prints one frame and exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import sys
import termios
import time
import tty
from collections.abc import AsyncIterator, Iterator

import click
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from bitsd import codes
from bitsd._client import DAEMON_UNAVAILABLE, Manager
from bitsd._enums import JobState
from bitsd._errors import BitsError, NotFoundError
from bitsd._records import JobProgress, JobSnapshot
from bitsd.cli import events, render, session
from bitsd.cli.session import Call

__all__ = ["Board", "monitor"]

# Weight of the newest measurement in a job's smoothed rate: bitsd's choice (events come about
# every 0.5 s, so a change shows within a couple of seconds).
_RATE_WEIGHT = 0.5
_ERROR_STATES = (JobState.ERROR, JobState.TRANSIENT_ERROR)
_MOVING = (JobState.CONNECTING, JobState.TRANSFERRING)


@dataclasses.dataclass(slots=True)
class Row:
    """What the monitor shows of one job."""

    id: str
    name: str
    state: JobState
    progress: JobProgress
    error: str | None = None
    rate: float | None = None
    seen_at: float | None = None
    seen_bytes: int = 0


class Board:
    """The monitor's model: one row per job, fed by views and events. No I/O."""

    def __init__(self) -> None:
        self.rows: dict[str, Row] = {}

    def put(self, view: JobSnapshot) -> None:
        """Add a job, or replace what is known of it by a fresh view."""
        row = self.rows.get(view.id)
        error = None if view.error is None else codes.name_of(view.error.code)
        if row is None:
            self.rows[view.id] = Row(view.id, view.display_name, view.state, view.progress, error)
            return
        row.name, row.error = view.display_name, error
        self._move(row, view.state, view.progress, time.monotonic())

    def apply(self, event: events.JobEvent, now: float) -> bool:
        """Apply an event; True when the job must be read again (new, changed properties or
        files, or an error whose name is not known yet)."""
        row = self.rows.get(event.job)
        if row is None:
            return True
        self._move(row, event.state or row.state, event.progress or row.progress, now)
        if row.state not in _ERROR_STATES:
            row.error = None
        return event.what in ("property", "files") or (
            row.state in _ERROR_STATES and row.error is None
        )

    @staticmethod
    def _move(row: Row, state: JobState, progress: JobProgress, now: float) -> None:
        if state is JobState.TRANSFERRING and row.seen_at is not None and now > row.seen_at:
            measured = max(progress.bytes_transferred - row.seen_bytes, 0) / (now - row.seen_at)
            previous = measured if row.rate is None else row.rate
            row.rate = _RATE_WEIGHT * measured + (1 - _RATE_WEIGHT) * previous
        elif state is not JobState.TRANSFERRING:
            row.rate = None
        row.state, row.progress = state, progress
        row.seen_at, row.seen_bytes = now, progress.bytes_transferred

    def render(self, *, live: bool = False) -> Group:
        """The frame: a title line (with how to quit when ``live``) and the table of jobs."""
        table = Table(box=None, pad_edge=False, header_style="bold", expand=False)
        for column in ("ID", "NAME", "STATE", "PROGRESS", "", "BYTES", "RATE", "FILES", "ERROR"):
            table.add_column(column, no_wrap=True)
        for row in self.rows.values():
            p = row.progress
            empty = p.files_total == 0
            share = None if empty else render.percent(p.bytes_transferred, p.bytes_total)
            table.add_row(
                render.short_id(row.id),
                Text(row.name, overflow="ellipsis"),
                render.state_text(row.state),
                ""
                if empty
                else render.bar(p.bytes_transferred, p.bytes_total, moving=row.state in _MOVING),
                "" if share is None else f"{share:3.0f}%",
                f"{render.human_size(p.bytes_transferred)} / {render.human_size(p.bytes_total)}",
                render.human_rate(row.rate),
                f"{p.files_transferred}/{p.files_total}",
                Text(row.error or "", style="red"),
            )
        count = len(self.rows)
        title = Text.assemble(
            ("bitsd monitor", "bold"),
            f"  {count} job{'s' if count != 1 else ''}",
            "  (q quits)" if live else "",
        )
        return Group(title, table if self.rows else Text("no jobs", style="dim"))


@contextlib.contextmanager
def _keys(quit_: asyncio.Event) -> Iterator[None]:
    """Set ``quit_`` when q is typed on a terminal stdin (Ctrl+C still interrupts)."""
    if not sys.stdin.isatty():
        yield
        return
    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    loop = asyncio.get_running_loop()

    def on_key() -> None:
        with contextlib.suppress(OSError):
            if b"q" in os.read(fd, 64).lower():
                quit_.set()

    tty.setcbreak(fd)
    loop.add_reader(fd, on_key)
    try:
        yield
    finally:
        loop.remove_reader(fd)
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


async def _refresh(manager: Manager, board: Board, job_id: str, event: events.JobEvent) -> None:
    """Read a job again; a job that ended meanwhile keeps what its event said."""
    try:
        job = await manager.get_job(job_id)
        board.put(await job.snapshot())
    except NotFoundError:
        if job_id not in board.rows and event.state is not None:
            progress = event.progress or JobProgress(0, 0, 0, 0)
            board.rows[job_id] = Row(job_id, "", event.state, progress)


async def _follow(
    manager: Manager,
    board: Board,
    stream: AsyncIterator[events.JobEvent],
    redraw: Live | None,
    console: Console,
) -> None:
    async for event in stream:
        before = board.rows.get(event.job)
        old_state = None if before is None else before.state
        if board.apply(event, time.monotonic()):
            await _refresh(manager, board, event.job, event)
        row = board.rows.get(event.job)
        if redraw is not None:
            redraw.update(board.render(live=True), refresh=True)
        elif row is not None and row.state is not old_state:
            error = f" {row.error}" if row.error else ""
            console.print(f"{row.id} {row.name}: {row.state.name}{error}", soft_wrap=True)


@click.command()
@click.option("--once", is_flag=True, help="Print one frame and exit.")
def monitor(once: bool) -> None:
    """Watch all your jobs live: state, progress, rate and errors (q or Ctrl+C quits)."""
    console = Console(highlight=False)

    async def body(manager: Manager, call: Call) -> None:
        call.on_interrupt = "monitor stopped"
        board = Board()
        if once:
            for view in await session.snapshots(await manager.jobs()):
                board.put(view)
            render.show(board.render())
            return
        async with events.watch(manager.socket_path) as stream:
            for view in await session.snapshots(await manager.jobs()):
                board.put(view)
            quit_ = asyncio.Event()
            live = (
                Live(board.render(live=True), console=console, screen=True, auto_refresh=False)
                if console.is_terminal
                else None
            )
            with live or contextlib.nullcontext(), _keys(quit_):
                if live is None:
                    render.show(board.render())
                follower = asyncio.create_task(_follow(manager, board, stream, live, console))
                stopper = asyncio.create_task(quit_.wait())
                try:
                    done, _ = await asyncio.wait(
                        {follower, stopper}, return_when=asyncio.FIRST_COMPLETED
                    )
                finally:
                    for task in (follower, stopper):
                        task.cancel()
                    await asyncio.gather(follower, stopper, return_exceptions=True)
            if follower in done:
                follower.result()  # the error that ended it, if any
                raise BitsError(
                    "the bitsd daemon closed the event stream", hresult=DAEMON_UNAVAILABLE
                )

    session.run("monitor", body)
