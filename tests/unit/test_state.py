"""Unit tests for the job state machine (bitsd._state) against bits-inventory §1.3.

The expectation table below is written by hand from the inventory, row by row, and does not
reuse anything from the module under test, so an edit of ``TRANSITIONS`` that adds, drops or
redirects a row fails here.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import bitsd
from bitsd import codes
from bitsd._enums import JobState
from bitsd._state import TRANSITIONS, Event, InvalidTransitionError, allowed_events, apply

QUEUED = JobState.QUEUED
CONNECTING = JobState.CONNECTING
TRANSFERRING = JobState.TRANSFERRING
SUSPENDED = JobState.SUSPENDED
ERROR = JobState.ERROR
TRANSIENT_ERROR = JobState.TRANSIENT_ERROR
TRANSFERRED = JobState.TRANSFERRED
ACKNOWLEDGED = JobState.ACKNOWLEDGED
CANCELLED = JobState.CANCELLED

FINAL_STATES = (ACKNOWLEDGED, CANCELLED)

# (from, event, to), one line per legal pair, written out in full from bits-inventory §1.3.
EXPECTED_ROWS: list[tuple[JobState, Event, JobState]] = [
    # Resume(): SUSPENDED / ERROR / TRANSIENT_ERROR → QUEUED ("retry"); TRANSFERRED → QUEUED after
    # AddFile ("not a common practice"); an action state does not change.
    (SUSPENDED, Event.RESUME, QUEUED),
    (ERROR, Event.RESUME, QUEUED),
    (TRANSIENT_ERROR, Event.RESUME, QUEUED),
    (TRANSFERRED, Event.RESUME, QUEUED),
    (QUEUED, Event.RESUME, QUEUED),
    (CONNECTING, Event.RESUME, CONNECTING),
    (TRANSFERRING, Event.RESUME, TRANSFERRING),
    # Suspend(): any non-final → SUSPENDED (a suspended job stays suspended).
    (QUEUED, Event.SUSPEND, SUSPENDED),
    (CONNECTING, Event.SUSPEND, SUSPENDED),
    (TRANSFERRING, Event.SUSPEND, SUSPENDED),
    (SUSPENDED, Event.SUSPEND, SUSPENDED),
    (ERROR, Event.SUSPEND, SUSPENDED),
    (TRANSIENT_ERROR, Event.SUSPEND, SUSPENDED),
    (TRANSFERRED, Event.SUSPEND, SUSPENDED),
    # Cancel(): any non-final → CANCELLED.
    (QUEUED, Event.CANCEL, CANCELLED),
    (CONNECTING, Event.CANCEL, CANCELLED),
    (TRANSFERRING, Event.CANCEL, CANCELLED),
    (SUSPENDED, Event.CANCEL, CANCELLED),
    (ERROR, Event.CANCEL, CANCELLED),
    (TRANSIENT_ERROR, Event.CANCEL, CANCELLED),
    (TRANSFERRED, Event.CANCEL, CANCELLED),
    # Complete(): any non-final → ACKNOWLEDGED (the upload-only TRANSFERRED rule is the engine's).
    (QUEUED, Event.COMPLETE, ACKNOWLEDGED),
    (CONNECTING, Event.COMPLETE, ACKNOWLEDGED),
    (TRANSFERRING, Event.COMPLETE, ACKNOWLEDGED),
    (SUSPENDED, Event.COMPLETE, ACKNOWLEDGED),
    (ERROR, Event.COMPLETE, ACKNOWLEDGED),
    (TRANSIENT_ERROR, Event.COMPLETE, ACKNOWLEDGED),
    (TRANSFERRED, Event.COMPLETE, ACKNOWLEDGED),
    # The scheduler gives a QUEUED job its turn; the connection succeeds.
    (QUEUED, Event.START, CONNECTING),
    (CONNECTING, Event.CONNECTED, TRANSFERRING),
    (TRANSFERRING, Event.CONNECTED, TRANSFERRING),
    # Time slice ends, pre-emption, service restart: back to QUEUED.
    (QUEUED, Event.REQUEUE, QUEUED),
    (CONNECTING, Event.REQUEUE, QUEUED),
    (TRANSFERRING, Event.REQUEUE, QUEUED),
    # All files transferred (QUEUED when every file was already complete).
    (QUEUED, Event.ALL_TRANSFERRED, TRANSFERRED),
    (CONNECTING, Event.ALL_TRANSFERRED, TRANSFERRED),
    (TRANSFERRING, Event.ALL_TRANSFERRED, TRANSFERRED),
    # Connection fails / a recoverable error while transferring.
    (CONNECTING, Event.TRANSIENT_FAILURE, TRANSIENT_ERROR),
    (TRANSFERRING, Event.TRANSIENT_FAILURE, TRANSIENT_ERROR),
    # A fatal error in an active state; TRANSIENT_ERROR → ERROR after the no-progress timeout.
    (QUEUED, Event.FATAL_FAILURE, ERROR),
    (CONNECTING, Event.FATAL_FAILURE, ERROR),
    (TRANSFERRING, Event.FATAL_FAILURE, ERROR),
    (TRANSIENT_ERROR, Event.FATAL_FAILURE, ERROR),
    # The minimum retry delay expires.
    (TRANSIENT_ERROR, Event.RETRY, QUEUED),
    # SetValidationState(FALSE) on a transferred file.
    (TRANSFERRED, Event.VALIDATION_FAILED, ERROR),
    # bitsd: a file rejected from FileTransferred while the job is still at work.
    (QUEUED, Event.VALIDATION_FAILED, ERROR),
    (CONNECTING, Event.VALIDATION_FAILED, ERROR),
    (TRANSFERRING, Event.VALIDATION_FAILED, ERROR),
    (SUSPENDED, Event.VALIDATION_FAILED, ERROR),
    (TRANSIENT_ERROR, Event.VALIDATION_FAILED, ERROR),
    # A policy forbids the transfer now (0 bandwidth limit in the window: BG_E_BLOCKED_BY_POLICY;
    # network cost not in the transfer policy: BG_E_BLOCKED_BY_COST_TRANSFER_POLICY): the job
    # shows TRANSIENT_ERROR (§3.3, §5.11, §5.12), also when a new reason replaces the old one.
    (QUEUED, Event.BLOCKED, TRANSIENT_ERROR),
    (CONNECTING, Event.BLOCKED, TRANSIENT_ERROR),
    (TRANSFERRING, Event.BLOCKED, TRANSIENT_ERROR),
    (TRANSIENT_ERROR, Event.BLOCKED, TRANSIENT_ERROR),
    # The window ends / the cost changes: re-queued without the retry delay.
    (TRANSIENT_ERROR, Event.UNBLOCKED, QUEUED),
    # On-demand: the requested ranges are in and a file is not whole (RequestFileRanges).
    (CONNECTING, Event.RANGES_DONE, SUSPENDED),
    (TRANSFERRING, Event.RANGES_DONE, SUSPENDED),
]
EXPECTED: dict[tuple[JobState, Event], JobState] = {(s, e): t for s, e, t in EXPECTED_ROWS}

ALL_PAIRS = list(itertools.product(JobState, Event))
ILLEGAL_PAIRS = [pair for pair in ALL_PAIRS if pair not in EXPECTED]


def _ids(pairs: list[tuple[JobState, Event]]) -> list[str]:
    return [f"{s.name}-{e.name}" for s, e in pairs]


def test_expectation_table_has_no_duplicate_rows() -> None:
    """The hand-written table lists every (state, event) pair at most once."""
    assert len(EXPECTED_ROWS) == len(EXPECTED)


@pytest.mark.parametrize(
    ("state", "event", "expected"), EXPECTED_ROWS, ids=_ids([(s, e) for s, e, _ in EXPECTED_ROWS])
)
def test_every_expected_row_is_in_the_table(
    state: JobState, event: Event, expected: JobState
) -> None:
    """Each legal transition of §1.3 is in TRANSITIONS and apply() lands in the expected state."""
    assert expected == TRANSITIONS.get((state, event))
    assert expected == apply(state, event)


@pytest.mark.parametrize(("state", "event"), list(TRANSITIONS), ids=_ids(list(TRANSITIONS)))
def test_every_table_row_is_expected(state: JobState, event: Event) -> None:
    """TRANSITIONS has no row that the hand-written expectation table does not have."""
    assert EXPECTED.get((state, event)) == TRANSITIONS[(state, event)]


def test_table_equals_expectation_exactly() -> None:
    """TRANSITIONS as a whole is exactly the hand-written table: no extra or missing rows."""
    assert dict(TRANSITIONS) == EXPECTED


@pytest.mark.parametrize(("state", "event"), ILLEGAL_PAIRS, ids=_ids(ILLEGAL_PAIRS))
def test_pairs_not_in_the_table_raise_invalid_state(state: JobState, event: Event) -> None:
    """A (state, event) pair with no row raises InvalidTransitionError (BG_E_INVALID_STATE)."""
    with pytest.raises(InvalidTransitionError) as info:
        apply(state, event)
    err = info.value
    assert isinstance(err, bitsd.InvalidStateError)
    assert isinstance(err, bitsd.BitsError)
    assert err.hresult == codes.BG_E_INVALID_STATE
    assert state == err.state
    assert event == err.event


def test_invalid_transition_error_is_an_invalid_state_error() -> None:
    """InvalidTransitionError subclasses the public bitsd.InvalidStateError."""
    assert issubclass(InvalidTransitionError, bitsd.InvalidStateError)


@pytest.mark.parametrize("state", FINAL_STATES, ids=str)
def test_final_states_have_no_outgoing_events(state: JobState) -> None:
    """ACKNOWLEDGED and CANCELLED have no row in the table and reject every event."""
    assert frozenset() == allowed_events(state)
    assert [e for (s, e) in TRANSITIONS if s is state] == []
    for event in Event:
        with pytest.raises(InvalidTransitionError):
            apply(state, event)


@pytest.mark.parametrize("state", list(JobState), ids=str)
def test_allowed_events_match_the_expectation(state: JobState) -> None:
    """allowed_events(state) is exactly the events the expectation table has for that state."""
    expected = frozenset(e for (s, e) in EXPECTED if s is state)
    assert expected == allowed_events(state)


def test_no_transition_enters_a_state_other_than_known_ones() -> None:
    """Every target of the table is a JobState and no row leaves a final state."""
    assert all(isinstance(t, JobState) for t in TRANSITIONS.values())
    assert all(not s.is_final for (s, _) in TRANSITIONS)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(list(Event)), max_size=40))
def test_random_event_sequences_follow_the_table(events: list[Event]) -> None:
    """From SUSPENDED, each event follows the table or raises without a change; finals stick."""
    state = SUSPENDED
    for event in events:
        before = state
        if (before, event) in EXPECTED:
            state = apply(before, event)
            assert EXPECTED[(before, event)] == state
        else:
            with pytest.raises(InvalidTransitionError):
                state = apply(before, event)
            assert before == state
        if before.is_final:
            assert before == state
