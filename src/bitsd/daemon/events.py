"""The event stream (``/v1/events``): remote callbacks and job events over WebSockets.

Rules:
- ``register`` makes a :class:`RemoteCallback` the job's notify interface (SetNotifyInterface;
  the last registration wins). The engine's notifier calls it like any callback object; the
  proxy sends ``notify`` with a call id and returns the hresult of the client's ``result``. The
  JobError contract (retries, command line, four in flight) stays in ``bitsd._notify``: the hub
  only carries calls, and a proxy has only the methods the client listed, as the notifier asks.
- When a connection closes, its registrations are removed where the job's interface is still
  this connection's proxy, then its unanswered calls return E_FAIL: the notifier goes on as for
  a failed callback (the command line runs if there is one, else the notification waits for the
  next registration). Calls through a closed connection fail at once.
- While the daemon stops (:meth:`EventHub.close`), calls are held, never failed: the engine's
  close cancels them and the notifications stay pending for the next start.
- Watchers get a ``job`` message after each committed change from an engine listener that never
  blocks: messages wait in a per-connection :class:`Outbox` whose job events are bounded; when
  it is full, progress events go first. Answers and notify calls are never dropped.
- A malformed message gets an ``error`` message; the connection stays open.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import functools
import itertools
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect

from bitsd import codes
from bitsd._engine import Engine
from bitsd._errors import BitsError, InvalidArgumentError
from bitsd._job import Job
from bitsd._records import ErrorInfo, FileInfo
from bitsd._wire import (
    JSON,
    error_info_to_json,
    error_to_json,
    file_info_to_json,
    progress_to_json,
    ranges_to_json,
)
from bitsd.daemon import logs
from bitsd.daemon.shapes import json_body

__all__ = ["NOTIFY_METHODS", "EventHub", "Outbox", "RemoteCallback"]

log = logging.getLogger("bitsd.daemon")

NOTIFY_METHODS = (
    "job_error",
    "job_transferred",
    "job_modification",
    "file_transferred",
    "file_ranges_transferred",
)

# Job events waiting for one connection before older ones are dropped (progress first).
DEFAULT_OUTBOX_LIMIT = 1000


class Outbox:
    """Messages waiting to be written to one connection.

    Control messages (answers, notify calls) are never dropped. Job events are bounded by
    ``limit``: a new event into a full outbox first evicts the oldest waiting progress event;
    when none waits, a new progress event is dropped, and a new state event evicts the oldest
    event.
    """

    def __init__(self, limit: int = DEFAULT_OUTBOX_LIMIT) -> None:
        self._limit = limit
        self._items: collections.deque[tuple[str, JSON]] = collections.deque()
        self._events = 0
        self._ready = asyncio.Event()
        self.dropped = 0

    def put_control(self, message: JSON) -> None:
        """Queue a message that must reach the client."""
        self._items.append(("control", message))
        self._ready.set()

    def put_event(self, message: JSON, *, progress: bool) -> None:
        """Queue a job event, dropping one if the outbox is full."""
        kind = "progress" if progress else "event"
        if self._events >= self._limit:
            victim = next((item for item in self._items if item[0] == "progress"), None)
            if victim is None and progress:
                self.dropped += 1
                return
            if victim is None:
                victim = next(item for item in self._items if item[0] == "event")
            self._items.remove(victim)
            self._events -= 1
            self.dropped += 1
        self._items.append((kind, message))
        self._events += 1
        self._ready.set()

    async def get(self) -> JSON:
        """The next message, waiting for one."""
        while not self._items:
            self._ready.clear()
            await self._ready.wait()
        kind, message = self._items.popleft()
        if kind != "control":
            self._events -= 1
        return message


@dataclasses.dataclass(eq=False)
class _Connection:
    """One WebSocket client of the hub."""

    outbox: Outbox
    calls: dict[int, asyncio.Future[int]] = dataclasses.field(default_factory=dict)
    holds: dict[str, RemoteCallback] = dataclasses.field(default_factory=dict)
    call_ids: itertools.count[int] = dataclasses.field(default_factory=lambda: itertools.count(1))
    watching: bool = False
    closed: bool = False
    stopping: bool = False

    async def call(self, message: JSON) -> int:
        """Send a notify call and wait for the client's hresult (E_FAIL once closed)."""
        if self.stopping:
            await asyncio.Future()  # held until the engine's close cancels it
        if self.closed:
            return codes.E_FAIL
        call = next(self.call_ids)
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.calls[call] = future
        self.outbox.put_control({"type": "notify", "call": call, **message})
        try:
            return await future
        finally:
            self.calls.pop(call, None)

    def answer(self, call: int, hresult: int) -> bool:
        """Resolve call ``call``; False if no such call is waiting."""
        future = self.calls.get(call)
        if future is None or future.done():
            return False
        future.set_result(hresult)
        return True

    def fail_calls(self) -> None:
        for future in self.calls.values():
            if not future.done():
                future.set_result(codes.E_FAIL)


class RemoteCallback:
    """The notify interface of one job, living in a client process behind a connection.

    It has exactly the methods the client listed (``job_error(job, error)``,
    ``job_transferred(job)``, ``job_modification(job)``, ``file_transferred(job, file)``,
    ``file_ranges_transferred(job, file, ranges)``): the
    notifier asks ``hasattr`` which ones exist, as BITS would look at a COM object's interface.
    Each call returns the hresult the client answered.
    """

    def __init__(self, connection: _Connection, job_id: str, methods: frozenset[str]) -> None:
        self._connection = connection
        self.job_id = job_id
        self.methods = methods

    def __repr__(self) -> str:
        return f"<RemoteCallback job={self.job_id} methods={sorted(self.methods)}>"

    def __getattr__(self, name: str) -> Callable[..., Awaitable[int]]:
        if name in NOTIFY_METHODS and name in vars(self).get("methods", ()):
            return functools.partial(self._notify, name)
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    async def _notify(
        self, method: str, job: Job, detail: object = None, ranges: object = None
    ) -> int:
        message: JSON = {"job": job.id, "method": method}
        if isinstance(detail, ErrorInfo):
            message["error"] = error_info_to_json(detail)
        elif isinstance(detail, FileInfo):
            message["file"] = file_info_to_json(detail)
        if isinstance(ranges, list):
            message["ranges"] = ranges_to_json(ranges)
        hresult = await self._connection.call(message)
        logs.event(
            log,
            "notify.result",
            level=logging.DEBUG,
            job=job.id,
            method=method,
            hresult=f"0x{hresult:08X}",
        )
        return hresult


class EventHub:
    """Serves ``/v1/events`` for an engine.

    Args:
        engine: the running engine (the hub adds a listener to it until :meth:`close`).
        outbox_limit: job events waiting per connection before some are dropped.
    """

    def __init__(self, engine: Engine, *, outbox_limit: int = DEFAULT_OUTBOX_LIMIT) -> None:
        self._engine = engine
        self._outbox_limit = outbox_limit
        self._connections: set[_Connection] = set()
        self._closing = False
        engine.add_listener(self._on_change)

    async def close(self) -> None:
        """Stop feeding watchers and hold every call (see the module's rules)."""
        self._closing = True
        self._engine.remove_listener(self._on_change)
        for connection in self._connections:
            connection.stopping = True

    async def endpoint(self, websocket: WebSocket) -> None:
        """The ASGI WebSocket endpoint."""
        await websocket.accept()
        connection = _Connection(Outbox(self._outbox_limit), stopping=self._closing)
        self._connections.add(connection)
        sender = asyncio.create_task(self._send_loop(websocket, connection.outbox))
        try:
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    break
                await self._handle(connection, message.get("text"))
        finally:
            connection.closed = True
            self._connections.discard(connection)
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender
            await self._disconnected(connection)

    async def _send_loop(self, websocket: WebSocket, outbox: Outbox) -> None:
        with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):  # the client left
            while True:
                await websocket.send_text(json.dumps(await outbox.get()))

    async def _disconnected(self, connection: _Connection) -> None:
        if connection.stopping:
            return
        for job_id, proxy in connection.holds.items():
            with contextlib.suppress(BitsError):  # the job ended meanwhile
                job = await self._engine.get_job(job_id)
                if await job.get_notify_interface() is proxy:
                    await job.set_notify_interface(None)
        connection.fail_calls()

    # -- messages from the client ----------------------------------------------------------

    async def _handle(self, connection: _Connection, text: str | None) -> None:
        job: object = None
        try:
            message = _parse(text)
            job = message.get("job")
            op = message.get("op")
            if op == "register":
                await self._register(connection, _job_id(message), _methods(message))
            elif op == "unregister":
                await self._unregister(connection, _job_id(message))
            elif op == "watch":
                connection.watching = True
            elif op == "result":
                _result(connection, message)
            else:
                raise InvalidArgumentError(
                    f"unknown op {op!r} (expected register, unregister, watch or result)"
                )
        except BitsError as exc:
            connection.outbox.put_control(_error_message(exc, job))
        except Exception as exc:
            logs.event(log, "events.bug", level=logging.ERROR, exc_info=True)
            bug = BitsError(f"internal error of the daemon: {exc!r}", hresult=codes.E_UNEXPECTED)
            connection.outbox.put_control(_error_message(bug, job))

    async def _register(
        self, connection: _Connection, job_id: str, methods: frozenset[str]
    ) -> None:
        job = await self._engine.get_job(job_id)
        proxy = RemoteCallback(connection, job.id, methods)
        await job.set_notify_interface(proxy)
        connection.holds[job.id] = proxy
        connection.outbox.put_control({"type": "registered", "job": job_id})

    async def _unregister(self, connection: _Connection, job_id: str) -> None:
        job = await self._engine.get_job(job_id)
        proxy = connection.holds.pop(job.id, None)
        if proxy is not None and await job.get_notify_interface() is proxy:
            await job.set_notify_interface(None)

    # -- events to watchers ----------------------------------------------------------------

    def _on_change(self, job_id: str, what: str) -> None:
        watchers = [c for c in self._connections if c.watching]
        if not watchers:
            return
        snapshot = self._engine.snapshot(job_id)
        message = {
            "type": "job",
            "job": job_id,
            "what": what,
            "state": snapshot.state.name,
            "progress": progress_to_json(snapshot.progress),
        }
        for connection in watchers:
            connection.outbox.put_event(message, progress=what == "progress")


def _parse(text: str | None) -> Mapping[str, Any]:
    if text is None:
        raise InvalidArgumentError("messages must be JSON text, not binary")
    # The request bodies' parser: a message nested too deeply or with a lone surrogate is
    # E_INVALIDARG as a body is (json.loads raised RecursionError: an internal error).
    message = json_body(text.encode("utf-8", "surrogatepass"), what="the message")
    if not isinstance(message, dict):
        raise InvalidArgumentError("a message must be a JSON object with an 'op'")
    return message


def _job_id(message: Mapping[str, Any]) -> str:
    job = message.get("job")
    if not isinstance(job, str):
        raise InvalidArgumentError(f"{message.get('op')} needs a job id string")
    return job


def _methods(message: Mapping[str, Any]) -> frozenset[str]:
    methods = message.get("methods")
    if not isinstance(methods, list) or not all(isinstance(m, str) for m in methods):
        raise InvalidArgumentError(f"methods must be a list of names from {list(NOTIFY_METHODS)}")
    unknown = sorted(set(methods) - set(NOTIFY_METHODS))
    if unknown:
        raise InvalidArgumentError(
            f"unknown method {unknown[0]!r} (known: {', '.join(NOTIFY_METHODS)})"
        )
    return frozenset(methods)


def _result(connection: _Connection, message: Mapping[str, Any]) -> None:
    call, hresult = message.get("call"), message.get("hresult")
    if not isinstance(call, int) or not isinstance(hresult, int) or isinstance(hresult, bool):
        raise InvalidArgumentError("result needs an integer call and an integer hresult")
    if not connection.answer(call, codes.to_unsigned(hresult)):
        raise InvalidArgumentError(f"no notify call {call} is waiting for a result")


def _error_message(error: BitsError, job: object) -> JSON:
    message: JSON = {"type": "error", **error_to_json(error)}
    if isinstance(job, str):
        message["job"] = job
    return message
