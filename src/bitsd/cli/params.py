"""Argument types shared by the commands: JOB, durations, priorities, notify flags and commands.

Rules:
- A value that cannot be right is refused by click while parsing (usage and exit 2), before
  anything reaches the daemon; what only the daemon can judge (a URL it cannot use, a read-only
  property) comes back as its BITS error.
- JOB completes in the shell from the daemon's job ids and names, without ever starting a daemon.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import re
import shlex
import shutil
from typing import Any

import click
from click.shell_completion import CompletionItem

from bitsd._enums import NotifyFlags, Priority
from bitsd.cli import session

__all__ = [
    "DURATION",
    "JOB",
    "NOTIFY_FLAGS",
    "PRIORITY",
    "NotifyCommand",
    "parse_notify_cmd",
]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86_400}
# Seconds the shell waits for job names while completing: bitsd's choice.
_COMPLETION_TIMEOUT = 2.0


class JobRefType(click.ParamType):  # type: ignore[type-arg]  # generic in click 8.2+
    """JOB: a job id (braces optional) or a display name; resolved by the command."""

    name = "JOB"

    def shell_complete(
        self, ctx: click.Context, param: click.Parameter, incomplete: str
    ) -> list[CompletionItem]:
        try:
            pairs = asyncio.run(_job_names())
        except Exception:
            return []  # no daemon, or it failed: completion offers nothing rather than break
        items = []
        for job_id, name in pairs:
            if job_id.startswith(incomplete):
                items.append(CompletionItem(job_id, help=name))
            elif name.startswith(incomplete) and name:
                items.append(CompletionItem(name, help=job_id))
        return items


async def _job_names() -> list[tuple[str, str]]:
    conf = session.settings()
    manager = await asyncio.wait_for(
        session.connect(dataclasses.replace(conf, autostart=False)), _COMPLETION_TIMEOUT
    )
    async with manager:
        jobs = await manager.jobs()
        names = await asyncio.gather(*(j.get_display_name() for j in jobs))
    return list(zip((j.id for j in jobs), names, strict=True))


class DurationType(click.ParamType):  # type: ignore[type-arg]  # generic in click 8.2+
    """Seconds: ``90``, ``1.5``, or with a unit: ``30s``, ``10m``, ``2h``, ``14d``."""

    name = "SECONDS"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, int | float):
            return float(value)
        match = _DURATION.match(str(value))
        if match is None:
            self.fail(f"{value!r} is not a duration (e.g. 90, 30s, 10m, 2h, 14d)", param, ctx)
        return float(match.group(1)) * _UNIT_SECONDS[match.group(2).lower()]


class NotifyFlagsType(click.ParamType):  # type: ignore[type-arg]  # generic in click 8.2+
    """Notify flags: a number (3) or names joined by ``|`` or ``,`` (JOB_TRANSFERRED|JOB_ERROR)."""

    name = "FLAGS"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, int):
            return value
        text = str(value).strip()
        if text.isdigit():
            return int(text)
        flags = 0
        for part in re.split(r"[|,+]", text):
            name = part.strip().upper().removeprefix("BG_NOTIFY_")
            try:
                flags |= NotifyFlags[name]
            except KeyError:
                known = ", ".join(f.name or "" for f in NotifyFlags)
                self.fail(f"{part.strip()!r} is not a notify flag ({known})", param, ctx)
        return flags


JOB = JobRefType()
DURATION = DurationType()
NOTIFY_FLAGS = NotifyFlagsType()
PRIORITY = click.Choice([p.name.lower() for p in Priority], case_sensitive=False)


def priority(value: str) -> Priority:
    """The Priority a --priority choice names."""
    return Priority[value.upper()]


@dataclasses.dataclass(frozen=True, slots=True)
class NotifyCommand:
    """A notify command line as SetNotifyCmdLine takes it: the program's absolute path and the
    whole command line (whose first token names the program). Both None: remove it."""

    program: str | None
    parameters: str | None


def parse_notify_cmd(text: str, param: click.Parameter | None = None) -> NotifyCommand:
    """``"PROGRAM ARGS..."`` as one shell-quoted string; ``""`` or ``NULL`` removes the command.

    A program given without a folder is looked up in PATH now, because the daemon runs it
    later, with no shell and possibly another PATH.

    Raises:
        click.BadParameter: unbalanced quotes, or a program that is not found or not executable.
    """
    try:
        words = shlex.split(text)
    except ValueError as exc:
        raise click.BadParameter(f"cannot split {text!r}: {exc}", param=param) from None
    if not words or (len(words) == 1 and words[0].upper() == "NULL"):
        return NotifyCommand(None, None)
    program = words[0]
    found = shutil.which(program) if os.sep not in program else program
    if found is None or not os.access(found, os.X_OK):
        raise click.BadParameter(f"no executable program {program!r}", param=param)
    return NotifyCommand(os.path.abspath(found), shlex.join(words))
