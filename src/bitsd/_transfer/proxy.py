"""Which proxy a request goes through (SetProxySettings): pure decisions, no I/O.

Rules (bits-inventory §5.9; docs/network.md has examples):
- PRECONFIG (the default) and AUTODETECT use the environment, as the standard library reads it
  (``urllib.request.getproxies_environment`` and ``proxy_bypass_environment``: ``http_proxy``,
  ``https_proxy`` and ``no_proxy``, lower case first, then upper case). There is no WPAD or
  PAC discovery: AUTODETECT is PRECONFIG. A proxy URL in the environment that bitsd cannot use
  is E_INVALIDARG and transient, like a bad Internet Explorer proxy name in BITS.
- NO_PROXY connects directly.
- OVERRIDE uses the job's lists. The proxy list holds entries separated by spaces (or
  semicolons, as WinHTTP also accepts) of the form ``[scheme=][http://]host[:port]``: ``scheme=``
  (``http`` or ``https``) names the URLs the entry serves; an entry without it serves every
  scheme that has no entry of its own; entries for other schemes (``ftp=``, ``socks=``) are
  ignored. The proxy itself is spoken to in plain HTTP (HTTPS goes through CONNECT); the port
  defaults to 80. Entries are tried in list order: a proxy that cannot be connected to moves
  on to the next one.
- The bypass list holds host names or IP addresses (separated likewise), compared without
  regard to case, where ``*`` matches any run of characters (``*.example.com``, ``10.*``), an
  optional ``:port`` must then match too, and ``<local>`` matches every host name without a
  dot. A bypassed host is connected to directly.
- A list bitsd cannot read raises :class:`InvalidProxyInfoError` when a request needs it (BITS
  reports BG_E_INVALID_PROXY_INFO at run time, fatal).
- Credentials never appear in a proxy URL given to the transport: user information in an
  environment proxy URL is returned apart, for the proxy's Basic challenge.
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
import re
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Final

import aiohttp
from yarl import URL

from bitsd._enums import ProxyUsage
from bitsd._urls import host_can_be_looked_up

__all__ = [
    "DEFAULT_PROXY_PORT",
    "Candidate",
    "InvalidProxyInfoError",
    "ProxyUnreachableError",
    "candidates",
    "parse_bypass_list",
    "parse_proxy_list",
]

# WinHTTP's default proxy port.
DEFAULT_PROXY_PORT: Final = 80
_HOST_LABEL: Final = re.compile(r"^[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?$")
_BYPASS_HOST: Final = re.compile(r"^[A-Za-z0-9_.*:\[\]-]+$")
_SEPARATORS: Final = re.compile(r"[\s;]+")


class InvalidProxyInfoError(ValueError):
    """A proxy or bypass list that bitsd cannot use.

    Attributes:
        from_environment: True for a PRECONFIG proxy taken from the environment.
    """

    def __init__(self, message: str, *, from_environment: bool = False) -> None:
        super().__init__(message)
        self.from_environment = from_environment


class ProxyUnreachableError(Exception):
    """No proxy of the route could be connected to.

    Attributes:
        failures: (proxy URL, the connection error) for each proxy tried, in order.
        name_resolution: True when the last proxy's name could not be resolved.
    """

    def __init__(self, failures: list[tuple[str, Exception]]) -> None:
        tried = ", ".join(f"{url} ({exc})" for url, exc in failures)
        super().__init__(f"no proxy could be reached: {tried}")
        self.failures = failures
        last = failures[-1][1] if failures else None
        self.name_resolution = isinstance(last, aiohttp.ClientConnectorDNSError)


@dataclasses.dataclass(frozen=True, slots=True)
class Candidate:
    """One way to reach a URL.

    Attributes:
        proxy: the proxy's URL (``http://host:port``), or None to connect directly.
        user, password: user information from an environment proxy URL, or None.
    """

    proxy: str | None
    user: str | None = dataclasses.field(default=None, repr=False)
    password: str | None = dataclasses.field(default=None, repr=False)


_DIRECT: Final = (Candidate(None),)


@dataclasses.dataclass(frozen=True, slots=True)
class _Entry:
    scheme: str | None
    proxy: str


def candidates(
    usage: int, proxy_list: str | None, bypass_list: str | None, url: URL
) -> tuple[Candidate, ...]:
    """The ways to reach ``url`` under a job's proxy settings, to try in order.

    Raises:
        InvalidProxyInfoError: a list (or an environment proxy) that cannot be used.
    """
    kind = ProxyUsage(usage)
    if kind is ProxyUsage.NO_PROXY:
        return _DIRECT
    if kind in (ProxyUsage.PRECONFIG, ProxyUsage.AUTODETECT):
        return _from_environment(url)
    entries = parse_proxy_list(proxy_list or "")
    if bypass_list and _bypassed(url, parse_bypass_list(bypass_list)):
        return _DIRECT
    scheme = url.scheme
    own = [e.proxy for e in entries if e.scheme == scheme]
    chosen = own or [e.proxy for e in entries if e.scheme is None]
    if not chosen:
        return _DIRECT
    return tuple(Candidate(p) for p in chosen)


# The standard library's no_proxy matching (missing from typeshed's urllib.request).
_proxy_bypass_environment: Callable[[str, dict[str, str]], bool] = (
    urllib.request.proxy_bypass_environment  # type: ignore[attr-defined]
)


def _from_environment(url: URL) -> tuple[Candidate, ...]:
    proxies = urllib.request.getproxies_environment()
    value = proxies.get(url.scheme)
    if not value:
        return _DIRECT
    host = url.raw_host or ""
    if _proxy_bypass_environment(host, proxies):
        return _DIRECT
    if "://" not in value:
        value = "http://" + value
    try:
        parts = urllib.parse.urlsplit(value)
        port = parts.port
    except ValueError as exc:
        raise InvalidProxyInfoError(
            f"the {url.scheme}_proxy environment variable is not a proxy URL",
            from_environment=True,
        ) from exc
    if parts.scheme != "http" or not parts.hostname:
        raise InvalidProxyInfoError(
            f"the {url.scheme}_proxy environment variable must name an http:// proxy",
            from_environment=True,
        )
    if not host_can_be_looked_up(parts.hostname):
        raise InvalidProxyInfoError(
            f"the {url.scheme}_proxy environment variable names a host that cannot be looked up",
            from_environment=True,
        )
    proxy = _proxy_url(parts.hostname, port or DEFAULT_PROXY_PORT)
    user = urllib.parse.unquote(parts.username) if parts.username else None
    password = urllib.parse.unquote(parts.password) if parts.password else None
    return (Candidate(proxy, user, password if user is not None else None),)


@functools.lru_cache(maxsize=256)
def parse_proxy_list(text: str) -> tuple[_Entry, ...]:
    """The entries of a BITS proxy list.

    Raises:
        InvalidProxyInfoError: an entry that is not ``[scheme=][http://]host[:port]``.
    """
    entries: list[_Entry] = []
    for item in _SEPARATORS.split(text.strip()):
        if not item:
            continue
        scheme: str | None = None
        rest = item
        if "=" in rest:
            scheme, _, rest = rest.partition("=")
            scheme = scheme.lower()
            if not scheme.isalpha():
                raise InvalidProxyInfoError(f"bad proxy list entry {item!r}")
        if "://" in rest:
            proto, _, rest = rest.partition("://")
            if proto.lower() != "http":
                raise InvalidProxyInfoError(
                    f"bad proxy list entry {item!r}: bitsd speaks HTTP to proxies"
                )
        host, port = _host_port(rest, item)
        if scheme in (None, "http", "https"):
            entries.append(_Entry(scheme, _proxy_url(host, port)))
    if not entries and not text.strip():
        raise InvalidProxyInfoError("the proxy list is empty")
    return tuple(entries)


def _host_port(text: str, item: str) -> tuple[str, int]:
    """Host and port of ``host[:port]`` (IPv6 in brackets)."""
    bad = InvalidProxyInfoError(f"bad proxy list entry {item!r}")
    port = DEFAULT_PROXY_PORT
    if text.startswith("["):
        host, sep, tail = text[1:].partition("]")
        if not sep:
            raise bad
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise bad from None
        if tail:
            if not tail.startswith(":"):
                raise bad
            port = _port(tail[1:], bad)
        return host, port
    host, sep, port_text = text.rstrip("/").partition(":")
    if sep:
        port = _port(port_text, bad)
    if not host or not all(_HOST_LABEL.match(label) for label in host.split(".")):
        raise bad
    if not host_can_be_looked_up(host):  # a label over 63 characters: getaddrinfo refuses it
        raise bad
    return host, port


def _port(text: str, bad: InvalidProxyInfoError) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise bad
    return int(text)


def _proxy_url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


@dataclasses.dataclass(frozen=True, slots=True)
class _Bypass:
    local: bool = False
    pattern: re.Pattern[str] | None = None
    port: int | None = None


@functools.lru_cache(maxsize=256)
def parse_bypass_list(text: str) -> tuple[_Bypass, ...]:
    """The rules of a BITS bypass list.

    Raises:
        InvalidProxyInfoError: an entry that is not a host, an address or ``<local>``.
    """
    rules: list[_Bypass] = []
    for item in _SEPARATORS.split(text.strip()):
        if not item:
            continue
        if item.lower() == "<local>":
            rules.append(_Bypass(local=True))
            continue
        rest = item
        if "://" in rest:
            rest = rest.partition("://")[2]
        port: int | None = None
        host = rest
        if rest.startswith("["):
            host, sep, tail = rest[1:].partition("]")
            if not sep or (tail and not tail.startswith(":")):
                raise InvalidProxyInfoError(f"bad proxy bypass entry {item!r}")
            if tail:
                port = _port(tail[1:], InvalidProxyInfoError(f"bad proxy bypass entry {item!r}"))
        elif rest.count(":") == 1:
            host, _, port_text = rest.partition(":")
            port = _port(port_text, InvalidProxyInfoError(f"bad proxy bypass entry {item!r}"))
        if not host or not _BYPASS_HOST.match(host):
            raise InvalidProxyInfoError(f"bad proxy bypass entry {item!r}")
        regex = ".*".join(re.escape(part) for part in host.lower().split("*"))
        rules.append(_Bypass(pattern=re.compile(f"^{regex}$"), port=port))
    return tuple(rules)


def _bypassed(url: URL, rules: tuple[_Bypass, ...]) -> bool:
    host = (url.host or "").lower().rstrip(".")
    for rule in rules:
        if rule.local:
            if "." not in host and ":" not in host:
                return True
            continue
        assert rule.pattern is not None
        if rule.pattern.match(host) and (rule.port is None or rule.port == url.port):
            return True
    return False
