"""The redirect policy of a job (SetSecurityFlags, BG_HTTP_REDIRECT_POLICY_*): pure decisions.

Rules (bits-inventory §5.8):
- Requests are sent with redirects off; the transport asks :func:`follow` about each 3xx answer
  that carries a Location, and either sends the next request or stops with
  :class:`RedirectRefusedError`.
- Followed statuses: 301, 302, 303, 307, 308. A 300 (multiple choices) is not followed: it is
  the HTTP error it is, except under DISALLOW.
- ALLOW_SILENT (the default) follows; ALLOW_REPORT follows and the final URL becomes the file's
  remote name; DISALLOW refuses with HRESULT_FROM_WIN32(status) for 300, 301, 302, 303, 307
  and 308, and the remote name becomes the redirect URL.
- HTTPS→HTTP is refused unless ALLOW_HTTPS_TO_HTTP; so is a redirect to anything but http or
  https (BITS does not follow HTTP→SMB redirects). More than :data:`MAX_REDIRECTS` hops, or a
  URL seen before in the same chain, is refused too. All refusals are fatal.
- 303 turns any method but HEAD into GET; 301 and 302 turn POST into GET (what browsers and
  WinHTTP do); 307 and 308 keep the method.
- Credentials and a custom ``Authorization`` header belong to the origin (scheme, host, port)
  of the file's remote name: :func:`same_origin` says whether a hop may still carry them.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Final

from yarl import URL

from bitsd._enums import SecurityFlags

__all__ = [
    "FOLLOWED_STATUSES",
    "MAX_REDIRECTS",
    "REDIRECT_STATUSES",
    "Hop",
    "RedirectPolicy",
    "RedirectRefusedError",
    "Refusal",
    "follow",
    "safe_url",
    "same_origin",
]

# WinHTTP follows at most 10 redirects (WINHTTP_OPTION_MAX_HTTP_AUTOMATIC_REDIRECTS default).
MAX_REDIRECTS: Final = 10
# The statuses BITS names for a DISALLOWed redirect (HTTP_STATUS_AMBIGUOUS, _MOVED, _REDIRECT,
# _REDIRECT_METHOD, _REDIRECT_KEEP_VERB), and 308 (HTTP_STATUS_PERMANENT_REDIRECT).
REDIRECT_STATUSES: Final = frozenset({300, 301, 302, 303, 307, 308})
FOLLOWED_STATUSES: Final = frozenset({301, 302, 303, 307, 308})


class RedirectPolicy(enum.Enum):
    """What a job does with a redirect."""

    ALLOW_SILENT = SecurityFlags.REDIRECT_POLICY_ALLOW_SILENT
    ALLOW_REPORT = SecurityFlags.REDIRECT_POLICY_ALLOW_REPORT
    DISALLOW = SecurityFlags.REDIRECT_POLICY_DISALLOW

    @classmethod
    def of(cls, flags: int) -> RedirectPolicy:
        """The policy in a job's security flags."""
        return cls(SecurityFlags(flags & SecurityFlags.REDIRECT_POLICY_MASK))


class Refusal(enum.Enum):
    """Why a redirect was not followed."""

    DISALLOWED = "the job's redirect policy is DISALLOW"
    DOWNGRADE = "a redirect from HTTPS to HTTP needs BG_HTTP_REDIRECT_POLICY_ALLOW_HTTPS_TO_HTTP"
    SCHEME = "redirects are followed to http and https URLs only"
    LOOP = "the redirects form a loop"
    TOO_MANY = f"more than {MAX_REDIRECTS} redirects"


class RedirectRefusedError(Exception):
    """A redirect that the job's policy does not follow (always fatal).

    Attributes:
        reason: why.
        status: the redirect's HTTP status.
        location: the URL redirected to (without user information).
    """

    def __init__(self, reason: Refusal, status: int, location: str) -> None:
        super().__init__(f"{reason.value}: HTTP {status} to {location}")
        self.reason = reason
        self.status = status
        self.location = location


@dataclasses.dataclass(frozen=True, slots=True)
class Hop:
    """The next request of a followed redirect.

    Attributes:
        url: where to.
        method: the method to use.
        same_origin: whether it stays on the origin of the file's remote name.
    """

    url: URL
    method: str
    same_origin: bool


def follow(
    flags: int,
    *,
    status: int,
    method: str,
    source: URL,
    target: URL,
    origin: URL,
    chain: tuple[URL, ...],
) -> Hop | None:
    """Decide about one redirect answer.

    Args:
        flags: the job's security flags.
        status: the answer's status (one of :data:`REDIRECT_STATUSES`).
        method: the method of the request that got it.
        source: that request's URL.
        target: the Location, resolved against ``source``, without fragment.
        origin: the file's remote name (its origin keeps the credentials).
        chain: the URLs requested so far for this answer, the remote name first.

    Returns:
        The next request, or None when the answer is not a redirect to follow (a 300 outside
        DISALLOW): the caller treats it as the HTTP status it is.

    Raises:
        RedirectRefusedError: DISALLOW, a refused scheme change, a loop or too many hops.
    """
    policy = RedirectPolicy.of(flags)
    shown = safe_url(target)
    if policy is RedirectPolicy.DISALLOW:
        raise RedirectRefusedError(Refusal.DISALLOWED, status, shown)
    if status not in FOLLOWED_STATUSES:
        return None
    if target.scheme not in ("http", "https") or not target.host:
        raise RedirectRefusedError(Refusal.SCHEME, status, shown)
    if (
        source.scheme == "https"
        and target.scheme == "http"
        and not flags & SecurityFlags.REDIRECT_POLICY_ALLOW_HTTPS_TO_HTTP
    ):
        raise RedirectRefusedError(Refusal.DOWNGRADE, status, shown)
    if target in chain:
        raise RedirectRefusedError(Refusal.LOOP, status, shown)
    if len(chain) > MAX_REDIRECTS:
        raise RedirectRefusedError(Refusal.TOO_MANY, status, shown)
    upper = method.upper()
    if (status == 303 and upper != "HEAD") or (status in (301, 302) and upper == "POST"):
        method = "GET"
    return Hop(url=target, method=method, same_origin=same_origin(origin, target))


def same_origin(a: URL, b: URL) -> bool:
    """Whether two URLs have the same scheme, host and port (RFC 6454)."""
    return (a.scheme, (a.host or "").lower(), a.port) == (b.scheme, (b.host or "").lower(), b.port)


def safe_url(url: URL) -> str:
    """``url`` as text without any user name or password, for messages."""
    if url.user is not None or url.password is not None:
        url = url.with_user(None)
    return str(url)
