"""Delivery of notifications with the JobError contract (shared/reference/seed-JobError.txt).

Rules:
- JobTransferred and JobError are *pending* until their receiver accepts them: they are stored,
  survive a restart, and are delivered at least once. They are dropped when the job leaves the
  state they are about (the owner resumed, completed or cancelled it).
- A callback that returns None or a success HRESULT accepted it. One that raises or returns a
  failure HRESULT is called again after the retry interval, unless the job has a notify command
  line: then the command line runs instead and the callback is not called again.
- A job with no live callback runs its command line; with neither, the notification waits for a
  callback to be registered (registering after the event still gets it).
- A command line runs as argv (no shell): ``program`` is executed, ``parameters`` split as a
  POSIX command line gives argv (its first token is the program's name, as in BITS). Exit 0
  accepts; another exit status runs it again after the job's minimum retry delay.
- JobModification, FileTransferred and FileRangesTransferred are best effort: never stored,
  never retried (BITS may drop them under load); JobModification is coalesced per job. The
  command line ignores them.
- At most ``max_in_flight`` notifications run at once (BITS: four per user). A callback that
  blocks holds its slot and delays the others; none is lost.
- Transient errors never notify: the engine posts JobError only on entering ERROR.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import inspect
import logging
import shlex
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Protocol, TypeGuard

from bitsd import codes
from bitsd._clock import Clock
from bitsd._enums import JobState, NotifyFlags
from bitsd._model import PendingNotification, evolve
from bitsd._store.base import Store

__all__ = ["JOB_ERROR", "JOB_TRANSFERRED", "CommandRunner", "Host", "Notifier", "run_command"]

log = logging.getLogger("bitsd.notify")

JOB_TRANSFERRED = "job_transferred"
JOB_ERROR = "job_error"
_STATE_OF = {JOB_TRANSFERRED: JobState.TRANSFERRED, JOB_ERROR: JobState.ERROR}
_FLAG_OF = {JOB_TRANSFERRED: NotifyFlags.JOB_TRANSFERRED, JOB_ERROR: NotifyFlags.JOB_ERROR}

CommandRunner = Callable[[str, list[str]], Awaitable[int]]


async def run_command(program: str, argv: list[str]) -> int:
    """Run ``program`` with ``argv`` (no shell, no inherited stdin/stdout) and return its exit
    status; a program that cannot start counts as a failure (127)."""
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            executable=program,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            start_new_session=True,
        )
    except OSError as exc:
        log.warning("notify command %s could not start: %s", program, exc)
        return 127
    return await proc.wait()


class Host(Protocol):
    """What the notifier needs from the engine."""

    def notify_target(self, job_id: str) -> NotifyTarget | None:
        """The job's current notification settings, or None if the job is gone."""
        ...

    def job_handle(self, job_id: str) -> Any:
        """The object passed to callbacks as ``job``."""
        ...

    def error_info(self, job_id: str) -> Any:
        """The ErrorInfo passed to ``job_error``."""
        ...


@dataclasses.dataclass(frozen=True, slots=True)
class NotifyTarget:
    """A job's notification settings at the time of delivery."""

    state: JobState
    flags: NotifyFlags
    program: str | None
    parameters: str | None
    minimum_retry_delay: float


def _accepted(result: object) -> bool:
    """Whether a callback's return value accepts the notification (None or a success code)."""
    if result is None or isinstance(result, bool) or not isinstance(result, int):
        return True
    return codes.is_success(result)


class _Slots:
    """At most ``limit`` holders at once, like a semaphore whose size may change while it is
    held (a reload of ``max_notifications``)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    async def __aenter__(self) -> None:
        while self.held >= self.limit:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            finally:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)  # a few waiters at most
        self.held += 1

    async def __aexit__(self, *exc: object) -> None:
        self.held -= 1
        self._wake()

    def resize(self, limit: int) -> None:
        self.limit = limit
        self._wake()

    def _wake(self) -> None:
        free = self.limit - self.held
        for waiter in self._waiters:
            if free <= 0:
                break
            if not waiter.done():
                waiter.set_result(None)
                free -= 1


class Notifier:
    """Delivers a job's notifications to its live callback object or its command line.

    Args:
        host: the engine.
        store: where pending notifications are kept.
        clock: the engine's clock (retry intervals).
        max_in_flight: notifications delivered at once.
        retry_interval: seconds between calls of a failing callback; None uses the job's
            minimum retry delay.
        runner: how command lines run (injected by tests).
    """

    def __init__(
        self,
        host: Host,
        store: Store,
        clock: Clock,
        *,
        max_in_flight: int,
        retry_interval: float | None,
        runner: CommandRunner = run_command,
    ) -> None:
        self._host = host
        self._store = store
        self._clock = clock
        self._slots = _Slots(max_in_flight)
        self._retry_interval = retry_interval
        self._runner = runner
        self._callbacks: dict[str, object] = {}
        self._pending: dict[tuple[str, str], PendingNotification] = {}
        self._busy: set[tuple[str, str]] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._modified: set[str] = set()
        self._wake = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self, pending: list[PendingNotification]) -> None:
        """Begin delivering, with the notifications a previous run left pending."""
        now = self._clock.monotonic()
        for n in pending:
            self._pending[(n.job_id, n.kind)] = evolve(n, next_at=now)
        self._loop_task = asyncio.create_task(self._loop(), name="bitsd-notifier")

    async def close(self) -> None:
        """Stop delivering; pending notifications stay stored for the next run."""
        tasks = [t for t in (self._loop_task, *self._tasks) if t is not None]
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t

    def reconfigure(self, *, retry_interval: float | None, max_in_flight: int) -> None:
        """Change the retry interval of failing callbacks and the notifications run at once
        (service configuration): a higher limit lets waiting ones start now, a lower one
        lets none start until enough have ended."""
        self._retry_interval = retry_interval
        self._slots.resize(max_in_flight)

    # -- what the engine tells us ----------------------------------------------------------

    def register(self, job_id: str, callback: object | None) -> None:
        """Set (or clear, with None) the job's live callback object. Pending notifications of
        the job are offered to the new object at once (at-least-once delivery)."""
        if callback is None:
            self._callbacks.pop(job_id, None)
            return
        self._callbacks[job_id] = callback
        now = self._clock.monotonic()
        for key, n in list(self._pending.items()):
            if key[0] == job_id and not n.cmdline_due:
                self._pending[key] = evolve(n, next_at=now)
        self._wake.set()

    def retry_waiting(self, job_id: str) -> None:
        """Offer the job's notifications that wait for a receiver again (a command line was
        set after the event)."""
        now = self._clock.monotonic()
        for key, n in list(self._pending.items()):
            if key[0] == job_id and n.next_at == float("inf"):
                self._pending[key] = evolve(n, next_at=now)
        self._wake.set()

    def callback_of(self, job_id: str) -> object | None:
        """The job's live callback object."""
        return self._callbacks.get(job_id)

    def post(self, job_id: str, kind: str) -> None:
        """The job entered TRANSFERRED (``job_transferred``) or ERROR (``job_error``).

        A notification nobody can receive yet (no callback, no command line) is stored waiting
        for a receiver at once, as a delivery attempt would leave it: no task, no second
        write. ``register`` and ``retry_waiting`` offer it again."""
        key = (job_id, kind)
        n = PendingNotification(job_id, kind, _STATE_OF[kind], next_at=self._clock.monotonic())
        self._store.put_notification(n)
        if job_id not in self._callbacks and key not in self._busy:
            target = self._host.notify_target(job_id)
            if _wanted(target, n) and target.program is None:
                self._pending[key] = evolve(n, next_at=float("inf"))
                return
        self._pending[key] = n
        self._wake.set()

    def left_state(self, job_id: str, state: JobState) -> None:
        """The job left ``state``: its notification about that state is obsolete."""
        for kind, s in _STATE_OF.items():
            if s is state and self._pending.pop((job_id, kind), None) is not None:
                self._store.delete_notification(job_id, kind)

    def forget(self, job_id: str) -> None:
        """The job is gone (final): drop its callback and notifications."""
        self._callbacks.pop(job_id, None)
        # A job has at most one pending notification of each kind: no scan of every job's.
        for kind in _STATE_OF:
            self._pending.pop((job_id, kind), None)

    def modification(self, job_id: str) -> None:
        """Something about the job changed (JobModification, coalesced, best effort)."""
        cb = self._callbacks.get(job_id)
        if cb is None or not hasattr(cb, "job_modification"):
            return
        target = self._host.notify_target(job_id)
        if target is None or NotifyFlags.DISABLE in target.flags:
            return
        if NotifyFlags.JOB_MODIFICATION not in target.flags or job_id in self._modified:
            return
        self._modified.add(job_id)
        self._spawn(self._modification(job_id, cb))

    def has_callback(self, job_id: str) -> bool:
        """Whether the job has a callback (one that might want FileTransferred): a job of
        thousands of files need not make a FileInfo per file for nobody."""
        return job_id in self._callbacks

    def file_transferred(self, job_id: str, file: object) -> None:
        """One file of the job is done (FileTransferred, best effort)."""
        self._once_if(job_id, "file_transferred", NotifyFlags.FILE_TRANSFERRED, file)

    def file_ranges_transferred(
        self, job_id: str, file: object, ranges: list[tuple[int, int]]
    ) -> None:
        """Ranges of an on-demand job's file are in (FileRangesTransferred, best effort)."""
        self._once_if(
            job_id, "file_ranges_transferred", NotifyFlags.FILE_RANGES_TRANSFERRED, file, ranges
        )

    def _once_if(self, job_id: str, method: str, flag: NotifyFlags, *args: object) -> None:
        """Call ``method`` of the job's callback once, if it has one and the flags want it."""
        cb = self._callbacks.get(job_id)
        target = self._host.notify_target(job_id)
        if cb is None or target is None or not hasattr(cb, method):
            return
        if NotifyFlags.DISABLE in target.flags or flag not in target.flags:
            return
        self._spawn(self._once(job_id, cb, method, *args))

    # -- delivery --------------------------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _loop(self) -> None:
        while True:
            self._wake.clear()
            now = self._clock.monotonic()
            wake_at: float | None = None
            for key, n in list(self._pending.items()):
                if key in self._busy:
                    continue
                if n.next_at <= now:
                    self._busy.add(key)
                    self._spawn(self._deliver(key))
                elif n.next_at != float("inf"):
                    wake_at = n.next_at if wake_at is None else min(wake_at, n.next_at)
            waits: list[asyncio.Future[Any]] = [asyncio.ensure_future(self._wake.wait())]
            if wake_at is not None:
                waits.append(asyncio.ensure_future(self._clock.sleep_until(wake_at)))
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waits:
                    w.cancel()

    async def _call(self, cb: object, method: str, *args: object) -> bool:
        """Call ``cb.method(*args)`` in a slot. True if it accepted."""
        fn = getattr(cb, method, None)
        if fn is None:
            return False
        async with self._slots:
            try:
                if inspect.iscoroutinefunction(fn):
                    result = await fn(*args)
                else:
                    result = await asyncio.to_thread(fn, *args)
                    if inspect.isawaitable(result):
                        result = await result
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("%s callback of job %s raised", method, args and args[0], exc_info=True)
                return False
        return _accepted(result)

    async def _run_cmdline(self, job_id: str, target: NotifyTarget) -> bool:
        assert target.program is not None
        try:
            argv = shlex.split(target.parameters) if target.parameters else [target.program]
        except ValueError:
            log.warning("notify parameters of job %s cannot be parsed", job_id)
            return False
        async with self._slots:
            try:
                status = await self._runner(target.program, argv or [target.program])
            except Exception:
                # A runner that raises (a command line an older bitsd stored with a NUL, a
                # caller's command_runner) is a failed run, retried after the delay: left to
                # escape, the notification stayed due and was delivered again at once, forever.
                log.warning("notify command of job %s could not run", job_id, exc_info=True)
                return False
        log.info("notify command of job %s exited with status %d", job_id, status)
        return status == 0

    async def _deliver(self, key: tuple[str, str]) -> None:
        job_id, kind = key
        try:
            n = self._pending.get(key)
            target = self._host.notify_target(job_id)
            if n is None:
                return
            if not _wanted(target, n):
                self._drop(key)
                return
            cb = self._callbacks.get(job_id)
            if cb is not None and not hasattr(cb, kind):
                cb = None  # the object does not take this notification: as if none were set
            if cb is not None and not n.cmdline_due:
                args: tuple[object, ...] = (self._host.job_handle(job_id),)
                if kind == JOB_ERROR:
                    args += (self._host.error_info(job_id),)
                ok = await self._call(cb, kind, *args)
                n = evolve(n, attempts=n.attempts + 1)
                if ok:
                    self._drop(key)
                    return
                if not _still(self._host.notify_target(job_id), n):
                    self._drop(key)
                    return
                if target.program is None:
                    interval = self._retry_interval or target.minimum_retry_delay
                    self._reschedule(key, evolve(n, next_at=self._clock.monotonic() + interval))
                    return
                n = evolve(n, cmdline_due=True)
            if target.program is None:
                # Nobody to tell yet: wait for a callback to be registered.
                self._reschedule(key, evolve(n, next_at=float("inf")))
                return
            if n.cmdline_due is False:
                n = evolve(n, cmdline_due=True)
            if await self._run_cmdline(job_id, target):
                self._drop(key)
                return
            self._reschedule(
                key,
                evolve(n, next_at=self._clock.monotonic() + target.minimum_retry_delay),
            )
        finally:
            self._busy.discard(key)
            self._wake.set()

    def _reschedule(self, key: tuple[str, str], n: PendingNotification) -> None:
        if key not in self._pending:
            return  # dropped while we were delivering
        self._pending[key] = n
        stored = evolve(n, next_at=0.0) if n.next_at == float("inf") else n
        self._store.put_notification(stored)

    def _drop(self, key: tuple[str, str]) -> None:
        if self._pending.pop(key, None) is not None:
            self._store.delete_notification(*key)

    async def _modification(self, job_id: str, cb: object) -> None:
        try:
            await asyncio.sleep(0)
        finally:
            self._modified.discard(job_id)
        await self._call(cb, "job_modification", self._host.job_handle(job_id))

    async def _once(self, job_id: str, cb: object, method: str, *args: object) -> None:
        await self._call(cb, method, self._host.job_handle(job_id), *args)


def _still(target: NotifyTarget | None, n: PendingNotification) -> bool:
    return target is not None and target.state is n.state


def _wanted(target: NotifyTarget | None, n: PendingNotification) -> TypeGuard[NotifyTarget]:
    """Whether ``n`` is still to be delivered: the job is still in its state and its flags
    ask for this notification."""
    return (
        _still(target, n)
        and target is not None
        and NotifyFlags.DISABLE not in target.flags
        and _FLAG_OF[n.kind] in target.flags
    )
