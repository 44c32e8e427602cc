"""Policies as frozen values: retry timing, timeouts, service limits. They decide, never wait.

Rules:
- Every default is a named constant with its unit and its source.
- A policy answers "what now?" from numbers it is given (times on the engine's monotonic clock);
  the scheduler does the waiting.
"""

from __future__ import annotations

import dataclasses
import math
import types
from collections.abc import Mapping

# Runtime imports: the daemon reads these annotations with typing.get_type_hints.
from bitsd._bandwidth import BandwidthSchedule, Limit, parse_limit, parse_priority_limits
from bitsd._cost import DEFAULT_COST_POLL_INTERVAL, DEFAULT_METERED_COST
from bitsd._courtesy import DEFAULT_COURTESY_FLOOR, DEFAULT_COURTESY_THRESHOLD
from bitsd._enums import CostStates, Priority
from bitsd._limits import (
    DEFAULT_MAX_FILES_PER_JOB,
    DEFAULT_MAX_JOBS_PER_USER,
    DEFAULT_MAX_RANGES_PER_FILE,
)

__all__ = [
    "DEFAULT_BACKGROUND_COURTESY",
    "DEFAULT_BANDWIDTH_LIMIT",
    "DEFAULT_CHECKPOINT_BYTES",
    "DEFAULT_CHECKPOINT_SECONDS",
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_FILE_CONCURRENCY",
    "DEFAULT_JOB_INACTIVITY_TIMEOUT",
    "DEFAULT_MAX_BACKGROUND_JOBS",
    "DEFAULT_MAX_DOWNLOAD_TIME",
    "DEFAULT_MAX_NOTIFICATIONS",
    "DEFAULT_MINIMUM_RETRY_DELAY",
    "DEFAULT_NO_PROGRESS_TIMEOUT",
    "DEFAULT_READ_TIMEOUT",
    "DEFAULT_SPLICE_HELPER",
    "DEFAULT_TIME_SLICE",
    "DEFAULT_ZERO_COPY",
    "FINAL_FILES_KEPT",
    "FINAL_JOBS_KEPT",
    "MAX_BYTE_COUNT",
    "MAX_DESCRIPTION_LENGTH",
    "MAX_DISPLAY_NAME_LENGTH",
    "MAX_NOTIFY_PARAMETERS_LENGTH",
    "MAX_NOTIFY_PROGRAM_LENGTH",
    "MAX_URL_LENGTH",
    "MINIMUM_RETRY_DELAY_FLOOR",
    "EngineConfig",
    "RetryDecision",
    "RetryPolicy",
]

# Seconds. BITS default, IBackgroundCopyJob::SetMinimumRetryDelay.
DEFAULT_MINIMUM_RETRY_DELAY = 600.0
# Seconds. BITS floor: smaller values are raised to 5 (SetMinimumRetryDelay).
MINIMUM_RETRY_DELAY_FLOOR = 5.0
# Seconds (14 days). BITS default, SetNoProgressTimeout; 0 means every error is fatal.
DEFAULT_NO_PROGRESS_TIMEOUT = 1_209_600.0
# Seconds (90 days). BITS default, IBackgroundCopyJob4::SetMaximumDownloadTime.
DEFAULT_MAX_DOWNLOAD_TIME = 7_776_000.0
# Seconds (90 days). BITS group-policy default, JobInactivityTimeout.
DEFAULT_JOB_INACTIVITY_TIMEOUT = 7_776_000.0
# Simultaneous notifications per user. BITS, IBackgroundCopyCallback::JobError.
DEFAULT_MAX_NOTIFICATIONS = 4
# Background jobs transferring at once. BITS runs 1; bitsd runs 4 of the best priority level present
# (docs/design-choices.md): one connection rarely fills a link, and priority stays strict because a
# lower level gets no slot while a higher one has runnable jobs.
DEFAULT_MAX_BACKGROUND_JOBS = 4
# Seconds a background job transfers before same-priority jobs get their turn. BITS does not
# document its slice; bitsd's choice.
DEFAULT_TIME_SLICE = 300.0
# Bytes written between two checkpoints (fsync, then the offset is stored). Bounds what a crash
# can make us fetch twice. bitsd's choice.
DEFAULT_CHECKPOINT_BYTES = 8 * 1024 * 1024
# Seconds between two checkpoints of a slow transfer. bitsd's choice.
DEFAULT_CHECKPOINT_SECONDS = 2.0
# Files of one job transferred at once. BITS transfers one at a time; bitsd keeps its observable
# order (files are reported transferred in index order; the first failure in order stops the
# job) and overlaps up to 8, because a small file costs a round trip and a flush, not bandwidth:
# 8 hides the round trips of a loopback or LAN server on 2 cores, and stays within the 6-8
# connections per host that browsers open. 1 restores BITS's strict one-at-a-time.
DEFAULT_FILE_CONCURRENCY = 8
# bitsd's own HTTP/1.1 client takes the downloads it serves exactly like aiohttp
# (bitsd._transfer.rawhttp): http:// bodies move socket → pipe → file with splice(2), https://
# bodies are decrypted into large buffers. bitsd's choice; False keeps every HTTP(S) transfer on
# aiohttp.
DEFAULT_ZERO_COPY = True
# Whether large zero-copy http:// bodies move in a helper process, so the kernel's copy into the
# file runs on another core than the daemon's event loop (bitsd._transfer.splicehelper). bitsd's
# choice; False splices on the loop's thread.
DEFAULT_SPLICE_HELPER = True
# Seconds to wait for a TCP/TLS connection. bitsd's choice (WinHTTP's default is 60).
DEFAULT_CONNECT_TIMEOUT = 60.0
# Seconds without a byte from the server before the read is abandoned (transient). bitsd's choice.
DEFAULT_READ_TIMEOUT = 60.0
# Bytes (or bytes per second). The largest byte count, offset or rate a job keeps: file offsets
# (off_t) and the store's integers are signed 64-bit, so a larger value could be neither a
# position in a file nor stored. Larger values are refused when given.
MAX_BYTE_COUNT = 2**63 - 1
# Characters. BG_FILE_INFO: a remote URL is at most 2,200 characters.
MAX_URL_LENGTH = 2200
# Characters. Start-BitsTransfer -Description; Wine returns BG_E_STRING_TOO_LONG above it.
MAX_DESCRIPTION_LENGTH = 1024
# Characters. BITS does not document it (bitsd's choice, the same bound as the description).
MAX_DISPLAY_NAME_LENGTH = 1024
# Characters. SetNotifyCmdLine: program ≤ MAX_PATH (Linux PATH_MAX is 4,096), parameters ≤ 4,000.
MAX_NOTIFY_PROGRAM_LENGTH = 4096
MAX_NOTIFY_PARAMETERS_LENGTH = 4000
# Ended jobs (Complete, Cancel) whose records stay in memory for the handles callers still
# hold, in the engine and in each client Manager: the most recent ones, at most this many jobs
# and this many files in all; older ones are forgotten, and their handles then answer
# BG_E_NOT_FOUND, as get_job does at once. bitsd's choice: a daemon that runs for months, or a
# client that ends thousands of jobs a day, must not keep every job it ever ended.
FINAL_JOBS_KEPT = 1000
FINAL_FILES_KEPT = 100_000
# Policies (docs/policies.md). Bytes per second for all background jobs together; None = no
# limit. BITS's MaxInternetBandwidth policy is not configured by default.
DEFAULT_BANDWIDTH_LIMIT: float | None = None
# BITS: background jobs use only idle bandwidth (bits-inventory §5.12); on by default.
DEFAULT_BACKGROUND_COURTESY = True
# The other policy defaults live beside their code: DEFAULT_MAX_JOBS_PER_USER (60),
# DEFAULT_MAX_FILES_PER_JOB (200), DEFAULT_MAX_RANGES_PER_FILE (500) in bitsd._limits (BITS
# group-policy defaults); DEFAULT_COURTESY_FLOOR, DEFAULT_COURTESY_THRESHOLD in bitsd._courtesy;
# DEFAULT_COST_POLL_INTERVAL, DEFAULT_METERED_COST in bitsd._cost.


@dataclasses.dataclass(frozen=True, slots=True)
class RetryDecision:
    """What to do after a transient error: retry at ``retry_at``, or fail now (``fatal``)."""

    fatal: bool
    retry_at: float | None = None
    deadline: float | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class RetryPolicy:
    """A job's retry rules (SetMinimumRetryDelay, SetNoProgressTimeout).

    Attributes:
        minimum_retry_delay: seconds before a transient error is retried (floor 5).
        no_progress_timeout: seconds without progress, counted from the first transient error,
            after which the job goes to ERROR; 0 makes every error fatal.
    """

    minimum_retry_delay: float = DEFAULT_MINIMUM_RETRY_DELAY
    no_progress_timeout: float = DEFAULT_NO_PROGRESS_TIMEOUT

    def __post_init__(self) -> None:
        if self.minimum_retry_delay < MINIMUM_RETRY_DELAY_FLOOR:
            object.__setattr__(self, "minimum_retry_delay", MINIMUM_RETRY_DELAY_FLOOR)
        if self.no_progress_timeout < 0:
            raise ValueError("no_progress_timeout must be >= 0")

    def after_transient(
        self, *, now: float, no_progress_since: float, retry_after: float | None = None
    ) -> RetryDecision:
        """Decide what follows a transient error at ``now``.

        Args:
            now: the current monotonic time.
            no_progress_since: when the no-progress timer started (the first transient error
                since the last progress).
            retry_after: seconds the server asked for (Retry-After); honoured when longer than
                the minimum retry delay.

        Returns:
            ``fatal`` when no retry is allowed: the timeout is 0, the retry delay is longer than
            the timeout (BITS does not retry then), or the timeout has run out. Otherwise the
            time of the next attempt and the no-progress deadline.
        """
        timeout = self.no_progress_timeout
        if timeout == 0 or self.minimum_retry_delay > timeout:
            return RetryDecision(fatal=True)
        deadline = no_progress_since + timeout
        if now >= deadline:
            return RetryDecision(fatal=True, deadline=deadline)
        delay = max(self.minimum_retry_delay, retry_after or 0.0)
        return RetryDecision(fatal=False, retry_at=now + delay, deadline=deadline)


@dataclasses.dataclass(frozen=True, slots=True)
class EngineConfig:
    """Service-wide settings of an engine (the daemon's config file sets the same names).

    Attributes:
        max_background_jobs: background jobs transferring at once (see the constant).
        time_slice: seconds of a background job's turn before same-priority jobs run.
        job_inactivity_timeout: seconds after which an untouched job is cancelled.
        default_minimum_retry_delay: a new job's minimum retry delay.
        default_no_progress_timeout: a new job's no-progress timeout.
        notify_retry_interval: seconds between calls of a failing callback; None uses the job's
            minimum retry delay (BITS: "the interval ... is arbitrary").
        max_notifications: notifications in flight at once (BITS: four per user).
        checkpoint_bytes, checkpoint_seconds: how often a transfer's progress is made durable.
        connect_timeout, read_timeout: network timeouts of one request, in seconds.
        chunk_size: bytes read from the network per write.
        file_concurrency: files of one job transferred at once (see the constant); a job with
            a maximum download size transfers one at a time.
        zero_copy: use bitsd's own HTTP client (zero-copy http, large-buffer https) where it
            applies.
        splice_helper: with ``zero_copy``, move large http:// bodies in a helper process (on
            another core than the event loop's).
        bandwidth_limit: bytes per second for all background jobs together (None: no limit,
            0: background jobs are blocked).
        bandwidth_schedule: a weekly limit for all background jobs together, one limit in
            work hours and another outside (BITS MaxInternetBandwidth); a config-file table
            with the same keys is accepted.
        priority_limits: limits per background priority, each a byte rate, None or a
            BandwidthSchedule (BITS EnableBandwidthLimits); keys may be priority names.
        background_courtesy: background jobs back off while other traffic uses the link.
        courtesy_interface: the network interface courtesy watches (None: the default
            route's).
        courtesy_floor: bytes per second background jobs keep under contention.
        courtesy_threshold: share of the link others may use before background jobs back off.
        max_jobs_per_user, max_files_per_job, max_ranges_per_file: BITS's MaxJobsPerUser,
            MaxFilesPerJob, MaxRangesPerFile; 0 means unlimited.
        cost_poll_interval: seconds between two reads of the network's cost.
        metered_cost: the BITS cost state a metered network counts as.
    """

    max_background_jobs: int = DEFAULT_MAX_BACKGROUND_JOBS
    time_slice: float = DEFAULT_TIME_SLICE
    job_inactivity_timeout: float = DEFAULT_JOB_INACTIVITY_TIMEOUT
    default_minimum_retry_delay: float = DEFAULT_MINIMUM_RETRY_DELAY
    default_no_progress_timeout: float = DEFAULT_NO_PROGRESS_TIMEOUT
    notify_retry_interval: float | None = None
    max_notifications: int = DEFAULT_MAX_NOTIFICATIONS
    checkpoint_bytes: int = DEFAULT_CHECKPOINT_BYTES
    checkpoint_seconds: float = DEFAULT_CHECKPOINT_SECONDS
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    read_timeout: float = DEFAULT_READ_TIMEOUT
    chunk_size: int = 1024 * 1024
    file_concurrency: int = DEFAULT_FILE_CONCURRENCY
    zero_copy: bool = DEFAULT_ZERO_COPY
    splice_helper: bool = DEFAULT_SPLICE_HELPER
    # -- policies (bitsd._bandwidth, _courtesy, _limits, _cost; docs/policies.md) --
    bandwidth_limit: float | None = DEFAULT_BANDWIDTH_LIMIT
    bandwidth_schedule: BandwidthSchedule | None = None
    priority_limits: Mapping[Priority, Limit] = dataclasses.field(
        default_factory=lambda: types.MappingProxyType({})
    )
    background_courtesy: bool = DEFAULT_BACKGROUND_COURTESY
    courtesy_interface: str | None = None
    courtesy_floor: float = DEFAULT_COURTESY_FLOOR
    courtesy_threshold: float = DEFAULT_COURTESY_THRESHOLD
    max_jobs_per_user: int = DEFAULT_MAX_JOBS_PER_USER
    max_files_per_job: int = DEFAULT_MAX_FILES_PER_JOB
    max_ranges_per_file: int = DEFAULT_MAX_RANGES_PER_FILE
    cost_poll_interval: float = DEFAULT_COST_POLL_INTERVAL
    metered_cost: int = DEFAULT_METERED_COST

    def __post_init__(self) -> None:
        self._check_policies()
        positive = (
            "max_background_jobs",
            "time_slice",
            "max_notifications",
            "checkpoint_bytes",
            "checkpoint_seconds",
            "connect_timeout",
            "read_timeout",
            "chunk_size",
            "file_concurrency",
            "job_inactivity_timeout",
        )
        for name in positive:
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0")
        if self.default_no_progress_timeout < 0:
            raise ValueError("default_no_progress_timeout must be >= 0")
        if self.default_minimum_retry_delay < 0:
            raise ValueError("default_minimum_retry_delay must be >= 0")
        if self.notify_retry_interval is not None and self.notify_retry_interval <= 0:
            raise ValueError("notify_retry_interval must be > 0 (or None)")

    def _check_policies(self) -> None:
        """Check, and normalise in place, the policy fields (config-file forms accepted)."""
        set_ = object.__setattr__
        limit = parse_limit("bandwidth_limit", self.bandwidth_limit)
        if isinstance(limit, BandwidthSchedule):
            raise ValueError("bandwidth_limit is a byte rate; use bandwidth_schedule for a window")
        set_(self, "bandwidth_limit", limit)
        schedule: object = self.bandwidth_schedule  # a config file gives a table
        if isinstance(schedule, Mapping):
            set_(self, "bandwidth_schedule", BandwidthSchedule.from_mapping(schedule))
        elif schedule is not None and not isinstance(schedule, BandwidthSchedule):
            raise ValueError(f"bandwidth_schedule must be a BandwidthSchedule, not {schedule!r}")
        set_(self, "priority_limits", parse_priority_limits(self.priority_limits))
        if not isinstance(self.background_courtesy, bool):
            raise ValueError("background_courtesy must be true or false")
        if self.courtesy_interface is not None and (
            not isinstance(self.courtesy_interface, str)
            or not self.courtesy_interface
            or self.courtesy_interface == "lo"
        ):
            raise ValueError("courtesy_interface must name a network interface other than lo")
        if not self.courtesy_floor > 0 or math.isinf(self.courtesy_floor):
            raise ValueError("courtesy_floor must be a positive byte rate")
        if not 0 < self.courtesy_threshold <= 1:
            raise ValueError("courtesy_threshold must be a share in (0, 1]")
        for name in ("max_jobs_per_user", "max_files_per_job", "max_ranges_per_file"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be an integer >= 0 (0: unlimited)")
        if not self.cost_poll_interval > 0:
            raise ValueError("cost_poll_interval must be > 0")
        metered = self.metered_cost
        if isinstance(metered, bool) or not isinstance(metered, int):
            raise ValueError("metered_cost must be a BITS_COST_STATE_* value")
        if metered not in {int(s) for s in CostStates if int(s) <= 0x80}:
            raise ValueError(f"metered_cost must be one BITS_COST_STATE_* bit, not {metered!r}")
        set_(self, "metered_cost", CostStates(metered))
