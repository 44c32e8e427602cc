"""Every input-taking method of ``Job``, ``Engine.create_job`` and ``Job.wait`` called with
generated arguments: wrong types, bools where numbers go, huge and negative integers, NaN and
infinities, text with NUL, control characters and lone surrogates, local names over NAME_MAX
and PATH_MAX, with trailing slashes and ``..``. The properties (docs/python-api.md, "Common
rules"):

- the call succeeds or raises a ``BitsError``; a refused call leaves the job as it was (its
  record, its files, its snapshot and its stored row); nothing fails in the engine's
  background; the engine stays usable, and its store loads in a new engine after;
- what a setter accepts never makes a transfer (from a loopback server, open or asking for
  Basic or Digest credentials) fail as an internal error.

Generated notify command lines are never run (the engine's runner only says they failed), and
no transfer looks a name up. Budgets are small (30 examples per property, a second or two);
``BITSD_LONG=1`` runs 3,000.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import math
import os
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bitsd
from bitsd import (
    AuthScheme,
    AuthTarget,
    CostStates,
    ErrorContext,
    FakeClock,
    FileInfo,
    FileProgress,
    JobState,
    JobType,
    NotifyFlags,
    Priority,
    ProxyUsage,
    SecurityFlags,
    codes,
)
from bitsd.aio import Engine, Job
from tests.servers.faulty import FaultServer

LONG = os.environ.get("BITSD_LONG") == "1"
EXAMPLES = 3000 if LONG else 30

Call = Callable[[Job], Awaitable[Any]]
Named = tuple[str, Call]  # a call and how it reads in a failure

# -- values ------------------------------------------------------------------------------------

_SPECIAL_INTS = [
    2**31 - 1,
    2**31,
    2**32 - 1,
    2**32,
    2**53 + 1,
    2**63 - 1,
    2**63,
    2**64 - 1,
    2**64,
    -(2**63) - 1,
    -(2**64),
    10**400,
]
INTS = st.one_of(st.integers(-3, 8), st.integers(), st.sampled_from(_SPECIAL_INTS))
FLOATS = st.one_of(
    st.floats(),
    st.sampled_from([math.nan, math.inf, -math.inf, -0.0, 0.5, 1e308, 5e-324, 2.0**64]),
)
# Characters that trouble names: NUL and other controls, lone surrogates (not UTF-8), the
# surrogate escapes of undecodable bytes, separators, bidi and BOM, the last code point.
ODD_CHARS = st.one_of(
    st.characters(),
    st.sampled_from(
        [
            *("\x00", "\n", "\r", "\t", "\x7f", "\ud800", "\udfff", "\udcff", "/", "\\"),
            *("\u202e", "\ufeff", "\U0010ffff", " ", ":", "%", "\u0085", "é"),
        ]
    ),
)
ODD_TEXT = st.one_of(
    st.text(ODD_CHARS, max_size=12),
    st.sampled_from(["", " ", "\x00", "\ud800", "\udcff", "GET", "..", "/", "a" * 5000]),
    st.builds(lambda c, n: c * n, ODD_CHARS, st.sampled_from([255, 256, 1025, 4097, 33_000])),
)
ENUM_MEMBERS = st.sampled_from(
    [
        *(*JobState, *JobType, *Priority, *ProxyUsage, *AuthTarget, *AuthScheme),
        *(NotifyFlags.JOB_ERROR, SecurityFlags.IGNORE_UNKNOWN_CA, CostStates.TRANSFER_STANDARD),
    ]
)
ANY: st.SearchStrategy[Any] = st.one_of(
    st.none(),
    st.booleans(),
    INTS,
    FLOATS,
    ODD_TEXT,
    st.binary(max_size=6),
    ENUM_MEMBERS,
    st.lists(st.integers(0, 3), max_size=3),
    st.tuples(INTS, INTS),
    st.just(object()),
    st.just({}),
)


def _or_any(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Three times in four the plausible ``strategy``, else anything at all: calls of several
    arguments then often get past their first check to the later ones. (Not ``one_of``, which
    would flatten ANY's dozen branches beside ``strategy`` and draw it rarely.)"""
    return st.sampled_from([True, True, True, False]).flatmap(
        lambda plausible: strategy if plausible else ANY
    )


@dataclass
class Bench:
    """An open engine in its own event loop, a destination folder, a readable file and a
    loopback HTTP server; what went wrong in the loop's background (a task's exception no one
    retrieved) is collected in ``background``."""

    runner: asyncio.Runner
    engine: Engine
    dest: Path
    source: Path
    server: FaultServer
    calls: dict[str, st.SearchStrategy[Named]] = field(default_factory=dict)
    background: list[str] = field(default_factory=list)

    def run(self, work: Awaitable[Any]) -> Any:
        async def bounded() -> Any:
            async with asyncio.timeout(20):
                return await work

        try:
            return self.runner.run(bounded())
        finally:
            gc.collect()  # a failed task's exception is reported when the task is collected
            problems, self.background[:] = list(self.background), []
            assert problems == [], problems

    def any_call(self) -> st.SearchStrategy[Named]:
        return st.sampled_from(sorted(self.calls)).flatmap(self.calls.__getitem__)


@pytest.fixture
def bench(tmp_path: Path) -> Iterator[Bench]:
    """One engine for all the examples of a property (a new one each would cost more than
    the calls); after them, the store they leave must load in a new engine."""
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "folder").mkdir()
    source = tmp_path / "source.bin"
    source.write_bytes(b"0123456789" * 10)
    server = FaultServer()
    server.add("/f", BODY)
    server.add("/basic", BODY)
    server.add("/digest", BODY)
    server.protect("/basic", ACCOUNT, schemes=("basic",))
    server.protect("/digest", ACCOUNT, schemes=("digest",))
    with asyncio.Runner() as runner:
        background: list[str] = []
        runner.get_loop().set_exception_handler(lambda _, context: background.append(repr(context)))
        runner.run(server.start())
        engine = _engine(tmp_path / "state")
        runner.run(engine.__aenter__())
        try:
            made = Bench(runner, engine, dest, source, server, background=background)
            made.calls = calls(made)
            yield made
        finally:
            runner.run(engine.close())
            runner.run(server.stop())
        runner.run(_reopens(tmp_path / "state"))


BODY = bytes(range(256)) * 4
ACCOUNT = ("user", "secret")


def _engine(state: Path) -> Engine:
    return Engine(
        state,
        clock=FakeClock(),
        max_jobs_per_user=0,
        cost_source=_unrestricted,
        link_counter=lambda: None,
        command_runner=_never_run,
    )


async def _never_run(program: str, argv: list[str]) -> int:
    """Generated command lines are never run: this one says they ran and failed."""
    return 1


async def _reopens(state: Path) -> None:
    """A new engine opens the store and finds no job: every example cancelled its own."""
    async with _engine(state) as engine:
        assert await engine.jobs() == []


async def _unrestricted() -> CostStates:
    return CostStates.UNRESTRICTED


def local_names(dest: Path) -> st.SearchStrategy[Any]:
    """Local names: in the destination folder with odd characters, ``..``, trailing slashes,
    names over NAME_MAX (255 bytes) and PATH_MAX (4,096), relative and elsewhere; or anything."""
    odd = st.text(ODD_CHARS, min_size=1, max_size=8)
    long = st.builds(lambda c, n: c * n, st.sampled_from("xé\U0001f600"), st.integers(60, 300))
    segment = st.one_of(odd, st.sampled_from(["..", ".", "", "folder", "a", "/"]), long)
    inside = st.builds(
        lambda parts, tail: f"{dest}/" + "/".join(parts) + tail,
        st.lists(segment, min_size=1, max_size=4),
        st.sampled_from(["", "", "/", "/.", "/.."]),
    )
    return _or_any(
        st.one_of(
            st.builds(lambda name: f"{dest}/{name}", odd),
            st.builds(lambda name: f"{dest}/folder/{name}", st.one_of(odd, long)),
            inside,
            st.sampled_from(
                [
                    *(f"{dest}/a", f"{dest}/b", f"{dest}/folder", "relative", "/"),
                    *("/nonexistent/x", "/proc/self/x", f"{dest}/" + "y" * 5000, f"{dest}/a\x00b"),
                ]
            ),
        )
    )


def remote_names(source: Path) -> st.SearchStrategy[Any]:
    """Remote names: good ones and ones spoilt with odd text; or anything."""
    base = st.sampled_from(
        [
            *("http://example.invalid/f", "https://example.invalid:8443/f", f"file://{source}"),
            *(str(source), "http://user:pw@example.invalid/f", "http://[::1]/f"),
        ]
    )
    spoilt = st.builds(lambda b, t: b + t, base, st.text(ODD_CHARS, max_size=8))
    odd_host = st.builds(lambda t: f"http://{t}/f", st.text(ODD_CHARS, max_size=8))
    return _or_any(st.one_of(base, base, spoilt, odd_host))


_EDGES = st.sampled_from([codes.LENGTH_TO_EOF, codes.LENGTH_TO_EOF - 1, 2**63, 2**64, -1, 0])
RANGE = st.tuples(
    _or_any(st.one_of(st.integers(0, 200), _EDGES)),
    _or_any(st.one_of(st.integers(1, 200), _EDGES)),
)
RANGES = _or_any(st.one_of(st.lists(_or_any(RANGE), min_size=1, max_size=3), st.just([])))
ODD_FILE_INFO = st.builds(
    lambda name: FileInfo("http://h/f", name, FileProgress(0, 0, False), "/t"), ODD_TEXT
)
FILES = _or_any(st.one_of(st.just(0), st.integers(-2, 3), ODD_FILE_INFO))

# -- jobs to call on ---------------------------------------------------------------------------

Setup = Callable[[Bench], Awaitable[Job]]


async def _new(bench: Bench) -> Job:
    return await bench.engine.create_job("fuzz")


async def _with_http_file(bench: Bench) -> Job:
    job = await _new(bench)
    await job.add_file("http://example.invalid/a", str(bench.dest / "a"))
    return job


async def _with_ranges(bench: Bench) -> Job:
    job = await _new(bench)
    ranges = [(0, 10), (20, codes.LENGTH_TO_EOF)]
    await job.add_file_with_ranges("http://example.invalid/a", str(bench.dest / "a"), ranges)
    return job


async def _on_demand(bench: Bench) -> Job:
    job = await _new(bench)
    await job.set_on_demand(True)
    await job.add_file("http://example.invalid/a", str(bench.dest / "a"))
    return job


async def _transferred(bench: Bench) -> Job:
    """A job whose one file (a local copy) is in: resumed once, a completed file."""
    job = await _new(bench)
    await job.add_file(str(bench.source), str(bench.dest / "copy"))
    await job.resume()
    assert await job.wait([JobState.TRANSFERRED, JobState.ERROR], 10) is JobState.TRANSFERRED
    return job


async def _custom_method(bench: Bench) -> Job:
    job = await _new(bench)
    await job.set_http_method("POST")
    await job.add_file("http://example.invalid/a", str(bench.dest / "a"))
    return job


async def _upload(bench: Bench) -> Job:
    job = await bench.engine.create_job("up", JobType.UPLOAD)
    await job.add_file("http://example.invalid/up", str(bench.source))
    return job


async def _upload_reply(bench: Bench) -> Job:
    job = await bench.engine.create_job("up", JobType.UPLOAD_REPLY)
    await job.add_file("http://example.invalid/up", str(bench.source))
    return job


async def _cancelled(bench: Bench) -> Job:
    job = await _with_http_file(bench)
    await job.cancel()
    return job


SETUPS: list[Setup] = [
    _new,
    _with_http_file,
    _with_ranges,
    _on_demand,
    _transferred,
    _custom_method,
    _upload,
    _upload_reply,
    _cancelled,
]


# -- calls -------------------------------------------------------------------------------------


def calls(bench: Bench) -> dict[str, st.SearchStrategy[Named]]:
    """(description, call) of every input-taking Job method with generated arguments, by the
    method's name."""
    local = local_names(bench.dest)
    remote = remote_names(bench.source)
    text = _or_any(ODD_TEXT)
    number = _or_any(st.one_of(INTS, FLOATS))
    flags = _or_any(st.one_of(st.integers(0, 0xFFF), INTS))
    pem = _or_any(st.sampled_from([str(bench.source), str(bench.dest), "/nonexistent", "rel"]))

    def one(name: str, *args: st.SearchStrategy[Any]) -> tuple[str, st.SearchStrategy[Named]]:
        def make(values: tuple[Any, ...]) -> tuple[str, Call]:
            def call(job: Job) -> Awaitable[Any]:
                return getattr(job, name)(*values)  # type: ignore[no-any-return]

            return f"{name}{values!r}", call

        return name, st.tuples(*args).map(make)

    def add_file_sha(r: Any, loc: Any, sha: Any) -> Named:
        return f"add_file({r!r}, {loc!r}, sha256={sha!r})", lambda j: j.add_file(r, loc, sha256=sha)

    pair = st.tuples(remote, local)
    made = [
        one("set_display_name", text),
        one("set_description", text),
        one("set_priority", _or_any(st.sampled_from([*Priority, 0, 3, 4, -1, True]))),
        one("set_minimum_retry_delay", number),
        one("set_no_progress_timeout", number),
        one("set_maximum_download_time", number),
        one("set_notify_flags", flags),
        one("set_notify_cmd_line", _or_any(st.sampled_from(["/bin/true", None])), text),
        one(
            "set_notify_cmd_line",
            st.builds(lambda t: "/bin/" + t, ODD_TEXT),
            _or_any(st.builds(lambda t: "true " + t, ODD_TEXT)),
        ),
        one("set_custom_headers", _or_any(st.builds(lambda t: f"X-A: {t}\r\n", ODD_TEXT))),
        one(
            "set_http_method",
            _or_any(st.sampled_from(["GET", "get", "POST", "HEAD", "X-Y", "A B"])),
        ),
        one("set_security_flags", flags),
        one(
            "set_proxy_settings",
            _or_any(st.sampled_from(list(ProxyUsage))),
            _or_any(st.one_of(st.none(), PROXY_LISTS)),
            _or_any(st.one_of(st.none(), st.just("<local>"))),
        ),
        one(
            "set_credentials",
            _or_any(st.sampled_from(list(AuthTarget))),
            _or_any(st.sampled_from(list(AuthScheme))),
            text,
            text,
        ),
        one(
            "remove_credentials",
            _or_any(st.sampled_from(list(AuthTarget))),
            _or_any(st.sampled_from(list(AuthScheme))),
        ),
        one("set_ca_bundle", pem),
        one("set_client_certificate", pem, pem),
        one("set_transfer_policy", flags),
        one("set_bandwidth_limit", number),
        one("set_maximum_download_size", number),
        one("set_dynamic_content", ANY),
        one("set_on_demand", ANY),
        one("add_file", remote, local),
        ("add_file", st.builds(add_file_sha, remote, local, _or_any(st.just("ab" * 32)))),
        one("add_file_set", _or_any(st.lists(_or_any(pair), max_size=3))),
        one("add_file_with_ranges", remote, local, RANGES),
        one(
            "replace_remote_prefix",
            _or_any(st.sampled_from(["http://example.invalid/", "http", str(bench.source)])),
            _or_any(st.builds(lambda t: "http://other.invalid/" + t, ODD_TEXT) | remote),
        ),
        one("request_file_ranges", FILES, RANGES),
        one("update_download_position", FILES, number),
        one("get_filled_file_ranges", FILES),
        one("get_file_ranges", FILES),
        one("get_validation_state", FILES),
        one("set_validation_state", FILES, ANY),
        one("set_reply_file_name", local),
    ]
    return {name: st.one_of([m for n, m in made if n == name]) for name, _ in made}


# Proxy lists a transfer may try: loopback only (nothing listens on port 9), well or badly
# written; never a name to look up.
PROXY_LISTS = st.sampled_from(
    [
        *("127.0.0.1:9", "http://127.0.0.1:9", "http=127.0.0.1:9", "https=127.0.0.1:9"),
        *("127.0.0.1:99999", "http://[::1", "127.0.0.1:9/x", "ftp=127.0.0.1:9", "\x01"),
        *("http://u:p@127.0.0.1:9", "127.0.0.1:-1", "=", ":", "http://", "[::1]:9"),
        *("a" * 64 + ":9", "a..b:9", "é:9", "\ud800:9"),  # names refused before any lookup
    ]
)


@dataclass(frozen=True)
class Seen:
    """Everything a refused call must leave as it was."""

    snapshot: bitsd.JobSnapshot
    files: list[FileInfo]
    record: Any
    file_records: list[Any]
    notify: object | None


async def seen(engine: Engine, job: Job) -> Seen:
    return Seen(
        await job.snapshot(),
        await job.files(),
        engine._record(job.id),
        list(engine._stored_files(job.id)),
        await job.get_notify_interface(),
    )


def check_stored(engine: Engine, job: Job) -> None:
    """The store holds what the engine holds: no change half-written."""
    stored = engine._store.load()
    live = engine._jobs.get(job.id)
    rows = [j for j in stored.jobs if j.id == job.id]
    if live is None:
        assert rows == [] or rows[0].state is JobState.CANCELLED
        return
    assert rows == [engine._to_disk(live)]
    assert stored.files.get(job.id, []) == engine._stored_files(job.id)


async def attempt(bench: Bench, setup: Setup, what: str, call: Call) -> None:
    """Call ``call`` on a job made by ``setup`` and check the property; the job is cancelled
    after, whatever happened."""
    engine = bench.engine
    job = await setup(bench)
    try:
        before = await seen(engine, job)
        try:
            await call(job)
        except bitsd.BitsError:
            assert await seen(engine, job) == before, f"{what} changed the job and raised"
        except Exception as exc:
            raise AssertionError(f"{what} raised {exc!r}, not a BitsError") from exc
        check_stored(engine, job)
    finally:
        if not (await job.get_state()).is_final:
            await job.cancel()
    assert (await engine.jobs()) == []  # the engine answers, and holds no stray job


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_job_methods_raise_bits_errors_and_change_nothing_when_they_do(
    bench: Bench, data: st.DataObject
) -> None:
    """Any argument to any input-taking Job method, on jobs in many states: the call succeeds
    or raises a BitsError, and then the job, its files and its stored row are unchanged."""
    setup = data.draw(st.sampled_from(SETUPS), label="setup")
    what, call = data.draw(bench.any_call(), label="call")
    bench.run(attempt(bench, setup, what, call))


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_create_job_raises_bits_errors_and_makes_nothing_when_it_does(
    bench: Bench, data: st.DataObject
) -> None:
    """create_job with any name, type, files, priority and resume: it hands out a job or
    raises a BitsError, and then no job was made or stored (all or nothing)."""
    local = local_names(bench.dest)
    # Local sources only: a resumed job copies a file, it never looks a host up.
    remote = _or_any(
        st.one_of(
            st.sampled_from([str(bench.source), f"file://{bench.source}", "/nonexistent"]),
            st.builds(lambda t: f"{bench.source}{t}", st.text(ODD_CHARS, max_size=4)),
        )
    )
    name = data.draw(_or_any(st.text(max_size=8)), label="name")
    job_type = data.draw(_or_any(st.sampled_from(list(JobType))), label="job_type")
    files = data.draw(
        st.one_of(st.none(), _or_any(st.lists(_or_any(st.tuples(remote, local)), max_size=3))),
        label="files",
    )
    priority = data.draw(st.one_of(st.none(), _or_any(st.sampled_from(list(Priority)))))
    resume = data.draw(st.booleans(), label="resume")
    what = f"create_job({name!r}, {job_type!r}, files={files!r}, priority={priority!r}, "
    what += f"resume={resume})"
    bench.run(_create(bench, what, name, job_type, files, priority, resume))


async def _create(
    bench: Bench, what: str, name: Any, job_type: Any, files: Any, priority: Any, resume: bool
) -> None:
    engine = bench.engine
    try:
        job = await engine.create_job(name, job_type, files=files, priority=priority, resume=resume)
    except bitsd.BitsError:
        assert await engine.jobs() == [], f"{what} raised and left a job"
        assert [j for j in engine._store.load().jobs if not j.state.is_final] == []
        return
    except Exception as exc:
        raise AssertionError(f"{what} raised {exc!r}, not a BitsError") from exc
    try:
        check_stored(engine, job)
    finally:
        await job.cancel()


WAIT_STATES = _or_any(
    st.one_of(
        st.sampled_from(list(JobState)),
        st.lists(st.one_of(st.sampled_from(list(JobState)), st.integers(-1, 9)), max_size=3),
    )
)
WAIT_TIMEOUTS = st.one_of(
    st.none(),
    st.floats(-1, 0.01),
    st.sampled_from([0, -0.0, math.nan, math.inf, 10**400]),
    ANY,
)
GUARD = 0.05  # seconds of real time a wait may take before the test ends it


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(states=WAIT_STATES, timeout=WAIT_TIMEOUTS)
def test_wait_returns_times_out_or_raises_bits_errors(
    bench: Bench, states: Any, timeout: Any
) -> None:
    """wait() with any states and timeout returns a state it was asked for, raises
    TimeoutError for a numeric timeout, or raises a BitsError; it leaves no waiter behind."""
    bench.run(_wait(bench, states, timeout))


async def _wait(bench: Bench, states: Any, timeout: Any) -> None:
    engine = bench.engine
    job = await engine.create_job("wait")
    what = f"wait({states!r}, {timeout!r})"
    numeric = isinstance(timeout, int | float) and not isinstance(timeout, bool)
    try:
        async with asyncio.timeout(GUARD) as guard:
            state = await job.wait(states, timeout)
        assert state is JobState.SUSPENDED, what
    except TimeoutError:
        # Still waiting when the guard ended it: only a wait with no (short) timeout may be.
        # Ended by the wait's own timeout: only a numeric one may.
        still = timeout is None or (numeric and not timeout < GUARD)
        assert still if guard.expired() else numeric, f"{what} raised TimeoutError"
    except bitsd.BitsError:
        pass
    except Exception as exc:
        raise AssertionError(f"{what} raised {exc!r}, not a BitsError") from exc
    finally:
        await job.cancel()
    assert not engine._waiters.get(job.id), f"{what} left a waiter"


# Setters whose values a transfer uses, for the next property: not those that wait on the
# engine's clock (a bandwidth limit, the download time), nor remote names (a lookup).
RUN_SETTERS = (
    *("set_custom_headers", "set_http_method", "set_security_flags", "set_proxy_settings"),
    *("set_credentials", "set_ca_bundle", "set_client_certificate", "set_dynamic_content"),
    *("set_on_demand", "set_maximum_download_size", "set_priority", "set_transfer_policy"),
    *("set_notify_flags", "set_notify_cmd_line", "set_display_name", "set_no_progress_timeout"),
)
ENDS = [JobState.TRANSFERRED, JobState.ERROR, JobState.TRANSIENT_ERROR, JobState.SUSPENDED]
_serial = itertools.count()


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_what_a_setter_accepts_never_fails_a_transfer_as_an_internal_error(
    bench: Bench, data: st.DataObject
) -> None:
    """A job whose setter took a generated value transfers from a loopback server (open, or
    asking for Basic or Digest credentials) or fails with a BITS error of the transfer: never
    as an internal error (E_FAIL in GENERAL_QUEUE_MANAGER, what the engine records for an
    exception it did not expect), and nothing fails in the loop's background."""
    path = data.draw(st.sampled_from(["/f", "/basic", "/digest"]), label="path")
    name = data.draw(st.sampled_from(RUN_SETTERS), label="setter")
    what, call = data.draw(RUN_CALLS.get(name, bench.calls[name]), label="call")
    bench.run(_transfer(bench, path, what, call))


def _credentials(target: Any, scheme: Any, user: Any, password: Any) -> Named:
    what = f"set_credentials({target!r}, {scheme!r}, {user!r}, {password!r})"
    return what, lambda job: job.set_credentials(target, scheme, user, password)


def _proxies(usage: Any, proxy_list: Any, bypass_list: Any) -> Named:
    what = f"set_proxy_settings({usage!r}, {proxy_list!r}, {bypass_list!r})"
    return what, lambda job: job.set_proxy_settings(usage, proxy_list, bypass_list)


# The transfer property's own arguments where the general ones would not do: credentials the
# server's challenge makes a transfer use, and proxy lists that never name a host to look up.
RUN_CALLS = {
    "set_credentials": st.builds(
        _credentials,
        st.just(AuthTarget.SERVER),
        st.sampled_from([AuthScheme.BASIC, AuthScheme.DIGEST]),
        st.one_of(st.just(ACCOUNT[0]), ODD_TEXT),
        st.one_of(st.just(ACCOUNT[1]), ODD_TEXT),
    ),
    "set_proxy_settings": st.builds(
        _proxies,
        st.sampled_from(list(ProxyUsage)),
        st.one_of(st.none(), PROXY_LISTS),
        st.one_of(st.none(), st.sampled_from(["<local>", "*", "127.0.0.1", "\x01", "a/b"])),
    ),
}


async def _transfer(bench: Bench, path: str, what: str, call: Call) -> None:
    job = await bench.engine.create_job("run")
    try:
        await job.add_file(bench.server.url(path), str(bench.dest / f"run-{next(_serial)}"))
        try:
            await call(job)
        except bitsd.BitsError:
            pass
        except Exception as exc:
            raise AssertionError(f"{what} raised {exc!r}, not a BitsError") from exc
        await job.resume()
        state = await job.wait(ENDS, 10)
        if state in (JobState.ERROR, JobState.TRANSIENT_ERROR):
            error = await job.get_error()
            internal = (codes.E_FAIL, ErrorContext.GENERAL_QUEUE_MANAGER)
            assert (error.code, error.context) != internal, f"{what} on {path}: {error.description}"
    finally:
        await job.cancel()
