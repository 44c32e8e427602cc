"""Upload and upload-reply jobs: the engine's rules for them, their runs and their cancels.

Rules (bits-inventory §1.4 and §6, bits-upload-protocol; docs/uploads.md):
- A job has exactly one file (a second is BG_E_TOO_MANY_FILES): an http(s) remote name and an
  existing readable local file. AddFileWithRanges, ReplaceRemotePrefix and the download-only
  properties answer E_NOTIMPL / BG_E_PROPERTY_SUPPORTED_FOR_DOWNLOAD_JOBS_ONLY.
- The first Resume records the file's size and modification time; a run that finds them
  changed fails with BG_E_LOCAL_FILE_CHANGED in LOCAL_FILE (fatal).
- A run does what is left, in order: the fragments (``bitsd._transfer.upload``), the reply
  (upload-reply: a download of the reply URL into a temporary file next to the reply file),
  Close-Session; then the job is TRANSFERRED and JobTransferred fires. Every step's progress
  is stored, so a run after a failure or a restart resumes at the step and the offset where
  the last one stopped.
- The reply's total is SIZE_UNKNOWN until the upload part is done, then known (0 until the
  reply's size arrives): an error with a known reply total belongs to the reply.
- Complete: only in TRANSFERRED (BG_E_INVALID_STATE otherwise), no network; the reply file
  appears at its name then (empty when the application sent no reply).
- Cancel: before the upload is done, Cancel-Session; after it, on an upload-reply job,
  Cancel-Session too (it cancels the reply only: the application has the upload); on an upload
  job, Close-Session (the upload stays, as BITS promises). The packet is best effort: tried at
  once, then every minimum retry delay until it arrives or 24 hours (or the no-progress timeout,
  if shorter) have passed; the CANCELLED row stays in the store until then, so a restart
  carries on.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import logging
import os
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from bitsd import codes
from bitsd._enums import ErrorContext, JobState, JobType
from bitsd._errors import (
    BitsError,
    InvalidArgumentError,
    InvalidStateError,
    NotSupportedError,
    TransferError,
)
from bitsd._files import (
    check_local_name,
    delete_quietly,
    name_with_suffix,
    open_temp,
    rename_into_place,
    temp_name_for,
)
from bitsd._model import FileRecord, JobRecord
from bitsd._records import ReplyProgress
from bitsd._sink import Throttle
from bitsd._state import Event
from bitsd._text import check_text
from bitsd._transfer import classify
from bitsd._transfer.base import FileRequest, HttpOptions
from bitsd._transfer.upload import (
    CloseOutcome,
    Session,
    UploadClient,
    UploadRequest,
    source_validator,
)
from bitsd._urls import RemoteKind, check_remote_name, remote_kind

if TYPE_CHECKING:
    from bitsd._engine import Engine
    from bitsd._policy import EngineConfig

__all__ = ["CANCEL_RETRY_PERIOD", "MAX_REPLY_DATA", "Uploads", "check_download_only"]

log = logging.getLogger("bitsd.engine")

# Bytes: the most get_reply_data() returns (GetReplyData: "1 MB"; BG_E_TOO_LARGE above).
MAX_REPLY_DATA = 1024 * 1024
# Seconds a cancelled upload's Cancel-Session is retried at most (IBackgroundCopyJob::Cancel:
# "periodically for up to 24 hours", or the no-progress timeout if shorter).
CANCEL_RETRY_PERIOD = 86_400.0
# Properties that only download jobs have (BITS_JOB_PROPERTY_* "for download jobs only").
_DOWNLOAD_ONLY = ("dynamic_content", "maximum_download_size", "http_method", "on_demand")
# Times the upload is sent again in one run when the server lost it before Close-Session.
_MAX_UPLOAD_RESTARTS = 1


def is_upload(job: JobRecord) -> bool:
    """Whether ``job`` is an upload or upload-reply job."""
    return job.type is not JobType.DOWNLOAD


def check_download_only(name: str, value: Any) -> None:
    """Refuse a download-only property set on an upload job, BG_E_PROPERTY_SUPPORTED_FOR_
    DOWNLOAD_JOBS_ONLY (its default passes: off, no limit, GET). The engine's setters and the
    daemon's check of a whole PATCH body both ask here."""
    default = value in (None, False) or (isinstance(value, str) and value.upper() == "GET")
    if name in _DOWNLOAD_ONLY and not default:
        raise BitsError(
            f"{name.replace('_', ' ')} is a property of download jobs",
            hresult=codes.BG_E_PROPERTY_SUPPORTED_FOR_DOWNLOAD_JOBS_ONLY,
        )


def default_reply_file_name(upload_file: str, job_id: str) -> str:
    """The reply file BITS-style: in the upload file's folder, named after it and the job
    (``NAME.JOBID.reply``; a long NAME is cut so the reply's name stays within NAME_MAX)."""
    return name_with_suffix(upload_file, f".{job_id.replace('-', '')}.reply")


def reply_temp_name(job: JobRecord) -> str | None:
    """The temporary file of a job's reply, beside the reply file."""
    if job.reply_file_name is None:
        return None
    return temp_name_for(job.reply_file_name, job.id, 1)


def _session_of(job: JobRecord) -> Session:
    return Session(
        job.upload_session_id,
        job.upload_host_id,
        job.upload_host_fallback,
        job.upload_host_error_time,
        job.upload_close_sent,
    )


def _session_fields(session: Session) -> dict[str, Any]:
    return {
        "upload_session_id": session.id,
        "upload_host_id": session.host_id,
        "upload_host_fallback": session.host_fallback,
        "upload_host_error_time": session.host_error_time,
        "upload_close_sent": session.close_sent,
    }


def _cancel_packet(job: JobRecord, files: Sequence[FileRecord]) -> str | None:
    """What a cancel sends: nothing without a session (never created, or closed), else
    Cancel-Session, except for an upload whose last byte the server acknowledged: its
    Close-Session keeps the upload (Cancel has no effect on a successful upload)."""
    if job.upload_session_id is None:
        return None
    if job.type is JobType.UPLOAD and files and files[0].completed:
        return "Close-Session"
    return "Cancel-Session"


class Uploads:
    """The upload half of an :class:`~bitsd._engine.Engine`.

    Args:
        engine: the engine (its records, store, funnel and transports).
        options_of: a job's HTTP options.
    """

    def __init__(self, engine: Engine, options_of: Callable[[JobRecord], HttpOptions]) -> None:
        self._engine = engine
        self._options_of = options_of
        config = engine.config
        self._client = UploadClient(
            engine._session,
            engine.clock,
            connect_timeout=config.connect_timeout,
            read_timeout=config.read_timeout,
            chunk_size=config.chunk_size,
        )
        self._fragment_sizes: dict[str, int] = {}  # learned from 413s, per job
        self._cancels: dict[str, asyncio.Task[None]] = {}

    def retune(self, config: EngineConfig) -> None:
        """Use the network settings of ``config`` (reconfigured) from the next request on."""
        self._client.retune(
            chunk_size=config.chunk_size,
            connect_timeout=config.connect_timeout,
            read_timeout=config.read_timeout,
        )

    async def close(self) -> None:
        """Stop the cancels in progress; their rows stay, the next start goes on with them."""
        for task in list(self._cancels.values()):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._cancels.clear()

    # -- caller rules ----------------------------------------------------------------------

    async def add_files(
        self,
        job_id: str,
        pairs: Sequence[tuple[str, str]],
        *,
        sha256: str | None,
        ranges: Iterable[tuple[int, int]] | None,
    ) -> None:
        """AddFile / AddFileSet / AddFileWithRanges on an upload job."""
        engine = self._engine
        job = engine._live(job_id)
        if ranges is not None:
            raise NotSupportedError("an upload job has no file ranges")
        if sha256 is not None:
            raise NotSupportedError("a SHA-256 is checked on downloaded files only")
        if not pairs:
            raise InvalidArgumentError("no files given")
        existing = engine._files[job_id]
        if len(existing) + len(pairs) > 1:
            raise BitsError("an upload job has exactly one file", hresult=codes.BG_E_TOO_MANY_FILES)
        remote, local = pairs[0]  # strings: the engine's _file_pairs checked them
        remote = check_remote_name(remote)
        if remote_kind(remote) is not RemoteKind.HTTP:
            raise InvalidArgumentError(f"an upload goes to an http:// or https:// URL: {remote!r}")
        local, size = _upload_source(local)
        record = FileRecord(
            job_id=job_id,
            index=0,
            remote_name=remote,
            local_name=local,
            temp_name="",  # an upload has no temporary file
            bytes_total=size,
        )
        new = dataclasses.replace(
            job,
            modification_time=engine.clock.wall(),
            last_activity_at=engine.clock.monotonic(),
        )
        engine._store.put_job(engine._to_disk(new), [record])
        engine._jobs[job_id] = new
        engine._files[job_id] = [record]
        engine._after(job, new)
        engine._emit(job_id, "files")

    def before_resume(self, job_id: str) -> None:
        """Resume: the first one records the file's size and time and the reply file name."""
        engine = self._engine
        job = engine._jobs[job_id]
        record = engine._files[job_id][0]
        if record.validator is None:
            with contextlib.suppress(OSError):  # the run reports what is wrong
                stat = os.stat(record.local_name)
                engine._file_changed(
                    dataclasses.replace(
                        record, validator=source_validator(stat), bytes_total=stat.st_size
                    ),
                    durable=True,
                )
        if job.type is JobType.UPLOAD_REPLY and job.reply_file_name is None:
            self._update(
                job_id,
                durable=True,
                reply_file_name=default_reply_file_name(record.local_name, job_id),
            )

    async def set_reply_file_name(self, job_id: str, path: str | None) -> None:
        """SetReplyFileName."""
        engine = self._engine
        job = engine._live(job_id)
        if path is not None and not isinstance(path, str):  # the value first, as the daemon
            raise InvalidArgumentError("the reply file name must be a string or None")
        _reply_job(job)
        if job.reply_bytes_total is not None:
            raise InvalidStateError("the reply is being or has been downloaded; its name stays")
        files = engine._files[job_id]
        if path is None:
            name = None
            if job.ever_resumed and files:
                name = default_reply_file_name(files[0].local_name, job_id)
        else:
            name = check_local_name(path)
            if files and _same_path(name, files[0].local_name):
                raise InvalidArgumentError("the reply file cannot be the file to upload")
        await engine._set(job_id, reply_file_name=name)

    def reply_file_name(self, job_id: str) -> str | None:
        """GetReplyFileName: None before it is set or generated (the first Resume)."""
        job = self._engine._record(job_id)
        _reply_job(job)
        return job.reply_file_name

    def reply_progress(self, job_id: str) -> ReplyProgress:
        """GetReplyProgress."""
        job = self._engine._record(job_id)
        _reply_job(job)
        total = codes.SIZE_UNKNOWN if job.reply_bytes_total is None else job.reply_bytes_total
        return ReplyProgress(total, job.reply_bytes_transferred)

    async def reply_data(self, job_id: str) -> bytes:
        """GetReplyData: in TRANSFERRED (from the temporary file) or after Complete (from the
        reply file), at most :data:`MAX_REPLY_DATA` bytes."""
        job = self._engine._record(job_id)
        _reply_job(job)
        if job.state is JobState.TRANSFERRED:
            path = reply_temp_name(job)
        elif job.state is JobState.ACKNOWLEDGED:
            path = job.reply_file_name
        else:
            raise InvalidStateError(
                f"the job is {job.state}; the reply is there once the job is TRANSFERRED"
            )
        size = job.reply_bytes_total or 0
        if size > MAX_REPLY_DATA:
            raise BitsError(
                f"the reply has {size} bytes; get_reply_data() returns at most "
                f"{MAX_REPLY_DATA}: read the reply file after complete()",
                hresult=codes.BG_E_TOO_LARGE,
            )
        if size == 0 or path is None:
            return b""
        try:
            return await asyncio.to_thread(_read_at_most, path, MAX_REPLY_DATA + 1)
        except OSError as exc:
            raise BitsError(
                f"cannot read the reply {path}: {exc.strerror}",
                hresult=codes.hresult_from_errno(exc.errno or 0),
            ) from exc

    async def complete(self, job_id: str) -> int:
        """Complete: TRANSFERRED only, no network; the reply file appears at its name."""
        engine = self._engine
        job = engine._live(job_id)
        if job.state is not JobState.TRANSFERRED:
            raise InvalidStateError(
                f"the job is {job.state}; an upload job can be completed only when TRANSFERRED"
            )
        if job.type is JobType.UPLOAD_REPLY and job.reply_file_name is not None:
            temp = reply_temp_name(job)
            assert temp is not None
            try:
                await asyncio.to_thread(
                    _place_reply, temp, job.reply_file_name, empty=not job.reply_bytes_total
                )
            except OSError as exc:
                raise BitsError(
                    f"cannot move the reply to {job.reply_file_name}: {exc.strerror}",
                    hresult=codes.hresult_from_errno(exc.errno or 0),
                ) from exc
        engine._transition(job_id, Event.COMPLETE)
        engine._store.delete_job(job_id)
        return codes.S_OK

    async def cancel(self, job_id: str) -> int:
        """Cancel: the job ends at once; the server hears of it as soon as it can."""
        engine = self._engine
        engine._live(job_id)
        await engine._stop_run(job_id)
        job = engine._live(job_id)
        files = list(engine._files[job_id])
        packet = _cancel_packet(job, files)
        until = None
        if packet is not None:
            until = engine.clock.wall() + min(CANCEL_RETRY_PERIOD, job.no_progress_timeout)
        engine._transition(job_id, Event.CANCEL, upload_cancel_until_time=until)
        self._fragment_sizes.pop(job_id, None)
        temp = reply_temp_name(job)
        ok = temp is None or delete_quietly(temp)
        if packet is None:
            engine._store.delete_job(job_id)
        else:
            self._start_cancel(engine._final[job_id], files, packet)
        return codes.S_OK if ok else codes.BG_S_UNABLE_TO_DELETE_FILES

    def recover_cancelled(self, job: JobRecord, files: Sequence[FileRecord]) -> None:
        """At start-up: a CANCELLED row left by a cancel whose packet had not arrived."""
        temp = reply_temp_name(job)
        if temp is not None:
            delete_quietly(temp)
        packet = _cancel_packet(job, files)
        until = job.upload_cancel_until_time
        if packet is None or until is None or self._engine.clock.wall() >= until:
            self._engine._store.delete_job(job.id)
            return
        self._start_cancel(job, files, packet)

    # -- runs ------------------------------------------------------------------------------

    async def run(self, job_id: str) -> None:
        """The task of one run of an upload job (the counterpart of ``Engine._run_job``)."""
        engine = self._engine
        try:
            await asyncio.sleep(0)  # let _start_run finish its transition first
            await self._run(job_id)
        except TransferError as err:
            engine._fail(job_id, err, 0)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("job %s: unexpected failure", job_id)
            engine._fail(
                job_id,
                TransferError(
                    codes.E_FAIL,
                    ErrorContext.GENERAL_QUEUE_MANAGER,
                    transient=False,
                    message=f"internal error: {exc!r}",
                ),
                0,
            )
        finally:
            engine._run_ended(job_id)

    async def _run(self, job_id: str) -> None:
        engine = self._engine
        for _ in range(_MAX_UPLOAD_RESTARTS + 1):
            job = engine._jobs[job_id]
            record = engine._files[job_id][0]
            request = self._request(job, record)
            host = _Host(self, job_id, engine.config.checkpoint_bytes)
            conv = self._client.begin(
                request, _session_of(job), host, fragment_size=self._fragment_sizes.get(job_id)
            )
            if not record.completed:
                try:
                    reply_url = await conv.upload(record.bytes_transferred)
                finally:
                    self._fragment_sizes[job_id] = conv.fragment_size
                    host.flush()
                self._uploaded(job_id, reply_url)
            job = engine._jobs[job_id]
            if job.type is JobType.UPLOAD_REPLY and not job.reply_completed:
                await self._fetch_reply(job_id)
            if engine._jobs[job_id].upload_session_id is not None:
                if await conv.close() is CloseOutcome.LOST and job.type is JobType.UPLOAD:
                    # The server dropped the session before our first Close: upload again.
                    self._restart(job_id)
                    continue
                self._update(job_id, durable=True, **_session_fields(Session()))
            engine._notifier.file_transferred(job_id, engine._file_info(engine._files[job_id][0]))
            engine._transition(
                job_id,
                Event.ALL_TRANSFERRED,
                transfer_completion_time=engine.clock.wall(),
                no_progress_since=None,
            )
            return
        raise classify.from_upload_ack(
            500,
            {"BITS-Error-Code": f"0x{codes.BG_E_SESSION_NOT_FOUND:08X}"},
            url=engine._files[job_id][0].remote_name,
            now_wall=engine.clock.wall(),
            packet="Close-Session",
        )

    def _request(self, job: JobRecord, record: FileRecord) -> UploadRequest:
        validator = record.validator
        if validator is None:
            # The first Resume could not see the file; the first run that can records it.
            try:
                stat = os.stat(record.local_name)
            except OSError as exc:
                raise classify.from_local_os_error(exc, local_name=record.local_name) from exc
            validator = source_validator(stat)
            record = dataclasses.replace(record, validator=validator, bytes_total=stat.st_size)
            self._engine._file_changed(record, durable=True)
        assert record.bytes_total is not None
        return UploadRequest(
            record.remote_name,
            record.local_name,
            record.bytes_total,
            validator,
            reply=job.type is JobType.UPLOAD_REPLY,
            options=self._options_of(job),
        )

    def _uploaded(self, job_id: str, reply_url: str | None) -> None:
        """The server acknowledged the last byte: the upload part is done."""
        engine = self._engine
        record = engine._files[job_id][0]
        engine._file_changed(
            dataclasses.replace(record, completed=True, bytes_transferred=record.bytes_total or 0),
            durable=True,
        )
        job = engine._jobs[job_id]
        if job.type is not JobType.UPLOAD_REPLY:
            return
        # From here on the reply's total is known: errors belong to the reply.
        self._update(
            job_id,
            durable=True,
            reply_bytes_total=0,
            reply_bytes_transferred=0,
            reply_url=reply_url or None,
            reply_validator=None,
            reply_completed=reply_url == "",
        )
        if reply_url is None:
            raise classify.invalid_upload_ack(
                record.remote_name,
                "the last Ack of an upload-reply job has no BITS-Reply-URL",
                transient=False,
            )

    def _restart(self, job_id: str) -> None:
        """Forget a session the server lost, and the bytes it held."""
        engine = self._engine
        record = engine._files[job_id][0]
        engine._file_changed(
            dataclasses.replace(record, completed=False, bytes_transferred=0), durable=True
        )
        self._update(job_id, durable=True, **_session_fields(Session()))

    async def _fetch_reply(self, job_id: str) -> None:
        """Download the reply (GET with ranges, resumable) into its temporary file."""
        engine = self._engine
        job = engine._jobs[job_id]
        if job.reply_url is None:
            raise classify.invalid_upload_ack(
                engine._files[job_id][0].remote_name,
                "the server sent no BITS-Reply-URL for this upload-reply job",
                transient=False,
            )
        temp = reply_temp_name(job)
        assert temp is not None
        options = dataclasses.replace(self._options_of(job), method="GET")
        if not _same_origin(job.reply_url, engine._files[job_id][0].remote_name):
            # The job's credentials belong to the upload's server, not to where it points.
            options = dataclasses.replace(options, credentials=())
        sink = _ReplySink(self, job_id, temp, engine._bandwidth.pacer(job_id))
        try:
            held = job.reply_bytes_transferred > 0
            await engine._http.fetch(
                FileRequest(
                    job.reply_url,
                    sink.offset,
                    job.reply_bytes_total if held else None,
                    job.reply_validator if held else None,
                    options=options,
                ),
                sink,
            )
            await sink.finish()
        finally:
            sink.close()

    # -- cancels ---------------------------------------------------------------------------

    def _start_cancel(self, job: JobRecord, files: Sequence[FileRecord], packet: str) -> None:
        task = asyncio.create_task(
            self._deliver_cancel(job, files, packet), name=f"bitsd-cancel-{job.id}"
        )
        self._cancels[job.id] = task
        task.add_done_callback(lambda _t: self._cancels.pop(job.id, None))

    async def _deliver_cancel(
        self, job: JobRecord, files: Sequence[FileRecord], packet: str
    ) -> None:
        engine = self._engine
        assert job.upload_cancel_until_time is not None
        record = files[0]
        request = UploadRequest(
            record.remote_name,
            record.local_name,
            record.bytes_total or 0,
            record.validator or "",
            reply=job.type is JobType.UPLOAD_REPLY,
            options=self._options_of(job),
        )
        session = _session_of(job)
        while True:
            conv = self._client.begin(request, session, _CancelHost())
            if await conv.cancel(packet):
                log.info("job %s: %s delivered", job.id, packet)
                break
            session = conv.session
            delay = job.minimum_retry_delay
            if engine.clock.wall() + delay >= job.upload_cancel_until_time:
                log.info("job %s: %s not delivered; given up", job.id, packet)
                break
            await engine.clock.sleep_until(engine.clock.monotonic() + delay)
        engine._store.delete_job(job.id)

    # -- records ---------------------------------------------------------------------------

    def _update(self, job_id: str, *, durable: bool, **changes: Any) -> JobRecord:
        """Change a job's upload fields (never its state); stored at once if ``durable``."""
        engine = self._engine
        new = dataclasses.replace(engine._jobs[job_id], **changes)
        engine._jobs[job_id] = new
        if durable:
            engine._store.put_job(engine._to_disk(new))
        return new


class _Host:
    """A run's :class:`~bitsd._transfer.upload.UploadHost`: persists the session at once and
    the acknowledged offset at checkpoints (the server's count is the truth: a run after a
    crash asks for the rest from the stored offset and the server corrects it)."""

    def __init__(self, uploads: Uploads, job_id: str, checkpoint_bytes: int) -> None:
        self._uploads = uploads
        self._engine = uploads._engine
        self._job_id = job_id
        self._every = checkpoint_bytes
        self._stored = self._engine._files[job_id][0].bytes_transferred
        self._throttle = self._engine._bandwidth.pacer(job_id)

    def session_changed(self, session: Session) -> None:
        self._uploads._update(self._job_id, durable=True, **_session_fields(session))

    def acknowledged(self, offset: int) -> None:
        engine = self._engine
        record = engine._files[self._job_id][0]
        advanced = offset > record.bytes_transferred
        durable = offset in (0, record.bytes_total) or abs(offset - self._stored) >= self._every
        engine._file_changed(dataclasses.replace(record, bytes_transferred=offset), durable=durable)
        if durable:
            self._stored = offset
        if advanced:
            engine._made_progress(self._job_id)

    def flush(self) -> None:
        """Store the last acknowledged offset (the run ends)."""
        files = self._engine._files.get(self._job_id)
        if files and files[0].bytes_transferred != self._stored:
            self._engine._file_changed(files[0], durable=True)
            self._stored = files[0].bytes_transferred

    def connected(self) -> None:
        self._engine._connected(self._job_id)

    async def pace(self, count: int) -> None:
        await self._throttle.pace(count)


class _CancelHost:
    """The host of a cancel's conversation: the job is gone, nothing is recorded."""

    def session_changed(self, session: Session) -> None:
        pass

    def acknowledged(self, offset: int) -> None:
        pass

    def connected(self) -> None:
        pass

    async def pace(self, count: int) -> None:
        pass


class _ReplySink:
    """The reply's temporary file during its download: the :class:`~bitsd._transfer.base.Sink`
    of ``HttpTransport.fetch``, with the reply progress in the job's record."""

    def __init__(self, uploads: Uploads, job_id: str, temp: str, throttle: Throttle) -> None:
        self._uploads = uploads
        self._engine = uploads._engine
        self._job_id = job_id
        self._temp = temp
        self._throttle = throttle
        job = self._engine._jobs[job_id]
        self._name = job.reply_file_name or temp
        try:
            self._fd, self._offset = open_temp(temp, job.reply_bytes_transferred)
        except OSError as exc:
            raise classify.from_local_os_error(exc, local_name=self._name) from exc
        if self._offset != job.reply_bytes_transferred:
            self._update(durable=True, reply_bytes_transferred=self._offset, reply_validator=None)
        self._stored = self._offset
        self._closed = False

    @property
    def offset(self) -> int:
        return self._offset

    @property
    def local_name(self) -> str:
        return self._name

    @property
    def fd(self) -> int:
        return self._fd

    def _update(self, *, durable: bool, **changes: Any) -> None:
        self._uploads._update(self._job_id, durable=durable, **changes)

    async def begin(self, *, bytes_total: int | None, validator: str | None, restart: bool) -> None:
        if restart:
            self._local(os.ftruncate, self._fd, 0)
            self._local(os.lseek, self._fd, 0, os.SEEK_SET)
            self._offset = self._stored = 0
        total = self._engine._jobs[self._job_id].reply_bytes_total
        self._update(
            durable=True,
            reply_bytes_total=total if bytes_total is None else bytes_total,
            reply_bytes_transferred=self._offset,
            reply_validator=validator,
        )
        self._engine._connected(self._job_id)

    async def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            piece, view = view[: 1024 * 1024], view[1024 * 1024 :]
            await self._throttle.pace(len(piece))
            while piece:
                written = self._local(os.write, self._fd, piece)
                piece = piece[written:]
        await self._advance(len(data))

    async def advance(self, count: int) -> None:
        await self._advance(count)
        await self._throttle.pace(count)

    async def _advance(self, count: int) -> None:
        self._throttle.count(count)
        self._offset += count
        durable = self._offset - self._stored >= self._engine.config.checkpoint_bytes
        if durable:
            await asyncio.to_thread(self._local, os.fsync, self._fd)
            self._stored = self._offset
        self._update(durable=durable, reply_bytes_transferred=self._offset)
        self._engine._made_progress(self._job_id)

    async def finish(self) -> None:
        """The whole reply is here: make it durable and mark it complete."""
        await asyncio.to_thread(self._local, os.fsync, self._fd)
        self._stored = self._offset
        self._update(
            durable=True,
            reply_bytes_total=self._offset,
            reply_bytes_transferred=self._offset,
            reply_completed=True,
        )

    def close(self) -> None:
        """Store what is written (the download stopped) and close the file."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._offset != self._stored and self._job_id in self._engine._jobs:
                os.fsync(self._fd)
                self._update(durable=True, reply_bytes_transferred=self._offset)
        except OSError:
            log.warning("could not checkpoint %s", self._temp, exc_info=True)
        finally:
            os.close(self._fd)

    def _local(self, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except OSError as exc:
            raise classify.from_local_os_error(exc, local_name=self._name) from exc


def _reply_job(job: JobRecord) -> None:
    if job.type is not JobType.UPLOAD_REPLY:
        raise NotSupportedError(f"only upload-reply jobs have a reply; this one is {job.type}")


def _upload_source(local: str) -> tuple[str, int]:
    """Validate the file to upload: an absolute path of an existing, readable regular file.
    Returns the normalised path and the file's size."""
    if not local or "\x00" in local or not os.path.isabs(local):
        raise InvalidArgumentError(f"the local name must be an absolute path: {local!r}")
    path = os.path.normpath(check_text("local name", local))
    try:
        stat = os.stat(path)
    except OSError as exc:
        raise BitsError(
            f"cannot upload {path}: {exc.strerror}",
            hresult=codes.hresult_from_errno(exc.errno or errno.ENOENT),
        ) from None
    if not os.path.isfile(path):
        raise InvalidArgumentError(f"the file to upload is not a regular file: {path}")
    if not os.access(path, os.R_OK):
        raise BitsError(f"cannot read the file to upload {path}", hresult=codes.E_ACCESSDENIED)
    return path, stat.st_size


def _same_path(a: str, b: str) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)


def _same_origin(a: str, b: str) -> bool:
    from urllib.parse import urlsplit

    pa, pb = urlsplit(a), urlsplit(b)
    return (pa.scheme.lower(), pa.hostname, pa.port) == (pb.scheme.lower(), pb.hostname, pb.port)


def _read_at_most(path: str, limit: int) -> bytes:
    with open(path, "rb") as f:
        return f.read(limit)


def _place_reply(temp: str, reply_file: str, *, empty: bool) -> None:
    """Move the reply to its name; an empty reply that never had a file becomes an empty
    file."""
    if empty and not os.path.exists(temp):
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)
        os.close(fd)
    rename_into_place(temp, reply_file)
