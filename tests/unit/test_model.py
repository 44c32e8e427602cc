"""bitsd._model.evolve: the same record as dataclasses.replace, for every record class."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import bitsd._model
from bitsd import JobState, JobType, Priority
from bitsd._enums import ErrorContext
from bitsd._model import ErrorRecord, FileRecord, JobRecord, PendingNotification, evolve

_JOB = JobRecord(
    id="0f1e2d3c-0000-4000-8000-000000000001",
    display_name="job",
    type=JobType.DOWNLOAD,
    state=JobState.SUSPENDED,
    creation_time=1.0,
    modification_time=2.0,
)
_FILE = FileRecord(
    job_id=_JOB.id,
    index=0,
    remote_name="http://example.invalid/a",
    local_name="/tmp/a",
    temp_name="/tmp/.a.tmp",
)
# Values of the right types for some fields, to change any subset of them at once.
_JOB_VALUES = {
    "state": st.sampled_from(JobState),
    "priority": st.sampled_from(Priority),
    "retry_at": st.none() | st.floats(allow_nan=False),
    "last_activity_at": st.floats(allow_nan=False),
    "error_count": st.integers(0, 10),
    "display_name": st.text(max_size=5),
    "credentials": st.just(((1, 2, "u", "p"),)),
    "error": st.none() | st.just(ErrorRecord(5, ErrorContext.REMOTE_FILE, "x", 0, "HTTP")),
}


@given(st.fixed_dictionaries({}, optional=_JOB_VALUES))
def test_evolve_makes_what_replace_makes(changes: dict[str, Any]) -> None:
    made = evolve(_JOB, **changes)
    expected = dataclasses.replace(_JOB, **changes)
    assert type(made) is JobRecord
    # Every field, also any that equality would skip.
    names = [f.name for f in dataclasses.fields(JobRecord)]
    assert [getattr(made, n) for n in names] == [getattr(expected, n) for n in names]


@given(st.integers(0, 2**40), st.booleans())
def test_evolve_of_a_file_record(transferred: int, completed: bool) -> None:
    made = evolve(_FILE, bytes_transferred=transferred, completed=completed)
    assert made == dataclasses.replace(_FILE, bytes_transferred=transferred, completed=completed)
    assert _FILE.bytes_transferred == 0  # the original is untouched


def test_evolve_keeps_records_frozen() -> None:
    made = evolve(_JOB, state=JobState.QUEUED)
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.state = JobState.SUSPENDED  # type: ignore[misc]


def test_evolve_refuses_a_name_that_is_not_a_field() -> None:
    with pytest.raises(TypeError, match="not a field of JobRecord: \\['stat'\\]"):
        evolve(_JOB, stat=JobState.QUEUED)
    with pytest.raises(TypeError):
        evolve(PendingNotification(_JOB.id, "job_error", JobState.ERROR), nope=1)


def test_evolve_of_other_dataclasses_is_replace() -> None:
    """Without slots (or with __post_init__), evolve is dataclasses.replace itself."""

    @dataclasses.dataclass(frozen=True)
    class Checked:
        value: int
        doubled: int = dataclasses.field(init=False)

        def __post_init__(self) -> None:
            object.__setattr__(self, "doubled", self.value * 2)

    assert evolve(Checked(1), value=4).doubled == 8


def test_evolve_keeps_a_bounded_number_of_makers(monkeypatch: pytest.MonkeyPatch) -> None:
    """A maker is kept per class and set of names changed, at most ``_MAKERS_KEPT`` of them:
    changes of ever new subsets of fields do not grow it without end."""
    monkeypatch.setattr(bitsd._model, "_MAKERS", {})
    monkeypatch.setattr(bitsd._model, "_MAKERS_KEPT", 2)
    for changes in ({"index": 1}, {"completed": True}, {"index": 2, "completed": True}):
        assert evolve(_FILE, **changes) == dataclasses.replace(_FILE, **changes)
        assert len(bitsd._model._MAKERS) <= 2
    assert evolve(_FILE, completed=True, index=3) == dataclasses.replace(
        _FILE, index=3, completed=True
    )
