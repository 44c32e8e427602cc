"""``python -m bitsd.daemon`` as a real process: permissions, the lock, signals, restart with
checkpoints, sd_notify, --detach, and peer credentials."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import random
import re
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from bitsd.daemon.lock import DaemonLock
from bitsd.daemon.paths import Paths
from tests.daemon.conftest import Spawn, accepts, unix_session, write_config
from tests.reliability.procs import splice_helpers
from tests.servers.faulty import Fault, FaultServer

pytestmark = pytest.mark.e2e


def http_get(socket_path: Path, path: str) -> str:
    """One ``GET path`` over the Unix socket with the standard library; the raw answer."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect(str(socket_path))
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: bitsd\r\nConnection: close\r\n\r\n".encode())
        return read_all(sock).decode()


def read_all(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def test_private_socket_single_daemon_and_clean_exit(paths: Paths, spawn: Spawn) -> None:
    """The socket is 0600 in a 0700 folder; a second daemon on the same state exits 3 naming
    the first one's pid; SIGTERM exits 0 and removes the socket."""
    first = spawn(paths).wait_ready()
    assert stat.S_IMODE(paths.socket.stat().st_mode) == 0o600
    assert stat.S_IMODE(paths.socket.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(paths.state_dir.stat().st_mode) == 0o700
    second = spawn(paths)
    assert second.proc.wait(15) == 3
    assert f"bitsd: another daemon (pid {first.pid}) holds {paths.lock}\n" in second.output()
    assert '"pid":' + str(first.pid) in http_get(paths.socket, "/v1/version")
    assert first.stop() == 0
    assert not paths.socket.exists()
    assert "event=daemon.stopped" in first.output()


def test_bad_config_refuses_to_start(paths: Paths, spawn: Spawn) -> None:
    """An unknown key in the config file: exit 2 with a message naming the file and the key,
    and no socket."""
    paths.config.write_text("max_background_job = 2\n")
    daemon = spawn(paths)
    assert daemon.proc.wait(15) == 2
    assert f"bitsd: {paths.config}: unknown key 'max_background_job'" in daemon.output()
    assert not paths.socket.exists()


async def test_sigterm_mid_download_checkpoints_and_restart_resumes(
    paths: Paths, spawn: Spawn, short_dir: Path
) -> None:
    """SIGTERM while a slow download runs and a WebSocket client is connected: exit 0 within
    5 s. The next daemon resumes the job from its checkpoint (a Range past 0) and the file is
    byte-identical. The splice helper moving the body gets SIGTERM too, as systemd's stop of
    the unit's control group sends it: it ignores it, so the stop records no error."""
    data = random.Random(3).randbytes(3_000_000)
    dest = short_dir / "big.bin"
    with FaultServer.in_thread() as server:
        server.add("/big", data)
        server.set_fault("/big", Fault(rate=600_000))
        daemon = spawn(paths).wait_ready()
        async with unix_session(paths.socket) as api:
            async with api.post("/v1/jobs", json={"display_name": "big"}) as response:
                job_id = (await response.json())["id"]
            files = {"files": [{"remote_name": server.url("/big"), "local_name": str(dest)}]}
            async with api.post(f"/v1/jobs/{job_id}/files", json=files) as response:
                assert response.status == 200
            async with api.ws_connect("/v1/events") as ws:
                await ws.send_json({"op": "register", "job": job_id, "methods": ["job_error"]})
                await ws.send_json({"op": "watch"})
                async with api.post(f"/v1/jobs/{job_id}/resume") as response:
                    assert response.status == 200
                async with asyncio.timeout(10):
                    while (await ws.receive_json()).get("progress", {}).get(
                        "bytes_transferred", 0
                    ) < 300_000:
                        pass
                helpers = splice_helpers(daemon.pid)
                assert helpers, "no splice helper moved the body"
                started = time.monotonic()
                for pid in helpers:
                    os.kill(pid, signal.SIGTERM)
                assert await asyncio.to_thread(daemon.stop, 5.0) == 0
                assert time.monotonic() - started < 5
        sent_before = server.requests_for("/big")[0].bytes_sent
        assert sent_before < len(data), "the download finished before SIGTERM"
        server.clear_fault("/big")

        again = spawn(paths).wait_ready()
        async with unix_session(paths.socket) as api:
            wait = f"/v1/jobs/{job_id}/wait?states=TRANSFERRED,ERROR&timeout=20"
            async with api.get(wait) as response:
                assert (await response.json())["state"] == "TRANSFERRED"
            async with api.get(f"/v1/jobs/{job_id}") as response:
                assert (await response.json())["error_count"] == 0
            async with api.post(f"/v1/jobs/{job_id}/complete") as response:
                assert (await response.json())["state"] == "ACKNOWLEDGED"
        assert again.stop() == 0
        resumed = server.requests_for("/big")[1]
    assert resumed.range is not None
    assert int(resumed.range.removeprefix("bytes=").rstrip("-")) > 0, "restarted from zero"
    assert hashlib.sha256(dest.read_bytes()).digest() == hashlib.sha256(data).digest()


def test_sighup_reloads_the_config_without_restarting(paths: Paths, spawn: Spawn) -> None:
    """SIGHUP applies a changed log_level (debug shows each request) in the same process; a
    broken file on the next SIGHUP is logged and the daemon keeps the old config and serves."""
    write_config(paths.config, log_level="info")
    daemon = spawn(paths).wait_ready()
    http_get(paths.socket, "/v1/version")
    assert "event=http.request" not in daemon.output()
    write_config(paths.config, log_level="debug", max_background_jobs=2)
    daemon.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "event=config.reloaded" in daemon.output(), 5, "the reload")
    assert re.search(r"event=config.reloaded path=\S+ log_level=debug", daemon.output())
    assert f'"pid":{daemon.pid}' in http_get(paths.socket, "/v1/version")
    wait_for(lambda: "event=http.request method=GET path=/v1/version" in daemon.output(), 5, "log")
    paths.config.write_text("max_background_jobs = -1\n")
    daemon.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "event=config.error" in daemon.output(), 5, "the config error")
    assert "max_background_jobs must be > 0" in daemon.output()
    assert "200 OK" in http_get(paths.socket, "/v1/version")
    assert daemon.stop() == 0


def test_ready_and_stopping_are_sent_to_notify_socket(
    paths: Paths, spawn: Spawn, short_dir: Path
) -> None:
    """With NOTIFY_SOCKET set (systemd Type=notify), READY=1 comes once the socket accepts
    connections and STOPPING=1 when SIGTERM arrives. (The paths come from the options here,
    which beat the environment.)"""
    address = short_dir / "notify.sock"
    options = ["--state-dir", str(paths.state_dir), "--socket", str(paths.socket)]
    wrong = {"BITSD_STATE_DIR": str(short_dir / "wrong"), "BITSD_SOCKET": "/nonexistent/s"}
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as manager:
        manager.bind(str(address))
        manager.settimeout(15)
        daemon = spawn(paths, *options, env={"NOTIFY_SOCKET": str(address), **wrong})
        assert manager.recv(100) == b"READY=1"
        assert accepts(paths.socket)
        daemon.proc.send_signal(signal.SIGTERM)
        assert manager.recv(100) == b"STOPPING=1"
        assert daemon.stop() == 0


def environment(paths: Paths) -> dict[str, str]:
    """This process's environment with the daemon's paths."""
    return {
        **os.environ,
        "BITSD_STATE_DIR": str(paths.state_dir),
        "BITSD_SOCKET": str(paths.socket),
        "BITSD_CONFIG": str(paths.config),
    }


def test_detach_returns_once_ready_and_the_daemon_runs_on(paths: Paths) -> None:
    """--detach exits 0 once the socket accepts connections; the daemon, in its own session
    and logging to <state>/daemon.log, serves until SIGTERM."""
    result = subprocess.run(
        [sys.executable, "-m", "bitsd.daemon", "--detach"],
        env=environment(paths),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    match = re.search(r"daemon started \(pid (\d+)\)", result.stderr)
    assert match is not None, result.stderr
    pid = int(match.group(1))
    try:
        assert accepts(paths.socket)
        assert f'"pid":{pid}' in http_get(paths.socket, "/v1/version")
        assert os.getsid(pid) == pid, "the daemon leads a session of its own"
    finally:
        os.kill(pid, signal.SIGTERM)
    wait_for(lambda: "event=daemon.stopped" in paths.log.read_text(), 5, "the daemon to stop")
    assert "event=daemon.ready" in paths.log.read_text()
    assert not paths.socket.exists()
    with DaemonLock(paths.lock):
        pass  # the lock is free again


def test_detach_reports_why_the_daemon_did_not_start(paths: Paths, spawn: Spawn) -> None:
    """--detach with the state already served: the detached daemon exits 3, and the command
    says so with the log's tail and the same status."""
    first = spawn(paths).wait_ready()
    result = subprocess.run(
        [sys.executable, "-m", "bitsd.daemon", "--detach"],
        env=environment(paths),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 3
    assert "exited with status 3 before it was ready" in result.stderr
    assert f"another daemon (pid {first.pid}) holds {paths.lock}" in result.stderr
    assert first.stop() == 0


def connect_as(uid: int, socket_path: Path, request: bytes, *, wait: float = 5.0) -> bytes:
    """Send ``request`` on the socket from a forked child running as ``uid``; what it read
    until the daemon closed the connection or ``wait`` seconds passed without a byte.

    A fork, not a new interpreter: this venv's Python lives under /root, which other users
    cannot enter.
    """
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        code = 0
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(wait)
                sock.connect(str(socket_path))
                answer = b""
                # A refused connection may be closed before the request is even sent.
                with contextlib.suppress(TimeoutError, BrokenPipeError, ConnectionResetError):
                    sock.sendall(request)
                    while chunk := sock.recv(65536):
                        answer += chunk
            os.write(write_end, answer[:4096])
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        answer = pipe.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the child could not connect"
    return answer


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to connect as another uid (65534)")
def test_other_uid_is_refused_by_peer_credentials(
    paths: Paths, spawn: Spawn, short_dir: Path
) -> None:
    """With the socket made reachable for everyone (folder 0755, socket 0666: the file mode no
    longer protects it), a connection from uid 65534 is closed unanswered, also a WebSocket
    upgrade; the daemon's own uid is served on the same socket; the refusal is logged."""
    daemon = spawn(paths).wait_ready()
    for folder in (short_dir, paths.socket.parent):
        folder.chmod(0o755)
    paths.socket.chmod(0o666)
    get = b"GET /v1/version HTTP/1.1\r\nHost: bitsd\r\nConnection: close\r\n\r\n"
    upgrade = (
        b"GET /v1/events HTTP/1.1\r\nHost: bitsd\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Sec-WebSocket-Version: 13\r\n\r\n"
    )
    assert connect_as(65534, paths.socket, get) == b""
    assert connect_as(65534, paths.socket, upgrade) == b""
    assert connect_as(0, paths.socket, get).startswith(b"HTTP/1.1 200 OK")
    assert connect_as(0, paths.socket, upgrade, wait=0.5).startswith(b"HTTP/1.1 101 ")
    wait_for(lambda: daemon.output().count("event=peer.refused") == 2, 5, "the log")
    assert re.search(r"level=warning event=peer.refused uid=65534 pid=\d+", daemon.output())
    assert daemon.stop() == 0
