"""Structured logs of the daemon: one logfmt line per event, on stderr.

Rules:
- A line is ``ts=<ISO 8601 UTC> level=<level> event=<name> key=value ...``. A value with a
  space, a quote, ``=`` or a control character is double-quoted with backslash escapes, so an
  event never spans two lines (a traceback goes in one ``exc="..."`` field).
- The daemon logs its own events with :func:`event`: a dotted name and fields
  (``event=daemon.ready pid=12 socket=/run/user/1000/bitsd/bitsd.sock``).
- Records of other loggers (``bitsd.engine``, ``bitsd.notify``, ``uvicorn.error``) become
  ``event=<logger name> msg="..."``, except the engine's records named in ``_KNOWN`` (state
  changes, errors, command-line exits), which get their event name and fields
  (``event=job.state job=... from=QUEUED to=CONNECTING``).
- The level (config ``log_level`` or ``--log-level``) applies to the ``bitsd`` loggers; uvicorn's
  own records show from WARNING up (or the level, if higher), or all of them at ``debug``.
"""

from __future__ import annotations

import functools
import logging
import math
import re
import sys
from datetime import UTC, datetime
from typing import TextIO

__all__ = ["LogfmtFormatter", "configure", "event", "set_level"]

_EVENT = "bitsd_event"
_FIELDS = "bitsd_fields"
# A character that makes a value quoted: anything but printable ASCII other than the space,
# '"', '=' and '\\' (one class, so a search is one scan).
_NEEDS_QUOTES = re.compile(r"[^\x21\x23-\x3c\x3e-\x5b\x5d-\x7e]")
_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}
# uvicorn's loggers with levels of their own (uvicorn.Config(log_level=...) sets the children).
_UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.asgi")
# Engine records with a known message template, and the names of their arguments.
_KNOWN: dict[tuple[str, str], tuple[str, tuple[str, ...]]] = {
    ("bitsd.engine", "job %s: %s -> %s"): ("job.state", ("job", "from", "to")),
    ("bitsd.engine", "job %s error %s: %s"): ("job.error", ("job", "code", "description")),
    ("bitsd.notify", "notify command of job %s exited with status %d"): (
        "notify.cmdline",
        ("job", "status"),
    ),
}


def event(
    logger: logging.Logger,
    name: str,
    /,
    *,
    level: int = logging.INFO,
    exc_info: bool = False,
    **fields: object,
) -> None:
    """Log the event ``name`` with ``fields`` (values are printed with ``str``)."""
    logger.log(level, "%s", name, exc_info=exc_info, extra={_EVENT: name, _FIELDS: fields})


class LogfmtFormatter(logging.Formatter):
    """Formats every record as one logfmt line (see the module's rules)."""

    def format(self, record: logging.LogRecord) -> str:
        name: str = getattr(record, _EVENT, "")
        fields: dict[str, object] = getattr(record, _FIELDS, {})
        if not name:
            name, fields = _describe(record)
        keys = ["ts", "level", "event", *fields]
        texts = [
            _timestamp(record.created),
            record.levelname.lower(),
            name,
            *["null" if v is None else str(v) for v in fields.values()],
        ]
        if record.exc_info:
            keys.append("exc")
            texts.append(self.formatException(record.exc_info))
        # One search over every value (most lines need no quotes), then each value if needed.
        if all(texts) and not _NEEDS_QUOTES.search("".join(texts)):
            return " ".join([f"{key}={text}" for key, text in zip(keys, texts, strict=True)])
        return " ".join([f"{key}={_quote(text)}" for key, text in zip(keys, texts, strict=True)])


def configure(level: str, stream: TextIO | None = None) -> None:
    """Send every log record to ``stream`` (default stderr) as logfmt lines, at ``level``.

    Replaces handlers installed by an earlier call; other handlers are left alone.
    """
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h.formatter, LogfmtFormatter)]:
        root.removeHandler(old)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(LogfmtFormatter())
    # A line has none of the caller's file and line, thread or process: do not gather them
    # for every record (the logging HOWTO's "Optimization"; a state change logs one line).
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    root.addHandler(handler)
    root.setLevel(logging.WARNING)  # libraries' chatter; the daemon's loggers get ``level``
    set_level(level)


def set_level(level: str) -> None:
    """Apply a log level (one of ``config.LOG_LEVELS``) to the daemon's loggers."""
    value = _LEVELS[level.lower()]
    logging.getLogger("bitsd").setLevel(value)
    uvicorn_level = value if value == logging.DEBUG else max(value, logging.WARNING)
    for name in _UVICORN_LOGGERS:
        logging.getLogger(name).setLevel(uvicorn_level)


def _describe(record: logging.LogRecord) -> tuple[str, dict[str, object]]:
    """Event name and fields of a record that was not logged with :func:`event`."""
    known = _KNOWN.get((record.name, str(record.msg)))
    if known is not None and isinstance(record.args, tuple) and len(record.args) == len(known[1]):
        return known[0], dict(zip(known[1], record.args, strict=True))
    return record.name, {"msg": record.getMessage()}


def _timestamp(created: float) -> str:
    """``created`` as ISO 8601 UTC to the millisecond (``2026-12-05T09:08:00.123Z``), as
    datetime gives it (rounded to the microsecond, then cut); the part down to the second is
    made once per second."""
    fraction, whole = math.modf(created)
    micros = round(fraction * 1e6)
    second = int(whole)
    if micros >= 1_000_000:
        second, micros = second + 1, micros - 1_000_000
    elif micros < 0:
        second, micros = second - 1, micros + 1_000_000
    return f"{_second(second)}.{micros // 1000:03d}Z"


@functools.lru_cache(maxsize=2)
def _second(second: int) -> str:
    return datetime.fromtimestamp(second, UTC).isoformat(timespec="seconds").replace("+00:00", "")


def _quote(value: object) -> str:
    text = "null" if value is None else str(value)
    if text and not _NEEDS_QUOTES.search(text):
        return text
    escaped = (
        text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    )
    escaped = re.sub(r"[\x00-\x1f\x7f]", lambda m: f"\\x{ord(m.group()):02x}", escaped)
    return f'"{escaped}"'
