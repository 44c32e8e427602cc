"""``bitsd transfer``: download files in one job and wait for them, like Start-BitsTransfer.

Rules (bits-inventory §7.2):
- One job for all the URLs, FOREGROUND unless --priority says otherwise; the job is made and
  filled before it starts, and cancelled again if it cannot be filled (nothing half-made stays).
- Without --async the command follows the job until TRANSFERRED (it Completes the job and prints
  the final paths, exit 0) or ERROR (it prints the error's line, exit 1, and leaves the job for
  ``bitsd error``/``bitsd resume`` unless --cancel-on-error). Transient errors are shown and
  waited through: the daemon retries them. Ctrl+C leaves the job to the daemon and says so
  (exit 130).
- Progress goes to stderr: live bars (one per file and one for the job) on a terminal, plain
  lines otherwise; stdout carries only the results (final paths, the id, or the JSON document).
"""

from __future__ import annotations

import contextlib
import os
import time
import urllib.parse
from collections.abc import Iterator, Sequence
from typing import Protocol

import click
from rich.console import Console
from rich.progress import Progress, TaskID

from bitsd import codes
from bitsd._client import Manager, RemoteJob
from bitsd._enums import JobState
from bitsd._errors import BitsError
from bitsd._records import ErrorInfo, FileInfo
from bitsd.cli import jsonout, params, render, session
from bitsd.cli.errors import ExitCode, error_info_line, fail
from bitsd.cli.session import Call

__all__ = ["local_names", "transfer"]

_DONE = frozenset({JobState.TRANSFERRED, JobState.ERROR, JobState.ACKNOWLEDGED, JobState.CANCELLED})
# Seconds between two looks at the job's files while it transfers: bitsd's choice (the daemon
# sends progress at most every 0.5 s too).
_POLL = 0.5
# Seconds between two progress lines when stderr is not a terminal: bitsd's choice.
_PLAIN_EVERY = 5.0


def local_names(urls: Sequence[str], output: str | None, folder: str | None) -> list[str]:
    """The absolute local path of each URL: -o for the one URL, else DIR/<name in the URL>.

    Raises:
        click.UsageError: -o with several URLs, or -o together with -d.
        click.BadParameter: a URL whose path names no file, or two URLs with the same name.
    """
    if output is not None and folder is not None:
        raise click.UsageError("give -o PATH or -d DIR, not both")
    if output is not None:
        if len(urls) != 1:
            raise click.UsageError("-o PATH names one file: give one URL, or use -d DIR")
        return [os.path.abspath(os.path.expanduser(output))]
    base = os.path.abspath(os.path.expanduser(folder or os.curdir))
    names: list[str] = []
    for url in urls:
        name = os.path.basename(urllib.parse.unquote(urllib.parse.urlsplit(url).path))
        if name in ("", ".", ".."):
            raise click.BadParameter(
                f"{url} does not end in a file name; use -o PATH", param_hint="'URL'"
            )
        local = os.path.join(base, name)
        if local in names:
            raise click.BadParameter(
                f"two URLs would both be saved as {local}; download them separately with -o",
                param_hint="'URL'",
            )
        names.append(local)
    return names


def _bytes(files: Sequence[FileInfo]) -> tuple[int, int | None]:
    """Bytes transferred and the total (None while a size is unknown)."""
    done = sum(f.progress.bytes_transferred for f in files)
    sizes = [f.progress.bytes_total for f in files]
    total = None if codes.SIZE_UNKNOWN in sizes else sum(sizes)
    return done, total


class _Display(Protocol):
    def update(self, state: JobState, files: Sequence[FileInfo]) -> None: ...

    def note(self, text: str) -> None: ...


class _Bars:
    """Live rich bars on a terminal: one per file, one for the whole job."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress
        self._files: list[TaskID] = []
        self._job: TaskID | None = None

    def update(self, state: JobState, files: Sequence[FileInfo]) -> None:
        if self._job is None:
            for f in files:
                name = os.path.basename(f.local_name)
                self._files.append(self._progress.add_task(name, total=None))
            self._job = self._progress.add_task("", total=None)
        for task, f in zip(self._files, files, strict=False):
            size = f.progress.bytes_total
            total = None if size == codes.SIZE_UNKNOWN else size
            self._progress.update(task, completed=f.progress.bytes_transferred, total=total)
        done, total = _bytes(files)
        description = f"job ({state.name})"
        self._progress.update(self._job, completed=done, total=total, description=description)

    def note(self, text: str) -> None:
        self._progress.console.print(text, highlight=False, soft_wrap=True)


class _Lines:
    """Plain lines when stderr is no terminal: state changes, finished files, and progress
    every few seconds."""

    def __init__(self, console: Console) -> None:
        self._console = console
        self._state: JobState | None = None
        self._finished: set[str] = set()
        self._last = time.monotonic()

    def update(self, state: JobState, files: Sequence[FileInfo]) -> None:
        if state is not self._state:
            self._state = state
            self.note(f"state: {state.name}")
        for f in files:
            if f.progress.completed and f.local_name not in self._finished:
                self._finished.add(f.local_name)
                self.note(f"done: {f.local_name} ({render.human_size(f.progress.bytes_total)})")
        now = time.monotonic()
        if now - self._last >= _PLAIN_EVERY and state is JobState.TRANSFERRING:
            self._last = now
            done, total = _bytes(files)
            share = render.percent(done, codes.SIZE_UNKNOWN if total is None else total)
            shown = "" if share is None else f" ({share:.0f}%)"
            total_text = "?" if total is None else render.human_size(total)
            self.note(f"progress: {render.human_size(done)} / {total_text}{shown}")

    def note(self, text: str) -> None:
        self._console.print(text, highlight=False, soft_wrap=True)


class _Quiet:
    """--json: nothing but the document at the end."""

    def update(self, state: JobState, files: Sequence[FileInfo]) -> None:
        pass

    def note(self, text: str) -> None:
        pass


@contextlib.contextmanager
def _display(as_json: bool) -> Iterator[_Display]:
    if as_json:
        yield _Quiet()
        return
    console = Console(stderr=True, highlight=False)
    if not console.is_terminal:
        yield _Lines(console)
        return
    with render.progress_bars(console) as progress:
        yield _Bars(progress)


async def _follow(job: RemoteJob, shown: _Display) -> tuple[JobState, list[FileInfo]]:
    """Watch the job until it is TRANSFERRED, in ERROR or final; show its progress and every
    new transient error on the way."""
    last_error: int | None = None
    last_state: JobState | None = None
    while True:
        try:
            state = await job.wait(_DONE, timeout=_POLL)
        except TimeoutError:
            state = await job.get_state()
        files = await job.files() if not state.is_final else []
        if files or state.is_final:
            shown.update(state, files)
        if state is JobState.TRANSIENT_ERROR:
            error = await session.error_of(job, state)
            if error is not None and error.code != last_error:
                last_error = error.code
                shown.note(f"transient error, waiting: {error_info_line(error, job.id)}")
        elif state is JobState.SUSPENDED and last_state is not JobState.SUSPENDED:
            shown.note(f"the job was suspended; bitsd resume {job.id} lets it go on")
        else:
            last_error = None
        last_state = state
        if state in _DONE:
            return state, files


async def _start(
    manager: Manager,
    call: Call,
    pairs: list[tuple[str, str]],
    *,
    display_name: str,
    description: str | None,
    priority: str,
    retry_delay: float | None,
    no_progress_timeout: float | None,
    notify: params.NotifyCommand | None,
    dynamic: bool,
    headers: str | None,
    sha256: str | None,
) -> RemoteJob:
    """Create the job, set it up, add the files and resume it; cancel it if any step fails."""
    job = await manager.create_job(display_name)
    call.job = job.id
    try:
        await job.set_priority(params.priority(priority))
        if description is not None:
            await job.set_description(description)
        if retry_delay is not None:
            await job.set_minimum_retry_delay(retry_delay)
        if no_progress_timeout is not None:
            await job.set_no_progress_timeout(no_progress_timeout)
        if notify is not None:
            await job.set_notify_cmd_line(notify.program, notify.parameters)
        if dynamic:
            await job.set_dynamic_content(True)
        if headers is not None:
            await job.set_custom_headers(headers)
        if sha256 is not None:
            await job.add_file(*pairs[0], sha256=sha256)
        else:
            await job.add_file_set(pairs)
        await job.resume()
    except BaseException:
        with contextlib.suppress(BitsError):
            await job.cancel()
        call.job = None  # the advice must not point at a job that is gone
        raise
    return job


@click.command()
@click.argument("urls", nargs=-1, required=True, metavar="URL...")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Save the one URL here.")
@click.option(
    "-d",
    "--dir",
    "folder",
    type=click.Path(exists=True, file_okay=False),
    help="Save into this folder, under the names in the URLs (default: the current folder).",
)
@click.option(
    "--priority",
    type=params.PRIORITY,
    default="foreground",
    show_default=True,
    help="foreground runs at once; high, normal and low queue in the background.",
)
@click.option("--async", "detach", is_flag=True, help="Print the job id and return at once.")
@click.option(
    "--retry-delay", type=params.DURATION, help="Wait between retries (at least 5 s; 10m default)."
)
@click.option(
    "--no-progress-timeout",
    type=params.DURATION,
    help="Fail after this long without progress (0: every error is fatal).",
)
@click.option(
    "--notify-cmd",
    metavar="'PROGRAM ARGS...'",
    help="The daemon runs this when the job is transferred or fails.",
)
@click.option("--display-name", help="The job's name (default: the first file's name).")
@click.option("--description", help="The job's description.")
@click.option("--dynamic", is_flag=True, help="The content is dynamic: download without ranges.")
@click.option(
    "--header",
    "headers",
    multiple=True,
    metavar="'NAME: VALUE'",
    help="Send this header with every request (repeat for several).",
)
@click.option(
    "--sha256",
    type=params.SHA256,
    help="The (one) file's expected SHA-256; a mismatch fails the job (BG_E_VALIDATION_FAILED).",
)
@click.option("--cancel-on-error", is_flag=True, help="Cancel the job if it ends in ERROR.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON, no progress.")
def transfer(
    urls: tuple[str, ...],
    output: str | None,
    folder: str | None,
    priority: str,
    detach: bool,
    retry_delay: float | None,
    no_progress_timeout: float | None,
    notify_cmd: str | None,
    display_name: str | None,
    description: str | None,
    dynamic: bool,
    headers: tuple[str, ...],
    sha256: str | None,
    cancel_on_error: bool,
    as_json: bool,
) -> None:
    """Download URL... and wait until done (like Start-BitsTransfer).

    One job holds every file. On success the job is Completed and the final paths are printed;
    when it fails the error is printed with what to do, and the job stays for bitsd error and
    bitsd resume. Ctrl+C leaves the job to the daemon.
    """
    locals_ = local_names(urls, output, folder)
    pairs = list(zip(urls, locals_, strict=True))
    if sha256 is not None and len(urls) != 1:
        raise click.UsageError("--sha256 checks one file: give one URL")
    header_text = params.header_lines(headers) if headers else None
    notify = None if notify_cmd is None else params.parse_notify_cmd(notify_cmd)
    if display_name is None:
        first = os.path.basename(locals_[0])
        display_name = first if len(urls) == 1 else f"{first} (+{len(urls) - 1})"

    async def body(manager: Manager, call: Call) -> None:
        job = await _start(
            manager,
            call,
            pairs,
            display_name=display_name,
            description=description,
            priority=priority,
            retry_delay=retry_delay,
            no_progress_timeout=no_progress_timeout,
            notify=notify,
            dynamic=dynamic,
            headers=header_text,
            sha256=sha256,
        )
        if detach:
            if as_json:
                state, found = await job.get_state(), await job.files()
                jsonout.emit(jsonout.transfer_doc(job.id, state, found))
            else:
                click.echo(job.id)
            return
        call.on_interrupt = f"interrupted: the job goes on in the background: bitsd info {job.id}"
        with _display(as_json) as shown:
            shown.note(f"job {job.id}: {len(pairs)} file{'s' if len(pairs) != 1 else ''}")
            state, found = await _follow(job, shown)
        await _finish(job, state, found, as_json=as_json, cancel_on_error=cancel_on_error)

    session.run("transfer", body)


async def _finish(
    job: RemoteJob,
    state: JobState,
    found: list[FileInfo],
    *,
    as_json: bool,
    cancel_on_error: bool,
) -> None:
    """Complete a TRANSFERRED job and print where the files are; turn ERROR into exit 1."""
    if state is JobState.TRANSFERRED:
        result = await job.complete()
        state = JobState.ACKNOWLEDGED
        if result != codes.S_OK and not as_json:
            click.echo(f"completed: {codes.name_of(result)}", err=True)
    if state is JobState.ACKNOWLEDGED:
        if as_json:
            jsonout.emit(jsonout.transfer_doc(job.id, state, found))
        for f in found if not as_json else []:
            click.echo(f.local_name)
        return
    if state is JobState.CANCELLED:
        raise fail(f"job {job.id} was cancelled by another command", ExitCode.JOB_ERROR)
    error: ErrorInfo | None = await session.error_of(job, state)
    todo = None
    if cancel_on_error:
        await job.cancel()
        todo = "the job was cancelled (--cancel-on-error)"
    line = (
        f"job {job.id} is in ERROR; see bitsd error {job.id}"
        if error is None
        else error_info_line(error, job.id, todo=todo)
    )
    if as_json:
        shown_state = JobState.CANCELLED if cancel_on_error else state
        jsonout.emit(jsonout.transfer_doc(job.id, shown_state, found, error, line))
    raise fail(line, ExitCode.JOB_ERROR)
