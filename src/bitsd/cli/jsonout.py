"""What ``--json`` prints: one JSON document per command, described by docs/cli-json-schema.json.

Rules:
- Shapes follow the control API (docs/control-api.md): a job is the daemon's Job object, files
  and errors are its File and ErrorInfo, enums travel as BITS names, HRESULTs as unsigned
  integers with their name beside. The records are encoded by :mod:`bitsd._wire`, the same code
  the daemon uses, so the CLI's JSON cannot drift from the API's.
- Each builder returns the document of one command (its ``$defs`` entry in the schema is named
  after the command); :func:`emit` prints it, one document per run, on stdout.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import click

from bitsd import _wire
from bitsd._enums import JobState
from bitsd._records import ErrorInfo, FileInfo, JobSnapshot

__all__ = [
    "emit",
    "error_doc",
    "files_doc",
    "job_doc",
    "list_doc",
    "transfer_doc",
    "wait_doc",
]

JSON = dict[str, Any]


def job_doc(job: JobSnapshot) -> JSON:
    """``bitsd info`` and ``bitsd create``: the job as the control API's Job object (every
    property but credentials, which are never shown)."""
    return _wire.snapshot_to_json(job)


def list_doc(jobs: Iterable[JobSnapshot]) -> JSON:
    """``bitsd list``: the user's jobs that are not final, oldest first."""
    return {"jobs": [job_doc(j) for j in jobs]}


def files_doc(job_id: str, files: Iterable[FileInfo]) -> JSON:
    """``bitsd files``: the job's files in transfer order."""
    return {"job": job_id, "files": [_wire.file_info_to_json(f) for f in files]}


def error_doc(job_id: str, state: JobState, error: ErrorInfo | None, line: str | None) -> JSON:
    """``bitsd error``: the job's error (null outside ERROR and TRANSIENT_ERROR) and the line
    a person reads for it."""
    return {"job": job_id, "state": state.name, "error": _error(error), "message": line}


def wait_doc(job_id: str, state: JobState, timed_out: bool) -> JSON:
    """``bitsd wait``: the state the job was in when the wait ended."""
    return {"job": job_id, "state": state.name, "timed_out": timed_out}


def transfer_doc(
    job_id: str,
    state: JobState,
    files: Iterable[FileInfo],
    error: ErrorInfo | None = None,
    line: str | None = None,
) -> JSON:
    """``bitsd transfer``: the job, the state it was left in and its files (``--async``: as
    queued; otherwise after Complete, or in ERROR with the error)."""
    return {
        "job": job_id,
        "state": state.name,
        "files": [_wire.file_info_to_json(f) for f in files],
        "error": _error(error),
        "message": line,
    }


def _error(error: ErrorInfo | None) -> JSON | None:
    return None if error is None else _wire.error_info_to_json(error)


def emit(doc: JSON) -> None:
    """Print one document on stdout."""
    click.echo(json.dumps(doc, indent=2, sort_keys=False))
