"""The store interface and the snapshot it loads (see the package docstring for the rules)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Protocol

from bitsd._model import FileRecord, JobRecord, PendingNotification

__all__ = ["Snapshot", "Store"]


@dataclasses.dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything a store holds, as loaded at start-up."""

    jobs: list[JobRecord]
    files: dict[str, list[FileRecord]]
    notifications: list[PendingNotification]


class Store(Protocol):
    """The persistence interface of the engine."""

    def load(self) -> Snapshot:
        """Every job (with its files in index order) and every pending notification."""
        ...

    def put_job(self, job: JobRecord, files: Sequence[FileRecord] = ()) -> None:
        """Insert or replace a job and the given files of it, in one transaction."""
        ...

    def put_files(self, files: Sequence[FileRecord]) -> None:
        """Insert or replace files (progress checkpoints), in one transaction."""
        ...

    def put_progress(self, files: Sequence[FileRecord]) -> None:
        """Store the progress of stored files — ``bytes_total``, ``bytes_transferred``,
        ``completed`` and ``validator`` — in one transaction; the rest of each record must be
        as stored. Files that are not stored (their job is gone) are ignored. Cheaper than
        ``put_files`` for the files of a job that are reported transferred together."""
        ...

    def delete_job(self, job_id: str) -> None:
        """Remove a job, its files and its notifications, in one transaction."""
        ...

    def put_notification(self, notification: PendingNotification) -> None:
        """Insert or replace the pending notification of (job_id, kind)."""
        ...

    def delete_notification(self, job_id: str, kind: str) -> None:
        """Forget the pending notification of (job_id, kind), if any."""
        ...

    def close(self) -> None:
        """Release the store; later calls are errors."""
        ...
