"""The docs cannot drift from the code: the state diagram is the generated one, and every public
name of the Python API is mentioned in docs/python-api.md."""

from __future__ import annotations

import dataclasses
import importlib.util
import inspect
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

import bitsd
from bitsd._enums import JobState
from bitsd._state import TRANSITIONS, Event
from bitsd.aio import Job

ROOT = Path(__file__).resolve().parents[2]
GENERATOR = ROOT / "tools" / "gen_state_diagram.py"
ARCHITECTURE = ROOT / "docs" / "architecture.md"
PYTHON_API = ROOT / "docs" / "python-api.md"


def _load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_state_diagram", GENERATOR)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _mentioned(name: str, text: str) -> bool:
    """Whether ``name`` occurs in ``text`` as a whole identifier."""
    return re.search(rf"(?<![A-Za-z0-9_]){re.escape(name)}(?![A-Za-z0-9_])", text) is not None


def test_state_diagram_in_architecture_is_current() -> None:
    """``tools/gen_state_diagram.py --check docs/architecture.md`` passes: the diagram between
    the markers is exactly what the transition table generates."""
    result = subprocess.run(
        [sys.executable, str(GENERATOR), "--check", str(ARCHITECTURE)],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr


def test_diagram_draws_every_row_of_the_table() -> None:
    """Every (from, to) pair of TRANSITIONS with different states is one edge labelled with all
    its events; every self-loop is listed as a no-change event; final states end in [*]."""
    block: str = _load_generator().render_block()
    for (source, event), target in TRANSITIONS.items():
        if source is target:
            assert re.search(rf"{source.name}: [^;]*\b{event}\b", block), (source, event)
            continue
        events = sorted(str(e) for (s, e), t in TRANSITIONS.items() if s is source and t is target)
        assert f"    {source.name} --> {target.name}: {', '.join(events)}\n" in block
    assert "    [*] --> SUSPENDED: CreateJob\n" in block
    for state in (JobState.ACKNOWLEDGED, JobState.CANCELLED):
        assert f"    {state.name} --> [*]\n" in block


def test_check_detects_a_changed_table() -> None:
    """A document generated from the table is current; the same document is stale for a table
    with one more row, so a change of TRANSITIONS fails the check until the docs are rewritten."""
    generator = _load_generator()
    text = f"intro\n{generator.BEGIN_MARKER}\nold\n{generator.END_MARKER}\nrest\n"
    updated: str = generator.replace_block(text, generator.render_block())
    assert generator.is_current(updated)
    assert updated.startswith("intro\n")
    assert updated.endswith("rest\n")
    changed = {**TRANSITIONS, (JobState.SUSPENDED, Event.START): JobState.CONNECTING}
    assert not generator.is_current(updated, changed)


def test_every_public_name_is_documented() -> None:
    """Every name in ``bitsd.__all__`` is mentioned in docs/python-api.md."""
    text = PYTHON_API.read_text(encoding="utf-8")
    missing = [name for name in bitsd.__all__ if not _mentioned(name, text)]
    assert missing == []


def test_every_job_method_is_documented() -> None:
    """Every public method of ``bitsd.aio.Job`` appears in docs/python-api.md as a call
    (``name(``)."""
    text = PYTHON_API.read_text(encoding="utf-8")
    methods = [name for name, _ in inspect.getmembers(Job, inspect.isfunction)]
    public = [name for name in methods if not name.startswith("_")]
    assert public, "no public methods found"
    missing = [name for name in public if not re.search(rf"\b{re.escape(name)}\(", text)]
    assert missing == []


@pytest.mark.parametrize("field", [f.name for f in dataclasses.fields(bitsd.EngineConfig)])
def test_every_engine_config_field_is_documented(field: str) -> None:
    """Every EngineConfig field is a row of the EngineConfig table of docs/python-api.md."""
    text = PYTHON_API.read_text(encoding="utf-8")
    assert f"| `{field}` |" in text
