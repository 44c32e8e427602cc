"""The synchronous client of the bitsd daemon: ``bitsd.connect()``.

Rules:
- A :class:`Manager` owns a private event loop in a daemon thread and the asyncio client
  (:mod:`bitsd._client`) running on it. Every method runs one of that client's coroutines
  and blocks for its result, so results and exceptions are exactly the async client's
  (arguments go to it as given: it checks them, and a bad one raises before any request). The
  calls that are plain requests run in the calling thread over a blocking channel
  (:mod:`bitsd._blocking`, no thread hop), Cancel, Complete and wait too; the others
  (connect, close, callbacks, reading an ended job's reply) are submitted to the private
  loop.
- Methods must not be called from the private loop itself (an ``async def`` callback runs
  there): that would wait for the loop it blocks. They raise RuntimeError instead; an async
  callback awaits the ``RemoteJob`` it is given.
- Callbacks registered through this API: a plain function runs in a worker thread (never on
  the private loop) and is given a synchronous :class:`Job`; a coroutine function runs on the
  private loop and is given the asynchronous ``RemoteJob``.
- ``close()`` closes the client, stops the loop and joins the thread. Worker threads still
  inside a callback are not waited for.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import os
import threading
from collections.abc import Callable, Coroutine, Iterable
from typing import Any, TypeVar

from bitsd import _client
from bitsd._blocking import loop_running
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
from bitsd._errors import InvalidStateError
from bitsd._records import ErrorInfo, FileInfo, JobProgress, JobSnapshot, JobTimes, ReplyProgress

__all__ = ["Job", "Manager", "connect"]

T = TypeVar("T")

# Seconds close() waits for the loop thread to end: bitsd's choice.
_JOIN_TIMEOUT = 10.0


class _LoopThread:
    """An event loop running forever in a daemon thread, and a way to run coroutines on it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._executor = concurrent.futures.ThreadPoolExecutor(thread_name_prefix="bitsd-callback")
        self.loop.set_default_executor(self._executor)
        self.closed = False
        self._thread = threading.Thread(target=self._main, name="bitsd-client-loop", daemon=True)
        self._thread.start()

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` here, in the calling thread, and return its result (or raise its
        exception): for the calls that are one request each, which then go over the blocking
        channel (bitsd._blocking) with no thread hop. ``coro`` must not need an event loop; in
        a thread where one runs already (the caller's own), it goes to :meth:`run_on_loop`."""
        if loop_running():
            return self.run_on_loop(coro)
        if self.closed:
            coro.close()
            raise InvalidStateError("the manager is closed; connect again")
        try:
            coro.send(None)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        coro.close()
        raise RuntimeError(f"{coro!r} needs an event loop: use run_on_loop")

    def run_on_loop(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the loop and return its result (or raise its exception)."""
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError(
                "a bitsd.Manager method was called on its own event loop (from an async "
                "callback?); await the RemoteJob the callback was given instead"
            )
        if self.closed:
            coro.close()
            raise InvalidStateError("the manager is closed; connect again")
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def stop(self) -> None:
        """Stop the loop, join its thread and close it."""
        if self.closed:
            return
        self.closed = True
        self.loop.call_soon_threadsafe(self.loop.stop)
        if threading.current_thread() is not self._thread:
            self._thread.join(_JOIN_TIMEOUT)
        self._executor.shutdown(wait=False, cancel_futures=True)
        if not self._thread.is_alive():
            self.loop.close()


def connect(
    *,
    socket_path: str | os.PathLike[str] | None = None,
    autostart: bool = True,
    timeout: float = _client.DEFAULT_CONNECT_TIMEOUT,
) -> Manager:
    """Connect to the user's bitsd daemon, starting it first if needed; the synchronous twin
    of ``await bitsd.aio.connect()``, with the same arguments.

    Raises:
        BitsError: DAEMON_UNAVAILABLE (0x800706BA) when no daemon answered in time.
    """
    runner = _LoopThread()
    try:
        client = runner.run_on_loop(
            _client.connect(socket_path=socket_path, autostart=autostart, timeout=timeout)
        )
    except BaseException:
        runner.stop()
        raise
    client._use_blocking_channel()
    return Manager(client, runner)


class Manager:
    """A blocking connection to the bitsd daemon, with the verbs of ``bitsd.aio.Engine``.

    Get one from :func:`bitsd.connect`; use it as a context manager or call :meth:`close`.

    Attributes:
        socket_path: the control socket this manager talks to.
    """

    def __init__(self, client: _client.Manager, runner: _LoopThread) -> None:
        self._client = client
        self._runner = runner
        self.socket_path = client.socket_path

    def __repr__(self) -> str:
        return f"<bitsd.Manager {self.socket_path}>"

    def __enter__(self) -> Manager:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection (the daemon drops this process's callbacks) and stop the
        private loop. Jobs go on in the daemon. A second call does nothing."""
        if self._runner.closed:
            return
        try:
            self._runner.run_on_loop(self._client.close())
        finally:
            self._runner.stop()

    def create_job(
        self,
        display_name: str,
        job_type: JobType = JobType.DOWNLOAD,
        *,
        files: Iterable[tuple[str, str]] | None = None,
        priority: Priority | None = None,
        resume: bool = False,
    ) -> Job:
        """Create a SUSPENDED job with no files (CreateJob); with ``files``, ``priority`` and
        ``resume``, set it up in the same request, all or nothing (see
        :meth:`bitsd.Manager.create_job`)."""
        job = self._client.create_job(
            display_name,
            job_type,
            files=files,
            priority=priority,
            resume=resume,
        )
        return Job(self._runner.run(job), self._runner)

    def get_job(self, job_id: str) -> Job:
        """The job with this id (GetJob). Raises NotFoundError for unknown or final jobs."""
        return Job(self._runner.run(self._client.get_job(job_id)), self._runner)

    def jobs(self) -> list[Job]:
        """Every job that is not final (EnumJobs), oldest first."""
        return [Job(j, self._runner) for j in self._runner.run(self._client.jobs())]


class _SyncCallbacks:
    """The object registered for a callback object of the sync API: its plain methods are
    given a synchronous :class:`Job`, its coroutine methods the asynchronous RemoteJob."""

    __slots__ = ("_runner", "target")

    def __init__(self, target: object, runner: _LoopThread) -> None:
        self.target = target
        self._runner = runner

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name.startswith("_") or name not in _client._NOTIFY_METHODS:
            raise AttributeError(name)
        fn = getattr(self.target, name)
        if inspect.iscoroutinefunction(fn):

            async def call_async(job: _client.RemoteJob, *args: object) -> object:
                return await fn(job, *args)

            return call_async

        def call(job: _client.RemoteJob, *args: object) -> object:
            return fn(Job(job, self._runner), *args)

        return call


class Job:
    """A BITS job of the daemon, with every method of ``bitsd.aio.Job`` as a blocking call.
    Obtain one from :class:`Manager`; do not construct it."""

    __slots__ = ("_job", "_runner", "id")

    def __init__(self, job: _client.RemoteJob, runner: _LoopThread) -> None:
        self._job = job
        self._runner = runner
        self.id: str = job.id

    def __repr__(self) -> str:
        return f"<bitsd.Job {self.id}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Job) and other._job == self._job

    def __hash__(self) -> int:
        return hash(self.id)

    # -- files -----------------------------------------------------------------------------

    def add_file(self, remote_url: str, local_path: str, *, sha256: str | None = None) -> None:
        """Add one file (AddFile); ``sha256``, a bitsd extension, is the expected SHA-256."""
        self._runner.run(self._job.add_file(remote_url, local_path, sha256=sha256))

    def add_file_with_ranges(
        self, remote_url: str, local_path: str, ranges: Iterable[tuple[int, int]]
    ) -> None:
        """Add a file made of byte ranges of the remote file (AddFileWithRanges)."""
        self._runner.run(self._job.add_file_with_ranges(remote_url, local_path, ranges))

    def get_file_ranges(self, file: int | FileInfo) -> list[tuple[int, int]]:
        """The ranges of a file added with ranges, or [] (GetFileRanges)."""
        return self._runner.run(self._job.get_file_ranges(file))

    def replace_remote_prefix(self, old_prefix: str, new_prefix: str) -> int:
        """Replace a leading part of the remote names (ReplaceRemotePrefix); S_OK or S_FALSE."""
        return self._runner.run(self._job.replace_remote_prefix(old_prefix, new_prefix))

    def set_validation_state(self, file: int | FileInfo, valid: bool) -> None:
        """Accept or reject a finished file (SetValidationState)."""
        self._runner.run(self._job.set_validation_state(file, valid))

    def get_validation_state(self, file: int | FileInfo) -> bool:
        """Whether ``set_validation_state(file, True)`` was called."""
        return self._runner.run(self._job.get_validation_state(file))

    def request_file_ranges(self, file: int | FileInfo, ranges: Iterable[tuple[int, int]]) -> None:
        """Ask for byte ranges of a file of an on-demand job, fetched first
        (RequestFileRanges)."""
        self._runner.run(self._job.request_file_ranges(file, ranges))

    def get_filled_file_ranges(self, file: int | FileInfo) -> list[tuple[int, int]]:
        """The ranges of a file held in its temporary file (GetFilledFileRanges)."""
        return self._runner.run(self._job.get_filled_file_ranges(file))

    def update_download_position(self, file: int | FileInfo, offset: int) -> None:
        """Where filling an on-demand file's gaps starts (UpdateDownloadPosition)."""
        self._runner.run(self._job.update_download_position(file, offset))

    def add_file_set(self, files: Iterable[tuple[str, str]]) -> None:
        """Add several files at once, all or none (AddFileSet)."""
        self._runner.run(self._job.add_file_set(files))

    def files(self) -> list[FileInfo]:
        """The job's files, in transfer order (EnumFiles)."""
        return self._runner.run(self._job.files())

    # -- verbs -----------------------------------------------------------------------------

    def resume(self) -> None:
        """Queue the job for transfer (Resume)."""
        self._runner.run(self._job.resume())

    def suspend(self) -> None:
        """Stop transferring and keep the progress (Suspend)."""
        self._runner.run(self._job.suspend())

    def cancel(self) -> int:
        """Remove the job and delete its temporary files (Cancel); S_OK or
        BG_S_UNABLE_TO_DELETE_FILES."""
        return self._runner.run(self._job.cancel())

    def complete(self) -> int:
        """Move finished files to their final names and end the job (Complete); S_OK or
        BG_S_PARTIAL_COMPLETE."""
        return self._runner.run(self._job.complete())

    def wait(self, states: Iterable[JobState] | JobState, timeout: float | None = None) -> JobState:
        """Block until the job is in one of ``states``; TimeoutError after ``timeout`` s."""
        return self._runner.run(self._job.wait(states, timeout))

    # -- state and progress ----------------------------------------------------------------

    def snapshot(self) -> JobSnapshot:
        """Everything about the job that may be shown, read at one moment (one request)."""
        return self._runner.run(self._job.snapshot())

    def get_state(self) -> JobState:
        """The job's state (GetState)."""
        return self._runner.run(self._job.get_state())

    def get_type(self) -> JobType:
        """The job's type (GetType)."""
        return self._runner.run(self._job.get_type())

    def get_progress(self) -> JobProgress:
        """Bytes and files transferred so far (GetProgress)."""
        return self._runner.run(self._job.get_progress())

    def get_times(self) -> JobTimes:
        """Creation, modification and transfer-completion times (GetTimes)."""
        return self._runner.run(self._job.get_times())

    def get_error(self) -> ErrorInfo:
        """The error of a job in ERROR or TRANSIENT_ERROR (GetError)."""
        return self._runner.run(self._job.get_error())

    def get_error_count(self) -> int:
        """How many errors the job has had (GetErrorCount)."""
        return self._runner.run(self._job.get_error_count())

    # -- properties ------------------------------------------------------------------------

    def set_priority(self, priority: Priority) -> None:
        self._runner.run(self._job.set_priority(priority))

    def get_priority(self) -> Priority:
        return self._runner.run(self._job.get_priority())

    def set_display_name(self, name: str) -> None:
        self._runner.run(self._job.set_display_name(name))

    def get_display_name(self) -> str:
        return self._runner.run(self._job.get_display_name())

    def set_description(self, description: str) -> None:
        self._runner.run(self._job.set_description(description))

    def get_description(self) -> str:
        return self._runner.run(self._job.get_description())

    def set_minimum_retry_delay(self, seconds: float) -> None:
        self._runner.run(self._job.set_minimum_retry_delay(seconds))

    def get_minimum_retry_delay(self) -> float:
        return self._runner.run(self._job.get_minimum_retry_delay())

    def set_no_progress_timeout(self, seconds: float) -> None:
        self._runner.run(self._job.set_no_progress_timeout(seconds))

    def get_no_progress_timeout(self) -> float:
        return self._runner.run(self._job.get_no_progress_timeout())

    def set_maximum_download_time(self, seconds: float) -> None:
        self._runner.run(self._job.set_maximum_download_time(seconds))

    def get_maximum_download_time(self) -> float:
        return self._runner.run(self._job.get_maximum_download_time())

    def set_dynamic_content(self, enabled: bool) -> None:
        self._runner.run(self._job.set_dynamic_content(enabled))

    def get_dynamic_content(self) -> bool:
        return self._runner.run(self._job.get_dynamic_content())

    def set_on_demand(self, enabled: bool) -> None:
        """On-demand mode (BITS_JOB_PROPERTY_ON_DEMAND_MODE); only before the first Resume."""
        self._runner.run(self._job.set_on_demand(enabled))

    def get_on_demand(self) -> bool:
        return self._runner.run(self._job.get_on_demand())

    def set_notify_flags(self, flags: NotifyFlags | int) -> None:
        self._runner.run(self._job.set_notify_flags(flags))

    def get_notify_flags(self) -> NotifyFlags:
        return self._runner.run(self._job.get_notify_flags())

    def set_notify_interface(self, callback: object | None) -> None:
        """Register the callback object (SetNotifyInterface); None clears it. Plain methods
        run in a worker thread and get a :class:`Job`; ``async def`` methods run on the
        manager's private loop and get a ``bitsd.aio`` RemoteJob to await."""
        registered = None if callback is None else _SyncCallbacks(callback, self._runner)
        self._runner.run_on_loop(self._job.set_notify_interface(registered))

    def get_notify_interface(self) -> object | None:
        """The object this process registered for the job, or None."""
        registered = self._runner.run(self._job.get_notify_interface())
        return registered.target if isinstance(registered, _SyncCallbacks) else registered

    def set_notify_cmd_line(self, program: str | None, parameters: str | None = None) -> None:
        self._runner.run(self._job.set_notify_cmd_line(program, parameters))

    def get_notify_cmd_line(self) -> tuple[str | None, str | None]:
        return self._runner.run(self._job.get_notify_cmd_line())

    def set_maximum_download_size(self, size: int | None) -> None:
        self._runner.run(self._job.set_maximum_download_size(size))

    def get_maximum_download_size(self) -> int | None:
        return self._runner.run(self._job.get_maximum_download_size())

    def set_custom_headers(self, headers: str | None) -> None:
        self._runner.run(self._job.set_custom_headers(headers))

    def get_custom_headers(self) -> str | None:
        """The custom headers, or None; BitsError E_ACCESSDENIED when write-only."""
        return self._runner.run(self._job.get_custom_headers())

    def make_custom_headers_write_only(self) -> None:
        self._runner.run(self._job.make_custom_headers_write_only())

    def set_http_method(self, method: str | None) -> None:
        self._runner.run(self._job.set_http_method(method))

    def get_http_method(self) -> str | None:
        return self._runner.run(self._job.get_http_method())

    def set_security_flags(self, flags: SecurityFlags | int) -> None:
        self._runner.run(self._job.set_security_flags(flags))

    def get_security_flags(self) -> SecurityFlags:
        return self._runner.run(self._job.get_security_flags())

    def set_proxy_settings(
        self, usage: ProxyUsage, proxy_list: str | None = None, bypass_list: str | None = None
    ) -> None:
        self._runner.run(self._job.set_proxy_settings(usage, proxy_list, bypass_list))

    def get_proxy_settings(self) -> tuple[ProxyUsage, str | None, str | None]:
        return self._runner.run(self._job.get_proxy_settings())

    def set_credentials(
        self, target: AuthTarget, scheme: AuthScheme, user_name: str, password: str
    ) -> None:
        """Credentials for a challenge of (target, scheme); never returned nor logged."""
        self._runner.run(self._job.set_credentials(target, scheme, user_name, password))

    def remove_credentials(self, target: AuthTarget, scheme: AuthScheme) -> int:
        return self._runner.run(self._job.remove_credentials(target, scheme))

    def set_ca_bundle(self, path: str | None) -> None:
        self._runner.run(self._job.set_ca_bundle(path))

    def get_ca_bundle(self) -> str | None:
        return self._runner.run(self._job.get_ca_bundle())

    def set_client_certificate(self, certificate: str, key: str | None = None) -> None:
        self._runner.run(self._job.set_client_certificate(certificate, key))

    def remove_client_certificate(self) -> None:
        self._runner.run(self._job.remove_client_certificate())

    def get_client_certificate(self) -> tuple[str, str | None] | None:
        return self._runner.run(self._job.get_client_certificate())

    def set_transfer_policy(self, policy: CostStates | int) -> None:
        self._runner.run(self._job.set_transfer_policy(policy))

    def get_transfer_policy(self) -> CostStates:
        return self._runner.run(self._job.get_transfer_policy())

    def set_bandwidth_limit(self, bytes_per_second: int | None) -> None:
        self._runner.run(self._job.set_bandwidth_limit(bytes_per_second))

    def get_bandwidth_limit(self) -> int | None:
        return self._runner.run(self._job.get_bandwidth_limit())

    def get_owner(self) -> int:
        return self._runner.run(self._job.get_owner())

    # -- upload-reply jobs -----------------------------------------------------------------

    def set_reply_file_name(self, path: str | None) -> None:
        """Where the reply of an upload-reply job goes (SetReplyFileName)."""
        self._runner.run(self._job.set_reply_file_name(path))

    def get_reply_file_name(self) -> str | None:
        return self._runner.run(self._job.get_reply_file_name())

    def get_reply_progress(self) -> ReplyProgress:
        return self._runner.run(self._job.get_reply_progress())

    def get_reply_data(self) -> bytes:
        """The reply in memory (GetReplyData), at most 1 MiB."""
        return self._runner.run_on_loop(self._job.get_reply_data())
