"""``bitsd reply``: the server application's reply to an upload-reply job (docs/uploads.md).

Rules:
- The data is what GetReplyData answers, byte for byte: on stdout (binary, nothing added), or
  in ``--output FILE``, which is created only once the daemon answered (an empty reply makes an
  empty file). It exists from TRANSFERRED on, up to 1 MB (BG_E_TOO_LARGE above: the reply file
  holds it after ``bitsd complete``).
- ``--progress`` prints the reply's file and progress instead, the rows ``bitsd info`` shows.
- A job that is not upload-reply, a reply that is not there yet or too large: the daemon's BITS
  error, with the advice of ``bitsd.cli.errors`` for this command (exit 1).
- The reply file's name is set with ``bitsd set JOB --reply-file PATH``.
"""

from __future__ import annotations

import click

from bitsd._client import Manager
from bitsd.cli import params, render, session
from bitsd.cli.session import Call

__all__ = ["reply"]


@click.command()
@click.argument("job", type=params.JOB)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, allow_dash=True),
    default="-",
    show_default=True,
    help="Write the reply to this file ('-': stdout).",
)
@click.option(
    "--progress",
    is_flag=True,
    help="Print the reply's file and progress instead of the reply.",
)
def reply(job: str, output: str, progress: bool) -> None:
    """Print the reply of upload-reply JOB (GetReplyData), or save it with --output.

    The reply is there once the job is TRANSFERRED, up to 1 MB; after bitsd complete JOB it is
    in the reply file (set it with bitsd set JOB --reply-file PATH).
    """
    to_file = output != "-"
    if progress and to_file:
        raise click.UsageError("--progress prints the progress; it does not go with --output")

    async def body(manager: Manager, call: Call) -> tuple[str, bytes] | None:
        handle = await session.resolve(manager, job, call)
        if progress:
            render.show(render.reply_table(*await session.read_reply(handle)))
            return None
        return handle.id, await handle.get_reply_data()

    answered = session.run("reply", body)
    if answered is None:
        return
    job_id, data = answered
    try:
        with click.open_file(output, "wb") as f:
            f.write(data)
    except OSError as exc:
        raise click.FileError(output, hint=exc.strerror or str(exc)) from None
    if to_file:
        size = render.human_size(len(data))
        click.echo(f"job {job_id}: reply ({size}) written to {output}", err=True)
