"""Fixtures of the CLI tier: one real daemon process for the session, a loopback HTTP server,
and ways to run ``bitsd`` in-process (click's CliRunner) and as a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from click.testing import CliRunner, Result

from bitsd.cli import main
from tests.client.daemon import Daemon, running_daemon
from tests.servers.faulty import FaultServer

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_PATH = ROOT / "docs" / "cli-json-schema.json"
BITSD = Path(sys.executable).parent / "bitsd"
# The service defaults of the test daemon: short network timeouts, the shortest retry delay.
DAEMON_CONFIG = """
default_minimum_retry_delay = 5.0
connect_timeout = 5.0
read_timeout = 5.0
"""
# Seconds a subprocess of the CLI may take.
SUBPROCESS_TIMEOUT = 30.0


@pytest.fixture(scope="session")
def daemon() -> Iterator[Daemon]:
    """One bitsd daemon process shared by the CLI tests (each test makes its own jobs)."""
    with running_daemon(DAEMON_CONFIG) as d:
        yield d


@pytest.fixture(scope="module")
def server() -> Iterator[FaultServer]:
    """A fault-injecting HTTP server in a thread, reachable from the daemon process (one per
    module: its thread is gone before tests/servers checks that no server thread is left)."""
    with FaultServer.in_thread() as s:
        yield s


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    """The destination folder of downloads."""
    d = tmp_path / "dest"
    d.mkdir()
    return d


@dataclass
class Cli:
    """Runs ``bitsd`` against the test daemon, autostart off."""

    env: dict[str, str]

    def __call__(self, *args: str, input: str | None = None) -> Result:
        """In-process, through click's CliRunner (stdout and stderr kept apart)."""
        return CliRunner().invoke(
            main, list(args), env=self.env, input=input, catch_exceptions=False
        )

    def json(self, *args: str) -> Any:
        """In-process with --json appended; the decoded document (the command must succeed)."""
        result = self(*args, "--json")
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    def process(
        self, *args: str, env_extra: Mapping[str, str] | None = None, **kwargs: Any
    ) -> subprocess.CompletedProcess[str]:
        """As a real process of the installed ``bitsd`` entry point."""
        return subprocess.run(
            [str(BITSD), *args],
            env={**os.environ, **self.env, **(env_extra or {})},
            capture_output=True,
            text=True,
            timeout=SUBPROCESS_TIMEOUT,
            check=False,
            **kwargs,
        )


@pytest.fixture
def cli(daemon: Daemon) -> Cli:
    """``bitsd`` wired to the session's daemon."""
    return Cli({"BITSD_SOCKET": str(daemon.socket), "BITSD_NO_AUTOSTART": "1"})


@pytest.fixture(scope="session")
def schema() -> Mapping[str, Any]:
    """docs/cli-json-schema.json, checked to be a valid draft 2020-12 schema."""
    document: Mapping[str, Any] = json.loads(SCHEMA_PATH.read_text())
    jsonschema.Draft202012Validator.check_schema(document)
    return document


def validate(schema: Mapping[str, Any], command: str, document: Any) -> None:
    """Check ``document`` against the schema's definition of ``command``'s output."""
    wrapper = {
        "$schema": schema["$schema"],
        "$ref": f"#/$defs/{command}",
        "$defs": schema["$defs"],
    }
    validator = jsonschema.Draft202012Validator(
        wrapper, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    validator.validate(document)
    jsonschema.Draft202012Validator(schema).validate(document)  # and the whole document's anyOf


def body(size: int, seed: int = 1) -> bytes:
    """``size`` bytes of deterministic content."""
    import random

    return random.Random(seed).randbytes(size)


def job_id_of(lines: Sequence[str]) -> str:
    """The job id in the "job <id>: ..." line the CLI prints first."""
    for line in lines:
        if line.startswith("job "):
            return line.split()[1].rstrip(":")
    raise AssertionError(f"no job line in {lines!r}")
