"""The engine: jobs in a store, transfers in tasks, and the one funnel for every change.

Rules:
- Every state change goes through :meth:`Engine._transition`: the pure table validates it, the
  store persists it in one transaction, and only then are waiters woken and notifications sent.
  Property changes go through :meth:`Engine._set` the same way; a new value is checked alone
  first (``bitsd._args``: its type and range, as the daemon checks a request's body), then
  against the job. The only other writes are file
  rows: files added (one transaction with the job), progress checkpoints (written by the file
  sink after fsync) and the renames of Complete.
- One task per running job transfers its files in index order, up to ``file_concurrency`` at
  once (files started in order, reported transferred in order, in batches stored in one
  transaction; the first failure in order stops the job; see ``_transfer_window``); an
  on-demand job fetches its requested ranges one at a time instead (``bitsd._ondemand``).
- The scheduler loop decides which jobs run (``bitsd._scheduler``), wakes transient-error jobs
  when their retry delay ends, and enforces MaxDownloadTime and the job inactivity timeout. A
  round costs what changed: every record kept goes through ``_keep``, which updates the waiting
  line and touches the job on the agenda (``bitsd._agenda``); a round looks at touched and due
  jobs only.
- A transfer's progress becomes durable at checkpoints: data is fsync'ed, then the offset is
  stored. Stopping a transfer (Suspend, pre-emption, shutdown) checkpoints first.
- Times in records are on the injected clock's monotonic scale while in memory and are converted
  to wall time when stored (``_to_disk`` / ``_from_disk``), so timers survive a restart without
  being fooled by clock changes while running.
- Final jobs (ACKNOWLEDGED, CANCELLED) leave the store and ``jobs()``; handles on them still
  answer getters.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import functools
import logging
import os
import re
import shlex
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from bitsd import codes
from bitsd._agenda import Agenda, WaitingLine
from bitsd._args import (
    check_bandwidth_limit,
    check_bool,
    check_job_type,
    check_maximum_download_size,
    check_notify_flags,
    check_priority,
    check_seconds,
    check_transfer_policy,
    file_pairs,
    is_int,
    job_states,
    wait_timeout,
)
from bitsd._bandwidth import BandwidthManager
from bitsd._bulkrun import BulkRun
from bitsd._clock import Clock, SystemClock
from bitsd._cost import CostMonitor, CostSource, NetworkManagerCost
from bitsd._courtesy import CourtesyController, CourtesyMonitor, LinkCounter, ProcNetDev
from bitsd._enums import CostStates, ErrorContext, JobState, JobType, NotifyFlags, Priority
from bitsd._errors import (
    BitsError,
    EmptyJobError,
    ErrorInfoUnavailableError,
    InvalidArgumentError,
    InvalidStateError,
    NotFoundError,
    NotSupportedError,
    ReadOnlyPropertyError,
    TransferError,
    shown,
)
from bitsd._files import (
    check_local_name,
    delete_quietly,
    folder_memory_backed,
    folders_of,
    rename_all_into_place,
    temp_name_for,
    temp_size,
)
from bitsd._httpopts import (
    check_credentials,
    check_custom_headers,
    check_http_method,
    check_proxy_settings,
    check_security_flags,
    parse_custom_headers,
)
from bitsd._intervals import end_of
from bitsd._job import Job
from bitsd._limits import blocked_by, check_file_count, check_job_count, held_by_policy
from bitsd._model import ErrorRecord, FileRecord, JobRecord, evolve
from bitsd._notify import JOB_ERROR, JOB_TRANSFERRED, CommandRunner, Notifier, NotifyTarget
from bitsd._notify import run_command as _run_command
from bitsd._ondemand import OnDemand
from bitsd._ondemand import check_file as _check_on_demand_file
from bitsd._ondemand import check_property as _check_on_demand_property
from bitsd._policy import (
    FINAL_FILES_KEPT,
    FINAL_JOBS_KEPT,
    MAX_DESCRIPTION_LENGTH,
    MAX_DISPLAY_NAME_LENGTH,
    MAX_NOTIFY_PARAMETERS_LENGTH,
    MAX_NOTIFY_PROGRAM_LENGTH,
    MINIMUM_RETRY_DELAY_FLOOR,
    EngineConfig,
    RetryPolicy,
)
from bitsd._ranges import check_ranges, range_pairs
from bitsd._records import (
    ErrorInfo,
    FileInfo,
    FileProgress,
    JobProgress,
    JobSnapshot,
    JobTimes,
)
from bitsd._scheduler import Candidate, plan
from bitsd._sink import FileSink, Flusher
from bitsd._state import Event, apply
from bitsd._store import SqliteStore, Store
from bitsd._text import check_text
from bitsd._transfer.base import FileRequest, HttpOptions, Transport
from bitsd._transfer.bulkfetch import Answered, Failed, Fetched, Outcome
from bitsd._transfer.http import HttpTransport
from bitsd._transfer.local import LocalTransport
from bitsd._transfer.rawhttp import RawHttpTransport, proxy_environment
from bitsd._transfer.splicehelper import SpliceHelper
from bitsd._transfer.tls import TlsContexts
from bitsd._upload import Uploads, check_download_only, is_upload
from bitsd._urls import RemoteKind, check_remote_name, remote_kind

__all__ = ["STORE_FILE_NAME", "Engine", "Listener"]

_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")

# A file as a file list shows it: its record (what its getters answer: FileInfo, ranges,
# validation state) and its filled ranges (None where GetFilledFileRanges does not apply). See
# Engine._file_details.
FileDetails = tuple[FileRecord, list[tuple[int, int]] | None]

# Called after every committed change of a job: (job id, what changed: "state", "property",
# "files" or "progress"). Listeners must not block; the daemon uses one to stream events.
Listener = Callable[[str, str], None]

log = logging.getLogger("bitsd.engine")

STORE_FILE_NAME = "jobs.sqlite"
_RUNNING = (JobState.CONNECTING, JobState.TRANSFERRING)
_PLANNED = (JobState.QUEUED, *_RUNNING)
_CONTEXT_TEXT = {
    ErrorContext.NONE: "No error.",
    ErrorContext.UNKNOWN: "The error occurred in an unknown location.",
    ErrorContext.GENERAL_QUEUE_MANAGER: "The error occurred in the transfer queue manager.",
    ErrorContext.QUEUE_MANAGER_NOTIFICATION: "The error occurred while notifying the client.",
    ErrorContext.LOCAL_FILE: "The error occurred while processing the local file.",
    ErrorContext.REMOTE_FILE: "The error occurred while processing the remote file.",
    ErrorContext.GENERAL_TRANSPORT: "The error occurred in the network transport.",
    ErrorContext.REMOTE_APPLICATION: "The error occurred in the server application.",
    ErrorContext.SERVER_CERTIFICATE_CALLBACK: (
        "The error occurred in the server certificate validation callback."
    ),
}
# Seconds between two JobModification notifications caused by progress alone
# (BITS_JOB_PROPERTY_MINIMUM_NOTIFICATION_INTERVAL_MS default, 500 ms).
_PROGRESS_NOTIFY_INTERVAL = 0.5
# Files of one job started and not ended, per place of its file concurrency: the files beyond
# the places have their bodies in and wait for their flush. bitsd's choice: enough for the
# flushes of a fast stream of small files to share thread hops, few enough to bound the open
# temporary files (file_concurrency 8: 32).
_FINISHING_PER_PLACE = 4
# Seconds a file that can be reported transferred may wait for others to be stored with it in
# one transaction, while files of its job are still in flight. bitsd's choice: a stream of small
# files commits about every 10 ms instead of every few files; a file that ends a run, or comes
# before a failure, is reported at once.
_PUBLISH_DELAY = 0.01
# Files a job run needs, at least, to fetch its small files in a bulk (bulkfetch.py): a bulk
# pays off over many files; a job of a few keeps the per-file path. bitsd's choice.
_BULK_MIN_FILES = 16
# Files of a bulk handed to the helper and not answered yet, at most: enough to keep its
# connections busy between two turns of the window, few enough that a failure or a Suspend
# stops little. bitsd's choice.
_BULK_AHEAD = 256
# Complete renames at most this many files on the loop when their folders are memory-backed
# (tmpfs, ramfs: the folder's fsync waits for no device): a rename and a folder sync there cost
# a few microseconds, the worker-thread hop ~40. More files go to the thread, so a large job's
# renames never hold the loop. bitsd's choice.
_RENAMES_ON_LOOP = 16


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


class _Kick:
    """What wakes the scheduler loop: ``set()`` from any code on the loop; the loop waits on
    ``future()``, a plain future (no task per round), and clears the kick before each round."""

    __slots__ = ("_set", "_waiter")

    def __init__(self) -> None:
        self._set = False
        self._waiter: asyncio.Future[None] | None = None

    def set(self) -> None:
        self._set = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def clear(self) -> None:
        self._set = False

    def future(self) -> asyncio.Future[None]:
        """A future done at the next ``set()`` (done already if set since the last clear)."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self._set:
            waiter.set_result(None)
        self._waiter = waiter
        return waiter


@dataclasses.dataclass(slots=True)
class _Run:
    """A running transfer of one job."""

    task: asyncio.Task[None]
    started_at: float
    file_index: int | None = None
    # The proxy variables (PRECONFIG) as the run's start found them: which transport takes a
    # file depends on them, and reading them per file cost more than the choice.
    proxy_environment: tuple[str | None, ...] = ()
    # The HTTP options of the job record they were made from: made again when the record
    # changes (records are replaced, never changed in place), not once per file.
    options_of: tuple[JobRecord, HttpOptions] | None = None

    def options(self, job: JobRecord) -> HttpOptions:
        """What the HTTP transport needs of ``job``'s options."""
        cached = self.options_of
        if cached is not None and cached[0] is job:
            return cached[1]
        options = _http_options(job)
        self.options_of = (job, options)
        return options


class Engine:
    """The in-process BITS engine for one user: jobs persisted under ``state_dir``.

    Use it as an async context manager::

        async with bitsd.aio.Engine("~/.local/state/bitsd") as engine:
            job = await engine.create_job("iso")
            await job.add_file("https://example.org/a.iso", "/tmp/a.iso")
            await job.resume()

    Args:
        state_dir: folder of the job store (created mode 0700 if missing).
        config: service settings; keyword arguments override its fields.
        clock: the source of time (tests pass a FakeClock).
        store: the job store (default: ``SqliteStore(state_dir / "jobs.sqlite")``).
        session: an aiohttp session to transfer with (default: one owned by the engine).
        command_runner: how notify command lines run (default: a real subprocess).
        cost_source: the current network's cost, asked every ``cost_poll_interval`` (default:
            NetworkManager's metered flag over D-Bus, else UNRESTRICTED).
        link_counter: the monitored interface's received-bytes counter for background
            courtesy (default: ``/proc/net/dev`` of ``courtesy_interface`` or the default
            route's interface).
    """

    def __init__(
        self,
        state_dir: str | os.PathLike[str],
        *,
        config: EngineConfig | None = None,
        clock: Clock | None = None,
        store: Store | None = None,
        session: aiohttp.ClientSession | None = None,
        command_runner: CommandRunner | None = None,
        cost_source: CostSource | None = None,
        link_counter: LinkCounter | None = None,
        **overrides: Any,
    ) -> None:
        self.state_dir = Path(state_dir).expanduser()
        self.config = dataclasses.replace(config or EngineConfig(), **overrides)
        self.clock: Clock = clock or SystemClock()
        self.owner_uid = os.getuid()
        self._store_arg = store
        self._session_arg = session
        self._runner: CommandRunner = command_runner or _run_command
        self._jobs: dict[str, JobRecord] = {}
        self._files: dict[str, list[FileRecord]] = {}
        self._final: OrderedDict[str, JobRecord] = OrderedDict()
        self._final_files: dict[str, list[FileRecord]] = {}  # both oldest first
        self._final_file_count = 0
        self._runs: dict[str, _Run] = {}
        # The sinks of the files transferring now (or finished and not yet reported), by job
        # and index: their live records stand in for the ones in _files (see _files_of).
        self._sinks: dict[str, dict[int, FileSink]] = {}
        # The scheduler's bookkeeping (bitsd._agenda), kept by _keep for every job record.
        self._line = WaitingLine()
        self._agenda = Agenda()
        self._policy_inputs: object = None  # what the last policy round saw (_apply_policies)
        # The config the bandwidth rates were last set for, the wall time they were set at and
        # the wall time of their next scheduled change (_apply_policies).
        self._rates_set: tuple[EngineConfig | None, float, float | None] = (None, 0.0, None)
        self._seq = 0
        # wait() callers per job, woken when that job changes (not when any job does).
        self._waiters: dict[str, set[asyncio.Future[None]]] = {}
        self._kick = _Kick()
        # Whether the next round must plan again: a job's state, priority or queue place
        # changed, a run began or ended, or the settings changed (see _keep, _run_ended).
        self._replan = True
        self._plan_wake: float | None = None  # when the current plan's time slices end
        self._last_progress_note: dict[str, float] = {}
        self._listeners: list[Listener] = []
        self._open = False
        # Policies (docs/policies.md): bandwidth buckets, network cost, background courtesy.
        self._bandwidth = BandwidthManager(self.clock, self._rate_of)
        self._cost_source: CostSource = cost_source or self._network_cost
        self._link_counter: LinkCounter = link_counter or self._proc_link_counter
        self._proc_counter = ProcNetDev()
        self._courtesy: CourtesyMonitor | None = None
        self._blocked_at: dict[str, float] = {}

    # -- lifecycle -------------------------------------------------------------------------

    async def __aenter__(self) -> Engine:
        self.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._store: Store = self._store_arg or SqliteStore(self.state_dir / STORE_FILE_NAME)
        self._own_session = self._session_arg is None
        self._session = self._session_arg or aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, limit_per_host=0),
            auto_decompress=False,
        )
        tls = TlsContexts()  # one cache of SSL contexts for both HTTP transports
        self._http = HttpTransport(
            self._session,
            self.clock,
            chunk_size=self.config.chunk_size,
            connect_timeout=self.config.connect_timeout,
            read_timeout=self.config.read_timeout,
            tls=tls,
        )
        self._local = LocalTransport(chunk_size=self.config.chunk_size)
        self._uploads = Uploads(self, _http_options)  # upload jobs (bitsd._upload)
        self._on_demand = OnDemand(self, _http_options)  # on-demand jobs (bitsd._ondemand)
        # bitsd's own HTTP/1.1 client (zero-copy http, large-buffer https); redirected fetches
        # fall back to aiohttp. Not used with an injected session: the caller chose the client.
        # Large http:// bodies move in the splice helper process while it is enabled.
        self._splice_helper = SpliceHelper(enabled=self.config.splice_helper)
        self._raw = RawHttpTransport(
            self.clock,
            self._http,
            tls=tls,
            chunk_size=self.config.chunk_size,
            connect_timeout=self.config.connect_timeout,
            read_timeout=self.config.read_timeout,
            helper=self._splice_helper,
        )
        self._flusher = Flusher()
        # Offset from this run's monotonic clock to wall time, fixed for the whole run.
        self._wall_offset = self.clock.wall() - self.clock.monotonic()
        self._notifier = Notifier(
            self,
            self._store,
            self.clock,
            max_in_flight=self.config.max_notifications,
            retry_interval=self.config.notify_retry_interval,
            runner=self._runner,
        )
        try:
            snapshot = self._store.load()
            self._recover(snapshot.jobs, snapshot.files)
        except BaseException:
            if self._own_session:
                await self._session.close()
            if self._store_arg is None:
                self._store.close()
            raise
        self._notifier.start(
            [
                evolve(n, next_at=self._from_wall(n.next_at))
                for n in snapshot.notifications
                if n.job_id in self._jobs
            ]
        )
        self._cost = CostMonitor(
            self.clock,
            self._cost_source,
            lambda: self.config.cost_poll_interval,
            lambda _cost: self._kick.set(),
        )
        await self._cost.refresh()  # know the network's cost before the first job starts
        self._cost.start()
        self._open = True
        self._scheduler = asyncio.create_task(self._schedule_loop(), name="bitsd-scheduler")
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop every transfer (checkpointing it), stop notifying, and close the store."""
        if not self._open:
            return
        self._open = False
        self._scheduler.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._scheduler
        for job_id in list(self._runs):
            await self._stop_run(job_id)
            # The next start finds the job QUEUED and resumes it.
            if self._jobs[job_id].state in _RUNNING:
                self._transition(job_id, Event.REQUEUE)
        await self._raw.aclose()
        await self._uploads.close()
        await self._notifier.close()
        await self._cost.close()
        if self._courtesy is not None:
            await self._courtesy.close()
            self._courtesy = None
        if self._own_session:
            await self._session.close()
        if self._store_arg is None:
            self._store.close()  # an injected store belongs to the caller

    def _recover(self, jobs: Sequence[JobRecord], files: dict[str, list[FileRecord]]) -> None:
        """Load a previous run's jobs: finish interrupted cancels, requeue interrupted runs."""
        for stored in jobs:
            job = self._from_disk(stored)
            job_files = files.get(job.id, [])
            self._seq = max(self._seq, job.queue_seq)
            if job.state is JobState.CANCELLED:
                if is_upload(job):  # its Cancel-Session may still be due
                    self._uploads.recover_cancelled(job, job_files)
                    continue
                for f in job_files:
                    delete_quietly(f.temp_name)
                self._store.delete_job(job.id)
                continue
            if job.state is JobState.ACKNOWLEDGED:
                self._store.delete_job(job.id)
                continue
            recovered = [self._recover_file(f) for f in job_files]
            changed = [f for f, old in zip(recovered, job_files, strict=True) if f != old]
            if changed:
                self._store.put_files(changed)
            job_files = recovered
            self._keep(job)
            self._files[job.id] = job_files
            if job.state in _RUNNING:
                self._transition(job.id, Event.REQUEUE)

    @staticmethod
    def _recover_file(f: FileRecord) -> FileRecord:
        """Make a file record agree with its temporary file after a crash."""
        if not f.temp_name:
            return f  # an upload's source file: there is no temporary file to agree with
        size = temp_size(f.temp_name)
        if f.filled and not f.completed:  # an on-demand file: its spans must still be there
            if (size or 0) >= end_of(f.filled):
                return f
            return evolve(f, filled=(), bytes_transferred=0, validator=None)
        if (
            f.completed
            and not f.renamed
            and size is None
            and (temp_size(f.local_name) == f.bytes_total)
        ):
            # Complete renamed it and the process died before that was recorded.
            return evolve(f, renamed=True)
        if f.completed and not f.renamed and size != f.bytes_total:
            return evolve(f, completed=False, bytes_transferred=0, validator=None)
        if not f.completed and f.bytes_transferred > 0 and (size or 0) < f.bytes_transferred:
            return evolve(f, bytes_transferred=0, validator=None)
        return f

    # -- the manager's verbs ---------------------------------------------------------------

    async def create_job(
        self,
        display_name: str,
        job_type: JobType = JobType.DOWNLOAD,
        *,
        files: Iterable[tuple[str, str]] | None = None,
        priority: Priority | None = None,
        resume: bool = False,
    ) -> Job:
        """Create a job (IBackgroundCopyManager::CreateJob): SUSPENDED, with no files.

        The keyword arguments set the job up before it is handed out, as the calls would in
        this order: ``files`` (remote name, local name) as :meth:`Job.add_file_set` adds
        them, ``priority`` as :meth:`Job.set_priority`, and ``resume`` as :meth:`Job.resume`
        (the daemon's clients do it all in one request). All or nothing: if one of them is
        refused, the job is cancelled and that error is raised.

        Raises:
            InvalidArgumentError: a ``job_type`` that is no JobType value, a ``resume`` that is
                not a bool, a display name over 1,024 characters, or a file name AddFileSet
                refuses.
            NotSupportedError: a ``priority`` that is none (as SetPriority answers it).
            BitsError: what AddFileSet, SetPriority or Resume raise.
        """
        self._check_open()
        job_type = check_job_type(job_type)
        resume = check_bool("resume", resume)
        _check_length("display name", display_name, MAX_DISPLAY_NAME_LENGTH)
        check_job_count(len(self._jobs), self.config.max_jobs_per_user)
        now = self.clock.wall()
        job = JobRecord(
            id=str(uuid.uuid4()),
            display_name=display_name,
            type=job_type,
            state=JobState.SUSPENDED,
            creation_time=now,
            modification_time=now,
            minimum_retry_delay=max(
                self.config.default_minimum_retry_delay, MINIMUM_RETRY_DELAY_FLOOR
            ),
            no_progress_timeout=self.config.default_no_progress_timeout,
            last_activity_at=self.clock.monotonic(),
        )
        if priority is not None:  # SetPriority's checks, before the job is stored
            job = evolve(job, **self._validated(job, {"priority": priority}))
        self._store.put_job(self._to_disk(job))
        self._keep(job)
        self._files[job.id] = []
        self._kick.set()
        if files is not None or resume:
            try:
                if files is not None:
                    await self._add_files(job.id, files)
                if resume:
                    await self._resume(job.id)
            except BaseException:
                with contextlib.suppress(BitsError):
                    await self._cancel(job.id)
                raise
        return Job(self, job.id)

    async def get_job(self, job_id: str) -> Job:
        """The job with this id (GetJob). Raises NotFoundError for unknown or final jobs."""
        self._check_open()
        # Ids come back as they were handed out; any other spelling of a GUID is normalised.
        key = job_id if isinstance(job_id, str) and job_id in self._jobs else _normalise_id(job_id)
        if key not in self._jobs:
            raise NotFoundError(f"no job with id {job_id}")
        return Job(self, key)

    async def jobs(self) -> list[Job]:
        """Every job that is not final (EnumJobs), oldest first."""
        self._check_open()
        ordered = sorted(self._jobs.values(), key=lambda j: (j.creation_time, j.id))
        return [Job(self, j.id) for j in ordered]

    # -- records, for the handles ----------------------------------------------------------

    def _record(self, job_id: str) -> JobRecord:
        job = self._jobs.get(job_id) or self._final.get(job_id)
        if job is None:
            raise NotFoundError(f"no job with id {job_id}")
        return job

    def _files_of(self, job_id: str) -> list[FileRecord]:
        """A job's file records as the owner sees them: a file transferring now shows its
        sink's live record (built here, not at every write)."""
        files = self._stored_files(job_id)
        sinks = self._sinks.get(job_id)
        if not sinks:
            return files
        live = list(files)
        for index, sink in sinks.items():
            live[index] = sink.record
        return live

    def _stored_files(self, job_id: str) -> list[FileRecord]:
        """A job's file records as kept (a transferring file's live record aside: the same
        files, in the same order, with the same local names)."""
        files = self._files.get(job_id)
        return self._final_files.get(job_id, []) if files is None else files

    def _file_record(self, job_id: str, file: int | FileInfo) -> FileRecord:
        """One file's record as the owner sees it (see :meth:`_files_of`), without building
        the others'."""
        index = self._file_index(job_id, file)
        sink = self._sinks.get(job_id, {}).get(index)
        return sink.record if sink is not None else self._stored_files(job_id)[index]

    def _live(self, job_id: str) -> JobRecord:
        """The record of a job that accepts changes."""
        self._check_open()
        job = self._record(job_id)
        if job.state.is_final:
            raise InvalidStateError(f"the job is {job.state}; it accepts no changes")
        return job

    def _check_open(self) -> None:
        if not self._open:
            raise InvalidStateError("the engine is not running; use it as 'async with'")

    def _progress(self, job_id: str) -> JobProgress:
        files = self._files_of(job_id)
        sizes = [f.bytes_total for f in files]
        total = (
            codes.SIZE_UNKNOWN
            if any(s is None for s in sizes)
            else sum(s for s in sizes if s is not None)
        )
        return JobProgress(
            bytes_total=total,
            bytes_transferred=sum(f.bytes_transferred for f in files),
            files_total=len(files),
            files_transferred=sum(1 for f in files if f.completed),
        )

    def _times(self, job_id: str) -> JobTimes:
        job = self._record(job_id)
        done = job.transfer_completion_time
        return JobTimes(
            _utc(job.creation_time),
            _utc(job.modification_time),
            _utc(done) if done is not None else None,
        )

    @staticmethod
    def _file_info(f: FileRecord) -> FileInfo:
        total = codes.SIZE_UNKNOWN if f.bytes_total is None else f.bytes_total
        return FileInfo(
            f.remote_name,
            f.local_name,
            FileProgress(total, f.bytes_transferred, f.completed),
            f.temp_name,
        )

    def _file_infos(self, job_id: str) -> list[FileInfo]:
        self._record(job_id)
        return [self._file_info(f) for f in self._files_of(job_id)]

    def _file_details(self, job_id: str, start: int = 0) -> list[FileDetails]:
        """The files from index ``start`` on, each with what its own getters answer: its
        record (``_file_info``, GetFileRanges, the validation state) and filled ranges
        (GetFilledFileRanges; None where that getter fails with
        BG_E_RANDOM_ACCESS_NOT_SUPPORTED). One pass over the records, building nothing per
        file: a job of thousands of files is listed (Complete's answer lists them all) at the
        cost of its records, not of a getter call, an index check or an object per file."""
        job = self._record(job_id)
        filled_of = self._on_demand.filled_of
        return [(f, filled_of(job, f)) for f in self._files_of(job_id)[start:]]

    def _error_info(self, job_id: str) -> ErrorInfo:
        job = self._record(job_id)
        if job.state not in (JobState.ERROR, JobState.TRANSIENT_ERROR) or job.error is None:
            raise ErrorInfoUnavailableError(
                f"the job is {job.state}; error information exists only in ERROR and "
                "TRANSIENT_ERROR"
            )
        err = job.error
        files = self._files_of(job_id)
        file = None
        if err.file_index is not None and err.file_index < len(files):
            file = self._file_info(files[err.file_index])
        return ErrorInfo(
            err.code, err.context, err.description, _CONTEXT_TEXT[err.context], file, err.protocol
        )

    def snapshot(self, job_id: str) -> JobSnapshot:
        """Everything about a job that may be shown, read at once (no await: safe from
        listeners). Works for final jobs still held by handles.

        Raises:
            NotFoundError: no such job.
        """
        job = self._record(job_id)
        error = None
        if job.state in (JobState.ERROR, JobState.TRANSIENT_ERROR) and job.error is not None:
            error = self._error_info(job_id)
        return JobSnapshot(
            id=job.id,
            display_name=job.display_name,
            description=job.description,
            type=job.type,
            state=job.state,
            priority=job.priority,
            owner=self.owner_uid,
            notify_flags=job.notify_flags,
            notify_program=job.notify_program,
            notify_parameters=job.notify_parameters,
            minimum_retry_delay=job.minimum_retry_delay,
            no_progress_timeout=job.no_progress_timeout,
            maximum_download_time=job.maximum_download_time,
            dynamic_content=job.dynamic_content,
            error_count=job.error_count,
            progress=self._progress(job_id),
            times=self._times(job_id),
            error=error,
            maximum_download_size=job.maximum_download_size,
            custom_headers=None if job.custom_headers_write_only else job.custom_headers,
            custom_headers_write_only=job.custom_headers_write_only,
            http_method=job.http_method,
            security_flags=job.security_flags,
            proxy_usage=job.proxy_usage,
            proxy_list=job.proxy_list,
            proxy_bypass=job.proxy_bypass,
            ca_bundle=job.ca_bundle,
            client_certificate=job.client_certificate,
            transfer_policy=job.transfer_policy,
            bandwidth_limit=job.bandwidth_limit,
            on_demand=job.on_demand,
        )

    def _notify_interface(self, job_id: str) -> object | None:
        self._record(job_id)
        return self._notifier.callback_of(job_id)

    # -- the funnel ------------------------------------------------------------------------

    def _transition(self, job_id: str, event: Event, **changes: Any) -> JobRecord:
        """Apply ``event`` to the job: validate, persist, then notify.

        Raises:
            InvalidTransitionError: the state table has no row for it; nothing changes.
        """
        old = self._jobs[job_id]
        state = apply(old.state, event)
        now = self.clock.monotonic()
        if old.state in _RUNNING and state not in _RUNNING and job_id in self._runs:
            run = self._runs[job_id]
            changes.setdefault("download_time_used", old.download_time_used + now - run.started_at)
            run.started_at = now
        new = evolve(
            old, state=state, modification_time=self.clock.wall(), last_activity_at=now, **changes
        )
        self._commit(new)
        self._after(old, new)
        return new

    def _commit(self, job: JobRecord, files: Sequence[FileRecord] | None = None) -> None:
        if job.state.is_final:
            if job.state is JobState.CANCELLED:
                # Keep the row (CANCELLED) until the files are gone, so a crash finishes the job.
                self._store.put_job(self._to_disk(job))
            ended = self._files.pop(job.id, [])
            self._final[job.id] = job
            self._final_files[job.id] = ended
            self._final_file_count += len(ended)
            self._forget_oldest_final()
            del self._jobs[job.id]
            self._line.remove(job.id)
            self._agenda.forget(job.id)
            return
        self._store.put_job(self._to_disk(job), files or ())
        self._keep(job)
        if files is not None:
            self._files[job.id] = list(files)

    def _forget_oldest_final(self) -> None:
        """Drop the oldest ended jobs beyond ``FINAL_JOBS_KEPT`` jobs or ``FINAL_FILES_KEPT``
        files; the job that ended last always stays (its caller reads it right after)."""
        while len(self._final) > 1 and (
            len(self._final) > FINAL_JOBS_KEPT or self._final_file_count > FINAL_FILES_KEPT
        ):
            oldest, _ = self._final.popitem(last=False)
            self._final_file_count -= len(self._final_files.pop(oldest, []))

    def _keep(self, job: JobRecord) -> None:
        """Hold ``job`` as the live record of its job; the scheduler looks at it next round,
        and plans again if what the plan depends on changed."""
        old = self._jobs.get(job.id)
        replan = False
        # A run going from CONNECTING to TRANSFERRING (or back) stays the same candidate: the
        # plan sees runs by priority, queue place and start, not by which running state.
        between_runs = old is not None and old.state in _RUNNING and job.state in _RUNNING
        if old is None or (old.state is not job.state and not between_runs):
            # Only waiting and running jobs are the plan's candidates.
            replan = (
                job.id in self._runs
                or job.state in _PLANNED
                or (old is not None and old.state in _PLANNED)
            )
        elif (job.state is JobState.QUEUED or job.id in self._runs) and (
            old.priority is not job.priority or old.queue_seq != job.queue_seq
        ):
            replan = True  # a candidate of the plan moved
        self._jobs[job.id] = job
        self._line.update(
            job.id,
            waiting=job.state is JobState.QUEUED,
            priority=job.priority,
            queue_seq=job.queue_seq,
        )
        if replan and (old is None or old.state not in _PLANNED) and job.id not in self._runs:
            # A job that starts waiting behind more than the plan looks at (the heads of the
            # waiting line) changes nothing the plan sees.
            replan = self._line.is_head(job.id, self.config.max_background_jobs + 1)
        self._replan = self._replan or replan
        self._agenda.touch(job.id)

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(job_id, what)`` after every committed change of any job."""
        self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        """Stop calling ``listener``."""
        with contextlib.suppress(ValueError):
            self._listeners.remove(listener)

    def _emit(self, job_id: str, what: str) -> None:
        for listener in list(self._listeners):
            try:
                listener(job_id, what)
            except Exception:
                log.exception("listener failed")

    def reconfigure(self, **changes: Any) -> None:
        """Change service settings while running (the daemon's SIGHUP). Settings that shape
        running transfers (timeouts, chunk size) apply to the next request (a kept-alive
        connection's when it is used again)."""
        self.config = config = dataclasses.replace(self.config, **changes)
        for transport in (self._http, self._raw):
            transport.retune(
                chunk_size=config.chunk_size,
                connect_timeout=config.connect_timeout,
                read_timeout=config.read_timeout,
            )
        self._local.retune(chunk_size=config.chunk_size)
        self._uploads.retune(config)
        self._splice_helper.enabled = config.splice_helper
        self._notifier.reconfigure(
            retry_interval=config.notify_retry_interval, max_in_flight=config.max_notifications
        )
        self._agenda.touch_all(self._jobs)  # e.g. a new job inactivity timeout
        self._replan = True  # e.g. a new number of background jobs
        self._kick.set()

    def _after(self, old: JobRecord, new: JobRecord) -> None:
        """Notifications and wake-ups that follow a committed change."""
        self._emit(new.id, "state" if old.state is not new.state else "property")
        if old.state is not new.state:
            if not new.state.is_final:
                # A final job's notifications leave the store with its row (delete_job).
                self._notifier.left_state(new.id, old.state)
            log.info("job %s: %s -> %s", new.id, old.state, new.state)
            if new.state is JobState.ERROR and new.error is not None:
                log.info(
                    "job %s error %s: %s",
                    new.id,
                    codes.name_of(new.error.code),
                    new.error.description,
                )
        if new.state.is_final:
            self._notifier.forget(new.id)
        elif old.state is not new.state and new.state is JobState.ERROR:
            if self._wants(new, NotifyFlags.JOB_ERROR):
                self._notifier.post(new.id, JOB_ERROR)
        elif old.state is not new.state and new.state is JobState.TRANSFERRED:
            if self._wants(new, NotifyFlags.JOB_TRANSFERRED):
                self._notifier.post(new.id, JOB_TRANSFERRED)
        else:
            self._notifier.modification(new.id)
        self._wake_waiters(new.id)
        self._kick.set()

    @staticmethod
    def _wants(job: JobRecord, flag: NotifyFlags) -> bool:
        return NotifyFlags.DISABLE not in job.notify_flags and flag in job.notify_flags

    def _wake_waiters(self, job_id: str) -> None:
        for waiter in self._waiters.pop(job_id, ()):
            if not waiter.done():
                waiter.set_result(None)

    async def _set(self, job_id: str, **changes: Any) -> None:
        """Change properties (not the state) of a job: validate, persist, notify."""
        job = self._live(job_id)
        changes = self._validated(job, changes)
        new = evolve(
            job,
            modification_time=self.clock.wall(),
            last_activity_at=self.clock.monotonic(),
            **changes,
        )
        self._commit(new)
        self._after(job, new)

    def _validated(self, job: JobRecord, changes: dict[str, Any]) -> dict[str, Any]:
        """``changes`` as they are kept, or the setter's error. Every value is checked alone
        first (:func:`_checked`: its type and range, as the daemon checks a request's body
        before anything), then against the job: its type, its state, its files and its other
        properties."""
        checked = {name: _checked(name, value) for name, value in changes.items()}
        out: dict[str, Any] = {}
        for name, value in checked.items():
            if is_upload(job):
                check_download_only(name, value)
            _check_on_demand_property(job, self._files.get(job.id, []), name, value)
            if name in _BEFORE_RESUME:
                _before_resume(job, _BEFORE_RESUME[name])
            if name == "dynamic_content" and value:
                if job.http_method is not None:
                    raise BitsError(
                        "dynamic content does not go with a custom HTTP method",
                        hresult=codes.BG_E_NOT_SUPPORTED_WITH_CUSTOM_HTTP_METHOD,
                    )
                if any(f.ranges for f in self._files.get(job.id, [])):
                    raise BitsError(
                        "dynamic content does not go with file ranges",
                        hresult=codes.BG_E_UNSUPPORTED_JOB_CONFIGURATION,
                    )
            elif name == "http_method" and value is not None:
                if job.dynamic_content:
                    raise BitsError(
                        "a custom HTTP method does not go with dynamic content",
                        hresult=codes.BG_E_NOT_SUPPORTED_WITH_CUSTOM_HTTP_METHOD,
                    )
                out["priority"] = Priority.FOREGROUND  # BITS forces it, for good
            out[name] = value
        if (
            "priority" in out
            and job.http_method is not None
            and (out["priority"] is not Priority.FOREGROUND)
        ):
            raise BitsError(
                "a job with a custom HTTP method stays FOREGROUND",
                hresult=codes.BG_E_NOT_SUPPORTED_WITH_CUSTOM_HTTP_METHOD,
            )
        return out

    # -- files -----------------------------------------------------------------------------

    async def _add_files(
        self,
        job_id: str,
        files: Iterable[tuple[str, str]],
        *,
        sha256: str | None = None,
        ranges: Iterable[tuple[int, int]] | None = None,
    ) -> None:
        job = self._live(job_id)
        pairs = file_pairs(files)
        if ranges is not None:  # their type first, as the daemon checks a body's
            ranges = range_pairs(ranges)
        if sha256 is not None and not isinstance(sha256, str):  # the type first, too
            raise InvalidArgumentError(f"the SHA-256 must be a string, not {shown(sha256)}")
        if is_upload(job):
            await self._uploads.add_files(job_id, pairs, sha256=sha256, ranges=ranges)
            return
        if not pairs:
            raise InvalidArgumentError("no files given")
        existing = self._files[job_id]
        check_file_count(len(existing), len(pairs), self.config.max_files_per_job)
        used = {f.local_name for f in existing}
        added: list[FileRecord] = []
        checked_ranges = None
        if ranges is not None:
            if job.dynamic_content:
                raise BitsError(
                    "file ranges do not go with dynamic content",
                    hresult=codes.BG_E_UNSUPPORTED_JOB_CONFIGURATION,
                )
            checked_ranges = check_ranges(ranges, limit=self.config.max_ranges_per_file)
        if sha256 is not None and (not isinstance(sha256, str) or not _SHA256.match(sha256)):
            raise InvalidArgumentError(f"not a SHA-256 in hex: {shown(sha256)}")
        folders: dict[str, bool] = {}
        for remote, local in pairs:
            remote = check_remote_name(remote)
            local = check_local_name(local, folders)
            if checked_ranges is not None and remote_kind(remote) is not RemoteKind.HTTP:
                raise InvalidArgumentError("file ranges need an http:// or https:// URL")
            if job.on_demand:
                _check_on_demand_file(remote, checked_ranges)
            if local in used:
                raise InvalidArgumentError(f"the job already has a file named {local}")
            used.add(local)
            index = len(existing) + len(added)
            added.append(
                FileRecord(
                    job_id=job_id,
                    index=index,
                    remote_name=remote,
                    local_name=local,
                    temp_name=temp_name_for(local, job_id, index),
                    ranges=checked_ranges,
                    sha256=sha256.lower() if sha256 else None,
                )
            )
        new = evolve(
            job, modification_time=self.clock.wall(), last_activity_at=self.clock.monotonic()
        )
        self._store.put_job(self._to_disk(new), added)
        self._keep(new)
        self._files[job_id] = existing + added
        self._after(job, new)
        self._emit(job_id, "files")

    # -- verbs -----------------------------------------------------------------------------

    async def _resume(self, job_id: str) -> None:
        job = self._live(job_id)
        files = self._files[job_id]
        if not files:
            raise EmptyJobError("the job has no files; add one before Resume")
        if job.state in (JobState.QUEUED, *_RUNNING):
            return  # BITS: Resume of an active job changes nothing.
        if job.state is JobState.TRANSFERRED and all(f.completed for f in files):
            return  # Nothing left to transfer; stay TRANSFERRED.
        if is_upload(job):
            self._uploads.before_resume(job_id)
        self._seq += 1
        self._transition(
            job_id,
            Event.RESUME,
            error=None,
            retry_at=None,
            no_progress_since=None,
            ever_resumed=True,
            download_time_used=0.0,
            queue_seq=self._seq,
        )

    async def _suspend(self, job_id: str) -> None:
        job = self._live(job_id)
        await self._stop_run(job_id)
        job = self._live(job_id)
        if job.state is JobState.SUSPENDED:
            return
        self._transition(job_id, Event.SUSPEND, retry_at=None)

    async def _cancel(self, job_id: str) -> int:
        if is_upload(self._live(job_id)):
            return await self._uploads.cancel(job_id)
        self._live(job_id)
        await self._stop_run(job_id)
        self._live(job_id)
        files = list(self._files[job_id])
        self._transition(job_id, Event.CANCEL)
        ok = all(delete_quietly(f.temp_name) for f in files if not f.renamed)
        self._store.delete_job(job_id)
        return codes.S_OK if ok else codes.BG_S_UNABLE_TO_DELETE_FILES

    async def _complete(self, job_id: str) -> int:
        if is_upload(self._live(job_id)):
            return await self._uploads.complete(job_id)
        self._live(job_id)
        await self._stop_run(job_id)
        self._live(job_id)
        files = self._files[job_id]
        partial = any(not f.completed for f in files)
        todo = [f for f in files if f.completed and not f.renamed]
        # One worker-thread hop renames them all, in order, with one fsync per folder; a few
        # files in memory-backed folders are renamed on the loop (_RENAMES_ON_LOOP).
        pairs = [(f.temp_name, f.local_name) for f in todo]
        if len(pairs) <= _RENAMES_ON_LOOP and all(map(folder_memory_backed, folders_of(pairs))):
            count, failure = rename_all_into_place(pairs)
        else:
            count, failure = await asyncio.to_thread(rename_all_into_place, pairs)
        if failure is not None:
            # BITS: a failed rename leaves the job in the queue; the renames done stay done.
            renamed = {f.index for f in todo[:count]}
            done = [evolve(f, renamed=True) if f.index in renamed else f for f in files]
            f = todo[count]
            self._files[job_id] = done
            self._store.put_files([d for d in done if d.renamed])
            if self._jobs[job_id].state in _RUNNING:
                # The transfer was stopped for Complete: let the scheduler take it again.
                self._transition(job_id, Event.REQUEUE)
            code = codes.hresult_from_errno(failure.errno or 0)
            raise BitsError(
                f"cannot move {f.temp_name} to {f.local_name}: {failure.strerror}", hresult=code
            ) from failure
        # The renames are durable (rename_all_into_place syncs the folders) and the job leaves
        # the store right after its state change, so its file rows are not rewritten first: a
        # crash before the state change is repaired at start-up (_recover_file: temporary file
        # gone, final file of the right size), one after it drops the ACKNOWLEDGED job. The
        # ended job's records are kept as they were, not copied with ``renamed`` set (5,000
        # copies for 5,000 files): nothing reads that flag of an ended job, no getter shows it.
        self._transition(job_id, Event.COMPLETE)
        for f in files:
            if not f.completed:  # every completed file is in place now
                delete_quietly(f.temp_name)
        self._store.delete_job(job_id)
        return codes.BG_S_PARTIAL_COMPLETE if partial else codes.S_OK

    async def _wait(
        self, job_id: str, wanted: Iterable[JobState] | JobState, timeout: float | None
    ) -> JobState:
        states = job_states(wanted)
        timeout = wait_timeout(timeout)

        async def until() -> JobState:
            while True:
                state = self._record(job_id).state
                if state in states:
                    return state
                waiter = asyncio.get_running_loop().create_future()
                waiters = self._waiters.setdefault(job_id, set())
                waiters.add(waiter)
                try:
                    await waiter
                finally:
                    waiters.discard(waiter)

        state = self._record(job_id).state
        if state in states:
            return state  # there already: no task, no timer
        return await asyncio.wait_for(until(), timeout)

    async def _set_proxy_settings(
        self, job_id: str, usage: int, proxy_list: str | None, bypass_list: str | None
    ) -> None:
        self._live(job_id)
        kind, proxies, bypass = check_proxy_settings(usage, proxy_list, bypass_list)
        await self._set(job_id, proxy_usage=int(kind), proxy_list=proxies, proxy_bypass=bypass)

    async def _set_credentials(
        self, job_id: str, target: int, scheme: int, user_name: str | None, password: str | None
    ) -> None:
        job = self._live(job_id)
        t, s, user, secret = check_credentials(target, scheme, user_name, password)
        kept = tuple(c for c in job.credentials if (c[0], c[1]) != (int(t), int(s)))
        await self._set(job_id, credentials=(*kept, (int(t), int(s), user, secret)))

    async def _remove_credentials(self, job_id: str, target: int, scheme: int) -> int:
        job = self._live(job_id)
        t, s, _, _ = check_credentials(target, scheme, None, None)
        kept = tuple(c for c in job.credentials if (c[0], c[1]) != (int(t), int(s)))
        if len(kept) == len(job.credentials):
            return codes.S_FALSE
        await self._set(job_id, credentials=kept)
        return codes.S_OK

    async def _make_custom_headers_write_only(self, job_id: str) -> None:
        await self._set(job_id, custom_headers_write_only=True)

    def _custom_headers(self, job_id: str) -> str | None:
        job = self._record(job_id)
        if job.custom_headers_write_only:
            raise BitsError("the custom headers are write-only", hresult=codes.E_ACCESSDENIED)
        return job.custom_headers

    def _file_index(self, job_id: str, file: int | FileInfo) -> int:
        files = self._stored_files(job_id)
        if isinstance(file, FileInfo):
            for f in files:
                if f.local_name == file.local_name:
                    return f.index
            raise InvalidArgumentError(f"the job has no file {file.local_name}")
        if not is_int(file) or not 0 <= file < len(files):
            raise InvalidArgumentError(f"the job has no file number {shown(file)}")
        return file

    def _file_ranges(self, job_id: str, file: int | FileInfo) -> list[tuple[int, int]]:
        return list(self._file_record(job_id, file).ranges or ())

    async def _replace_remote_prefix(self, job_id: str, old: str, new: str) -> int:
        job = self._live(job_id)
        if not isinstance(old, str) or not isinstance(new, str):  # the values first
            raise InvalidArgumentError("both prefixes must be strings")
        if is_upload(job):
            raise NotSupportedError("an upload job's remote name has no prefix to replace")
        if not old or not new:
            raise InvalidArgumentError("both prefixes must be non-empty")
        changed: list[FileRecord] = []
        for f in self._files[job_id]:
            if f.remote_name.startswith(old):  # case-sensitive, as in BITS
                url = check_remote_name(new + f.remote_name[len(old) :])
                if f.ranges is not None and remote_kind(url) is not RemoteKind.HTTP:
                    raise InvalidArgumentError("file ranges need an http:// or https:// URL")
                if job.on_demand:
                    _check_on_demand_file(url, None)
                changed.append(evolve(f, remote_name=url))
        if not changed:
            return codes.S_FALSE
        # Files already transferred keep their bytes; the others continue where they are and
        # restart only if the new server's copy differs (validator or size).
        run = job_id in self._runs
        await self._stop_run(job_id)
        files = list(self._files[job_id])
        # The records as the stop left them (its checkpoints), with the new names.
        changed = [evolve(files[f.index], remote_name=f.remote_name) for f in changed]
        for f in changed:
            files[f.index] = f
        new_job = evolve(
            self._jobs[job_id],
            modification_time=self.clock.wall(),
            last_activity_at=self.clock.monotonic(),
        )
        self._store.put_job(self._to_disk(new_job), changed)
        self._keep(new_job)
        self._files[job_id] = files
        if run and new_job.state in _RUNNING:
            self._transition(job_id, Event.REQUEUE)
        self._after(job, new_job)
        return codes.S_OK

    async def _set_validation_state(self, job_id: str, file: int | FileInfo, valid: bool) -> None:
        valid = check_bool("valid", valid)  # a BOOL (SetValidationState), checked alone first
        self._live(job_id)
        index = self._file_index(job_id, file)
        record = self._files[job_id][index]
        if not record.completed:
            raise BitsError("the file has not finished transferring", hresult=codes.E_PENDING)
        if valid:
            updated = evolve(record, validated=True)
            self._file_changed(updated, durable=True)
            return
        # SetValidationState(FALSE): the file is downloaded again after Resume.
        await self._stop_run(job_id)
        delete_quietly(record.temp_name)
        reset = evolve(
            record, completed=False, bytes_transferred=0, validator=None, validated=False
        )
        self._file_changed(reset, durable=True)
        error = TransferError(
            codes.BG_E_VALIDATION_FAILED,
            ErrorContext.LOCAL_FILE,
            transient=False,
            message="the application found the file invalid "
            "(SetValidationState FALSE); Resume downloads it again",
        )
        job = self._jobs[job_id]
        if job.state is not JobState.ERROR:
            self._transition(
                job_id,
                Event.VALIDATION_FAILED,
                error=ErrorRecord(error.hresult, error.context, error.message, index, None),
                error_count=job.error_count + 1,
                retry_at=None,
            )

    def _validation_state(self, job_id: str, file: int | FileInfo) -> bool:
        return self._file_record(job_id, file).validated

    async def _set_notify_interface(self, job_id: str, callback: object | None) -> None:
        self._live(job_id)
        self._notifier.register(job_id, callback)

    async def _set_notify_cmd_line(
        self, job_id: str, program: str | None, parameters: str | None
    ) -> None:
        if program is None and parameters is not None:
            raise InvalidArgumentError("parameters need a program")
        if program is not None:
            _check_length("notify program", program, MAX_NOTIFY_PROGRAM_LENGTH)
            if not os.path.isabs(program):
                raise InvalidArgumentError(
                    f"the notify program must be an absolute path (no search path): {program!r}"
                )
            if parameters is not None:
                _check_length("notify parameters", parameters, MAX_NOTIFY_PARAMETERS_LENGTH)
            if "\x00" in program or (parameters is not None and "\x00" in parameters):
                # No program path or argument can hold one: exec() would refuse it each time.
                raise InvalidArgumentError("a notify command line cannot contain NUL")
            try:
                shlex.split(parameters or "")
            except ValueError as exc:
                raise InvalidArgumentError(
                    f"the notify parameters cannot be parsed: {exc}"
                ) from None
        await self._set(job_id, notify_program=program, notify_parameters=parameters)
        # BITS runs a command line set after the event too: offer it waiting notifications.
        self._notifier.retry_waiting(job_id)

    # -- notifier host ---------------------------------------------------------------------

    def notify_target(self, job_id: str) -> NotifyTarget | None:
        job = self._jobs.get(job_id)
        if job is None:
            return None
        return NotifyTarget(
            job.state,
            job.notify_flags,
            job.notify_program,
            job.notify_parameters,
            job.minimum_retry_delay,
        )

    def job_handle(self, job_id: str) -> Job:
        return Job(self, job_id)

    def error_info(self, job_id: str) -> ErrorInfo:
        return self._error_info(job_id)

    # -- scheduling ------------------------------------------------------------------------

    async def _schedule_loop(self) -> None:
        """Run rounds: after every kick, and at the time the last round asked for. A round
        costs no task of its own: the loop awaits the kick's plain future, and the sleep until
        the asked time kicks when it ends. The sleep is kept while the asked time is not
        earlier: a sleep that ends before it only brings a round that finds nothing due and
        sleeps again, where cancelling and starting a sleep each round (the asked time moves
        with every job touched) cost a task and a timer every round."""
        sleeper: asyncio.Future[None] | None = None
        sleeping_until: float | None = None
        try:
            while True:
                self._kick.clear()
                try:
                    wake_at = await self._tick()
                except Exception:  # pragma: no cover - a bug; keep the service alive
                    log.exception("scheduler tick failed")
                    wake_at = self.clock.monotonic() + 1.0
                if wake_at is not None and (sleeping_until is None or wake_at < sleeping_until):
                    if sleeper is not None:
                        sleeper.cancel()
                    sleeper = asyncio.ensure_future(self.clock.sleep_until(wake_at))
                    sleeper.add_done_callback(self._slept)
                    sleeping_until = wake_at
                await self._kick.future()
                if sleeper is not None and sleeper.done():
                    sleeper, sleeping_until = None, None
        finally:
            if sleeper is not None:
                sleeper.cancel()

    def _slept(self, sleeper: asyncio.Future[None]) -> None:
        if not sleeper.cancelled():
            self._kick.set()

    async def _tick(self) -> float | None:
        """One round of the scheduler. Returns the next time it must run by itself.

        A round looks only at the jobs the agenda hands it (changed since the last round, or
        with a deadline now) and chooses runs among the heads of the waiting line, so its cost
        follows what changed, not how many jobs there are (bitsd._agenda)."""
        now = self.clock.monotonic()
        looked = self._agenda.due(now)
        for job_id in looked:
            if job_id in self._jobs:
                await self._look_at(job_id, now)
        deadlines: list[float] = []
        policy_change = await self._apply_policies(now, looked)
        if policy_change is not None:
            deadlines.append(policy_change)
        if self._replan or (self._plan_wake is not None and now >= self._plan_wake):
            self._replan = False
            self._plan_wake = await self._plan(now)
        if self._plan_wake is not None:
            deadlines.append(self._plan_wake)
        next_look = self._agenda.next_at()
        if next_look is not None:
            deadlines.append(next_look)
        return min(deadlines) if deadlines else None

    async def _plan(self, now: float) -> float | None:
        """Start and stop runs as ``bitsd._scheduler.plan`` decides from the running jobs and
        the heads of the waiting line; returns when the plan's time slices end (or None)."""
        wanting = dict.fromkeys(self._line.heads(self.config.max_background_jobs + 1))
        wanting.update(dict.fromkeys(self._runs))
        candidates = [
            Candidate(
                j.id,
                j.priority,
                j.queue_seq,
                j.id in self._runs,
                self._runs[j.id].started_at if j.id in self._runs else None,
            )
            for j in (self._jobs[i] for i in wanting if i in self._jobs)
            if j.state is JobState.QUEUED or j.id in self._runs
        ]
        decision = plan(
            candidates,
            now=now,
            max_background=self.config.max_background_jobs,
            time_slice=self.config.time_slice,
        )
        for job_id in decision.stop:
            await self._stop_run(job_id)
            if job_id in self._jobs and self._jobs[job_id].state in _RUNNING:
                self._seq += 1
                self._transition(job_id, Event.REQUEUE, queue_seq=self._seq)
        for job_id in decision.start:
            if job_id in self._jobs and self._jobs[job_id].state is JobState.QUEUED:
                self._start_run(job_id)
        return decision.wake_at

    async def _look_at(self, job_id: str, now: float) -> None:
        """Act on a job's deadlines that have come (job inactivity, retry delay, maximum
        download time) and put its next one on the agenda."""
        job = self._jobs[job_id]
        run = self._runs.get(job_id)
        inactive_at = job.last_activity_at + self.config.job_inactivity_timeout
        retry_at = job.retry_at if job.state is JobState.TRANSIENT_ERROR else None
        limit = None
        if run is not None and job.maximum_download_time > 0:
            limit = run.started_at + job.maximum_download_time - job.download_time_used
        if now >= inactive_at and run is None:
            log.info(
                "job %s inactive for %.0f s: cancelled",
                job_id,
                self.config.job_inactivity_timeout,
            )
            await self._cancel(job_id)
            return
        if retry_at is not None and now >= retry_at:
            self._wake_from_transient(job, now)
            return  # the transition touched it: the next round looks again
        if run is not None and limit is not None and now >= limit:
            await self._stop_run(job_id)
            if self._jobs.get(job_id, job).state in _RUNNING:
                self._fail(
                    job_id,
                    TransferError(
                        codes.BG_E_MAXDOWNLOAD_TIMEOUT,
                        ErrorContext.GENERAL_QUEUE_MANAGER,
                        transient=False,
                        message=codes.describe(codes.BG_E_MAXDOWNLOAD_TIMEOUT),
                    ),
                    run.file_index,
                )
            return
        # A running job's inactivity deadline may have passed: its run's end looks again.
        future = [t for t in (inactive_at, retry_at, limit) if t is not None and t > now]
        self._agenda.schedule(job_id, min(future) if future else None)

    def _wake_from_transient(self, job: JobRecord, now: float) -> None:
        deadline = (job.no_progress_since or now) + job.no_progress_timeout
        if now >= deadline:
            self._transition(job.id, Event.FATAL_FAILURE, retry_at=None)
        else:
            self._transition(job.id, Event.RETRY, retry_at=None)

    def _start_run(self, job_id: str) -> None:
        now = self.clock.monotonic()
        run = self._uploads.run(job_id) if is_upload(self._jobs[job_id]) else self._run_job(job_id)
        task = asyncio.create_task(run, name=f"bitsd-job-{job_id}")
        self._runs[job_id] = _Run(task, now, proxy_environment=proxy_environment())
        self._replan = True
        self._transition(job_id, Event.START)

    async def _stop_run(self, job_id: str) -> None:
        run = self._runs.get(job_id)
        if run is None:
            return
        run.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await run.task

    # -- policies: bandwidth windows, network cost, courtesy (docs/policies.md) -------------

    async def _apply_policies(self, now: float, looked: list[str]) -> float | None:
        """Set the bandwidth rates for now; hold jobs a policy forbids in TRANSIENT_ERROR and
        re-queue those it no longer forbids (bitsd._limits). Returns the monotonic time of the
        next scheduled limit change, or None.

        Every job is weighed when the network's cost or a priority's blocked state changed
        since the last round; otherwise only the jobs ``looked`` at this round (the others
        have not changed, and neither has what they are weighed against)."""
        config = self.config
        await self._sync_courtesy()
        wall = self.clock.wall()
        # The rates stay as they are until the config changes, the next scheduled change
        # comes, or the wall clock is set back.
        rates_for, rates_at, change = self._rates_set
        if rates_for is not config or wall < rates_at or (change is not None and wall >= change):
            change = self._bandwidth.update(
                wall=wall,
                bandwidth_limit=config.bandwidth_limit,
                schedule=config.bandwidth_schedule,
                priority_limits=config.priority_limits,
            )
            self._rates_set = (config, wall, change)
        inputs = (self._cost.current, tuple(self._bandwidth.blocked(p) for p in Priority))
        weigh = list(self._jobs) if inputs != self._policy_inputs else looked
        self._policy_inputs = inputs
        for job_id in weigh:
            job = self._jobs.get(job_id)  # read again: stopping a run below awaits
            if job is None:
                continue
            reason = blocked_by(
                priority=job.priority,
                transfer_policy=job.transfer_policy,
                cost=self._cost.current,
                bandwidth_blocked=self._bandwidth.blocked(job.priority),
            )
            if held_by_policy(job):
                assert job.error is not None
                if reason is None:
                    self._unblock(job, now)
                elif reason != job.error.code:
                    self._block(job.id, reason, now)
            elif reason is not None and (job.state is JobState.QUEUED or job.id in self._runs):
                await self._stop_run(job.id)
                state = self._jobs[job.id].state if job.id in self._jobs else None
                if state is JobState.QUEUED or state in _RUNNING:
                    self._block(job.id, reason, now)
        return None if change is None else now + (change - wall)

    def _block(self, job_id: str, code: int, now: float) -> None:
        """Hold a job in TRANSIENT_ERROR for a policy: no retry timer, no error count."""
        if self._jobs[job_id].state is JobState.TRANSIENT_ERROR:
            self._blocked_at.setdefault(job_id, now)  # held already; only the reason changed
        else:
            self._blocked_at[job_id] = now
        error = ErrorRecord(
            code, ErrorContext.GENERAL_QUEUE_MANAGER, codes.describe(code), None, None
        )
        self._transition(job_id, Event.BLOCKED, error=error, retry_at=None)

    def _unblock(self, job: JobRecord, now: float) -> None:
        """Re-queue a held job; time held does not count toward its no-progress timeout."""
        since = job.no_progress_since
        held_from = self._blocked_at.pop(job.id, now)
        if since is not None:
            since += now - held_from
        self._transition(job.id, Event.UNBLOCKED, error=None, no_progress_since=since)

    def _rate_of(self, job_id: str) -> tuple[Priority, float | None] | None:
        """A job's priority and own bandwidth limit, for the bandwidth manager."""
        job = self._jobs.get(job_id)
        if job is None:
            return None
        limit = None if job.bandwidth_limit is None else float(job.bandwidth_limit)
        return job.priority, limit

    async def _network_cost(self) -> CostStates:
        """The default cost source: NetworkManager's metered flag."""
        return await NetworkManagerCost(metered_cost=CostStates(self.config.metered_cost))()

    def _proc_link_counter(self) -> int | None:
        """The default link counter: /proc/net/dev of the configured or default interface."""
        self._proc_counter.interface = self.config.courtesy_interface
        return self._proc_counter()

    async def _sync_courtesy(self) -> None:
        """Start, stop or retune background courtesy to match the config."""
        config = self.config
        if not config.background_courtesy:
            if self._courtesy is not None:
                await self._courtesy.close()
                self._courtesy = None
            return
        if self._courtesy is None:
            self._courtesy = CourtesyMonitor(
                self.clock,
                self._link_counter,
                lambda: self._bandwidth.received,
                self._bandwidth.set_courtesy,
                CourtesyController(),
            )
            self._courtesy.start()
        self._courtesy.controller.floor = config.courtesy_floor
        self._courtesy.controller.threshold = config.courtesy_threshold

    # -- transfers -------------------------------------------------------------------------

    async def _run_job(self, job_id: str) -> None:
        try:
            await asyncio.sleep(0)  # let _start_run finish its transition first
            while True:
                # Files added while the job runs are picked up by the next round.
                pending = [f.index for f in self._files.get(job_id, []) if not f.completed]
                if not pending:
                    self._transition(
                        job_id,
                        Event.ALL_TRANSFERRED,
                        transfer_completion_time=self.clock.wall(),
                        no_progress_since=None,
                    )
                    return
                if self._jobs[job_id].on_demand:
                    if not await self._on_demand.run(job_id):
                        self._transition(job_id, Event.RANGES_DONE, no_progress_since=None)
                        return
                    continue
                await self._transfer_window(job_id, pending)
        except _FileFailed as failed:
            self._fail(job_id, failed.error, failed.index)
        except TransferError as err:  # an on-demand run: its file_index names the file
            run = self._runs.get(job_id)
            self._fail(job_id, err, run.file_index if run else None)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("job %s: unexpected failure", job_id)
            run = self._runs.get(job_id)
            self._fail(job_id, _internal_error(exc), run.file_index if run else None)
        finally:
            self._run_ended(job_id)

    def _run_ended(self, job_id: str) -> None:
        """A job's run task ends: the scheduler plans again and looks at the job (a deadline
        it skipped while the job ran, such as the inactivity timeout, counts again)."""
        self._runs.pop(job_id, None)
        self._replan = True
        if job_id in self._jobs:
            self._agenda.touch(job_id)
        self._kick.set()

    async def _transfer_window(self, job_id: str, pending: list[int]) -> None:
        """Transfer the files ``pending`` (indexes, in order), up to the job's file concurrency
        at once.

        Rules:
        - Files start in index order. At most ``file_concurrency`` are being fetched: a file
          whose body is in frees its place while it is flushed, so the flushes of a stream of
          small files share thread hops. At most ``_FINISHING_PER_PLACE`` times that many are
          started and not ended. A job with a maximum download size runs one file at a time,
          each reported before the next starts.
        - A file is reported transferred (stored completed, then FileTransferred) only after
          every file before it. Reportable files wait up to ``_PUBLISH_DELAY`` for others
          while files are in flight (on the per-file path or in the bulk), and are stored
          together in one transaction; they are reported at once when nothing else is in
          flight or a file failed.
        - A failure stops starting files; files after the first failing one in order are
          cancelled (checkpointed), the ones before it run to their end; then the first
          failure in order is raised.
        - Files that finished early keep their bytes (stored as all bytes held, not
          completed): the next run confirms them with one request (416) instead of fetching
          them again.
        - A bulk (``_bulk_plan``) takes files in their turn, up to ``_BULK_AHEAD`` ahead of
          its results. A file it hands back with its connection starts at once (the bulk
          counts the connection); one it hands back from its start (its helper died) waits
          for a place, before the files not started yet. The bulk uses up to the file
          concurrency's connections, so files on the per-file path and in the bulk take
          turns: a file for the bulk waits while files run on the per-file path (other than
          those the bulk handed back), and one for the per-file path while the bulk has
          files under way.

        Raises:
            _FileFailed: the first failure in index order.
        """
        job = self._jobs[job_id]
        if job.maximum_download_size is not None:
            # One file at a time, reported before the next starts: each file's budget is what
            # the files before it left (_file_budget).
            width = most = 1
        else:
            width = self.config.file_concurrency
            most = width * _FINISHING_PER_PLACE
        run = self._runs[job_id]
        tasks: dict[int, asyncio.Task[FileRecord]] = {}  # by position in pending
        fetching: set[int] = set()  # positions whose body is not in yet
        finished: dict[int, FileRecord] = {}  # completed records waiting for their turn
        failed: dict[int, _FileFailed] = {}
        started = reported = 0
        # Positions whose task ended, in the order they ended: each task's done callback adds
        # its own and wakes the window, so a wake costs what ended, not the whole window. A
        # file whose body is in wakes it too (its place is free), and so does the publish
        # timer (``nudged``: a wake with nothing landed).
        landed: list[int] = []
        nudged = False
        waiter: asyncio.Future[None] | None = None
        loop = asyncio.get_running_loop()
        publish_at: float | None = None  # loop time by which the reportable files are reported
        timer: asyncio.TimerHandle | None = None

        def wake() -> None:
            if waiter is not None and not waiter.done():
                waiter.set_result(None)

        def fetched(position: int) -> None:
            nonlocal nudged
            if position in fetching:
                fetching.discard(position)
                nudged = True
                wake()

        def land(position: int, _task: asyncio.Task[FileRecord]) -> None:
            fetching.discard(position)
            landed.append(position)
            wake()

        def due() -> None:
            nonlocal nudged, timer
            timer = None
            nudged = True
            wake()

        answers: list[Answered] = []  # the bulk's handed-back connections: closed at the end
        lent: set[int] = set()  # positions handed back with a connection the bulk counts

        def start_task(position: int, answered: Answered | None = None) -> None:
            task = asyncio.create_task(
                self._transfer_one(
                    job_id, pending[position], functools.partial(fetched, position), answered
                )
            )
            task.add_done_callback(functools.partial(land, position))
            tasks[position] = task
            fetching.add(position)

        # A bulk of the job's small files in the splice helper (bulkfetch.py), if the run may
        # have one; its files answer through ``bulk_result``.
        bulk = self._bulk_plan(job_id, pending)
        # Files the bulk handed back (with the answer begun, or not): the per-file path's now.
        handed: list[tuple[int, Answered | None]] = []
        # Those handed back from their start (the helper died), in order: each waits for a
        # place as a file not started yet does, before those (it comes first in order).
        anew: list[int] = []
        cancelled_after: int | None = None  # the bulk's files after this were stopped

        def room(handing: list[int]) -> bool:
            """Whether a file may start on the per-file path: within the file concurrency,
            and, in a run with a bulk, only while the bulk has nothing under way (the bulk
            uses up to the file concurrency's connections on its own)."""
            if len(tasks) >= most or len(fetching) >= width:
                return False
            return bulk is None or not (bulk.under_way or handing or lent)

        def bulk_result(position: int, outcome: Outcome) -> None:
            nonlocal nudged
            if outcome is None or isinstance(outcome, Answered):
                handed.append((position, outcome))
                if outcome is not None:
                    answers.append(outcome)
            elif job_id in self._files:
                self._bulk_landed(job_id, pending[position], outcome)
                if isinstance(outcome, Fetched):
                    record = self._files[job_id][pending[position]]
                    finished[position] = evolve(
                        record,
                        bytes_total=outcome.bytes_total,
                        validator=outcome.validator,
                        bytes_transferred=outcome.size,
                        completed=True,
                    )
                else:
                    failed[position] = _FileFailed(outcome.error, pending[position])
            nudged = True
            wake()

        try:
            while reported < len(pending):
                for position, answered in handed:
                    if answered is None:
                        anew.append(position)
                    else:  # its connection is one of the bulk's already
                        start_task(position, answered)
                        lent.add(position)
                handed.clear()
                if failed:
                    anew = [position for position in anew if position < min(failed)]
                anew.sort()
                handing: list[int] = []
                if anew and room(handing) and bulk is not None:
                    await bulk.drop_idle()  # the per-file path's turn
                while anew and room(handing):
                    start_task(anew.pop(0))
                while started < len(pending) and not failed and not anew:
                    position = started
                    if bulk is not None and bulk.takes(position):
                        if bulk.under_way + len(handing) >= _BULK_AHEAD or fetching - lent:
                            break  # the window is full, or files run on the per-file path
                        handing.append(position)
                    elif room(handing):
                        if bulk is not None and not fetching - lent:
                            await bulk.drop_idle()  # the per-file path's turn
                        start_task(position)
                    else:
                        break
                    started += 1
                if handing:
                    assert bulk is not None
                    for position in await bulk.hand_over(handing, bulk_result):
                        start_task(position)  # no bulk after all: the per-file path
                run.file_index = pending[reported]
                if not landed and not nudged:
                    waiter = loop.create_future()
                    try:
                        await waiter
                    finally:
                        waiter = None
                nudged = False
                ended = landed[:]
                landed.clear()
                returned = sum(1 for position in ended if position in lent)
                if returned:
                    assert bulk is not None
                    lent.difference_update(ended)
                    await bulk.release(returned)
                for position in ended:
                    ended_task = tasks.pop(position, None)
                    if ended_task is None or ended_task.cancelled():
                        continue  # cancelled here after a failure before it
                    error = ended_task.exception()
                    if error is None:
                        finished[position] = ended_task.result()
                    elif isinstance(error, _FileFailed):
                        failed[position] = error
                    else:  # pragma: no cover - _transfer_one wraps everything
                        raise error
                if failed:
                    first = min(failed)
                    for position in [p for p in tasks if p > first]:
                        tasks.pop(position).cancel()
                    if bulk is not None and cancelled_after != first:
                        cancelled_after = first
                        await bulk.cancel_after(first)
                ready = reported
                while ready in finished:
                    ready += 1
                if ready > reported:
                    now = loop.time()
                    if publish_at is None:
                        publish_at = now + _PUBLISH_DELAY
                    # Files in flight: tasks on the per-file path and the bulk's files.
                    in_flight = tasks or (bulk is not None and bulk.under_way)
                    if failed or not in_flight or now >= publish_at:
                        batch = [finished.pop(p) for p in range(reported, ready)]
                        reported = ready
                        publish_at = None
                        if timer is not None:
                            timer.cancel()
                            timer = None
                        self._publish(job_id, batch)
                    elif timer is None:
                        timer = loop.call_at(publish_at, due)
                if reported in failed:
                    raise failed[reported]
        finally:
            if timer is not None:
                timer.cancel()
            for task in tasks.values():
                task.cancel()
            if bulk is not None:
                await bulk.close()
            if tasks:
                await asyncio.wait(tasks.values())
            for answered in answers:
                answered.close()  # one no task took (it was cancelled first)
            # The sinks left are the files that finished and were not reported (_publish
            # takes reported ones, _transfer_file failed ones): their records show all bytes
            # held, not completed; so do the bulk's.
            sinks = self._sinks.pop(job_id, {})
            files = self._files.get(job_id)
            if files is not None:
                for index, sink in sinks.items():
                    files[index] = sink.record
                for record in finished.values():
                    if record.index not in sinks:
                        files[record.index] = evolve(record, completed=False)
                if finished:
                    # Finished early, flushed, not yet their turn: keep their bytes across a
                    # restart.
                    self._store.put_files([files[r.index] for r in finished.values()])

    def _bulk_plan(self, job_id: str, pending: list[int]) -> BulkRun | None:
        """A bulk for a run of ``pending`` files of a job, if the run may have one: a job
        fetched from its files' start with nothing special (no maximum download size, dynamic
        content, custom method or bandwidth limit), with at least ``_BULK_MIN_FILES`` files,
        on the engine's own HTTP client with zero copy and the splice helper; which files go
        in it is ``BulkRun.takes``'s."""
        job = self._jobs[job_id]
        config = self.config
        if (
            len(pending) < _BULK_MIN_FILES
            or not (config.zero_copy and config.splice_helper and self._own_session)
            or job.maximum_download_size is not None
            or job.dynamic_content
            or job.http_method is not None
            or self._bandwidth.piece(job_id) is not None
        ):
            return None
        run = self._runs[job_id]
        return BulkRun(
            self._raw,
            self._splice_helper,
            self.clock,
            lambda index: self._files[job_id][index],
            pending,
            run.options(job),
            run.proxy_environment,
            width=config.file_concurrency,
            most=config.checkpoint_bytes,
        )

    def _bulk_landed(self, job_id: str, index: int, outcome: Fetched | Failed) -> None:
        """Take what a bulk says of file ``index``: its bytes count as the job's progress, and
        bytes the helper made durable before a failure are stored as the file's checkpoint."""
        held = outcome if isinstance(outcome, Fetched) else outcome.held
        if held is not None:
            self._bandwidth.count(held.size)
            self._connected(job_id)
            self._made_progress(job_id)
            if isinstance(outcome, Failed):
                files = self._files.get(job_id)
                if files is not None:
                    self._file_changed(
                        evolve(
                            files[index],
                            bytes_total=held.bytes_total,
                            validator=held.validator,
                            bytes_transferred=held.size,
                        ),
                        durable=True,
                    )

    async def _transfer_one(
        self,
        job_id: str,
        index: int,
        fetched: Callable[[], None],
        answered: Answered | None = None,
    ) -> FileRecord:
        """Transfer one file; its failures come out as _FileFailed naming the file."""
        try:
            return await self._transfer_file(job_id, self._files[job_id][index], fetched, answered)
        except TransferError as err:
            raise _FileFailed(err, index) from err
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("job %s file %d: unexpected failure", job_id, index)
            raise _FileFailed(_internal_error(exc), index) from exc

    def _publish(self, job_id: str, records: list[FileRecord]) -> None:
        """Report files transferred, in order: store them completed (one transaction), then
        tell the callback."""
        files = self._files.get(job_id)
        if files is None:
            return
        # A transfer changes only the progress of a stored file (a redirect's new remote name
        # is stored when it comes: FileSink.redirected).
        self._store.put_progress(records)
        sinks = self._sinks.get(job_id, {})
        for record in records:
            files[record.index] = record
            sinks.pop(record.index, None)
        if self._notifier.has_callback(job_id):
            for record in records:
                self._notifier.file_transferred(job_id, self._file_info(record))

    def _fail(self, job_id: str, err: TransferError, file_index: int | None) -> None:
        job = self._jobs.get(job_id)
        if job is None or job.state not in (*_RUNNING, JobState.QUEUED):
            return
        error = ErrorRecord(err.hresult, err.context, err.message, file_index, err.protocol)
        now = self.clock.monotonic()
        count = job.error_count + 1
        # BITS: with a custom HTTP method, errors that are normally transient are fatal.
        if err.transient and job.http_method is None:
            since = job.no_progress_since if job.no_progress_since is not None else now
            decision = RetryPolicy(
                job.minimum_retry_delay, job.no_progress_timeout
            ).after_transient(now=now, no_progress_since=since, retry_after=err.retry_after)
            if not decision.fatal and job.state in _RUNNING:
                assert decision.retry_at is not None
                assert decision.deadline is not None
                self._transition(
                    job_id,
                    Event.TRANSIENT_FAILURE,
                    error=error,
                    error_count=count,
                    no_progress_since=since,
                    retry_at=min(decision.retry_at, decision.deadline),
                )
                return
        self._transition(job_id, Event.FATAL_FAILURE, error=error, error_count=count, retry_at=None)

    async def _transfer_file(
        self,
        job_id: str,
        record: FileRecord,
        fetched: Callable[[], None],
        answered: Answered | None = None,
    ) -> FileRecord:
        """Fetch one file into its temporary file; call ``fetched`` once its bytes are all
        written. Returns its record marked completed, not yet stored (``_publish`` does that
        in order). ``answered``: the file's GET was sent by a bulk, which handed back the
        answer begun (``bulkfetch.py``)."""
        job = self._jobs[job_id]
        run = self._runs[job_id]
        sink = FileSink(
            self,
            record,
            budget=self._file_budget(job_id, record.index),
            throttle=self._bandwidth.pacer(job_id),
            flusher=self._flusher,
        )
        # The sink's live record stands in for the file's (_files_of) until the file is
        # reported (_publish, or _transfer_window for one finished early), or here if it fails.
        sinks = self._sinks.setdefault(job_id, {})
        sinks[record.index] = sink
        finished = False
        try:
            request = FileRequest(
                record.remote_name,
                sink.offset,
                record.bytes_total,
                record.validator,
                dynamic=job.dynamic_content,
                ranges=record.ranges,
                options=run.options(job),
            )
            if answered is not None:
                await self._raw.fetch(request, sink, answered)
            else:
                await self._transport_for(request, run).fetch(request, sink)
            fetched()
            done = await sink.finish()
            finished = True
            return done
        finally:
            sink.close()
            if not finished:
                sinks.pop(record.index, None)
                files = self._files.get(job_id)
                if files is not None:
                    # As stored (close checkpointed what it could): not bytes a restart
                    # would fetch again.
                    files[record.index] = sink.stored

    def _file_budget(self, job_id: str, index: int) -> int | None:
        """Bytes file ``index`` may have: what the job's maximum download size leaves after its
        other files (their sizes, or the bytes they hold while the size is unknown)."""
        limit = self._jobs[job_id].maximum_download_size
        if limit is None:
            return None
        others = sum(
            (f.bytes_total if f.bytes_total is not None else f.bytes_transferred)
            for f in self._files[job_id]
            if f.index != index
        )
        return limit - others

    def _transport_for(self, request: FileRequest, run: _Run) -> Transport:
        """The transport of a file: local copies, bitsd's own HTTP client where it behaves
        exactly like aiohttp (``RawHttpTransport.applies``, with the proxy environment of
        the run's start), aiohttp for the rest."""
        if remote_kind(request.url) is not RemoteKind.HTTP:
            return self._local
        if (
            self.config.zero_copy
            and self._own_session
            and self._raw.applies(request, run.proxy_environment)
        ):
            return self._raw
        return self._http

    # Called by the sink -------------------------------------------------------------------

    def _file_changed(self, record: FileRecord, *, durable: bool) -> None:
        """A file's live record changed; ``durable`` records are stored at once, before the
        engine shows them (a write the store refuses leaves the record shown as stored)."""
        files = self._files.get(record.job_id)
        if files is None:
            return
        if durable:
            self._store.put_files([record])
        files[record.index] = record

    def _file_renamed_remotely(self, job_id: str) -> None:
        """A redirect policy rewrote a file's remote name: tell listeners and the owner."""
        self._emit(job_id, "files")
        self._notifier.modification(job_id)

    def _connected(self, job_id: str) -> None:
        job = self._jobs.get(job_id)
        if job is not None and job.state is JobState.CONNECTING:
            self._transition(job_id, Event.CONNECTED)

    def _made_progress(self, job_id: str) -> None:
        job = self._jobs.get(job_id)
        if job is None:
            return
        now = self.clock.monotonic()
        if job.no_progress_since is not None:
            self._keep(evolve(job, no_progress_since=None, last_activity_at=now))
            self._store.put_job(self._to_disk(self._jobs[job_id]))
        last = self._last_progress_note.get(job_id, 0.0)
        if now - last >= _PROGRESS_NOTIFY_INTERVAL:
            self._last_progress_note[job_id] = now
            self._keep(
                evolve(
                    self._jobs[job_id], last_activity_at=now, modification_time=self.clock.wall()
                )
            )
            self._notifier.modification(job_id)
            self._emit(job_id, "progress")

    # -- time on disk ----------------------------------------------------------------------

    def _to_wall(self, t: float | None) -> float | None:
        return None if t is None else t + self._wall_offset

    def _from_wall(self, t: float) -> float:
        return t - self._wall_offset

    def _to_disk(self, job: JobRecord) -> JobRecord:
        return evolve(
            job,
            retry_at=self._to_wall(job.retry_at),
            no_progress_since=self._to_wall(job.no_progress_since),
            last_activity_at=job.last_activity_at + self._wall_offset,
        )

    def _from_disk(self, job: JobRecord) -> JobRecord:
        def back(t: float | None) -> float | None:
            return None if t is None else self._from_wall(t)

        return evolve(
            job,
            retry_at=back(job.retry_at),
            no_progress_since=back(job.no_progress_since),
            last_activity_at=self._from_wall(job.last_activity_at),
        )


class _FileFailed(Exception):  # noqa: N818 - carries a TransferError, is not one
    """A file's transfer failed: the classified error and the file's index."""

    def __init__(self, error: TransferError, index: int) -> None:
        super().__init__(error.message)
        self.error = error
        self.index = index


def _internal_error(exc: Exception) -> TransferError:
    """The error recorded for an unexpected exception in the engine (a bug)."""
    return TransferError(
        codes.E_FAIL,
        ErrorContext.GENERAL_QUEUE_MANAGER,
        transient=False,
        message=f"internal error: {exc!r}",
    )


def _http_options(job: JobRecord) -> HttpOptions:
    """What the HTTP transport needs of a job's options."""
    return HttpOptions(
        headers=tuple(parse_custom_headers(job.custom_headers)) if job.custom_headers else (),
        method=job.http_method or "GET",
        security_flags=job.security_flags,
        ca_bundle=job.ca_bundle,
        client_certificate=job.client_certificate,
        client_key=job.client_key,
        proxy_usage=job.proxy_usage,
        proxy_list=job.proxy_list,
        proxy_bypass=job.proxy_bypass,
        credentials=job.credentials,
    )


# The properties only the first Resume may change, as their errors name them.
_BEFORE_RESUME = {
    "dynamic_content": "the dynamic-content property",
    "on_demand": "on-demand mode",
    "maximum_download_size": "the maximum download size",
    "http_method": "the HTTP method",
}


def _checked(name: str, value: Any) -> Any:
    """A property's new value checked alone (``bitsd._args``, ``bitsd._httpopts``), in the form
    the job keeps; what the job says of it is :meth:`Engine._validated`'s. A property without
    a check of its own here was checked by its verb (credentials, proxy settings, the notify
    command line)."""
    if name == "priority":
        return check_priority(value)
    if name == "display_name":
        _check_length("display name", value, MAX_DISPLAY_NAME_LENGTH)
    elif name == "description":
        _check_length("description", value, MAX_DESCRIPTION_LENGTH)
    elif name == "minimum_retry_delay":
        return max(check_seconds(name, value), MINIMUM_RETRY_DELAY_FLOOR)
    elif name in ("no_progress_timeout", "maximum_download_time"):
        return check_seconds(name, value)
    elif name == "notify_flags":
        return check_notify_flags(value)
    elif name in ("dynamic_content", "on_demand"):
        return check_bool(name.replace("_", " "), value)
    elif name == "maximum_download_size":
        return check_maximum_download_size(value)
    elif name == "custom_headers":
        return check_custom_headers(value)
    elif name == "http_method":
        return check_http_method(value)
    elif name == "security_flags":
        return int(check_security_flags(value))
    elif name in ("ca_bundle", "client_certificate", "client_key"):
        if value is not None:
            _readable_file(name.replace("_", " "), value)
    elif name == "transfer_policy":
        return check_transfer_policy(value)
    elif name == "bandwidth_limit":
        return check_bandwidth_limit(value)
    return value


def _before_resume(job: JobRecord, what: str) -> None:
    if job.ever_resumed:
        raise ReadOnlyPropertyError(f"{what} can be set only before the first Resume")


def _readable_file(what: str, path: object) -> None:
    if not isinstance(path, str) or not os.path.isabs(path):
        raise InvalidArgumentError(f"the {what} must be an absolute path")
    check_text(what, path)
    if not os.path.isfile(path) or not os.access(path, os.R_OK):
        raise BitsError(
            f"cannot read the {what} {path}", hresult=codes.hresult_from_errno(errno.ENOENT)
        )


def _check_length(what: str, value: object, limit: int) -> None:
    value = check_text(what, value)
    if len(value) > limit:
        raise InvalidArgumentError(
            f"the {what} has {len(value)} characters; at most {limit}",
            hresult=codes.BG_E_STRING_TOO_LONG,
        )


def _normalise_id(job_id: str) -> str:
    try:
        return str(uuid.UUID(str(job_id).strip("{}")))
    except ValueError:
        raise NotFoundError(f"no job with id {job_id}") from None
