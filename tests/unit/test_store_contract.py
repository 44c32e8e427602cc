"""One contract test suite for every store backend (MemoryStore, SqliteStore), plus the
sqlite-only guarantees: file mode, schema version, corrupt files, WAL journal."""

from __future__ import annotations

import dataclasses
import os
import random
import sqlite3
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import bitsd
from bitsd import codes
from bitsd._enums import ErrorContext, JobState, JobType, NotifyFlags, Priority
from bitsd._model import ErrorRecord, FileRecord, JobRecord, PendingNotification
from bitsd._store import SCHEMA_VERSION, MemoryStore, SqliteStore, Store

JOB_ID = "0123456789abcdef0123456789abcdef"
OTHER_ID = "fedcba9876543210fedcba9876543210"


def make_job(job_id: str = JOB_ID, **changes: object) -> JobRecord:
    """A job with every field set to something other than its default."""
    job = JobRecord(
        id=job_id,
        display_name="nightly build ✓",
        type=JobType.UPLOAD_REPLY,
        state=JobState.TRANSIENT_ERROR,
        creation_time=1_800_000_000.25,
        modification_time=1_800_000_123.5,
        description="a description with 'quotes' and \"double quotes\"",
        priority=Priority.LOW,
        notify_flags=NotifyFlags.JOB_MODIFICATION | NotifyFlags.FILE_TRANSFERRED,
        notify_program="/usr/bin/notify-send",
        notify_parameters="notify-send 'done'",
        minimum_retry_delay=42.5,
        no_progress_timeout=3601.75,
        maximum_download_time=86_400.125,
        dynamic_content=True,
        transfer_completion_time=1_800_000_999.75,
        error=ErrorRecord(
            code=codes.BG_E_HTTP_ERROR_503,
            context=ErrorContext.REMOTE_FILE,
            description="The server is overloaded.",
            file_index=3,
            protocol="https",
        ),
        error_count=7,
        ever_resumed=True,
        retry_at=1234.5,
        no_progress_since=1000.25,
        last_activity_at=999.0,
        download_time_used=17.5,
        queue_seq=12,
        on_demand=True,
    )
    return dataclasses.replace(job, **changes)  # type: ignore[arg-type]


def bare_job() -> JobRecord:
    """A job with only the fields that have no default."""
    return JobRecord(
        id=JOB_ID,
        display_name="",
        type=JobType.DOWNLOAD,
        state=JobState.SUSPENDED,
        creation_time=0.0,
        modification_time=0.0,
    )


def make_file(index: int, job_id: str = JOB_ID, **changes: object) -> FileRecord:
    """A file record with non-default values."""
    record = FileRecord(
        job_id=job_id,
        index=index,
        remote_name=f"https://example.test/files/{index}.bin",
        local_name=f"/srv/downloads/{index}.bin",
        temp_name=f"/srv/downloads/.{index}.bin.01234567-{index}.bitsd-tmp",
        bytes_total=10_000 + index,
        bytes_transferred=5_000 + index,
        completed=True,
        validator=f'"etag-{index}"',
        renamed=True,
        filled=((0, 100 + index), (4_000, 1_000)),
        requested=((9_000, 500), (200, 300)),
        download_position=4_200 + index,
    )
    return dataclasses.replace(record, **changes)  # type: ignore[arg-type]


def make_note(kind: str = "job_error", job_id: str = JOB_ID) -> PendingNotification:
    """A pending notification with non-default values."""
    return PendingNotification(
        job_id=job_id,
        kind=kind,
        state=JobState.ERROR,
        attempts=3,
        cmdline_due=True,
        next_at=2048.5,
    )


StoreFactory = Callable[[], Store]


@pytest.fixture(params=["memory", "sqlite"])
def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    """Opens a store of each backend; for sqlite, each call opens the same file again."""
    opened: list[Store] = []
    memory = MemoryStore()

    def factory() -> Store:
        store: Store = (
            memory if request.param == "memory" else SqliteStore(tmp_path / "jobs.sqlite")
        )
        opened.append(store)
        return store

    yield factory
    for store in opened:
        store.close()


@pytest.fixture
def store(store_factory: StoreFactory) -> Store:
    """A fresh, empty store of each backend."""
    return store_factory()


def test_new_store_is_empty(store: Store) -> None:
    """A new store loads no jobs, no files and no notifications."""
    snapshot = store.load()
    assert (snapshot.jobs, snapshot.files, snapshot.notifications) == ([], {}, [])


def test_job_round_trip_with_every_field_set(store: Store) -> None:
    """put_job then load returns the job with every field equal, including enums and error."""
    job = make_job()
    store.put_job(job)
    loaded = store.load().jobs
    assert [job] == loaded
    only = loaded[0]
    assert isinstance(only.type, JobType)
    assert isinstance(only.state, JobState)
    assert isinstance(only.priority, Priority)
    assert isinstance(only.notify_flags, NotifyFlags)
    assert only.error is not None
    assert isinstance(only.error.context, ErrorContext)
    assert only.dynamic_content is True
    assert only.ever_resumed is True


def test_job_round_trip_with_nones_and_defaults(store: Store) -> None:
    """Fields that are None (no error, no retry time, no program) come back as None."""
    job = bare_job()
    store.put_job(job)
    assert [job] == store.load().jobs


def test_put_job_replaces_the_previous_version(store: Store) -> None:
    """A second put_job of the same id replaces the job, the error included."""
    store.put_job(make_job())
    newer = make_job(state=JobState.QUEUED, error=None, error_count=0, retry_at=None)
    store.put_job(newer)
    assert [newer] == store.load().jobs


def test_put_job_saves_the_given_files(store: Store) -> None:
    """put_job with files saves them with the job, field for field."""
    files = [make_file(0), make_file(1, bytes_total=None, completed=False, validator=None)]
    store.put_job(make_job(), files)
    assert {JOB_ID: files} == store.load().files


def new_file(index: int, job_id: str = JOB_ID) -> FileRecord:
    """A file record as add_file_set makes it: names given, every other field its default."""
    return FileRecord(
        job_id=job_id,
        index=index,
        remote_name=f"https://example.test/files/{index}.bin",
        local_name=f"/srv/downloads/{index}.bin",
        temp_name=f"/srv/downloads/.{index}.bin.01234567-{index}.bitsd-tmp",
    )


def test_put_job_saves_new_files_and_others_together(store: Store) -> None:
    """put_job of new files (only their names given) among files with other values saves each
    field for field, and a new file written over a stored one replaces every field."""
    files = [new_file(0), make_file(1), new_file(2), make_file(3, ranges=((0, 10),))]
    store.put_job(make_job(), files)
    assert {JOB_ID: files} == store.load().files
    again = [make_file(0), new_file(1), new_file(2), new_file(3)]
    store.put_job(make_job(), again)
    assert {JOB_ID: again} == store.load().files


def test_files_load_in_index_order(store: Store) -> None:
    """Files of a job load ordered by index, whatever the order they were saved in."""
    indexes = [5, 0, 3, 11, 2, 1, 10]
    store.put_job(make_job(), [make_file(i) for i in indexes[:3]])
    store.put_files([make_file(i) for i in indexes[3:]])
    assert sorted(indexes) == [f.index for f in store.load().files[JOB_ID]]


def test_files_are_grouped_by_job(store: Store) -> None:
    """Each job's files load under its own id."""
    store.put_job(make_job(), [make_file(1), make_file(0)])
    store.put_job(make_job(OTHER_ID), [make_file(0, OTHER_ID)])
    files = store.load().files
    assert {JOB_ID: [make_file(0), make_file(1)], OTHER_ID: [make_file(0, OTHER_ID)]} == files


def test_put_files_replaces_a_checkpoint(store: Store) -> None:
    """put_files of an existing (job, index) replaces it (progress checkpoints)."""
    store.put_job(make_job(), [make_file(0, bytes_transferred=1, completed=False)])
    checkpoint = make_file(0, bytes_transferred=9_999, completed=False)
    store.put_files([checkpoint])
    assert {JOB_ID: [checkpoint]} == store.load().files


def test_put_files_of_a_missing_job_is_ignored(store: Store) -> None:
    """put_files for a job that is not in the store saves nothing."""
    store.put_job(make_job())
    store.put_files([make_file(0, OTHER_ID), make_file(1, OTHER_ID)])
    snapshot = store.load()
    assert snapshot.files == {}
    assert [j.id for j in snapshot.jobs] == [JOB_ID]


def test_put_files_of_a_deleted_job_is_ignored(store: Store) -> None:
    """A late checkpoint of a deleted job does not bring its files back."""
    store.put_job(make_job(), [make_file(0)])
    store.delete_job(JOB_ID)
    store.put_files([make_file(0)])
    assert store.load().files == {}


def test_put_progress_stores_the_progress_of_stored_files(store: Store) -> None:
    """put_progress stores each file's size, bytes, completion and validator, field for field
    as put_files would, and nothing of a file or job that is not stored."""
    first = make_file(0, bytes_total=None, bytes_transferred=0, completed=False, validator=None)
    second = make_file(1, bytes_total=None, bytes_transferred=0, completed=False, validator=None)
    store.put_job(make_job(), [first, second])
    done = make_file(0, bytes_total=16_384, bytes_transferred=16_384, completed=True)
    store.put_progress([done, make_file(2), make_file(0, OTHER_ID)])
    assert {JOB_ID: [done, second]} == store.load().files
    partly = make_file(1, bytes_total=None, bytes_transferred=7, completed=False, validator="v")
    store.put_progress([partly])
    assert {JOB_ID: [done, partly]} == store.load().files


def test_put_progress_of_a_deleted_job_is_ignored(store: Store) -> None:
    """A late completion of a deleted job does not bring its files back."""
    store.put_job(make_job(), [make_file(0)])
    store.delete_job(JOB_ID)
    store.put_progress([make_file(0), make_file(1)])
    store.put_progress([])
    assert store.load().files == {}


def test_put_files_of_nothing_is_harmless(store: Store) -> None:
    """put_files with an empty list changes nothing."""
    store.put_job(make_job(), [make_file(0)])
    store.put_files([])
    assert {JOB_ID: [make_file(0)]} == store.load().files


def test_delete_job_removes_its_files_and_notifications(store: Store) -> None:
    """delete_job removes the job, its files and its notifications, and nothing else."""
    store.put_job(make_job(), [make_file(0), make_file(1)])
    store.put_notification(make_note("job_error"))
    store.put_notification(make_note("job_transferred"))
    store.put_job(make_job(OTHER_ID), [make_file(0, OTHER_ID)])
    store.put_notification(make_note("job_error", OTHER_ID))
    store.delete_job(JOB_ID)
    snapshot = store.load()
    assert [j.id for j in snapshot.jobs] == [OTHER_ID]
    assert {OTHER_ID: [make_file(0, OTHER_ID)]} == snapshot.files
    assert [make_note("job_error", OTHER_ID)] == snapshot.notifications


def test_delete_of_an_unknown_job_is_harmless(store: Store) -> None:
    """delete_job of an id that is not stored changes nothing."""
    store.put_job(make_job())
    store.delete_job(OTHER_ID)
    assert [make_job()] == store.load().jobs


def test_notification_round_trip(store: Store) -> None:
    """put_notification then load returns the notification field for field."""
    store.put_job(make_job())
    note = make_note()
    store.put_notification(note)
    loaded = store.load().notifications
    assert [note] == loaded
    assert isinstance(loaded[0].state, JobState)


def test_notification_is_keyed_by_job_and_kind(store: Store) -> None:
    """A second notification of the same (job, kind) replaces the first; other kinds stay."""
    store.put_job(make_job())
    store.put_notification(make_note("job_error"))
    store.put_notification(make_note("job_transferred"))
    newer = PendingNotification(JOB_ID, "job_error", JobState.TRANSIENT_ERROR, attempts=4)
    store.put_notification(newer)
    loaded = sorted(store.load().notifications, key=lambda n: n.kind)
    assert [newer, make_note("job_transferred")] == loaded


def test_notification_of_a_missing_job_is_ignored(store: Store) -> None:
    """A notification for a job that is not stored is not saved."""
    store.put_notification(make_note(job_id=OTHER_ID))
    assert store.load().notifications == []


def test_delete_notification(store: Store) -> None:
    """delete_notification forgets one (job, kind) and keeps the others; unknown ones are fine."""
    store.put_job(make_job())
    store.put_notification(make_note("job_error"))
    store.put_notification(make_note("job_transferred"))
    store.delete_notification(JOB_ID, "job_error")
    store.delete_notification(JOB_ID, "no_such_kind")
    store.delete_notification(OTHER_ID, "job_error")
    assert [make_note("job_transferred")] == store.load().notifications


def test_put_job_is_durable_and_visible_to_a_new_connection(store_factory: StoreFactory) -> None:
    """After put_job returns, a store opened again on the same data sees the same records."""
    first = store_factory()
    job = make_job()
    files = [make_file(0), make_file(1)]
    first.put_job(job, files)
    first.put_notification(make_note())
    second = store_factory()
    snapshot = second.load()
    assert ([job], {JOB_ID: files}, [make_note()]) == (
        snapshot.jobs,
        snapshot.files,
        snapshot.notifications,
    )


# Changes a job goes through, one field set or several at once (put_job then writes only the
# changed columns of a job it wrote before).
_CHANGES: list[dict[str, object]] = [
    {"state": JobState.QUEUED, "error": None, "retry_at": None},
    {"state": JobState.CONNECTING, "last_activity_at": 5.5, "queue_seq": 13},
    {"priority": Priority.FOREGROUND},
    {},  # nothing changed: nothing to write
    {
        "state": JobState.ERROR,
        "error": ErrorRecord(
            codes.BG_E_NETWORK_DISCONNECTED, ErrorContext.GENERAL_TRANSPORT, "x", None, "http"
        ),
        "error_count": 8,
    },
    {"error": ErrorRecord(codes.E_ACCESSDENIED, ErrorContext.LOCAL_FILE, "y", 1, None)},
    {"credentials": ((1, 2, "u", "p"),), "notify_program": None, "display_name": "renamed"},
    {"state": JobState.TRANSFERRED, "transfer_completion_time": None, "on_demand": False},
]


def test_successive_put_job_calls_store_every_change(store_factory: StoreFactory) -> None:
    """After each put_job of a changed job (including a put with no change, a put with its
    files and a delete), a store opened again reads exactly the last record."""
    store = store_factory()
    job = make_job()
    store.put_job(job)
    for step, changes in enumerate(_CHANGES):
        job = dataclasses.replace(job, **changes)  # type: ignore[arg-type]
        if step == 3:
            store.put_job(job, [make_file(0)])
        else:
            store.put_job(job)
        assert store_factory().load().jobs == [job], changes
    store.delete_job(JOB_ID)
    store.put_job(job)  # written again after its delete: the whole row
    assert store_factory().load().jobs == [job]


def test_successive_put_files_calls_store_every_change(store_factory: StoreFactory) -> None:
    """Files written with their job, then changed one field or several at a time, some in the
    same call, some unchanged: a store opened again reads exactly the last records; after a
    delete and a new put_job, the files are written again whole."""
    store = store_factory()
    files = [make_file(0, completed=False, renamed=False), make_file(1, validator=None)]
    store.put_job(make_job(), files)
    steps: list[list[tuple[int, dict[str, object]]]] = [
        [(0, {"bytes_transferred": 9_000})],
        [(0, {"bytes_transferred": 10_000, "completed": True}), (1, {})],
        [(1, {"validator": '"new"', "bytes_total": None, "filled": ()})],
        [(0, {})],  # nothing changed: nothing to write
        [(0, {"renamed": True}), (1, {"remote_name": "https://example.test/moved"})],
    ]
    for step in steps:
        changed = []
        for index, changes in step:
            files[index] = dataclasses.replace(files[index], **changes)  # type: ignore[arg-type]
            changed.append(files[index])
        store.put_files(changed)
        assert store_factory().load().files == {JOB_ID: files}, step
    store.delete_job(JOB_ID)
    store.put_files([dataclasses.replace(files[0], bytes_transferred=1)])  # no job: ignored
    assert store_factory().load().files == {}
    store.put_job(make_job(), files)
    assert store_factory().load().files == {JOB_ID: files}


def test_sqlite_put_job_of_an_unchanged_job_writes_nothing(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "jobs.sqlite")
    store.put_job(make_job())
    before = store._db.total_changes
    store.put_job(make_job())
    assert store._db.total_changes == before
    store.put_job(make_job(state=JobState.SUSPENDED))
    assert store._db.total_changes == before + 1
    store.close()


def test_sqlite_put_files_of_one_file_is_one_statement(tmp_path: Path) -> None:
    """One file (a checkpoint, a file reported transferred) is one statement, a transaction
    of its own; several go in one explicit transaction."""
    store = SqliteStore(tmp_path / "jobs.sqlite")
    store.put_job(make_job(), [make_file(0), make_file(1)])
    statements: list[str] = []
    store._db.set_trace_callback(statements.append)
    store.put_files([make_file(0, bytes_transferred=7)])
    assert len(statements) == 1
    assert statements[0].lstrip().upper().startswith("INSERT")
    del statements[:]
    store.put_files([make_file(0, bytes_transferred=8), make_file(1, bytes_transferred=9)])
    assert [s.split()[0].upper() for s in (statements[0], statements[-1])] == ["BEGIN", "COMMIT"]
    store._db.set_trace_callback(None)
    assert [f.bytes_transferred for f in store.load().files[JOB_ID]] == [8, 9]
    store.close()


def test_many_jobs_round_trip(store: Store) -> None:
    """Many jobs come back, each equal to what was saved."""
    jobs = [make_job(f"{i:032x}", queue_seq=i, display_name=f"job {i}") for i in range(20)]
    for job in jobs:
        store.put_job(job)
    assert jobs == sorted(store.load().jobs, key=lambda j: j.queue_seq)


def test_calls_after_close_are_errors(store_factory: StoreFactory) -> None:
    """Once closed, a store refuses to load (the backend's own error type)."""
    store = store_factory()
    store.close()
    with pytest.raises((RuntimeError, sqlite3.ProgrammingError)):
        store.load()


# --- sqlite only ----------------------------------------------------------------------------------


def test_sqlite_file_is_created_owner_only(tmp_path: Path) -> None:
    """A new sqlite store file is created with mode 0600, whatever the umask."""
    path = tmp_path / "jobs.sqlite"
    old_umask = os.umask(0o000)
    try:
        store = SqliteStore(path)
    finally:
        os.umask(old_umask)
    try:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    finally:
        store.close()


def test_sqlite_journal_mode_is_wal(tmp_path: Path) -> None:
    """The sqlite store runs in WAL journal mode (persisted in the file)."""
    path = tmp_path / "jobs.sqlite"
    SqliteStore(path).close()
    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        db.close()


def test_sqlite_new_file_has_the_current_schema_version(tmp_path: Path) -> None:
    """A new store stamps PRAGMA user_version with SCHEMA_VERSION."""
    path = tmp_path / "jobs.sqlite"
    SqliteStore(path).close()
    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    finally:
        db.close()


@pytest.mark.parametrize("journal_mode", ["wal", "delete"])
def test_sqlite_newer_schema_is_refused_and_left_untouched(
    tmp_path: Path, journal_mode: str
) -> None:
    """A database with a user_version newer than SCHEMA_VERSION raises StoreError and its file is
    byte-for-byte unchanged, whatever journal mode the newer writer left it in."""
    path = tmp_path / "jobs.sqlite"
    store = SqliteStore(path)
    store.put_job(make_job())
    store.close()
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    assert journal_mode == db.execute(f"PRAGMA journal_mode={journal_mode}").fetchone()[0]
    db.close()
    before = path.read_bytes()
    with pytest.raises(bitsd.StoreError) as info:
        SqliteStore(path)
    assert info.value.hresult == codes.BG_E_DATABASE_CORRUPT
    assert before == path.read_bytes()
    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 1
        assert db.execute("SELECT count(*) FROM jobs").fetchone()[0] == 1
    finally:
        db.close()


def test_sqlite_older_schema_gains_the_new_columns(tmp_path: Path) -> None:
    """A version-3 store (before on-demand jobs) is migrated in place: its rows keep their
    values and the new fields read as their defaults; the version becomes SCHEMA_VERSION."""
    path = tmp_path / "jobs.sqlite"
    store = SqliteStore(path)
    store.put_job(make_job(), [make_file(0)])
    store.close()
    db = sqlite3.connect(path)
    for table, column in [
        ("jobs", "on_demand"),
        ("files", "filled"),
        ("files", "requested"),
        ("files", "download_position"),
    ]:
        db.execute(f'ALTER TABLE {table} DROP COLUMN "{column}"')
    db.execute("PRAGMA user_version=3")
    db.commit()
    db.close()
    again = SqliteStore(path)
    try:
        snapshot = again.load()
        assert snapshot.jobs == [make_job(on_demand=False)]
        assert snapshot.files == {
            JOB_ID: [make_file(0, filled=(), requested=(), download_position=0)]
        }
    finally:
        again.close()
    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    finally:
        db.close()


def test_sqlite_garbage_file_is_refused(tmp_path: Path) -> None:
    """A file of random bytes raises StoreError and is not overwritten."""
    path = tmp_path / "jobs.sqlite"
    garbage = random.Random(7).randbytes(8192)
    path.write_bytes(garbage)
    with pytest.raises(bitsd.StoreError):
        SqliteStore(path)
    assert garbage == path.read_bytes()


def test_sqlite_foreign_database_is_refused_and_left_untouched(tmp_path: Path) -> None:
    """A sqlite file with tables but no bitsd schema version raises StoreError, unchanged."""
    path = tmp_path / "jobs.sqlite"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE other (x)")
    db.commit()
    db.close()
    before = path.read_bytes()
    with pytest.raises(bitsd.StoreError):
        SqliteStore(path)
    assert before == path.read_bytes()


def test_sqlite_reopen_after_close_keeps_data(tmp_path: Path) -> None:
    """Closing and reopening the sqlite store keeps every record."""
    path = tmp_path / "jobs.sqlite"
    store = SqliteStore(path)
    store.put_job(make_job(), [make_file(0)])
    store.close()
    again = SqliteStore(path)
    try:
        snapshot = again.load()
        assert ([make_job()], {JOB_ID: [make_file(0)]}) == (snapshot.jobs, snapshot.files)
    finally:
        again.close()


def test_sqlite_put_job_is_all_or_nothing(tmp_path: Path) -> None:
    """If saving one file of put_job fails, neither the job nor its other files are saved."""
    path = tmp_path / "jobs.sqlite"
    store = SqliteStore(path)
    try:
        store.put_job(make_job(), [make_file(0)])
        unbindable = make_file(1, remote_name=object())
        newer = make_job(state=JobState.QUEUED)
        with pytest.raises(sqlite3.Error):
            store.put_job(newer, [make_file(0, bytes_transferred=1), unbindable])
        snapshot = store.load()
        assert ([make_job()], {JOB_ID: [make_file(0)]}) == (snapshot.jobs, snapshot.files)
    finally:
        store.close()


def test_sqlite_new_files_are_stored_as_every_field_written_would_be(tmp_path: Path) -> None:
    """A new file's row (only its names bound, the other columns literals) holds exactly the
    values binding every field stores, type for type."""
    from bitsd._store import sqlite as module

    store = SqliteStore(tmp_path / "s.db")
    try:
        store.put_job(make_job(), [new_file(0)])
        store.put_job(make_job(OTHER_ID))
        store._db.execute(module._PUT_FILE, module._file_row(new_file(0, OTHER_ID)))
        columns = ", ".join(f'"{n}", typeof("{n}")' for n in module._FILE_FIELDS[2:])
        query = f'SELECT {columns} FROM files WHERE job_id = ? AND "index" = 0'  # noqa: S608
        stored = store._db.execute(query, (JOB_ID,)).fetchone()
        bound = store._db.execute(query, (OTHER_ID,)).fetchone()
        assert tuple(stored) == tuple(bound)
    finally:
        store.close()


def test_rows_are_the_plain_values_of_every_field() -> None:
    """The precomputed row makers give exactly what converting every field does (enums and
    bools as integers, tuples as JSON, None and the rest as they are)."""
    from bitsd._store import sqlite as module

    def plain(record: object, names: list[str]) -> list[object]:
        return [module._plain(getattr(record, n)) for n in names]

    for job in (make_job(), bare_job()):
        errors = (
            plain(job.error, module._ERROR_FIELDS)
            if job.error is not None
            else [None] * len(module._ERROR_FIELDS)
        )
        assert list(module._job_row(job)) == plain(job, module._JOB_FIELDS) + errors
    for f in (make_file(0), make_file(1, ranges=((0, 10), (20, 5)))):
        assert list(module._file_row(f)) == plain(f, module._FILE_FIELDS)
    note = make_note()
    assert module._NOTE_ROW(note) == plain(note, module._NOTE_FIELDS)
