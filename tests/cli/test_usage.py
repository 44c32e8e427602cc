"""What the command line does before any job exists: usage errors, --version, shell
completion, an unreachable daemon, and ``list --json``."""

from __future__ import annotations

import contextlib
import socket as sock_module
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import bitsd
from bitsd.cli import main
from tests.cli.conftest import Cli, validate
from tests.client.daemon import short_tmp


@pytest.mark.parametrize(
    "args",
    [
        ["transfer"],
        ["transfer", "http://h/a", "http://h/b", "-o", "/tmp/x"],
        ["transfer", "http://h/a", "-o", "/tmp/x", "-d", "/tmp"],
        ["transfer", "http://h/", "-d", "/tmp"],
        ["transfer", "http://h/a", "--priority", "urgent"],
        ["transfer", "http://h/a", "--retry-delay", "soon"],
        ["transfer", "http://h/a", "--notify-cmd", "no-such-program-anywhere"],
        ["set", "JOB", "--notify-flags", "JOB_EXPLODED"],
        ["set", "JOB"],
        ["wait", "JOB", "--state", "DONE"],
        ["add", "JOB", "http://h/a"],
        ["create", "x", "--type", "sideload"],
        ["completion", "tcsh"],
        ["frobnicate"],
    ],
)
def test_bad_arguments_print_usage_and_exit_2(args: list[str]) -> None:
    """Every bad argument is caught before the daemon is asked: usage, exit 2, no traceback."""
    result = CliRunner().invoke(main, args, env={"BITSD_NO_AUTOSTART": "1"})
    assert result.exit_code == 2, result.output
    assert "Usage:" in result.stderr
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_version() -> None:
    """--version prints the package version."""
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"bitsd, version {bitsd.__version__}"


@pytest.mark.parametrize(("shell", "marker"), [("bash", "complete -o"), ("zsh", "compdef")])
def test_completion_scripts(shell: str, marker: str) -> None:
    """completion prints click's script, which calls bitsd back through _BITSD_COMPLETE, and
    says on stderr how to install it."""
    result = CliRunner().invoke(main, ["completion", shell])
    assert result.exit_code == 0, result.output
    assert "_BITSD_COMPLETE" in result.stdout
    assert marker in result.stdout
    assert "install" in result.stderr


def test_completion_callback_lists_commands(cli: Cli) -> None:
    """The shell's call back (the installed entry point with _BITSD_COMPLETE=bash_complete)
    completes command names."""
    done = cli.process(
        env_extra={"_BITSD_COMPLETE": "bash_complete", "COMP_WORDS": "bitsd tra", "COMP_CWORD": "1"}
    )
    assert done.returncode == 0, done.stderr
    assert "plain,transfer" in done.stdout.splitlines()


def test_unreachable_daemon_exits_3() -> None:
    """No daemon on the socket and autostart off (option or BITSD_NO_AUTOSTART): exit 3 with
    one line naming the failure and what to do; nothing is started. A socket file nobody
    listens on fails the same way."""
    with short_tmp() as root:
        socket = root / "nobody.sock"
        env = {"BITSD_SOCKET": str(socket), "BITSD_STATE_DIR": str(root / "state")}
        by_option = CliRunner().invoke(main, ["--no-autostart", "list"], env=env)
        by_env = CliRunner().invoke(main, ["info", "x"], env={**env, "BITSD_NO_AUTOSTART": "1"})
        dead = root / "dead.sock"
        with contextlib.closing(sock_module.socket(sock_module.AF_UNIX)) as listener:
            listener.bind(str(dead))  # bound, never listening: connections are refused
            refused = CliRunner().invoke(main, ["--no-autostart", "--socket", str(dead), "list"])
        for result in (by_option, by_env, refused):
            assert result.exit_code == 3, result.output
            line = result.stderr.strip()
            assert "\n" not in line
            assert line.startswith("HRESULT_FROM_WIN32(RPC_S_SERVER_UNAVAILABLE) (0x800706BA) in ")
            assert "bitsd serve" in line
        assert not socket.exists()
        assert not (root / "state").exists()


def test_unreachable_daemon_exits_3_as_a_process(tmp_path: Path) -> None:
    """The same through the installed entry point."""
    cli = Cli({"BITSD_SOCKET": str(tmp_path / "none.sock"), "BITSD_NO_AUTOSTART": "1"})
    done = cli.process("list", "--json")
    assert done.returncode == 3
    assert done.stdout == ""
    assert "Traceback" not in done.stderr


def test_list_json_validates(cli: Cli, schema: Mapping[str, Any]) -> None:
    """create --json and list --json are the schema's documents; the list has the jobs just
    created, oldest first; the table has a row for each."""
    created = cli.json("create", "cli-list-1")
    validate(schema, "create", created)
    assert (created["state"], created["display_name"]) == ("SUSPENDED", "cli-list-1")
    first = created["id"]
    second = cli("create", "cli-list-2").stdout.strip()
    doc = cli.json("list")
    validate(schema, "list", doc)
    ids = [job["id"] for job in doc["jobs"]]
    assert ids.index(first) < ids.index(second)
    table = cli("list")
    assert table.exit_code == 0
    rows = {line.split()[0]: line for line in table.stdout.splitlines()[1:]}
    assert "cli-list-2" in rows[second]
    assert "SUSPENDED" in rows[second]
    for job in (first, second):
        assert cli("cancel", job).exit_code == 0
