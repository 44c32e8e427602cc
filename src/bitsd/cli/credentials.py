"""``bitsd credentials JOB set|remove``: the credentials a job gives a server or a proxy that
asks for them (SetCredentials, RemoveCredentials).

Rules:
- The password never travels on the command line, where other processes can read it (in
  ``/proc/PID/cmdline``): it is typed on the terminal at a prompt that does not echo it (asked
  twice), or read from stdin with ``--password-stdin``; without a terminal and without
  ``--password-stdin`` the command refuses (usage, exit 2) rather than read an echoed line.
  It is read before the daemon is contacted, and never printed, logged or put in ``--json``
  output (no command shows credentials, not even ``bitsd info``).
- ``--target`` and ``--scheme`` are BITS's BG_AUTH_TARGET and BG_AUTH_SCHEME by name; Passport,
  Microsoft's retired scheme, is not offered (the daemon would answer E_NOTIMPL).
"""

from __future__ import annotations

import sys

import click

from bitsd import codes
from bitsd._client import Manager
from bitsd._enums import AuthScheme, AuthTarget
from bitsd.cli import params, session
from bitsd.cli.session import Call

__all__ = ["credentials", "read_password"]

_TARGET = click.option(
    "--target",
    type=params.AUTH_TARGET,
    required=True,
    help="server: the server of the job's URLs; proxy: the proxy.",
)
_SCHEME = click.option(
    "--scheme",
    type=params.AUTH_SCHEME,
    required=True,
    help="The authentication scheme these credentials answer.",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("job", type=params.JOB)
def credentials(job: str) -> None:
    """Set or remove JOB's credentials for a server or a proxy.

    The password is typed at a prompt that does not echo it, or read from stdin with
    --password-stdin; it is never taken from the command line, and no command prints it.
    """


def _job_ref() -> str:
    ctx = click.get_current_context()
    assert ctx.parent is not None
    return str(ctx.parent.params["job"])


def read_password(from_stdin: bool, user: str) -> str:
    """The password: the whole of stdin less one final line break with ``from_stdin``, else
    typed twice at a prompt (on stderr) that does not echo it.

    Raises:
        click.UsageError: no --password-stdin and stdin is not a terminal, where a prompt
            could neither hide what is typed nor be answered by a person.
    """
    if from_stdin:
        text = sys.stdin.read()
        return text.removesuffix("\n").removesuffix("\r")
    if not sys.stdin.isatty():
        raise click.UsageError(
            "stdin is not a terminal, so the password cannot be asked for; "
            "pipe it with --password-stdin"
        )
    return str(
        click.prompt(
            f"Password for {user}",
            hide_input=True,
            confirmation_prompt="Repeat the password",
            err=True,
        )
    )


def _what(target: AuthTarget, scheme: AuthScheme) -> str:
    return f"{target.name} {scheme.name}"


@credentials.command("set")
@_TARGET
@_SCHEME
@click.option("--user", required=True, help="The user name (at most 300 characters).")
@click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the password from stdin (all of it, less a final line break) instead of a prompt.",
)
def set_(target: AuthTarget, scheme: AuthScheme, user: str, password_stdin: bool) -> None:
    """Give the server or proxy USER and a password when it asks with SCHEME (SetCredentials);
    they replace earlier ones for the same target and scheme."""
    job = _job_ref()
    password = read_password(password_stdin, user)

    async def body(manager: Manager, call: Call) -> None:
        handle = await session.resolve(manager, job, call)
        await handle.set_credentials(target, scheme, user, password)
        click.echo(f"job {handle.id}: {_what(target, scheme)} credentials set for user {user}")

    session.run("credentials", body)


@credentials.command("remove")
@_TARGET
@_SCHEME
def remove(target: AuthTarget, scheme: AuthScheme) -> None:
    """Forget the credentials of this target and scheme (RemoveCredentials)."""
    job = _job_ref()

    async def body(manager: Manager, call: Call) -> None:
        handle = await session.resolve(manager, job, call)
        result = await handle.remove_credentials(target, scheme)
        if result == codes.S_FALSE:
            click.echo(f"job {handle.id}: had no {_what(target, scheme)} credentials")
        else:
            click.echo(f"job {handle.id}: {_what(target, scheme)} credentials removed")

    session.run("credentials", body)
