"""The event stream: remote callbacks with the JobError contract end to end over a WebSocket,
and job events for watchers (daemon served in the test's event loop, real engine and clock)."""

from __future__ import annotations

import asyncio
import shlex
import shutil
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bitsd import codes
from bitsd.daemon.events import Outbox
from bitsd.daemon.paths import Paths
from bitsd.daemon.service import Daemon
from tests.daemon.conftest import unix_session, write_config
from tests.servers.faulty import FaultServer

Ws = aiohttp.ClientWebSocketResponse


async def receive(ws: Ws, kind: str, timeout: float = 5.0) -> dict[str, Any]:
    """The next message of type ``kind`` (others are skipped)."""
    async with asyncio.timeout(timeout):
        while True:
            message: dict[str, Any] = await ws.receive_json()
            if message["type"] == kind:
                return message


async def silent(ws: Ws, kind: str, seconds: float) -> bool:
    """Whether no message of type ``kind`` arrives for ``seconds``."""
    try:
        await receive(ws, kind, seconds)
    except TimeoutError:
        return True
    return False


async def post(api: aiohttp.ClientSession, path: str, body: Any = None) -> dict[str, Any]:
    async with api.post(path, json=body) as response:
        assert response.status in (200, 201), await response.text()
        result: dict[str, Any] = await response.json()
        return result


async def patch(api: aiohttp.ClientSession, job_id: str, body: dict[str, Any]) -> None:
    async with api.patch(f"/v1/jobs/{job_id}", json=body) as response:
        assert response.status == 200, await response.text()


async def job_with_file(api: aiohttp.ClientSession, remote: str, local: Path) -> str:
    """A new job with one file, not resumed; its id."""
    job_id = str((await post(api, "/v1/jobs", {"display_name": "events"}))["id"])
    files = {"files": [{"remote_name": remote, "local_name": str(local)}]}
    await post(api, f"/v1/jobs/{job_id}/files", files)
    return job_id


async def register(ws: Ws, job_id: str, *methods: str) -> None:
    await ws.send_json({"op": "register", "job": job_id, "methods": list(methods)})
    assert await receive(ws, "registered") == {"type": "registered", "job": job_id}


def marker_command(marker: Path) -> dict[str, str]:
    """A notify command line (argv, no shell) that creates ``marker`` at once."""
    touch = shutil.which("touch")
    assert touch is not None
    return {"program": touch, "parameters": shlex.join(["touch", str(marker)])}


@pytest.fixture
async def server() -> Any:
    """A loopback HTTP server answering 404 for every path nobody added."""
    async with FaultServer() as s:
        yield s


async def test_job_error_is_called_again_until_accepted(
    api: aiohttp.ClientSession, server: FaultServer, short_dir: Path
) -> None:
    """A 404 makes the daemon call the registered job_error with REMOTE_FILE and
    BG_E_HTTP_ERROR_404; a failure hresult gets it called again after the retry interval
    (0.2 s), and 0 accepts it: no more calls."""
    job_id = await job_with_file(api, server.url("/missing"), short_dir / "missing")
    await patch(api, job_id, {"minimum_retry_delay": 5})
    async with api.ws_connect("/v1/events") as ws:
        await register(ws, job_id, "job_error", "job_transferred")
        await post(api, f"/v1/jobs/{job_id}/resume")
        first = await receive(ws, "notify")
        assert (first["job"], first["method"]) == (job_id, "job_error")
        assert first["error"]["context"] == "REMOTE_FILE"
        assert first["error"]["code"] == 0x80190194
        assert first["error"]["name"] == "BG_E_HTTP_ERROR_404"
        assert first["error"]["file"]["remote_name"] == server.url("/missing")
        refused_at = time.monotonic()
        await ws.send_json({"op": "result", "call": first["call"], "hresult": codes.E_FAIL})
        second = await receive(ws, "notify")
        assert time.monotonic() - refused_at >= 0.15
        assert second["method"] == "job_error"
        assert second["call"] != first["call"]
        await ws.send_json({"op": "result", "call": second["call"], "hresult": 0})
        assert await silent(ws, "notify", 0.7)


async def test_closing_with_a_pending_call_runs_the_command_line(
    api: aiohttp.ClientSession, server: FaultServer, short_dir: Path
) -> None:
    """The registering process goes away while its job_error call waits: the call fails, and
    the daemon runs the job's notify command line instead (BITS: a failed callback with a
    command line set runs the command line)."""
    marker = short_dir / "ran"
    job_id = await job_with_file(api, server.url("/missing"), short_dir / "missing")
    await patch(api, job_id, {"notify_cmd_line": marker_command(marker)})
    async with api.ws_connect("/v1/events") as ws:
        await register(ws, job_id, "job_error")
        await post(api, f"/v1/jobs/{job_id}/resume")
        assert (await receive(ws, "notify"))["method"] == "job_error"
    async with asyncio.timeout(10):
        while not marker.exists():
            await asyncio.sleep(0.02)


async def test_pending_notification_waits_for_the_next_registration(
    api: aiohttp.ClientSession, server: FaultServer, short_dir: Path
) -> None:
    """Without a command line, a call lost with its connection is delivered again to the next
    connection that registers for the job (at least once)."""
    job_id = await job_with_file(api, server.url("/missing"), short_dir / "missing")
    async with api.ws_connect("/v1/events") as ws:
        await register(ws, job_id, "job_error")
        await post(api, f"/v1/jobs/{job_id}/resume")
        assert (await receive(ws, "notify"))["method"] == "job_error"
    await asyncio.sleep(0.5)  # the retry interval passes with nobody registered
    async with api.ws_connect("/v1/events") as ws:
        await register(ws, job_id, "job_error")
        again = await receive(ws, "notify")
        assert (again["job"], again["method"]) == (job_id, "job_error")
        await ws.send_json({"op": "result", "call": again["call"], "hresult": 0})
        assert await silent(ws, "notify", 0.5)


async def test_last_registration_wins(api: aiohttp.ClientSession, short_dir: Path) -> None:
    """When a second connection registers, the first one's close does not unregister it: the
    second gets job_transferred."""
    source = short_dir / "source"
    source.write_bytes(b"data")
    job_id = await job_with_file(api, source.as_uri(), short_dir / "copy")
    async with api.ws_connect("/v1/events") as second:
        async with api.ws_connect("/v1/events") as first:
            await register(first, job_id, "job_transferred")
            await register(second, job_id, "job_transferred")
        await asyncio.sleep(0.1)  # the first connection's cleanup runs
        await post(api, f"/v1/jobs/{job_id}/resume")
        call = await receive(second, "notify")
        assert (call["method"], call["job"]) == ("job_transferred", job_id)
        assert "error" not in call
        await second.send_json({"op": "result", "call": call["call"], "hresult": 0})


async def test_unregister_stops_the_calls(
    api: aiohttp.ClientSession, server: FaultServer, short_dir: Path
) -> None:
    """After unregister the connection gets no call for the job."""
    job_id = await job_with_file(api, server.url("/missing"), short_dir / "missing")
    async with api.ws_connect("/v1/events") as ws:
        await register(ws, job_id, "job_error")
        await ws.send_json({"op": "unregister", "job": job_id})
        await ws.send_json({"op": "watch"})
        await post(api, f"/v1/jobs/{job_id}/resume")
        event = await receive(ws, "job")
        while event["state"] != "ERROR":
            event = await receive(ws, "job")
        assert await silent(ws, "notify", 0.5)


async def test_watchers_see_each_committed_change(
    api: aiohttp.ClientSession, short_dir: Path
) -> None:
    """watch streams job events: the files added, the state changes in order, with progress."""
    source = short_dir / "source"
    source.write_bytes(b"x" * 1000)
    async with api.ws_connect("/v1/events") as ws:
        await ws.send_json({"op": "watch"})
        await asyncio.sleep(0.05)  # the watch is taken before the job is created
        job_id = await job_with_file(api, source.as_uri(), short_dir / "copy")
        await post(api, f"/v1/jobs/{job_id}/resume")
        events: list[dict[str, Any]] = []
        while not events or events[-1]["state"] != "TRANSFERRED":
            events.append(await receive(ws, "job"))
    assert {e["job"] for e in events} == {job_id}
    assert {"files", "state"} <= {e["what"] for e in events}
    states = [e["state"] for e in events if e["what"] == "state"]
    assert states[0] == "QUEUED"
    assert states[-1] == "TRANSFERRED"
    assert events[-1]["progress"] == {
        "bytes_total": 1000,
        "bytes_transferred": 1000,
        "files_total": 1,
        "files_transferred": 1,
    }


@pytest.mark.parametrize(
    ("message", "text"),
    [
        ("not json", "not valid JSON"),
        ("[1]", "JSON object"),
        ('{"op": "dance"}', "unknown op 'dance'"),
        ('{"op": "register", "methods": []}', "register needs a job id"),
        ('{"op": "register", "job": "x", "methods": ["job_done"]}', "unknown method 'job_done'"),
        ('{"op": "register", "job": "x", "methods": "job_error"}', "methods must be a list"),
        ('{"op": "result", "call": 99, "hresult": 0}', "no notify call 99"),
        ('{"op": "result", "call": "1", "hresult": 0}', "integer call"),
        ("[" * 100_000, "nests too deeply"),
        ('{"op": "register", "job": "\\ud800", "methods": ["job_error"]}', "lone surrogate"),
    ],
    ids=lambda value: value if len(value) < 60 else f"{value[:20]}...({len(value)})",
)
async def test_malformed_messages_get_errors_and_the_stream_goes_on(
    api: aiohttp.ClientSession, message: str, text: str
) -> None:
    """A bad message is answered with an error message (E_INVALIDARG) and the connection stays
    usable."""
    async with api.ws_connect("/v1/events") as ws:
        await ws.send_str(message)
        error = await receive(ws, "error")
        assert error["error"]["name"] == "E_INVALIDARG"
        assert text in error["error"]["message"]
        await ws.send_bytes(b"{}")
        assert "not binary" in (await receive(ws, "error"))["error"]["message"]


async def test_register_for_an_unknown_job_is_an_error(api: aiohttp.ClientSession) -> None:
    """register of a job that does not exist answers error with the job and BG_E_NOT_FOUND."""
    job = "0b9c0000-0000-0000-0000-000000000000"
    async with api.ws_connect("/v1/events") as ws:
        await ws.send_json({"op": "register", "job": job, "methods": ["job_error"]})
        error = await receive(ws, "error")
        assert (error["job"], error["error"]["name"]) == (job, "BG_E_NOT_FOUND")


async def test_outbox_drops_progress_events_first() -> None:
    """A full outbox evicts waiting progress events before state events, drops a new progress
    event when only state events wait, and never drops control messages."""
    box = Outbox(limit=2)
    box.put_event({"n": 1}, progress=False)
    box.put_event({"n": 2}, progress=True)
    box.put_control({"n": 3})
    box.put_event({"n": 4}, progress=False)  # evicts 2
    box.put_event({"n": 5}, progress=True)  # only state events wait: dropped
    box.put_event({"n": 6}, progress=False)  # evicts 1, the oldest
    assert [(await box.get())["n"] for _ in range(3)] == [3, 4, 6]
    assert box.dropped == 3


async def test_stopping_daemon_keeps_a_pending_call_for_the_next_start(
    paths: Paths, server: FaultServer, short_dir: Path
) -> None:
    """A call still waiting for its result when the daemon stops is not a failed callback: the
    command line does not run then. The notification stays pending, and the next daemon (with
    no callback registered) delivers it by running the command line."""
    marker = short_dir / "ran"
    write_config(paths.config, notify_retry_interval=0.2)
    async with unix_session(paths.socket) as api:
        async with Daemon(paths):
            job_id = await job_with_file(api, server.url("/missing"), short_dir / "missing")
            await patch(api, job_id, {"notify_cmd_line": marker_command(marker)})
            ws = await api.ws_connect("/v1/events")
            await register(ws, job_id, "job_error")
            await post(api, f"/v1/jobs/{job_id}/resume")
            assert (await receive(ws, "notify"))["method"] == "job_error"
        # Stopped with the call unanswered and the connection open on this side.
        assert (await ws.receive()).type is aiohttp.WSMsgType.CLOSE
        await ws.close()
        await asyncio.sleep(0.3)
        assert not marker.exists()
        async with Daemon(paths):
            async with asyncio.timeout(10):
                while not marker.exists():
                    await asyncio.sleep(0.02)
