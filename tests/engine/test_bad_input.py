"""Inputs the engine once answered with another exception than a BitsError, or took and kept
half: each found by the properties of test_input_fuzz.py, each named here with the code the
caller now gets and the proof that the job did not change."""

from __future__ import annotations

import asyncio
import errno
import math
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

import bitsd
from bitsd import AuthScheme, AuthTarget, JobType, ProxyUsage, codes
from bitsd.aio import Engine, Job
from tests.engine.conftest import EngineFactory

JobCall = Callable[[Job, Path], Awaitable[Any]]
CA_NOT_UTF8 = os.fsdecode(b"ca\xff.pem")  # "ca\udcff.pem": a file name that is not UTF-8


async def refused(engine: Engine, job: Job, call: Awaitable[Any], code: int) -> None:
    """``call`` raises a BitsError with ``code`` and changes nothing of ``job``; the engine's
    store holds what the engine holds."""
    before = (await job.snapshot(), await job.files())
    with pytest.raises(bitsd.BitsError) as info:
        await call
    assert info.value.hresult == code, info.value
    assert (await job.snapshot(), await job.files()) == before
    stored = engine._store.load()
    assert [j for j in stored.jobs if j.id == job.id] == [engine._to_disk(engine._jobs[job.id])]


# -- text that is not UTF-8 --------------------------------------------------------------------

NOT_UTF8: list[tuple[str, JobCall]] = [
    ("display name", lambda j, d: j.set_display_name("\ud800")),
    ("description", lambda j, d: j.set_description("caf\udce9")),
    ("notify program", lambda j, d: j.set_notify_cmd_line("/bin/\ud800", None)),
    ("notify parameters", lambda j, d: j.set_notify_cmd_line("/bin/true", "true \udcff")),
    ("custom headers", lambda j, d: j.set_custom_headers("X-A: \ud800\r\n")),
    (
        "proxy bypass list",
        lambda j, d: j.set_proxy_settings(ProxyUsage.OVERRIDE, "http://p:3128", "\udcff"),
    ),
    (
        "user name",
        lambda j, d: j.set_credentials(AuthTarget.SERVER, AuthScheme.BASIC, "\ud800", "pw"),
    ),
    ("http remote name", lambda j, d: j.add_file("http://h/\ud800", str(d / "a"))),
    ("path remote name", lambda j, d: j.add_file(f"{d}/source\udcff", str(d / "a"))),
    ("local name", lambda j, d: j.add_file("http://h/f", f"{d}/\udcff")),
    ("lone surrogate local name", lambda j, d: j.add_file("http://h/f", f"{d}/\ud800")),
    ("new remote prefix", lambda j, d: j.replace_remote_prefix("http://h/", "http://h/\ud800/")),
    ("ca bundle", lambda j, d: j.set_ca_bundle(str(d / CA_NOT_UTF8))),
]


@pytest.mark.parametrize("call", [c for _, c in NOT_UTF8], ids=[n for n, _ in NOT_UTF8])
async def test_text_that_is_not_utf8_is_invalid_argument(
    make_engine: EngineFactory, dest: Path, call: JobCall
) -> None:
    """A lone surrogate (``"\\ud800"``; ``"\\udcff"`` is how Python shows a file name's byte
    that is not UTF-8) in any text a job keeps is E_INVALIDARG, and the job is unchanged. It
    was a UnicodeEncodeError from the store (or, in credentials, taken and failing every
    transfer)."""
    (dest / "source\udcff").write_bytes(b"x")
    (dest / CA_NOT_UTF8).write_bytes(b"not read here")
    async with make_engine() as engine:
        job = await engine.create_job("text")
        await job.add_file("http://h/f", str(dest / "f"))
        await refused(engine, job, call(job, dest), codes.E_INVALIDARG)
        await job.set_display_name("still usable")


SECRET = "s3cret-T0ken"  # noqa: S105 - a value the test looks for, not a credential
SECRETS_REFUSED: list[tuple[str, JobCall]] = [
    (
        "password not UTF-8",
        lambda j, d: j.set_credentials(
            AuthTarget.SERVER, AuthScheme.BASIC, "user", SECRET + "\ud800"
        ),
    ),
    ("custom headers not UTF-8", lambda j, d: j.set_custom_headers(f"X-Key: {SECRET}\udcff\r\n")),
    (
        "custom header line without a colon",
        lambda j, d: j.set_custom_headers(f"Accept: */*\r\nAuthorization Bearer {SECRET}\r\n"),
    ),
]


@pytest.mark.parametrize(
    "call", [c for _, c in SECRETS_REFUSED], ids=[n for n, _ in SECRETS_REFUSED]
)
async def test_a_refused_secret_is_not_quoted(
    make_engine: EngineFactory, dest: Path, call: JobCall
) -> None:
    """A password or custom headers (which may carry an Authorization value) that are refused
    are not quoted in the error: its message reaches the caller, the daemon's answers and
    logs (before, the whole value was)."""
    async with make_engine() as engine:
        job = await engine.create_job("secrets")
        with pytest.raises(bitsd.InvalidArgumentError) as info:
            await call(job, dest)
        assert SECRET not in str(info.value)
        assert SECRET not in repr(info.value)


async def test_a_display_name_that_is_not_utf8_creates_no_job(make_engine: EngineFactory) -> None:
    """create_job("\\ud800") is E_INVALIDARG and creates nothing (it was a UnicodeEncodeError
    from the store)."""
    async with make_engine() as engine:
        with pytest.raises(bitsd.InvalidArgumentError) as info:
            await engine.create_job("\ud800")
        assert info.value.hresult == codes.E_INVALIDARG
        assert await engine.jobs() == []
        assert engine._store.load().jobs == []


async def test_upload_and_reply_names_that_are_not_utf8_are_invalid_argument(
    make_engine: EngineFactory, dest: Path
) -> None:
    """The file to upload and the reply file name are local names too: a lone surrogate is
    E_INVALIDARG (the file to upload's was a UnicodeEncodeError from os.stat)."""
    source = dest / "up.bin"
    source.write_bytes(b"x" * 10)
    async with make_engine() as engine:
        upload = await engine.create_job("up", JobType.UPLOAD_REPLY)
        await refused(
            engine,
            upload,
            upload.add_file("http://h/up", f"{dest}/\ud800"),
            codes.E_INVALIDARG,
        )
        await upload.add_file("http://h/up", str(source))
        await refused(
            engine, upload, upload.set_reply_file_name(f"{dest}/\udcff"), codes.E_INVALIDARG
        )


# -- arguments of the wrong type ---------------------------------------------------------------

WRONG_TYPE: list[tuple[str, JobCall]] = [
    ("file set not iterable", lambda j, d: j.add_file_set(5)),  # type: ignore[arg-type]
    ("file set of a number", lambda j, d: j.add_file_set([5])),  # type: ignore[list-item]
    ("file set of a 1-tuple", lambda j, d: j.add_file_set([("http://h/a",)])),  # type: ignore[list-item]
    ("sha256 not a string", lambda j, d: j.add_file("http://h/a", str(d / "a"), sha256=True)),  # type: ignore[arg-type]
    (
        "ranges not iterable",
        lambda j, d: j.add_file_with_ranges("http://h/a", str(d / "a"), 5),  # type: ignore[arg-type]
    ),
    ("old prefix not a string", lambda j, d: j.replace_remote_prefix(5, "http://g/")),  # type: ignore[arg-type]
    ("new prefix not a string", lambda j, d: j.replace_remote_prefix("http://h/", 5)),  # type: ignore[arg-type]
    (
        "proxy list not a string",
        lambda j, d: j.set_proxy_settings(ProxyUsage.OVERRIDE, 1.0),  # type: ignore[arg-type]
    ),
    (
        "user name not a string",
        lambda j, d: j.set_credentials(AuthTarget.SERVER, AuthScheme.BASIC, 5, "pw"),  # type: ignore[arg-type]
    ),
    (
        "password not a string",
        lambda j, d: j.set_credentials(AuthTarget.SERVER, AuthScheme.BASIC, "u", b"pw"),  # type: ignore[arg-type]
    ),
]


@pytest.mark.parametrize("call", [c for _, c in WRONG_TYPE], ids=[n for n, _ in WRONG_TYPE])
async def test_arguments_of_the_wrong_type_are_invalid_argument(
    make_engine: EngineFactory, dest: Path, call: JobCall
) -> None:
    """A file set, ranges, a checksum, a prefix, a proxy list or credentials of the wrong type
    are E_INVALIDARG, and the job is unchanged; each was a TypeError or ValueError (from
    list(), unpacking, a regex, str.startswith or len)."""
    async with make_engine() as engine:
        job = await engine.create_job("types")
        await job.add_file("http://h/f", str(dest / "f"))
        await refused(engine, job, call(job, dest), codes.E_INVALIDARG)


async def test_requested_ranges_of_the_wrong_type_are_invalid_argument(
    make_engine: EngineFactory, dest: Path
) -> None:
    """request_file_ranges(0, 5) on an on-demand job is E_INVALIDARG (it was a TypeError from
    list())."""
    async with make_engine() as engine:
        job = await engine.create_job("on demand")
        await job.set_on_demand(True)
        await job.add_file("http://h/f", str(dest / "f"))
        await refused(engine, job, job.request_file_ranges(0, 5), codes.E_INVALIDARG)  # type: ignore[arg-type]


async def test_create_job_with_files_that_are_no_pairs_leaves_no_job(
    make_engine: EngineFactory,
) -> None:
    """create_job("x", files=5) is E_INVALIDARG and leaves no job behind (it was a TypeError
    from list(), after the job was made and then cancelled)."""
    async with make_engine() as engine:
        with pytest.raises(bitsd.InvalidArgumentError):
            await engine.create_job("x", files=5)  # type: ignore[arg-type]
        assert await engine.jobs() == []


# -- numbers -----------------------------------------------------------------------------------

SECONDS = ["set_minimum_retry_delay", "set_no_progress_timeout", "set_maximum_download_time"]


@pytest.mark.parametrize("setter", SECONDS)
@pytest.mark.parametrize(
    "value",
    [pytest.param(10**400, id="10**400"), math.inf, "5", b"5", True],
    ids=repr,
)
async def test_seconds_that_are_no_finite_number_are_invalid_argument(
    make_engine: EngineFactory, setter: str, value: object
) -> None:
    """The seconds setters take an int or a float, finite and >= 0, as the daemon's control API
    does: 10**400 was an OverflowError (from float()), and infinities, strings, bytes and bools
    were taken (float("5") is 5.0, True 1.0)."""
    async with make_engine() as engine:
        job = await engine.create_job("seconds")
        await refused(engine, job, getattr(job, setter)(value), codes.E_INVALIDARG)
        await getattr(job, setter)(60)
        await getattr(job, setter)(2**70)  # huge but finite: taken


@pytest.mark.parametrize("flags", [None, "3", 1.0, math.inf, math.nan, [1], True, False], ids=repr)
async def test_notify_flags_that_are_no_integer_are_invalid_argument(
    make_engine: EngineFactory, flags: object
) -> None:
    """Notify flags that are not an int are E_INVALIDARG (bits outside 0x3F stay E_NOTIMPL):
    None and lists were TypeError, NaN ValueError, infinity OverflowError (all from int()),
    and "3", 1.0 and the bools were taken (True as JOB_TRANSFERRED), where the daemon refuses
    them."""
    async with make_engine() as engine:
        job = await engine.create_job("flags")
        await refused(engine, job, job.set_notify_flags(flags), codes.E_INVALIDARG)  # type: ignore[arg-type]
        await job.set_notify_flags(bitsd.NotifyFlags.JOB_MODIFICATION)


async def test_byte_counts_beyond_what_a_job_can_keep_are_refused(
    make_engine: EngineFactory,
) -> None:
    """A maximum download size or a bandwidth limit over 2**63 - 1 (what a file offset and the
    store's integers hold) is refused with the property's code; both were an OverflowError
    from the store."""
    async with make_engine() as engine:
        job = await engine.create_job("bytes")
        size = job.set_maximum_download_size(2**63)
        await refused(engine, job, size, codes.BG_E_MAX_DOWNLOAD_SIZE_INVALID_VALUE)
        await refused(engine, job, job.set_bandwidth_limit(2**64), codes.E_INVALIDARG)
        await job.set_maximum_download_size(2**63 - 1)
        await job.set_bandwidth_limit(2**63 - 1)


async def test_a_download_position_beyond_any_file_is_refused_and_not_kept(
    make_engine: EngineFactory, dest: Path
) -> None:
    """update_download_position(0, 2**63) before the size is known is BG_E_INVALID_RANGE. It
    was an OverflowError from the store after the engine had kept the new position in memory:
    the file's record then differed from its stored row, and every later store of the file
    (a range request, a checkpoint) failed the same way."""
    async with make_engine() as engine:
        job = await engine.create_job("position")
        await job.set_on_demand(True)
        await job.add_file("http://h/f", str(dest / "f"))
        position = job.update_download_position(0, 2**63)
        await refused(engine, job, position, codes.BG_E_INVALID_RANGE)
        assert engine._files[job.id][0].download_position == 0
        await job.request_file_ranges(0, [(0, 10)])
        assert engine._store.load().files[job.id] == engine._files[job.id]


# -- create_job and wait -----------------------------------------------------------------------


@pytest.mark.parametrize("job_type", [9, None, "DOWNLOAD"], ids=repr)
async def test_create_job_of_no_job_type_is_invalid_argument(
    make_engine: EngineFactory, job_type: object
) -> None:
    """create_job with a job type that is no JobType value is E_INVALIDARG (still a
    ValueError, as the docs said, but now a BitsError too) and creates nothing."""
    async with make_engine() as engine:
        with pytest.raises(bitsd.InvalidArgumentError) as info:
            await engine.create_job("typed", job_type)  # type: ignore[arg-type]
        assert info.value.hresult == codes.E_INVALIDARG
        assert isinstance(info.value, ValueError)
        assert await engine.jobs() == []


@pytest.mark.parametrize(
    ("states", "timeout"),
    [
        (5, 0.01),
        (["SUSPENDED"], 0.01),
        ([99], 0.01),
        ([True], 0.01),
        ([bitsd.JobState.QUEUED], "1"),
        ([bitsd.JobState.QUEUED], math.nan),
    ],
    ids=repr,
)
async def test_wait_for_no_states_or_with_no_timeout_is_invalid_argument(
    make_engine: EngineFactory, states: object, timeout: object
) -> None:
    """wait() with states that are not JobState values, or a timeout that is neither None nor
    a number, is E_INVALIDARG at once: 5 and "1" were a TypeError (leaving a coroutine never
    awaited); "SUSPENDED", 99 and True could never be reached (only the timeout ended the
    wait), and a NaN timeout ended it at once."""
    async with make_engine() as engine:
        job = await engine.create_job("waiting")
        with pytest.raises(bitsd.InvalidArgumentError):
            await job.wait(states, timeout)  # type: ignore[arg-type]
        assert await job.wait([3], 0.01) is bitsd.JobState.SUSPENDED  # type: ignore[list-item]
        assert await job.wait(bitsd.JobState.SUSPENDED) is bitsd.JobState.SUSPENDED


# -- local names too long for a file -----------------------------------------------------------

FILENAME_EXCED_RANGE = codes.hresult_from_errno(errno.ENAMETOOLONG)


@pytest.mark.parametrize("name", ["x" * 256, "é" * 128], ids=["256 ASCII", "128 two-byte"])
async def test_a_local_name_over_name_max_is_refused(
    make_engine: EngineFactory, dest: Path, name: str
) -> None:
    """A local name whose last part is over NAME_MAX (255 bytes, counted in UTF-8) is
    HRESULT_FROM_WIN32(ERROR_FILENAME_EXCED_RANGE) at add_file. It was taken: the temporary
    file (whose name keeps only 180 bytes of it) filled, and then every Complete failed with
    that code, so the job's bytes could never reach their name."""
    async with make_engine() as engine:
        job = await engine.create_job("long")
        await refused(
            engine, job, job.add_file("http://h/f", f"{dest}/{name}"), FILENAME_EXCED_RANGE
        )
        await job.add_file("http://h/f", f"{dest}/{name[: len(name) - 1]}")  # 255 bytes: taken


def _deep_folder(root: Path, length: int) -> Path:
    """A new folder under ``root`` whose path is ``length`` bytes long."""
    folder = str(root)
    while len(folder) < length:
        part = "d" * min(200, length - len(folder) - 1)
        folder = f"{folder}/{part}"
        os.mkdir(folder)
    return Path(folder)


async def test_a_local_name_whose_temporary_file_would_reach_path_max_is_refused(
    make_engine: EngineFactory, dest: Path
) -> None:
    """A local name under PATH_MAX whose temporary file's path (the name's first 180 bytes and
    about 55 more) would reach it is refused as well: that file could never be created, and
    each Resume failed in LOCAL_FILE. A shorter folder takes the same name."""
    deep = _deep_folder(dest, 4060)
    async with make_engine() as engine:
        job = await engine.create_job("deep")
        await refused(engine, job, job.add_file("http://h/f", f"{deep}/f"), FILENAME_EXCED_RANGE)
        await job.add_file("http://h/f", f"{deep.parent}/f")


async def test_wait_with_a_timeout_too_large_for_the_loop_waits_without_one(
    make_engine: EngineFactory, dest: Path
) -> None:
    """A wait timeout of 10**400 (an int beyond the floats) means no timeout, as infinity
    does; it was an OverflowError from the event loop (and a coroutine never awaited)."""
    timeout = 10**400
    async with make_engine() as engine:
        job = await engine.create_job("forever")
        await job.add_file("http://h/f", str(dest / "f"))
        await job.resume()
        waiting = asyncio.ensure_future(job.wait([bitsd.JobState.SUSPENDED], timeout))
        await asyncio.sleep(0)
        assert not waiting.done()
        await job.suspend()
        assert await asyncio.wait_for(waiting, 5) is bitsd.JobState.SUSPENDED


# -- accepted, then failing every transfer -----------------------------------------------------


@pytest.mark.parametrize(
    "headers", ["X-A: \u4e2d\r\n", "X-A: \x01\r\n", "X-A: b\x7f\r\n"], ids=repr
)
async def test_custom_headers_no_http_client_can_send_are_invalid_argument(
    make_engine: EngineFactory, headers: str
) -> None:
    """A custom header with a control character other than tab, or a character beyond
    Latin-1, is E_INVALIDARG when set. They were taken, and every transfer then failed as an
    internal error (E_FAIL in GENERAL_QUEUE_MANAGER, logged as a bug): bitsd's own client
    writes Latin-1 (UnicodeEncodeError), aiohttp refuses controls (ValueError)."""
    async with make_engine() as engine:
        job = await engine.create_job("headers")
        await refused(engine, job, job.set_custom_headers(headers), codes.E_INVALIDARG)
        await job.set_custom_headers("X-A: caf\u00e9\tand tab\r\n")  # Latin-1 and tab: taken


@pytest.mark.parametrize(
    ("scheme", "user"),
    [
        (AuthScheme.DIGEST, "a:b"),
        (AuthScheme.BASIC, "a:b"),
        (AuthScheme.DIGEST, "a\x18b"),
        (AuthScheme.NTLM, "a\tb"),
    ],
    ids=repr,
)
async def test_user_names_no_scheme_can_send_are_invalid_argument(
    make_engine: EngineFactory, scheme: AuthScheme, user: str
) -> None:
    """A user name with a control character, or with a colon for BASIC or DIGEST, is
    E_INVALIDARG at set_credentials. They were taken: with Digest each transfer then failed
    as an internal error (aiohttp refuses a colon in the user name, and controls in a
    header), with Basic the server read "a" as the user ("a:b:password") and answered 401."""
    async with make_engine() as engine:
        job = await engine.create_job("users")
        call = job.set_credentials(AuthTarget.SERVER, scheme, user, "pw")
        await refused(engine, job, call, codes.E_INVALIDARG)
        await job.set_credentials(AuthTarget.SERVER, AuthScheme.NTLM, "DOMAIN\\a:b", "pw")


# -- bools and enums as the daemon takes them --------------------------------------------------

# BITS's BOOL properties take a bool, and its enums their integer values: a truthy string, a
# bool where a number goes or a float is refused with the code the daemon's control API gives
# the same value (E_INVALIDARG; E_NOTIMPL where BITS gives it to a bad usage or bad flags;
# the auth codes for a target or scheme). Each was taken before (or refused with another code).
NOT_THE_TYPE: list[tuple[str, JobCall, int]] = [
    ("dynamic content 'no'", lambda j, d: j.set_dynamic_content("no"), codes.E_INVALIDARG),  # type: ignore[arg-type]
    ("dynamic content 1", lambda j, d: j.set_dynamic_content(1), codes.E_INVALIDARG),  # type: ignore[arg-type]
    ("on demand 'no'", lambda j, d: j.set_on_demand("no"), codes.E_INVALIDARG),  # type: ignore[arg-type]
    ("on demand None", lambda j, d: j.set_on_demand(None), codes.E_INVALIDARG),  # type: ignore[arg-type]
    ("priority True", lambda j, d: j.set_priority(True), codes.E_INVALIDARG),  # type: ignore[arg-type]
    ("priority 1.0", lambda j, d: j.set_priority(1.0), codes.E_INVALIDARG),  # type: ignore[arg-type]
    ("priority 'HIGH'", lambda j, d: j.set_priority("HIGH"), codes.E_INVALIDARG),  # type: ignore[arg-type]
    ("priority None", lambda j, d: j.set_priority(None), codes.E_INVALIDARG),  # type: ignore[arg-type]
    ("notify flags True", lambda j, d: j.set_notify_flags(True), codes.E_INVALIDARG),
    ("security flags False", lambda j, d: j.set_security_flags(False), codes.E_NOTIMPL),
    ("proxy usage True", lambda j, d: j.set_proxy_settings(True), codes.E_NOTIMPL),  # type: ignore[arg-type]
    ("proxy usage 1.0", lambda j, d: j.set_proxy_settings(1.0), codes.E_NOTIMPL),  # type: ignore[arg-type]
    (
        "auth target True",
        lambda j, d: j.set_credentials(True, AuthScheme.BASIC, "u", "p"),  # type: ignore[arg-type]
        codes.BG_E_INVALID_AUTH_TARGET,
    ),
    (
        "auth scheme 1.0",
        lambda j, d: j.set_credentials(AuthTarget.SERVER, 1.0, "u", "p"),  # type: ignore[arg-type]
        codes.BG_E_INVALID_AUTH_SCHEME,
    ),
    (
        "remove credentials of target True",
        lambda j, d: j.remove_credentials(True, AuthScheme.BASIC),  # type: ignore[arg-type]
        codes.BG_E_INVALID_AUTH_TARGET,
    ),
    ("file True", lambda j, d: j.get_file_ranges(True), codes.E_INVALIDARG),
    ("validation 'no'", lambda j, d: j.set_validation_state(0, "no"), codes.E_INVALIDARG),  # type: ignore[arg-type]
]


@pytest.mark.parametrize(
    ("call", "code"), [(c, h) for _, c, h in NOT_THE_TYPE], ids=[n for n, _, _ in NOT_THE_TYPE]
)
async def test_bools_and_enums_of_another_type_are_refused_as_the_daemon_refuses_them(
    make_engine: EngineFactory, dest: Path, call: JobCall, code: int
) -> None:
    """A value of another type where a BOOL or an enum goes is refused with the daemon's code
    and the job is unchanged. They were taken: "no" enabled dynamic content and on-demand
    mode (truthiness), True was HIGH, JOB_TRANSFERRED, NO_PROXY, SERVER, file 1, and False no
    security flags; "no" validated a file (or, before it finished, was E_PENDING); "HIGH" and
    None were E_NOTIMPL (a value of BITS's type that BITS does not define)."""
    async with make_engine() as engine:
        job = await engine.create_job("types")
        await job.add_file("http://h/a", str(dest / "a"))
        await job.add_file_with_ranges("http://h/b", str(dest / "b"), [(0, 10)])
        await refused(engine, job, call(job, dest), code)
        # The values of the right type are taken.
        await job.set_on_demand(False)
        await job.set_priority(bitsd.Priority.HIGH)
        assert await job.get_file_ranges(1) == [(0, 10)]


async def test_a_validation_state_that_is_no_bool_leaves_a_finished_file_unvalidated(
    make_engine: EngineFactory, dest: Path
) -> None:
    """set_validation_state(0, "no") on a transferred file is E_INVALIDARG and the file stays
    unvalidated; "no" was taken as True (truthiness) and validated it."""
    source = dest / "source"
    source.write_bytes(b"x" * 1000)
    async with make_engine() as engine:
        job = await engine.create_job("validate")
        await job.add_file(str(source), str(dest / "copy"))
        await job.resume()
        assert await job.wait(bitsd.JobState.TRANSFERRED, 15) is bitsd.JobState.TRANSFERRED
        await refused(engine, job, job.set_validation_state(0, "no"), codes.E_INVALIDARG)  # type: ignore[arg-type]
        assert await job.get_validation_state(0) is False
        await job.set_validation_state(0, True)
        assert await job.get_validation_state(0) is True


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda e: e.create_job("x", True), id="job type True"),
        pytest.param(lambda e: e.create_job("x", priority=True), id="priority True"),
        pytest.param(lambda e: e.create_job("x", priority=1.0), id="priority 1.0"),
        pytest.param(lambda e: e.create_job("x", resume="no"), id="resume 'no'"),
        pytest.param(
            lambda e: e.create_job("x", files=[("http://h/a", "/tmp/bitsd-never")], resume=1),
            id="resume 1 with files",
        ),
    ],
)
async def test_create_job_with_a_bool_or_enum_of_another_type_creates_nothing(
    make_engine: EngineFactory, call: Callable[[Engine], Awaitable[Job]]
) -> None:
    """create_job refuses a job type, priority or resume of another type with E_INVALIDARG,
    as the daemon refuses the same body, and leaves no job. True made an UPLOAD job or a HIGH
    one; resume="no" resumed (a job with files started; one without was BG_E_EMPTY)."""
    async with make_engine() as engine:
        with pytest.raises(bitsd.InvalidArgumentError) as info:
            await call(engine)
        assert info.value.hresult == codes.E_INVALIDARG
        assert await engine.jobs() == []
        assert engine._store.load().jobs == []


# -- the value alone before the job ------------------------------------------------------------


async def test_a_value_of_the_wrong_type_is_refused_before_the_job_refuses_the_setter(
    make_engine: EngineFactory, dest: Path
) -> None:
    """A value is checked alone first, then against the job, as the daemon checks a body
    before it calls a setter: a bad value on an upload job, after the first Resume or on a job
    that is not on-demand gets the value's code. They got the job's code (download jobs only,
    read-only after Resume, no random access)."""
    source = dest / "up"
    source.write_bytes(b"x")
    async with make_engine() as engine:
        upload = await engine.create_job("upload", JobType.UPLOAD)
        await refused(engine, upload, upload.set_dynamic_content("no"), codes.E_INVALIDARG)  # type: ignore[arg-type]
        await refused(engine, upload, upload.set_http_method("BAD METHOD"), codes.E_INVALIDARG)
        job = await engine.create_job("resumed")
        await job.add_file("http://127.0.0.1:9/a", str(dest / "a"))
        await job.resume()
        await job.suspend()
        size = job.set_maximum_download_size(0)
        await refused(engine, job, size, codes.BG_E_MAX_DOWNLOAD_SIZE_INVALID_VALUE)
        await refused(engine, job, job.set_on_demand(1), codes.E_INVALIDARG)  # type: ignore[arg-type]
        ranges = job.request_file_ranges(0, [(1.5, 2)])  # type: ignore[list-item]
        await refused(engine, job, ranges, codes.E_INVALIDARG)
        await refused(engine, job, job.update_download_position(0, -1), codes.E_INVALIDARG)
        await refused(engine, job, job.update_download_position(True, 0), codes.E_INVALIDARG)
        # The job's own refusals, for values that are fine.
        with pytest.raises(bitsd.ReadOnlyPropertyError):
            await job.set_maximum_download_size(10)
        with pytest.raises(bitsd.BitsError) as info:
            await job.request_file_ranges(0, [(0, 2)])
        assert info.value.hresult == codes.BG_E_RANDOM_ACCESS_NOT_SUPPORTED


async def test_ranges_of_the_wrong_type_are_refused_before_the_job_refuses_ranges(
    make_engine: EngineFactory, dest: Path
) -> None:
    """add_file_with_ranges with ranges that are no pairs of integers is E_INVALIDARG on a
    dynamic-content job and on an upload job too, as the daemon answers the same body; it was
    BG_E_UNSUPPORTED_JOB_CONFIGURATION and E_NOTIMPL."""
    source = dest / "up"
    source.write_bytes(b"x")
    async with make_engine() as engine:
        dynamic = await engine.create_job("dynamic")
        await dynamic.set_dynamic_content(True)
        call = dynamic.add_file_with_ranges("http://h/a", str(dest / "a"), [("0", 1)])  # type: ignore[list-item]
        await refused(engine, dynamic, call, codes.E_INVALIDARG)
        upload = await engine.create_job("upload", JobType.UPLOAD)
        call = upload.add_file_with_ranges("http://h/a", str(source), 5)  # type: ignore[arg-type]
        await refused(engine, upload, call, codes.E_INVALIDARG)


async def test_arguments_of_the_wrong_type_are_refused_before_the_job_kind_refuses_them(
    make_engine: EngineFactory, dest: Path
) -> None:
    """A SHA-256, a remote prefix or a reply file name that is not a string is E_INVALIDARG on
    jobs of a kind that takes no such thing too (an upload job, a download job's reply), as
    the daemon answers the same body; they got the kind's E_NOTIMPL."""
    source = dest / "up"
    source.write_bytes(b"x")
    async with make_engine() as engine:
        upload = await engine.create_job("upload", JobType.UPLOAD)
        add = upload.add_file("http://h/a", str(source), sha256=5)  # type: ignore[arg-type]
        await refused(engine, upload, add, codes.E_INVALIDARG)
        await upload.add_file("http://h/a", str(source))
        replace = upload.replace_remote_prefix(5, "http://x/")  # type: ignore[arg-type]
        await refused(engine, upload, replace, codes.E_INVALIDARG)
        download = await engine.create_job("download")
        reply = download.set_reply_file_name(5)  # type: ignore[arg-type]
        await refused(engine, download, reply, codes.E_INVALIDARG)
        # The kind's own refusals, for values that are fine.
        with pytest.raises(bitsd.NotSupportedError):
            await download.set_reply_file_name(str(dest / "reply"))
        with pytest.raises(bitsd.NotSupportedError):
            await upload.replace_remote_prefix("http://h/", "http://x/")


HUGE = 10**5000  # Python writes no int of over 4,300 digits in decimal (ValueError)


@pytest.mark.parametrize(
    ("call", "code"),
    [
        pytest.param(lambda j, d: j.set_priority(HUGE), codes.E_NOTIMPL, id="priority"),
        pytest.param(lambda j, d: j.set_proxy_settings(HUGE), codes.E_NOTIMPL, id="proxy usage"),
        pytest.param(
            lambda j, d: j.set_credentials(HUGE, AuthScheme.BASIC, "u", "p"),
            codes.BG_E_INVALID_AUTH_TARGET,
            id="auth target",
        ),
        pytest.param(
            lambda j, d: j.add_file_with_ranges("http://h/r", str(d / "r"), [(HUGE, 1)]),
            codes.E_INVALIDARG,
            id="range",
        ),
        pytest.param(lambda j, d: j.get_file_ranges(HUGE), codes.E_INVALIDARG, id="file index"),
        pytest.param(
            lambda j, d: j.update_download_position(0, HUGE),
            codes.BG_E_INVALID_RANGE,
            id="download position",
        ),
        pytest.param(
            lambda j, d: j.request_file_ranges(0, [(HUGE, 1)]),
            codes.BG_E_INVALID_RANGE,
            id="requested range",
        ),
    ],
)
async def test_an_int_too_long_to_write_is_refused_with_the_values_code(
    make_engine: EngineFactory, dest: Path, call: JobCall, code: int
) -> None:
    """An int of over 4,300 digits is refused like any other value out of range; each was a
    ValueError raised while the refusal's message was written (``repr`` or ``str`` of it).
    Messages show such a number by its size."""
    async with make_engine() as engine:
        job = await engine.create_job("huge")
        await job.set_on_demand(True)
        await job.add_file("http://h/f", str(dest / "f"))
        with pytest.raises(bitsd.BitsError) as info:
            await call(job, dest)
        assert info.value.hresult == code
        assert "digits" not in str(info.value)
