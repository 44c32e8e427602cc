"""One logfmt line per event: daemon events, engine records, tracebacks."""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from bitsd.daemon import logs


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    """The daemon's log configured into a string; the root logger restored afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    out = io.StringIO()
    logs.configure("info", out)
    yield out
    root.handlers[:] = handlers
    root.setLevel(level)


def lines(stream: io.StringIO) -> list[str]:
    return stream.getvalue().splitlines()


def test_daemon_event_is_one_logfmt_line(stream: io.StringIO) -> None:
    """event() gives ts, level, event and the fields; values with spaces or quotes are quoted."""
    logs.event(logging.getLogger("bitsd.daemon"), "daemon.ready", pid=12, path='/a b/"c"')
    (line,) = lines(stream)
    assert re.fullmatch(
        r"ts=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z level=info event=daemon\.ready pid=12 "
        r'path="/a b/\\"c\\""',
        line,
    )


def test_engine_state_change_gets_its_fields(stream: io.StringIO) -> None:
    """The engine's transition record becomes event=job.state with job, from and to."""
    logging.getLogger("bitsd.engine").info("job %s: %s -> %s", "j1", "QUEUED", "CONNECTING")
    assert lines(stream)[0].endswith("level=info event=job.state job=j1 from=QUEUED to=CONNECTING")


def test_other_records_keep_their_logger_and_message(stream: io.StringIO) -> None:
    """Any other record is event=<logger> msg="..."."""
    logging.getLogger("bitsd.notify").warning("callback of %s raised", "j2")
    assert lines(stream)[0].endswith('level=warning event=bitsd.notify msg="callback of j2 raised"')


def test_traceback_stays_on_one_line(stream: io.StringIO) -> None:
    """An exception's traceback is one exc="..." field with escaped newlines."""
    try:
        raise ValueError("boom\nsecond line")
    except ValueError:
        logs.event(
            logging.getLogger("bitsd.daemon"), "http.bug", level=logging.ERROR, exc_info=True
        )
    (line,) = lines(stream)
    assert 'exc="Traceback (most recent call last):\\n' in line
    assert "ValueError: boom\\nsecond line" in line


def test_levels_filter_the_daemon_and_uvicorn(stream: io.StringIO) -> None:
    """info hides debug events and uvicorn's info chatter; debug shows both."""
    daemon, uvicorn = logging.getLogger("bitsd.daemon"), logging.getLogger("uvicorn.error")
    logs.event(daemon, "http.request", level=logging.DEBUG)
    uvicorn.info("Started server process")
    assert lines(stream) == []
    logs.set_level("debug")
    logs.event(daemon, "http.request", level=logging.DEBUG)
    uvicorn.info("Started server process")
    assert [line.split(" ", 2)[2] for line in lines(stream)] == [
        "event=http.request",
        'event=uvicorn.error msg="Started server process"',
    ]


def test_control_characters_are_escaped(stream: io.StringIO) -> None:
    """No byte of a value can end or corrupt the line; empty and None values stay visible."""
    logs.event(logging.getLogger("bitsd.daemon"), "x", tab="a\tb\x1b", empty="", none=None)
    assert lines(stream)[0].endswith('event=x tab="a\\x09b\\x1b" empty="" none=null')


@pytest.mark.parametrize(
    "created",
    [0.0, 1.0005, 1_733_390_880.123456, 1_733_390_880.9995, 1_733_390_880.9999995, -0.25],
)
def test_timestamps_are_datetimes_to_the_millisecond(created: float) -> None:
    """A line's ts is what datetime gives for the record's time (rounded to the microsecond,
    then cut to the millisecond), also where that rounding carries into the next second."""
    expected = datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")
    assert logs._timestamp(created) == expected.replace("+00:00", "Z")
    assert logs._timestamp(created + 1) != logs._timestamp(created)  # the cache moves on


@pytest.mark.parametrize(
    "char", ["a", "Z", "~", "!", " ", '"', "=", "\\", "\t", "\x7f", "é", "\u2028"]
)
def test_a_value_is_quoted_exactly_when_it_has_a_space_quote_equals_backslash_or_non_ascii(
    char: str,
) -> None:
    """Values of printable ASCII other than the space, '"', '=' and '\\' go bare; any other
    character quotes the value, in a line of bare values too."""
    bare = char not in ' "=\\' and "\x21" <= char <= "\x7e"
    assert (logs._quote(f"a{char}b") == f"a{char}b") is bare
    logger = logging.getLogger("bitsd.daemon")
    out = io.StringIO()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    logs.configure("info", out)
    try:
        logs.event(logger, "x.y", ok="plain", v=f"a{char}b")
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    assert out.getvalue().rstrip("\n").endswith(f"ok=plain v={logs._quote(f'a{char}b')}")
