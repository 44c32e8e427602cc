"""Remote names: which are accepted and what kind of transfer each one is.

Rules (bits-inventory §2.13, §5.2):
- http:// and https:// URLs with a host; file:// URLs on this machine (no host, or localhost);
  absolute local paths. Anything else is E_INVALIDARG at ``add_file``, never a run-time error.
- At most 2,200 characters; UTF-8 text (``bitsd._text``); no control characters (they would
  end up in request lines); no leading space (urlsplit would skip it, the transports would
  not: `` http://h/f`` would be read as a relative path).
- An http(s) URL is one both HTTP clients can send a request to (``http_url_problem``): yarl
  (which both parse with) reads it, its host is an IP address or a name getaddrinfo can look
  up (IDNA-encodable: no empty label, none over 63 characters), and its userinfo, if any, is
  what aiohttp can send as Basic credentials (Latin-1, no ":" in the user name). A URL that
  fails these could never be fetched: each would fail inside aiohttp or the resolver.
"""

from __future__ import annotations

import enum
import ipaddress
import re
import urllib.parse

from yarl import URL

from bitsd._errors import InvalidArgumentError
from bitsd._policy import MAX_URL_LENGTH
from bitsd._text import check_text

__all__ = [
    "RemoteKind",
    "check_remote_name",
    "host_can_be_looked_up",
    "http_url_problem",
    "remote_kind",
]

# C0 controls and DEL: one regex search, not a Python check per character (a job of
# thousands of files validates every name).
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# The common shape of an http(s) URL, which urlsplit and yarl accept with a host: a scheme, a
# host of labels of 1 to 63 letters, digits and hyphens separated by dots (maybe one at the
# end), an optional port of digits, then anything from the first "/", "?" or "#". One match
# instead of urlsplit and yarl (a fifth of urlsplit's cost); any other URL, or a port that
# must be checked, goes through them.
_PLAIN_HTTP = re.compile(
    r"https?://[a-z0-9\-]{1,63}(?:\.[a-z0-9\-]{1,63})*\.?(?::([0-9]{1,5}))?(?:[/?#].*)?",
    re.I | re.S | re.A,
)


class RemoteKind(enum.Enum):
    """Which transport serves a remote name."""

    HTTP = "http"
    LOCAL = "local"


def remote_kind(url: str) -> RemoteKind:
    """The transport kind of an already validated remote name."""
    return RemoteKind.HTTP if url.lower().startswith(("http://", "https://")) else RemoteKind.LOCAL


def check_remote_name(url: str) -> str:
    """Validate a remote name and return it unchanged.

    Raises:
        InvalidArgumentError: empty, too long, with control characters, text that is not
            UTF-8 (a lone surrogate: ``bitsd._text``) or a leading space, an unsupported
            scheme, an HTTP URL with no host, a bad port or that no HTTP client can send
            (``http_url_problem``), a file:// URL on another host, or a relative path.
    """
    if not isinstance(url, str) or not url:
        raise InvalidArgumentError("the remote name is empty")
    if len(url) > MAX_URL_LENGTH:
        raise InvalidArgumentError(
            f"the remote name has {len(url)} characters; BITS allows {MAX_URL_LENGTH}"
        )
    if _CONTROL.search(url):
        raise InvalidArgumentError("the remote name contains control characters")
    check_text("remote name", url)
    if url.startswith(" "):
        raise InvalidArgumentError(f"the remote name starts with a space: {url!r}")
    if url.startswith("/"):
        return url
    plain = _PLAIN_HTTP.fullmatch(url)
    if plain is not None:
        port = plain.group(1)
        if port is None or 0 < int(port) <= 65535:
            return url
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidArgumentError(f"malformed URL {url!r}: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme in ("http", "https"):
        if not parts.hostname:
            raise InvalidArgumentError(f"the URL has no host: {url!r}")
        if port == 0:
            raise InvalidArgumentError(f"the URL has port 0: {url!r}")
        try:
            problem = http_url_problem(URL(url))
        except ValueError as exc:  # yarl's errors (UnicodeError among them) are ValueErrors
            raise InvalidArgumentError(f"malformed URL {url!r}: {exc}") from None
        if problem is not None:
            raise InvalidArgumentError(f"{problem}: {url!r}")
        return url
    if scheme == "file":
        if parts.netloc.lower() not in ("", "localhost"):
            raise InvalidArgumentError(f"file:// URLs must name this machine: {url!r}")
        if not parts.path.startswith("/"):
            raise InvalidArgumentError(f"the file:// URL has no absolute path: {url!r}")
        return url
    if not scheme:
        raise InvalidArgumentError(
            f"the remote name is neither a URL nor an absolute path: {url!r}"
        )
    raise InvalidArgumentError(
        f"unsupported protocol {scheme!r} in {url!r}; bitsd supports http, https and file"
    )


def http_url_problem(url: URL) -> str | None:
    """Why no request can be sent to the http(s) ``url`` as yarl parsed it, or None: the
    failures that aiohttp and the resolver would otherwise raise only when the request is
    sent (a redirect's target is checked with this too)."""
    host = url.raw_host
    if not host:
        return "the URL has no host"
    if not host_can_be_looked_up(host):
        return "the URL's host is not a name that can be looked up"
    if url.raw_user is not None or url.raw_password is not None:
        # aiohttp sends them as Basic credentials, "user:password" in Latin-1.
        user = url.user or ""
        if ":" in user:
            return "the URL's user name contains a colon"
        try:
            f"{user}:{url.password or ''}".encode("latin-1")
        except UnicodeEncodeError:
            return "the URL's user name or password is not Latin-1 text"
    return None


def host_can_be_looked_up(host: str) -> bool:
    """Whether ``host`` (a URL's host as yarl gives it) is an IP address or a name that
    getaddrinfo can be asked about: one the IDNA codec encodes (no empty label, none over 63
    characters), as getaddrinfo does first to a name given as a str, raising UnicodeError."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        try:
            host.encode("idna")
        except UnicodeError:
            return False
    return True
