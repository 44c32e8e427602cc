"""One request of a job, sent through the job's network options: proxies, TLS, credentials and
the redirect policy.

Layers, outermost first (each in its own module, decided there, applied here):

    redirects (redirects.py)  follow or refuse each 3xx; credentials stay on the file's origin
      server auth (auth.py)   answer a 401 challenge once, with the strongest usable scheme
        proxy auth (auth.py)  answer a 407 (or a CONNECT refused with 407) once, Basic
          proxies (proxy.py)  the route: direct or through proxies, tried in list order
            TLS (tls.py)      the job's SSL context for https

Rules:
- aiohttp never follows a redirect itself (``allow_redirects=False``) and never reads the
  environment (the engine's session has ``trust_env=False``): those decisions are the job's.
- Every request carries the job's custom headers except ``Authorization`` once a redirect has
  left the file's origin, then the transport's own headers (Range, If-Range).
- A URL's userinfo is sent as Basic credentials (aiohttp's doing) unless the request carries
  an ``Authorization`` header, the job's own or the answer to a challenge: that one is sent,
  the userinfo is not (bitsd's own client never sends userinfo; aiohttp refuses the two
  together).
- The state of one fetch (the Digest middleware that learned a server's nonce) lives in a
  :class:`contextvars.ContextVar` set by :func:`conversation` around the fetch, so requests of
  the same file reuse it and concurrent fetches never share it.
- The file's URL is parsed here, once: one yarl refuses, or that no request can be sent to
  (``_urls.http_url_problem``; a remote name stored by an older bitsd), is aiohttp's
  ``InvalidUrlClientError``. A redirect to such a URL is not followed: its 3xx answer is the
  error, as for a Location that is no URL at all.
- Errors of the options themselves (a bad proxy list, an unreadable certificate, a refused
  redirect, a scheme bitsd cannot answer, no proxy reachable) are classified here, through
  :func:`classify.from_option_error`; what aiohttp raises goes back to the transport, which
  classifies it.
"""

from __future__ import annotations

import base64
import contextlib
import contextvars
import dataclasses
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any

import aiohttp
from yarl import URL

from bitsd._enums import AuthScheme, AuthTarget
from bitsd._transfer import auth, classify, proxy, redirects
from bitsd._transfer.base import FileRequest, HttpOptions, RedirectSink, Sink
from bitsd._transfer.tls import TlsContexts, TlsSettings, TlsSetupError
from bitsd._urls import http_url_problem

__all__ = ["Exchanger", "conversation", "request_timeouts"]

# Option errors classified by classify.from_option_error.
_OPTION_ERRORS = (
    TlsSetupError,
    proxy.InvalidProxyInfoError,
    proxy.ProxyUnreachableError,
    redirects.RedirectRefusedError,
    auth.AuthUnavailableError,
)
# Round trips of an NTLM or Negotiate handshake before giving up (NTLM needs two).
_MAX_SPNEGO_LEGS = 3


@dataclasses.dataclass
class _Conversation:
    """What the requests of one fetch share."""

    sink: Sink | None
    digest: dict[tuple[str, str, int | None], Any] = dataclasses.field(default_factory=dict)


_CONVERSATION: contextvars.ContextVar[_Conversation | None] = contextvars.ContextVar(
    "bitsd_http_conversation", default=None
)

# A request body (upload packets, bitsd._transfer.upload): a factory called for every request
# sent, so a request repeated for a challenge or a 307/308 sends it again. It is set while one
# :meth:`Exchanger.open` sends, with the method it belongs to: a redirect that changes the method
# (303) drops it.
BodyFactory = Callable[[], Any]
_BODY: contextvars.ContextVar[tuple[str, BodyFactory] | None] = contextvars.ContextVar(
    "bitsd_http_body", default=None
)


@contextlib.contextmanager
def conversation(sink: Sink | None) -> Iterator[None]:
    """Scope the requests of one file's fetch: they share authentication state and report
    redirects to ``sink`` (None: an upload's packets, whose redirects are not reported)."""
    token = _CONVERSATION.set(_Conversation(sink))
    try:
        yield
    finally:
        _CONVERSATION.reset(token)


@dataclasses.dataclass
class _Sent:
    """The outcome of one request on one route."""

    response: aiohttp.ClientResponse | None
    candidate: proxy.Candidate
    proxy_refusal: aiohttp.ClientHttpProxyError | None = None


def request_timeouts(connect_timeout: float, read_timeout: float) -> aiohttp.ClientTimeout:
    """aiohttp's timeouts of one request: ``connect_timeout`` to connect, ``read_timeout`` for
    each read; no bound on the whole request (a large body takes as long as it takes)."""
    return aiohttp.ClientTimeout(
        total=None, connect=None, sock_connect=connect_timeout, sock_read=read_timeout
    )


class Exchanger:
    """Sends a job's requests through its network options.

    Args:
        session: the shared session (connection pool); owned by the caller.
        timeout: the timeouts of every request (:attr:`timeout`, which may change: the next
            request uses the new ones).
        tls: the cache of SSL contexts (one per distinct TLS setting).
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        timeout: aiohttp.ClientTimeout,
        *,
        tls: TlsContexts | None = None,
    ) -> None:
        self._session = session
        self.timeout = timeout
        self._tls = tls or TlsContexts()

    @contextlib.asynccontextmanager
    async def open(
        self, request: FileRequest, headers: dict[str, str], *, body: BodyFactory | None = None
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """Send ``request``'s method to its URL with ``headers`` added to the job's, and yield
        the final answer (not a followed redirect, not an answered challenge).

        Args:
            body: makes the request's body (an aiohttp payload), called once per request sent.

        Raises:
            TransferError: an option of the job made the request impossible.
            aiohttp.ClientError, TimeoutError: as aiohttp raises them (the caller classifies).
        """
        state = _CONVERSATION.get() or _Conversation(None)
        async with contextlib.AsyncExitStack() as stack:
            token = _BODY.set(None if body is None else (request.options.method, body))
            try:
                resp = await self._follow(request, headers, state, stack)
            except _OPTION_ERRORS as exc:
                raise classify.from_option_error(exc, url=request.url) from exc
            finally:
                _BODY.reset(token)
            async with resp:
                yield resp

    async def _follow(
        self,
        request: FileRequest,
        extra: dict[str, str],
        state: _Conversation,
        stack: contextlib.AsyncExitStack,
    ) -> aiohttp.ClientResponse:
        """The redirect layer."""
        options = request.options
        flags = options.security_flags
        origin = _parsed(request.url)
        url, method, same_origin = origin, options.method, True
        chain: tuple[URL, ...] = (origin,)
        while True:
            headers = {"Accept-Encoding": "identity"}
            for name, value in options.headers:
                if same_origin or name.lower() != "authorization":
                    headers[name] = value
            headers.update(extra)
            resp = await self._authenticate(
                method, url, headers, options, state, stack, credentials=same_origin
            )
            location = resp.headers.get("Location")
            if resp.status not in redirects.REDIRECT_STATUSES or location is None:
                if len(chain) > 1 and redirects.RedirectPolicy.of(flags) is (
                    redirects.RedirectPolicy.ALLOW_REPORT
                ):
                    await _report(state, url)
                return resp
            try:
                target = url.join(URL(location)).with_fragment(None)
            except ValueError:
                return resp  # a redirect to nowhere: the 3xx error it is
            try:
                hop = redirects.follow(
                    flags,
                    status=resp.status,
                    method=method,
                    source=url,
                    target=target,
                    origin=origin,
                    chain=chain,
                )
            except redirects.RedirectRefusedError as exc:
                resp.release()
                if exc.reason is redirects.Refusal.DISALLOWED:
                    await _report(state, target)
                raise
            if hop is None or http_url_problem(hop.url) is not None:
                return resp  # not followed, or to a URL no request can be sent to
            resp.release()
            url, method, same_origin = hop.url, hop.method, hop.same_origin
            chain += (url,)

    async def _authenticate(
        self,
        method: str,
        url: URL,
        headers: dict[str, str],
        options: HttpOptions,
        state: _Conversation,
        stack: contextlib.AsyncExitStack,
        *,
        credentials: bool,
    ) -> aiohttp.ClientResponse:
        """The server and proxy authentication layers, over the proxy route of ``url``."""
        route = proxy.candidates(options.proxy_usage, options.proxy_list, options.proxy_bypass, url)
        ssl_context = (
            self._tls.context_for(TlsSettings.of(options)) if url.scheme == "https" else True
        )
        saved = options.credentials if credentials else ()
        middlewares: tuple[Any, ...] = ()
        digest = auth.find_credential(saved, AuthTarget.SERVER, AuthScheme.DIGEST)
        if digest is not None and auth.has_digest():
            key = (url.scheme, (url.host or "").lower(), url.port)
            if key not in state.digest:
                state.digest[key] = auth.digest_middleware(digest)
            # Ours runs inside Digest's: it frees each 401 before Digest asks again.
            middlewares = (state.digest[key], _free_challenges)
        send = _Sender(self._session, self.timeout, route, ssl_context, middlewares)
        proxy_answered = server_answered = False
        while True:
            sent = await send(method, url, headers)
            resp = sent.response
            try:
                if sent.proxy_refusal is not None or (
                    resp is not None and resp.status == 407 and sent.candidate.proxy is not None
                ):
                    if resp is not None:
                        values = resp.headers.getall("Proxy-Authenticate", [])
                    else:
                        assert sent.proxy_refusal is not None
                        refused = sent.proxy_refusal.headers
                        values = refused.getall("Proxy-Authenticate", []) if refused else []
                    answer = None
                    if not proxy_answered:
                        answer = _proxy_answer(values, saved, sent.candidate)
                    if answer is None:
                        if sent.proxy_refusal is not None:
                            raise sent.proxy_refusal
                        assert resp is not None
                        return resp
                    send.proxy_authorization = answer
                    proxy_answered = True
                    if resp is not None:
                        resp.release()
                    continue
                assert resp is not None
                if resp.status != 401 or server_answered or not saved:
                    return resp
                challenges = auth.parse_challenges(resp.headers.getall("WWW-Authenticate", []))
                schemes = [AuthScheme.NEGOTIATE, AuthScheme.NTLM, AuthScheme.BASIC]
                if not middlewares:
                    schemes.append(AuthScheme.DIGEST)
                picked = auth.choose(challenges, saved, AuthTarget.SERVER, schemes=schemes)
                if picked is None:
                    return resp
                credential, challenge = picked
                server_answered = True
                if credential.scheme is AuthScheme.DIGEST:
                    auth.digest_middleware(credential)  # raises: this aiohttp has none
                if credential.scheme is AuthScheme.BASIC:
                    resp.release()
                    headers = {
                        **headers,
                        "Authorization": auth.basic_header(credential.user, credential.password),
                    }
                    continue
            except BaseException:
                if resp is not None:
                    resp.release()
                raise
            resp.release()
            return await self._spnego(send, method, url, headers, credential, challenge, stack)

    async def _spnego(
        self,
        send: _Sender,
        method: str,
        url: URL,
        headers: dict[str, str],
        credential: auth.Credential,
        challenge: auth.Challenge,
        stack: contextlib.AsyncExitStack,
    ) -> aiohttp.ClientResponse:
        """An NTLM or Negotiate handshake. Its legs must share one connection, so they go
        through a session of one connection that lives as long as the exchange."""
        context = auth.spnego_client(credential, url.host or "")
        own = await stack.enter_async_context(
            aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=1),
                auto_decompress=False,
                trust_env=False,
            )
        )
        send = dataclasses.replace(send, session=own)
        token = _step(context, auth.token_of(challenge), credential)
        resp: aiohttp.ClientResponse | None = None
        for _ in range(_MAX_SPNEGO_LEGS):
            if token is None:
                break
            leg = {
                **headers,
                "Authorization": f"{challenge.name} {base64.b64encode(token).decode()}",
            }
            sent = await send(method, url, leg)
            if sent.proxy_refusal is not None:
                raise sent.proxy_refusal
            resp = sent.response
            assert resp is not None
            if resp.status != 401:
                return resp
            answer = next(
                (
                    c
                    for c in auth.parse_challenges(resp.headers.getall("WWW-Authenticate", []))
                    if c.scheme is credential.scheme
                ),
                None,
            )
            incoming = auth.token_of(answer) if answer is not None else None
            if incoming is None:
                return resp
            await resp.read()  # the next leg needs this connection back in the pool
            resp.release()
            token = _step(context, incoming, credential)
        if resp is None:
            sent = await send(method, url, headers)
            if sent.proxy_refusal is not None:
                raise sent.proxy_refusal
            assert sent.response is not None
            return sent.response
        return resp


@dataclasses.dataclass
class _Sender:
    """Sends one request over a proxy route: the candidates in order, the next one when a
    proxy cannot be connected to."""

    session: aiohttp.ClientSession
    timeout: aiohttp.ClientTimeout
    route: Sequence[proxy.Candidate]
    ssl: Any
    middlewares: tuple[Any, ...]
    proxy_authorization: str | None = dataclasses.field(default=None, repr=False)

    async def __call__(self, method: str, url: URL, headers: dict[str, str]) -> _Sent:
        if (url.raw_user is not None or url.raw_password is not None) and any(
            name.lower() == "authorization" for name in headers
        ):
            url = url.with_user(None)  # aiohttp refuses userinfo beside an Authorization
        unreachable: list[tuple[str, Exception]] = []
        for candidate in self.route:
            extra: dict[str, Any] = {}
            if self.middlewares:
                extra["middlewares"] = self.middlewares
            body = _BODY.get()
            if body is not None and body[0] == method:
                extra["data"] = body[1]()
            sent_headers = headers
            if candidate.proxy is not None:
                extra["proxy"] = candidate.proxy
                if self.proxy_authorization is not None:
                    answer = {"Proxy-Authorization": self.proxy_authorization}
                    if url.scheme == "https":
                        extra["proxy_headers"] = answer  # sent with CONNECT
                    else:
                        sent_headers = {**headers, **answer}
            try:
                resp = await self.session.request(
                    method,
                    url,
                    headers=sent_headers,
                    ssl=self.ssl,
                    timeout=self.timeout,
                    auto_decompress=False,
                    allow_redirects=False,
                    **extra,
                )
            except aiohttp.ClientHttpProxyError as exc:
                if exc.status == 407:
                    return _Sent(None, candidate, exc)
                raise
            except (aiohttp.ClientProxyConnectionError, aiohttp.ClientConnectorDNSError) as exc:
                if candidate.proxy is None:
                    raise
                unreachable.append((candidate.proxy, exc))
                continue
            return _Sent(resp, candidate)
        raise proxy.ProxyUnreachableError(unreachable)


def _parsed(url: str) -> URL:
    """The file's URL as yarl parses it, if a request can be sent to it.

    Raises:
        aiohttp.InvalidUrlClientError: what aiohttp raises for a URL it cannot parse, also
            for one it could only fail on later (``http_url_problem``): a remote name that
            ``add_file`` refuses now, stored by an older bitsd.
    """
    try:
        parsed = URL(url)
    except ValueError as exc:  # UnicodeError among them
        raise aiohttp.InvalidUrlClientError(url, str(exc)) from exc
    problem = http_url_problem(parsed)
    if problem is not None:
        raise aiohttp.InvalidUrlClientError(url, problem)
    return parsed


def _proxy_answer(
    values: Sequence[str], credentials: Sequence[tuple[int, int, str, str]], via: proxy.Candidate
) -> str | None:
    """The Proxy-Authorization for a proxy's challenge, or None if there is nothing to answer.

    Raises:
        AuthUnavailableError: the proxy asks only for schemes bitsd does not answer proxies with,
            and the job has credentials for one of them.
    """
    challenges = auth.parse_challenges(values)
    if any(c.scheme is AuthScheme.BASIC for c in challenges):
        credential = auth.find_credential(credentials, AuthTarget.PROXY, AuthScheme.BASIC)
        if credential is not None:
            return auth.basic_header(credential.user, credential.password)
        if via.user is not None:
            return auth.basic_header(via.user, via.password or "")
        return None
    if auth.choose(challenges, credentials, AuthTarget.PROXY) is not None:
        raise auth.AuthUnavailableError(
            "the proxy asks for "
            + ", ".join(c.name for c in challenges)
            + "; bitsd answers proxies with Basic credentials only",
            status=407,
        )
    return None


def _step(
    context: auth.SpnegoContext, token: bytes | None, credential: auth.Credential
) -> bytes | None:
    """One step of an NTLM or Negotiate handshake; a failure ends it as the 401 it is."""
    try:
        return context.step(token)
    except Exception as exc:  # pyspnego's errors; their text may name the user: not shown
        raise auth.AuthUnavailableError(
            f"the {credential.scheme.name} handshake failed ({type(exc).__name__})"
        ) from None


async def _free_challenges(
    request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
) -> aiohttp.ClientResponse:
    """Read a 401's (small) body so that its connection goes back to the pool: the Digest
    middleware asks again without releasing the answer it replaces."""
    response = await handler(request)
    if response.status == 401:
        await response.read()
        response.release()
    return response


async def _report(state: _Conversation, url: URL) -> None:
    sink: object = state.sink
    if isinstance(sink, RedirectSink):
        await sink.redirected(str(url))
