"""The pure parts of the upload client (bitsd._transfer.upload) and the classification of upload
Acks (bitsd._transfer.classify): reply URLs resolved as Windows resolves them, Host-Id hosts,
the received offset, and codes, contexts and retry decisions per bits-upload-protocol §2."""

from __future__ import annotations

import pytest

from bitsd import ErrorContext, codes
from bitsd._transfer import classify
from bitsd._transfer.upload import (
    content_name,
    parse_received,
    resolve_reply_url,
    with_host,
)

URL = "http://frankcao8/upload-ref-isapi-WebFarm/report.bin"
APPLICATION_403 = {"BITS-Error-Code": "0x80190193", "BITS-Error-Context": "0x7"}
APPLICATION_409 = {"BITS-Error-Code": "0x80190199", "BITS-Error-Context": "0x7"}


def test_reply_url_of_the_iis_capture() -> None:
    """The relative, backslashed Reply-URL of the MC-BUP §4.2 capture resolves against the
    upload URL's folder, with slashes and percent-encoded braces, as the Windows client sent
    it (§3.4)."""
    value = "BITS-Sessions\\Replies\\{C85B4E0A-9EB9-4114-BFA4-8A43B4710091}\\responsefile.bin"
    assert resolve_reply_url(URL, value) == (
        "http://frankcao8/upload-ref-isapi-WebFarm/BITS-Sessions/Replies/"
        "%7BC85B4E0A-9EB9-4114-BFA4-8A43B4710091%7D/responsefile.bin"
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("http://other:8080/r/1", "http://other:8080/r/1"),
        ("/root/reply", "http://frankcao8/root/reply"),
        (".bits-replies/ABC", "http://frankcao8/upload-ref-isapi-WebFarm/.bits-replies/ABC"),
        ("  reply.bin ", "http://frankcao8/upload-ref-isapi-WebFarm/reply.bin"),
    ],
)
def test_reply_urls_absolute_and_relative(value: str, expected: str) -> None:
    """An absolute Reply-URL stays; a relative one replaces the upload URL's last segment."""
    assert resolve_reply_url(URL, value) == expected


@pytest.mark.parametrize(
    ("host_id", "expected"),
    [
        ("farm-1", "https://farm-1:8443/up/a.bin?x=1"),
        ("10.0.0.7", "https://10.0.0.7:8443/up/a.bin?x=1"),
        ("farm-1:9000", "https://farm-1:9000/up/a.bin?x=1"),
        ("fe80::1", "https://[fe80::1]:8443/up/a.bin?x=1"),
        ("[fe80::1]", "https://[fe80::1]:8443/up/a.bin?x=1"),
        ("[fe80::1]:9000", "https://[fe80::1]:9000/up/a.bin?x=1"),
    ],
)
def test_host_id_replaces_the_host_only(host_id: str, expected: str) -> None:
    """BITS-Host-Id replaces the host of the upload URL; scheme, port, path and query stay
    (a port in the value wins; IPv6 addresses are bracketed)."""
    assert with_host("https://origin.example:8443/up/a.bin?x=1", host_id) == expected


def test_host_id_without_a_port_in_the_url() -> None:
    """A URL without a port keeps none."""
    assert with_host("http://origin/up", "farm-2") == "http://farm-2/up"


@pytest.mark.parametrize(
    ("value", "expected"),
    [("213", 213), (" 0 ", 0), ("", None), ("12-40", None), ("-1", None), (None, None)],
)
def test_received_content_range_is_one_offset(value: str | None, expected: int | None) -> None:
    """BITS-Received-Content-Range is a decimal offset, not a range; anything else is None."""
    assert parse_received(value) == expected


def test_content_name_is_the_file_name_made_header_safe() -> None:
    """Content-Name is the name without its folder, percent-encoded outside printable ASCII."""
    assert content_name("/home/u/report 1.bin") == "report 1.bin"
    assert content_name("/home/u/résumé.pdf") == "r%C3%A9sum%C3%A9.pdf"
    assert content_name("/home/u/tab\there") == "tab%09here"


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"BITS-Error-Code": "0x8020001F", "BITS-Error-Context": "0x5"}, (0x8020001F, 5)),
        ({"BITS-Error-Code": "x80070057"}, (0x80070057, None)),
        ({"BITS-Error": "80200020", "BITS-Error-Context": "7"}, (0x80200020, 7)),
        ({"BITS-Error-Code": "nonsense"}, (None, None)),
        ({}, (None, None)),
    ],
)
def test_bits_error_headers_in_their_spellings(
    headers: dict[str, str], expected: tuple[int | None, int | None]
) -> None:
    """BITS-Error-Code (and MC-BUP's BITS-Error) in the forms seen: 0x…, the spec's x…, bare
    hex; BITS-Error-Context likewise."""
    assert classify.parse_bits_error(headers) == expected


@pytest.mark.parametrize(
    ("status", "headers", "packet", "code", "context", "transient"),
    [
        # The server's own errors: its code, REMOTE_FILE, the status table.
        (500, {"BITS-Error-Code": "0x8020001F"}, "Fragment", 0x8020001F, 5, True),
        (400, {"BITS-Error-Code": "0x80070057"}, "Fragment", 0x80070057, 5, False),
        (500, {"BITS-Error-Code": "0x80200020"}, "Fragment", codes.BG_E_TOO_LARGE, 5, False),
        (501, {"BITS-Error-Code": "0x80070005"}, "Ping", codes.E_ACCESSDENIED, 5, False),
        (404, {}, "Create-Session", codes.http_error(404), 5, False),
        (503, {}, "Create-Session", codes.http_error(503), 5, True),
        # The server application's errors (context 0x7): REMOTE_APPLICATION, same table.
        (403, APPLICATION_403, "Fragment", codes.http_error(403), 7, False),
        (409, APPLICATION_409, "Fragment", codes.http_error(409), 7, True),
        (500, {"BITS-Error-Context": "0x7"}, "Fragment", codes.http_error(500), 7, True),
        # Close and Cancel: 5xx retried unless the session is unknown; 1xx-4xx never.
        (503, {}, "Close-Session", codes.http_error(503), 5, True),
        (408, {}, "Close-Session", codes.http_error(408), 5, False),
        (500, {"BITS-Error-Code": "0x8020001F"}, "Cancel-Session", 0x8020001F, 5, False),
    ],
)
def test_upload_ack_classification(
    status: int,
    headers: dict[str, str],
    packet: str,
    code: int,
    context: int,
    transient: bool,
) -> None:
    """Each failed Ack gets its code, context and retry decision (bits-upload-protocol §2)."""
    err = classify.from_upload_ack(status, headers, url="http://h/up", now_wall=0.0, packet=packet)
    assert (err.hresult, err.context, err.transient) == (code, ErrorContext(context), transient)
    assert err.protocol == "http"
    assert packet in err.message


def test_a_success_code_in_an_error_ack_is_not_the_error() -> None:
    """A BITS-Error-Code that is not a failure HRESULT (SimpleBITSServer sends 1) leaves the
    HTTP status as the code."""
    err = classify.from_upload_ack(
        500, {"BITS-Error-Code": "1"}, url="http://h/up", now_wall=0.0, packet="Fragment"
    )
    assert err.hresult == codes.http_error(500)


def test_protocol_and_local_errors() -> None:
    """A server without the protocol is a fatal mismatch; a changed source is fatal in
    LOCAL_FILE; a broken Ack is transient unless said otherwise."""
    mismatch = classify.protocol_mismatch("http://h/up", "no BITS-Protocol")
    assert (mismatch.hresult, mismatch.transient) == (
        codes.BG_E_CLIENT_SERVER_PROTOCOL_MISMATCH,
        False,
    )
    changed = classify.local_file_changed("/tmp/a", "size changed")
    assert (changed.hresult, changed.context, changed.transient) == (
        codes.BG_E_LOCAL_FILE_CHANGED,
        ErrorContext.LOCAL_FILE,
        False,
    )
    assert classify.invalid_upload_ack("http://h/up", "x").transient
    assert not classify.invalid_upload_ack("http://h/up", "x", transient=False).transient
