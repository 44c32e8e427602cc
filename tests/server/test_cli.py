"""``bitsd upload-server``: mounted in the bitsd group, checks its options, and as a process
serves uploads, logs one line per event and stops on SIGTERM with status 0."""

from __future__ import annotations

import asyncio
import re
import signal
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from bitsd.cli import main
from tests.server.client import RawClient


def test_upload_server_is_a_bitsd_command() -> None:
    """``bitsd upload-server --help`` lists the issue's options."""
    result = CliRunner().invoke(main, ["upload-server", "--help"])
    assert result.exit_code == 0, result.output
    for option in (
        "--root",
        "--host",
        "--port",
        "--notify-url",
        "--notify-type",
        "--max-upload-size",
        "--session-timeout",
    ):
        assert option in result.output


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["--root", "R", "--notify-type", "by-value"],
        ["--root", "R", "--max-upload-size", "12Q"],
        ["--root", "R", "--session-timeout", "0"],
        ["--root", "R", "--notify-type", "by-post", "--notify-url", "http://x/"],
    ],
)
def test_bad_usage_exits_2(argv: list[str], tmp_path: Path) -> None:
    """A missing root, --notify-type without --notify-url, a bad size or timeout: exit 2."""
    argv = [str(tmp_path / a) if a == "R" else a for a in argv]
    result = CliRunner().invoke(main, ["upload-server", *argv])
    assert result.exit_code == 2, result.output


async def test_runs_as_a_process_until_sigterm(tmp_path: Path) -> None:
    """The server starts on a free port (--port 0), logs server.ready with its URL, takes an
    upload (logging each event as one logfmt line), and exits 0 on SIGTERM."""
    root = tmp_path / "root"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bitsd.server",
        "--root",
        str(root),
        "--port",
        "0",
        "--max-upload-size",
        "1K",
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stderr is not None
    lines: list[str] = []
    try:
        async with asyncio.timeout(60):
            while not any("event=server.ready" in line for line in lines):
                line = (await proc.stderr.readline()).decode()
                assert line, "".join(lines)
                lines.append(line)
        match = re.search(r"url=http://127\.0\.0\.1:(\d+)/", lines[-1])
        assert match, lines[-1]
        assert "max_upload_size=1024" in lines[-1]
        async with RawClient("127.0.0.1", int(match.group(1))) as c:
            sid = await c.create_session("/cli/file.bin")
            await c.fragment("/cli/file.bin", sid, 0, b"cli", 3)
            assert (await c.close_session("/cli/file.bin", sid)).status == 200
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            rest = (await proc.stderr.read()).decode()
            status = await proc.wait()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert status == 0
    assert (root / "cli" / "file.bin").read_bytes() == b"cli"
    events = re.findall(r"event=(\S+)", "".join(lines) + rest)
    for name in ("server.ready", "session.created", "upload.complete", "session.closed"):
        assert name in events
    assert events[-1] == "server.stopped"
