"""Bad arguments through the daemon's clients get what the in-process engine gives them.

Each call below runs on a job of ``bitsd.aio.Engine`` and on the same job through
``bitsd.aio.connect()`` to a real daemon process: both raise a BitsError of the same class with
the same HRESULT (the one named here), and neither job changes. A client checks what it
converts to send (enums, flags, bools, seconds, byte counts, ranges, file pairs, file indexes,
``wait``'s states and timeout, credentials) with the engine's own checks before sending, and a
value JSON cannot carry never leaves: no request is made for those. They raised TypeError,
ValueError or OverflowError before (``set_notify_flags(None)``, ``wait(5)``, a range of
``inf``), or were converted and sent, and taken (``int(1.5)`` as a range offset, ``True`` as
transfer policy 1, ``"SERVER"`` as a credentials target the engine refuses). The synchronous
client passes them on unchanged (it raised TypeError from ``list()`` for some).
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import bitsd
from bitsd import (
    AuthScheme,
    AuthTarget,
    BitsError,
    InvalidArgumentError,
    JobState,
    NotSupportedError,
    ProxyUsage,
    codes,
)
from bitsd.aio import Engine, Manager
from tests.client.conftest import AnyJob, Backend
from tests.client.daemon import Daemon

pytestmark = pytest.mark.e2e  # every test here talks to a real daemon process

URL = "http://127.0.0.1:9"  # nothing is transferred: the jobs are never resumed
HUGE = 10**5000  # an int JSON cannot carry (over 4,300 digits)

Outcome = tuple[type[BaseException], int | None]


@dataclass(frozen=True)
class Case:
    """A call of a job method with a bad argument, and what it raises on both sides."""

    call: Callable[[Any, Path], Awaitable[Any]]  # the job: Any, to pass it what it refuses
    error: type[BitsError]
    code: int
    on_demand: bool = False  # made on an on-demand job
    sent: bool = False  # the client sends it and the daemon refuses it (the job says)


CASES: dict[str, Case] = {
    # Enums and flags: E_NOTIMPL for a number BITS does not define, E_INVALIDARG for another
    # type (the security flags' and proxy usage's E_NOTIMPL, the auth codes, as BITS's).
    "priority True": Case(
        lambda j, d: j.set_priority(True), InvalidArgumentError, codes.E_INVALIDARG
    ),
    "priority 1.0": Case(
        lambda j, d: j.set_priority(1.0), InvalidArgumentError, codes.E_INVALIDARG
    ),
    "priority 'HIGH'": Case(
        lambda j, d: j.set_priority("HIGH"), InvalidArgumentError, codes.E_INVALIDARG
    ),
    "notify flags None": Case(
        lambda j, d: j.set_notify_flags(None), InvalidArgumentError, codes.E_INVALIDARG
    ),
    "notify flags '3'": Case(
        lambda j, d: j.set_notify_flags("3"), InvalidArgumentError, codes.E_INVALIDARG
    ),
    "notify flags True": Case(
        lambda j, d: j.set_notify_flags(True), InvalidArgumentError, codes.E_INVALIDARG
    ),
    "notify flags inf": Case(
        lambda j, d: j.set_notify_flags(math.inf), InvalidArgumentError, codes.E_INVALIDARG
    ),
    "security flags False": Case(
        lambda j, d: j.set_security_flags(False), NotSupportedError, codes.E_NOTIMPL
    ),
    "security flags '2'": Case(
        lambda j, d: j.set_security_flags("2"), NotSupportedError, codes.E_NOTIMPL
    ),
    "proxy usage True": Case(
        lambda j, d: j.set_proxy_settings(True), NotSupportedError, codes.E_NOTIMPL
    ),
    "proxy usage 7": Case(lambda j, d: j.set_proxy_settings(7), NotSupportedError, codes.E_NOTIMPL),
    "proxy OVERRIDE without a list": Case(
        lambda j, d: j.set_proxy_settings(ProxyUsage.OVERRIDE, None),
        InvalidArgumentError,
        codes.E_INVALIDARG,
    ),
    "transfer policy True": Case(
        lambda j, d: j.set_transfer_policy(True), InvalidArgumentError, codes.E_INVALIDARG
    ),
    # BOOL properties: a bool only.
    "dynamic content 'no'": Case(
        lambda j, d: j.set_dynamic_content("no"), InvalidArgumentError, codes.E_INVALIDARG
    ),
    "on demand 1": Case(lambda j, d: j.set_on_demand(1), InvalidArgumentError, codes.E_INVALIDARG),
    "validation 'no'": Case(
        lambda j, d: j.set_validation_state(0, "no"), InvalidArgumentError, codes.E_INVALIDARG
    ),
    # Seconds and byte counts.
    "retry delay HUGE": Case(
        lambda j, d: j.set_minimum_retry_delay(HUGE), InvalidArgumentError, codes.E_INVALIDARG
    ),
    "no-progress timeout bytes": Case(
        lambda j, d: j.set_no_progress_timeout(b"5"), InvalidArgumentError, codes.E_INVALIDARG
    ),
    "download time NaN": Case(
        lambda j, d: j.set_maximum_download_time(math.nan),
        InvalidArgumentError,
        codes.E_INVALIDARG,
    ),
    "download size True": Case(
        lambda j, d: j.set_maximum_download_size(True),
        BitsError,
        codes.BG_E_MAX_DOWNLOAD_SIZE_INVALID_VALUE,
    ),
    "download size bytes": Case(
        lambda j, d: j.set_maximum_download_size(b"1"),
        BitsError,
        codes.BG_E_MAX_DOWNLOAD_SIZE_INVALID_VALUE,
    ),
    "bandwidth limit 2**64": Case(
        lambda j, d: j.set_bandwidth_limit(2**64), InvalidArgumentError, codes.E_INVALIDARG
    ),
    # Credentials: the engine's check, whole.
    "auth target True": Case(
        lambda j, d: j.set_credentials(True, AuthScheme.BASIC, "u", "p"),
        BitsError,
        codes.BG_E_INVALID_AUTH_TARGET,
    ),
    "auth target 'SERVER'": Case(
        lambda j, d: j.set_credentials("SERVER", AuthScheme.BASIC, "u", "p"),
        BitsError,
        codes.BG_E_INVALID_AUTH_TARGET,
    ),
    "auth scheme PASSPORT": Case(
        lambda j, d: j.set_credentials(AuthTarget.SERVER, AuthScheme.PASSPORT, "u", "p"),
        NotSupportedError,
        codes.E_NOTIMPL,
    ),
    "password bytes": Case(
        lambda j, d: j.set_credentials(AuthTarget.SERVER, AuthScheme.BASIC, "u", b"p"),
        InvalidArgumentError,
        codes.E_INVALIDARG,
    ),
    "remove credentials of scheme 9": Case(
        lambda j, d: j.remove_credentials(AuthTarget.SERVER, 9),
        BitsError,
        codes.BG_E_INVALID_AUTH_SCHEME,
    ),
    # Files and ranges.
    "file set 5": Case(lambda j, d: j.add_file_set(5), InvalidArgumentError, codes.E_INVALIDARG),
    "file set of a 1-tuple": Case(
        lambda j, d: j.add_file_set([(f"{URL}/c",)]), InvalidArgumentError, codes.E_INVALIDARG
    ),
    "range of inf": Case(
        lambda j, d: j.add_file_with_ranges(f"{URL}/c", str(d / "c"), [(0, math.inf)]),
        InvalidArgumentError,
        codes.E_INVALIDARG,
    ),
    "range at 1.5": Case(
        lambda j, d: j.add_file_with_ranges(f"{URL}/c", str(d / "c"), [(1.5, 2)]),
        InvalidArgumentError,
        codes.E_INVALIDARG,
    ),
    "range at '5'": Case(
        lambda j, d: j.add_file_with_ranges(f"{URL}/c", str(d / "c"), [("5", 2)]),
        InvalidArgumentError,
        codes.E_INVALIDARG,
    ),
    "range at HUGE": Case(
        lambda j, d: j.add_file_with_ranges(f"{URL}/c", str(d / "c"), [(HUGE, 2)]),
        InvalidArgumentError,
        codes.E_INVALIDARG,
        sent=True,
    ),
    "file index True": Case(
        lambda j, d: j.set_validation_state(True, True), InvalidArgumentError, codes.E_INVALIDARG
    ),
    "file index 'a'": Case(
        lambda j, d: j.get_file_ranges("a"), InvalidArgumentError, codes.E_INVALIDARG
    ),
    "requested range of inf": Case(
        lambda j, d: j.request_file_ranges(0, [(math.inf, 1)]),
        InvalidArgumentError,
        codes.E_INVALIDARG,
        on_demand=True,
    ),
    "requested range on a job that is not on-demand": Case(
        lambda j, d: j.request_file_ranges(0, [(0.5, 1)]), InvalidArgumentError, codes.E_INVALIDARG
    ),
    "download position True": Case(
        lambda j, d: j.update_download_position(0, True),
        InvalidArgumentError,
        codes.E_INVALIDARG,
        on_demand=True,
    ),
    "download position HUGE": Case(
        lambda j, d: j.update_download_position(0, HUGE),
        BitsError,
        codes.BG_E_INVALID_RANGE,
        on_demand=True,
        sent=True,
    ),
    # wait's states and timeout.
    "wait for 5": Case(lambda j, d: j.wait(5, 0.01), InvalidArgumentError, codes.E_INVALIDARG),
    "wait for 'SUSPENDED'": Case(
        lambda j, d: j.wait(["SUSPENDED"], 0.01), InvalidArgumentError, codes.E_INVALIDARG
    ),
    "wait for True": Case(
        lambda j, d: j.wait([True], 0.01), InvalidArgumentError, codes.E_INVALIDARG
    ),
    "wait for '1' s": Case(
        lambda j, d: j.wait([JobState.QUEUED], "1"), InvalidArgumentError, codes.E_INVALIDARG
    ),
    "wait for NaN s": Case(
        lambda j, d: j.wait([JobState.QUEUED], math.nan), InvalidArgumentError, codes.E_INVALIDARG
    ),
    # Values JSON cannot carry, where the daemon checks the value.
    "display name bytes": Case(
        lambda j, d: j.set_display_name(b"x"), InvalidArgumentError, codes.E_INVALIDARG
    ),
    "custom headers a set": Case(
        lambda j, d: j.set_custom_headers({"X-A: b\r\n"}), InvalidArgumentError, codes.E_INVALIDARG
    ),
    "notify program bytes": Case(
        lambda j, d: j.set_notify_cmd_line(b"/bin/true"), InvalidArgumentError, codes.E_INVALIDARG
    ),
}


async def outcome(call: Awaitable[Any]) -> Outcome:
    """The class and HRESULT (None for no BitsError) of what ``call`` raises."""
    try:
        await call
    except BitsError as exc:
        return type(exc), exc.hresult
    except Exception as exc:
        return type(exc), None
    raise AssertionError("the call raised nothing")


@contextlib.contextmanager
def requests_of(manager: Manager) -> Iterator[list[str]]:
    """The requests ``manager`` sends meanwhile (method and path), as they are sent."""
    sent: list[str] = []
    exchange = manager._exchange

    async def counting(method: str, path: str, *args: Any) -> tuple[int, Any]:
        sent.append(f"{method} {path}")
        return await exchange(method, path, *args)

    manager._exchange = counting  # type: ignore[method-assign,assignment]
    try:
        yield sent
    finally:
        del manager._exchange


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[Engine]:
    async with Engine(tmp_path / "engine-state") as e:
        yield e


async def job_of(backend: Backend, folder: Path, *, on_demand: bool) -> AnyJob:
    """A suspended job with two files (on-demand or not), its local names in ``folder``."""
    os.mkdir(folder)
    job = await backend.create_job("bad input")
    if on_demand:
        await job.set_on_demand(True)
    await job.add_file_set([(f"{URL}/a", str(folder / "a")), (f"{URL}/b", str(folder / "b"))])
    return job


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
async def test_a_bad_argument_gets_the_engines_error_through_the_client(
    engine: Engine, manager: Manager, tmp_path: Path, case: Case
) -> None:
    """The engine and the client raise the same class with the same code, the one named, and
    neither job changes; the client sends nothing unless the daemon must judge (``sent``)."""
    got: dict[str, Outcome] = {}
    for name, backend in (("engine", engine), ("daemon", manager)):
        folder = tmp_path / name
        job = await job_of(backend, folder, on_demand=case.on_demand)
        before = (await job.snapshot(), await job.files())
        with requests_of(manager) as sent:
            got[name] = await outcome(case.call(job, folder))
        assert (await job.snapshot(), await job.files()) == before, name
        if name == "daemon":
            assert len(sent) == (1 if case.sent else 0), sent
    assert got["engine"] == got["daemon"] == (case.error, case.code)


CREATE_CASES: dict[str, tuple[Callable[[Any], Awaitable[Any]], int]] = {
    "job type True": (lambda b: b.create_job("x", True), codes.E_INVALIDARG),
    "job type 9": (lambda b: b.create_job("x", 9), codes.E_INVALIDARG),
    "priority True": (lambda b: b.create_job("x", priority=True), codes.E_INVALIDARG),
    "resume 'no'": (lambda b: b.create_job("x", resume="no"), codes.E_INVALIDARG),
    "files 5": (lambda b: b.create_job("x", files=5), codes.E_INVALIDARG),
    "files of a 1-tuple": (lambda b: b.create_job("x", files=[(f"{URL}/a",)]), codes.E_INVALIDARG),
}


@pytest.mark.parametrize(("call", "code"), list(CREATE_CASES.values()), ids=list(CREATE_CASES))
async def test_create_job_with_a_bad_argument_gets_the_engines_error_through_the_client(
    engine: Engine, manager: Manager, call: Callable[[Any], Awaitable[Any]], code: int
) -> None:
    """create_job with a bad job type, priority, resume or file set: the same class and code
    on both sides, no job left, and no request from the client."""
    got: dict[str, Outcome] = {}
    for name, backend in (("engine", engine), ("daemon", manager)):
        before = await backend.jobs()
        with requests_of(manager) as sent:
            got[name] = await outcome(call(backend))
        assert await backend.jobs() == before, name
        assert sent == [], sent
    assert got["engine"] == got["daemon"]
    assert got["engine"][1] == code


SYNC_CASES: dict[str, Callable[[Any, Path], object]] = {
    "file set 5": lambda j, d: j.add_file_set(5),
    "ranges 5": lambda j, d: j.add_file_with_ranges(f"{URL}/c", str(d / "c"), 5),
    "requested ranges 5": lambda j, d: j.request_file_ranges(0, 5),
    "wait for 5": lambda j, d: j.wait(5, 0.01),
    "notify flags None": lambda j, d: j.set_notify_flags(None),
}


@pytest.mark.parametrize("call", list(SYNC_CASES.values()), ids=list(SYNC_CASES))
def test_the_sync_client_passes_bad_arguments_on_to_the_checks(
    daemon: Daemon, tmp_path: Path, call: Callable[[Any, Path], object]
) -> None:
    """The synchronous client raises the async client's E_INVALIDARG, before any request, and
    the job is unchanged; it raised TypeError from its own ``list()`` of the argument (or the
    async client's TypeError)."""
    with bitsd.connect(socket_path=daemon.socket, autostart=False) as manager:
        job = manager.create_job("sync bad input")
        job.add_file(f"{URL}/a", str(tmp_path / "a"))
        before = (job.snapshot(), job.files())
        client = manager._client
        sent: list[str] = []
        for attribute in ("_exchange", "_exchange_blocking"):
            exchange = getattr(client, attribute)

            def counting(*args: Any, _exchange: Any = exchange) -> Any:
                sent.append(f"{args[0]} {args[1]}")
                return _exchange(*args)

            setattr(client, attribute, counting)
        try:
            with pytest.raises(InvalidArgumentError) as info:
                call(job, tmp_path)
        finally:
            del client._exchange, client._exchange_blocking
        assert info.value.hresult == codes.E_INVALIDARG
        assert sent == []
        assert (job.snapshot(), job.files()) == before
        job.cancel()
