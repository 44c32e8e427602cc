"""Argument types shared by the commands: JOB, durations, sizes, rates, priorities, flags (notify,
security, transfer policy), proxy usage, authentication targets and schemes, byte ranges, custom
headers and notify commands.

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
from collections.abc import Iterable, Sequence
from typing import Any

import click
from click.shell_completion import CompletionItem

from bitsd import codes
from bitsd._enums import (
    AuthScheme,
    AuthTarget,
    CostStates,
    NotifyFlags,
    Priority,
    ProxyUsage,
    SecurityFlags,
)
from bitsd.cli import session

__all__ = [
    "AUTH_SCHEME",
    "AUTH_TARGET",
    "BYTE_RATE",
    "DURATION",
    "JOB",
    "NOTIFY_FLAGS",
    "PRIORITY",
    "PROXY_USAGE",
    "SECURITY_FLAGS",
    "SHA256",
    "SIZE",
    "TRANSFER_POLICY",
    "NotifyCommand",
    "header_lines",
    "parse_notify_cmd",
    "parse_ranges",
    "transfer_policy_names",
]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86_400}
# Sizes and rates: decimal units as render.human_size prints them, binary ones by their IEC names.
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]i?)?b?\s*$", re.IGNORECASE)
_SIZE_UNITS = {
    "": 1,
    "k": 10**3,
    "m": 10**6,
    "g": 10**9,
    "t": 10**12,
    "ki": 2**10,
    "mi": 2**20,
    "gi": 2**30,
    "ti": 2**40,
}
_NO_LIMIT = ("none", "unlimited")
# The named transfer policies (BITS_JOB_TRANSFER_POLICY_*), as --transfer-policy takes them.
_POLICIES = {
    "standard": CostStates.TRANSFER_STANDARD,
    "unrestricted": CostStates.TRANSFER_UNRESTRICTED,
    "no-surcharge": CostStates.TRANSFER_NO_SURCHARGE,
    "not-roaming": CostStates.TRANSFER_NOT_ROAMING,
    "always": CostStates.TRANSFER_ALWAYS,
}
_COST_BITS = {n: int(m) for n, m in CostStates.__members__.items() if not n.startswith("TRANSFER_")}
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


class FlagsType(click.ParamType):  # type: ignore[type-arg]  # generic in click 8.2+
    """Flags: a number (``3``, ``0x208``) or member names joined by ``|``, ``,`` or ``+``, with
    or without the BITS prefix (``JOB_TRANSFERRED|JOB_ERROR``, ``BG_SSL_IGNORE_UNKNOWN_CA``)."""

    name = "FLAGS"

    def __init__(self, members: dict[str, int], prefixes: tuple[str, ...], what: str) -> None:
        self.members = members
        self.prefixes = prefixes
        self.what = what

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, int):
            return value
        text = str(value).strip()
        number = _number(text)
        if number is not None:
            return number
        flags = 0
        for part in re.split(r"[|,+]", text):
            name = part.strip().upper().replace("-", "_")
            for prefix in self.prefixes:
                name = name.removeprefix(prefix)
            if name not in self.members:
                known = ", ".join(self.members)
                self.fail(f"{part.strip()!r} is not a {self.what} ({known})", param, ctx)
            flags |= self.members[name]
        return flags


def _number(text: str) -> int | None:
    """A non-negative whole number in decimal or 0x hex, else None."""
    try:
        value = int(text, 0) if text[:2].lower() == "0x" else int(text)
    except ValueError:
        return None
    return value if value >= 0 else None


class SizeType(click.ParamType):  # type: ignore[type-arg]  # generic in click 8.2+
    """Bytes: ``1000000``, ``10MB``, ``1.5G``, ``512KiB`` (``/s`` allowed after a rate);
    ``none`` removes the limit (None). Zero is refused: ``none`` says "no limit"."""

    def __init__(self, name: str, rate: bool = False) -> None:
        self.name = name
        self.rate = rate

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if value is None or isinstance(value, int):
            return value
        text = str(value).strip()
        if text.lower() in _NO_LIMIT:
            return None
        if self.rate:
            text = re.sub(r"/s(ec)?$", "", text, flags=re.IGNORECASE)
        match = _SIZE.match(text)
        if match is None:
            example = "500k, 2MB/s" if self.rate else "10MB, 1.5G, 512KiB"
            self.fail(f"{value!r} is not a number of bytes (e.g. {example}, or none)", param, ctx)
        unit = (match.group(2) or "").lower()
        size = int(float(match.group(1)) * _SIZE_UNITS[unit])
        if size <= 0:
            self.fail(f"{value!r} is not positive; 'none' removes the limit", param, ctx)
        return size


class TransferPolicyType(click.ParamType):  # type: ignore[type-arg]  # generic in click 8.2+
    """A transfer policy: standard, unrestricted, no-surcharge, not-roaming or always; a number
    (``0x80000067``); or cost states joined by ``|`` (``UNRESTRICTED|BELOW_CAP``)."""

    name = "POLICY"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, int):
            return value
        text = str(value).strip()
        key = text.lower().replace("_", "-").removeprefix("transfer-")
        if key in _POLICIES:
            return int(_POLICIES[key])
        number = _number(text)
        if number is not None:
            if number > 0xFFFFFFFF:
                self.fail(f"{text} does not fit in 32 bits", param, ctx)
            return number
        flags = 0
        for part in re.split(r"[|,+]", text):
            name = part.strip().upper().replace("-", "_").removeprefix("BITS_COST_STATE_")
            if name not in _COST_BITS:
                self.fail(
                    f"{part.strip()!r} is not a transfer policy ({', '.join(_POLICIES)}), a "
                    "number, or cost states joined by | (e.g. UNRESTRICTED|BELOW_CAP)",
                    param,
                    ctx,
                )
            flags |= _COST_BITS[name]
        return flags


def transfer_policy_names() -> list[str]:
    """The names --transfer-policy takes."""
    return list(_POLICIES)


class Sha256Type(click.ParamType):  # type: ignore[type-arg]  # generic in click 8.2+
    """A SHA-256 digest: 64 hex digits (any case); converted to lower case."""

    name = "HEX"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        text = str(value).strip().lower()
        if re.fullmatch(r"[0-9a-f]{64}", text) is None:
            self.fail(f"{value!r} is not a SHA-256 digest (64 hex digits)", param, ctx)
        return text


class EnumChoice(click.Choice):  # type: ignore[type-arg]  # generic in click 8.2+
    """A choice among an enum's members by name, lower case, ``-`` or ``_``; converts to the
    member."""

    def __init__(self, members: dict[str, Any]) -> None:
        super().__init__(list(members), case_sensitive=False)
        self.members = members

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not isinstance(value, str):
            return value
        chosen = super().convert(value.replace("_", "-"), param, ctx)
        return self.members[str(chosen).lower()]


def _enum_names(kind: Any, skip: tuple[Any, ...] = ()) -> dict[str, Any]:
    return {m.name.lower().replace("_", "-"): m for m in kind if m not in skip}


JOB = JobRefType()
DURATION = DurationType()
NOTIFY_FLAGS = FlagsType(
    {name: int(m) for name, m in NotifyFlags.__members__.items()}, ("BG_NOTIFY_",), "notify flag"
)
SECURITY_FLAGS = FlagsType(
    {n: int(m) for n, m in SecurityFlags.__members__.items() if n != "REDIRECT_POLICY_MASK"},
    ("BG_SSL_", "BG_HTTP_"),
    "security flag",
)
SHA256 = Sha256Type()
SIZE = SizeType("BYTES")
BYTE_RATE = SizeType("BYTES/S", rate=True)
TRANSFER_POLICY = TransferPolicyType()
PRIORITY = click.Choice([p.name.lower() for p in Priority], case_sensitive=False)
PROXY_USAGE = EnumChoice(_enum_names(ProxyUsage))
AUTH_TARGET = EnumChoice(_enum_names(AuthTarget))
# Passport is Microsoft's retired scheme: bitsd refuses it (E_NOTIMPL), so it is not offered.
AUTH_SCHEME = EnumChoice(_enum_names(AuthScheme, (AuthScheme.PASSPORT,)))


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


def parse_ranges(
    texts: Sequence[str], param: click.Parameter | None = None
) -> list[tuple[int, int]]:
    """Byte ranges ``OFFSET:LENGTH`` (several per text, comma-separated); LENGTH ``eof`` runs to
    the end of the remote file (LENGTH_TO_EOF).

    Raises:
        click.BadParameter: a range that is not two non-negative numbers, or a zero length.
    """
    ranges: list[tuple[int, int]] = []
    for text in texts:
        for part in text.split(","):
            offset_text, sep, length_text = part.strip().partition(":")
            offset = _number(offset_text.strip())
            length = (
                codes.LENGTH_TO_EOF
                if length_text.strip().lower() == "eof"
                else _number(length_text.strip())
            )
            if not sep or offset is None or length is None:
                raise click.BadParameter(
                    f"{part.strip()!r} is not OFFSET:LENGTH (e.g. 0:1000 or 5000:eof)", param=param
                )
            if length == 0:
                raise click.BadParameter(f"{part.strip()!r} has a zero length", param=param)
            ranges.append((offset, length))
    return ranges


def header_lines(lines: Iterable[str], param: click.Parameter | None = None) -> str | None:
    """Custom headers as SetCustomHeaders takes them: ``Name: value`` lines, each ended by
    CR LF; blank lines are dropped; None when there is none (which removes them).

    Raises:
        click.BadParameter: a line without ``Name:`` (the daemon checks the rest).
    """
    kept: list[str] = []
    for text in lines:
        for line in text.splitlines():
            if not line.strip():
                continue
            name, sep, _ = line.partition(":")
            if not sep or not name.strip() or name != name.strip():
                raise click.BadParameter(f"{line!r} is not a 'Name: value' header", param=param)
            kept.append(line)
    return "".join(f"{line}\r\n" for line in kept) or None
