"""Byte spans of a file as (offset, length) pairs: the filled and requested ranges of an
on-demand file (IBackgroundCopyFile6). Pure: no I/O.

Rules:
- A *set* (``Spans``) is normalised: sorted by offset, lengths > 0, no two spans overlapping or
  touching (touching spans are merged). Every function that returns a set returns it
  normalised, whatever order its arguments came in.
- A *queue* is a tuple of disjoint spans in the order they were asked for (RequestFileRanges
  fetches them in that order); :func:`request` and :func:`remove` keep that order.
- "To the end of the file" before the size is known is the span that ends at :data:`EOF_END`
  (offset ``o`` with length ``EOF_END - o``): :func:`resolve` turns it into a real span once the
  size is known. No real file reaches that offset.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from bitsd import codes

__all__ = [
    "EOF_END",
    "Span",
    "Spans",
    "end_of",
    "gaps",
    "next_gap",
    "normalise",
    "remove",
    "request",
    "resolve",
    "subtract",
    "total",
    "union",
]

Span = tuple[int, int]
Spans = tuple[Span, ...]

# The end of a span that runs to the end of a file whose size is not known yet
# (BG_LENGTH_TO_EOF as a position).
EOF_END = codes.LENGTH_TO_EOF


def normalise(spans: Iterable[Span]) -> Spans:
    """The set of bytes ``spans`` cover, normalised (empty spans are dropped)."""
    out: list[list[int]] = []
    for offset, length in sorted(s for s in spans if s[1] > 0):
        end = offset + length
        if out and offset <= out[-1][1]:
            out[-1][1] = max(out[-1][1], end)
        else:
            out.append([offset, end])
    return tuple((a, b - a) for a, b in out)


def union(a: Iterable[Span], b: Iterable[Span]) -> Spans:
    """The bytes of ``a`` and of ``b``."""
    return normalise((*a, *b))


def subtract(a: Iterable[Span], b: Iterable[Span]) -> Spans:
    """The bytes of ``a`` that are not in ``b``."""
    cut = normalise(b)
    out: list[Span] = []
    for offset, length in normalise(a):
        start, end = offset, offset + length
        for c_offset, c_length in cut:
            c_end = c_offset + c_length
            if c_end <= start or c_offset >= end:
                continue
            if c_offset > start:
                out.append((start, c_offset - start))
            start = max(start, c_end)
            if start >= end:
                break
        if start < end:
            out.append((start, end - start))
    return tuple(out)


def total(spans: Iterable[Span]) -> int:
    """How many bytes ``spans`` cover (each byte once)."""
    return sum(length for _, length in normalise(spans))


def end_of(spans: Iterable[Span]) -> int:
    """The offset just past the last byte of ``spans`` (0 for none)."""
    return max((offset + length for offset, length in spans if length > 0), default=0)


def gaps(filled: Iterable[Span], size: int) -> Spans:
    """The bytes of a file of ``size`` bytes that ``filled`` does not hold."""
    return subtract(((0, size),), filled) if size > 0 else ()


def next_gap(filled: Iterable[Span], size: int | None, position: int) -> Span | None:
    """The next missing span to fetch from ``position`` on: the first gap that ends after
    ``position`` (cut to start there), else the first gap of the file (it wraps around); None
    when the file is whole. With the size unknown, everything from ``position`` to the end."""
    if size is None:
        return (position, EOF_END - position)
    missing = gaps(filled, size)
    for offset, length in missing:
        if offset + length > position:
            start = max(offset, position)
            return (start, offset + length - start)
    return missing[0] if missing else None


def remove(queue: Sequence[Span], taken: Iterable[Span]) -> Spans:
    """``queue`` without the bytes of ``taken``, in the queue's order (a span cut in two keeps
    its place as two spans)."""
    held = normalise(taken)
    return tuple(piece for span in queue for piece in subtract((span,), held))


def request(queue: Sequence[Span], filled: Iterable[Span], new: Iterable[Span]) -> Spans:
    """``queue`` with the bytes of ``new`` appended, in the order given, except those already
    filled or queued (so the queue stays disjoint, and nothing is fetched twice)."""
    out = list(queue)
    known = union(filled, queue)
    for span in new:
        pieces = subtract((span,), known)
        out.extend(pieces)
        known = union(known, pieces)
    return tuple(out)


def resolve(queue: Sequence[Span], size: int) -> tuple[Spans, Spans]:
    """The queue for a file of ``size`` bytes: spans ending at :data:`EOF_END` end at the end
    of the file (one that starts exactly there is dropped: its bytes are all held).

    Returns:
        (the queue, resolved, in order; the spans that do not fit in the file).
    """
    kept: list[Span] = []
    outside: list[Span] = []
    for offset, length in queue:
        end = offset + length
        if end == EOF_END and offset <= size:
            if offset < size:
                kept.append((offset, size - offset))
        elif end > size:
            outside.append((offset, length))
        else:
            kept.append((offset, length))
    return tuple(kept), tuple(outside)
