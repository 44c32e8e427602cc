"""Issue 6's job options through the daemon give what the in-process engine gives: ranges,
checksums, validation, remote prefixes, custom headers, HTTP method, maximum download size,
security flags, proxies, credentials, TLS files, transfer policy, bandwidth limit, snapshot.

Each ``backend`` test runs twice: on ``bitsd.aio.Engine`` in this process and on
``bitsd.aio.connect()`` to a real daemon process, with the same body, so the same results,
exception classes and HRESULTs are pinned for both.
"""

from __future__ import annotations

import errno
import hashlib
import uuid
from collections.abc import Awaitable
from pathlib import Path

import pytest

from bitsd import (
    LENGTH_TO_EOF,
    SIZE_UNKNOWN,
    BitsError,
    ErrorContext,
    InvalidArgumentError,
    InvalidStateError,
    JobState,
    JobType,
    NotSupportedError,
    Priority,
    ReadOnlyPropertyError,
    codes,
)
from bitsd._enums import AuthScheme, AuthTarget, CostStates, ProxyUsage, SecurityFlags
from bitsd._records import ReplyProgress
from tests.client.conftest import AnyJob, Backend
from tests.client.test_roundtrip import body, raised, unique_path
from tests.servers.faulty import FaultServer

pytestmark = pytest.mark.e2e  # every test here talks to a real daemon process

DONE = (JobState.TRANSFERRED, JobState.ERROR)


async def finish(job: AnyJob) -> JobState:
    """Resume and wait for TRANSFERRED or ERROR."""
    await job.resume()
    return await job.wait(DONE, timeout=15)


async def codes_of(calls: list[Awaitable[object]]) -> list[tuple[type[BaseException], int]]:
    return [await raised(call) for call in calls]


# -- files and content ---------------------------------------------------------------------


async def test_ranges_make_the_concatenated_file(
    backend: Backend, server: FaultServer, dest: Path
) -> None:
    """add_file_with_ranges: 100-199, 900-999, 400-499 and a LENGTH_TO_EOF range make the
    local file in the order given, each range asked for with its own Range header;
    get_file_ranges answers by index and by FileInfo, [] for a whole file."""
    data = body(2000, seed=3)
    path, whole_path = unique_path("ranges"), unique_path("whole")
    server.add(path, data)
    server.add(whole_path, data)
    job = await backend.create_job("ranges")
    ranges = [(100, 100), (900, 100), (400, 100), (1990, LENGTH_TO_EOF)]
    await job.add_file_with_ranges(server.url(path), str(dest / "r"), iter(ranges))
    await job.add_file(server.url(whole_path), str(dest / "whole"))
    [ranged, whole] = await job.files()
    assert await job.get_file_ranges(0) == ranges
    assert await job.get_file_ranges(ranged) == ranges
    assert await job.get_file_ranges(whole) == []
    assert await finish(job) is JobState.TRANSFERRED
    assert await job.complete() == codes.S_OK
    assert (dest / "r").read_bytes() == data[100:200] + data[900:1000] + data[400:500] + data[1990:]
    assert (dest / "whole").read_bytes() == data
    assert [r.range for r in server.requests_for(path)] == [
        "bytes=100-199",
        "bytes=900-999",
        "bytes=400-499",
        "bytes=1990-1999",  # the size is known by then
    ]


async def test_bad_ranges_and_file_indexes_raise_the_engine_codes(
    backend: Backend, dest: Path
) -> None:
    """Every validation error of AddFileWithRanges, and an unknown file for the file getters,
    raise the same class and HRESULT; nothing is added."""
    job = await backend.create_job("bad ranges")
    url, local = "http://127.0.0.1:9/x", str(dest / "x")
    assert await codes_of(
        [
            job.add_file_with_ranges(url, local, []),
            job.add_file_with_ranges(url, local, [(0, 10), (5, 10)]),
            job.add_file_with_ranges(url, local, [(10, 5), (10, 1)]),
            job.add_file_with_ranges(url, local, [(LENGTH_TO_EOF, 1)]),
            job.add_file_with_ranges(url, local, [(0, 0)]),
            job.add_file_with_ranges(url, local, [(-1, 5)]),
            job.add_file_with_ranges(url, local, [(i * 10, 5) for i in range(501)]),
            job.add_file_with_ranges(url, local, [("a", 1)]),  # type: ignore[list-item]
            job.add_file_with_ranges("file:///etc/hostname", local, [(0, 1)]),
            job.get_file_ranges(0),
            job.get_validation_state(-1),
            job.set_validation_state(3, True),
        ]
    ) == [
        (InvalidArgumentError, codes.E_INVALIDARG),
        (BitsError, codes.BG_E_OVERLAPPING_RANGES),
        (BitsError, codes.BG_E_OVERLAPPING_RANGES),
        (BitsError, codes.BG_E_INVALID_RANGE),
        (InvalidArgumentError, codes.E_INVALIDARG),
        (InvalidArgumentError, codes.E_INVALIDARG),
        (BitsError, codes.BG_E_TOO_MANY_RANGES_IN_FILE),
        (InvalidArgumentError, codes.E_INVALIDARG),
        (InvalidArgumentError, codes.E_INVALIDARG),
        (InvalidArgumentError, codes.E_INVALIDARG),
        (InvalidArgumentError, codes.E_INVALIDARG),
        (InvalidArgumentError, codes.E_INVALIDARG),
    ]
    assert await job.files() == []
    await job.set_dynamic_content(True)
    assert await raised(job.add_file_with_ranges(url, local, [(0, 1)])) == (
        BitsError,
        codes.BG_E_UNSUPPORTED_JOB_CONFIGURATION,
    )
    await job.cancel()


async def test_sha256_is_checked_before_transferred(
    backend: Backend, server: FaultServer, dest: Path
) -> None:
    """add_file(sha256=...): the right sum transfers; a wrong one ends in ERROR with
    BG_E_VALIDATION_FAILED in LOCAL_FILE and no bytes kept; a malformed one is E_INVALIDARG."""
    data = body(40_000, seed=4)
    path = unique_path("sum")
    server.add(path, data)
    good = await backend.create_job("good sum")
    await good.add_file(
        server.url(path), str(dest / "good"), sha256=hashlib.sha256(data).hexdigest().upper()
    )
    bad = await backend.create_job("bad sum")
    await bad.add_file(server.url(path), str(dest / "bad"), sha256="0" * 64)
    assert await finish(good) is JobState.TRANSFERRED
    assert await finish(bad) is JobState.ERROR
    error = await bad.get_error()
    assert (error.code, error.context) == (codes.BG_E_VALIDATION_FAILED, ErrorContext.LOCAL_FILE)
    assert (await bad.get_progress()).bytes_transferred == 0
    assert await raised(bad.add_file(server.url(path), str(dest / "x"), sha256="not hex")) == (
        InvalidArgumentError,
        codes.E_INVALIDARG,
    )
    assert await good.complete() == codes.S_OK
    assert (dest / "good").read_bytes() == data
    await bad.cancel()


async def test_validation_false_fails_the_job_and_resume_downloads_again(
    backend: Backend, server: FaultServer, dest: Path
) -> None:
    """set_validation_state: E_PENDING before the file is done; False puts the job in ERROR
    with BG_E_VALIDATION_FAILED and progress 0, and Resume fetches the file again; True is
    read back by get_validation_state (by index and by FileInfo)."""
    data = body(10_000, seed=6)
    path = unique_path("valid")
    server.add(path, data)
    job = await backend.create_job("validate")
    await job.add_file(server.url(path), str(dest / "v"))
    assert await raised(job.set_validation_state(0, True)) == (BitsError, codes.E_PENDING)
    assert await finish(job) is JobState.TRANSFERRED
    [file] = await job.files()
    assert await job.get_validation_state(file) is False
    await job.set_validation_state(file, False)
    assert await job.get_state() is JobState.ERROR
    error = await job.get_error()
    assert (error.code, error.context) == (codes.BG_E_VALIDATION_FAILED, ErrorContext.LOCAL_FILE)
    assert (await job.get_progress()).bytes_transferred == 0
    assert await finish(job) is JobState.TRANSFERRED
    await job.set_validation_state(0, True)
    assert await job.get_validation_state(0) is True
    assert await job.complete() == codes.S_OK
    assert len(server.requests_for(path)) == 2
    assert (dest / "v").read_bytes() == data


async def test_replace_remote_prefix(backend: Backend, server: FaultServer, dest: Path) -> None:
    """replace_remote_prefix: S_FALSE when nothing matches (case-sensitively), S_OK when a
    name is rewritten; the job then downloads from the new place. Empty prefixes are
    E_INVALIDARG."""
    base = unique_path("prefix")
    server.add(f"{base}/new/a", b"moved")
    job = await backend.create_job("prefix")
    await job.add_file(server.url(f"{base}/old/a"), str(dest / "a"))
    old, new = server.url(f"{base}/old/"), server.url(f"{base}/new/")
    assert await job.replace_remote_prefix(old.upper(), new) == codes.S_FALSE
    assert await job.replace_remote_prefix(old, new) == codes.S_OK
    assert (await job.files())[0].remote_name == server.url(f"{base}/new/a")
    assert await raised(job.replace_remote_prefix("", new)) == (
        InvalidArgumentError,
        codes.E_INVALIDARG,
    )
    assert await finish(job) is JobState.TRANSFERRED
    await job.complete()
    assert (dest / "a").read_bytes() == b"moved"


async def test_maximum_download_size(backend: Backend, server: FaultServer, dest: Path) -> None:
    """The maximum download size round-trips, refuses 0 and sizes over 2**63 - 1 (which the
    store cannot hold: they raised OverflowError, a 500 through the daemon) with
    BG_E_MAX_DOWNLOAD_SIZE_INVALID_VALUE, fails a bigger job with
    BG_E_MAX_DOWNLOAD_SIZE_LIMIT_REACHED and is read-only after Resume."""
    path = unique_path("max")
    server.add(path, body(5000))
    job = await backend.create_job("max size")
    assert await job.get_maximum_download_size() is None
    for size in (0, 2**63, 2**64 - 1):
        assert await raised(job.set_maximum_download_size(size)) == (
            BitsError,
            codes.BG_E_MAX_DOWNLOAD_SIZE_INVALID_VALUE,
        )
    await job.set_maximum_download_size(2**63 - 1)
    assert await job.get_maximum_download_size() == 2**63 - 1
    await job.set_maximum_download_size(1000)
    assert await job.get_maximum_download_size() == 1000
    await job.add_file(server.url(path), str(dest / "m"))
    assert await finish(job) is JobState.ERROR
    assert (await job.get_error()).code == codes.BG_E_MAX_DOWNLOAD_SIZE_LIMIT_REACHED
    assert await raised(job.set_maximum_download_size(None)) == (
        ReadOnlyPropertyError,
        codes.BG_E_READ_ONLY_PROPERTY_AFTER_RESUME,
    )
    await job.cancel()


# -- HTTP ------------------------------------------------------------------------------------


async def test_custom_headers_reach_the_server_and_can_be_made_write_only(
    backend: Backend, server: FaultServer, dest: Path
) -> None:
    """Custom headers round-trip, bad ones raise the engine's codes, they reach the server;
    once write-only, get_custom_headers raises E_ACCESSDENIED and the snapshot hides them."""
    path = unique_path("headers")
    server.add(path, b"hello")
    job = await backend.create_job("headers")
    assert await job.get_custom_headers() is None
    headers = "X-Token: abc123\r\nX-Other: two words\r\n"
    await job.set_custom_headers(headers)
    assert await job.get_custom_headers() == headers
    assert await codes_of(
        [
            job.set_custom_headers("X-A: 1"),
            job.set_custom_headers("X-A: 1\r\nX-B: 2\nInjected: yes\r\n"),
            job.set_custom_headers("no colon\r\n"),
            job.set_custom_headers("X: " + "a" * 16_380 + "\r\n"),
        ]
    ) == [(InvalidArgumentError, codes.E_INVALIDARG)] * 3 + [
        (InvalidArgumentError, codes.BG_E_STRING_TOO_LONG)
    ]
    await job.add_file(server.url(path), str(dest / "h"))
    assert await finish(job) is JobState.TRANSFERRED
    request = server.requests_for(path)[0]
    assert (request.headers["x-token"], request.headers["x-other"]) == ("abc123", "two words")
    await job.make_custom_headers_write_only()
    assert await raised(job.get_custom_headers()) == (BitsError, codes.E_ACCESSDENIED)
    snapshot = await job.snapshot()
    assert (snapshot.custom_headers, snapshot.custom_headers_write_only) == (None, True)
    await job.set_custom_headers("X-New: 1\r\n")  # still writable
    assert await raised(job.get_custom_headers()) == (BitsError, codes.E_ACCESSDENIED)
    await job.complete()


async def test_custom_http_method_rules(backend: Backend, server: FaultServer, dest: Path) -> None:
    """A custom HTTP method forces FOREGROUND, refuses another priority and dynamic content
    with BG_E_NOT_SUPPORTED_WITH_CUSTOM_HTTP_METHOD, is sent as is, and is read-only after
    Resume; "GET" and None mean the default."""
    path = unique_path("method")
    server.add(path, b"x")
    job = await backend.create_job("method")
    await job.set_http_method("GET")
    assert await job.get_http_method() is None
    assert await raised(job.set_http_method("BAD METHOD")) == (
        InvalidArgumentError,
        codes.E_INVALIDARG,
    )
    await job.set_http_method("REPORT")
    assert (await job.get_http_method(), await job.get_priority()) == (
        "REPORT",
        Priority.FOREGROUND,
    )
    assert (
        await codes_of([job.set_priority(Priority.LOW), job.set_dynamic_content(True)])
        == [(BitsError, codes.BG_E_NOT_SUPPORTED_WITH_CUSTOM_HTTP_METHOD)] * 2
    )
    assert await job.get_priority() is Priority.FOREGROUND
    await job.add_file(server.url(path), str(dest / "m"))
    await finish(job)
    assert server.requests_for(path)[0].method == "REPORT"
    assert await raised(job.set_http_method(None)) == (
        ReadOnlyPropertyError,
        codes.BG_E_READ_ONLY_PROPERTY_AFTER_RESUME,
    )
    await job.cancel()


async def test_security_flags(backend: Backend) -> None:
    """Security flags round-trip as SecurityFlags; a redirect policy value BITS does not
    have, a negative value and CRL checking are E_NOTIMPL."""
    job = await backend.create_job("flags")
    assert await job.get_security_flags() == SecurityFlags(0)
    flags = SecurityFlags.IGNORE_UNKNOWN_CA | SecurityFlags.REDIRECT_POLICY_DISALLOW
    await job.set_security_flags(flags)
    assert await job.get_security_flags() == flags
    assert isinstance(await job.get_security_flags(), SecurityFlags)
    assert (
        await codes_of(
            [
                job.set_security_flags(0x300),
                job.set_security_flags(SecurityFlags.ENABLE_CRL_CHECK),
                job.set_security_flags(-1),
            ]
        )
        == [(NotSupportedError, codes.E_NOTIMPL)] * 3
    )
    assert await job.get_security_flags() == flags
    await job.cancel()


async def test_proxy_settings_and_their_errors(
    backend: Backend, server: FaultServer, dest: Path
) -> None:
    """Proxy settings round-trip; lists with a usage that takes none, OVERRIDE without a list,
    an unknown usage and a list over 32 KB raise the engine's codes; a list bitsd cannot
    read fails the job at run time with BG_E_INVALID_PROXY_INFO."""
    job = await backend.create_job("proxy")
    assert await job.get_proxy_settings() == (ProxyUsage.PRECONFIG, None, None)
    await job.set_proxy_settings(ProxyUsage.OVERRIDE, "http=127.0.0.1:3128 proxy:8080", "<local>")
    assert await job.get_proxy_settings() == (
        ProxyUsage.OVERRIDE,
        "http=127.0.0.1:3128 proxy:8080",
        "<local>",
    )
    await job.set_proxy_settings(ProxyUsage.NO_PROXY)
    assert await job.get_proxy_settings() == (ProxyUsage.NO_PROXY, None, None)
    assert await codes_of(
        [
            job.set_proxy_settings(ProxyUsage.NO_PROXY, "host:1"),
            job.set_proxy_settings(ProxyUsage.PRECONFIG, None, "*.example"),
            job.set_proxy_settings(ProxyUsage.OVERRIDE),
            job.set_proxy_settings(9),  # type: ignore[arg-type]
            job.set_proxy_settings(ProxyUsage.OVERRIDE, "h" * 32_769),
            job.set_proxy_settings(ProxyUsage.OVERRIDE, "h:1", "b" * 32_769),
        ]
    ) == [
        (InvalidArgumentError, codes.E_INVALIDARG),
        (InvalidArgumentError, codes.E_INVALIDARG),
        (InvalidArgumentError, codes.E_INVALIDARG),
        (NotSupportedError, codes.E_NOTIMPL),
        (BitsError, codes.BG_E_PROXY_LIST_TOO_LARGE),
        (BitsError, codes.BG_E_PROXY_BYPASS_LIST_TOO_LARGE),
    ]
    assert await job.get_proxy_settings() == (ProxyUsage.NO_PROXY, None, None)
    path = unique_path("proxied")
    server.add(path, b"x")
    await job.set_proxy_settings(ProxyUsage.OVERRIDE, "http=")
    await job.add_file(server.url(path), str(dest / "p"))
    assert await finish(job) is JobState.ERROR
    assert (await job.get_error()).code == codes.BG_E_INVALID_PROXY_INFO
    assert server.requests_for(path) == []
    await job.cancel()


async def test_credentials_answer_a_challenge_and_are_never_shown(
    backend: Backend, server: FaultServer, dest: Path
) -> None:
    """Server credentials answer a Basic challenge; remove_credentials is S_OK then S_FALSE;
    bad targets, schemes and sizes raise the engine's codes; no getter or snapshot shows the
    password."""
    secret = f"pw-{uuid.uuid4().hex}"
    data = body(8000, seed=8)
    path = unique_path("secret")
    server.add(path, data)
    server.protect(path, ("ann", secret))
    job = await backend.create_job("credentials")
    await job.set_credentials(AuthTarget.SERVER, AuthScheme.BASIC, "ann", secret)
    await job.set_credentials(AuthTarget.PROXY, AuthScheme.DIGEST, "bob", "other")
    assert await codes_of(
        [
            job.set_credentials(9, AuthScheme.BASIC, "a", "b"),  # type: ignore[arg-type]
            job.set_credentials(AuthTarget.SERVER, 9, "a", "b"),  # type: ignore[arg-type]
            job.set_credentials(AuthTarget.SERVER, AuthScheme.PASSPORT, "a", "b"),
            job.set_credentials(AuthTarget.SERVER, AuthScheme.BASIC, "u" * 301, "b"),
            job.set_credentials(AuthTarget.SERVER, AuthScheme.BASIC, "a", "p" * 65_536),
            job.set_credentials(AuthTarget.SERVER, AuthScheme.BASIC, "a\r\nX: y", "b"),
        ]
    ) == [
        (BitsError, codes.BG_E_INVALID_AUTH_TARGET),
        (BitsError, codes.BG_E_INVALID_AUTH_SCHEME),
        (NotSupportedError, codes.E_NOTIMPL),
        (BitsError, codes.BG_E_USERNAME_TOO_LARGE),
        (BitsError, codes.BG_E_PASSWORD_TOO_LARGE),
        (InvalidArgumentError, codes.E_INVALIDARG),
    ]
    assert await job.remove_credentials(AuthTarget.PROXY, AuthScheme.DIGEST) == codes.S_OK
    assert await job.remove_credentials(AuthTarget.PROXY, AuthScheme.DIGEST) == codes.S_FALSE
    assert secret not in repr(await job.snapshot())
    await job.add_file(server.url(path), str(dest / "s"))
    assert await finish(job) is JobState.TRANSFERRED
    seen = server.requests_for(path)
    assert seen[0].status == 401
    assert seen[1].status in (200, 206)
    assert seen[1].headers["authorization"].startswith("Basic ")
    await job.complete()
    assert (dest / "s").read_bytes() == data


async def test_tls_files_round_trip_and_are_checked(backend: Backend, tmp_path: Path) -> None:
    """CA bundle and client certificate paths round-trip (the key None when it is inside the
    certificate file) and are removed with None / remove_client_certificate; a relative path
    is E_INVALIDARG, a missing file HRESULT_FROM_WIN32(ERROR_FILE_NOT_FOUND)."""
    pem = tmp_path / "ca.pem"
    pem.write_text("-----BEGIN CERTIFICATE-----\n")
    key = tmp_path / "key.pem"
    key.write_text("-----BEGIN PRIVATE KEY-----\n")
    job = await backend.create_job("tls")
    assert (await job.get_ca_bundle(), await job.get_client_certificate()) == (None, None)
    await job.set_ca_bundle(str(pem))
    await job.set_client_certificate(str(pem), str(key))
    assert await job.get_ca_bundle() == str(pem)
    assert await job.get_client_certificate() == (str(pem), str(key))
    await job.set_client_certificate(str(pem))
    assert await job.get_client_certificate() == (str(pem), None)
    missing = codes.hresult_from_errno(errno.ENOENT)
    assert (
        await codes_of(
            [
                job.set_ca_bundle("ca.pem"),
                job.set_ca_bundle(str(tmp_path / "none.pem")),
                job.set_client_certificate(str(tmp_path / "none.pem")),
                job.set_client_certificate(str(pem), str(tmp_path / "none.key")),
            ]
        )
        == [(InvalidArgumentError, codes.E_INVALIDARG)] + [(BitsError, missing)] * 3
    )
    await job.remove_client_certificate()
    await job.set_ca_bundle(None)
    assert (await job.get_ca_bundle(), await job.get_client_certificate()) == (None, None)
    await job.cancel()


# -- policies and the snapshot ---------------------------------------------------------------


async def test_transfer_policy_and_bandwidth_limit(backend: Backend) -> None:
    """The transfer policy round-trips as CostStates (TRANSFER_STANDARD by default) and the
    bandwidth limit as an int or None; values out of range are E_INVALIDARG (a bandwidth limit
    over 2**63 - 1 raised OverflowError, a 500 through the daemon)."""
    job = await backend.create_job("policy")
    assert await job.get_transfer_policy() == CostStates.TRANSFER_STANDARD
    assert await job.get_bandwidth_limit() is None
    await job.set_transfer_policy(CostStates.TRANSFER_NOT_ROAMING)
    await job.set_bandwidth_limit(250_000)
    assert await job.get_transfer_policy() == CostStates.TRANSFER_NOT_ROAMING
    assert isinstance(await job.get_transfer_policy(), CostStates)
    assert await job.get_bandwidth_limit() == 250_000
    assert (
        await codes_of(
            [
                job.set_transfer_policy(-1),
                job.set_transfer_policy(2**32),
                job.set_bandwidth_limit(0),
                job.set_bandwidth_limit(-5),
                job.set_bandwidth_limit(2**63),
            ]
        )
        == [(InvalidArgumentError, codes.E_INVALIDARG)] * 5
    )
    await job.set_bandwidth_limit(None)
    assert await job.get_bandwidth_limit() is None
    await job.cancel()


async def test_snapshot_agrees_with_the_getters(backend: Backend, tmp_path: Path) -> None:
    """snapshot() holds what each getter answers, properties of issue 6 included."""
    pem = tmp_path / "c.pem"
    pem.write_text("x")
    job = await backend.create_job("snapshot")
    await job.set_description("all of it")
    await job.set_maximum_download_size(12345)
    await job.set_custom_headers("X-A: 1\r\n")
    await job.set_http_method("PUT")
    await job.set_security_flags(SecurityFlags.IGNORE_CERT_CN_INVALID)
    await job.set_proxy_settings(ProxyUsage.OVERRIDE, "p:1", "<local>")
    await job.set_ca_bundle(str(pem))
    await job.set_client_certificate(str(pem))
    await job.set_transfer_policy(CostStates.TRANSFER_ALWAYS)
    await job.set_bandwidth_limit(10)
    s = await job.snapshot()
    assert (s.id, s.display_name, s.description, s.state, s.priority) == (
        job.id,
        "snapshot",
        "all of it",
        await job.get_state(),
        await job.get_priority(),
    )
    assert (s.progress, s.times, s.error) == (
        await job.get_progress(),
        await job.get_times(),
        None,
    )
    assert (
        s.maximum_download_size,
        s.custom_headers,
        s.custom_headers_write_only,
        s.http_method,
        s.security_flags,
        (ProxyUsage(s.proxy_usage), s.proxy_list, s.proxy_bypass),
        s.ca_bundle,
        s.client_certificate,
        s.transfer_policy,
        s.bandwidth_limit,
    ) == (
        await job.get_maximum_download_size(),
        await job.get_custom_headers(),
        False,
        await job.get_http_method(),
        await job.get_security_flags(),
        await job.get_proxy_settings(),
        await job.get_ca_bundle(),
        str(pem),
        await job.get_transfer_policy(),
        await job.get_bandwidth_limit(),
    )
    assert await job.cancel() == codes.S_OK
    ended = await job.snapshot()
    assert (ended.state, ended.bandwidth_limit) == (JobState.CANCELLED, 10)


async def test_reply_methods_of_upload_reply_and_other_jobs(backend: Backend, dest: Path) -> None:
    """The reply getters and setter: E_NOTIMPL for a download job; on an upload-reply job the
    name round-trips, the progress is unknown before the upload, the data is
    BG_E_INVALID_STATE until TRANSFERRED, also once the job is cancelled."""
    download = await backend.create_job("no reply")
    assert (
        await codes_of(
            [
                download.get_reply_file_name(),
                download.get_reply_progress(),
                download.get_reply_data(),
                download.set_reply_file_name(str(dest / "r")),
            ]
        )
        == [(NotSupportedError, codes.E_NOTIMPL)] * 4
    )
    await download.cancel()
    job = await backend.create_job("reply", JobType.UPLOAD_REPLY)
    assert await job.get_reply_file_name() is None
    assert await job.get_reply_progress() == ReplyProgress(SIZE_UNKNOWN, 0)
    await job.set_reply_file_name(str(dest / "reply.bin"))
    assert await job.get_reply_file_name() == str(dest / "reply.bin")
    assert await codes_of([job.set_reply_file_name("relative"), job.get_reply_data()]) == [
        (InvalidArgumentError, codes.E_INVALIDARG),
        (InvalidStateError, codes.BG_E_INVALID_STATE),
    ]
    assert await job.cancel() == codes.S_OK
    assert await job.get_reply_file_name() == str(dest / "reply.bin")
    assert await raised(job.get_reply_data()) == (InvalidStateError, codes.BG_E_INVALID_STATE)
