"""Service limits (jobs per user, files per job) and the policy gate that holds jobs back.

Rules (bits-inventory §2.13, §3.3, §5.11, §5.12):
- Counting limits are BITS's group-policy defaults: MaxJobsPerUser 60, MaxFilesPerJob 200,
  MaxRangesPerFile 500 (``bitsd._ranges``). 0 means unlimited. Exceeding one is a caller error
  with BITS's code (BG_E_TOO_MANY_JOBS_PER_USER, BG_E_TOO_MANY_FILES_IN_JOB,
  BG_E_TOO_MANY_RANGES_IN_FILE); nothing changes.
- Jobs that are not final count toward MaxJobsPerUser, whatever their state (BITS: "jobs left
  lying around count").
- The gate: a job that may not transfer now waits in TRANSIENT_ERROR with a policy code, and
  goes back to QUEUED as soon as the policy allows it, without retry delay:
  - its transfer policy does not allow the network's cost → BG_E_BLOCKED_BY_COST_TRANSFER_POLICY
    (any priority; this check comes first);
  - a background job under a 0 bandwidth limit → BG_E_BLOCKED_BY_POLICY (never FOREGROUND).
"""

from __future__ import annotations

from bitsd import codes
from bitsd._cost import allows
from bitsd._enums import CostStates, JobState, Priority
from bitsd._errors import BitsError
from bitsd._model import JobRecord
from bitsd._ranges import MAX_RANGES_PER_FILE

__all__ = [
    "DEFAULT_MAX_FILES_PER_JOB",
    "DEFAULT_MAX_JOBS_PER_USER",
    "DEFAULT_MAX_RANGES_PER_FILE",
    "POLICY_BLOCKS",
    "blocked_by",
    "check_file_count",
    "check_job_count",
    "held_by_policy",
]

# Jobs. BITS group-policy default MaxJobsPerUser (admins and service accounts are exempt on
# Windows; bitsd applies it to every user, and the config file can raise it or set 0).
DEFAULT_MAX_JOBS_PER_USER = 60
# Files. BITS group-policy default MaxFilesPerJob (AddFile, AddFileSet).
DEFAULT_MAX_FILES_PER_JOB = 200
# Ranges. BITS group-policy default MaxRangesPerFile (AddFileWithRanges).
DEFAULT_MAX_RANGES_PER_FILE = MAX_RANGES_PER_FILE

# The codes of a job held in TRANSIENT_ERROR by a policy rather than by a failed transfer.
POLICY_BLOCKS = frozenset(
    {codes.BG_E_BLOCKED_BY_POLICY, codes.BG_E_BLOCKED_BY_COST_TRANSFER_POLICY}
)


def check_job_count(jobs: int, limit: int) -> None:
    """Raise BG_E_TOO_MANY_JOBS_PER_USER if one more job would exceed ``limit`` (0: none).

    Args:
        jobs: the user's jobs that are not final.
    """
    if limit and jobs >= limit:
        raise BitsError(
            f"the user has {jobs} jobs; at most {limit} (max_jobs_per_user)",
            hresult=codes.BG_E_TOO_MANY_JOBS_PER_USER,
        )


def check_file_count(existing: int, adding: int, limit: int) -> None:
    """Raise BG_E_TOO_MANY_FILES_IN_JOB if ``adding`` more files exceed ``limit`` (0: none)."""
    if limit and existing + adding > limit:
        raise BitsError(
            f"the job has {existing} files and {adding} more were given; at most {limit} "
            "(max_files_per_job)",
            hresult=codes.BG_E_TOO_MANY_FILES_IN_JOB,
        )


def blocked_by(
    *,
    priority: Priority,
    transfer_policy: int,
    cost: CostStates,
    bandwidth_blocked: bool,
) -> int | None:
    """The policy code that forbids a job to transfer now, or None.

    Args:
        priority: the job's priority.
        transfer_policy: the job's cost flags.
        cost: the current network's cost state.
        bandwidth_blocked: a 0 limit governs the job's priority level now.
    """
    if not allows(transfer_policy, cost):
        return codes.BG_E_BLOCKED_BY_COST_TRANSFER_POLICY
    if priority is not Priority.FOREGROUND and bandwidth_blocked:
        return codes.BG_E_BLOCKED_BY_POLICY
    return None


def held_by_policy(job: JobRecord) -> bool:
    """Whether the job waits in TRANSIENT_ERROR for a policy (not for a retry delay)."""
    return (
        job.state is JobState.TRANSIENT_ERROR
        and job.retry_at is None
        and job.error is not None
        and job.error.code in POLICY_BLOCKS
    )
