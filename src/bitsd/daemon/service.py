"""The daemon's life: start in order, serve, reload when asked, stop in order.

Rules:
- Start: read the config file (a bad one refuses to start), take the lock (a second daemon
  refuses to start), bind the control socket (a stale file is removed under the lock), open the
  engine (a job store it cannot use is copied aside and refuses to start: ``store_copy``),
  then serve the app on the socket with uvicorn. Readiness (sd_notify ``READY=1``, the
  ``--detach`` pipe) is announced only once the socket accepts connections.
- Signal handlers only record intent (:meth:`Daemon.request_stop`,
  :meth:`Daemon.request_reload`); :meth:`Daemon.run` acts on it in the main loop. uvicorn's own
  signal handling is switched off.
- Reload: the config file is read again; a bad one is logged and the old config stays. A good
  one is applied whole (a key removed from the file returns to its default): engine settings
  through ``Engine.reconfigure`` and the log level (unless ``--log-level`` fixed it).
- Stop, in a few seconds whatever runs: ``wait`` requests answer at once, the event hub holds
  its calls (notifications stay pending, never fail because the daemon stops), uvicorn stops
  accepting and closes connections (WebSockets get close code 1012; requests in progress get
  ``GRACEFUL_SHUTDOWN`` seconds), the engine closes (checkpointing transfers), the socket file is
  removed and the lock released, in that order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

import uvicorn

import bitsd
from bitsd._engine import STORE_FILE_NAME, Engine
from bitsd._errors import StoreError
from bitsd._uvicorn import Server
from bitsd.daemon import config as config_file
from bitsd.daemon import logs, sdnotify
from bitsd.daemon.app import build_app
from bitsd.daemon.connections import PeerCheckedHttpProtocol
from bitsd.daemon.events import EventHub
from bitsd.daemon.listen import bind_control_socket, remove_control_socket
from bitsd.daemon.lock import DaemonLock
from bitsd.daemon.paths import Paths, ensure_private_dir
from bitsd.daemon.store_copy import copy_aside

__all__ = ["GRACEFUL_SHUTDOWN", "Daemon", "StartupError", "StoreRefusedError", "serve"]

log = logging.getLogger("bitsd.daemon")

# Seconds uvicorn gives requests in progress when the daemon stops, before cancelling them.
GRACEFUL_SHUTDOWN = 2
# Seconds uvicorn may take to start listening on a socket that is already bound.
_START_TIMEOUT = 10.0


class StartupError(Exception):
    """The daemon cannot start; the message says why."""


class StoreRefusedError(StartupError):
    """The job store is unusable (corrupt, or of a newer bitsd): a copy was made, the daemon
    does not start (exit status 4)."""


class Daemon:
    """The per-user service as an async context manager: entering starts it, leaving stops it.

    Args:
        paths: its state folder, socket and config file.
        log_level: a level that overrides the config file's (``--log-level``), also on reload.

    Attributes (while it runs):
        engine: the engine that holds the jobs.
        app: the control API (a Starlette app).
    """

    def __init__(self, paths: Paths, *, log_level: str | None = None) -> None:
        self.paths = paths
        self._log_level = log_level
        self._wake = asyncio.Event()
        self._stop_requested = False
        self._reload_requested = False
        self._stopping = asyncio.Event()

    # -- intent ----------------------------------------------------------------------------

    def request_stop(self) -> None:
        """Ask :meth:`run` to return (SIGTERM, SIGINT)."""
        self._stop_requested = True
        self._wake.set()

    def request_reload(self) -> None:
        """Ask :meth:`run` to read the config file again (SIGHUP)."""
        self._reload_requested = True
        self._wake.set()

    async def run(self) -> None:
        """Serve until a stop is requested, reloading the config when asked."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self._reload_requested:
                self._reload_requested = False
                self._reload()
            if self._stop_requested:
                return

    # -- start and stop --------------------------------------------------------------------

    async def __aenter__(self) -> Daemon:
        self._config = config_file.load(self.paths.config)
        self._apply_log_level()
        try:
            ensure_private_dir(self.paths.state_dir)
        except OSError as exc:
            raise StartupError(f"cannot create the state folder: {exc}") from None
        async with contextlib.AsyncExitStack() as stack:
            lock = DaemonLock(self.paths.lock)
            lock.acquire()
            stack.callback(lock.release)
            sock = bind_control_socket(self.paths.socket)
            stack.callback(remove_control_socket, self.paths.socket)
            stack.callback(sock.close)
            try:
                self.engine = await stack.enter_async_context(
                    Engine(self.paths.state_dir, config=self._config.engine)
                )
            except StoreError as exc:
                raise _refuse_store(self.paths.state_dir / STORE_FILE_NAME, exc) from None
            self._hub = EventHub(self.engine)
            self.app = build_app(self.engine, self._hub, stopping=self._stopping)
            self._server = Server(
                uvicorn.Config(
                    self.app,
                    # httptools, not h11: the control API has no BITS_POST, and its C
                    # parser takes a third off each request (docs/design-choices.md).
                    http=PeerCheckedHttpProtocol,
                    ws="wsproto",
                    lifespan="off",
                    log_config=None,
                    access_log=False,
                    proxy_headers=False,
                    server_header=False,
                    timeout_graceful_shutdown=GRACEFUL_SHUTDOWN,
                )
            )
            self._serving = asyncio.create_task(
                self._server.serve(sockets=[sock]), name="bitsd-http"
            )
            stack.push_async_callback(self._stop_serving)
            await self._until_listening()
            self._serving.add_done_callback(lambda _: self.request_stop())
            self._stack = stack.pop_all()
        logs.event(
            log,
            "daemon.ready",
            version=bitsd.__version__,
            pid=os.getpid(),
            socket=self.paths.socket,
            state=self.paths.state_dir,
            config=self.paths.config,
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        logs.event(log, "daemon.stopping")
        await self._stack.aclose()
        logs.event(log, "daemon.stopped")

    async def _until_listening(self) -> None:
        async with asyncio.timeout(_START_TIMEOUT):
            while not self._server.started:
                if self._serving.done():
                    raise StartupError(
                        f"the HTTP server stopped while starting: {self._serving.exception()!r}"
                    )
                await asyncio.sleep(0.01)

    async def _stop_serving(self) -> None:
        self._stopping.set()
        await self._hub.close()
        self._server.request_exit()
        await self._serving

    # -- configuration ---------------------------------------------------------------------

    def _apply_log_level(self) -> None:
        logs.set_level(self._log_level or self._config.log_level)

    def _reload(self) -> None:
        try:
            new = config_file.load(self.paths.config)
        except config_file.ConfigError as exc:
            logs.event(log, "config.error", level=logging.ERROR, error=exc, kept="previous")
            return
        self._config = new
        self.engine.reconfigure(**new.engine_settings())
        self._apply_log_level()
        logs.event(
            log,
            "config.reloaded",
            path=self.paths.config,
            log_level=self._log_level or new.log_level,
        )


def _refuse_store(store: Path, error: StoreError) -> StoreRefusedError:
    """Copy an unusable store aside and say where; the daemon never starts empty over it."""
    copy: Path | None = None
    try:
        copy = copy_aside(store)
        where = f"a copy is at {copy}"
    except OSError as exc:
        where = f"it could not be copied ({exc})"
    logs.event(log, "store.refused", level=logging.ERROR, store=store, copy=copy, error=error)
    return StoreRefusedError(
        f"the job store is unusable: {error}; {where}. The daemon does not start over it (its "
        f"jobs would be lost): move {store} away to start with no jobs, or upgrade bitsd if "
        "a newer version wrote it"
    )


async def serve(
    paths: Paths,
    *,
    log_level: str | None = None,
    ready: Callable[[], None] | None = None,
) -> None:
    """Run the daemon until SIGTERM or SIGINT; SIGHUP reloads the config file.

    Args:
        paths: its state folder, socket and config file.
        log_level: overrides the config file's level.
        ready: called once the socket accepts connections (``--detach`` uses it).

    Raises:
        ConfigError, LockHeldError, ListenError, StartupError, BitsError: it could not start.
    """
    loop = asyncio.get_running_loop()
    daemon = Daemon(paths, log_level=log_level)
    handlers = {
        signal.SIGTERM: daemon.request_stop,
        signal.SIGINT: daemon.request_stop,
        signal.SIGHUP: daemon.request_reload,
    }
    for signum, handler in handlers.items():
        loop.add_signal_handler(signum, handler)
    try:
        async with daemon:
            sdnotify.notify("READY=1")
            if ready is not None:
                ready()
            await daemon.run()
            sdnotify.notify("STOPPING=1")
    finally:
        for signum in handlers:
            loop.remove_signal_handler(signum)
