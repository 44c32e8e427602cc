"""``bitsd upload-server``: the BITS upload server on the command line (also
``python -m bitsd.server``); mounted in the ``bitsd`` group by :mod:`bitsd.cli`.

``bitsd upload-server --root DIR [--host H] [--port P] [--notify-url URL]
[--notify-type by-ref|by-value] [--max-upload-size N] [--max-fragment-size N]
[--session-timeout S] [--notify-timeout S] [--allow-overwrites] [--log-level L]``

Rules:
- Sizes are bytes, with an optional binary suffix (``K``, ``M``, ``G``, ``T``: powers of 1024);
  durations are seconds.
- ``--notify-type`` needs ``--notify-url`` (bad usage, exit 2, otherwise).
- It logs one logfmt line per event on stderr (``bitsd.daemon.logs``) and runs until SIGTERM or
  SIGINT (exit 0). It exits 1 when it cannot start (the root cannot be created, the address
  cannot be bound).
"""

from __future__ import annotations

import asyncio
import logging
import re
import signal
from pathlib import Path
from typing import Final

import click

import bitsd
from bitsd.daemon import logs
from bitsd.server.app import UploadServer
from bitsd.server.config import (
    DEFAULT_MAX_FRAGMENT_SIZE,
    DEFAULT_SESSION_TIMEOUT,
    NOTIFY_TIMEOUT,
    NotifyType,
    ServerConfig,
)
from bitsd.server.run import Serving

__all__ = ["DEFAULT_PORT", "EXIT_FAILED", "EXIT_OK", "serve", "upload_server_command"]

log = logging.getLogger("bitsd.server")

DEFAULT_HOST: Final = "127.0.0.1"
DEFAULT_PORT: Final = 8080
EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
_SIZE = re.compile(r"(\d+)\s*([kmgt]?)(?:i?b)?", re.IGNORECASE)
_UNITS: Final = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


class _Size(click.ParamType):  # type: ignore[type-arg]  # generic in click 8.2+
    """A byte count, optionally with a binary suffix (``64M``, ``2GiB``)."""

    name = "size"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> int:
        if isinstance(value, int):
            return value
        match = _SIZE.fullmatch(str(value).strip())
        if match is None:
            self.fail(f"{value!r} is not a size (bytes, or a number with K, M, G or T)", param, ctx)
        return int(match.group(1)) * _UNITS[match.group(2).lower()]


SIZE: Final = _Size()


@click.command("upload-server")
@click.option(
    "--root",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder uploads land in: the URL path /a/b.bin is stored as ROOT/a/b.bin.",
)
@click.option("--host", default=DEFAULT_HOST, show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    default=DEFAULT_PORT,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="TCP port.",
)
@click.option(
    "--notify-url",
    help="Upload-reply: the server application's URL (absolute, or relative to the upload URL).",
)
@click.option(
    "--notify-type",
    type=click.Choice([t.value for t in NotifyType]),
    help="Hand uploads to the application by reference (path in a header) or by value (body); "
    "default by-ref.",
)
@click.option("--max-upload-size", type=SIZE, help="Largest upload accepted (default: no limit).")
@click.option(
    "--max-fragment-size",
    type=SIZE,
    default=DEFAULT_MAX_FRAGMENT_SIZE,
    show_default=True,
    help="Largest fragment body accepted; larger ones get 413.",
)
@click.option(
    "--session-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=DEFAULT_SESSION_TIMEOUT,
    show_default=True,
    help="Seconds without progress before a session and its data are deleted.",
)
@click.option(
    "--notify-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=NOTIFY_TIMEOUT,
    show_default=True,
    help="Seconds the server application has to answer.",
)
@click.option("--allow-overwrites", is_flag=True, help="Let an upload replace an existing file.")
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
    default="info",
    show_default=True,
)
def upload_server_command(
    root: Path,
    host: str,
    port: int,
    notify_url: str | None,
    notify_type: str | None,
    max_upload_size: int | None,
    max_fragment_size: int,
    session_timeout: float,
    notify_timeout: float,
    allow_overwrites: bool,
    log_level: str,
) -> None:
    """Run a BITS upload server: Windows BITS clients and bitsd upload to it with BITS_POST."""
    if notify_type is not None and notify_url is None:
        raise click.UsageError("--notify-type needs --notify-url")
    try:
        config = ServerConfig(
            root=root,
            notify_url=notify_url,
            notify_type=NotifyType(notify_type or NotifyType.BY_REFERENCE),
            max_upload_size=max_upload_size,
            session_timeout=session_timeout,
            max_fragment_size=max_fragment_size,
            allow_overwrites=allow_overwrites,
            notify_timeout=notify_timeout,
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    logs.configure(log_level.lower())
    try:
        asyncio.run(serve(config, host=host, port=port))
    except OSError as exc:
        click.echo(f"bitsd upload-server: {exc}", err=True)
        raise SystemExit(EXIT_FAILED) from None
    raise SystemExit(EXIT_OK)


async def serve(
    config: ServerConfig, *, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT
) -> None:
    """Serve uploads until SIGTERM or SIGINT (or until uvicorn stops on its own).

    Raises:
        OSError: the root cannot be created or the address cannot be bound.
    """
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        server = UploadServer(config)
        async with Serving(server.app, host=host, port=port) as serving:
            logs.event(
                log,
                "server.ready",
                version=bitsd.__version__,
                url=serving.url("/"),
                root=server.root.path,
                notify=config.notify_url,
                notify_type=config.notify_type if config.notify_url else None,
                max_upload_size=config.max_upload_size,
                session_timeout=config.session_timeout,
            )
            stopping = asyncio.create_task(stop.wait())
            await asyncio.wait({stopping, serving.task}, return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            logs.event(log, "server.stopping")
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
    logs.event(log, "server.stopped")
