"""``bitsd monitor`` on a pseudo-terminal: a full-screen view driven by the event stream."""

from __future__ import annotations

import fcntl
import os
import struct
import subprocess
import termios
import time
from pathlib import Path

from tests.cli.conftest import BITSD, Cli, body
from tests.cli.terminal import Screen
from tests.servers.faulty import Fault, FaultServer


def test_monitor_shows_a_job_reaching_transferred(
    cli: Cli, server: FaultServer, dest: Path
) -> None:
    """The monitor runs on a pty (alternate screen), shows a job created after it started, its
    progress while TRANSFERRING and then TRANSFERRED, all from events; q quits with exit 0."""
    server.add("/cli/monitor.bin", body(400_000, seed=31))
    server.set_fault("/cli/monitor.bin", Fault(rate=250_000))
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
    env = {**os.environ, **cli.env, "TERM": "xterm-256color"}
    for name in ("COLUMNS", "LINES", "NO_COLOR"):
        env.pop(name, None)
    proc = subprocess.Popen(
        [str(BITSD), "monitor"],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        start_new_session=True,
    )
    os.close(slave)
    screen = Screen(master)
    job = None
    try:
        first_frame = screen.read_until(b"bitsd monitor")
        assert screen.data.find(b"\x1b[?1049h") >= 0, "the view should use the alternate screen"
        started = len(screen.data)
        assert b"cli-monitor-job" not in screen.data[first_frame:]
        job = cli.json(
            "transfer",
            server.url("/cli/monitor.bin"),
            "-d",
            str(dest),
            "--async",
            "--display-name",
            "cli-monitor-job",
        )["job"]
        seen = screen.read_until(b"cli-monitor-job", started)
        screen.read_until(b"TRANSFERRING", seen)
        screen.read_until(b"TRANSFERRED", seen)
        os.write(master, b"q")
        deadline = time.monotonic() + 10
        while proc.poll() is None and time.monotonic() < deadline:
            screen.drain()
            time.sleep(0.05)
        assert proc.returncode == 0, screen.data[-2000:]
        assert b"Traceback" not in screen.data
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
        if job is not None:
            cli("complete", job)


def test_monitor_once_prints_one_frame(cli: Cli) -> None:
    """--once prints the table once and exits; without a terminal there are no escape codes."""
    job = cli("create", "cli-monitor-once").stdout.strip()
    result = cli("monitor", "--once")
    assert result.exit_code == 0, result.output
    assert "bitsd monitor" in result.stdout
    row = next(line for line in result.stdout.splitlines() if "cli-monitor-once" in line)
    assert "SUSPENDED" in row
    assert job.split("-")[0] in row
    assert "\x1b[" not in result.stdout
    assert cli("cancel", job).exit_code == 0
