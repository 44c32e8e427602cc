"""What every ``bitsadmin`` switch uses: the output streams, the parsed call, the exceptions
that end a command, the daemon connection and the lookup of ``<job>``.

Rules:
- Output goes through :class:`Console` only. ``/rawreturn`` prints no banner and no
  messages, only values, without a trailing newline (so ``x=$(bitsadmin /rawreturn /getstate
  j)`` and Windows-style parsers read the bare value). Errors always go to stderr.
- A command ends with a return code (0) or one of three exceptions, turned into text and exit
  status 1 at one place (``bitsadmin.main``): :class:`UsageError` (bad arguments),
  :class:`UnsupportedError` (a switch for a feature bitsd lacks) and
  :class:`CallFailedError` (a BITS call failed: ``Unable to <action> - 0x...``).
- The daemon is reached through ``bitsd.connect()`` only, lazily: ``/?`` and the unsupported
  switches never start or contact a daemon. As for ``bitsd``, a daemon that does not run is
  started, unless ``BITSD_NO_AUTOSTART`` is set (to anything but "" or "0").
- ``<job>`` is a GUID (with or without braces, any case) or a display name. A GUID that names
  no job is also tried as a display name; a display name shared by several jobs is refused
  (use the GUID), as bitsadmin asks.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import shutil
import textwrap
from collections.abc import Iterable, Mapping, Sequence
from typing import TextIO

import bitsd
from bitsd import codes
from bitsd._errors import BitsError, NotFoundError
from bitsd._sync import Job, Manager
from bitsd.cli.bitsadmin_format import failure_lines
from bitsd.cli.session import CONNECT_TIMEOUT, NO_AUTOSTART_TIMEOUT, autostart_from_env

__all__ = [
    "EXIT_FAILURE",
    "EXIT_OK",
    "Call",
    "CallFailedError",
    "Console",
    "Context",
    "UnsupportedError",
    "UsageError",
]

EXIT_OK = 0
EXIT_FAILURE = 1

_GUID_RE = re.compile(r"^\{?[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}\}?$")


class UsageError(Exception):
    """The arguments do not fit the switch; ``usage`` is the syntax to show."""

    def __init__(self, message: str, usage: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.usage = usage


class UnsupportedError(Exception):
    """A switch (or option) for a feature bitsd does not have."""

    def __init__(self, switch: str, reason: str) -> None:
        super().__init__(f"{switch} is not supported by bitsd: {reason}")
        self.switch = switch
        self.reason = reason


class CallFailedError(Exception):
    """A BITS call failed: printed as ``Unable to <action> - 0x<hresult>`` and the reason."""

    def __init__(self, action: str, hresult: int, message: str) -> None:
        super().__init__(message)
        self.action = action
        self.hresult = codes.to_unsigned(hresult)
        self.message = message

    @classmethod
    def of(cls, action: str, error: BitsError) -> CallFailedError:
        return cls(action, error.hresult, error.message)

    def lines(self) -> list[str]:
        return failure_lines(self.action, self.hresult, self.message)


class Console:
    """stdout and stderr as bitsadmin uses them.

    Args:
        raw: ``/rawreturn``: :meth:`info` prints nothing and :meth:`data` separates values
            by newlines without ending the output with one.
        wrap: ``/wrap``: lines longer than the terminal are broken at its width.
    """

    def __init__(self, out: TextIO, err: TextIO, *, raw: bool = False, wrap: bool = False) -> None:
        self.out = out
        self.err = err
        self.raw = raw
        self.wrap = wrap
        self._wrote_data = False
        self._status_height = 0

    @property
    def is_terminal(self) -> bool:
        isatty = getattr(self.out, "isatty", None)
        return bool(isatty and isatty())

    def _wrapped(self, text: str) -> list[str]:
        if not self.wrap or not text:
            return [text]
        width = max(shutil.get_terminal_size().columns, 20)
        return textwrap.wrap(text, width, replace_whitespace=False, drop_whitespace=False) or [""]

    def data(self, text: str = "") -> None:
        """A value or a line of a listing: printed in every mode."""
        self._status_height = 0
        for line in self._wrapped(text):
            if self.raw:
                if self._wrote_data:
                    self.out.write("\n")
                self.out.write(line)
                self._wrote_data = True
            else:
                self.out.write(line + "\n")
        self.out.flush()

    def info(self, text: str = "") -> None:
        """A message for people (banner, "Job resumed."): not printed with /rawreturn."""
        if not self.raw:
            self.data(text)

    def status(self, lines: Sequence[str]) -> None:
        """Progress lines; on a terminal they replace the previous status block in place."""
        if self.raw:
            return
        if self._status_height and self.is_terminal:
            self.out.write(f"\x1b[{self._status_height}F\x1b[J")
        for line in lines:
            self.data(line)
        self._status_height = len(lines)

    def clear_screen(self) -> None:
        """Start a fresh screen (``/monitor``) on a terminal; a blank line elsewhere."""
        if self.is_terminal:
            self.out.write("\x1b[H\x1b[2J")
            self.out.flush()
        elif self._wrote_data or not self.raw:
            self.data("")

    def error(self, text: str) -> None:
        """An error or a warning, on stderr, in every mode."""
        self._status_height = 0
        self.err.write(text + "\n")
        self.err.flush()


@dataclasses.dataclass(frozen=True)
class Call:
    """One parsed command line: the switch, its positional arguments and its options.

    ``options`` maps an option switch (lower case, e.g. ``/priority``) to the values it took.
    """

    switch: str
    args: Sequence[str]
    options: Mapping[str, Sequence[str]] = dataclasses.field(default_factory=dict)

    def has(self, option: str) -> bool:
        return option in self.options

    def value(self, option: str) -> str | None:
        values = self.options.get(option)
        return values[-1] if values else None


class Context:
    """The console and the (lazily opened) connection to the daemon for one command."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._manager: Manager | None = None

    def manager(self) -> Manager:
        """The daemon connection; opened (and the daemon autostarted) on first use."""
        if self._manager is None:
            autostart = autostart_from_env()
            try:
                self._manager = bitsd.connect(
                    autostart=autostart,
                    timeout=CONNECT_TIMEOUT if autostart else NO_AUTOSTART_TIMEOUT,
                )
            except BitsError as exc:
                raise CallFailedError.of("connect to the bitsd daemon", exc) from exc
        return self._manager

    def close(self) -> None:
        if self._manager is not None:
            manager, self._manager = self._manager, None
            with contextlib.suppress(BitsError, OSError, RuntimeError):
                manager.close()

    def job(self, ref: str) -> Job:
        """The job a ``<job>`` argument names: its GUID, else its display name.

        Raises:
            CallFailedError: "Unable to find job" (BG_E_NOT_FOUND) when no job or several match.
        """
        manager = self.manager()
        if _GUID_RE.match(ref):
            with contextlib.suppress(NotFoundError):
                return manager.get_job(ref)
        matches = []
        for job in manager.jobs():
            with contextlib.suppress(NotFoundError):  # it ended while we looked
                if job.get_display_name() == ref:
                    matches.append(job)
        if not matches:
            raise CallFailedError(
                "find job", codes.BG_E_NOT_FOUND, f"no job has the GUID or display name '{ref}'"
            )
        if len(matches) > 1:
            raise CallFailedError(
                "find job",
                codes.BG_E_NOT_FOUND,
                f"{len(matches)} jobs are named '{ref}'; name the job by its GUID",
            )
        return matches[0]

    def each_job(self) -> Iterable[Job]:
        """Every job of the user that is not final, oldest first."""
        return self.manager().jobs()
