"""The BITS job state machine: states, events and the transition table. Pure: no I/O, no clock.

Rules:
- Every state change of a job is ``apply(state, event)``; a pair that is not in :data:`TRANSITIONS`
  raises :class:`InvalidTransitionError` (a ``BG_E_INVALID_STATE`` error) and changes nothing.
- A final state (ACKNOWLEDGED, CANCELLED) has no outgoing transition.
- Events that BITS documents as "no change" (Resume of an active job, Suspend of a suspended one)
  are in the table with the same state on both sides, so callers need no special cases.
- Preconditions that depend on more than the state (Resume needs files, Complete of an upload job
  needs TRANSFERRED) are the engine's; this module only knows states.

Sources are the rows of bits-inventory §1.3; docs/architecture.md draws this table.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

from bitsd._enums import JobState
from bitsd._errors import InvalidStateError

__all__ = ["TRANSITIONS", "Event", "InvalidTransitionError", "allowed_events", "apply"]

Q, C, T = JobState.QUEUED, JobState.CONNECTING, JobState.TRANSFERRING
S, E, TE = JobState.SUSPENDED, JobState.ERROR, JobState.TRANSIENT_ERROR
TD, ACK, X = JobState.TRANSFERRED, JobState.ACKNOWLEDGED, JobState.CANCELLED


class Event(enum.Enum):
    """What can happen to a job. Verbs are the caller's; the others are the service's."""

    RESUME = "Resume"  # caller: Resume()
    SUSPEND = "Suspend"  # caller: Suspend()
    CANCEL = "Cancel"  # caller: Cancel(), or the job inactivity timeout
    COMPLETE = "Complete"  # caller: Complete()
    START = "Start"  # scheduler gives the job its turn
    CONNECTED = "Connected"  # the first response arrived
    REQUEUE = "Requeue"  # time slice ended, pre-empted, or the service restarted
    ALL_TRANSFERRED = "AllTransferred"  # the last file is in its temporary file
    TRANSIENT_FAILURE = "TransientFailure"  # a recoverable error
    FATAL_FAILURE = "FatalFailure"  # a fatal error, no-progress timeout, MaxDownloadTime
    RETRY = "Retry"  # the minimum retry delay expired
    VALIDATION_FAILED = "ValidationFailed"  # SetValidationState(FALSE) on a transferred file
    BLOCKED = "Blocked"  # a policy forbids the transfer now (0 bandwidth limit, network cost)
    UNBLOCKED = "Unblocked"  # the policy that held the job allows it again
    RANGES_DONE = "RangesDone"  # on-demand: every requested range is in, a file is not whole

    def __str__(self) -> str:
        return self.value


_NON_FINAL = (Q, C, T, S, E, TE, TD)

TRANSITIONS: Mapping[tuple[JobState, Event], JobState] = {
    # Resume: SUSPENDED / ERROR / TRANSIENT_ERROR → QUEUED; no change in the action states.
    # TRANSFERRED → QUEUED when files were added after the transfer ("not a common practice").
    (S, Event.RESUME): Q,
    (E, Event.RESUME): Q,
    (TE, Event.RESUME): Q,
    (TD, Event.RESUME): Q,
    (Q, Event.RESUME): Q,
    (C, Event.RESUME): C,
    (T, Event.RESUME): T,
    # Suspend, Cancel, Complete: any non-final state.
    **{(s, Event.SUSPEND): S for s in _NON_FINAL},
    **{(s, Event.CANCEL): X for s in _NON_FINAL},
    **{(s, Event.COMPLETE): ACK for s in _NON_FINAL},
    # The scheduler.
    (Q, Event.START): C,
    (C, Event.CONNECTED): T,
    (T, Event.CONNECTED): T,
    (C, Event.REQUEUE): Q,
    (T, Event.REQUEUE): Q,
    (Q, Event.REQUEUE): Q,
    # Outcomes of a run. QUEUED → TRANSFERRED happens when every file was already done.
    (Q, Event.ALL_TRANSFERRED): TD,
    (C, Event.ALL_TRANSFERRED): TD,
    (T, Event.ALL_TRANSFERRED): TD,
    (C, Event.TRANSIENT_FAILURE): TE,
    (T, Event.TRANSIENT_FAILURE): TE,
    (Q, Event.FATAL_FAILURE): E,
    (C, Event.FATAL_FAILURE): E,
    (T, Event.FATAL_FAILURE): E,
    (TE, Event.FATAL_FAILURE): E,  # no progress for the no-progress timeout
    (TE, Event.RETRY): Q,
    # SetValidationState(FALSE) on a finished file: BITS documents it for TRANSFERRED; a file
    # validated from its FileTransferred callback may belong to a job still at work.
    (TD, Event.VALIDATION_FAILED): E,
    (Q, Event.VALIDATION_FAILED): E,
    (C, Event.VALIDATION_FAILED): E,
    (T, Event.VALIDATION_FAILED): E,
    (S, Event.VALIDATION_FAILED): E,
    (TE, Event.VALIDATION_FAILED): E,
    # Policies (bits-inventory §3.3, §5.11, §5.12; docs/policies.md): a job that a policy
    # forbids to transfer (MaxInternetBandwidth 0 → BG_E_BLOCKED_BY_POLICY; a network too
    # expensive for its transfer policy → BG_E_BLOCKED_BY_COST_TRANSFER_POLICY) shows
    # TRANSIENT_ERROR, from QUEUED or while at work; TE → TE when the reason changes. It is
    # re-queued when the policy allows it again (after the window, when the cost changes),
    # not on the retry timer.
    (Q, Event.BLOCKED): TE,
    (C, Event.BLOCKED): TE,
    (T, Event.BLOCKED): TE,
    (TE, Event.BLOCKED): TE,
    (TE, Event.UNBLOCKED): Q,
    # On-demand jobs (bits-inventory §5.6, RequestFileRanges): when every requested range is
    # in, TRANSFERRED if the whole file is present (ALL_TRANSFERRED), otherwise SUSPENDED.
    (C, Event.RANGES_DONE): S,
    (T, Event.RANGES_DONE): S,
}


class InvalidTransitionError(InvalidStateError):
    """``(state, event)`` is not in the table; the job is unchanged."""

    def __init__(self, state: JobState, event: Event) -> None:
        super().__init__(f"{event} is not allowed when the job is {state}")
        self.state = state
        self.event = event


def apply(state: JobState, event: Event) -> JobState:
    """The state after ``event``.

    Raises:
        InvalidTransitionError: the table has no row for ``(state, event)``.
    """
    try:
        return TRANSITIONS[(state, event)]
    except KeyError:
        raise InvalidTransitionError(state, event) from None


def allowed_events(state: JobState) -> frozenset[Event]:
    """The events that have a row for ``state`` (empty for a final state)."""
    return frozenset(ev for (s, ev) in TRANSITIONS if s is state)
