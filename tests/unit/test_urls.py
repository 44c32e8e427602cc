"""Unit tests for remote-name validation (bitsd._urls), bits-inventory §2.13 and §5.2."""

from __future__ import annotations

import contextlib
import ipaddress
import re
import urllib.parse

import aiohttp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from yarl import URL

import bitsd
import bitsd._urls
from bitsd import codes
from bitsd._errors import InvalidArgumentError
from bitsd._transfer import rawhttp
from bitsd._transfer.base import FileRequest
from bitsd._urls import RemoteKind, check_remote_name, remote_kind

PREFIX = "http://example.test/"


def url_of_length(length: int) -> str:
    """An http URL exactly ``length`` characters long."""
    return PREFIX + "a" * (length - len(PREFIX))


ACCEPTED = [
    "http://example.test/file.bin",
    "https://example.test/file.bin",
    "HTTP://EXAMPLE.TEST/FILE.BIN",
    "http://example.test",
    "http://127.0.0.1:8080/a?b=c#d",
    "https://[::1]:8443/path",
    "https://user:secret@example.test/x",
    "http://example.test:65535/x",
    "http://example.test./x",
    "http://" + "a" * 63 + ".test/x",
    "http://bücher.example/x",
    "https://[fe80::1%25eth0]:8443/x",
    "http://%C3%A9:p%40ss@example.test/x",
    "http://user:pass:word@example.test/x",
    "file:///srv/data/file.bin",
    "file://localhost/srv/data/file.bin",
    "/srv/data/file.bin",
    "/",
    url_of_length(2200),
]


@pytest.mark.parametrize("url", ACCEPTED, ids=lambda u: u[:60])
def test_accepted_remote_names_are_returned_unchanged(url: str) -> None:
    """http/https URLs with a host, local file:// URLs and absolute paths are accepted as is."""
    assert url == check_remote_name(url)


REJECTED = {
    "empty": "",
    "relative path": "data/file.bin",
    "dot relative": "./file.bin",
    "bare host": "example.test/file.bin",
    "ftp": "ftp://example.test/file.bin",
    "gopher": "gopher://example.test/",
    "javascript": "javascript:alert(1)",
    "http no host": "http:///nohost",
    "https no host": "https:///nohost",
    "http only scheme": "http://",
    "2201 characters": url_of_length(2201),
    "much too long": url_of_length(10_000),
    "CRLF": "http://example.test/a\r\nHost: evil",
    "LF": "http://example.test/a\nb",
    "NUL": "http://example.test/a\x00b",
    "TAB": "http://example.test/a\tb",
    "DEL": "http://example.test/a\x7fb",
    "path with newline": "/srv/data\n/file",
    "file other host": "file://otherhost/x",
    "file UNC-like": "file://server/share/x",
    "port not a number": "http://example.test:abc/x",
    "port too large": "http://example.test:65536/x",
    "port zero": "http://example.test:0/x",
    "negative port": "http://example.test:-1/x",
    "unclosed IPv6 literal": "http://[::1/x",
    "IPv6 port out of range": "http://[::1]:99999/x",
    # What urlsplit accepts and no HTTP client can send: each failed the transfer with E_FAIL
    # (an internal error) or went to the local transport.
    "leading space": " http://example.test/x",
    "leading space file URL": " file:///srv/x",
    "backslash in the host": "http://exa\\mple.test/x",
    "brackets in the userinfo": "http://[::1]:80@example.test/x",
    "soft hyphen in the host": "http://\xadexample.test/x",
    "empty label": "http://example..test/x",
    "leading dot": "http://.example.test/x",
    "64-character label": "http://" + "a" * 64 + ".test/x",
    "user not Latin-1": "http://%E2%82%AC:pass@example.test/x",
    "password not Latin-1": "http://user:€@example.test/x",
    "colon in the user name": "http://us%3Aer:pass@example.test/x",
}


@pytest.mark.parametrize("url", list(REJECTED.values()), ids=list(REJECTED))
def test_rejected_remote_names_raise_invalid_argument(url: str) -> None:
    """Bad remote names raise InvalidArgumentError with E_INVALIDARG at add_file time."""
    with pytest.raises(bitsd.InvalidArgumentError) as info:
        check_remote_name(url)
    assert info.value.hresult == codes.E_INVALIDARG
    assert isinstance(info.value, ValueError)


def test_every_control_character_is_refused_and_nothing_else() -> None:
    """Each C0 control and DEL is refused wherever it is; space and the printable ASCII and
    non-ASCII characters around them are not (the check is one regex search)."""
    for code in [*range(0x20), 0x7F]:
        for url in (f"http://example.test/a{chr(code)}b", f"/srv/a{chr(code)}"):
            with pytest.raises(bitsd.InvalidArgumentError, match="control characters"):
                check_remote_name(url)
    for ch in (" ", "~", "\x80", "\u00e9", "\u2028"):
        assert check_remote_name(f"/srv/a{ch}b") == f"/srv/a{ch}b"


def test_length_limit_is_exactly_2200() -> None:
    """2,200 characters are accepted; 2,201 are not (BG_FILE_INFO)."""
    assert len(check_remote_name(url_of_length(2200))) == 2200
    with pytest.raises(bitsd.InvalidArgumentError):
        check_remote_name(url_of_length(2201))


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://example.test/x", RemoteKind.HTTP),
        ("HTTPS://example.test/x", RemoteKind.HTTP),
        ("file:///srv/x", RemoteKind.LOCAL),
        ("/srv/x", RemoteKind.LOCAL),
    ],
)
def test_remote_kind(url: str, expected: RemoteKind) -> None:
    """http(s) names are served by the HTTP transport, file:// and paths by the local one."""
    assert expected == remote_kind(url)


_HOSTS = st.text(alphabet="aZ09.-_@[]:%\u017f\u212a", max_size=12)
_PORTS = st.one_of(st.just(""), st.text(alphabet="0123456789", max_size=7), st.just("8o"))
_RESTS = st.text(alphabet="/?#a%: é\\", max_size=8)


@given(
    scheme=st.sampled_from(["http", "HTTP", "https", "hTtPs", "httpx", "ftp", "file", ""]),
    separator=st.sampled_from(["://", ":/", ":", ""]),
    host=_HOSTS,
    port=st.one_of(st.none(), _PORTS),
    rest=_RESTS,
)
def test_the_plain_http_shortcut_decides_as_urlsplit_does(
    scheme: str, separator: str, host: str, port: str | None, rest: str
) -> None:
    """The common http(s) URLs skip urlsplit; every URL gets the decision it would get from
    urlsplit alone (accepted, or E_INVALIDARG)."""
    url = f"{scheme}{separator}{host}{'' if port is None else ':' + port}{rest}"

    def outcome() -> str:
        try:
            return check_remote_name(url)
        except InvalidArgumentError:
            return "refused"

    fast = outcome()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(bitsd._urls, "_PLAIN_HTTP", re.compile(r"(?!)"))  # matches nothing
        slow = outcome()
    assert fast == slow


# URL-like strings made of the parts the parsers (urlsplit, yarl, aiohttp, getaddrinfo's IDNA
# codec) read differently: a leading space, userinfo with "@", ":", "%", brackets and
# non-Latin-1 characters, hosts that are names, IP literals, IDNA, empty or 64-character
# labels, ports empty, huge or not digits, paths, queries and fragments with anything in them.
_TEXT = st.sampled_from(
    [
        *"aZ09-._~!$&'()*+,;=:@%[]/?#\\ ",
        "%40",
        "%3A",
        "%5B",
        "%zz",
        "%E2%82%AC",
        "é",
        "€",
        "\xad",
        "\u2100",
        "\uff0e",
    ]
)
_USERINFO = st.one_of(
    st.just(""),
    st.lists(_TEXT, max_size=5).map(lambda parts: "".join(parts) + "@"),
)
_HOST = st.lists(
    st.sampled_from(
        [
            *"aZ09.-_%:@[]\\",
            "example.org",
            "127.0.0.1",
            "[::1]",
            "[::1%25eth0]",
            "[v1.x]",
            "::1",
            "..",
            "a" * 63,
            "a" * 64,
            "bücher",
            "xn--",
            "ＡＢ",
            "\xad",
            "\u2100",
            "\u3002",
            "\U0001f600",
        ]
    ),
    max_size=4,
).map("".join)
_PORT = st.one_of(
    st.just(""),
    st.integers(0, 10**12).map(lambda n: f":{n}"),
    st.text(alphabet="0123456789 +-:ab\u0663", max_size=6).map(lambda text: ":" + text),
)
_REST = st.lists(
    st.sampled_from([*"/?#.%:@[]\\ a", "..", "%2F", "%zz", "é", "\u2100"]), max_size=8
).map("".join)
_URL_LIKE = st.one_of(
    st.builds(
        "".join,
        st.tuples(
            st.sampled_from(["", "", "", " "]),
            st.sampled_from(["http", "https", "HTTP", "hTtPs"]),
            st.sampled_from(["://", "://", "://", ":/", ":", "://\\"]),
            _USERINFO,
            _HOST,
            _PORT,
            _REST,
        ),
    ),
    st.text(max_size=30).map(lambda text: "http://" + text),
)


@settings(deadline=None)
@given(url=_URL_LIKE)
def test_an_accepted_http_url_is_one_both_http_clients_can_send(url: str) -> None:
    """Every remote name is refused with E_INVALIDARG or accepted; an accepted http(s) name
    goes to an HTTP transport, whose functions run on it (the raw client's ``_origin_of``,
    ``_origin_target``, ``_target_of``, ``applies``) raise nothing their callers do not
    catch, and which can send its request: yarl parses it with a host that is an IP address
    or a name getaddrinfo can encode (IDNA), and aiohttp can send its userinfo as Basic
    credentials. A name that could never be fetched fails at add_file, not as an internal
    error of the transfer."""
    try:
        check_remote_name(url)
    except InvalidArgumentError:
        return
    is_http = urllib.parse.urlsplit(url).scheme.lower() in ("http", "https")
    assert (remote_kind(url) is RemoteKind.HTTP) == is_http, url
    if not is_http:
        return
    origin = rawhttp._origin_of(url)
    assert origin is not None, url
    with contextlib.suppress(ValueError, TypeError):  # caught by _direct_origin
        rawhttp._origin_target(origin)
    with contextlib.suppress(ValueError, TypeError):  # caught by fetch: aiohttp takes the URL
        rawhttp._target_of(url)
    rawhttp.RawHttpTransport.applies(FileRequest(url, 0, None, None), (None,) * 6)
    parsed = URL(url)  # aiohttp's parse of the URL
    host = parsed.raw_host
    assert host, url
    try:
        ipaddress.ip_address(host)
    except ValueError:
        host.encode("idna")  # what getaddrinfo does to a name it is given as a str
    auth = aiohttp.BasicAuth.from_url(parsed)
    if auth is not None:
        auth.encode()  # aiohttp's Authorization header from the userinfo


@settings(deadline=None)
@given(
    first=_REST,
    then=_REST,
    port=st.sampled_from(["", ":8080"]),
    headers=st.sampled_from([(), (("X-Token", "abc"),)]),
)
def test_a_bulk_get_made_from_the_origins_is_the_get_made_in_full(
    first: str, then: str, port: str, headers: tuple[tuple[str, str], ...]
) -> None:
    """The GET a file's ``BulkOrigin`` makes for the next file of its origin (options and
    proxy environment) is the one ``RawHttpTransport.bulk_file`` decides in full for it, or
    None; and it makes one for every plain path of both files."""
    transport = rawhttp.RawHttpTransport(
        bitsd.SystemClock(),
        None,  # type: ignore[arg-type]  # never reached: bulk_file sends nothing
        tls=bitsd._transfer.tls.TlsContexts(),
        chunk_size=1024,
        connect_timeout=1.0,
        read_timeout=1.0,
    )
    options = bitsd._transfer.base.HttpOptions(headers=headers)
    base = f"http://example.org{port}"
    before = transport.bulk_file(
        FileRequest(base + "/" + first, 0, None, None, options=options), (None,) * 6
    )
    after = transport.bulk_file(
        FileRequest(base + "/" + then, 0, None, None, options=options), (None,) * 6
    )
    made = before.origin if before is not None else None
    wire = made.get(base + "/" + then) if made is not None else None
    if wire is not None:
        assert made is not None
        assert after is not None
        assert (made.where, wire) == (after.where, after.wire)
    plain = [
        rawhttp._PLAIN_TARGET.fullmatch(p) and "/." not in p for p in ("/" + first, "/" + then)
    ]
    if all(plain):
        assert wire is not None
