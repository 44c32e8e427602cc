"""Draw the BITS job state machine as a Mermaid ``stateDiagram-v2`` from ``bitsd._state``.

Every edge comes from :data:`bitsd._state.TRANSITIONS`; only the entry edge
``[*] --> SUSPENDED`` (CreateJob) is written here, because job creation is not an event of the
table. Rules of the drawing:

- one edge per (from, to) pair, labelled with its events sorted by name and joined with ", ";
- events that leave the state unchanged (self-loops) are not drawn; they are listed in one
  "No-change events" line under the diagram;
- states with no outgoing row (the final states) get an edge to ``[*]``;
- edges are ordered by the BITS numeric values of their states, so the output is deterministic.

Usage::

    python tools/gen_state_diagram.py                              # print the Markdown block
    python tools/gen_state_diagram.py --check docs/architecture.md # exit 1 if the file is stale
    python tools/gen_state_diagram.py --write docs/architecture.md # rewrite the file's block

The block lives between the lines ``<!-- state-diagram:begin -->`` and
``<!-- state-diagram:end -->``.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path

from bitsd._enums import JobState
from bitsd._state import TRANSITIONS, Event

__all__ = [
    "BEGIN_MARKER",
    "END_MARKER",
    "extract_block",
    "is_current",
    "main",
    "render_block",
    "render_diagram",
    "replace_block",
]

BEGIN_MARKER = "<!-- state-diagram:begin -->"
END_MARKER = "<!-- state-diagram:end -->"
INITIAL_STATE = JobState.SUSPENDED
INITIAL_LABEL = "CreateJob"

Table = Mapping[tuple[JobState, Event], JobState]


def _edges(table: Table) -> dict[tuple[JobState, JobState], list[str]]:
    """(from, to) → sorted event names, for every row whose target differs from its source."""
    edges: defaultdict[tuple[JobState, JobState], list[str]] = defaultdict(list)
    for (source, event), target in table.items():
        if source is not target:
            edges[(source, target)].append(str(event))
    return {pair: sorted(events) for pair, events in edges.items()}


def _self_loops(table: Table) -> dict[JobState, list[str]]:
    """State → sorted names of the events that leave it unchanged."""
    loops: defaultdict[JobState, list[str]] = defaultdict(list)
    for (source, event), target in table.items():
        if source is target:
            loops[source].append(str(event))
    return {state: sorted(events) for state, events in loops.items()}


def _final_states(table: Table) -> list[JobState]:
    """States that the table enters but never leaves."""
    sources = {source for source, _ in table}
    targets = set(table.values())
    return sorted(targets - sources)


def render_diagram(table: Table = TRANSITIONS) -> str:
    """The Mermaid ``stateDiagram-v2`` source of ``table``, ending with a newline."""
    lines = ["stateDiagram-v2", f"    [*] --> {INITIAL_STATE.name}: {INITIAL_LABEL}"]
    edges = _edges(table)
    for source, target in sorted(edges):
        label = ", ".join(edges[(source, target)])
        lines.append(f"    {source.name} --> {target.name}: {label}")
    lines.extend(f"    {state.name} --> [*]" for state in _final_states(table))
    return "\n".join(lines) + "\n"


def render_block(table: Table = TRANSITIONS) -> str:
    """The Markdown that belongs between the markers: the fenced diagram and the no-change line."""
    loops = _self_loops(table)
    no_change = "; ".join(f"{state.name}: {', '.join(loops[state])}" for state in sorted(loops))
    return (
        "```mermaid\n"
        + render_diagram(table)
        + "```\n\n"
        + f"No-change events (the state stays the same; not drawn): {no_change}.\n"
    )


def _span(text: str) -> tuple[int, int] | None:
    """Start and end offsets of what lies between the markers, or None if they are missing."""
    begin = text.find(BEGIN_MARKER)
    if begin < 0:
        return None
    start = begin + len(BEGIN_MARKER)
    end = text.find(END_MARKER, start)
    if end < 0:
        return None
    return start, end


def extract_block(text: str) -> str | None:
    """The text between the markers (without them), or None if a marker is missing."""
    span = _span(text)
    return None if span is None else text[span[0] : span[1]]


def replace_block(text: str, block: str) -> str:
    """``text`` with the content between the markers replaced by ``block``.

    Raises:
        ValueError: a marker is missing.
    """
    span = _span(text)
    if span is None:
        raise ValueError(f"the markers {BEGIN_MARKER} and {END_MARKER} are missing")
    return text[: span[0]] + "\n" + block + text[span[1] :]


def is_current(text: str, table: Table = TRANSITIONS) -> bool:
    """Whether the block between the markers of ``text`` is the generated one."""
    found = extract_block(text)
    return found is not None and found.strip() == render_block(table).strip()


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status (0 ok, 1 stale, 2 no markers)."""
    parser = argparse.ArgumentParser(
        prog="gen_state_diagram.py",
        description="Generate the Mermaid state diagram of bitsd's job state machine.",
    )
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--check", type=Path, metavar="FILE", help="exit 1 if FILE's block differs")
    group.add_argument("--write", type=Path, metavar="FILE", help="rewrite FILE's block")
    args = parser.parse_args(argv)
    block = render_block()
    path: Path | None = args.check or args.write
    if path is None:
        sys.stdout.write(block)
        return 0
    text = path.read_text(encoding="utf-8")
    if extract_block(text) is None:
        print(f"{path}: missing {BEGIN_MARKER} / {END_MARKER}", file=sys.stderr)
        return 2
    if args.check:
        if is_current(text):
            return 0
        print(
            f"{path}: the state diagram differs from bitsd._state.TRANSITIONS; "
            f"run: python tools/gen_state_diagram.py --write {path}",
            file=sys.stderr,
        )
        return 1
    updated = replace_block(text, block)
    if updated != text:
        path.write_text(updated, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
