"""The asyncio client of the bitsd daemon: the same verbs as the in-process engine, over the
control API (docs/control-api.md).

Rules:
- A :class:`Manager` owns one aiohttp session on the daemon's Unix socket; the synchronous
  client adds a blocking channel (:mod:`bitsd._blocking`) for calls it drives from threads
  with no event loop. Every call is one request; a non-2xx answer raises
  :func:`bitsd._wire.error_from_json` of its body, so callers catch the same exception
  classes, with the same HRESULTs, as with ``bitsd.aio.Engine``.
- A failure to reach the daemon (no socket, connection refused or cut, no answer in time) is
  mapped once, in :meth:`Manager._request`, to ``BitsError`` with :data:`DAEMON_UNAVAILABLE`
  (``HRESULT_FROM_WIN32(RPC_S_SERVER_UNAVAILABLE)``, 0x800706BA: what a Windows BITS client
  gets when the service is gone). Nothing else decides that the daemon is unreachable.
- A :class:`RemoteJob` holds only its manager and the job's id, like ``bitsd.aio.Job``, and has
  exactly its methods; every getter asks the daemon (one request each), so two processes
  always see the same job. ``snapshot()`` reads every property in one request.
- The daemon forgets a job once it is final (404), while the engine's handles still answer
  getters on it and refuse changes with BG_E_INVALID_STATE. A manager keeps what the jobs *it*
  completed or cancelled ended as, and its handles answer the same way; a job another process
  ended is simply not found, as for a second engine. Like the engine, it keeps the most recent
  ended jobs only (``FINAL_JOBS_KEPT`` jobs, ``FINAL_FILES_KEPT`` files); a handle of an older
  one is not found either. Their files are kept as the rows the daemon answered (``files=rows``)
  and become File objects only when a getter needs them: ending a job costs nothing per file
  beyond decoding the answer.
- Every argument the client converts to send it (job types, priorities, flags, wait's states
  and timeout, seconds, byte counts, BOOL values, file pairs, ranges, file indexes, proxy
  usage, credentials) is checked first with the engine's own checks (``bitsd._args``,
  ``bitsd._ranges.range_pairs``, ``bitsd._httpopts``), so a bad one raises the engine's
  BitsError, with its code, and no request is sent. Arguments sent as they are (names, text,
  paths, headers) are the daemon's to check; one JSON cannot carry (bytes, an object) is
  E_INVALIDARG without a request, as the engine answers a value of the wrong type. An integer
  too long for JSON (over 4,300 digits) where a range, a download position or a file index
  goes is sent as the nearest value the engine refuses alike.
- A request on a kept-alive connection the daemon had closed is sent again once when that is
  safe (see :meth:`Manager._request`).
- Callbacks: the first ``set_notify_interface(obj)`` opens the manager's one event stream
  (WebSocket ``/v1/events``) and registers the job on it. The daemon's ``notify`` messages are
  dispatched each in its own task, so several may be in flight; coroutine functions run on the
  client's loop, plain functions in a worker thread. Every call is answered with a ``result``
  on the connection it came from. When the stream drops, it reconnects with a clamped
  exponential backoff and registers every object again; delivering what was missed meanwhile
  is the daemon's part (at least once).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import dataclasses
import errno
import http.client
import inspect
import json
import logging
import os
import random
import time
import urllib.parse
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Final

import aiohttp

from bitsd import _autostart, _wire, codes
from bitsd._args import (
    check_bandwidth_limit,
    check_bool,
    check_download_position,
    check_file_ref,
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
from bitsd._blocking import BlockingChannel, loop_running
from bitsd._enums import (
    AuthScheme,
    AuthTarget,
    CostStates,
    JobState,
    JobType,
    NotifyFlags,
    Priority,
    ProxyUsage,
    SecurityFlags,
)
from bitsd._errors import (
    BitsError,
    ErrorInfoUnavailableError,
    InvalidArgumentError,
    InvalidStateError,
    NotFoundError,
    NotSupportedError,
    shown,
)
from bitsd._httpopts import check_credentials, check_proxy_settings, check_security_flags
from bitsd._policy import FINAL_FILES_KEPT, FINAL_JOBS_KEPT, MAX_BYTE_COUNT
from bitsd._ranges import range_pairs
from bitsd._records import ErrorInfo, FileInfo, JobProgress, JobSnapshot, JobTimes, ReplyProgress
from bitsd._upload import MAX_REPLY_DATA

__all__ = [
    "DAEMON_UNAVAILABLE",
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_PAGE_SIZE",
    "Manager",
    "RemoteJob",
    "connect",
]

log = logging.getLogger("bitsd.client")

# HRESULT_FROM_WIN32(RPC_S_SERVER_UNAVAILABLE = 1722): "The RPC server is unavailable." A
# Windows client of BITS sees it when the service is not there; no BG_E_* code means that.
DAEMON_UNAVAILABLE: Final = codes.HRESULT_FROM_WIN32(1722)

# Seconds to find (and, with autostart, start) the daemon: bitsd's choice.
DEFAULT_CONNECT_TIMEOUT: Final = 10.0
# Jobs asked for per request of jobs(): bitsd's choice (the API allows 1-10,000).
DEFAULT_PAGE_SIZE: Final = 1000
# Seconds one request may take before the daemon counts as unreachable: bitsd's choice, long
# enough for Complete to rename big files on a slow disk.
REQUEST_TIMEOUT: Final = 120.0
# Longest wait the daemon grants per request (docs/control-api.md: capped at 60 s).
WAIT_SLICE: Final = 60.0
# Adding files asks for their count, not the files listed back (the client does not use them).
_BRIEF: Final = {"view": "brief"}
# Cancel and Complete ask for the ended job's files as rows (FileRows): a third of the objects'
# time to parse, on the path of every Complete; they become objects only if a getter asks.
_ROWS: Final = {"files": "rows"}
# Seconds between connection attempts while the daemon starts (doubling, clamped). A refused
# attempt on a Unix socket costs microseconds; a wider clamp (0.2 s) made a caller wait up to
# 0.2 s more than the daemon's start (scenario 6 of bench/suite.py measured 0.52, 0.73 and
# 0.93 s from restart to bytes: the times of the attempts).
_CONNECT_BACKOFF: Final = (0.01, 0.05)
# Seconds between attempts to reopen a dropped event stream (doubling, clamped, with jitter).
_EVENTS_BACKOFF: Final = (0.05, 2.0)

_BASE: Final = "http://bitsd"
_NOTIFY_METHODS: Final = (
    "job_error",
    "job_transferred",
    "job_modification",
    "file_transferred",
    "file_ranges_transferred",
)
_SPAWN_ERRNOS: Final = frozenset({errno.ENOENT, errno.ECONNREFUSED})  # nobody listens there


def _unreachable(what: str, cause: object = None) -> BitsError:
    detail = f": {cause}" if cause is not None and str(cause) else ""
    return BitsError(
        f"the bitsd daemon is unreachable ({what}){detail}", hresult=DAEMON_UNAVAILABLE
    )


def _normalise_id(job_id: str) -> str:
    """The canonical form of a job id, as the engine writes it (NotFoundError if malformed)."""
    try:
        return str(uuid.UUID(str(job_id).strip("{}")))
    except ValueError:
        raise NotFoundError(f"no job with id {job_id}") from None


def result_hresult(value: object) -> int:
    """What a callback's return value answers the daemon: 0 accepts (None, a bool, any value
    that is not an int, a success code); a failure HRESULT is sent unsigned."""
    if value is None or isinstance(value, bool) or not isinstance(value, int):
        return codes.S_OK
    if codes.is_success(value):
        return codes.S_OK
    unsigned = codes.to_unsigned(value)
    return unsigned if 0 <= unsigned <= 0xFFFFFFFF else codes.E_FAIL


async def connect(
    *,
    socket_path: str | os.PathLike[str] | None = None,
    autostart: bool = True,
    timeout: float = DEFAULT_CONNECT_TIMEOUT,
) -> Manager:
    """Connect to the user's bitsd daemon, starting it first if needed.

    Args:
        socket_path: the daemon's control socket; default per docs/control-api.md
            (``BITSD_SOCKET``, else ``$XDG_RUNTIME_DIR/bitsd/bitsd.sock``, else in the state
            folder).
        autostart: when nobody listens on the socket, run ``python -m bitsd.daemon`` in the
            background (stderr appended to ``<state dir>/daemon.log``) and connect to it.
        timeout: seconds to wait for the daemon to answer ``GET /v1/version``.

    Returns:
        A :class:`Manager`; close it with ``await manager.close()`` or ``async with``.

    Raises:
        BitsError: DAEMON_UNAVAILABLE (0x800706BA) when no daemon answered in time;
            BG_E_CLIENT_SERVER_PROTOCOL_MISMATCH when it speaks another API version.
    """
    path = os.fspath(socket_path) if socket_path is not None else str(_autostart.socket_path())
    session = aiohttp.ClientSession(
        connector=aiohttp.UnixConnector(path=path, limit=0),
        timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT),
    )
    try:
        version = await _reach(session, path, autostart=autostart, timeout=timeout)
    except BaseException:
        await session.close()
        raise
    return Manager(session, path, version, timeout=timeout)


async def _reach(
    session: aiohttp.ClientSession, path: str, *, autostart: bool, timeout: float
) -> Mapping[str, Any]:
    """Ask ``GET /v1/version`` until it answers 200, spawning the daemon once if nobody
    listens. Returns the version document."""
    deadline = time.monotonic() + timeout
    delay = _CONNECT_BACKOFF[0]
    spawned = None
    last: BaseException | None = None
    while True:
        remaining = deadline - time.monotonic()
        try:
            async with session.get(
                f"{_BASE}/v1/version", timeout=aiohttp.ClientTimeout(total=max(remaining, 0.05))
            ) as resp:
                body = await _json_body(resp)
                if resp.status != 200:
                    raise _wire.error_from_json(body)
                if not isinstance(body, Mapping) or body.get("api") != _wire.API_VERSION:
                    api = body.get("api") if isinstance(body, Mapping) else None
                    raise BitsError(
                        f"the daemon at {path} speaks control API {api!r}; this client speaks "
                        f"{_wire.API_VERSION}",
                        hresult=codes.BG_E_CLIENT_SERVER_PROTOCOL_MISMATCH,
                    )
                return body
        except aiohttp.ClientConnectorError as exc:
            last = exc
            if autostart and spawned is None and exc.os_error.errno in _SPAWN_ERRNOS:
                log.info("no bitsd daemon at %s; starting one", path)
                try:
                    spawned = _autostart.spawn_daemon(path)
                except OSError as spawn_error:
                    raise _unreachable(f"cannot start it: {spawn_error}") from spawn_error
        except (aiohttp.ClientConnectionError, TimeoutError) as exc:
            last = exc  # e.g. a daemon that is starting, or one that closed on us
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            what = f"no answer on {path} within {timeout:g} s"
            if spawned is not None:
                status = spawned.poll()
                if status is not None and status != _autostart.EXIT_LOCKED:
                    what += f"; the daemon it started exited with status {status}"
                what += f"; see {_autostart.log_path()}"
            raise _unreachable(what, last) from last
        await asyncio.sleep(min(delay, remaining))
        delay = min(delay * 2, _CONNECT_BACKOFF[1])


async def _json_body(resp: aiohttp.ClientResponse) -> Any:
    """The answer's JSON, or None when it has no body or an unreadable one."""
    try:
        return await resp.json(content_type=None)
    except ValueError:
        return None


class Manager:
    """A connection to the bitsd daemon: the daemon-side twin of ``bitsd.aio.Engine``.

    Get one from :func:`connect`; do not construct it. Use it as an async context manager or
    call :meth:`close`. ``create_job``, ``get_job`` and ``jobs`` behave as the engine's, and
    return :class:`RemoteJob` handles with the same methods as ``bitsd.aio.Job``.

    Attributes:
        socket_path: the control socket this manager talks to.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        socket_path: str,
        version: Mapping[str, Any],
        *,
        timeout: float = DEFAULT_CONNECT_TIMEOUT,
    ) -> None:
        self.socket_path = socket_path
        self._session = session
        self._version = dict(version)
        self._timeout = timeout
        self._page_size = DEFAULT_PAGE_SIZE
        self._events = _EventStream(self)
        # Jobs this manager completed or cancelled: what they ended as (see RemoteJob).
        self._ended = _EndedJobs()
        self._open = True
        self._blocking: BlockingChannel | None = None  # see _blocking_here

    def _use_blocking_channel(self) -> None:
        """Send calls made from threads with no event loop over a blocking channel
        (bitsd._blocking): the synchronous client drives its calls there."""
        self._blocking = BlockingChannel(self.socket_path)

    def __repr__(self) -> str:
        return f"<bitsd.aio.Manager {self.socket_path}>"

    async def __aenter__(self) -> Manager:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the event stream (the daemon drops this process's callbacks) and the
        connection. Jobs go on in the daemon. A second call does nothing."""
        if not self._open:
            return
        self._open = False
        await self._events.close()
        await self._session.close()
        if self._blocking is not None:
            self._blocking.close()

    # -- the manager's verbs ---------------------------------------------------------------

    async def create_job(
        self,
        display_name: str,
        job_type: JobType = JobType.DOWNLOAD,
        *,
        files: Iterable[tuple[str, str]] | None = None,
        priority: Priority | None = None,
        resume: bool = False,
    ) -> RemoteJob:
        """Create a job (IBackgroundCopyManager::CreateJob): SUSPENDED, with no files.

        The keyword arguments set the job up in the same request, as the calls would in this
        order: ``files`` (remote name, local name) as :meth:`RemoteJob.add_file_set` adds
        them, ``priority`` as :meth:`RemoteJob.set_priority`, and ``resume`` as
        :meth:`RemoteJob.resume` (like Start-BitsTransfer -Asynchronous). All or nothing: if
        the daemon refuses one of them, the job is cancelled and that error is raised.

        Raises:
            InvalidArgumentError: a ``job_type`` that is no JobType value, a ``resume`` that is
                not a bool, a display name over 1,024 characters, or a file name AddFileSet
                refuses.
            NotSupportedError: a ``priority`` that is none (as SetPriority answers it).
            BitsError: what AddFileSet, SetPriority or Resume raise.
        """
        job_type = check_job_type(job_type)
        request: dict[str, object] = {"display_name": display_name, "type": job_type.name}
        if files is not None:
            request["files"] = _file_list(files)
        if priority is not None:
            request["priority"] = check_priority(priority).name
        if check_bool("resume", resume):
            request["resume"] = True
        body = await self._request(
            "POST",
            "/v1/jobs",
            json=request,
            params=_BRIEF,  # only the id is kept: no Job object built and parsed
        )
        return RemoteJob(self, _job_id(body))

    async def get_job(self, job_id: str) -> RemoteJob:
        """The job with this id (GetJob). Raises NotFoundError for unknown or final jobs."""
        key = _normalise_id(job_id)
        body = await self._request("GET", f"/v1/jobs/{key}")
        if _wire.enum_from_json(JobState, body.get("state"), "state").is_final:
            raise NotFoundError(f"no job with id {job_id}")
        return RemoteJob(self, _job_id(body))

    async def jobs(self) -> list[RemoteJob]:
        """Every job that is not final (EnumJobs), oldest first; follows the pages."""
        found: dict[str, tuple[datetime, str]] = {}
        offset, total = 0, None
        while True:
            page = await self._request(
                "GET",
                "/v1/jobs",
                params={"offset": offset, "limit": self._page_size, "view": "brief"},
            )
            items, next_offset = page.get("jobs"), page.get("next_offset")
            if not isinstance(items, list):
                raise BitsError("the daemon answered a malformed job list", hresult=codes.E_FAIL)
            for item in items:
                job_id = _job_id(item)
                created = _wire.time_from_json(item.get("creation_time"), "creation_time")
                found[job_id] = (created, job_id)
            if not isinstance(next_offset, int) or next_offset <= offset:
                # The engine's order: oldest first, then by id.
                return [RemoteJob(self, key[1]) for key in sorted(found.values())]
            # New jobs go to the end; jobs that end between two pages move the later ones
            # forward, so this page may have started past some. When the total shrank, read
            # again from as many places back (a job seen twice is listed once).
            now = page.get("total")
            shrank = total - now if isinstance(now, int) and total is not None else 0
            total = now if isinstance(now, int) else None
            offset = max(offset - shrank, 0) if shrank > 0 else next_offset

    # -- transport -------------------------------------------------------------------------

    def _check_open(self) -> None:
        if not self._open:
            raise InvalidStateError("the manager is closed; connect again")

    async def _request(
        self,
        method: str,
        path: str,
        *,
        json: object = None,
        params: Mapping[str, str | int | float] | None = None,
        timeout: float = REQUEST_TIMEOUT,
    ) -> Any:
        """One call of the control API: its JSON answer, or the error it stands for.

        Raises:
            BitsError: the daemon's error (same class as in-process), or DAEMON_UNAVAILABLE.
            InvalidArgumentError: ``json`` holds a value JSON cannot carry (nothing is sent).
        """
        self._check_open()
        payload = None if json is None else _json_bytes(json)
        # A request on a kept-alive connection that the daemon had closed (it restarted, or
        # it closes idle connections) is sent again once: always when the write itself failed
        # with EPIPE (on a Unix socket the daemon then cannot have read it), and for a GET
        # also when the answer did not come (a GET changes nothing).
        exchange = self._exchange_blocking if self._blocking_here() else self._exchange
        attempts = 2
        for attempt in range(attempts):
            try:
                status, body = await exchange(method, path, payload, params, timeout)
            except (aiohttp.ServerDisconnectedError, http.client.RemoteDisconnected) as exc:
                if method == "GET" and attempt + 1 < attempts:
                    continue
                raise _unreachable(f"{method} {path}: the connection was closed", exc) from exc
            except TimeoutError as exc:
                raise _unreachable(f"{method} {path}: no answer in {timeout:g} s") from exc
            except (aiohttp.ClientOSError, OSError) as exc:
                if exc.errno == errno.EPIPE and attempt + 1 < attempts:
                    continue
                raise _unreachable(f"{method} {path}", exc) from exc
            except (
                aiohttp.ClientConnectionError,
                aiohttp.ClientPayloadError,
                http.client.HTTPException,
            ) as exc:
                raise _unreachable(f"{method} {path}", exc) from exc
            if not 200 <= status < 300:
                raise _wire.error_from_json(body if isinstance(body, Mapping) else {})
            return {} if body is None else body
        raise AssertionError("unreachable")  # pragma: no cover

    def _blocking_here(self) -> bool:
        """Whether this call goes through the blocking channel: the manager has one (the
        synchronous client's) and no event loop runs in this thread."""
        return self._blocking is not None and not loop_running()

    async def _exchange(
        self,
        method: str,
        path: str,
        payload: bytes | None,
        params: Mapping[str, str | int | float] | None,
        timeout: float,
    ) -> tuple[int, Any]:
        async with self._session.request(
            method,
            _BASE + path,
            data=payload,
            headers=None if payload is None else _JSON_HEADERS,
            params=params,
            timeout=aiohttp.ClientTimeout(total=timeout, sock_connect=self._timeout),
        ) as resp:
            return resp.status, await _json_body(resp)

    async def _exchange_blocking(
        self,
        method: str,
        path: str,
        payload: bytes | None,
        params: Mapping[str, str | int | float] | None,
        timeout: float,
    ) -> tuple[int, Any]:
        assert self._blocking is not None
        target = path if not params else f"{path}?{urllib.parse.urlencode(params)}"
        status, data = self._blocking.exchange(method, target, payload, timeout)
        return status, _json_or_none(data)


_JSON_HEADERS: Final = {"Content-Type": "application/json"}
# A file index or download position beyond any file (the engine refuses all of them alike):
# what larger ones are sent as.
_BEYOND_ANY_FILE: Final = MAX_BYTE_COUNT + 1


def _json_bytes(value: object) -> bytes:
    """A request's body as JSON, as aiohttp would write it.

    Raises:
        InvalidArgumentError: a value JSON cannot carry (bytes, a set, an object, an int of over
            4,300 digits, a cycle): E_INVALIDARG, what the engine answers a value of the wrong
            type. The message names the type only (a password may be in the body).
    """
    try:
        return json.dumps(value).encode()
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidArgumentError(f"an argument cannot be sent to the daemon: {exc}") from None


def _json_or_none(data: bytes) -> Any:
    """A body's JSON, or None when it is empty or unreadable."""
    if not data:
        return None
    try:
        return json.loads(data)
    except ValueError:
        return None


def _file_list(files: Iterable[tuple[str, str]]) -> list[dict[str, str]]:
    """AddFileSet's files as the daemon takes them, checked as the engine checks them
    (``bitsd._args.file_pairs``: pairs of strings)."""
    return [{"remote_name": remote, "local_name": local} for remote, local in file_pairs(files)]


def _job_id(body: object) -> str:
    if isinstance(body, Mapping) and isinstance(body.get("id"), str):
        return str(body["id"])
    raise BitsError("the daemon answered a job without an id", hresult=codes.E_FAIL)


class _EndedFiles:
    """The files of a job this manager ended, as Cancel's or Complete's answer carried them:
    FileRows (``file_rows``), kept as decoded and turned into File objects once, the first time
    a getter needs them (then only the objects are kept); or File objects (``files``: a daemon
    that does not know ``files=rows`` ignores it). ``len`` is the number of files, known
    without building any object (0 for rows too malformed to count; a getter then raises)."""

    __slots__ = ("_count", "_objects", "_rows")

    def __init__(self, answer: Mapping[str, Any]) -> None:
        rows = answer.get("file_rows")
        self._rows: object = rows
        self._objects: list[Any] | None = None
        if rows is None:
            files = answer.get("files")
            self._objects = list(files) if isinstance(files, list) else []
            self._count = len(self._objects)
        else:
            counted = rows.get("rows") if isinstance(rows, Mapping) else None
            self._count = len(counted) if isinstance(counted, list) else 0

    def __len__(self) -> int:
        return self._count

    def objects(self) -> list[Any]:
        """The File objects, as ``GET .../files`` lists them.

        Raises:
            BitsError: E_FAIL, the daemon answered malformed rows.
        """
        if self._objects is None:
            try:
                self._objects = _wire.files_from_rows(self._rows)
            except InvalidArgumentError as exc:
                raise BitsError(
                    f"the daemon answered malformed file rows: {exc}", hresult=codes.E_FAIL
                ) from None
            self._rows = None
        return self._objects


@dataclasses.dataclass(frozen=True, slots=True)
class _Ended:
    """A job this manager completed or cancelled, as it ended: its state, its Job object and
    its files (as the daemon last reported them)."""

    state: JobState
    job: Mapping[str, Any]
    files: _EndedFiles
    reply: Mapping[str, Any] | None = None  # GET .../reply of an upload-reply job


class _EndedJobs:
    """The jobs a manager completed or cancelled, as they ended, for the most recent only: at most
    ``FINAL_JOBS_KEPT`` jobs and ``FINAL_FILES_KEPT`` files in all, as the engine keeps. The
    oldest are forgotten first; the job that ended last always stays (its caller reads it right
    after). A forgotten job's handles get the daemon's 404 (NotFoundError), as for a job this
    manager never ended. Each call costs O(1) amortised: a client may end thousands of jobs."""

    __slots__ = ("_files", "_jobs")

    def __init__(self) -> None:
        self._jobs: OrderedDict[str, _Ended] = OrderedDict()  # oldest first
        self._files = 0  # files of the jobs kept

    def get(self, job_id: str) -> _Ended | None:
        return self._jobs.get(job_id)

    def keep(self, job_id: str, ended: _Ended) -> None:
        """Keep ``ended`` as the newest, then forget the oldest beyond the bounds."""
        previous = self._jobs.pop(job_id, None)
        if previous is not None:
            self._files -= len(previous.files)
        self._jobs[job_id] = ended
        self._files += len(ended.files)
        while len(self._jobs) > 1 and (
            len(self._jobs) > FINAL_JOBS_KEPT or self._files > FINAL_FILES_KEPT
        ):
            _, oldest = self._jobs.popitem(last=False)
            self._files -= len(oldest.files)


class RemoteJob:
    """A BITS job of the daemon, with the methods of ``bitsd.aio.Job``. Obtain one from
    :class:`Manager`'s ``create_job``, ``get_job`` or ``jobs``; do not construct it."""

    __slots__ = ("_manager", "id")

    def __init__(self, manager: Manager, job_id: str) -> None:
        self._manager = manager
        self.id: str = job_id

    def __repr__(self) -> str:
        return f"<RemoteJob {self.id}>"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, RemoteJob) and other.id == self.id and other._manager is self._manager
        )

    def __hash__(self) -> int:
        return hash(self.id)

    @property
    def _path(self) -> str:
        return f"/v1/jobs/{self.id}"

    def _ended(self) -> _Ended | None:
        return self._manager._ended.get(self.id)

    def _final_state_error(self, ended: _Ended) -> InvalidStateError:
        return InvalidStateError(f"the job is {ended.state}; it accepts no changes")

    async def _read(self, suffix: str = "", **kwargs: Any) -> Any:
        """GET the job (or a sub-resource); NotFoundError for a job this manager ended is
        left to the caller, which answers from what the job ended as."""
        return await self._manager._request("GET", self._path + suffix, **kwargs)

    async def _change(
        self,
        method: str,
        suffix: str = "",
        json: object = None,
        params: Mapping[str, str] | None = None,
    ) -> Any:
        """A request that changes the job. On a job this manager ended, the daemon no longer
        knows the id (404); the engine answers BG_E_INVALID_STATE there, and so do we."""
        try:
            return await self._manager._request(
                method, self._path + suffix, json=json, params=params
            )
        except NotFoundError:
            ended = self._ended()
            if ended is None:
                raise
            raise self._final_state_error(ended) from None

    async def _get(self) -> Mapping[str, Any]:
        try:
            body: Mapping[str, Any] = await self._read()
        except NotFoundError:
            ended = self._ended()
            if ended is None:
                raise
            return ended.job
        return body

    async def _field(self, name: str) -> Any:
        body = await self._get()
        if name not in body:
            raise BitsError(f"the daemon answered a job without {name!r}", hresult=codes.E_FAIL)
        return body[name]

    async def _patch(self, **changes: object) -> None:
        await self._change("PATCH", json=changes)

    async def _verb(self, verb: str) -> int:
        body = await self._change("POST", f"/{verb}")
        hresult = body.get("hresult", codes.S_OK)
        return int(hresult) if isinstance(hresult, int) else codes.S_OK

    async def _end(self, verb: str) -> int:
        """Cancel or Complete, keeping what the job ends as: the daemon forgets a final job,
        while the engine's handles still answer getters on it (with its final state), and
        verbs with BG_E_INVALID_STATE. This manager does the same for the jobs it ended, from
        the job, files (as rows: see :class:`_EndedFiles`) and reply the daemon's answer carries
        (one request, no event loop)."""
        body = await self._change("POST", f"/{verb}", params=_ROWS)
        state = body.get("state")
        final = JobState.ACKNOWLEDGED if verb == "complete" else JobState.CANCELLED
        if isinstance(state, str) and state in JobState.__members__:
            final = JobState[state]
        job = body.get("job")
        reply = body.get("reply")
        self._manager._ended.keep(
            self.id,
            _Ended(
                final,
                {**(job if isinstance(job, Mapping) else {}), "state": final.name, "error": None},
                _EndedFiles(body),
                reply if isinstance(reply, Mapping) else None,
            ),
        )
        self._manager._events.forget(self.id)
        hresult = body.get("hresult", codes.S_OK)
        return int(hresult) if isinstance(hresult, int) else codes.S_OK

    # -- files -----------------------------------------------------------------------------

    async def add_file(
        self, remote_url: str, local_path: str, *, sha256: str | None = None
    ) -> None:
        """Add one file (IBackgroundCopyJob::AddFile).

        Args:
            remote_url: http://, https:// or file:// URL, or an absolute path.
            local_path: absolute path of the file to create, as the daemon (the same user)
                sees it; its folder must exist.
            sha256: a bitsd extension: the expected SHA-256 (hex) of the file; a mismatch
                fails the job with BG_E_VALIDATION_FAILED in LOCAL_FILE before TRANSFERRED.

        Raises:
            InvalidArgumentError: a malformed or unsupported URL, a relative local path, a name
                already used in the job, a malformed checksum.
            BitsError: the local folder does not exist or is not writable.
            InvalidStateError: the job is final.
        """
        if sha256 is None:
            await self.add_file_set([(remote_url, local_path)])
            return
        entry = {"remote_name": remote_url, "local_name": local_path, "sha256": sha256}
        await self._change("POST", "/files", json={"files": [entry]}, params=_BRIEF)

    async def add_file_with_ranges(
        self, remote_url: str, local_path: str, ranges: Iterable[tuple[int, int]]
    ) -> None:
        """Add a file made of byte ranges of the remote file (AddFileWithRanges): the local
        file is the ranges concatenated in the given order. A length of ``LENGTH_TO_EOF`` runs
        to the end of the remote file.

        Raises:
            InvalidArgumentError: no ranges, a zero length, a non-HTTP URL (E_INVALIDARG).
            BitsError: BG_E_INVALID_RANGE, BG_E_OVERLAPPING_RANGES,
                BG_E_TOO_MANY_RANGES_IN_FILE (more than 500), BG_E_UNSUPPORTED_JOB_CONFIGURATION
                (a dynamic-content job).
        """
        entry = {
            "remote_name": remote_url,
            "local_name": local_path,
            "ranges": _ranges_json(ranges),
        }
        await self._change("POST", "/files", json={"files": [entry]}, params=_BRIEF)

    async def get_file_ranges(self, file: int | FileInfo) -> list[tuple[int, int]]:
        """The ranges of a file added with ranges, or [] (IBackgroundCopyFile2::GetFileRanges).

        Args:
            file: the file's index in the job or its FileInfo.
        """
        check_file_ref(file)
        items = await self._file_list()
        ranges = items[_file_index(items, file)].get("ranges") or []
        return [(int(offset), int(length)) for offset, length in ranges]

    async def replace_remote_prefix(self, old_prefix: str, new_prefix: str) -> int:
        """Replace a leading part of every matching remote name, case-sensitively
        (ReplaceRemotePrefix). Files already transferred are not fetched again; others go on
        where they were unless the new server's copy differs.

        Returns:
            S_OK, or S_FALSE if no remote name started with ``old_prefix``.
        """
        body = await self._change(
            "POST", "/replace-remote-prefix", json={"old": old_prefix, "new": new_prefix}
        )
        return _hresult_of(body)

    async def set_validation_state(self, file: int | FileInfo, valid: bool) -> None:
        """Accept or reject a finished file (IBackgroundCopyFile3::SetValidationState).
        ``False`` puts the job in ERROR with BG_E_VALIDATION_FAILED and its progress back to 0;
        Resume downloads it again.

        Raises:
            InvalidArgumentError: ``valid`` is not a bool, or ``file`` is not a file of the job.
            BitsError: E_PENDING before the file has finished transferring.
        """
        valid = check_bool("valid", valid)
        index = await self._index_of(file)
        await self._change("PUT", f"/files/{index}/validation", json={"valid": valid})

    async def get_validation_state(self, file: int | FileInfo) -> bool:
        """Whether ``set_validation_state(file, True)`` was called."""
        check_file_ref(file)
        items = await self._file_list()
        return bool(items[_file_index(items, file)].get("validated"))

    async def request_file_ranges(
        self, file: int | FileInfo, ranges: Iterable[tuple[int, int]]
    ) -> None:
        """Ask for byte ranges of a file of an on-demand job, fetched first and written at
        their offsets (IBackgroundCopyFile6::RequestFileRanges): the rules, results and errors
        of ``bitsd.aio.Job.request_file_ranges``."""
        pairs = _ranges_json(ranges)
        index = await self._index_of(file)
        await self._change("POST", f"/files/{index}/requested-ranges", json={"ranges": pairs})

    async def get_filled_file_ranges(self, file: int | FileInfo) -> list[tuple[int, int]]:
        """The (offset, length) ranges of a file held in its temporary file, merged and by
        offset (IBackgroundCopyFile6::GetFilledFileRanges), as ``bitsd.aio.Job`` answers."""
        check_file_ref(file)
        items = await self._file_list()
        filled = items[_file_index(items, file)].get("filled_ranges")
        if filled is None:
            raise BitsError(
                "only the files of download jobs without ranges have filled ranges",
                hresult=codes.BG_E_RANDOM_ACCESS_NOT_SUPPORTED,
            )
        return _wire.ranges_from_json(filled, "filled_ranges")

    async def update_download_position(self, file: int | FileInfo, offset: int) -> None:
        """Where filling the gaps of an on-demand file starts
        (IBackgroundCopyFile6::UpdateDownloadPosition), as ``bitsd.aio.Job`` does."""
        # Beyond any file, every offset is refused alike: sent as the first of them (JSON
        # cannot carry an int of over 4,300 digits).
        position = _clamped(check_download_position(offset), _BEYOND_ANY_FILE)
        index = await self._index_of(file)
        await self._change("PUT", f"/files/{index}/download-position", json={"offset": position})

    async def _index_of(self, file: int | FileInfo) -> int:
        """The index of ``file``: as given (whether the job has it is the daemon's to say), or
        looked up in the file list for a FileInfo.

        Raises:
            InvalidArgumentError: neither an index nor a FileInfo (no request is sent).
        """
        check_file_ref(file)
        if is_int(file):
            # Numbers outside any job's files are all refused alike: those too long for a path
            # are sent as the nearest of them.
            return _clamped(file, _BEYOND_ANY_FILE)
        return _file_index(await self._file_list(), file)

    async def add_file_set(self, files: Iterable[tuple[str, str]]) -> None:
        """Add several files at once, all or none (AddFileSet)."""
        await self._change("POST", "/files", json={"files": _file_list(files)}, params=_BRIEF)

    async def files(self) -> list[FileInfo]:
        """The job's files, in transfer order (EnumFiles)."""
        return [_wire.file_info_from_json(item) for item in await self._file_list()]

    async def _file_list(self) -> list[Mapping[str, Any]]:
        """The job's File objects (with ranges and validation state), as the daemon lists them
        or, for a job this manager ended, as it last listed them."""
        try:
            body = await self._read("/files")
        except NotFoundError:
            ended = self._ended()
            if ended is None:
                raise
            body = {"files": ended.files.objects()}
        items = body.get("files")
        if not isinstance(items, list) or not all(isinstance(i, Mapping) for i in items):
            raise BitsError("the daemon answered a malformed file list", hresult=codes.E_FAIL)
        return items

    # -- verbs -----------------------------------------------------------------------------

    async def resume(self) -> None:
        """Queue the job for transfer (Resume). Raises EmptyJobError with no files."""
        await self._verb("resume")

    async def suspend(self) -> None:
        """Stop transferring and keep the progress (Suspend)."""
        await self._verb("suspend")

    async def cancel(self) -> int:
        """Remove the job and delete its temporary files (Cancel).

        Returns:
            S_OK, or BG_S_UNABLE_TO_DELETE_FILES if a temporary file could not be deleted.
        """
        return await self._end("cancel")

    async def complete(self) -> int:
        """Move finished files to their final names and end the job (Complete).

        Returns:
            S_OK, or BG_S_PARTIAL_COMPLETE when some files had not finished (they are deleted).
        """
        return await self._end("complete")

    async def wait(
        self, states: Iterable[JobState] | JobState, timeout: float | None = None
    ) -> JobState:
        """Wait until the job is in one of ``states`` and return that state. Asks the daemon
        to wait at most 60 s at a time, again until ``timeout`` passes.

        Raises:
            TimeoutError: ``timeout`` seconds (real time) passed first.
            InvalidArgumentError: ``states`` is not a JobState or an iterable of JobState
                values, or ``timeout`` is neither None nor a number (NaN is none); a timeout
                too large to be a time (infinity, an int beyond the floats) is no timeout.
        """
        wanted = job_states(states)
        seconds = wait_timeout(timeout)
        deadline = None if seconds is None else time.monotonic() + seconds
        names = ",".join(sorted(s.name for s in wanted))
        while True:
            slice_ = WAIT_SLICE if deadline is None else deadline - time.monotonic()
            state = await self._wait_once(wanted, names, min(max(slice_, 0.0), WAIT_SLICE))
            if state in wanted:
                return state
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"job {self.id} did not reach {names or 'any state'} in time")

    async def _wait_once(self, wanted: frozenset[JobState], names: str, seconds: float) -> JobState:
        """One wait of at most ``seconds``: the state then."""
        if wanted:
            try:
                body = await self._read(
                    "/wait",
                    params={"states": names, "timeout": round(seconds, 3)},
                    timeout=seconds + REQUEST_TIMEOUT,
                )
                return _wire.enum_from_json(JobState, body.get("state"), "state")
            except NotFoundError:
                if self._ended() is None:
                    raise
        # Nothing can match (no states, or a job this manager ended): wait the time out, as
        # the engine does.
        state = await self.get_state()
        if state not in wanted:
            if loop_running():
                await asyncio.sleep(seconds)
            else:  # driven in the caller's thread by the sync client (bitsd._sync)
                time.sleep(seconds)  # noqa: ASYNC251 - no loop runs in this thread
        return state

    # -- state and progress ----------------------------------------------------------------

    async def snapshot(self) -> JobSnapshot:
        """Everything about the job that may be shown, read at one moment (one request):
        state, progress, times, error and every property except credentials."""
        return _wire.snapshot_from_json(await self._get())

    async def get_state(self) -> JobState:
        """The job's state (GetState)."""
        return _wire.enum_from_json(JobState, await self._field("state"), "state")

    async def get_type(self) -> JobType:
        """The job's type (GetType)."""
        return _wire.enum_from_json(JobType, await self._field("type"), "type")

    async def get_progress(self) -> JobProgress:
        """Bytes and files transferred so far (GetProgress)."""
        return _wire.progress_from_json(await self._field("progress"))

    async def get_times(self) -> JobTimes:
        """Creation, modification and transfer-completion times (GetTimes)."""
        return _wire.times_from_json(await self._field("times"))

    async def get_error(self) -> ErrorInfo:
        """The error that put the job in ERROR or TRANSIENT_ERROR (GetError).

        Raises:
            ErrorInfoUnavailableError: the job is in neither state.
        """
        try:
            body = await self._read("/error")
        except NotFoundError:
            ended = self._ended()
            if ended is None:
                raise
            raise ErrorInfoUnavailableError(
                f"the job is {ended.state}; error information exists only in ERROR and "
                "TRANSIENT_ERROR"
            ) from None
        return _wire.error_info_from_json(body)

    async def get_error_count(self) -> int:
        """How many errors the job has had (GetErrorCount)."""
        return int(await self._field("error_count"))

    # -- properties ------------------------------------------------------------------------

    async def set_priority(self, priority: Priority) -> None:
        """Set the priority (SetPriority); the default is NORMAL."""
        await self._patch(priority=check_priority(priority).name)

    async def get_priority(self) -> Priority:
        return _wire.enum_from_json(Priority, await self._field("priority"), "priority")

    async def set_display_name(self, name: str) -> None:
        """Set the display name (SetDisplayName); it need not be unique."""
        await self._patch(display_name=name)

    async def get_display_name(self) -> str:
        return str(await self._field("display_name"))

    async def set_description(self, description: str) -> None:
        """Set the description, at most 1,024 characters (SetDescription)."""
        await self._patch(description=description)

    async def get_description(self) -> str:
        return str(await self._field("description"))

    async def set_minimum_retry_delay(self, seconds: float) -> None:
        """Seconds before a transient error is retried; values under 5 become 5."""
        check_seconds("minimum_retry_delay", seconds)
        await self._patch(minimum_retry_delay=seconds)

    async def get_minimum_retry_delay(self) -> float:
        return float(await self._field("minimum_retry_delay"))

    async def set_no_progress_timeout(self, seconds: float) -> None:
        """Seconds without progress after which a transient error becomes fatal; 0 makes every
        error fatal."""
        check_seconds("no_progress_timeout", seconds)
        await self._patch(no_progress_timeout=seconds)

    async def get_no_progress_timeout(self) -> float:
        return float(await self._field("no_progress_timeout"))

    async def set_maximum_download_time(self, seconds: float) -> None:
        """Seconds the job may spend CONNECTING or TRANSFERRING before it fails with
        BG_E_MAXDOWNLOAD_TIMEOUT; 0 removes the limit (SetMaximumDownloadTime)."""
        check_seconds("maximum_download_time", seconds)
        await self._patch(maximum_download_time=seconds)

    async def get_maximum_download_time(self) -> float:
        return float(await self._field("maximum_download_time"))

    async def set_dynamic_content(self, enabled: bool) -> None:
        """Download without ranges, from zero on every try (BITS_JOB_PROPERTY_DYNAMIC_CONTENT);
        only before the first Resume."""
        await self._patch(dynamic_content=check_bool("dynamic content", enabled))

    async def get_dynamic_content(self) -> bool:
        return bool(await self._field("dynamic_content"))

    async def set_on_demand(self, enabled: bool) -> None:
        """On-demand mode (BITS_JOB_PROPERTY_ON_DEMAND_MODE): files are fetched by the ranges
        asked with ``request_file_ranges``; a Resume with none asked fills the gaps from the
        download position. Download jobs of http(s) files only, without dynamic content,
        custom HTTP method or file ranges; only before the first Resume."""
        await self._patch(on_demand=check_bool("on demand", enabled))

    async def get_on_demand(self) -> bool:
        return bool(await self._field("on_demand"))

    async def set_notify_flags(self, flags: NotifyFlags | int) -> None:
        """Which events notify (SetNotifyFlags); the default is JOB_TRANSFERRED | JOB_ERROR."""
        await self._patch(notify_flags=int(check_notify_flags(flags)))

    async def get_notify_flags(self) -> NotifyFlags:
        return NotifyFlags(int(await self._field("notify_flags")))

    async def set_notify_interface(self, callback: object | None) -> None:
        """Register the object whose ``job_error``, ``job_transferred``, ``job_modification``,
        ``file_transferred`` and ``file_ranges_transferred`` methods the daemon calls in this
        process (SetNotifyInterface); None clears it. The registration lives as long as this
        manager: when it closes or its process exits, the daemon runs the job's command line
        instead, or keeps the notification for the next registration.

        Raises:
            InvalidStateError: the job is final.
            NotFoundError: no such job.
        """
        if callback is None:
            state = _wire.enum_from_json(JobState, await self._field("state"), "state")
            if state.is_final:
                raise InvalidStateError(f"the job is {state}; it accepts no changes")
            await self._manager._events.unregister(self.id)
        else:
            try:
                await self._manager._events.register(self.id, callback)
            except NotFoundError:
                ended = self._ended()
                if ended is None:
                    raise
                raise self._final_state_error(ended) from None

    async def get_notify_interface(self) -> object | None:
        """The object this process registered for the job, or None."""
        await self._get()
        return self._manager._events.registered(self.id)

    async def set_notify_cmd_line(self, program: str | None, parameters: str | None = None) -> None:
        """The program to run when the job is TRANSFERRED or in ERROR (SetNotifyCmdLine).

        Args:
            program: absolute path of the program; None (with parameters None) removes it.
            parameters: the whole command line, whose first token is the program's name; None
                runs the program with no arguments.
        """
        await self._patch(notify_cmd_line={"program": program, "parameters": parameters})

    async def get_notify_cmd_line(self) -> tuple[str | None, str | None]:
        line = (await self._get()).get("notify_cmd_line") or {}
        program, parameters = line.get("program"), line.get("parameters")
        return (
            None if program is None else str(program),
            None if parameters is None else str(parameters),
        )

    async def set_maximum_download_size(self, size: int | None) -> None:
        """Bytes the job may download in all; None removes the limit; only before the first
        Resume (BITS_JOB_PROPERTY_MAX_DOWNLOAD_SIZE). Exceeding it fails the job with
        BG_E_MAX_DOWNLOAD_SIZE_LIMIT_REACHED."""
        await self._patch(maximum_download_size=check_maximum_download_size(size))

    async def get_maximum_download_size(self) -> int | None:
        return _int_or_none(await self._field("maximum_download_size"))

    async def set_custom_headers(self, headers: str | None) -> None:
        """Headers sent with every request: ``"Name: value\\r\\n"`` lines, at most 16,384
        characters; None or "" removes them (SetCustomHeaders)."""
        await self._patch(custom_headers=headers)

    async def get_custom_headers(self) -> str | None:
        """The custom headers, or None (GetCustomHeaders).

        Raises:
            BitsError: E_ACCESSDENIED after ``make_custom_headers_write_only()``.
        """
        body = await self._get()
        if body.get("custom_headers_write_only"):
            raise BitsError("the custom headers are write-only", hresult=codes.E_ACCESSDENIED)
        return _str_or_none(body.get("custom_headers"))

    async def make_custom_headers_write_only(self) -> None:
        """Make the custom headers unreadable from now on; cannot be undone."""
        await self._change("POST", "/custom-headers/write-only")

    async def set_http_method(self, method: str | None) -> None:
        """Use another HTTP verb than GET (SetHttpMethod): the job becomes FOREGROUND for good,
        errors that are normally transient are fatal, and Resume restarts from the beginning.
        Only before the first Resume; not with dynamic content."""
        await self._patch(http_method=method)

    async def get_http_method(self) -> str | None:
        return _str_or_none(await self._field("http_method"))

    async def set_security_flags(self, flags: SecurityFlags | int) -> None:
        """TLS leniency and the redirect policy (SetSecurityFlags)."""
        await self._patch(security_flags=int(check_security_flags(flags)))

    async def get_security_flags(self) -> SecurityFlags:
        return SecurityFlags(int(await self._field("security_flags")))

    async def set_proxy_settings(
        self, usage: ProxyUsage, proxy_list: str | None = None, bypass_list: str | None = None
    ) -> None:
        """How requests reach servers (SetProxySettings): PRECONFIG uses the environment's
        http_proxy/https_proxy/no_proxy; NO_PROXY connects directly; OVERRIDE uses
        ``proxy_list`` (space-separated ``[scheme=][scheme://]host[:port]``) except for the
        hosts of ``bypass_list`` (``<local>`` and ``*`` wildcards allowed); AUTODETECT is
        PRECONFIG on Linux."""
        kind, proxies, bypass = check_proxy_settings(usage, proxy_list, bypass_list)
        await self._patch(proxy={"usage": kind.name, "list": proxies, "bypass": bypass})

    async def get_proxy_settings(self) -> tuple[ProxyUsage, str | None, str | None]:
        body = await self._get()
        return (
            ProxyUsage(int(body.get("proxy_usage", 0))),
            _str_or_none(body.get("proxy_list")),
            _str_or_none(body.get("proxy_bypass")),
        )

    async def set_credentials(
        self, target: AuthTarget, scheme: AuthScheme, user_name: str, password: str
    ) -> None:
        """Credentials given to a server or proxy when it asks for them with this scheme
        (SetCredentials); never sent to another host after a redirect, never logged, never
        returned by the daemon."""
        checked_target, checked_scheme, user, secret = check_credentials(
            target, scheme, user_name, password
        )
        await self._change(
            "PUT",
            "/credentials",
            json={
                "target": int(checked_target),
                "scheme": int(checked_scheme),
                "user_name": user,
                "password": secret,
            },
        )

    async def remove_credentials(self, target: AuthTarget, scheme: AuthScheme) -> int:
        """Forget the credentials of (target, scheme). Returns S_OK, or S_FALSE if none."""
        checked_target, checked_scheme, _, _ = check_credentials(target, scheme, None, None)
        path = f"/credentials/{int(checked_target)}/{int(checked_scheme)}"
        return _hresult_of(await self._change("DELETE", path))

    async def set_ca_bundle(self, path: str | None) -> None:
        """A PEM file of CA certificates to trust instead of the system store (bitsd's form of
        a certificate store); None returns to the system store."""
        await self._patch(ca_bundle=path)

    async def get_ca_bundle(self) -> str | None:
        return _str_or_none(await self._field("ca_bundle"))

    async def set_client_certificate(self, certificate: str, key: str | None = None) -> None:
        """A client certificate (PEM file, with its key inside or in ``key``)."""
        await self._patch(client_certificate={"certificate": certificate, "key": key})

    async def remove_client_certificate(self) -> None:
        await self._patch(client_certificate=None)

    async def get_client_certificate(self) -> tuple[str, str | None] | None:
        body = await self._get()
        certificate = _str_or_none(body.get("client_certificate"))
        if certificate is None:
            return None
        return certificate, _str_or_none(body.get("client_key"))

    async def set_transfer_policy(self, policy: CostStates | int) -> None:
        """The network cost states in which the job may transfer (BITS_JOB_PROPERTY_ID_COST_FLAGS);
        the default is TRANSFER_STANDARD."""
        await self._patch(transfer_policy=check_transfer_policy(policy))

    async def get_transfer_policy(self) -> CostStates:
        return CostStates(int(await self._field("transfer_policy")))

    async def set_bandwidth_limit(self, bytes_per_second: int | None) -> None:
        """A bitsd extension: the most this job may transfer per second; None for no limit."""
        await self._patch(bandwidth_limit=check_bandwidth_limit(bytes_per_second))

    async def get_bandwidth_limit(self) -> int | None:
        return _int_or_none(await self._field("bandwidth_limit"))

    async def get_owner(self) -> int:
        """The uid of the job's owner (GetOwner)."""
        return int(await self._field("owner"))

    # -- upload-reply jobs (docs/uploads.md) -----------------------------------------------

    async def set_reply_file_name(self, path: str | None) -> None:
        """Where the reply of an upload-reply job goes (IBackgroundCopyJob2::SetReplyFileName).
        Unless set before the first Resume, bitsd names it after the upload file, in its
        folder. The file appears there on ``complete()``.

        Args:
            path: an absolute path in an existing writable folder, as the daemon (the same
                user) sees it; None returns to the generated name.

        Raises:
            NotSupportedError: not an upload-reply job (E_NOTIMPL).
            InvalidStateError: the reply's download has begun (BG_E_INVALID_STATE).
            InvalidArgumentError, BitsError: a bad path, as for ``add_file``'s local name.
        """
        await self._change("PUT", "/reply/file-name", json={"path": path})

    async def get_reply_file_name(self) -> str | None:
        """The reply file's name, or None before it is set or generated
        (IBackgroundCopyJob2::GetReplyFileName). Raises NotSupportedError (E_NOTIMPL) for
        other job types."""
        return _str_or_none((await self._reply()).get("file_name"))

    async def get_reply_progress(self) -> ReplyProgress:
        """The reply's progress (IBackgroundCopyJob2::GetReplyProgress): ``bytes_total`` is
        ``SIZE_UNKNOWN`` until the upload part is done. Raises NotSupportedError (E_NOTIMPL)
        for other job types."""
        return _reply_progress((await self._reply()).get("progress"))

    async def get_reply_data(self) -> bytes:
        """The reply, in memory (IBackgroundCopyJob2::GetReplyData); b"" when the server
        application sent none. Works in TRANSFERRED and after ``complete()`` (then read from
        the reply file, as the engine does).

        Raises:
            NotSupportedError: not an upload-reply job (E_NOTIMPL).
            InvalidStateError: the job is not TRANSFERRED (BG_E_INVALID_STATE).
            BitsError: BG_E_TOO_LARGE for a reply over 1 MiB (read the reply file instead).
        """
        try:
            body = await self._read("/reply/data")
        except NotFoundError:
            ended = self._ended()
            if ended is None:
                raise
            return await _ended_reply_data(ended, self._ended_reply(ended))
        try:
            return base64.b64decode(str(body.get("data", "")), validate=True)
        except (binascii.Error, ValueError):
            raise BitsError(
                "the daemon answered malformed reply data", hresult=codes.E_FAIL
            ) from None

    async def _reply(self) -> Mapping[str, Any]:
        """GET .../reply, or what it answered when this manager ended the job."""
        try:
            body: Mapping[str, Any] = await self._read("/reply")
        except NotFoundError:
            ended = self._ended()
            if ended is None:
                raise
            return self._ended_reply(ended)
        return body

    @staticmethod
    def _ended_reply(ended: _Ended) -> Mapping[str, Any]:
        if ended.reply is None:
            raise NotSupportedError(
                f"only upload-reply jobs have a reply; this one is {ended.job.get('type')}"
            )
        return ended.reply


def _reply_progress(value: object) -> ReplyProgress:
    if not isinstance(value, Mapping):
        raise BitsError("the daemon answered a malformed reply progress", hresult=codes.E_FAIL)
    total, done = value.get("bytes_total"), value.get("bytes_transferred")
    if not isinstance(total, int) or not isinstance(done, int):
        raise BitsError("the daemon answered a malformed reply progress", hresult=codes.E_FAIL)
    return ReplyProgress(total, done)


async def _ended_reply_data(ended: _Ended, reply: Mapping[str, Any]) -> bytes:
    """GetReplyData of a job this manager ended, as the engine answers it: after Complete
    from the reply file (the same user's file, as the daemon sees it), else
    BG_E_INVALID_STATE."""
    if ended.state is not JobState.ACKNOWLEDGED:
        raise InvalidStateError(
            f"the job is {ended.state}; the reply is there once the job is TRANSFERRED"
        )
    size = _reply_progress(reply.get("progress")).bytes_total
    size = 0 if size == codes.SIZE_UNKNOWN else size
    if size > MAX_REPLY_DATA:
        raise BitsError(
            f"the reply has {size} bytes; get_reply_data() returns at most "
            f"{MAX_REPLY_DATA}: read the reply file after complete()",
            hresult=codes.BG_E_TOO_LARGE,
        )
    path = _str_or_none(reply.get("file_name"))
    if size == 0 or path is None:
        return b""

    def read() -> bytes:
        with open(path, "rb") as f:
            return f.read(MAX_REPLY_DATA + 1)

    try:
        return await asyncio.to_thread(read)
    except OSError as exc:
        raise BitsError(
            f"cannot read the reply {path}: {exc.strerror}",
            hresult=codes.hresult_from_errno(exc.errno or 0),
        ) from exc


def _file_index(items: list[Mapping[str, Any]], file: int | FileInfo) -> int:
    """The index of ``file`` (an index or a FileInfo, matched by local name) among the listed
    files, checked as the engine checks it (InvalidArgumentError)."""
    if isinstance(file, FileInfo):
        for i, item in enumerate(items):
            if item.get("local_name") == file.local_name:
                return i
        raise InvalidArgumentError(f"the job has no file {file.local_name}")
    if not is_int(file) or not 0 <= file < len(items):
        raise InvalidArgumentError(f"the job has no file number {shown(file)}")
    return file


def _ranges_json(ranges: Iterable[tuple[int, int]]) -> list[list[int]]:
    """(offset, length) pairs as JSON, checked as the engine checks their type
    (``bitsd._ranges.range_pairs``). Every number below 0 or above LENGTH_TO_EOF is refused
    alike by the engine's checks of the values; those JSON cannot carry (over 4,300 digits)
    are sent as -1 or LENGTH_TO_EOF + 1."""
    beyond = codes.LENGTH_TO_EOF + 1
    return [
        [_clamped(offset, beyond), _clamped(length, beyond)]
        for offset, length in range_pairs(ranges)
    ]


def _clamped(number: int, beyond: int) -> int:
    """``number`` within -1 .. ``beyond``: every number outside what the engine accepts is
    refused alike, and JSON cannot carry an int of over 4,300 digits."""
    return min(max(number, -1), beyond)


def _hresult_of(body: Mapping[str, Any]) -> int:
    hresult = body.get("hresult", codes.S_OK)
    return int(hresult) if isinstance(hresult, int) else codes.S_OK


def _str_or_none(value: object) -> str | None:
    return None if value is None else str(value)


def _int_or_none(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise BitsError(f"the daemon answered a malformed number {value!r}", hresult=codes.E_FAIL)


class _EventStream:
    """The manager's WebSocket to ``/v1/events``: registrations out, notify calls in.

    One task (``_run``) owns the connection: it connects, starts the reader, registers every
    known object again, then waits for the reader to end and reconnects. Register and
    unregister exchanges are serialised (``_exchange``), so an answer is matched to the one
    request waiting for it.
    """

    def __init__(self, manager: Manager) -> None:
        self._manager = manager
        self._objects: dict[str, object] = {}
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._ready = asyncio.Event()
        self._exchange = asyncio.Lock()
        self._send_lock = asyncio.Lock()
        self._waiting: tuple[str, asyncio.Future[None], object | None] | None = None
        self._runner: asyncio.Task[None] | None = None
        self._calls: set[asyncio.Task[None]] = set()
        self._last_error: BaseException | None = None

    def registered(self, job_id: str) -> object | None:
        return self._objects.get(job_id)

    def forget(self, job_id: str) -> None:
        """The job is final: the daemon dropped its registration."""
        self._objects.pop(job_id, None)

    async def register(self, job_id: str, obj: object) -> None:
        methods = [m for m in _NOTIFY_METHODS if callable(getattr(obj, m, None))]
        await self._connected()
        async with self._exchange:
            await self._ask(job_id, {"op": "register", "job": job_id, "methods": methods}, obj)

    async def unregister(self, job_id: str) -> None:
        if self._objects.pop(job_id, None) is None or not self._ready.is_set():
            return  # never registered here, or the dropped connection took it along
        async with self._exchange:
            await self._send({"op": "unregister", "job": job_id})

    async def close(self) -> None:
        tasks = [t for t in (self._runner, *self._calls) if t is not None]
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        if self._ws is not None:
            await self._ws.close()
        self._objects.clear()

    # -- connection ------------------------------------------------------------------------

    async def _connected(self) -> None:
        if self._runner is None:
            self._runner = asyncio.create_task(self._run(), name="bitsd-client-events")
        try:
            await asyncio.wait_for(self._ready.wait(), self._manager._timeout)
        except TimeoutError:
            raise _unreachable("cannot open the event stream", self._last_error) from None

    async def _run(self) -> None:
        delay = _EVENTS_BACKOFF[0]
        while True:
            try:
                ws = await self._manager._session.ws_connect(f"{_BASE}/v1/events")
            except (aiohttp.ClientError, OSError) as exc:
                self._last_error = exc
                log.debug("event stream: cannot connect: %s", exc)
            else:
                self._ws = ws
                reader = asyncio.create_task(self._read(ws), name="bitsd-client-events-reader")
                try:
                    await self._register_all()
                    if not reader.done():
                        self._ready.set()
                        delay = _EVENTS_BACKOFF[0]
                    await reader
                finally:
                    self._ready.clear()
                    self._ws = None
                    reader.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await reader
                    await ws.close()
                log.warning("the event stream of the bitsd daemon closed; reconnecting")
            await asyncio.sleep(delay * (0.5 + random.random()))  # noqa: S311 (jitter)
            delay = min(delay * 2, _EVENTS_BACKOFF[1])

    async def _register_all(self) -> None:
        """Register every known object on a new connection; drop those the daemon refuses
        (the job ended meanwhile)."""
        async with self._exchange:
            for job_id, obj in list(self._objects.items()):
                methods = [m for m in _NOTIFY_METHODS if callable(getattr(obj, m, None))]
                try:
                    await self._ask(
                        job_id, {"op": "register", "job": job_id, "methods": methods}, obj
                    )
                except BitsError as exc:
                    if exc.hresult == DAEMON_UNAVAILABLE:
                        return
                    log.warning("job %s: callback not registered again: %s", job_id, exc)
                    self._objects.pop(job_id, None)

    async def _ask(self, job_id: str, message: Mapping[str, Any], obj: object | None) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting = (job_id, future, obj)
        try:
            await self._send(message)
            await asyncio.wait_for(future, REQUEST_TIMEOUT)
        except TimeoutError:
            raise _unreachable(f"no answer to {message.get('op')} of job {job_id}") from None
        finally:
            self._waiting = None

    async def _send(self, message: Mapping[str, Any]) -> None:
        ws = self._ws
        if ws is None or ws.closed:
            raise _unreachable("the event stream is closed")
        try:
            async with self._send_lock:
                await ws.send_str(json.dumps(message))
        except (ConnectionError, aiohttp.ClientError) as exc:
            raise _unreachable("the event stream is closed", exc) from exc

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        try:
            async for msg in ws:
                if msg.type is not aiohttp.WSMsgType.TEXT:
                    continue
                try:
                    data = json.loads(msg.data)
                except ValueError:
                    log.warning("event stream: unreadable message %.200r", msg.data)
                    continue
                if isinstance(data, dict):
                    self._dispatch(ws, data)
        finally:
            waiting = self._waiting
            if waiting is not None and not waiting[1].done():
                waiting[1].set_exception(_unreachable("the event stream closed"))

    def _dispatch(self, ws: aiohttp.ClientWebSocketResponse, data: dict[str, Any]) -> None:
        kind = data.get("type")
        if kind == "notify":
            task = asyncio.create_task(self._notify(ws, data))
            self._calls.add(task)
            task.add_done_callback(self._calls.discard)
            return
        if kind not in ("registered", "error"):
            return  # watch events and future message types
        waiting = self._waiting
        if waiting is None or data.get("job") != waiting[0] or waiting[1].done():
            log.warning("event stream: unexpected %s answer for job %s", kind, data.get("job"))
            return
        job_id, future, obj = waiting
        if kind == "registered":
            # Installed here, before the reader looks at the next message, which may already
            # be a notify call for this job.
            if obj is not None:
                self._objects[job_id] = obj
            future.set_result(None)
        else:
            future.set_exception(_wire.error_from_json({"error": data.get("error")}))

    async def _notify(self, ws: aiohttp.ClientWebSocketResponse, data: dict[str, Any]) -> None:
        hresult = await self._invoke(data)
        reply = {"op": "result", "call": data.get("call"), "hresult": hresult}
        try:
            async with self._send_lock:
                await ws.send_str(json.dumps(reply))
        except (ConnectionError, aiohttp.ClientError):
            # The connection is gone; the daemon has failed the call already.
            log.debug("could not answer notify call %s", data.get("call"))

    async def _invoke(self, data: Mapping[str, Any]) -> int:
        """Call the registered method for one notify message; the HRESULT it answers."""
        job_id, method = data.get("job"), data.get("method")
        obj = self._objects.get(job_id) if isinstance(job_id, str) else None
        fn = getattr(obj, method, None) if method in _NOTIFY_METHODS else None
        if job_id is None or fn is None:
            log.warning("notify %s of job %s: nothing registered for it here", method, job_id)
            return codes.E_FAIL
        try:
            args: list[object] = [RemoteJob(self._manager, str(job_id))]
            if method == "job_error":
                args.append(_wire.error_info_from_json(data.get("error")))
            elif method in ("file_transferred", "file_ranges_transferred"):
                args.append(_wire.file_info_from_json(data.get("file")))
            if method == "file_ranges_transferred":
                args.append(_wire.ranges_from_json(data.get("ranges")))
            if inspect.iscoroutinefunction(fn):
                result = await fn(*args)
            else:
                result = await asyncio.to_thread(fn, *args)
                if inspect.isawaitable(result):
                    result = await result
        except Exception:
            log.warning("%s callback of job %s raised", method, job_id, exc_info=True)
            return codes.E_FAIL
        return result_hresult(result)
