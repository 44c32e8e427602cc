"""Isolation: other users cannot reach the daemon or read its state; a job's notify command
line runs as the job's owner; credentials never show in logs, ``info`` output, API answers or
error messages."""

from __future__ import annotations

import asyncio
import asyncio.subprocess
import concurrent.futures.thread
import json
import logging
import os
import shlex
import shutil
import stat
import subprocess
import sys
import time
import traceback
from pathlib import Path

import pytest

from bitsd import AuthScheme, AuthTarget, CostStates, JobState, codes
from bitsd.aio import Engine, connect
from bitsd.daemon.paths import Paths
from tests.client.daemon import ROOT, daemon_pid, fault_server, http_json, short_tmp, wait_for_exit
from tests.daemon.conftest import Spawn, paths, short_dir, spawn
from tests.daemon.test_process import (
    test_other_uid_is_refused_by_peer_credentials as _other_uid_refused,
)
from tests.reliability.conftest import Held
from tests.reliability.procs import KillableDaemon

__all__ = ["paths", "short_dir", "spawn"]  # the daemon tier's fixtures, used below

pytestmark = pytest.mark.e2e

NOBODY = 65534
# Loaded before a forked child drops to uid 65534, which cannot read this Python's standard
# library (it lives under /root): modules the engine imports lazily (see _engine_as_nobody).
_PRELOADED = (asyncio.subprocess, concurrent.futures.thread)
TOUCH = shutil.which("touch") or "/usr/bin/touch"


def test_other_uid_is_refused(paths: Paths, spawn: Spawn, short_dir: Path, held: Held) -> None:
    """The daemon tier's test (tests/daemon/test_process.py), run here for the record: with the
    socket opened to everyone, a connection from uid 65534 is closed unanswered (also a
    WebSocket upgrade) and logged; the daemon's own uid is served."""
    if os.geteuid() != 0:
        pytest.skip("needs root to connect as another uid (65534)")
    _other_uid_refused(paths, spawn, short_dir)
    held(
        "isolation",
        "a connection from another uid (65534), with the socket made world-writable: closed "
        "before a byte was read (HTTP and WebSocket upgrade), logged as peer.refused "
        "(tests/daemon/test_process.py)",
    )


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_socket_and_state_files_are_private_whatever_the_umask(held: Held) -> None:
    """A detached daemon started with umask 000: the state folder and the socket's folder are
    0700; the socket, jobs.sqlite and its -wal and -shm, daemon.lock and daemon.log grant
    nothing to group or others."""
    with short_tmp() as root:
        daemon = KillableDaemon(root)
        daemon.socket.parent.mkdir(mode=0o700)
        command = f"umask 000; exec {shlex.quote(sys.executable)} -m bitsd.daemon --detach"
        started = subprocess.run(
            ["sh", "-c", command], env=daemon.env(), cwd=ROOT, capture_output=True, check=False
        )
        assert started.returncode == 0, started.stderr
        pid = daemon_pid(daemon.socket)
        try:
            status, job = http_json(daemon.socket, "POST", "/v1/jobs", {"display_name": "m"})
            assert status == 201, job
            state = daemon.state_dir
            files = {
                "socket": daemon.socket,
                "jobs.sqlite": state / "jobs.sqlite",
                "jobs.sqlite-wal": state / "jobs.sqlite-wal",
                "jobs.sqlite-shm": state / "jobs.sqlite-shm",
                "daemon.lock": state / "daemon.lock",
                "daemon.log": state / "daemon.log",
            }
            modes = {name: _mode(path) for name, path in files.items()}
            assert _mode(state) == 0o700
            for name, mode in modes.items():
                assert mode & 0o077 == 0, f"{name} is {mode:o}"
        finally:
            os.kill(pid, 15)
            wait_for_exit(pid)
    held(
        "isolation",
        "with umask 000: state folder 0700; socket, jobs.sqlite, its -wal and -shm, "
        "daemon.lock, daemon.log nothing for group or others ("
        + ", ".join(f"{name} {mode:o}" for name, mode in modes.items())
        + ")",
    )


def _wait_for(path: Path, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.02)


async def test_notify_command_line_runs_as_the_job_owner(held: Held) -> None:
    """A job's notify command line (no callback registered) runs when the job is transferred,
    as the job's owner: the marker file it creates belongs to the uid the daemon reports as
    the job's owner."""
    with short_tmp() as root:
        source = root / "source"
        source.write_bytes(b"data")
        marker = root / "marker"
        daemon = KillableDaemon(root)
        daemon.start()
        try:
            async with await connect(socket_path=daemon.socket, autostart=False) as manager:
                job = await manager.create_job("notify owner")
                await job.set_notify_cmd_line(TOUCH, f"touch {marker}")
                await job.add_file(str(source), str(root / "copy"))
                await job.resume()
                await asyncio.to_thread(_wait_for, marker)
                owner = await job.get_owner()
        finally:
            daemon.stop()
        assert marker.stat().st_uid == owner == os.getuid()
    held(
        "isolation",
        f"the notify command line ran as the job's owner (marker file uid {owner} = the job's "
        "owner = the daemon's uid)",
    )


def _engine_as_nobody(folder: Path) -> int:
    """In a forked child running as uid 65534: an engine on ``folder`` runs a job whose notify
    command line touches ``folder/marker``; returns the child's exit status (0: the job was
    transferred and its owner was 65534)."""
    pid = os.fork()
    if pid:
        _, status = os.waitpid(pid, 0)
        return os.waitstatus_to_exitcode(status)
    code = 1
    try:
        os.setgroups([])
        os.setgid(NOBODY)
        os.setuid(NOBODY)

        async def unrestricted() -> CostStates:
            return CostStates.UNRESTRICTED

        async def run() -> int:
            async with Engine(
                folder / "state", cost_source=unrestricted, link_counter=lambda: None
            ) as engine:
                job = await engine.create_job("as nobody")
                await job.set_notify_cmd_line(TOUCH, f"touch {folder / 'marker'}")
                await job.add_file(str(folder / "source"), str(folder / "copy"))
                await job.resume()
                state = await job.wait((JobState.TRANSFERRED, JobState.ERROR), timeout=15)
                for _ in range(500):
                    if (folder / "marker").exists():
                        break
                    await asyncio.sleep(0.02)
                await job.complete()
                owner = await job.get_owner()
                if state is JobState.TRANSFERRED and owner == NOBODY:
                    return 0
                error = await job.get_error() if state is JobState.ERROR else None
                (folder / "child-error.txt").write_text(f"{state} owner {owner}: {error}")
                return 2

        code = asyncio.run(run())
    except BaseException:
        (folder / "child-error.txt").write_text(traceback.format_exc())
    finally:
        os._exit(code)


def test_notify_command_line_of_another_users_job_runs_as_that_user(held: Held) -> None:
    """An engine running as uid 65534 (a forked child of this root process) runs its job's
    notify command line as 65534, not as anyone else: the marker belongs to 65534."""
    if os.geteuid() != 0:
        pytest.skip("needs root to run an engine as another uid (65534)")
    with short_tmp() as root:
        root.chmod(0o755)  # pytest's tmp_path lives in a 0700 folder: 65534 could not enter
        folder = root / "nobody"
        folder.mkdir()
        (folder / "source").write_bytes(b"data")
        os.chown(folder, NOBODY, NOBODY)
        status = _engine_as_nobody(folder)
        errors = folder / "child-error.txt"
        assert status == 0, errors.read_text() if errors.exists() else status
        assert (folder / "marker").stat().st_uid == NOBODY
        assert (folder / "copy").stat().st_uid == NOBODY
    held(
        "isolation",
        "an engine running as uid 65534: its job's notify command line ran as 65534 (the "
        "marker and the downloaded file belong to 65534)",
    )


async def test_credentials_never_appear(
    caplog: pytest.LogCaptureFixture, tmp_path: Path, held: Held
) -> None:
    """Credentials set through the client (SetCredentials) on a job that then fails with 401
    appear nowhere: not in the job's JSON, its error's JSON, the error description,
    ``bitsd info`` (text and --json), ``bitsd error``, the daemon's log at debug level or any
    log record of this process. A password inside a URL appears in none of the error texts
    and logs either (only in the file's remote name, which is the owner's own input, as BITS
    returns it: docs/design-choices.md)."""
    set_password = "Cred-Set-77"  # noqa: S105 - a test value, looked for everywhere
    url_password = "Url-Pass-99"  # noqa: S105
    with fault_server() as server, short_tmp() as root:
        server.add("/guarded", b"data")
        server.protect("/guarded", ("alice", "the-right-one"), schemes=("basic",))
        port = server.url("/").split(":")[2].rstrip("/")
        daemon = KillableDaemon(root, 'log_level = "debug"\n')
        daemon.start()
        try:
            with caplog.at_level(logging.DEBUG):
                async with await connect(socket_path=daemon.socket, autostart=False) as m:
                    first = await m.create_job("set credentials")
                    await first.set_credentials(
                        AuthTarget.SERVER, AuthScheme.BASIC, "alice", set_password
                    )
                    await first.add_file(server.url("/guarded"), str(tmp_path / "a"))
                    second = await m.create_job("url credentials")
                    url = f"http://alice:{url_password}@127.0.0.1:{port}/guarded"
                    await second.add_file(url, str(tmp_path / "b"))
                    shown: dict[str, list[str]] = {}
                    for job in (first, second):
                        await job.resume()
                        state = await job.wait((JobState.TRANSFERRED, JobState.ERROR), 15)
                        assert state is JobState.ERROR
                        error = await job.get_error()
                        assert error.code == codes.http_error(401)
                        error_json = http_json(daemon.socket, "GET", f"/v1/jobs/{job.id}/error")
                        info, info_json, error_text = _cli(daemon, job.id)
                        shown[job.id] = [error.description, error_json[1]["description"]]
                        shown[job.id] += [info, error_text]
                    shown[first.id] += [repr(await first.get_error()), info_json]
                    shown[first.id] += [json.dumps(http_json(daemon.socket, "GET", _path(first)))]
                    shown[first.id] += [json.dumps(error_json)]
            log = daemon.log_text()
        finally:
            daemon.stop()
    records = [record.getMessage() for record in caplog.records]
    for job_id, password in ((first.id, set_password), (second.id, url_password)):
        texts = [*shown[job_id], log, *records]
        assert not [text[:300] for text in texts if password in text], job_id
    assert "401" in log
    held(
        "isolation",
        "credentials set through the client (SetCredentials) on a job failing with 401: "
        "absent from the job and error JSON, the error description, `bitsd info` (text and "
        "--json), `bitsd error`, the daemon's debug log and the client's log records; a "
        "password in a URL: absent from the error description, `bitsd info`, `bitsd error` "
        "and every log",
    )


def _path(job: object) -> str:
    return f"/v1/jobs/{job.id}"  # type: ignore[attr-defined]


def _cli(daemon: KillableDaemon, job_id: str) -> list[str]:
    """What ``bitsd info``, ``bitsd info --json`` and ``bitsd error`` print for the job
    (stdout and stderr together)."""
    out = []
    for args in (["info", job_id], ["info", "--json", job_id], ["error", job_id]):
        done = subprocess.run(
            [sys.executable, "-c", "from bitsd.cli import main; main()", "--no-autostart", *args],
            env=daemon.env(),
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
        assert done.stdout, (args, done.stderr)
        out.append(done.stdout + done.stderr)
    return out
