"""The caller's handle on a job: one async method per BITS verb.

Rules:
- A ``Job`` holds only the engine and the job's id; every call goes through the engine's funnel,
  so the handle can never bypass the state machine. A job outlives its handle: ``get_job(id)``
  after a restart returns a new handle on the same job.
- Getters answer from the engine's current records; they work on a final job too (what it ended
  as), while verbs and setters on a final job raise BG_E_INVALID_STATE.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

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
from bitsd._records import (
    ErrorInfo,
    FileInfo,
    JobProgress,
    JobSnapshot,
    JobTimes,
    ReplyProgress,
)

if TYPE_CHECKING:
    from bitsd._engine import Engine, FileDetails

__all__ = ["Job"]


class Job:
    """A BITS job of an :class:`~bitsd.aio.Engine`. Obtain one from ``create_job``, ``get_job``
    or ``jobs``; do not construct it yourself."""

    __slots__ = ("_engine", "id")

    def __init__(self, engine: Engine, job_id: str) -> None:
        self._engine = engine
        self.id: str = job_id

    def __repr__(self) -> str:
        return f"<Job {self.id}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Job) and other.id == self.id and other._engine is self._engine

    def __hash__(self) -> int:
        return hash(self.id)

    # -- files -----------------------------------------------------------------------------

    async def add_file(
        self, remote_url: str, local_path: str, *, sha256: str | None = None
    ) -> None:
        """Add one file (IBackgroundCopyJob::AddFile). An upload job takes exactly one: the
        http(s) URL to upload to and the existing file to upload (docs/uploads.md); a second
        is BG_E_TOO_MANY_FILES.

        Args:
            remote_url: http://, https:// or file:// URL, or an absolute path.
            local_path: absolute path of the file to create; its folder must exist.
            sha256: a bitsd extension: the expected SHA-256 (hex) of the file; a mismatch
                fails the job with BG_E_VALIDATION_FAILED in LOCAL_FILE before TRANSFERRED.

        Raises:
            InvalidArgumentError: a malformed or unsupported URL, a relative local path, a name
                already used in the job, a malformed checksum.
            BitsError: the local folder does not exist or is not writable.
            InvalidStateError: the job is final.
        """
        await self._engine._add_files(self.id, [(remote_url, local_path)], sha256=sha256)

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
        await self._engine._add_files(self.id, [(remote_url, local_path)], ranges=ranges)

    async def get_file_ranges(self, file: int | FileInfo) -> list[tuple[int, int]]:
        """The ranges of a file added with ranges, or [] (IBackgroundCopyFile2::GetFileRanges).

        Args:
            file: the file's index in the job or its FileInfo.
        """
        return self._engine._file_ranges(self.id, file)

    async def replace_remote_prefix(self, old_prefix: str, new_prefix: str) -> int:
        """Replace a leading part of every matching remote name, case-sensitively
        (ReplaceRemotePrefix). Files already transferred are not fetched again; others go on
        where they were unless the new server's copy differs.

        Returns:
            S_OK, or S_FALSE if no remote name started with ``old_prefix``.
        """
        return await self._engine._replace_remote_prefix(self.id, old_prefix, new_prefix)

    async def set_validation_state(self, file: int | FileInfo, valid: bool) -> None:
        """Accept or reject a finished file (IBackgroundCopyFile3::SetValidationState).
        ``False`` puts the job in ERROR with BG_E_VALIDATION_FAILED and its progress back to 0;
        Resume downloads it again.

        Raises:
            InvalidArgumentError: ``valid`` is not a bool, or ``file`` is not a file of the job.
            BitsError: E_PENDING before the file has finished transferring.
        """
        await self._engine._set_validation_state(self.id, file, valid)

    async def get_validation_state(self, file: int | FileInfo) -> bool:
        """Whether ``set_validation_state(file, True)`` was called."""
        return self._engine._validation_state(self.id, file)

    async def request_file_ranges(
        self, file: int | FileInfo, ranges: Iterable[tuple[int, int]]
    ) -> None:
        """Ask for byte ranges of a file of an on-demand job, to be fetched first and written
        at their offsets (IBackgroundCopyFile6::RequestFileRanges). Ranges may overlap each
        other and what is held or asked already: only missing bytes are fetched. A length of
        ``LENGTH_TO_EOF`` runs to the end of the file. Once every requested range is in, the
        job is TRANSFERRED if its files are whole, else SUSPENDED; ``resume()`` after a
        request if the job is not running.

        Args:
            file: the file's index in the job or its FileInfo.
            ranges: (offset, length) pairs of the remote file.

        Raises:
            BitsError: BG_E_RANDOM_ACCESS_NOT_SUPPORTED (not an on-demand download job, or its
                server ignored ranges), BG_E_INVALID_RANGE (a negative offset, a length under
                1, a range beyond the file once its size is known; a range found outside it at
                run time fails the job with that code), BG_E_TOO_MANY_RANGES_IN_FILE (more
                than 500 waiting).
            InvalidArgumentError: no ranges, or not pairs of integers.
        """
        await self._engine._on_demand.request_file_ranges(self.id, file, ranges)

    async def get_filled_file_ranges(self, file: int | FileInfo) -> list[tuple[int, int]]:
        """The (offset, length) ranges of a file held in its temporary file, merged and by
        offset (IBackgroundCopyFile6::GetFilledFileRanges). For a job that is not on-demand,
        the bytes downloaded from the start.

        Raises:
            BitsError: BG_E_RANDOM_ACCESS_NOT_SUPPORTED for an upload job or a file added with
                ranges.
        """
        return self._engine._on_demand.filled_file_ranges(self.id, file)

    async def update_download_position(self, file: int | FileInfo, offset: int) -> None:
        """Where filling the gaps of an on-demand file starts, then wraps to the start
        (IBackgroundCopyFile6::UpdateDownloadPosition); the default is 0.

        Raises:
            BitsError: BG_E_RANDOM_ACCESS_NOT_SUPPORTED (not an on-demand download job),
                BG_E_INVALID_RANGE (beyond the file's size, once known, or beyond any file:
                over ``MAX_BYTE_COUNT``), E_INVALIDARG (not an integer >= 0).
        """
        await self._engine._on_demand.update_download_position(self.id, file, offset)

    async def add_file_set(self, files: Iterable[tuple[str, str]]) -> None:
        """Add several files at once, all or none (AddFileSet).

        Raises:
            InvalidArgumentError: ``files`` is empty or not an iterable of (remote name, local
                name) pairs of strings; and what ``add_file`` raises, for any of them.
        """
        await self._engine._add_files(self.id, files)

    async def files(self) -> list[FileInfo]:
        """The job's files, in transfer order (EnumFiles)."""
        return self._engine._file_infos(self.id)

    async def _file_details(self, start: int = 0) -> list[FileDetails]:
        """The files from ``start`` on with their ranges, validation state and filled ranges
        (for the daemon's file lists; the same values as the per-file getters)."""
        return self._engine._file_details(self.id, start)

    # -- verbs -----------------------------------------------------------------------------

    async def resume(self) -> None:
        """Queue the job for transfer (Resume). Raises EmptyJobError with no files."""
        await self._engine._resume(self.id)

    async def suspend(self) -> None:
        """Stop transferring and keep the progress (Suspend)."""
        await self._engine._suspend(self.id)

    async def cancel(self) -> int:
        """Remove the job and delete its temporary files (Cancel).

        Returns:
            S_OK, or BG_S_UNABLE_TO_DELETE_FILES if a temporary file could not be deleted.
        """
        return await self._engine._cancel(self.id)

    async def complete(self) -> int:
        """Move finished files to their final names and end the job (Complete).

        Returns:
            S_OK, or BG_S_PARTIAL_COMPLETE when some files had not finished (they are deleted).
        """
        return await self._engine._complete(self.id)

    async def wait(
        self, states: Iterable[JobState] | JobState, timeout: float | None = None
    ) -> JobState:
        """Wait until the job is in one of ``states`` and return that state.

        Raises:
            TimeoutError: ``timeout`` seconds (real time) passed first.
            InvalidArgumentError: ``states`` is not a JobState or an iterable of JobState
                values, or ``timeout`` is neither None nor a number (NaN is none).
        """
        return await self._engine._wait(self.id, states, timeout)

    # -- state and progress ----------------------------------------------------------------

    async def snapshot(self) -> JobSnapshot:
        """Everything about the job that may be shown, read at one moment: state, progress,
        times, error and every property except credentials."""
        return self._engine.snapshot(self.id)

    async def get_state(self) -> JobState:
        """The job's state (GetState)."""
        return self._engine._record(self.id).state

    async def get_type(self) -> JobType:
        """The job's type (GetType)."""
        return self._engine._record(self.id).type

    async def get_progress(self) -> JobProgress:
        """Bytes and files transferred so far (GetProgress)."""
        return self._engine._progress(self.id)

    async def get_times(self) -> JobTimes:
        """Creation, modification and transfer-completion times (GetTimes)."""
        return self._engine._times(self.id)

    async def get_error(self) -> ErrorInfo:
        """The error that put the job in ERROR or TRANSIENT_ERROR (GetError).

        Raises:
            ErrorInfoUnavailableError: the job is in neither state.
        """
        return self._engine._error_info(self.id)

    async def get_error_count(self) -> int:
        """How many errors the job has had (GetErrorCount)."""
        return self._engine._record(self.id).error_count

    # -- properties ------------------------------------------------------------------------

    async def set_priority(self, priority: Priority) -> None:
        """Set the priority (SetPriority); the default is NORMAL.

        Raises:
            NotSupportedError: an integer that is no priority (E_NOTIMPL, as in BITS).
            InvalidArgumentError: not an integer (a bool, a float, a name).
        """
        await self._engine._set(self.id, priority=priority)

    async def get_priority(self) -> Priority:
        return self._engine._record(self.id).priority

    async def set_display_name(self, name: str) -> None:
        """Set the display name (SetDisplayName); it need not be unique."""
        await self._engine._set(self.id, display_name=name)

    async def get_display_name(self) -> str:
        return self._engine._record(self.id).display_name

    async def set_description(self, description: str) -> None:
        """Set the description, at most 1,024 characters (SetDescription)."""
        await self._engine._set(self.id, description=description)

    async def get_description(self) -> str:
        return self._engine._record(self.id).description

    async def set_minimum_retry_delay(self, seconds: float) -> None:
        """Seconds before a transient error is retried; values under 5 become 5."""
        await self._engine._set(self.id, minimum_retry_delay=seconds)

    async def get_minimum_retry_delay(self) -> float:
        return self._engine._record(self.id).minimum_retry_delay

    async def set_no_progress_timeout(self, seconds: float) -> None:
        """Seconds without progress after which a transient error becomes fatal; 0 makes every
        error fatal."""
        await self._engine._set(self.id, no_progress_timeout=seconds)

    async def get_no_progress_timeout(self) -> float:
        return self._engine._record(self.id).no_progress_timeout

    async def set_maximum_download_time(self, seconds: float) -> None:
        """Seconds the job may spend CONNECTING or TRANSFERRING before it fails with
        BG_E_MAXDOWNLOAD_TIMEOUT; 0 removes the limit (SetMaximumDownloadTime)."""
        await self._engine._set(self.id, maximum_download_time=seconds)

    async def get_maximum_download_time(self) -> float:
        return self._engine._record(self.id).maximum_download_time

    async def set_dynamic_content(self, enabled: bool) -> None:
        """Download without ranges, from zero on every try (BITS_JOB_PROPERTY_DYNAMIC_CONTENT);
        only before the first Resume. ``enabled`` is a bool (E_INVALIDARG otherwise)."""
        await self._engine._set(self.id, dynamic_content=enabled)

    async def get_dynamic_content(self) -> bool:
        return self._engine._record(self.id).dynamic_content

    async def set_on_demand(self, enabled: bool) -> None:
        """On-demand mode (BITS_JOB_PROPERTY_ON_DEMAND_MODE): files are fetched by the ranges
        asked with ``request_file_ranges``; a Resume with none asked fills the gaps from the
        download position. Download jobs of http(s) files only, without dynamic content,
        custom HTTP method or file ranges; only before the first Resume. ``enabled`` is a bool
        (E_INVALIDARG otherwise)."""
        await self._engine._set(self.id, on_demand=enabled)

    async def get_on_demand(self) -> bool:
        return self._engine._record(self.id).on_demand

    async def set_notify_flags(self, flags: NotifyFlags | int) -> None:
        """Which events notify (SetNotifyFlags); the default is JOB_TRANSFERRED | JOB_ERROR.

        Raises:
            NotSupportedError: bits outside the BG_NOTIFY_* flags (E_NOTIMPL, as in BITS).
            InvalidArgumentError: not an integer (a bool is none).
        """
        await self._engine._set(self.id, notify_flags=flags)

    async def get_notify_flags(self) -> NotifyFlags:
        return self._engine._record(self.id).notify_flags

    async def set_notify_interface(self, callback: object | None) -> None:
        """Register the object whose ``job_error``, ``job_transferred``, ``job_modification``,
        ``file_transferred`` and ``file_ranges_transferred`` methods are called
        (SetNotifyInterface); None clears it. It lives as long as this process: it is not
        persisted."""
        await self._engine._set_notify_interface(self.id, callback)

    async def get_notify_interface(self) -> object | None:
        return self._engine._notify_interface(self.id)

    async def set_notify_cmd_line(self, program: str | None, parameters: str | None = None) -> None:
        """The program to run when the job is TRANSFERRED or in ERROR (SetNotifyCmdLine).

        Args:
            program: absolute path of the program; None (with parameters None) removes it.
            parameters: the whole command line, whose first token is the program's name; None
                runs the program with no arguments.
        """
        await self._engine._set_notify_cmd_line(self.id, program, parameters)

    async def get_notify_cmd_line(self) -> tuple[str | None, str | None]:
        record = self._engine._record(self.id)
        return (record.notify_program, record.notify_parameters)

    async def set_maximum_download_size(self, size: int | None) -> None:
        """Bytes the job may download in all; None removes the limit; only before the first
        Resume (BITS_JOB_PROPERTY_MAX_DOWNLOAD_SIZE). Exceeding it fails the job with
        BG_E_MAX_DOWNLOAD_SIZE_LIMIT_REACHED."""
        await self._engine._set(self.id, maximum_download_size=size)

    async def get_maximum_download_size(self) -> int | None:
        return self._engine._record(self.id).maximum_download_size

    async def set_custom_headers(self, headers: str | None) -> None:
        r"""Headers sent with every request: ``"Name: value\r\n"`` lines, at most 16,384
        characters; None or "" removes them (SetCustomHeaders)."""
        await self._engine._set(self.id, custom_headers=headers)

    async def get_custom_headers(self) -> str | None:
        """The custom headers, or None (GetCustomHeaders).

        Raises:
            BitsError: E_ACCESSDENIED after ``make_custom_headers_write_only()``.
        """
        return self._engine._custom_headers(self.id)

    async def make_custom_headers_write_only(self) -> None:
        """Make the custom headers unreadable from now on; cannot be undone."""
        await self._engine._make_custom_headers_write_only(self.id)

    async def set_http_method(self, method: str | None) -> None:
        """Use another HTTP verb than GET (SetHttpMethod): the job becomes FOREGROUND for good,
        errors that are normally transient are fatal, and Resume restarts from the beginning.
        Only before the first Resume; not with dynamic content."""
        await self._engine._set(self.id, http_method=method)

    async def get_http_method(self) -> str | None:
        return self._engine._record(self.id).http_method

    async def set_security_flags(self, flags: SecurityFlags | int) -> None:
        """TLS leniency and the redirect policy (SetSecurityFlags)."""
        await self._engine._set(self.id, security_flags=flags)

    async def get_security_flags(self) -> SecurityFlags:
        return SecurityFlags(self._engine._record(self.id).security_flags)

    async def set_proxy_settings(
        self, usage: ProxyUsage, proxy_list: str | None = None, bypass_list: str | None = None
    ) -> None:
        """How requests reach servers (SetProxySettings): PRECONFIG uses the environment's
        http_proxy/https_proxy/no_proxy; NO_PROXY connects directly; OVERRIDE uses
        ``proxy_list`` (space-separated ``[scheme=][scheme://]host[:port]``) except for the
        hosts of ``bypass_list`` (``<local>`` and ``*`` wildcards allowed); AUTODETECT is
        PRECONFIG on Linux."""
        await self._engine._set_proxy_settings(self.id, usage, proxy_list, bypass_list)

    async def get_proxy_settings(self) -> tuple[ProxyUsage, str | None, str | None]:
        record = self._engine._record(self.id)
        return ProxyUsage(record.proxy_usage), record.proxy_list, record.proxy_bypass

    async def set_credentials(
        self, target: AuthTarget, scheme: AuthScheme, user_name: str, password: str
    ) -> None:
        """Credentials given to a server or proxy when it asks for them with this scheme
        (SetCredentials); never sent to another host after a redirect, never logged."""
        await self._engine._set_credentials(self.id, target, scheme, user_name, password)

    async def remove_credentials(self, target: AuthTarget, scheme: AuthScheme) -> int:
        """Forget the credentials of (target, scheme). Returns S_OK, or S_FALSE if none."""
        return await self._engine._remove_credentials(self.id, target, scheme)

    async def set_ca_bundle(self, path: str | None) -> None:
        """A PEM file of CA certificates to trust instead of the system store (bitsd's form of
        a certificate store); None returns to the system store."""
        await self._engine._set(self.id, ca_bundle=path)

    async def get_ca_bundle(self) -> str | None:
        return self._engine._record(self.id).ca_bundle

    async def set_client_certificate(self, certificate: str, key: str | None = None) -> None:
        """A client certificate (PEM file, with its key inside or in ``key``)."""
        await self._engine._set(self.id, client_certificate=certificate, client_key=key)

    async def remove_client_certificate(self) -> None:
        await self._engine._set(self.id, client_certificate=None, client_key=None)

    async def get_client_certificate(self) -> tuple[str, str | None] | None:
        record = self._engine._record(self.id)
        if record.client_certificate is None:
            return None
        return record.client_certificate, record.client_key

    async def set_transfer_policy(self, policy: CostStates | int) -> None:
        """The network cost states in which the job may transfer (BITS_JOB_PROPERTY_ID_COST_FLAGS);
        the default is TRANSFER_STANDARD."""
        await self._engine._set(self.id, transfer_policy=policy)

    async def get_transfer_policy(self) -> CostStates:
        return CostStates(self._engine._record(self.id).transfer_policy)

    async def set_bandwidth_limit(self, bytes_per_second: int | None) -> None:
        """A bitsd extension: the most this job may transfer per second; None for no limit."""
        await self._engine._set(self.id, bandwidth_limit=bytes_per_second)

    async def get_bandwidth_limit(self) -> int | None:
        return self._engine._record(self.id).bandwidth_limit

    async def get_owner(self) -> int:
        """The uid of the job's owner (GetOwner)."""
        return self._engine.owner_uid

    # -- upload-reply jobs (docs/uploads.md) -----------------------------------------------

    async def set_reply_file_name(self, path: str | None) -> None:
        """Where the reply of an upload-reply job goes (IBackgroundCopyJob2::SetReplyFileName).
        Unless set before the first Resume, bitsd names it after the upload file, in its
        folder. The file appears there on ``complete()``.

        Args:
            path: an absolute path in an existing writable folder; None returns to the
                generated name.

        Raises:
            NotSupportedError: not an upload-reply job (E_NOTIMPL).
            InvalidStateError: the reply's download has begun (BG_E_INVALID_STATE).
            InvalidArgumentError, BitsError: a bad path, as for ``add_file``'s local name.
        """
        await self._engine._uploads.set_reply_file_name(self.id, path)

    async def get_reply_file_name(self) -> str | None:
        """The reply file's name, or None before it is set or generated
        (IBackgroundCopyJob2::GetReplyFileName). Raises NotSupportedError (E_NOTIMPL) for
        other job types."""
        return self._engine._uploads.reply_file_name(self.id)

    async def get_reply_progress(self) -> ReplyProgress:
        """The reply's progress (IBackgroundCopyJob2::GetReplyProgress): ``bytes_total`` is
        ``SIZE_UNKNOWN`` until the upload part is done; an error while it is known belongs to
        the reply. Raises NotSupportedError (E_NOTIMPL) for other job types."""
        return self._engine._uploads.reply_progress(self.id)

    async def get_reply_data(self) -> bytes:
        """The reply, in memory (IBackgroundCopyJob2::GetReplyData); b"" when the server
        application sent none. Works in TRANSFERRED and after ``complete()``.

        Raises:
            NotSupportedError: not an upload-reply job (E_NOTIMPL).
            InvalidStateError: the job is not TRANSFERRED (BG_E_INVALID_STATE).
            BitsError: BG_E_TOO_LARGE for a reply over 1 MiB (read the reply file instead).
        """
        return await self._engine._uploads.reply_data(self.id)
