"""Rules for a job's HTTP options, checked when they are set (bits-inventory §5.8, §5.9).

Rules:
- Custom headers are CRLF-terminated ``Name: value`` lines, at most 16,384 characters including
  the terminating NUL of BITS's string; a CR, LF or NUL inside a line is refused (no header
  injection), and so is any character neither HTTP client can send: another control character
  but tab (aiohttp refuses them) or one beyond Latin-1 (bitsd's own client writes Latin-1).
  An empty string or None removes them.
- A custom HTTP method is an RFC 9110 token; "GET" is the default verb and setting it is a no-op.
- Security flags accept only the BG_SSL_* bits and the redirect policies ALLOW_SILENT,
  ALLOW_REPORT, DISALLOW (with ALLOW_HTTPS_TO_HTTP); anything else is E_NOTIMPL, as in BITS,
  a value that is no integer too (a bool: True is no set of flags). ENABLE_CRL_CHECK is
  E_NOTIMPL too: Python's TLS stack cannot fetch revocation lists.
- A proxy usage is the integer value of a ProxyUsage; anything else (a bool or a float too)
  is E_NOTIMPL, as BITS answers a bad usage. A credentials target or scheme is the integer
  value of an AuthTarget or AuthScheme; anything else is BG_E_INVALID_AUTH_TARGET /
  BG_E_INVALID_AUTH_SCHEME.
- Proxy lists are checked for size at set time (BG_E_PROXY_LIST_TOO_LARGE / _BYPASS_LIST_) and
  for syntax when used (BG_E_INVALID_PROXY_INFO, a run-time error as in BITS).
- Credentials: user names up to 300 characters, passwords up to 65,535, one per (target,
  scheme); PASSPORT is not supported. A user name has no control character, and for BASIC
  and DIGEST no colon: they could not be sent (Basic joins "user:password", Digest writes
  the name into a header).
- Every text given (headers, lists, user names, passwords) is a ``str`` of UTF-8 text
  (``bitsd._text``); anything else is E_INVALIDARG.
"""

from __future__ import annotations

import re

from bitsd import codes
from bitsd._args import is_int
from bitsd._enums import AuthScheme, AuthTarget, ProxyUsage, SecurityFlags
from bitsd._errors import BitsError, InvalidArgumentError, NotSupportedError, shown
from bitsd._text import check_text

__all__ = [
    "MAX_CUSTOM_HEADERS_LENGTH",
    "MAX_PASSWORD_LENGTH",
    "MAX_PROXY_LIST_LENGTH",
    "MAX_USER_NAME_LENGTH",
    "check_credentials",
    "check_custom_headers",
    "check_http_method",
    "check_proxy_settings",
    "check_security_flags",
    "parse_custom_headers",
    "redirect_policy",
]

# Characters, including the NUL terminator. SetCustomHeaders.
MAX_CUSTOM_HEADERS_LENGTH = 16_384
# Characters. BG_E_PROXY_LIST_TOO_LARGE / BG_E_PROXY_BYPASS_LIST_TOO_LARGE ("> 32 KB").
MAX_PROXY_LIST_LENGTH = 32_768
# Characters. BG_E_USERNAME_TOO_LARGE / BG_E_PASSWORD_TOO_LARGE.
MAX_USER_NAME_LENGTH = 300
MAX_PASSWORD_LENGTH = 65_535

_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
# What a header line may not hold: controls but tab (aiohttp refuses them) and characters
# beyond Latin-1 (bitsd's own client writes its requests in Latin-1).
_NOT_IN_HEADER = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]|[^\x00-\xff]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SSL_BITS = 0x1F
_REDIRECT_VALUES = (
    SecurityFlags.REDIRECT_POLICY_ALLOW_SILENT,
    SecurityFlags.REDIRECT_POLICY_ALLOW_REPORT,
    SecurityFlags.REDIRECT_POLICY_DISALLOW,
)


def check_custom_headers(value: str | None) -> str | None:
    """Validate SetCustomHeaders' argument; returns None for "no headers"."""
    if value is None or value == "":
        return None
    check_text("custom headers", value, secret=True)
    if len(value) + 1 > MAX_CUSTOM_HEADERS_LENGTH:
        raise InvalidArgumentError(
            f"custom headers have {len(value)} characters; at most {MAX_CUSTOM_HEADERS_LENGTH - 1}",
            hresult=codes.BG_E_STRING_TOO_LONG,
        )
    if not value.endswith("\r\n"):
        raise InvalidArgumentError("each custom header must end with CR/LF")
    parse_custom_headers(value)
    # Checked when set, not when used: headers an older bitsd stored still go out as before.
    bad = _NOT_IN_HEADER.search(value.replace("\r\n", ""))
    if bad is not None:
        raise InvalidArgumentError(
            f"a custom header contains {bad.group()!r}, which an HTTP client cannot send "
            "(a control character, or one beyond Latin-1)"
        )
    return value


def parse_custom_headers(value: str) -> list[tuple[str, str]]:
    """The (name, value) pairs of validated custom headers.

    Raises:
        InvalidArgumentError: a line without a colon, a bad name, or CR/LF/NUL in a line.
    """
    pairs: list[tuple[str, str]] = []
    for number, line in enumerate(value.removesuffix("\r\n").split("\r\n"), 1):
        if any(ch in line for ch in "\r\n\x00"):
            raise InvalidArgumentError("a custom header contains CR, LF or NUL")
        name, sep, text = line.partition(":")
        if not sep or not _TOKEN.match(name):
            # Not quoted: custom headers may carry credentials (an Authorization value).
            raise InvalidArgumentError(
                f"custom header line {number} is not a header line (NAME: value)"
            )
        pairs.append((name, text.strip()))
    return pairs


def check_http_method(method: str | None) -> str | None:
    """Validate SetHttpMethod's argument; None for the default verb."""
    if method is None:
        return None
    if not isinstance(method, str) or not _TOKEN.match(method):
        raise InvalidArgumentError(f"not an HTTP method: {shown(method)}")
    if method.upper() == "GET":
        return None
    return method


def check_security_flags(flags: int) -> SecurityFlags:
    """Validate SetSecurityFlags' argument."""
    if not is_int(flags) or flags < 0:  # a bool is no set of flags
        raise NotSupportedError(f"invalid security flags {shown(flags)}")
    known = (
        _SSL_BITS
        | SecurityFlags.REDIRECT_POLICY_MASK
        | (SecurityFlags.REDIRECT_POLICY_ALLOW_HTTPS_TO_HTTP)
    )
    if flags & ~int(known) or (flags & SecurityFlags.REDIRECT_POLICY_MASK) not in _REDIRECT_VALUES:
        raise NotSupportedError(f"invalid security flags 0x{flags:X}")
    if flags & SecurityFlags.ENABLE_CRL_CHECK:
        raise NotSupportedError(
            "certificate revocation checking is not available: Python's TLS stack cannot fetch "
            "revocation lists (docs/design-choices.md)"
        )
    return SecurityFlags(flags)


def redirect_policy(flags: int) -> SecurityFlags:
    """The redirect policy part of security flags (ALLOW_SILENT, ALLOW_REPORT or DISALLOW)."""
    return SecurityFlags(flags & SecurityFlags.REDIRECT_POLICY_MASK)


def check_proxy_settings(
    usage: int, proxy_list: str | None, bypass_list: str | None
) -> tuple[ProxyUsage, str | None, str | None]:
    """Validate SetProxySettings' arguments (syntax is checked when the proxy is used)."""
    try:
        if not is_int(usage):  # a bool or a float is no usage, even True or 1.0
            raise ValueError(usage)
        kind = ProxyUsage(usage)
    except ValueError:
        raise NotSupportedError(f"invalid proxy usage {shown(usage)}") from None
    proxy_list = _text_or_none("proxy list", proxy_list)
    bypass_list = _text_or_none("proxy bypass list", bypass_list)
    if kind is ProxyUsage.OVERRIDE:
        if proxy_list is None:
            raise InvalidArgumentError("OVERRIDE needs a proxy list")
    elif proxy_list is not None or bypass_list is not None:
        raise InvalidArgumentError(f"{kind.name} takes no proxy or bypass list")
    if proxy_list is not None and len(proxy_list) > MAX_PROXY_LIST_LENGTH:
        raise BitsError("the proxy list is too long", hresult=codes.BG_E_PROXY_LIST_TOO_LARGE)
    if bypass_list is not None and len(bypass_list) > MAX_PROXY_LIST_LENGTH:
        raise BitsError(
            "the proxy bypass list is too long", hresult=codes.BG_E_PROXY_BYPASS_LIST_TOO_LARGE
        )
    return kind, proxy_list, bypass_list


def _text_or_none(what: str, value: object) -> str | None:
    """``value`` as text, or None for None and "" (no list)."""
    return None if value is None else check_text(what, value) or None


def check_credentials(
    target: int, scheme: int, user_name: str | None, password: str | None
) -> tuple[AuthTarget, AuthScheme, str, str]:
    """Validate SetCredentials' arguments."""
    try:
        if not is_int(target):  # a bool or a float is no target, even True or 1.0
            raise ValueError(target)
        auth_target = AuthTarget(target)
    except ValueError:
        raise BitsError(
            f"invalid authentication target {shown(target)}", hresult=codes.BG_E_INVALID_AUTH_TARGET
        ) from None
    try:
        if not is_int(scheme):
            raise ValueError(scheme)
        auth_scheme = AuthScheme(scheme)
    except ValueError:
        raise BitsError(
            f"invalid authentication scheme {shown(scheme)}", hresult=codes.BG_E_INVALID_AUTH_SCHEME
        ) from None
    if auth_scheme is AuthScheme.PASSPORT:
        raise NotSupportedError("Passport authentication is not supported")
    user_name = "" if user_name is None else check_text("user name", user_name)
    password = "" if password is None else check_text("password", password, secret=True)
    if len(user_name) > MAX_USER_NAME_LENGTH:
        raise BitsError("the user name is too long", hresult=codes.BG_E_USERNAME_TOO_LARGE)
    if len(password) > MAX_PASSWORD_LENGTH:
        raise BitsError("the password is too long", hresult=codes.BG_E_PASSWORD_TOO_LARGE)
    if any(ch in user_name + password for ch in "\r\n\x00"):
        raise InvalidArgumentError("credentials must not contain CR, LF or NUL")
    if _CONTROL.search(user_name):
        # Digest sends the user name as it is, in a header no client writes controls into.
        raise InvalidArgumentError("a user name must not contain control characters")
    if ":" in user_name and auth_scheme in (AuthScheme.BASIC, AuthScheme.DIGEST):
        # Basic joins "user:password" (RFC 7617: no colon in the user name); aiohttp's
        # Digest refuses one. add_file refuses it in a URL's userinfo alike.
        raise InvalidArgumentError(f"a {auth_scheme.name} user name must not contain a colon")
    return auth_target, auth_scheme, user_name, password
