"""The daemon's event stream as watchers see it: ``{"op": "watch"}`` on ``/v1/events``.

The asyncio client opens the stream only for callbacks and drops watch events, so a monitor
opens its own WebSocket on the same control socket as its manager (``Manager.socket_path``,
which follows BITSD_SOCKET and the XDG rules of :mod:`bitsd._autostart`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from bitsd import _wire
from bitsd._client import DAEMON_UNAVAILABLE
from bitsd._enums import JobState
from bitsd._errors import BitsError
from bitsd._records import JobProgress

__all__ = ["JobEvent", "watch"]

_URL = "http://bitsd/v1/events"


@dataclasses.dataclass(frozen=True, slots=True)
class JobEvent:
    """One ``{"type": "job"}`` message: a committed change of a job.

    Attributes:
        job: the job's id.
        what: "state", "property", "files" or "progress".
        state: the job's state after the change (None if the message had none).
        progress: the job's progress after the change (None if the message had none).
    """

    job: str
    what: str
    state: JobState | None
    progress: JobProgress | None


def parse(message: Any) -> JobEvent | None:
    """The event a message carries; None for other messages and malformed ones."""
    if not isinstance(message, dict) or message.get("type") != "job":
        return None
    job = message.get("job")
    if not isinstance(job, str):
        return None
    try:
        state = message.get("state")
        progress = message.get("progress")
        return JobEvent(
            job=job,
            what=str(message.get("what", "")),
            state=None if state is None else _wire.enum_from_json(JobState, state, "state"),
            progress=None if progress is None else _wire.progress_from_json(progress),
        )
    except BitsError:
        return None


@contextlib.asynccontextmanager
async def watch(socket_path: str) -> AsyncIterator[AsyncIterator[JobEvent]]:
    """Subscribe to every job's events; yields an iterator of them (it ends if the daemon goes).

    Raises:
        BitsError: DAEMON_UNAVAILABLE when the stream cannot be opened.
    """
    async with aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=socket_path)) as http:
        try:
            ws = await http.ws_connect(_URL, heartbeat=30.0)
        except (aiohttp.ClientError, OSError) as exc:
            raise BitsError(
                f"the bitsd daemon is unreachable (cannot open its event stream: {exc})",
                hresult=DAEMON_UNAVAILABLE,
            ) from exc
        async with ws:
            await ws.send_str(json.dumps({"op": "watch"}))
            yield _events(ws)


async def _events(ws: aiohttp.ClientWebSocketResponse) -> AsyncIterator[JobEvent]:
    async for msg in ws:
        if msg.type is not aiohttp.WSMsgType.TEXT:
            continue
        try:
            event = parse(json.loads(msg.data))
        except ValueError:
            continue
        if event is not None:
            yield event
