"""``bitsd``: the command line of the bitsd daemon (click + rich).

Commands (docs/cli.md): ``transfer`` downloads and waits like Start-BitsTransfer; ``create``,
``add``, ``add-set``, ``resume``, ``suspend``, ``cancel``, ``complete``, ``set``,
``credentials``, ``replace-prefix`` and ``validate`` are the BITS verbs; ``info``, ``files``,
``list``, ``error`` and ``wait`` read jobs (each with ``--json``); ``reply`` gives an
upload-reply job's reply;
``monitor`` watches every job live; ``serve`` runs the daemon (the daemon package's command);
``completion`` prints the shell completion script.

Exit codes (:class:`bitsd.cli.errors.ExitCode`): 0 success; 1 the job ended in ERROR or the daemon
refused the command; 2 bad usage; 3 the daemon is unreachable; 4 no such job; 124 ``wait`` timed
out; 130 interrupted.
"""

from __future__ import annotations

import click

import bitsd
from bitsd.cli import (
    completion,
    credentials,
    jobs,
    monitor,
    queries,
    reply,
    session,
    transfer,
)
from bitsd.cli.errors import ExitCode, fail

__all__ = ["main"]

_SERVE = "serve"
_UPLOAD_SERVER = "upload-server"


class _Bitsd(click.Group):
    """The command group; ``serve`` is mounted from the daemon package when first asked for,
    so that the client commands do not import the server (uvicorn, starlette) to start."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), _SERVE, _UPLOAD_SERVER})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name == _SERVE and _SERVE not in self.commands:
            from bitsd.daemon.cli import serve_command

            self.add_command(serve_command, _SERVE)
        if cmd_name == _UPLOAD_SERVER and _UPLOAD_SERVER not in self.commands:
            from bitsd.server.cli import upload_server_command

            self.add_command(upload_server_command, _UPLOAD_SERVER)
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            # Outside a command's run (click would say "Aborted!" and exit 1).
            raise fail("interrupted", ExitCode.INTERRUPTED) from None


@click.group(
    cls=_Bitsd,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(bitsd.__version__, "-V", "--version", prog_name="bitsd")
@click.option(
    "--socket",
    type=click.Path(dir_okay=False),
    help="The daemon's control socket (default: BITSD_SOCKET, else the XDG runtime folder).",
)
@click.option(
    "--no-autostart",
    is_flag=True,
    help=(
        "Fail (exit 3) instead of starting a daemon that is not running; "
        f"also {session.AUTOSTART_ENV}=1."
    ),
)
@click.pass_context
def main(ctx: click.Context, socket: str | None, no_autostart: bool) -> None:
    """bitsd: background file transfers with the semantics of Microsoft BITS.

    JOB is a job id (braces optional) or a display name that only one of your jobs has.
    """
    autostart = not no_autostart and session.autostart_from_env()
    ctx.obj = session.Settings(socket=socket, autostart=autostart)


for _command in (
    transfer.transfer,
    *jobs.COMMANDS,
    credentials.credentials,
    *queries.COMMANDS,
    reply.reply,
    monitor.monitor,
    completion.completion,
):
    main.add_command(_command)
