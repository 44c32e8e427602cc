"""Remote names: which are accepted and what kind of transfer each one is.

Rules (bits-inventory §2.13, §5.2):
- http:// and https:// URLs with a host; file:// URLs on this machine (no host, or localhost);
  absolute local paths. Anything else is E_INVALIDARG at ``add_file``, never a run-time error.
- At most 2,200 characters; no control characters (they would end up in request lines).
"""

from __future__ import annotations

import enum
import re
import urllib.parse

from bitsd._errors import InvalidArgumentError
from bitsd._policy import MAX_URL_LENGTH

__all__ = ["RemoteKind", "check_remote_name", "remote_kind"]

# C0 controls and DEL: one regex search, not a Python check per character (a job of
# thousands of files validates every name).
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# The common shape of an http(s) URL, which urlsplit accepts with a host: a scheme, a host of
# letters, digits, dots and hyphens, an optional port of digits, then anything from the first
# "/", "?" or "#". One match instead of urlsplit (a fifth of its cost); any other URL, or a
# port that must be checked, goes through urlsplit.
_PLAIN_HTTP = re.compile(r"https?://[a-z0-9.\-]+(?::([0-9]{1,5}))?(?:[/?#].*)?", re.I | re.S | re.A)


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
        InvalidArgumentError: empty, too long, with control characters, an unsupported scheme,
            an HTTP URL with no host or a bad port, a file:// URL on another host, or a
            relative path.
    """
    if not isinstance(url, str) or not url:
        raise InvalidArgumentError("the remote name is empty")
    if len(url) > MAX_URL_LENGTH:
        raise InvalidArgumentError(
            f"the remote name has {len(url)} characters; BITS allows {MAX_URL_LENGTH}"
        )
    if _CONTROL.search(url):
        raise InvalidArgumentError("the remote name contains control characters")
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
