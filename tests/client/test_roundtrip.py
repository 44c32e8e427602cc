"""Every job verb through the daemon gives what the in-process engine gives.

Each test runs twice through the ``backend`` fixture: once on ``bitsd.aio.Engine`` in this
process, once on ``bitsd.aio.connect()`` to a real daemon process. The test body, and so the
expected records, exceptions and HRESULTs, are the same for both.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Awaitable
from pathlib import Path

import pytest

from bitsd import (
    SIZE_UNKNOWN,
    BitsError,
    EmptyJobError,
    ErrorContext,
    ErrorInfoUnavailableError,
    FileInfo,
    InvalidArgumentError,
    InvalidStateError,
    JobProgress,
    JobState,
    JobType,
    NotFoundError,
    NotifyFlags,
    NotSupportedError,
    Priority,
    ReadOnlyPropertyError,
    codes,
)
from bitsd.aio import Manager
from tests.client.conftest import AnyJob, Backend
from tests.servers.faulty import Fault, FaultServer

pytestmark = pytest.mark.e2e  # every test here talks to a real daemon process

DONE = (JobState.TRANSFERRED, JobState.ERROR)


def body(size: int, seed: int = 1) -> bytes:
    """``size`` bytes of deterministic content."""
    import random

    return random.Random(seed).randbytes(size)


def unique_path(name: str) -> str:
    """A path on the shared server that no other test uses."""
    return f"/{name}/{uuid.uuid4().hex}"


async def raised(call: Awaitable[object]) -> tuple[type[BaseException], int]:
    """The exception class and HRESULT that ``call`` raises."""
    try:
        await call
    except BitsError as exc:
        return type(exc), exc.hresult
    raise AssertionError("nothing was raised")


async def test_download_is_transferred_then_completed_byte_identical(
    backend: Backend, server: FaultServer, dest: Path
) -> None:
    """A download reaches TRANSFERRED with full progress; complete() returns S_OK, the file
    is byte-identical, and the handle still answers getters as ACKNOWLEDGED while the job has
    left jobs() and get_job()."""
    data = body(300_000)
    path = unique_path("rt")
    server.add(path, data)
    job = await backend.create_job("round trip")
    await job.add_file(server.url(path), str(dest / "f.bin"))
    [before] = await job.files()
    assert (before.remote_name, before.local_name) == (server.url(path), str(dest / "f.bin"))
    assert before.progress.bytes_total == SIZE_UNKNOWN
    assert not before.progress.completed
    await job.resume()

    assert await job.wait(DONE, timeout=15) is JobState.TRANSFERRED
    assert await job.get_progress() == JobProgress(len(data), len(data), 1, 1)
    [after] = await job.files()
    assert after.progress.completed
    times = await job.get_times()
    assert times.transfer_completion_time is not None
    assert times.creation_time <= times.modification_time
    assert await job.complete() == codes.S_OK

    assert (dest / "f.bin").read_bytes() == data
    assert await job.get_state() is JobState.ACKNOWLEDGED
    assert job not in await backend.jobs()
    with pytest.raises(NotFoundError):
        await backend.get_job(job.id)


async def test_a_new_job_has_the_bits_defaults(backend: Backend) -> None:
    """A new job: SUSPENDED download, NORMAL priority, notify flags 3, retry delay 600 s,
    no-progress timeout 14 days, maximum download time 90 days, owned by this uid."""
    job = await backend.create_job("defaults")
    assert await job.get_state() is JobState.SUSPENDED
    assert await job.get_type() is JobType.DOWNLOAD
    assert await job.get_priority() is Priority.NORMAL
    assert await job.get_notify_flags() == NotifyFlags.JOB_TRANSFERRED | NotifyFlags.JOB_ERROR
    assert await job.get_minimum_retry_delay() == 600.0
    assert await job.get_no_progress_timeout() == 1_209_600.0
    assert await job.get_maximum_download_time() == 7_776_000.0
    assert await job.get_dynamic_content() is False
    assert await job.get_display_name() == "defaults"
    assert await job.get_description() == ""
    assert await job.get_notify_cmd_line() == (None, None)
    assert await job.get_notify_interface() is None
    assert await job.get_error_count() == 0
    assert await job.get_owner() == os.getuid()
    assert await job.get_progress() == JobProgress(0, 0, 0, 0)
    assert await job.files() == []
    await job.cancel()


async def test_every_property_round_trips(backend: Backend) -> None:
    """Each setter's value comes back from its getter, with the engine's normalisation (a
    retry delay under 5 s becomes 5)."""
    job = await backend.create_job("props")
    await job.set_priority(Priority.FOREGROUND)
    await job.set_display_name("renamed ✓")
    await job.set_description("d" * 1024)
    await job.set_minimum_retry_delay(1)
    await job.set_no_progress_timeout(0)
    await job.set_maximum_download_time(12.5)
    await job.set_dynamic_content(True)
    await job.set_notify_flags(NotifyFlags.JOB_MODIFICATION | NotifyFlags.DISABLE)
    await job.set_notify_cmd_line("/bin/echo", "echo 'two words' x")
    assert [
        await job.get_priority(),
        await job.get_display_name(),
        await job.get_description(),
        await job.get_minimum_retry_delay(),
        await job.get_no_progress_timeout(),
        await job.get_maximum_download_time(),
        await job.get_dynamic_content(),
        await job.get_notify_flags(),
        await job.get_notify_cmd_line(),
    ] == [
        Priority.FOREGROUND,
        "renamed ✓",
        "d" * 1024,
        5.0,
        0.0,
        12.5,
        True,
        NotifyFlags.JOB_MODIFICATION | NotifyFlags.DISABLE,
        ("/bin/echo", "echo 'two words' x"),
    ]
    await job.set_notify_cmd_line(None)
    assert await job.get_notify_cmd_line() == (None, None)
    await job.cancel()


async def test_caller_errors_raise_the_same_classes_and_hresults(
    backend: Backend, server: FaultServer, dest: Path
) -> None:
    """Caller mistakes raise at once, with the engine's exception classes and HRESULTs."""
    job = await backend.create_job("errors")
    local = str(dest / "x")
    cases: list[tuple[Awaitable[object], type[BitsError], int]] = [
        (job.resume(), EmptyJobError, codes.BG_E_EMPTY),
        (backend.get_job(str(uuid.uuid4())), NotFoundError, codes.BG_E_NOT_FOUND),
        (backend.get_job("not-a-guid"), NotFoundError, codes.BG_E_NOT_FOUND),
        (job.add_file("ftp://example.org/x", local), InvalidArgumentError, codes.E_INVALIDARG),
        (job.add_file("not a url", local), InvalidArgumentError, codes.E_INVALIDARG),
        (job.add_file(server.url("/x"), "relative/x"), InvalidArgumentError, codes.E_INVALIDARG),
        (job.add_file_set([]), InvalidArgumentError, codes.E_INVALIDARG),
        (
            job.add_file(server.url("/x"), str(dest / "missing" / "x")),
            BitsError,
            0x80070003,  # HRESULT_FROM_WIN32(ERROR_PATH_NOT_FOUND)
        ),
        (job.get_error(), ErrorInfoUnavailableError, codes.BG_E_ERROR_INFORMATION_UNAVAILABLE),
        (backend.create_job("n" * 1025), InvalidArgumentError, codes.BG_E_STRING_TOO_LONG),
        (job.set_priority(9), NotSupportedError, codes.E_NOTIMPL),  # type: ignore[arg-type]
        (job.set_notify_flags(0x40), NotSupportedError, codes.E_NOTIMPL),
        (job.set_minimum_retry_delay(-1), InvalidArgumentError, codes.E_INVALIDARG),
        (job.set_notify_cmd_line("bin/echo"), InvalidArgumentError, codes.E_INVALIDARG),
        (job.set_notify_cmd_line(None, "x"), InvalidArgumentError, codes.E_INVALIDARG),
    ]
    for call, cls, hresult in cases:
        assert await raised(call) == (cls, hresult)
    assert await job.files() == [], "a refused add_file added nothing"

    await job.add_file(server.url(unique_path("ro")), local)
    await job.resume()
    await job.suspend()
    assert await raised(job.set_dynamic_content(True)) == (
        ReadOnlyPropertyError,
        codes.BG_E_READ_ONLY_PROPERTY_AFTER_RESUME,
    )
    assert await job.cancel() == codes.S_OK
    for call in (job.resume(), job.set_description("late"), job.cancel(), job.complete()):
        assert await raised(call) == (InvalidStateError, codes.BG_E_INVALID_STATE)


async def test_404_puts_the_job_in_error_with_remote_file_context(
    backend: Backend, server: FaultServer, dest: Path
) -> None:
    """A 404 is fatal: ERROR, one error counted, GetError reports BG_E_HTTP_ERROR_404 in
    REMOTE_FILE with the file and the protocol; Resume clears it and the job fails again."""
    url = server.url(unique_path("missing"))
    job = await backend.create_job("404")
    await job.add_file(url, str(dest / "m"))
    await job.resume()
    assert await job.wait(DONE, timeout=15) is JobState.ERROR
    error = await job.get_error()
    assert (error.code, error.context, error.protocol) == (
        codes.BG_E_HTTP_ERROR_404,
        ErrorContext.REMOTE_FILE,
        "http",
    )
    assert error.file is not None
    assert (error.file.remote_name, error.file.local_name) == (url, str(dest / "m"))
    assert error.description
    assert error.context_description
    assert await job.get_error_count() == 1
    await job.resume()
    assert await job.wait(DONE, timeout=15) is JobState.ERROR
    assert await job.get_error_count() == 2
    assert await job.complete() == codes.BG_S_PARTIAL_COMPLETE
    assert not (dest / "m").exists()


async def test_suspend_keeps_progress_and_cancel_removes_the_job(
    backend: Backend, server: FaultServer, dest: Path
) -> None:
    """Suspend stops a running transfer in SUSPENDED with its progress kept; Cancel returns
    S_OK, ends CANCELLED and deletes the temporary file."""
    path = unique_path("slow")
    server.add(path, body(2_000_000))
    server.set_fault(path, Fault(rate=1_000_000))
    job = await backend.create_job("suspend")
    await job.add_file(server.url(path), str(dest / "slow"))
    await job.resume()
    await job.wait(JobState.TRANSFERRING, timeout=10)
    while (await job.get_progress()).bytes_transferred == 0:
        await asyncio.sleep(0.02)
    await job.suspend()
    assert await job.get_state() is JobState.SUSPENDED
    kept = (await job.get_progress()).bytes_transferred
    assert kept > 0
    [info] = await job.files()
    temporary = Path(info.temporary_name)
    assert temporary.name in os.listdir(dest)
    assert await job.cancel() == codes.S_OK
    assert await job.get_state() is JobState.CANCELLED
    assert temporary.name not in os.listdir(dest)
    assert job not in await backend.jobs()


def keep_ended(monkeypatch: pytest.MonkeyPatch, jobs: int, files: int) -> None:
    """Bound the ended jobs kept in memory to ``jobs`` jobs and ``files`` files, in the
    in-process engine and in the client alike."""
    import bitsd._client
    import bitsd._engine

    monkeypatch.setattr(bitsd._engine, "FINAL_JOBS_KEPT", jobs)
    monkeypatch.setattr(bitsd._engine, "FINAL_FILES_KEPT", files)
    monkeypatch.setattr(bitsd._client, "FINAL_JOBS_KEPT", jobs)
    monkeypatch.setattr(bitsd._client, "FINAL_FILES_KEPT", files)


async def ended_job(
    backend: Backend, dest: Path, name: str, files: int, *, complete: bool
) -> AnyJob:
    """A job of ``files`` files (never resumed) that was completed or cancelled."""
    job = await backend.create_job(name)
    await job.add_file_set(
        [(f"http://127.0.0.1:9/{name}/{i}", str(dest / f"{name}-{i}")) for i in range(files)]
    )
    await (job.complete() if complete else job.cancel())
    return job


async def assert_forgotten(job: AnyJob) -> None:
    """The handle answers as for a job nobody knows: BG_E_NOT_FOUND, getters and verbs alike."""
    not_found = (NotFoundError, codes.BG_E_NOT_FOUND)
    assert await raised(job.get_state()) == not_found
    assert await raised(job.files()) == not_found
    assert await raised(job.snapshot()) == not_found
    assert await raised(job.resume()) == not_found
    assert await raised(job.cancel()) == not_found


async def test_ended_jobs_kept_are_the_most_recent_ones(
    backend: Backend, dest: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Handles of ended jobs answer from memory for the most recent ended jobs only (here 2):
    the newest answer their final state and files and refuse verbs with BG_E_INVALID_STATE;
    the oldest is forgotten and answers BG_E_NOT_FOUND, so a long-lived client (or engine)
    does not keep every job it ever ended."""
    keep_ended(monkeypatch, jobs=2, files=1000)
    oldest = await ended_job(backend, dest, "old", 2, complete=False)
    kept = [
        await ended_job(backend, dest, "acked", 2, complete=True),
        await ended_job(backend, dest, "cancelled", 2, complete=False),
    ]

    await assert_forgotten(oldest)
    for job, state in zip(kept, (JobState.ACKNOWLEDGED, JobState.CANCELLED), strict=True):
        assert await job.get_state() is state
        assert (await job.snapshot()).state is state
        name = "acked" if state is JobState.ACKNOWLEDGED else "cancelled"
        assert [f.local_name for f in await job.files()] == [
            str(dest / f"{name}-{i}") for i in range(2)
        ]
        assert await raised(job.resume()) == (InvalidStateError, codes.BG_E_INVALID_STATE)


async def test_ended_jobs_kept_are_bounded_by_their_files(
    backend: Backend, dest: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The files of the ended jobs kept count too (here at most 5): the oldest jobs are
    forgotten until the rest fit, and the job that ended last is kept even alone over the
    bound, since its caller reads it right after."""
    keep_ended(monkeypatch, jobs=100, files=5)
    first = await ended_job(backend, dest, "first", 2, complete=False)
    second = await ended_job(backend, dest, "second", 2, complete=False)
    third = await ended_job(backend, dest, "third", 2, complete=False)

    await assert_forgotten(first)
    for job in (second, third):
        assert await job.get_state() is JobState.CANCELLED
        assert len(await job.files()) == 2

    big = await ended_job(backend, dest, "big", 6, complete=True)
    assert await big.get_state() is JobState.ACKNOWLEDGED
    assert len(await big.files()) == 6
    for job in (second, third):
        await assert_forgotten(job)


# A file's FileInfo, ranges, validation state and filled ranges (or the HRESULT raised).
FileAnswers = tuple[FileInfo, list[tuple[int, int]], bool, list[tuple[int, int]] | int]


async def file_answers(job: AnyJob) -> list[FileAnswers]:
    """What the getters of each file answer, asked by index and by FileInfo: the FileInfo, its
    ranges, validation state and filled ranges (or the HRESULT that getter raises)."""
    answers: list[FileAnswers] = []
    for i, info in enumerate(await job.files()):
        for file in (i, info):
            filled: list[tuple[int, int]] | int
            try:
                filled = await job.get_filled_file_ranges(file)
            except BitsError as exc:
                filled = exc.hresult
            ranges = await job.get_file_ranges(file)
            answers.append((info, ranges, await job.get_validation_state(file), filled))
    return answers


def assert_rows_kept(backend: Backend, job: AnyJob, files: int) -> None:
    """Through the daemon, a job the manager ended keeps its files as the rows of the verb's
    answer, no File object built until a getter needs them."""
    if isinstance(backend, Manager):
        ended = backend._ended.get(job.id)
        assert ended is not None
        assert (len(ended.files), ended.files._objects) == (files, None)


async def test_an_ended_jobs_file_getters_answer_what_they_answered_before(
    backend: Backend, server: FaultServer, dest: Path
) -> None:
    """After complete() or cancel(), files(), get_file_ranges(), get_validation_state() and
    get_filled_file_ranges() of the handle answer, file by file, what they answered just
    before: a transferred file validated, one added with ranges (no filled ranges), one half
    transferred (size known), one never started (size unknown). Through the daemon, from the
    rows of the verb's answer."""
    whole = unique_path("whole")
    server.add(whole, body(30_000, seed=4))
    slow = unique_path("half")
    server.add(slow, body(2_000_000, seed=3))
    server.set_fault(slow, Fault(rate=1_000_000))
    done = await backend.create_job("ended files")
    await done.add_file(server.url(whole), str(dest / "whole"))
    await done.add_file_with_ranges(server.url(whole), str(dest / "ranged"), [(100, 50), (0, 9)])
    await done.resume()
    assert await done.wait(DONE, timeout=15) is JobState.TRANSFERRED
    await done.set_validation_state(0, True)
    half = await backend.create_job("half ended")
    await half.add_file(server.url(slow), str(dest / "half"))
    await half.resume()
    while (await half.get_progress()).bytes_transferred == 0:
        await asyncio.sleep(0.02)
    await half.suspend()
    await half.add_file(server.url(slow), str(dest / "never"))

    completed = await file_answers(done)
    assert await done.complete() == codes.S_OK
    assert_rows_kept(backend, done, 2)
    assert await file_answers(done) == completed
    cancelled = await file_answers(half)
    assert await half.cancel() == codes.S_OK
    assert_rows_kept(backend, half, 2)
    assert await file_answers(half) == cancelled
    # What the files above are, so that no case goes unnoticed.
    [(a, _, a_valid, a_filled), _, (b, b_ranges, b_valid, b_filled), _] = completed
    assert (a.progress.bytes_total, a.progress.completed, a_valid, a_filled) == (
        30_000,
        True,
        True,
        [(0, 30_000)],
    )
    assert (b.progress.bytes_total, b_ranges, b_valid) == (59, [(100, 50), (0, 9)], False)
    assert b_filled == codes.BG_E_RANDOM_ACCESS_NOT_SUPPORTED
    [(c, _, _, c_filled), _, (d, _, _, d_filled), _] = cancelled
    assert c.progress.bytes_total == 2_000_000
    assert 0 < c.progress.bytes_transferred < 2_000_000
    assert c_filled == [(0, c.progress.bytes_transferred)]
    assert (d.progress.bytes_total, d.progress.bytes_transferred, d_filled) == (SIZE_UNKNOWN, 0, [])
    assert len({a.temporary_name, b.temporary_name, c.temporary_name, d.temporary_name}) == 4


async def test_wait_returns_at_once_or_raises_timeout_error(backend: Backend) -> None:
    """wait() returns a state the job is in at once, takes one state or several, and raises
    TimeoutError when the timeout passes first."""
    job = await backend.create_job("wait")
    assert await job.wait(JobState.SUSPENDED, timeout=1) is JobState.SUSPENDED
    assert await job.wait([JobState.QUEUED, JobState.SUSPENDED]) is JobState.SUSPENDED
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        await job.wait(DONE, timeout=0.3)
    assert 0.25 <= time.monotonic() - started < 3
    await job.cancel()


async def test_jobs_lists_every_live_job_oldest_first(backend: Backend) -> None:
    """jobs() lists created jobs in creation order and not cancelled ones; handles on the
    same job compare equal; get_job reads any GUID form."""
    created = [await backend.create_job(f"list {i}") for i in range(3)]
    await created[1].cancel()
    listed: list[AnyJob] = list(await backend.jobs())
    mine = [j for j in listed if j in (created[0], created[2])]
    assert [j.id for j in mine] == [created[0].id, created[2].id]
    assert created[1] not in listed
    again = await backend.get_job("{" + created[2].id.upper() + "}")
    assert again == created[2]
    assert again.id == created[2].id
    assert hash(again) == hash(created[2])
    for job in (created[0], created[2]):
        await job.cancel()


async def test_add_file_set_is_all_or_none(
    backend: Backend, server: FaultServer, dest: Path
) -> None:
    """add_file_set adds every file, in order, or none when one of them is refused."""
    job = await backend.create_job("set")
    good = [(server.url(f"/set/{i}"), str(dest / f"f{i}")) for i in range(3)]
    with pytest.raises(InvalidArgumentError):
        await job.add_file_set([*good, ("ftp://x/y", str(dest / "bad"))])
    assert await job.files() == []
    await job.add_file_set(iter(good))
    assert [(f.remote_name, f.local_name) for f in await job.files()] == good
    await job.cancel()
