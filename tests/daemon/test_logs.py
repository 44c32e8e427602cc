"""One logfmt line per event: daemon events, engine records, tracebacks."""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterator

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
