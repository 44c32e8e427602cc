"""``bitsd completion bash|zsh|fish``: print click's completion script for the shell.

The script is click's own (the ``_BITSD_COMPLETE=bash_source bitsd`` mechanism): the shell calls
``bitsd`` back with ``_BITSD_COMPLETE=bash_complete`` to complete commands, options and JOB
(job ids and names come from the daemon, which completion never starts).
"""

from __future__ import annotations

import click
from click.shell_completion import get_completion_class

__all__ = ["COMPLETE_VAR", "PROG_NAME", "completion"]

PROG_NAME = "bitsd"
COMPLETE_VAR = "_BITSD_COMPLETE"

_INSTALL = {
    "bash": (
        "# install: bitsd completion bash > ~/.local/share/bash-completion/completions/bitsd\n"
        '# or add to ~/.bashrc: eval "$(_BITSD_COMPLETE=bash_source bitsd)"'
    ),
    "zsh": (
        '# install: bitsd completion zsh > "${fpath[1]}/_bitsd" (then restart zsh)\n'
        '# or add to ~/.zshrc: eval "$(_BITSD_COMPLETE=zsh_source bitsd)"'
    ),
    "fish": (
        "# install: bitsd completion fish > ~/.config/fish/completions/bitsd.fish\n"
        "# or add to config.fish: _BITSD_COMPLETE=fish_source bitsd | source"
    ),
}


@click.command()
@click.argument("shell", type=click.Choice(list(_INSTALL)))
@click.pass_context
def completion(ctx: click.Context, shell: str) -> None:
    """Print the shell completion script for SHELL (how to install it goes to stderr)."""
    cls = get_completion_class(shell)
    if cls is None:  # pragma: no cover - click ships all three
        raise click.BadParameter(f"click has no completion for {shell}")
    root = ctx.find_root().command
    script = cls(root, {}, PROG_NAME, COMPLETE_VAR).source()
    click.echo(script)
    click.echo(_INSTALL[shell], err=True)
