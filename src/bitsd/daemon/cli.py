"""The daemon's command line: ``python -m bitsd.daemon``, mounted as ``bitsd serve`` by
:mod:`bitsd.cli`.

``bitsd serve [--detach] [--state-dir D] [--socket S] [--config C] [--log-level L]``

Rules:
- An option beats the environment (``BITSD_STATE_DIR``, ``BITSD_SOCKET``, ``BITSD_CONFIG``),
  which beats the XDG defaults (``bitsd.daemon.paths``); ``--log-level`` beats the config file.
- In the foreground the daemon logs to stderr. ``--detach`` checks the config file, forks; the
  child starts a new session and writes its log to ``<state>/daemon.log``; the parent returns
  once the socket accepts connections, or reports the child's failure with the log's tail.
- Exit status: 0 stopped by SIGTERM or SIGINT (``--detach``: the daemon is ready); 1 it could
  not start (state folder, socket) or a detached daemon did not become ready; 2 bad usage
  or a bad config file; 3 another daemon holds the lock; 4 the job store is unusable (a copy
  was made beside it). A detached daemon that exits before it
  is ready passes its own status on.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import time
from collections.abc import Callable
from pathlib import Path

import click

from bitsd._errors import BitsError
from bitsd.daemon import config as config_file
from bitsd.daemon import logs
from bitsd.daemon.listen import ListenError
from bitsd.daemon.lock import LockHeldError
from bitsd.daemon.paths import Paths, ensure_private_dir, resolve
from bitsd.daemon.service import StartupError, StoreRefusedError, serve

__all__ = [
    "EXIT_CONFIG",
    "EXIT_FAILED",
    "EXIT_LOCKED",
    "EXIT_OK",
    "EXIT_STORE",
    "READY_TIMEOUT",
    "serve_command",
]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2
EXIT_LOCKED = 3
EXIT_STORE = 4

# Seconds the parent of --detach waits for the daemon to accept connections (opening a large
# job store takes a while).
READY_TIMEOUT = 60.0
# Lines of the daemon's log shown when a detached start fails.
_TAIL_LINES = 20


@click.command("serve")
@click.option(
    "--detach", is_flag=True, help="Run in the background; return once the daemon is ready."
)
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="State folder (default: $BITSD_STATE_DIR, else $XDG_STATE_HOME/bitsd).",
)
@click.option(
    "--socket",
    "socket_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Control socket (default: $BITSD_SOCKET, else $XDG_RUNTIME_DIR/bitsd/bitsd.sock).",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Config file (default: $BITSD_CONFIG, else $XDG_CONFIG_HOME/bitsd/config.toml).",
)
@click.option(
    "--log-level",
    type=click.Choice(config_file.LOG_LEVELS, case_sensitive=False),
    help="Log level (default: the config file's log_level, else info).",
)
def serve_command(
    detach: bool,
    state_dir: Path | None,
    socket_path: Path | None,
    config_path: Path | None,
    log_level: str | None,
) -> None:
    """Run the bitsd daemon: the per-user service that holds the jobs."""
    paths = resolve(state_dir=state_dir, socket=socket_path, config=config_path)
    level = log_level.lower() if log_level else None
    code = _detach(paths, level) if detach else _run(paths, level, ready=None)
    raise SystemExit(code)


def _run(paths: Paths, log_level: str | None, ready: Callable[[], None] | None) -> int:
    """Run the daemon in this process until it stops; its exit status."""
    logs.configure(log_level or config_file.DEFAULT_LOG_LEVEL)
    try:
        asyncio.run(serve(paths, log_level=log_level, ready=ready))
    except config_file.ConfigError as exc:
        return _fail(exc, EXIT_CONFIG)
    except LockHeldError as exc:
        return _fail(exc, EXIT_LOCKED)
    except StoreRefusedError as exc:
        return _fail(exc, EXIT_STORE)
    except (StartupError, ListenError, BitsError, OSError) as exc:
        return _fail(exc, EXIT_FAILED)
    return EXIT_OK


def _fail(error: Exception, code: int) -> int:
    click.echo(f"bitsd: {error}", err=True)
    return code


def _detach(paths: Paths, log_level: str | None) -> int:
    """Start the daemon in the background; return once it is ready (see the module's rules)."""
    try:
        config_file.load(paths.config)
    except config_file.ConfigError as exc:
        return _fail(exc, EXIT_CONFIG)
    try:
        ensure_private_dir(paths.state_dir)
        log_fd = os.open(paths.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        return _fail(exc, EXIT_FAILED)
    log_start = os.fstat(log_fd).st_size
    ready_read, ready_write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the daemon
        os.close(ready_read)
        os.setsid()
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        os.close(devnull)
        os.close(log_fd)
        os.chdir("/")

        def ready() -> None:
            with contextlib.suppress(OSError):  # the parent is gone: nobody to tell
                os.write(ready_write, b"1")
            os.close(ready_write)

        return _run(paths, log_level, ready)
    os.close(ready_write)
    os.close(log_fd)
    return _await_ready(pid, ready_read, paths.log, log_start)


def _await_ready(pid: int, ready_read: int, log_path: Path, log_start: int) -> int:
    """Wait for the daemon's ready byte, or its exit (end of file on the pipe)."""
    deadline = time.monotonic() + READY_TIMEOUT
    with os.fdopen(ready_read, "rb", buffering=0) as ready:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                click.echo(
                    f"bitsd: the daemon (pid {pid}) is not ready after {READY_TIMEOUT:g} s; "
                    f"see {log_path}",
                    err=True,
                )
                return EXIT_FAILED
            readable, _, _ = select.select([ready], [], [], remaining)
            if not readable:
                continue
            if ready.read(1):
                click.echo(f"bitsd: daemon started (pid {pid}); log: {log_path}", err=True)
                return EXIT_OK
            _, status = os.waitpid(pid, 0)
            code = os.waitstatus_to_exitcode(status)
            click.echo(
                f"bitsd: the daemon exited with status {code} before it was ready:", err=True
            )
            click.echo(_tail(log_path, log_start), err=True, nl=False)
            return code if code > 0 else EXIT_FAILED


def _tail(path: Path, start: int) -> str:
    """The last lines a detached daemon wrote to its log from ``start``."""
    try:
        with path.open("rb") as f:
            f.seek(start)
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    lines = text.splitlines(keepends=True)[-_TAIL_LINES:]
    return "".join(lines)
