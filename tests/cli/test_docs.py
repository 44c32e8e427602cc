"""docs/cli.md cannot drift from the command line: every command has its section, every exit
code its row, and every --json document its definition in the schema."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import click

from bitsd.cli import main
from bitsd.cli.errors import ExitCode
from tests.cli.conftest import ROOT

CLI_DOC = (ROOT / "docs" / "cli.md").read_text()


def test_every_command_has_a_section() -> None:
    """Each command of the group is documented under a ``### `bitsd <name>`` heading."""
    ctx = click.Context(main)
    headings = "\n".join(re.findall(r"^### `bitsd ([^`]*)`", CLI_DOC, re.MULTILINE))
    for name in main.list_commands(ctx):
        assert re.search(rf"(^|\|){re.escape(name)}(\||\s|$)", headings, re.MULTILINE), name


def test_every_exit_code_is_documented() -> None:
    """The exit-code table lists every ExitCode value."""
    table = CLI_DOC.split("## Exit codes", 1)[1].split("##", 1)[0]
    for code in ExitCode:
        assert re.search(rf"^\| {int(code)} \|", table, re.MULTILINE), code


def test_every_json_command_is_in_the_schema(schema: Mapping[str, Any]) -> None:
    """Each command with --json has its document in the schema's $defs and in its anyOf."""
    ctx = click.Context(main)
    with_json = []
    for name in main.list_commands(ctx):
        command = main.get_command(ctx, name)
        assert command is not None
        if any("--json" in getattr(p, "opts", ()) for p in command.params):
            with_json.append(name)
    assert set(with_json) == {"create", "error", "files", "info", "list", "transfer", "wait"}
    refs = {ref["$ref"] for ref in schema["anyOf"]}
    for name in with_json:
        assert name in schema["$defs"]
        assert f"#/$defs/{name}" in refs
