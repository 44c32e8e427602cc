"""Unit tests for the scheduler's bookkeeping bitsd._agenda, against plain models of it."""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

from bitsd._agenda import Agenda, WaitingLine
from bitsd._enums import Priority
from bitsd._scheduler import Candidate, plan

JOB_IDS = st.sampled_from([f"j{i}" for i in range(12)])
PRIORITIES = st.sampled_from(list(Priority))

# One change of a job: (id, waiting, priority, queue_seq), or (id, None) for a forgotten job.
line_ops = st.lists(
    st.one_of(
        st.tuples(JOB_IDS, st.booleans(), PRIORITIES, st.integers(0, 30)),
        st.tuples(JOB_IDS, st.none()),
    ),
    max_size=60,
)


def apply_line(
    ops: list[tuple[object, ...]],
) -> tuple[WaitingLine, dict[str, tuple[Priority, int]]]:
    """The line after ``ops``, and the model: each waiting job's (priority, seq)."""
    line = WaitingLine()
    model: dict[str, tuple[Priority, int]] = {}
    for op in ops:
        job_id = str(op[0])
        if op[1] is None:
            line.remove(job_id)
            model.pop(job_id, None)
            continue
        _, waiting, priority, seq = op
        assert isinstance(priority, Priority)
        assert isinstance(seq, int)
        line.update(job_id, waiting=bool(waiting), priority=priority, queue_seq=seq)
        if waiting:
            model[job_id] = (priority, seq)
        else:
            model.pop(job_id, None)
    return line, model


@given(line_ops, st.integers(0, 5))
def test_heads_are_every_foreground_job_and_the_first_n_of_each_level(
    ops: list[tuple[object, ...]], n: int
) -> None:
    """heads(n): all waiting FOREGROUND jobs, then per priority the n first by (seq, id)."""
    line, model = apply_line(ops)
    expected: list[str] = []
    for priority in Priority:
        level = sorted((seq, job_id) for job_id, (p, seq) in model.items() if p is priority)
        chosen = level if priority is Priority.FOREGROUND else level[:n]
        expected += [job_id for _seq, job_id in chosen]
    assert list(line.heads(n)) == expected
    assert len(line) == len(model)
    assert all(job_id in line for job_id in model)


@given(line_ops, st.integers(0, 5))
def test_is_head_is_membership_of_heads(ops: list[tuple[object, ...]], n: int) -> None:
    """is_head(job, n) answers exactly whether heads(n) holds the job (the engine skips
    planning again for a job that starts waiting outside the heads)."""
    line, _model = apply_line(ops)
    heads = set(line.heads(n))
    for i in range(12):
        assert line.is_head(f"j{i}", n) == (f"j{i}" in heads)


@settings(max_examples=300)
@given(
    st.lists(
        st.tuples(PRIORITIES, st.integers(0, 40), st.booleans(), st.floats(0, 600)), max_size=14
    ),
    st.integers(1, 4),
    st.floats(0, 1200),
)
# Two jobs of a level with the same queue_seq, whose ids sort otherwise as strings ("j10" <
# "j9") than in the list: found by Hypothesis.
@example(
    [(Priority.FOREGROUND, 0, False, 0.0)] * 9 + [(Priority.NORMAL, 0, False, 0.0)] * 3, 1, 0.0
)
def test_plan_over_the_heads_is_the_plan_over_every_job(
    jobs: list[tuple[Priority, int, bool, float]], max_background: int, now: float
) -> None:
    """What the engine relies on: plan() chooses the same from the running jobs and the
    heads(max_background + 1) of the waiting line as from every waiting job."""
    candidates = [
        Candidate(f"j{i}", priority, seq, running, started if running else None)
        for i, (priority, seq, running, started) in enumerate(jobs)
    ]
    line = WaitingLine()
    for c in candidates:
        line.update(c.job_id, waiting=not c.running, priority=c.priority, queue_seq=c.queue_seq)
    heads = set(line.heads(max_background + 1))
    fewer = [c for c in candidates if c.running or c.job_id in heads]

    def choose(jobs: list[Candidate]) -> object:
        return plan(jobs, now=now, max_background=max_background, time_slice=300.0)

    assert choose(fewer) == choose(candidates)


agenda_ops = st.lists(
    st.one_of(
        st.tuples(st.just("touch"), JOB_IDS),
        st.tuples(st.just("schedule"), JOB_IDS, st.one_of(st.none(), st.integers(0, 50))),
        st.tuples(st.just("forget"), JOB_IDS),
        st.tuples(st.just("due"), st.integers(0, 5)),
    ),
    max_size=80,
)


@settings(max_examples=300)
@given(agenda_ops)
def test_agenda_hands_back_touched_and_due_jobs_once(ops: list[tuple[object, ...]]) -> None:
    """due(now): the touched jobs, then every job scheduled at now or before, each once and
    then off the agenda; next_at() is the earliest scheduled time; the heap stays bounded."""
    agenda = Agenda()
    touched: dict[str, None] = {}
    at: dict[str, float] = {}
    now = 0.0
    for op in ops:
        kind, *args = op
        if kind == "touch":
            agenda.touch(str(args[0]))
            touched[str(args[0])] = None
        elif kind == "schedule":
            job_id, when = str(args[0]), args[1]
            agenda.schedule(job_id, None if when is None else float(str(when)))
            if when is None:
                at.pop(job_id, None)
            else:
                at[job_id] = float(str(when))
        elif kind == "forget":
            agenda.forget(str(args[0]))
            touched.pop(str(args[0]), None)
            at.pop(str(args[0]), None)
        else:
            now += float(str(args[0]))
            timed = sorted((when, job_id) for job_id, when in at.items() if when <= now)
            expected = list(touched) + [j for _w, j in timed if j not in touched]
            assert sorted(agenda.due(now)) == sorted(expected)
            touched.clear()
            for _when, job_id in timed:
                del at[job_id]
        assert agenda.next_at() == (min(at.values()) if at else None)
        assert len(agenda) == len(at)
        assert len(agenda._heap) <= 2 * len(at) + 64 + 1


def test_due_orders_touched_jobs_first_in_touch_order() -> None:
    """Touched jobs come back in the order they were touched, before timed ones."""
    agenda = Agenda()
    agenda.schedule("timed", 1.0)
    agenda.touch("b")
    agenda.touch("a")
    agenda.touch("b")
    assert agenda.due(5.0) == ["b", "a", "timed"]
    assert agenda.due(5.0) == []
    assert agenda.next_at() is None
