"""The commands that change a job: create, add, add-set, resume, suspend, cancel, complete, set.

Each is one BITS verb (or a few setters) on the daemon; what the daemon refuses comes back as
its BITS error, printed as one line with what to do (exit 1; 4 for an unknown job).
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from typing import IO

import click

from bitsd import codes
from bitsd._client import Manager, RemoteJob
from bitsd._enums import JobType
from bitsd.cli import jsonout, params, session
from bitsd.cli.session import Call

__all__ = ["COMMANDS"]

_TYPES = {
    "download": JobType.DOWNLOAD,
    "upload": JobType.UPLOAD,
    "upload-reply": JobType.UPLOAD_REPLY,
}


def _note(text: str) -> None:
    click.echo(text, err=True)


@click.command()
@click.argument("name")
@click.option(
    "--type",
    "job_type",
    type=click.Choice(list(_TYPES), case_sensitive=False),
    default="download",
    show_default=True,
    help="The job's type (bitsd transfers downloads only so far).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the new job as JSON.")
def create(name: str, job_type: str, as_json: bool) -> None:
    """Create a SUSPENDED job named NAME and print its id.

    Add files with `bitsd add`, then start it with `bitsd resume`.
    """

    async def body(manager: Manager, call: Call) -> None:
        job = await manager.create_job(name, _TYPES[job_type.lower()])
        call.job = job.id
        if as_json:
            jsonout.emit(jsonout.job_doc(await session.snapshot(job)))
            return
        click.echo(job.id)
        _note(f"created job {job.id} ({name}); add files: bitsd add {job.id} URL LOCAL")

    session.run("create", body)


def _local(path: str) -> str:
    """LOCAL as the daemon needs it: absolute (relative paths are from the current folder)."""
    return os.path.abspath(os.path.expanduser(path))


@click.command()
@click.argument("job", type=params.JOB)
@click.argument("url")
@click.argument("local", type=click.Path(dir_okay=False))
def add(job: str, url: str, local: str) -> None:
    """Add the file at URL to JOB, to be saved as LOCAL."""
    target = _local(local)

    async def body(manager: Manager, call: Call) -> None:
        handle = await session.resolve(manager, job, call)
        await handle.add_file(url, target)
        _note(f"job {handle.id}: added {url} -> {target}")

    session.run("add", body)


def _read_file_set(stream: IO[str], source: str) -> list[tuple[str, str]]:
    """Lines "URL LOCAL" (LOCAL may contain spaces); blank lines and # comments are skipped."""
    pairs: list[tuple[str, str]] = []
    for number, raw in enumerate(stream, start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(None, 1)
        if len(parts) != 2:
            raise click.BadParameter(
                f"{source}, line {number}: expected 'URL LOCAL', got {line!r}",
                param_hint="'--file'",
            )
        pairs.append((parts[0], _local(parts[1])))
    if not pairs:
        raise click.BadParameter(f"{source} lists no files", param_hint="'--file'")
    return pairs


@click.command("add-set")
@click.argument("job", type=params.JOB)
@click.option(
    "--file",
    "listing",
    type=click.File("r"),
    required=True,
    help="A file of lines 'URL LOCAL' ('-' reads stdin).",
)
def add_set(job: str, listing: IO[str]) -> None:
    """Add every file listed in --file to JOB, all or none."""
    pairs = _read_file_set(listing, listing.name)

    async def body(manager: Manager, call: Call) -> None:
        handle = await session.resolve(manager, job, call)
        await handle.add_file_set(pairs)
        _note(f"job {handle.id}: added {len(pairs)} file{'s' if len(pairs) != 1 else ''}")

    session.run("add-set", body)


def _verb_command(
    name: str, summary: str, verb: Callable[[RemoteJob], Awaitable[int | None]], done: str
) -> click.Command:
    @click.command(name, help=summary)
    @click.argument("job", type=params.JOB)
    def command(job: str) -> None:
        async def body(manager: Manager, call: Call) -> None:
            handle = await session.resolve(manager, job, call)
            result = await verb(handle)
            extra = ""
            if result is not None and result != codes.S_OK:
                extra = f" ({codes.name_of(result)}: {codes.describe(result)})"
            click.echo(f"job {handle.id} {done}{extra}")

        session.run(name, body)

    return command


async def _resume(job: RemoteJob) -> None:
    await job.resume()


async def _suspend(job: RemoteJob) -> None:
    await job.suspend()


async def _cancel(job: RemoteJob) -> int:
    return await job.cancel()


async def _complete(job: RemoteJob) -> int:
    return await job.complete()


resume = _verb_command("resume", "Queue JOB for transfer (or retry it now).", _resume, "resumed")
suspend = _verb_command(
    "suspend", "Stop transferring JOB; keep its progress.", _suspend, "suspended"
)
cancel = _verb_command("cancel", "Cancel JOB and delete its temporary files.", _cancel, "cancelled")
complete = _verb_command(
    "complete",
    "Move JOB's transferred files to their names and end the job.",
    _complete,
    "completed",
)


@click.command("set")
@click.argument("job", type=params.JOB)
@click.option("--priority", type=params.PRIORITY, help="foreground, high, normal or low.")
@click.option("--description", help="At most 1,024 characters.")
@click.option("--display-name", help="The job's name (need not be unique).")
@click.option("--retry-delay", type=params.DURATION, help="Wait before retrying (at least 5 s).")
@click.option(
    "--no-progress-timeout",
    type=params.DURATION,
    help="Give up after this long without progress (0: every error is fatal).",
)
@click.option(
    "--max-download-time", type=params.DURATION, help="Time limit of the transfer (0: none)."
)
@click.option(
    "--notify-flags",
    type=params.NOTIFY_FLAGS,
    help="Number, or names like JOB_TRANSFERRED|JOB_ERROR.",
)
@click.option(
    "--notify-cmd",
    metavar="'PROGRAM ARGS...'",
    help="Run this command line when the job is transferred or fails ('' removes it).",
)
@click.option(
    "--dynamic/--no-dynamic",
    default=None,
    help="Download without ranges (before the first resume only).",
)
def set_(
    job: str,
    priority: str | None,
    description: str | None,
    display_name: str | None,
    retry_delay: float | None,
    no_progress_timeout: float | None,
    max_download_time: float | None,
    notify_flags: int | None,
    notify_cmd: str | None,
    dynamic: bool | None,
) -> None:
    """Change JOB's properties (those given; in the order listed)."""
    notify = None if notify_cmd is None else params.parse_notify_cmd(notify_cmd)
    steps: list[tuple[str, Callable[[RemoteJob], Awaitable[None]]]] = []
    if priority is not None:
        steps.append(("priority", lambda j: j.set_priority(params.priority(priority))))
    if description is not None:
        steps.append(("description", lambda j: j.set_description(description)))
    if display_name is not None:
        steps.append(("display name", lambda j: j.set_display_name(display_name)))
    if retry_delay is not None:
        steps.append(("retry delay", lambda j: j.set_minimum_retry_delay(retry_delay)))
    if no_progress_timeout is not None:
        steps.append(
            ("no-progress timeout", lambda j: j.set_no_progress_timeout(no_progress_timeout))
        )
    if max_download_time is not None:
        steps.append(
            ("max download time", lambda j: j.set_maximum_download_time(max_download_time))
        )
    if notify_flags is not None:
        steps.append(("notify flags", lambda j: j.set_notify_flags(notify_flags)))
    if notify is not None:
        steps.append(
            ("notify command", lambda j: j.set_notify_cmd_line(notify.program, notify.parameters))
        )
    if dynamic is not None:
        steps.append(("dynamic content", lambda j: j.set_dynamic_content(dynamic)))
    if not steps:
        raise click.UsageError("nothing to set: give at least one option (see bitsd set --help)")

    async def body(manager: Manager, call: Call) -> None:
        handle = await session.resolve(manager, job, call)
        for _, step in steps:
            await step(handle)
        click.echo(f"job {handle.id}: set {', '.join(name for name, _ in steps)}")

    session.run("set", body)


COMMANDS: list[click.Command] = [
    create,
    add,
    add_set,
    resume,
    suspend,
    cancel,
    complete,
    set_,
]
