"""The commands that read jobs: info, files, list, error, wait. Each has ``--json``."""

from __future__ import annotations

import asyncio
import contextlib

import click

from bitsd._client import Manager
from bitsd._enums import JobState, JobType
from bitsd._errors import NotFoundError, without_userinfo
from bitsd.cli import jsonout, params, render, session
from bitsd.cli.errors import ExitCode, error_info_line, fail
from bitsd.cli.session import Call

__all__ = ["COMMANDS", "FINAL_STATES", "WAIT_DEFAULT"]

_JSON = click.option(
    "--json", "as_json", is_flag=True, help="Print JSON (see docs/cli-json-schema.json)."
)
# A final job never changes again.
FINAL_STATES = frozenset({JobState.ACKNOWLEDGED, JobState.CANCELLED})
WAIT_DEFAULT = (JobState.TRANSFERRED, JobState.ERROR)
# Seconds per wait request: short enough that Ctrl+C is never stuck behind a long request.
_WAIT_SLICE = 30.0


@click.command()
@click.argument("job", type=params.JOB)
@_JSON
def info(job: str, as_json: bool) -> None:
    """Show every property of JOB (an upload-reply job's reply file and progress too)."""

    async def body(manager: Manager, call: Call) -> None:
        handle = await session.resolve(manager, job, call)
        view = await handle.snapshot()
        if as_json:
            jsonout.emit(jsonout.job_doc(view))
            return
        line = None if view.error is None else error_info_line(view.error, view.id)
        reply = None
        if view.type is JobType.UPLOAD_REPLY:
            with contextlib.suppress(NotFoundError):  # it ended since the snapshot
                reply = await session.read_reply(handle)
        render.show(render.info_table(view, line, reply))

    session.run("info", body)


@click.command()
@click.argument("job", type=params.JOB)
@_JSON
def files(job: str, as_json: bool) -> None:
    """List JOB's files with their progress."""

    async def body(manager: Manager, call: Call) -> None:
        handle = await session.resolve(manager, job, call)
        found = await handle.files()
        if as_json:
            jsonout.emit(jsonout.files_doc(handle.id, found))
        elif found:
            render.show(render.files_table(found))
        else:
            click.echo(f"job {handle.id} has no files", err=True)

    session.run("files", body)


@click.command("list")
@_JSON
def list_(as_json: bool) -> None:
    """List your jobs that are not finished (oldest first).

    bitsd serves one user per daemon, so there is no --all: these are all the jobs you can see.
    """

    async def body(manager: Manager, call: Call) -> None:
        views = await session.snapshots(await manager.jobs())
        if as_json:
            jsonout.emit(jsonout.list_doc(views))
        elif views:
            render.show(render.jobs_table(views))
        else:
            click.echo("no jobs", err=True)

    session.run("list", body)


@click.command()
@click.argument("job", type=params.JOB)
@_JSON
def error(job: str, as_json: bool) -> None:
    """Show why JOB is in ERROR or TRANSIENT_ERROR (exit 0: there may be no error)."""

    async def body(manager: Manager, call: Call) -> None:
        handle = await session.resolve(manager, job, call)
        state = await handle.get_state()
        found = await session.error_of(handle, state)
        line = None if found is None else error_info_line(found, handle.id)
        if as_json:
            jsonout.emit(jsonout.error_doc(handle.id, state, found, line))
        elif found is None:
            click.echo(f"job {handle.id} has no error: it is {state.name}")
        else:
            click.echo(line)
            if found.file is not None:
                remote = without_userinfo(found.file.remote_name)
                click.echo(f"  file: {remote} -> {found.file.local_name}")
            click.echo(f"  context: {found.context_description.rstrip('.')}")
            click.echo(f"  detail: {found.description}")

    session.run("error", body)


@click.command()
@click.argument("job", type=params.JOB)
@click.option(
    "--state",
    "states",
    multiple=True,
    type=click.Choice([s.name for s in JobState], case_sensitive=False),
    help="A state to wait for (repeat for several). Default: TRANSFERRED or ERROR.",
)
@click.option("--timeout", type=params.DURATION, help="Give up after this long (exit 124).")
@_JSON
def wait(job: str, states: tuple[str, ...], timeout: float | None, as_json: bool) -> None:
    """Wait until JOB is in one of the states, and print it.

    ERROR, ACKNOWLEDGED and CANCELLED always end the wait. Exit 0 when it got there; 1 when it
    ended in ERROR or was cancelled instead (unless you asked for that state); 124 on --timeout.
    """
    wanted = frozenset(JobState[s.upper()] for s in states) or frozenset(WAIT_DEFAULT)

    async def body(manager: Manager, call: Call) -> tuple[str, JobState, bool]:
        handle = await session.resolve(manager, job, call)
        call.on_interrupt = f"interrupted; job {handle.id} is unchanged"
        # ERROR waits for a person, and a final job never changes: both always end the wait.
        stop = wanted | FINAL_STATES | {JobState.ERROR}
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            left = _WAIT_SLICE if deadline is None else min(_WAIT_SLICE, deadline - loop.time())
            try:
                state = await handle.wait(stop, timeout=max(left, 0.0))
                return handle.id, state, False
            except TimeoutError:
                if deadline is not None and loop.time() >= deadline:
                    return handle.id, await handle.get_state(), True
            except NotFoundError:
                # Completed or cancelled by someone else between two waits.
                return handle.id, await handle.get_state(), False

    job_id, state, timed_out = session.run("wait", body)
    if as_json:
        jsonout.emit(jsonout.wait_doc(job_id, state, timed_out))
    else:
        click.echo(state.name)
    if timed_out:
        raise fail(f"job {job_id} is still {state.name} after the timeout", ExitCode.TIMEOUT)
    if state not in wanted and state in (JobState.ERROR, JobState.CANCELLED):
        hint = f"see bitsd error {job_id}" if state is JobState.ERROR else "it is gone"
        raise fail(f"job {job_id} ended {state.name}; {hint}", ExitCode.JOB_ERROR)


COMMANDS: list[click.Command] = [info, files, list_, error, wait]
