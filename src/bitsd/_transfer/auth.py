"""Credentials for servers and proxies (SetCredentials), given only in answer to a challenge.

Rules (bits-inventory §5.9; docs/network.md has the user's version):
- A challenge is a 401 with ``WWW-Authenticate`` (the SERVER target) or a 407 with
  ``Proxy-Authenticate`` (the PROXY target). Every header of that name is read, and one header
  may hold several challenges.
- Of the schemes offered that the job has credentials for, the strongest is used: Negotiate,
  NTLM, Digest, Basic. Each request answers a challenge once: a second 401 or 407 is the HTTP
  error it is (fatal), as is a challenge for which the job has no credentials.
- Digest is aiohttp's own ``DigestAuthMiddleware`` (aiohttp >= 3.12): attached to the
  requests of a file whose job has SERVER Digest credentials, it answers a Digest challenge
  that comes first in the response and stays on the origin it answered for.
- NTLM and Negotiate use ``pyspnego`` (the optional extra ``bitsd[ntlm]``); without it a job
  whose only usable scheme is one of them fails with :class:`AuthUnavailableError` (fatal).
- Proxies are answered with Basic only (aiohttp sends Proxy-Authorization, also on CONNECT).
- Credentials are never logged and never put in a message: the objects here keep them out of
  their ``repr``.
"""

from __future__ import annotations

import base64
import dataclasses
import importlib
import re
from collections.abc import Iterable, Sequence
from typing import Any, Final, Protocol

import aiohttp

from bitsd._enums import AuthScheme, AuthTarget

__all__ = [
    "AuthUnavailableError",
    "Challenge",
    "Credential",
    "SpnegoContext",
    "basic_header",
    "choose",
    "digest_middleware",
    "find_credential",
    "has_digest",
    "parse_challenges",
    "spnego_client",
    "token_of",
]

# Strongest first: the order in which offered schemes are preferred.
_PREFERENCE: Final = (AuthScheme.NEGOTIATE, AuthScheme.NTLM, AuthScheme.DIGEST, AuthScheme.BASIC)
_NAMES: Final = {
    "basic": AuthScheme.BASIC,
    "digest": AuthScheme.DIGEST,
    "ntlm": AuthScheme.NTLM,
    "negotiate": AuthScheme.NEGOTIATE,
}
_TCHARS: Final = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
# One comma-separated element of an authenticate header: a scheme, maybe followed by a token68
# or the first auth-param; or a further auth-param of the challenge before it.
_ELEMENT: Final = re.compile(rf"^\s*({_TCHARS})(?:\s+(.*?))?\s*$", re.DOTALL)
_PARAM: Final = re.compile(rf"^\s*{_TCHARS}\s*=")


class AuthUnavailableError(Exception):
    """A challenge the job has credentials for but bitsd cannot answer on this system.

    Attributes:
        status: the challenge's HTTP status: 401 (server) or 407 (proxy).
    """

    def __init__(self, message: str, *, status: int = 401) -> None:
        super().__init__(message)
        self.status = status


@dataclasses.dataclass(frozen=True, slots=True)
class Challenge:
    """One challenge of a 401 or 407 answer.

    Attributes:
        scheme: the scheme, or None for a scheme bitsd does not know.
        name: the scheme as the server wrote it.
        data: what follows the scheme (a token68 or auth-params), stripped.
    """

    scheme: AuthScheme | None
    name: str
    data: str


@dataclasses.dataclass(frozen=True, slots=True)
class Credential:
    """A job's credentials for one (target, scheme) pair."""

    target: AuthTarget
    scheme: AuthScheme
    user: str = dataclasses.field(repr=False)
    password: str = dataclasses.field(repr=False)


def parse_challenges(values: Iterable[str]) -> list[Challenge]:
    """The challenges of the ``WWW-Authenticate`` or ``Proxy-Authenticate`` header values."""
    found: list[Challenge] = []
    for value in values:
        for element in _split_commas(value):
            if not element.strip():
                continue
            match = _ELEMENT.match(element)
            if match is None or _PARAM.match(element):
                # An auth-param of the challenge before it.
                if found:
                    last = found[-1]
                    data = f"{last.data}, {element.strip()}" if last.data else element.strip()
                    found[-1] = dataclasses.replace(last, data=data)
                continue
            name, data = match.group(1), match.group(2) or ""
            found.append(Challenge(_NAMES.get(name.lower()), name, data))
    return found


def _split_commas(value: str) -> list[str]:
    """Split at commas outside quoted strings."""
    parts: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for ch in value:
        if escaped:
            escaped = False
        elif ch == "\\" and quoted:
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif ch == "," and not quoted:
            parts.append("".join(current))
            current = []
            continue
        current.append(ch)
    parts.append("".join(current))
    return parts


def find_credential(
    credentials: Sequence[tuple[int, int, str, str]], target: AuthTarget, scheme: AuthScheme
) -> Credential | None:
    """The job's credentials for (target, scheme), if any."""
    for t, s, user, password in credentials:
        if t == target and s == scheme:
            return Credential(target, scheme, user, password)
    return None


def choose(
    challenges: Sequence[Challenge],
    credentials: Sequence[tuple[int, int, str, str]],
    target: AuthTarget,
    *,
    schemes: Iterable[AuthScheme] = _PREFERENCE,
) -> tuple[Credential, Challenge] | None:
    """The strongest offered scheme among ``schemes`` that the job has credentials for."""
    allowed = set(schemes)
    for scheme in _PREFERENCE:
        if scheme not in allowed:
            continue
        challenge = next((c for c in challenges if c.scheme is scheme), None)
        if challenge is None:
            continue
        credential = find_credential(credentials, target, scheme)
        if credential is not None:
            return credential, challenge
    return None


def basic_header(user: str, password: str) -> str:
    """The ``Authorization`` / ``Proxy-Authorization`` value of Basic (RFC 7617, UTF-8)."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


def has_digest() -> bool:
    """Whether this aiohttp has its Digest middleware (3.12 and later)."""
    return hasattr(aiohttp, "DigestAuthMiddleware")


def digest_middleware(credential: Credential) -> Any:
    """aiohttp's Digest middleware for ``credential``.

    Raises:
        AuthUnavailableError: this aiohttp has no DigestAuthMiddleware (it came in 3.12).
    """
    middleware = getattr(aiohttp, "DigestAuthMiddleware", None)
    if middleware is None:
        raise AuthUnavailableError(
            f"Digest authentication needs aiohttp 3.12 or later (this is {aiohttp.__version__})"
        )
    return middleware(credential.user, credential.password, preemptive=True)


class SpnegoContext(Protocol):
    """The part of a pyspnego client context bitsd uses."""

    def step(self, in_token: bytes | None = None) -> bytes | None: ...


def spnego_client(credential: Credential, host: str) -> SpnegoContext:
    """A pyspnego client context for NTLM or Negotiate against ``host``.

    Raises:
        AuthUnavailableError: pyspnego is not installed.
    """
    try:
        spnego = importlib.import_module("spnego")
    except ImportError:
        raise AuthUnavailableError(
            f"{credential.scheme.name} authentication needs pyspnego: "
            "install bitsd[ntlm] (pip install 'bitsd[ntlm]')"
        ) from None
    protocol = "ntlm" if credential.scheme is AuthScheme.NTLM else "negotiate"
    context: SpnegoContext = spnego.client(
        credential.user or None,
        credential.password or None,
        hostname=host,
        service="HTTP",
        protocol=protocol,
    )
    return context


def token_of(challenge: Challenge) -> bytes | None:
    """The base64 token of an NTLM or Negotiate challenge, or None if it carries none."""
    data = challenge.data.strip()
    if not data:
        return None
    try:
        return base64.b64decode(data, validate=True)
    except ValueError:
        return None
