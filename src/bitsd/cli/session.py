"""One command's conversation with the daemon: connecting, finding the job, reading it whole.

Rules:
- The command line talks to the daemon only through the asyncio client (``bitsd.aio.connect``);
  it never opens the store. Each command runs one coroutine under :func:`run`, which is also
  the one place that turns what went wrong into an exit code: a BITS error from the daemon, a
  daemon that cannot be reached, Ctrl+C.
- JOB on the command line is a job id (a GUID, braces optional), a display name that is unique
  among the user's jobs, or the start of one job's id (:func:`resolve`); a name or prefix that
  matches several jobs is a usage error that lists them.
- A job is shown from one :class:`bitsd.JobSnapshot` (``job.snapshot()``: one request, every
  field read at the same moment); the renderers and the JSON builders of both command lines
  (``bitsd`` and ``bitsadmin``) read snapshots, never handles. The reply of an upload-reply job
  (its file name and progress), which a snapshot does not carry, is read beside it
  (:func:`read_reply`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import re
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

import click

import bitsd.aio
from bitsd import _autostart
from bitsd._client import DAEMON_UNAVAILABLE, DEFAULT_CONNECT_TIMEOUT, Manager, RemoteJob
from bitsd._enums import JobState
from bitsd._errors import BitsError, ErrorInfoUnavailableError, NotFoundError
from bitsd._records import ErrorInfo, JobSnapshot, ReplyProgress
from bitsd.cli.errors import ExitCode, fail, from_bits_error

__all__ = [
    "AUTOSTART_ENV",
    "Call",
    "Reply",
    "Settings",
    "read_reply",
    "resolve",
    "run",
    "snapshots",
]

T = TypeVar("T")

# Set to 1 (or any non-empty value but 0) to make every command fail with exit code 3 instead of
# starting a daemon that is not running. The --no-autostart option does the same.
AUTOSTART_ENV = "BITSD_NO_AUTOSTART"
# Seconds to find (and start) the daemon: the client's default.
CONNECT_TIMEOUT = DEFAULT_CONNECT_TIMEOUT
# Seconds to wait for a daemon that nobody starts: a running one answers at once (bitsd's choice).
NO_AUTOSTART_TIMEOUT = 2.0
# Jobs read at once (one request each): bitsd's choice, well under the open-files limit.
_PARALLEL_READS = 8

# The start of a job id: at least 4 hex digits, as `bitsd monitor` shows 8 of them.
_ID_PREFIX = re.compile(r"^\{?[0-9a-fA-F]{4}[0-9a-fA-F-]*$")
_GUID = re.compile(r"^\{?[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}\}?$")


@dataclasses.dataclass(frozen=True, slots=True)
class Settings:
    """The group's options, shared by every command (click's context object)."""

    socket: str | None = None
    autostart: bool = True


def autostart_from_env(env: dict[str, str] | None = None) -> bool:
    """False when BITSD_NO_AUTOSTART is set to anything but "" or "0"."""
    value = (os.environ if env is None else env).get(AUTOSTART_ENV, "")
    return value in ("", "0")


def settings() -> Settings:
    """The current command's settings (defaults outside a click context)."""
    ctx = click.get_current_context(silent=True)
    found = ctx.find_object(Settings) if ctx is not None else None
    return found if found is not None else Settings(autostart=autostart_from_env())


@dataclasses.dataclass(slots=True)
class Call:
    """What one command run knows, for the messages of :func:`run`.

    Attributes:
        command: the command's name, the context of the errors the daemon answers it with.
        job: the job's id once known (it goes into the advice: ``bitsd resume <id>``).
        on_interrupt: what Ctrl+C prints (the default: "interrupted").
    """

    command: str
    job: str | None = None
    on_interrupt: str | None = None


async def connect(conf: Settings) -> Manager:
    """A manager of the user's daemon, started first unless autostart is off.

    Without autostart a missing socket fails at once, and a socket nobody answers on fails
    after :data:`NO_AUTOSTART_TIMEOUT`: no one is going to start the daemon meanwhile.

    Raises:
        BitsError: DAEMON_UNAVAILABLE.
    """
    if conf.autostart:
        return await bitsd.aio.connect(
            socket_path=conf.socket, autostart=True, timeout=CONNECT_TIMEOUT
        )
    path = _existing_socket(conf)
    return await bitsd.aio.connect(socket_path=path, autostart=False, timeout=NO_AUTOSTART_TIMEOUT)


def _existing_socket(conf: Settings) -> str:
    """The socket path to reach without autostart (BitsError DAEMON_UNAVAILABLE if none)."""
    path = conf.socket or str(_autostart.socket_path())
    if not os.path.exists(path):
        raise BitsError(
            f"the bitsd daemon is unreachable (no socket at {path}; autostart is off)",
            hresult=DAEMON_UNAVAILABLE,
        )
    return path


def run(command: str, body: Callable[[Manager, Call], Awaitable[T]]) -> T:
    """Connect, run ``body`` and close; turn failures into a :class:`CliError`.

    Raises:
        CliError: exit 1 for a BITS error the daemon answered, 3 when it cannot be reached, 4 for
            an unknown job, 130 on Ctrl+C (the job goes on in the daemon).
    """
    call = Call(command)
    conf = settings()

    async def main() -> T:
        async with await connect(conf) as manager:
            return await body(manager, call)

    try:
        return asyncio.run(main())
    except KeyboardInterrupt:
        raise fail(call.on_interrupt or "interrupted", ExitCode.INTERRUPTED) from None
    except BitsError as exc:
        raise from_bits_error(exc, command, call.job) from None


def is_guid(text: str) -> bool:
    """Whether ``text`` is a job id (a GUID, with or without braces)."""
    return _GUID.match(text) is not None


async def resolve(manager: Manager, ref: str, call: Call | None = None) -> RemoteJob:
    """The job that JOB on the command line names: an id; else a display name that one job
    has; else the start of one job's id (the short ids ``bitsd monitor`` shows).

    Raises:
        NotFoundError: no job of the user has this id, name or id prefix.
        click.UsageError: several jobs have this display name or id prefix (exit 2, with the
            candidates).
    """
    job: RemoteJob | None = None
    if is_guid(ref):
        with contextlib.suppress(NotFoundError):
            job = await manager.get_job(ref)
    if job is None:
        jobs = await manager.jobs()
        names = await _gather(j.get_display_name() for j in jobs)
        matches = [j for j, name in zip(jobs, names, strict=True) if name == ref]
        what = "named"
        if not matches and _ID_PREFIX.match(ref):
            matches = [j for j in jobs if j.id.startswith(ref.lower().lstrip("{"))]
            what = "with an id starting"
        if not matches:
            raise NotFoundError(f"no job of yours has the id or display name {ref!r}")
        if len(matches) > 1:
            listed = ", ".join(j.id for j in matches)
            raise click.UsageError(
                f"{len(matches)} jobs are {what} {ref!r}: {listed}; name the job by its id"
            )
        job = matches[0]
    if call is not None:
        call.job = job.id
    return job


async def error_of(job: RemoteJob, state: JobState) -> ErrorInfo | None:
    """The job's error if ``state`` has one (None if it left that state meanwhile)."""
    if state not in (JobState.ERROR, JobState.TRANSIENT_ERROR):
        return None
    try:
        return await job.get_error()
    except ErrorInfoUnavailableError:
        return None


Reply = tuple[str | None, ReplyProgress]
"""The reply of an upload-reply job as ``bitsd`` shows it: its file name and its progress."""


async def read_reply(job: RemoteJob) -> Reply:
    """The reply's file name and progress (GetReplyFileName, GetReplyProgress).

    Raises:
        NotSupportedError: not an upload-reply job (E_NOTIMPL).
    """
    name, progress = await asyncio.gather(job.get_reply_file_name(), job.get_reply_progress())
    return name, progress


async def snapshots(jobs: Iterable[RemoteJob]) -> list[JobSnapshot]:
    """Snapshots of several jobs, in order, skipping those that ended while being read."""
    found = await _gather(_snapshot_or_none(j) for j in jobs)
    return [s for s in found if s is not None]


async def _snapshot_or_none(job: RemoteJob) -> JobSnapshot | None:
    try:
        return await job.snapshot()
    except NotFoundError:
        return None


async def _gather(aws: Iterable[Awaitable[T]]) -> list[T]:
    """Await all, at most :data:`_PARALLEL_READS` at a time, results in order."""
    limit = asyncio.Semaphore(_PARALLEL_READS)

    async def one(aw: Awaitable[T]) -> T:
        async with limit:
            return await aw

    return list(await asyncio.gather(*(one(aw) for aw in aws)))
