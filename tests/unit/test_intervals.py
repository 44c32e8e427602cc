"""Property tests of the byte spans of on-demand files (bitsd._intervals), against a model: the
plain set of the byte offsets a list of spans covers."""

from __future__ import annotations

import itertools
from collections.abc import Iterable

from hypothesis import given
from hypothesis import strategies as st

from bitsd._intervals import (
    EOF_END,
    Span,
    Spans,
    end_of,
    gaps,
    next_gap,
    normalise,
    remove,
    request,
    resolve,
    subtract,
    total,
    union,
)

SIZE = 64  # small files: the model enumerates their bytes

spans = st.lists(
    st.tuples(st.integers(0, SIZE - 1), st.integers(1, SIZE)).map(
        lambda s: (s[0], min(s[1], SIZE - s[0]))
    ),
    max_size=8,
)


def bytes_of(spans: Iterable[Span]) -> set[int]:
    """The model: every byte offset the spans cover."""
    return {i for offset, length in spans for i in range(offset, offset + length)}


def is_normal(result: Spans) -> bool:
    """Sorted, non-empty, and neither overlapping nor touching."""
    return all(n > 0 for _, n in result) and all(
        a + n < b for (a, n), (b, _) in itertools.pairwise(result)
    )


@given(spans)
def test_normalise_keeps_the_bytes_in_normal_form(a: list[Span]) -> None:
    """normalise covers exactly the bytes of its input, sorted and merged."""
    result = normalise(a)
    assert bytes_of(result) == bytes_of(a)
    assert is_normal(result)
    assert normalise(result) == result


@given(spans, spans)
def test_union_and_subtract_are_the_set_operations(a: list[Span], b: list[Span]) -> None:
    """union is the bytes of either, subtract the bytes of the first not in the second; both
    answer in normal form, and total counts each byte once."""
    assert bytes_of(union(a, b)) == bytes_of(a) | bytes_of(b)
    assert bytes_of(subtract(a, b)) == bytes_of(a) - bytes_of(b)
    assert is_normal(union(a, b))
    assert is_normal(subtract(a, b))
    assert total(a) == len(bytes_of(a))
    assert end_of(a) == max(bytes_of(a), default=-1) + 1


@given(spans, st.integers(0, SIZE))
def test_gaps_are_the_missing_bytes(filled: list[Span], size: int) -> None:
    """gaps(filled, size) is every byte below size that filled lacks."""
    assert bytes_of(gaps(filled, size)) == set(range(size)) - bytes_of(filled)


@given(spans, st.integers(1, SIZE), st.integers(0, SIZE))
def test_next_gap_starts_at_the_position_and_wraps(
    filled: list[Span], size: int, position: int
) -> None:
    """The next gap is missing data only; it is the first missing byte at or after the
    position, else the first missing byte of the file; None once the file is whole."""
    missing = set(range(size)) - bytes_of(filled)
    gap = next_gap(filled, size, position)
    if not missing:
        assert gap is None
        return
    assert gap is not None
    assert bytes_of([gap]) <= missing
    after = sorted(i for i in missing if i >= position)
    assert gap[0] == (after[0] if after else min(missing))
    assert gap[0] + gap[1] == size or gap[0] + gap[1] not in missing  # the whole gap


def test_next_gap_with_an_unknown_size_runs_to_the_end() -> None:
    """Before the size is known, the next gap is everything from the position on."""
    assert next_gap((), None, 100) == (100, EOF_END - 100)


@given(spans, spans, spans)
def test_request_appends_only_what_is_new_in_order(
    queue_in: list[Span], filled: list[Span], new: list[Span]
) -> None:
    """request keeps the queue, then appends the bytes of new that are neither filled nor
    queued, in the order given; the queue stays disjoint."""
    queue = request((), (), queue_in)
    result = request(queue, filled, new)
    assert result[: len(queue)] == queue
    assert bytes_of(result) == bytes_of(queue) | (bytes_of(new) - bytes_of(filled))
    assert sum(n for _, n in result) == len(bytes_of(result))  # disjoint
    # Each appended piece belongs to the first new span holding its first byte: in order.
    owners = [
        next(i for i, s in enumerate(new) if o in bytes_of([s])) for o, _ in result[len(queue) :]
    ]
    assert owners == sorted(owners)


@given(spans, spans)
def test_remove_keeps_the_queue_order(queue_in: list[Span], taken: list[Span]) -> None:
    """remove drops the taken bytes from the queue and keeps the order of what is left."""
    queue = request((), (), queue_in)
    result = remove(queue, taken)
    assert bytes_of(result) == bytes_of(queue) - bytes_of(taken)
    positions = [next(i for i, (o, n) in enumerate(queue) if o <= a < o + n) for a, _ in result]
    assert positions == sorted(positions)


def test_resolve_ends_spans_at_the_end_of_the_file() -> None:
    """A span to EOF_END becomes a span to the end of the file; one that starts at the end is
    dropped, one beyond it is outside, as is a span that runs past the end."""
    queue = ((10, EOF_END - 10), (100, EOF_END - 100), (200, EOF_END - 200), (0, 5), (90, 20))
    kept, outside = resolve(queue, 100)
    assert kept == ((10, 90), (0, 5))
    assert outside == ((200, EOF_END - 200), (90, 20))
