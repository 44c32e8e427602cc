"""Network options of issue 6 against real loopback servers: TLS trust and the BG_SSL_IGNORE_*
flags, client certificates, the redirect policies, server credentials (Basic, Digest) and
proxies (a real forward proxy with CONNECT, proxy credentials, bypass lists, the environment).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Literal

import aiohttp
import pytest

import bitsd
from bitsd import ErrorContext, FakeClock, JobState, codes
from bitsd._enums import AuthScheme, AuthTarget, ProxyUsage, SecurityFlags
from bitsd._transfer.base import FileRequest, HttpOptions
from bitsd._transfer.http import HttpTransport
from bitsd._transfer.proxy import InvalidProxyInfoError, candidates
from bitsd.aio import Engine, Job
from tests.engine.conftest import EngineFactory, body, settle
from tests.servers.faulty import Fault, FaultServer
from tests.servers.proxy import ForwardProxy
from tests.servers.tls import Pki

Configure = Callable[[Job], Awaitable[None]]
WIN32_REDIRECT_FAILED = codes.HRESULT_FROM_WIN32(12156)
WIN32_CLIENT_AUTH_CERT_NEEDED = codes.HRESULT_FROM_WIN32(12044)


@pytest.fixture(autouse=True)
def no_environment_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts without proxy variables (PRECONFIG reads them); tests that need them
    set their own."""
    for name in ("http_proxy", "https_proxy", "no_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    """A private CA; its certificate is in ``pki.ca_file``."""
    return Pki(tmp_path / "pki")


@contextlib.asynccontextmanager
async def https(context: object) -> AsyncIterator[FaultServer]:
    """An HTTPS fault server with the given server context."""
    import ssl

    assert isinstance(context, ssl.SSLContext)
    async with FaultServer(ssl=context) as server:
        yield server


async def download(
    engine: Engine, url: str, local: Path, configure: Configure | None = None
) -> Job:
    """Run a one-file job to TRANSFERRED or ERROR (what ``configure`` set applies)."""
    job = await engine.create_job(local.name)
    await job.set_no_progress_timeout(0)  # any transient error ends the job at once
    if configure is not None:
        await configure(job)
    await job.add_file(url, str(local))
    await job.resume()
    await settle(job)
    return job


async def assert_error(job: Job, code: int, *, context: ErrorContext | None = None) -> str:
    """The job is in ERROR with ``code``; returns the error's description."""
    assert await job.get_state() is JobState.ERROR
    err = await job.get_error()
    assert hex(err.code) == hex(code), err.description
    if context is not None:
        assert err.context is context
    return err.description


async def assert_done(job: Job, local: Path, data: bytes) -> None:
    """The job transferred ``data`` to ``local``."""
    state = await job.get_state()
    if state is not JobState.TRANSFERRED:
        err = await job.get_error()
        pytest.fail(f"{state}: {codes.name_of(err.code)} {err.description}")
    await job.complete()
    assert await asyncio.to_thread(local.read_bytes) == data


def flags(value: int) -> Configure:
    async def configure(job: Job) -> None:
        await job.set_security_flags(value)

    return configure


def ca_bundle(path: str, value: int = 0) -> Configure:
    async def configure(job: Job) -> None:
        await job.set_ca_bundle(path)
        await job.set_security_flags(value)

    return configure


# -- TLS ----------------------------------------------------------------------------------

# The TLS options hold on both clients of HTTPS: bitsd's own (the default) and aiohttp (what
# jobs with proxies or credentials use).
both_clients = pytest.mark.parametrize("transport", ["raw", "aiohttp"], indirect=True)


@both_clients
async def test_private_ca_is_untrusted_by_default_and_trusted_with_its_bundle(
    pki: Pki, make_engine: EngineFactory, dest: Path
) -> None:
    """A server whose certificate comes from a private CA fails with BG_E_TRUST_FAILURE (fatal,
    GENERAL_TRANSPORT) under the system trust store; the job's CA bundle makes it trusted."""
    data = body(20_000)
    async with https(pki.server_context("127.0.0.1")) as server, make_engine() as engine:
        server.add("/f", data)
        job = await download(engine, server.url("/f"), dest / "untrusted")
        description = await assert_error(
            job, codes.BG_E_TRUST_FAILURE, context=ErrorContext.GENERAL_TRANSPORT
        )
        assert "certificate" in description
        assert server.requests == []
        job = await download(engine, server.url("/f"), dest / "trusted", ca_bundle(pki.ca_file))
        await assert_done(job, dest / "trusted", data)


@both_clients
async def test_ignore_unknown_ca_accepts_any_issuer_but_still_checks_the_name(
    pki: Pki, make_engine: EngineFactory, dest: Path
) -> None:
    """IGNORE_UNKNOWN_CA accepts a certificate from an unknown CA; the host name is still
    checked (a certificate for another host fails) unless IGNORE_CERT_CN_INVALID is set too."""
    data = body(5_000)
    ignore_ca = SecurityFlags.IGNORE_UNKNOWN_CA
    async with (
        https(pki.server_context("127.0.0.1")) as good,
        https(pki.server_context("other.example")) as misnamed,
        make_engine() as engine,
    ):
        good.add("/f", data)
        misnamed.add("/f", data)
        job = await download(engine, good.url("/f"), dest / "a", flags(ignore_ca))
        await assert_done(job, dest / "a", data)
        job = await download(engine, misnamed.url("/f"), dest / "b", flags(ignore_ca))
        assert "127.0.0.1" in await assert_error(job, codes.BG_E_TRUST_FAILURE)
        assert misnamed.requests == []
        both = ignore_ca | SecurityFlags.IGNORE_CERT_CN_INVALID
        job = await download(engine, misnamed.url("/f"), dest / "c", flags(both))
        await assert_done(job, dest / "c", data)


@both_clients
async def test_certificate_for_another_host_needs_ignore_cn_invalid(
    pki: Pki, make_engine: EngineFactory, dest: Path
) -> None:
    """A trusted certificate for another host name fails with BG_E_TRUST_FAILURE;
    IGNORE_CERT_CN_INVALID accepts it."""
    data = body(5_000)
    async with https(pki.server_context("other.example")) as server, make_engine() as engine:
        server.add("/f", data)
        job = await download(engine, server.url("/f"), dest / "a", ca_bundle(pki.ca_file))
        await assert_error(job, codes.BG_E_TRUST_FAILURE)
        lenient = ca_bundle(pki.ca_file, SecurityFlags.IGNORE_CERT_CN_INVALID)
        job = await download(engine, server.url("/f"), dest / "b", lenient)
        await assert_done(job, dest / "b", data)


@both_clients
async def test_expired_certificate_needs_ignore_date_invalid(
    pki: Pki, make_engine: EngineFactory, dest: Path
) -> None:
    """An expired certificate fails with BG_E_TRUST_FAILURE; IGNORE_CERT_DATE_INVALID accepts
    it (OpenSSL's X509_V_FLAG_NO_CHECK_TIME), alone or with IGNORE_UNKNOWN_CA (bitsd's own
    checks)."""
    data = body(5_000)
    async with https(pki.expired_server_context("127.0.0.1")) as server, make_engine() as engine:
        server.add("/f", data)
        job = await download(engine, server.url("/f"), dest / "a", ca_bundle(pki.ca_file))
        assert "expired" in await assert_error(job, codes.BG_E_TRUST_FAILURE)
        job = await download(
            engine, server.url("/f"), dest / "b", flags(SecurityFlags.IGNORE_UNKNOWN_CA)
        )
        assert "expired" in await assert_error(job, codes.BG_E_TRUST_FAILURE)
        lenient = ca_bundle(pki.ca_file, SecurityFlags.IGNORE_CERT_DATE_INVALID)
        job = await download(engine, server.url("/f"), dest / "c", lenient)
        await assert_done(job, dest / "c", data)
        both = SecurityFlags.IGNORE_CERT_DATE_INVALID | SecurityFlags.IGNORE_UNKNOWN_CA
        job = await download(engine, server.url("/f"), dest / "d", flags(both))
        await assert_done(job, dest / "d", data)


@both_clients
async def test_wrong_usage_needs_ignore_wrong_usage_and_still_checks_the_chain(
    pki: Pki, tmp_path: Path, make_engine: EngineFactory, dest: Path
) -> None:
    """A certificate meant for TLS clients only fails on a server; IGNORE_CERT_WRONG_USAGE
    accepts it when its chain is trusted (the CA bundle), and not when it is not (another
    CA's bundle)."""
    data = body(5_000)
    stranger = Pki(tmp_path / "stranger")
    async with (
        https(pki.wrong_usage_server_context("127.0.0.1")) as server,
        make_engine() as engine,
    ):
        server.add("/f", data)
        job = await download(engine, server.url("/f"), dest / "a", ca_bundle(pki.ca_file))
        await assert_error(job, codes.BG_E_TRUST_FAILURE)
        wrong_usage = SecurityFlags.IGNORE_CERT_WRONG_USAGE
        job = await download(
            engine, server.url("/f"), dest / "b", ca_bundle(pki.ca_file, wrong_usage)
        )
        await assert_done(job, dest / "b", data)
        job = await download(
            engine, server.url("/f"), dest / "c", ca_bundle(stranger.ca_file, wrong_usage)
        )
        assert "chain" in await assert_error(job, codes.BG_E_TRUST_FAILURE)
        job = await download(engine, server.url("/f"), dest / "d", flags(wrong_usage))
        await assert_error(job, codes.BG_E_TRUST_FAILURE)


@both_clients
async def test_client_certificate(pki: Pki, make_engine: EngineFactory, dest: Path) -> None:
    """A server that requires a client certificate refuses a job without one and serves a
    job with ``set_client_certificate`` (certificate and key in separate PEM files).

    Under TLS 1.3 the refusal comes after the client's handshake is over; this asyncio server
    then just drops the connection (no alert reaches the client), so the job sees a closed
    connection, which is transient (made final here by a zero no-progress timeout)."""
    data = body(5_000)
    certificate, key = pki.client_files()
    context = pki.server_context("127.0.0.1", client_ca=pki)
    async with https(context) as server, make_engine() as engine:
        server.add("/f", data)
        job = await download(engine, server.url("/f"), dest / "a", ca_bundle(pki.ca_file))
        assert await job.get_state() is JobState.ERROR
        assert (await job.get_error()).code in (
            WIN32_CLIENT_AUTH_CERT_NEEDED,
            codes.BG_E_CONNECTION_CLOSED,
            codes.BG_E_RECEIVE_FAILURE,
        )
        assert server.requests == []

        async def with_certificate(job: Job) -> None:
            await job.set_ca_bundle(pki.ca_file)
            await job.set_client_certificate(certificate, key)

        job = await download(engine, server.url("/f"), dest / "b", with_certificate)
        await assert_done(job, dest / "b", data)


# -- redirects ----------------------------------------------------------------------------


async def test_allow_silent_follows_and_keeps_the_remote_name(
    server: FaultServer, make_engine: EngineFactory, dest: Path
) -> None:
    """The default policy follows a 302 (and a 307 after it) without touching the remote
    name; the Range header goes along."""
    data = body(30_000)
    server.add("/new", data)
    server.set_fault("/old", Fault(status=302, location="/mid"))
    server.set_fault("/mid", Fault(status=307, location=server.url("/new")))
    async with make_engine() as engine:
        job = await download(engine, server.url("/old"), dest / "f")
        assert (await job.files())[0].remote_name == server.url("/old")
        await assert_done(job, dest / "f", data)
    assert server.requests_for("/new")[0].range == "bytes=0-"


class MemorySink:
    """A sink in memory that also hears about redirects (the RedirectSink extension)."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.redirects: list[str] = []

    @property
    def offset(self) -> int:
        return len(self.data)

    @property
    def local_name(self) -> str:
        return "memory"

    @property
    def fd(self) -> int:  # pragma: no cover - the HTTP transport never uses it
        raise NotImplementedError

    async def begin(self, *, bytes_total: int | None, validator: str | None, restart: bool) -> None:
        if restart:
            self.data.clear()

    async def write(self, data: bytes) -> None:
        self.data += data

    async def advance(self, count: int) -> None:  # pragma: no cover
        raise NotImplementedError

    async def redirected(self, url: str) -> None:
        self.redirects.append(url)


async def transport_fetch(url: str, security_flags: int) -> tuple[MemorySink, Exception | None]:
    """Fetch ``url`` with the HTTP transport alone, into a :class:`MemorySink`."""
    sink = MemorySink()
    async with aiohttp.ClientSession(auto_decompress=False) as session:
        transport = HttpTransport(
            session, FakeClock(), chunk_size=65536, connect_timeout=5, read_timeout=5
        )
        request = FileRequest(
            url, 0, None, None, options=HttpOptions(security_flags=security_flags)
        )
        try:
            await transport.fetch(request, sink)
        except bitsd.TransferError as exc:
            return sink, exc
    return sink, None


async def test_allow_report_tells_the_sink_the_final_url(server: FaultServer) -> None:
    """ALLOW_REPORT follows the redirects and reports the final URL to a sink that has
    ``redirected`` (transport level: the engine's sink does not have the hook yet);
    ALLOW_SILENT reports nothing."""
    server.add("/final", b"reported")
    server.set_fault("/start", Fault(status=301, location="/hop"))
    server.set_fault("/hop", Fault(status=308, location="/final"))
    sink, error = await transport_fetch(
        server.url("/start"), SecurityFlags.REDIRECT_POLICY_ALLOW_REPORT
    )
    assert error is None
    assert (bytes(sink.data), sink.redirects) == (b"reported", [server.url("/final")])
    sink, error = await transport_fetch(server.url("/start"), 0)
    assert (bytes(sink.data), sink.redirects, error) == (b"reported", [], None)


async def test_allow_report_rewrites_the_remote_name(
    server: FaultServer, make_engine: EngineFactory, dest: Path
) -> None:
    """ALLOW_REPORT: after the job, the file's remote name is the final URL."""
    server.add("/final", b"x")
    server.set_fault("/start", Fault(status=302, location="/final"))
    async with make_engine() as engine:
        job = await download(
            engine,
            server.url("/start"),
            dest / "f",
            flags(SecurityFlags.REDIRECT_POLICY_ALLOW_REPORT),
        )
        assert await job.get_state() is JobState.TRANSFERRED
        assert (await job.files())[0].remote_name == server.url("/final")


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_disallow_fails_with_the_redirect_status_and_url(
    server: FaultServer, make_engine: EngineFactory, dest: Path, status: int
) -> None:
    """DISALLOW: a redirect is a fatal error HRESULT_FROM_WIN32(status) in REMOTE_FILE whose
    message holds the URL redirected to; the target is never requested; the sink hears the
    redirect URL (the remote name BITS records)."""
    server.add("/there", b"x")
    server.set_fault("/here", Fault(status=status, location="/there?v=1"))
    async with make_engine() as engine:
        job = await download(
            engine, server.url("/here"), dest / "f", flags(SecurityFlags.REDIRECT_POLICY_DISALLOW)
        )
        description = await assert_error(
            job, codes.HRESULT_FROM_WIN32(status), context=ErrorContext.REMOTE_FILE
        )
    assert server.url("/there?v=1") in description
    assert server.requests_for("/there") == []
    sink, error = await transport_fetch(server.url("/here"), SecurityFlags.REDIRECT_POLICY_DISALLOW)
    assert isinstance(error, bitsd.TransferError)
    assert sink.redirects == [server.url("/there?v=1")]


@pytest.mark.parametrize(
    ("host", "userinfo"),
    [
        ("example..test", ""),  # getaddrinfo's IDNA codec refuses an empty label
        ("127.0.0.1", "%E2%82%AC:pw@"),  # aiohttp sends userinfo as Latin-1 Basic credentials
        ("127.0.0.1", "us%3Aer:pw@"),  # and refuses a colon in the user name
    ],
    ids=["empty-label", "userinfo-not-latin-1", "colon-in-user"],
)
async def test_redirect_to_a_url_no_request_can_be_sent_to_is_the_redirect_error(
    server: FaultServer, make_engine: EngineFactory, dest: Path, host: str, userinfo: str
) -> None:
    """A redirect to a URL that add_file would refuse (a Location the server chose) is not
    followed: the job fails with the redirect's own status (BG_E_HTTP_ERROR_302), fatal, as
    for a Location that is no URL at all; not with an internal error (E_FAIL)."""
    server.add("/f", b"data")
    target = server.url("/f").replace("://127.0.0.1", f"://{userinfo}{host}")
    server.set_fault("/go", Fault(status=302, location=target))
    async with make_engine() as engine:
        job = await download(engine, server.url("/go"), dest / "f")
        await assert_error(job, codes.http_error(302), context=ErrorContext.REMOTE_FILE)
    assert server.requests_for("/f") == []


async def test_redirect_loops_and_chains_too_long_are_fatal(
    server: FaultServer, make_engine: EngineFactory, dest: Path
) -> None:
    """A redirect loop and an 11th redirect fail with HRESULT_FROM_WIN32(
    ERROR_WINHTTP_REDIRECT_FAILED), fatal; 10 redirects are followed."""
    server.set_fault("/a", Fault(status=302, location="/b"))
    server.set_fault("/b", Fault(status=302, location="/a"))
    server.add("/end", b"end")
    for i in range(11):
        server.set_fault(f"/r{i}", Fault(status=302, location=f"/r{i + 1}"))
    server.set_fault("/r11", Fault(status=302, location="/end"))
    async with make_engine() as engine:
        job = await download(engine, server.url("/a"), dest / "loop")
        assert "loop" in await assert_error(job, WIN32_REDIRECT_FAILED)
        job = await download(engine, server.url("/r0"), dest / "long")
        assert "more than 10" in await assert_error(job, WIN32_REDIRECT_FAILED)
        job = await download(engine, server.url("/r2"), dest / "ten")
        await assert_done(job, dest / "ten", b"end")


async def test_https_to_http_redirect_needs_its_flag(
    server: FaultServer, pki: Pki, make_engine: EngineFactory, dest: Path
) -> None:
    """A redirect from HTTPS to HTTP is refused (HRESULT_FROM_WIN32(
    ERROR_WINHTTP_REDIRECT_FAILED), fatal) unless ALLOW_HTTPS_TO_HTTP is set."""
    server.add("/plain", b"plain")
    async with https(pki.server_context("127.0.0.1")) as secure, make_engine() as engine:
        secure.set_fault("/go", Fault(status=302, location=server.url("/plain")))
        job = await download(engine, secure.url("/go"), dest / "a", ca_bundle(pki.ca_file))
        assert "HTTPS to HTTP" in await assert_error(job, WIN32_REDIRECT_FAILED)
        allowed = ca_bundle(pki.ca_file, SecurityFlags.REDIRECT_POLICY_ALLOW_HTTPS_TO_HTTP)
        job = await download(engine, secure.url("/go"), dest / "b", allowed)
        await assert_done(job, dest / "b", b"plain")
    assert len(server.requests_for("/plain")) == 1


# -- server credentials -------------------------------------------------------------------


def credentials(
    scheme: AuthScheme, user: str, password: str, target: AuthTarget = AuthTarget.SERVER
) -> Configure:
    async def configure(job: Job) -> None:
        await job.set_credentials(target, scheme, user, password)

    return configure


@pytest.mark.parametrize(
    ("scheme", "name"), [(AuthScheme.BASIC, "basic"), (AuthScheme.DIGEST, "digest")]
)
async def test_credentials_answer_a_challenge(
    server: FaultServer,
    make_engine: EngineFactory,
    dest: Path,
    scheme: AuthScheme,
    name: Literal["basic", "digest"],
) -> None:
    """Basic and Digest: the first request carries no credentials; the 401 challenge is
    answered and the file arrives. Without credentials, or with a wrong password, the job
    fails with BG_E_HTTP_ERROR_401 (fatal), and the password is in no message."""
    data = body(40_000)
    server.add("/secret", data)
    server.protect("/secret", ("ann", "s3cret-pw"), schemes=(name,))
    async with make_engine() as engine:
        job = await download(
            engine, server.url("/secret"), dest / "ok", credentials(scheme, "ann", "s3cret-pw")
        )
        await assert_done(job, dest / "ok", data)
        seen = server.requests_for("/secret")
        assert "authorization" not in seen[0].headers
        assert seen[0].status == 401
        assert seen[1].headers["authorization"].lower().startswith(name)
        job = await download(engine, server.url("/secret"), dest / "none")
        await assert_error(job, codes.http_error(401), context=ErrorContext.REMOTE_FILE)
        job = await download(
            engine, server.url("/secret"), dest / "wrong", credentials(scheme, "ann", "wrong-pw")
        )
        assert "wrong-pw" not in await assert_error(job, codes.http_error(401))
    assert [r.status for r in server.requests_for("/secret")][-2:] == [401, 401]


@both_clients
async def test_a_urls_userinfo_is_sent_as_basic_credentials(
    server: FaultServer, make_engine: EngineFactory, dest: Path
) -> None:
    """``http://u:p@host/f`` with no job credentials: the userinfo is sent as Basic
    credentials, with zero copy on or off (bitsd's own client leaves such URLs to aiohttp,
    which sends them), and the file transfers instead of failing with 401."""
    server.add("/userinfo", b"behind basic")
    server.protect("/userinfo", ("u", "p"))
    url = server.url("/userinfo").replace("://", "://u:p@")
    async with make_engine() as engine:
        job = await download(engine, url, dest / "userinfo")
        await assert_done(job, dest / "userinfo", b"behind basic")
    assert [r.headers.get("authorization") for r in server.requests_for("/userinfo")] == [
        "Basic dTpw"  # u:p
    ]


@both_clients
async def test_an_authorization_header_is_sent_instead_of_the_urls_userinfo(
    server: FaultServer, make_engine: EngineFactory, dest: Path
) -> None:
    """A URL with userinfo (``http://u:p@host/f``, which aiohttp sends as Basic credentials)
    and an Authorization header, the job's custom one or the answer to a Basic challenge:
    the header is sent and the userinfo is not, instead of the internal error (E_FAIL) of
    aiohttp refusing the two together."""
    server.add("/custom", b"custom")
    server.add("/challenged", b"challenged")
    server.protect("/challenged", ("v", "w"))

    def with_userinfo(path: str) -> str:
        return server.url(path).replace("://", "://u:p@")

    async def bearer(job: Job) -> None:
        await job.set_custom_headers("Authorization: Bearer t\r\n")

    async with make_engine() as engine:
        job = await download(engine, with_userinfo("/custom"), dest / "custom", bearer)
        await assert_done(job, dest / "custom", b"custom")
        basic_vw = credentials(AuthScheme.BASIC, "v", "w")
        job = await download(engine, with_userinfo("/challenged"), dest / "challenged", basic_vw)
        await assert_done(job, dest / "challenged", b"challenged")
    assert [r.headers.get("authorization") for r in server.requests_for("/custom")] == ["Bearer t"]
    assert [r.headers.get("authorization") for r in server.requests_for("/challenged")] == [
        "Basic dTpw",  # u:p, from the URL: refused with a challenge
        "Basic djp3",  # v:w, the job's answer to it
    ]


async def test_strongest_offered_scheme_is_used(
    server: FaultServer, make_engine: EngineFactory, dest: Path
) -> None:
    """A server offering Digest and Basic to a job with both gets Digest; a job with Basic
    only answers the Basic challenge."""
    server.add("/s", b"both")
    server.protect("/s", ("u", "p"), schemes=("digest", "basic"))

    async def both(job: Job) -> None:
        await job.set_credentials(AuthTarget.SERVER, AuthScheme.BASIC, "u", "p")
        await job.set_credentials(AuthTarget.SERVER, AuthScheme.DIGEST, "u", "p")

    async with make_engine() as engine:
        job = await download(engine, server.url("/s"), dest / "a", both)
        await assert_done(job, dest / "a", b"both")
        assert server.requests_for("/s")[1].headers["authorization"].startswith("Digest ")
        job = await download(
            engine, server.url("/s"), dest / "b", credentials(AuthScheme.BASIC, "u", "p")
        )
        await assert_done(job, dest / "b", b"both")
        assert server.requests_for("/s")[-1].headers["authorization"].startswith("Basic ")


async def test_credentials_are_not_sent_to_another_host_after_a_redirect(
    make_engine: EngineFactory, dest: Path
) -> None:
    """After a redirect to another host, neither the job's credentials nor its custom
    Authorization header are sent: the other host's challenge is not answered (401, fatal)."""
    async with FaultServer() as first, FaultServer() as second:
        second.add("/secret", b"x")
        second.protect("/secret", ("ann", "pw"))
        elsewhere = second.url("/secret").replace("127.0.0.1", "localhost")
        first.set_fault("/start", Fault(status=302, location=elsewhere))

        async def configure(job: Job) -> None:
            await job.set_credentials(AuthTarget.SERVER, AuthScheme.BASIC, "ann", "pw")
            await job.set_custom_headers("Authorization: Bearer token-1\r\nX-Other: kept\r\n")

        async with make_engine() as engine:
            job = await download(engine, first.url("/start"), dest / "f", configure)
            await assert_error(job, codes.http_error(401))
        assert first.requests_for("/start")[0].headers["authorization"] == "Bearer token-1"
        seen = second.requests_for("/secret")
        assert [r.status for r in seen] == [401]
        assert "authorization" not in seen[0].headers
        assert seen[0].headers["x-other"] == "kept"


async def test_ntlm_without_pyspnego_says_what_to_install(
    server: FaultServer,
    make_engine: EngineFactory,
    dest: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A server asking for NTLM, a job with NTLM credentials and no pyspnego: ERROR
    BG_E_HTTP_ERROR_401 whose message says to install bitsd[ntlm]."""
    monkeypatch.setitem(sys.modules, "spnego", None)  # import spnego raises ImportError
    server.add("/n", b"x")
    server.protect("/n", ("u", "p"), schemes=("ntlm",))
    async with make_engine() as engine:
        job = await download(
            engine, server.url("/n"), dest / "n", credentials(AuthScheme.NTLM, "u", "p")
        )
        assert "bitsd[ntlm]" in await assert_error(job, codes.http_error(401))


async def test_ntlm_handshake_with_pyspnego(
    server: FaultServer,
    make_engine: EngineFactory,
    dest: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """NTLM through pyspnego: the three legs of the handshake share one connection and the
    file arrives; a wrong password ends with BG_E_HTTP_ERROR_401 (fatal)."""
    pytest.importorskip("spnego")
    users = tmp_path / "ntlm-users"
    users.write_text(":ann:ntlm-pw\n")  # any domain
    monkeypatch.setenv("NTLM_USER_FILE", str(users))
    server.add("/n", b"ntlm data")
    server.protect("/n", ("ann", "ntlm-pw"), schemes=("ntlm",))
    async with make_engine() as engine:
        job = await download(
            engine, server.url("/n"), dest / "n", credentials(AuthScheme.NTLM, "ann", "ntlm-pw")
        )
        await assert_done(job, dest / "n", b"ntlm data")
        job = await download(
            engine, server.url("/n"), dest / "w", credentials(AuthScheme.NTLM, "ann", "nope")
        )
        await assert_error(job, codes.http_error(401))
    statuses = [r.status for r in server.requests_for("/n")]
    assert statuses[:3] == [401, 401, 206]


# -- proxies ------------------------------------------------------------------------------


def proxies(
    usage: ProxyUsage, proxy_list: str | None = None, bypass: str | None = None
) -> Configure:
    async def configure(job: Job) -> None:
        await job.set_proxy_settings(usage, proxy_list, bypass)

    return configure


async def test_override_proxy_for_http_and_https_through_connect(
    server: FaultServer, pki: Pki, make_engine: EngineFactory, dest: Path
) -> None:
    """OVERRIDE sends an http:// request to the proxy in absolute form, and an https:// one
    through a CONNECT tunnel (TLS still verified end to end)."""
    data = body(50_000)
    server.add("/p", data)
    async with (
        ForwardProxy() as proxy,
        https(pki.server_context("127.0.0.1")) as secure,
        make_engine() as engine,
    ):
        secure.add("/s", data)
        job = await download(
            engine, server.url("/p"), dest / "p", proxies(ProxyUsage.OVERRIDE, proxy.address)
        )
        await assert_done(job, dest / "p", data)
        assert [(r.method, r.target) for r in proxy.requests] == [("GET", server.url("/p"))]

        async def through_proxy(job: Job) -> None:
            await job.set_ca_bundle(pki.ca_file)
            await job.set_proxy_settings(ProxyUsage.OVERRIDE, f"https={proxy.address}")

        job = await download(engine, secure.url("/s"), dest / "s", through_proxy)
        await assert_done(job, dest / "s", data)
        assert [(r.method, r.target) for r in proxy.requests[1:]] == [
            ("CONNECT", secure.base_url.removeprefix("https://"))
        ]
        job = await download(
            engine, secure.url("/s"), dest / "t", proxies(ProxyUsage.OVERRIDE, proxy.address)
        )
        await assert_error(job, codes.BG_E_TRUST_FAILURE)


async def test_proxies_are_tried_in_list_order(
    server: FaultServer, make_engine: EngineFactory, dest: Path
) -> None:
    """A proxy that cannot be connected to moves on to the next entry; when none can be,
    the error is a transient BG_E_CONNECT_FAILURE naming the proxies."""
    server.add("/p", b"via second")
    async with ForwardProxy() as proxy, make_engine() as engine:
        dead = "127.0.0.1:1"
        job = await download(
            engine,
            server.url("/p"),
            dest / "a",
            proxies(ProxyUsage.OVERRIDE, f"http=http://{dead} http={proxy.address} unused:1"),
        )
        await assert_done(job, dest / "a", b"via second")
        job = await download(
            engine, server.url("/p"), dest / "b", proxies(ProxyUsage.OVERRIDE, dead)
        )
        assert dead in await assert_error(job, codes.BG_E_CONNECT_FAILURE)
    assert len(proxy.requests) == 1


@pytest.mark.parametrize(
    ("bypass", "host"),
    [("127.0.0.1", "127.0.0.1"), ("<local>", "localhost"), ("*.0.0.1", "127.0.0.1")],
)
async def test_bypass_list_connects_directly(
    server: FaultServer, make_engine: EngineFactory, dest: Path, bypass: str, host: str
) -> None:
    """A host in the bypass list (an address, ``<local>`` for a name without a dot, a ``*``
    wildcard) is reached directly; the proxy sees nothing."""
    server.add("/d", b"direct")
    url = server.url("/d").replace("127.0.0.1", host)
    async with ForwardProxy() as proxy, make_engine() as engine:
        job = await download(
            engine, url, dest / "d", proxies(ProxyUsage.OVERRIDE, proxy.address, f"other {bypass}")
        )
        await assert_done(job, dest / "d", b"direct")
    assert proxy.requests == []


async def test_preconfig_uses_the_environment_and_no_proxy_ignores_it(
    server: FaultServer, make_engine: EngineFactory, dest: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PRECONFIG (the default) and AUTODETECT use ``http_proxy``; ``no_proxy`` excludes hosts;
    NO_PROXY connects directly whatever the environment says."""
    server.add("/e", b"env")
    async with ForwardProxy() as proxy, make_engine() as engine:
        for name in ("no_proxy", "NO_PROXY", "HTTP_PROXY", "REQUEST_METHOD"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("http_proxy", proxy.url)
        job = await download(engine, server.url("/e"), dest / "a")
        await assert_done(job, dest / "a", b"env")
        job = await download(engine, server.url("/e"), dest / "b", proxies(ProxyUsage.AUTODETECT))
        await assert_done(job, dest / "b", b"env")
        assert len(proxy.requests) == 2
        job = await download(engine, server.url("/e"), dest / "c", proxies(ProxyUsage.NO_PROXY))
        await assert_done(job, dest / "c", b"env")
        monkeypatch.setenv("no_proxy", "localhost,127.0.0.1")
        job = await download(engine, server.url("/e"), dest / "d")
        await assert_done(job, dest / "d", b"env")
        assert len(proxy.requests) == 2
        monkeypatch.delenv("no_proxy")
        monkeypatch.setenv("http_proxy", "socks5://127.0.0.1:1080")
        job = await download(engine, server.url("/e"), dest / "e")
        await assert_error(job, codes.E_INVALIDARG)
    assert len(server.requests_for("/e")) == 4


@pytest.mark.parametrize("host", ["proxy..example", "a" * 64], ids=["empty-label", "long-label"])
async def test_environment_proxy_whose_name_cannot_be_looked_up_is_invalid_arg(
    server: FaultServer,
    make_engine: EngineFactory,
    dest: Path,
    monkeypatch: pytest.MonkeyPatch,
    host: str,
) -> None:
    """An ``http_proxy`` whose host getaddrinfo cannot be asked about (its IDNA codec refuses
    an empty label or one over 63 characters) is a proxy URL bitsd cannot use: E_INVALIDARG
    in GENERAL_TRANSPORT, as for a socks5:// one, not an internal error (E_FAIL)."""
    server.add("/e", b"env")
    monkeypatch.setenv("http_proxy", f"http://{host}:3128")
    async with make_engine() as engine:
        job = await download(engine, server.url("/e"), dest / "e")
        await assert_error(job, codes.E_INVALIDARG, context=ErrorContext.GENERAL_TRANSPORT)
    assert server.requests_for("/e") == []


@pytest.mark.parametrize(
    ("proxy_list", "bypass"),
    [
        ("http=", None),
        ("host:99999", None),
        ("ftp://host:21", None),
        ("ok:8080", "bad/entry"),
        # A label getaddrinfo refuses: it was an internal error (UnicodeError from IDNA).
        pytest.param("a" * 64 + ":3128", None, id="long-label"),
    ],
)
async def test_invalid_proxy_lists_fail_at_run_time(
    server: FaultServer,
    make_engine: EngineFactory,
    dest: Path,
    proxy_list: str,
    bypass: str | None,
) -> None:
    """A proxy or bypass list bitsd cannot read is accepted by SetProxySettings and fails
    the job with BG_E_INVALID_PROXY_INFO (fatal) when used, as in BITS."""
    server.add("/x", b"x")
    async with make_engine() as engine:
        job = await download(
            engine, server.url("/x"), dest / "x", proxies(ProxyUsage.OVERRIDE, proxy_list, bypass)
        )
        await assert_error(job, codes.BG_E_INVALID_PROXY_INFO)
    assert server.requests == []


async def test_proxy_credentials_answer_407(
    server: FaultServer, pki: Pki, make_engine: EngineFactory, dest: Path
) -> None:
    """A proxy that wants Basic credentials gets the job's PROXY credentials after its 407,
    for a plain request and for CONNECT; without them the job fails with
    BG_E_HTTP_ERROR_407 (fatal)."""
    server.add("/p", b"proxied")
    async with (
        ForwardProxy(auth=("pat", "proxy-pw")) as proxy,
        https(pki.server_context("127.0.0.1")) as secure,
        make_engine() as engine,
    ):
        secure.add("/s", b"tunnelled")

        async def configure(job: Job) -> None:
            await job.set_ca_bundle(pki.ca_file)
            await job.set_proxy_settings(ProxyUsage.OVERRIDE, proxy.address)
            await job.set_credentials(AuthTarget.PROXY, AuthScheme.BASIC, "pat", "proxy-pw")

        job = await download(engine, server.url("/p"), dest / "p", configure)
        await assert_done(job, dest / "p", b"proxied")
        job = await download(engine, secure.url("/s"), dest / "s", configure)
        await assert_done(job, dest / "s", b"tunnelled")
        assert [(r.method, r.status) for r in proxy.requests] == [
            ("GET", 407),
            ("GET", 0),
            ("CONNECT", 407),
            ("CONNECT", 200),
        ]
        assert "proxy-authorization" not in proxy.requests[0].headers
        job = await download(
            engine, server.url("/p"), dest / "q", proxies(ProxyUsage.OVERRIDE, proxy.address)
        )
        await assert_error(job, codes.http_error(407))

        async def tunnel_only(job: Job) -> None:
            await job.set_ca_bundle(pki.ca_file)
            await job.set_proxy_settings(ProxyUsage.OVERRIDE, proxy.address)

        job = await download(engine, secure.url("/s"), dest / "t", tunnel_only)
        await assert_error(job, codes.http_error(407))


# -- proxy list rules (pure) --------------------------------------------------------------


@pytest.mark.parametrize(
    ("proxy_list", "url", "expected"),
    [
        ("p1:8080", "http://h/", ["http://p1:8080"]),
        ("p1", "https://h/", ["http://p1:80"]),
        ("http=p1:1 https=p2:2", "https://h/", ["http://p2:2"]),
        ("http=p1:1 p0:3", "https://h/", ["http://p0:3"]),
        ("http=p1:1;http=http://p2:2 p0:3", "http://h/", ["http://p1:1", "http://p2:2"]),
        ("ftp=f:21 socks=s:1080", "http://h/", [None]),
        ("[::1]:3128", "http://h/", ["http://[::1]:3128"]),
    ],
)
def test_proxy_list_syntax(proxy_list: str, url: str, expected: list[str | None]) -> None:
    """BITS proxy lists: ``[scheme=][http://]host[:port]`` entries; own-scheme entries before
    bare ones; port 80 by default; entries for other schemes ignored."""
    from yarl import URL

    route = candidates(ProxyUsage.OVERRIDE, proxy_list, None, URL(url))
    assert [c.proxy for c in route] == expected


@pytest.mark.parametrize(
    ("bypass", "host", "bypassed"),
    [
        ("<local>", "intranet", True),
        ("<local>", "intranet.corp", False),
        ("*.corp.example", "a.corp.example", True),
        ("*.corp.example", "corp.example", False),
        ("10.*", "10.1.2.3", True),
        ("HOST.Example", "host.example", True),
        ("host.example:8080", "host.example", False),
    ],
)
def test_bypass_list_syntax(bypass: str, host: str, bypassed: bool) -> None:
    """Bypass entries: hosts or addresses, ``*`` wildcards, ``<local>``, optional port; case
    does not matter."""
    from yarl import URL

    route = candidates(ProxyUsage.OVERRIDE, "proxy:3128", bypass, URL(f"http://{host}/x"))
    assert (route[0].proxy is None) == bypassed


def test_environment_proxy_user_information_is_kept_apart(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A PRECONFIG proxy URL with user information gives a proxy URL without it; the user
    name and password are kept for the proxy's challenge."""
    from yarl import URL

    monkeypatch.setenv("https_proxy", "http://me:p%40ss@proxy.example:3128")
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    (route,) = candidates(ProxyUsage.PRECONFIG, None, None, URL("https://h/"))
    assert (route.proxy, route.user, route.password) == ("http://proxy.example:3128", "me", "p@ss")
    assert "p@ss" not in repr(route)
    with pytest.raises(InvalidProxyInfoError):
        candidates(ProxyUsage.OVERRIDE, "bad!host:1", None, URL("http://h/"))
    assert os.environ["https_proxy"]


# -- classification of the options' failures (pure) ---------------------------------------


def test_option_failures_are_classified_once() -> None:
    """classify maps each network-option failure to its BITS code, context and kind."""
    import ssl

    from bitsd._transfer import classify
    from bitsd._transfer.auth import AuthUnavailableError
    from bitsd._transfer.proxy import ProxyUnreachableError
    from bitsd._transfer.redirects import RedirectRefusedError, Refusal
    from bitsd._transfer.tls import TlsSetupError

    url = "https://h/f"

    def triple(exc: Exception) -> tuple[str, ErrorContext, bool]:
        if isinstance(exc, aiohttp.ClientError | ssl.SSLError):
            err = classify.from_network_exception(exc, url=url)
        else:
            err = classify.from_option_error(exc, url=url)  # type: ignore[arg-type]
        return hex(err.hresult), err.context, err.transient

    general, remote = ErrorContext.GENERAL_TRANSPORT, ErrorContext.REMOTE_FILE
    assert triple(InvalidProxyInfoError("x")) == (
        hex(codes.BG_E_INVALID_PROXY_INFO),
        general,
        False,
    )
    assert triple(InvalidProxyInfoError("x", from_environment=True)) == (
        hex(codes.E_INVALIDARG),
        general,
        True,
    )
    assert triple(ProxyUnreachableError([("http://p:1", OSError("refused"))])) == (
        hex(codes.BG_E_CONNECT_FAILURE),
        general,
        True,
    )
    assert triple(RedirectRefusedError(Refusal.DISALLOWED, 307, "http://x/")) == (
        hex(codes.HRESULT_FROM_WIN32(307)),
        remote,
        False,
    )
    assert triple(RedirectRefusedError(Refusal.LOOP, 302, "http://x/")) == (
        hex(WIN32_REDIRECT_FAILED),
        remote,
        False,
    )
    assert triple(AuthUnavailableError("no", status=407)) == (
        hex(codes.http_error(407)),
        remote,
        False,
    )
    assert triple(TlsSetupError("CA bundle", "/nope", "gone", errno=2))[1:] == (general, False)
    alert = ssl.SSLError(1, "[SSL: TLSV13_ALERT_CERTIFICATE_REQUIRED] alert")
    alert.reason = "TLSV13_ALERT_CERTIFICATE_REQUIRED"
    assert triple(alert) == (hex(WIN32_CLIENT_AUTH_CERT_NEEDED), general, False)
