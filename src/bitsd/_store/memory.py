"""An in-memory store for tests: the same contract as SqliteStore, nothing on disk."""

from __future__ import annotations

from collections.abc import Sequence

from bitsd._model import FileRecord, JobRecord, PendingNotification, evolve
from bitsd._store.base import Snapshot

__all__ = ["MemoryStore"]


class MemoryStore:
    """Holds records in dictionaries. An engine given this store does not close it, so the same
    object carries jobs across an engine restart."""

    def __init__(self) -> None:
        self._jobs: dict[str, JobRecord] = {}
        self._files: dict[tuple[str, int], FileRecord] = {}
        self._notes: dict[tuple[str, str], PendingNotification] = {}
        self._closed = False

    def _check(self) -> None:
        if self._closed:
            raise RuntimeError("store is closed")

    def load(self) -> Snapshot:
        self._check()
        files: dict[str, list[FileRecord]] = {}
        for key in sorted(self._files):
            files.setdefault(key[0], []).append(self._files[key])
        return Snapshot(list(self._jobs.values()), files, list(self._notes.values()))

    def put_job(self, job: JobRecord, files: Sequence[FileRecord] = ()) -> None:
        self._check()
        self._jobs[job.id] = job
        for f in files:
            self._files[(f.job_id, f.index)] = f

    def put_files(self, files: Sequence[FileRecord]) -> None:
        self._check()
        for f in files:
            if f.job_id in self._jobs:
                self._files[(f.job_id, f.index)] = f

    def put_progress(self, files: Sequence[FileRecord]) -> None:
        self._check()
        for f in files:
            key = (f.job_id, f.index)
            stored = self._files.get(key)
            if stored is not None:
                self._files[key] = evolve(
                    stored,
                    bytes_total=f.bytes_total,
                    bytes_transferred=f.bytes_transferred,
                    completed=f.completed,
                    validator=f.validator,
                )

    def delete_job(self, job_id: str) -> None:
        self._check()
        self._jobs.pop(job_id, None)
        for key in [k for k in self._files if k[0] == job_id]:
            del self._files[key]
        for nkey in [k for k in self._notes if k[0] == job_id]:
            del self._notes[nkey]

    def put_notification(self, notification: PendingNotification) -> None:
        self._check()
        if notification.job_id in self._jobs:
            self._notes[(notification.job_id, notification.kind)] = notification

    def delete_notification(self, job_id: str, kind: str) -> None:
        self._check()
        self._notes.pop((job_id, kind), None)

    def close(self) -> None:
        self._closed = True
