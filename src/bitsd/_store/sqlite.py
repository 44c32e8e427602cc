"""The sqlite store: WAL journal, one transaction per call, a versioned schema.

Rules:
- ``PRAGMA user_version`` holds the schema version. A store written by a newer bitsd, or a file
  that is not a readable sqlite database, is refused with :class:`StoreError`; nothing is ever
  silently started empty over existing data. Opening runs ``PRAGMA quick_check``, so damage
  anywhere in the file is found at start, not by the first write that reaches it; reading the
  jobs maps any sqlite error to :class:`StoreError` too.
- ``synchronous=FULL``: a committed state change survives a process kill and a power loss.
- A call that writes one statement runs it on its own (sqlite makes it a transaction: a
  ``put_files`` of one file, the common checkpoint and completion); calls of several
  statements run them in one explicit transaction. ``put_job`` of a job this store
  wrote before updates only the columns that changed, and writes nothing when none did.
- Columns mirror the record fields one to one (enums as their BITS integers); the mapping is
  derived from the dataclasses so a new field cannot be forgotten in one direction.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import functools
import json
import operator
import os
import sqlite3
import typing
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bitsd._enums import ErrorContext, JobState, JobType, NotifyFlags, Priority
from bitsd._errors import StoreError
from bitsd._model import ErrorRecord, FileRecord, JobRecord, PendingNotification
from bitsd._store.base import Snapshot

__all__ = ["SCHEMA_VERSION", "SqliteStore"]

# 1: the first schema. 2: the HTTP options, ranges and checksums of files (columns added).
# 3: upload and upload-reply jobs: reply file and progress, the upload session (columns added).
# 4: on-demand jobs: the job's mode, each file's filled and requested spans and download
# position (columns added).
SCHEMA_VERSION = 4

_JOB_FIELDS = [f.name for f in dataclasses.fields(JobRecord) if f.name != "error"]
_ERROR_FIELDS = [f.name for f in dataclasses.fields(ErrorRecord)]
_FILE_FIELDS = [f.name for f in dataclasses.fields(FileRecord)]
_NOTE_FIELDS = [f.name for f in dataclasses.fields(PendingNotification)]
_JOB_COLUMNS = _JOB_FIELDS + [f"error_{n}" for n in _ERROR_FIELDS]

_SCHEMA = f"""
CREATE TABLE jobs ({", ".join(_JOB_COLUMNS)}, PRIMARY KEY (id));
CREATE TABLE files ({", ".join(_FILE_FIELDS)},
    PRIMARY KEY (job_id, "index"),
    FOREIGN KEY (job_id) REFERENCES jobs(id) ON DELETE CASCADE);
CREATE TABLE notifications ({", ".join(_NOTE_FIELDS)},
    PRIMARY KEY (job_id, kind),
    FOREIGN KEY (job_id) REFERENCES jobs(id) ON DELETE CASCADE);
""".replace(", index,", ', "index",')

_ENUMS: dict[str, Any] = {
    "type": JobType,
    "state": JobState,
    "priority": Priority,
    "notify_flags": NotifyFlags,
    "error_context": ErrorContext,
}


def _quote(names: Sequence[str]) -> str:
    return ", ".join(f'"{n}"' for n in names)


def _upsert(
    table: str,
    names: Sequence[str],
    key: Sequence[str],
    *,
    if_job: bool,
    values: Sequence[str] | None = None,
) -> str:
    """An INSERT that updates the row in place on a key conflict. ``values``: the SQL of each
    column's value (``?`` for one bound), all bound when not given.

    Never ``INSERT OR REPLACE``: a replace deletes the old row first, and the delete cascades
    to the job's files and notifications.
    """
    marks = ", ".join(values if values is not None else "?" * len(names))
    source = (
        f"SELECT {marks} WHERE EXISTS (SELECT 1 FROM jobs WHERE id = ?)"
        if if_job
        else (f"VALUES ({marks})")
    )
    updates = ", ".join(f'"{n}" = excluded."{n}"' for n in names if n not in key)
    # "WHERE true" resolves the parsing ambiguity of SELECT ... ON CONFLICT (sqlite docs).
    where = " AND true" if if_job else ""
    return (
        f"INSERT INTO {table} ({_quote(names)}) {source}{where} "
        f"ON CONFLICT ({_quote(key)}) DO UPDATE SET {updates}"
    )


_PUT_JOB = _upsert("jobs", _JOB_COLUMNS, ["id"], if_job=False)


@functools.lru_cache(maxsize=256)
def _update_job(columns: tuple[int, ...]) -> str:
    """The UPDATE of the job row's ``columns`` (positions in ``_JOB_COLUMNS``), by id."""
    sets = ", ".join(f'"{_JOB_COLUMNS[i]}" = ?' for i in columns)
    return f"UPDATE jobs SET {sets} WHERE id = ?"


_PUT_FILE = _upsert("files", _FILE_FIELDS, ["job_id", "index"], if_job=False)
_PUT_FILE_IF_JOB = _upsert("files", _FILE_FIELDS, ["job_id", "index"], if_job=True)
_PUT_NOTE = _upsert("notifications", _NOTE_FIELDS, ["job_id", "kind"], if_job=True)
_PUT_PROGRESS = (
    "UPDATE files SET bytes_total = ?, bytes_transferred = ?, completed = ?, validator = ? "
    'WHERE job_id = ? AND "index" = ?'
)


def _plain(value: Any) -> Any:
    """A record value as sqlite stores it: enums and bools as integers, tuples as JSON."""
    if isinstance(value, bool | int):
        return int(value)
    if isinstance(value, tuple):
        return json.dumps(value)
    return value


def _json_tuple(value: tuple[Any, ...]) -> str:
    """A tuple as JSON; the empty tuple (most rows' spans) without calling the encoder."""
    return json.dumps(value) if value else "[]"


def _encoder(hint: Any) -> Callable[[Any], Any] | None:
    """How :func:`_plain` turns a field of type ``hint`` into what sqlite stores, decided once
    per field; None when the value is stored as it is."""
    args = typing.get_args(hint)
    optional = type(None) in args
    base = next((a for a in args if a is not type(None)), hint) if optional else hint
    encode: Callable[[Any], Any]
    if base in (bool, int) or (isinstance(base, type) and issubclass(base, enum.Enum)):
        encode = int  # bools, enums and ints that may be enum members: integers
    elif typing.get_origin(base) is tuple:
        encode = _json_tuple
    else:
        return None
    return (lambda v: None if v is None else encode(v)) if optional else encode


def _row_maker(record: type[Any], names: Sequence[str]) -> Callable[[Any], list[Any]]:
    """A function giving the stored values of ``names`` of a ``record``: the same as
    ``[_plain(getattr(r, n)) for n in names]``, at a fraction of the cost (every checkpoint and
    state change writes a row)."""
    hints = typing.get_type_hints(record)
    get = operator.attrgetter(*names)
    special = [(i, enc) for i, n in enumerate(names) if (enc := _encoder(hints[n])) is not None]

    def row(obj: Any) -> list[Any]:
        values = list(get(obj)) if len(names) > 1 else [get(obj)]
        for i, encode in special:
            values[i] = encode(values[i])
        return values

    return row


def _tuples(value: Any) -> Any:
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


def _decoder(hint: Any) -> Callable[[Any], Any]:
    """How to turn a stored value back into a field of type ``hint``."""
    args = typing.get_args(hint)
    optional = type(None) in args
    base = next((a for a in args if a is not type(None)), hint) if optional else hint
    convert: Callable[[Any], Any]
    if base is bool:
        convert = bool
    elif isinstance(base, type) and issubclass(base, enum.Enum):
        convert = base
    elif typing.get_origin(base) is tuple:

        def convert(v: Any) -> Any:
            return _tuples(json.loads(v))
    else:
        return lambda v: v
    return lambda v: None if v is None else convert(v)


def _codec(record: type[Any], skip: str = "") -> dict[str, Callable[[Any], Any]]:
    hints = typing.get_type_hints(record)
    return {f.name: _decoder(hints[f.name]) for f in dataclasses.fields(record) if f.name != skip}


_JOB_ROW = _row_maker(JobRecord, _JOB_FIELDS)
_ERROR_ROW = _row_maker(ErrorRecord, _ERROR_FIELDS)
_FILE_ROW = _row_maker(FileRecord, _FILE_FIELDS)
_NOTE_ROW = _row_maker(PendingNotification, _NOTE_FIELDS)
_JOB_DECODE = _codec(JobRecord, skip="error")
_FILE_DECODE = _codec(FileRecord)
_NOTE_DECODE = _codec(PendingNotification)


def _job_row(job: JobRecord) -> tuple[Any, ...]:
    err = job.error
    errors = _ERROR_ROW(err) if err is not None else [None] * len(_ERROR_FIELDS)
    return (*_JOB_ROW(job), *errors)


def _job_from(row: sqlite3.Row) -> JobRecord:
    values = {n: decode(row[n]) for n, decode in _JOB_DECODE.items()}
    error = None
    if row["error_code"] is not None:
        error = ErrorRecord(
            code=row["error_code"],
            context=ErrorContext(row["error_context"]),
            description=row["error_description"],
            file_index=row["error_file_index"],
            protocol=row["error_protocol"],
        )
    return JobRecord(error=error, **values)


def _file_from(row: sqlite3.Row) -> FileRecord:
    return FileRecord(**{n: decode(row[n]) for n, decode in _FILE_DECODE.items()})


def _note_from(row: sqlite3.Row) -> PendingNotification:
    return PendingNotification(**{n: decode(row[n]) for n, decode in _NOTE_DECODE.items()})


def _default_sql(record: type[Any], name: str) -> str:
    """The SQL literal of a field's default, for columns added by a migration."""
    field = next(f for f in dataclasses.fields(record) if f.name == name)
    value = _plain(field.default)
    if value is None:
        return "NULL"
    if isinstance(value, int | float):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


# A new file (add_file_set's) has its defaults in every field but those it was given: its row
# binds the given ones only, the others are literals. Binding sixteen values cost as much as
# the rest of the insert (~40 against ~20 ms for 5,000 files).
_GIVEN = [f.name for f in dataclasses.fields(FileRecord) if f.default is dataclasses.MISSING]
_DEFAULTED = [n for n in _FILE_FIELDS if n not in _GIVEN]
_GIVEN_OF = operator.attrgetter(*_GIVEN)
_DEFAULTED_OF = operator.attrgetter(*_DEFAULTED)
_DEFAULTS = tuple(f.default for f in dataclasses.fields(FileRecord) if f.name in _DEFAULTED)
_PUT_NEW_FILE = _upsert(
    "files",
    _GIVEN + _DEFAULTED,
    ["job_id", "index"],
    if_job=False,
    values=["?"] * len(_GIVEN) + [_default_sql(FileRecord, n) for n in _DEFAULTED],
)


def _is_new(f: FileRecord) -> bool:
    """Whether every field of ``f`` but the given ones holds its default (and is stored as
    the default's literal)."""
    return bool(_DEFAULTED_OF(f) == _DEFAULTS)


class SqliteStore:
    """A store in one sqlite file.

    Args:
        path: the database file; its folder must exist. A new file is created mode 0600.

    Raises:
        StoreError: the file is not a bitsd database this version can read.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        # The row this store last wrote for each job: put_job then writes only what changed.
        # Only one store writes a file (the daemon's lock), so the rows stay true.
        self._written: dict[str, tuple[Any, ...]] = {}
        if not self.path.exists():
            # Create it readable by the owner only before sqlite opens it.
            os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._db.row_factory = sqlite3.Row
            # Check the version before anything writes to the file (WAL mode changes its header):
            # a store this bitsd cannot use is left exactly as it was.
            self._migrate()
            self._check_integrity()
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA foreign_keys=ON")
        except sqlite3.DatabaseError as exc:
            with contextlib.suppress(Exception):
                self._db.close()
            raise StoreError(f"cannot open the job store {self.path}: {exc}") from exc

    def _migrate(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            self._db.close()
            raise StoreError(
                f"the job store {self.path} has schema version {version}, newer than this "
                f"bitsd understands ({SCHEMA_VERSION}); upgrade bitsd"
            )
        if version == 0:
            tables = self._db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
            if tables:
                self._db.close()
                raise StoreError(f"{self.path} holds tables but no bitsd schema version")
            with self._transaction():
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        self._db.execute(statement)
                self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            return
        if version < SCHEMA_VERSION:
            self._add_columns()

    def _check_integrity(self) -> None:
        problems = [row[0] for row in self._db.execute("PRAGMA quick_check")]
        if problems != ["ok"]:
            raise sqlite3.DatabaseError("; ".join(str(p) for p in problems[:3]))

    def _add_columns(self) -> None:
        """Migrate an older schema: every change so far only added fields, so add the columns
        the records have and the tables lack, with the fields' defaults."""
        tables = {
            "jobs": (JobRecord, _JOB_FIELDS),
            "files": (FileRecord, _FILE_FIELDS),
            "notifications": (PendingNotification, _NOTE_FIELDS),
        }
        with self._transaction() as db:
            for table, (record, names) in tables.items():
                have = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
                for name in names:
                    if name not in have:
                        db.execute(
                            f'ALTER TABLE {table} ADD COLUMN "{name}" '
                            f"DEFAULT {_default_sql(record, name)}"
                        )
            db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def load(self) -> Snapshot:
        try:
            jobs = [_job_from(r) for r in self._db.execute("SELECT * FROM jobs")]
            files: dict[str, list[FileRecord]] = {}
            for r in self._db.execute('SELECT * FROM files ORDER BY job_id, "index"'):
                f = _file_from(r)
                files.setdefault(f.job_id, []).append(f)
            notes = [_note_from(r) for r in self._db.execute("SELECT * FROM notifications")]
        except sqlite3.ProgrammingError:
            raise  # a misuse (a closed store), not a damaged file
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot read the job store {self.path}: {exc}") from exc
        return Snapshot(jobs, files, notes)

    def put_job(self, job: JobRecord, files: Sequence[FileRecord] = ()) -> None:
        row = _job_row(job)
        # A job this store wrote before gets only its changed columns (most changes touch
        # three of 56), or nothing when none changed.
        written = self._written.get(job.id)
        statement: tuple[str, Sequence[Any]] | None = (_PUT_JOB, row)
        if written is not None:
            pairs = enumerate(zip(row, written, strict=True))
            changed = tuple(i for i, (now, before) in pairs if now != before)
            statement = (
                (_update_job(changed), [*(row[i] for i in changed), job.id]) if changed else None
            )
        if not files:
            if statement is not None:
                self._db.execute(*statement)  # one statement: a transaction of its own
        else:
            new: list[FileRecord] = []
            others: list[FileRecord] = []
            for f in files:
                (new if _is_new(f) else others).append(f)
            with self._transaction() as db:
                if statement is not None:
                    db.execute(*statement)
                if new:
                    db.executemany(_PUT_NEW_FILE, [_GIVEN_OF(f) for f in new])
                if others:
                    db.executemany(_PUT_FILE, [_file_row(f) for f in others])
        self._written[job.id] = row

    def put_files(self, files: Sequence[FileRecord]) -> None:
        if not files:
            return
        if len(files) == 1:  # one statement: a transaction of its own
            (f,) = files
            self._db.execute(_PUT_FILE_IF_JOB, (*_file_row(f), f.job_id))
            return
        with self._transaction() as db:
            db.executemany(_PUT_FILE_IF_JOB, [(*_file_row(f), f.job_id) for f in files])

    def put_progress(self, files: Sequence[FileRecord]) -> None:
        # Four columns, not the row's sixteen: a 5,000-file job's completions cost a third.
        rows = [
            (f.bytes_total, f.bytes_transferred, int(f.completed), f.validator, f.job_id, f.index)
            for f in files
        ]
        if len(rows) == 1:  # one statement: a transaction of its own
            self._db.execute(_PUT_PROGRESS, rows[0])
        elif rows:
            with self._transaction() as db:
                db.executemany(_PUT_PROGRESS, rows)

    # One statement each: a transaction of its own (a delete's cascade included).

    def delete_job(self, job_id: str) -> None:
        self._written.pop(job_id, None)
        self._db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))

    def put_notification(self, notification: PendingNotification) -> None:
        self._db.execute(_PUT_NOTE, (*_NOTE_ROW(notification), notification.job_id))

    def delete_notification(self, job_id: str, kind: str) -> None:
        self._db.execute("DELETE FROM notifications WHERE job_id = ? AND kind = ?", (job_id, kind))

    def close(self) -> None:
        self._db.close()


def _file_row(f: FileRecord) -> tuple[Any, ...]:
    return tuple(_FILE_ROW(f))
