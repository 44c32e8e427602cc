"""The pure protocol rules of the upload server (bitsd.server.protocol): packet types, session
ids, protocol negotiation, Content-Range, the in-order placement rule, Acks and the mapping of
server application failures."""

from __future__ import annotations

import pytest

from bitsd.server.protocol import (
    PROTOCOL_GUID,
    Ack,
    ContentRange,
    ErrorContext,
    PacketError,
    PacketType,
    Placement,
    application_failure,
    choose_protocol,
    is_transient,
    new_session_id,
    packet_type,
    parse_content_range,
    parse_session_id,
    place,
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Ping", PacketType.PING),
        ("PING", PacketType.PING),
        ("CreatE-SEssION", PacketType.CREATE_SESSION),
        ("FRAgmENT", PacketType.FRAGMENT),
        (" Close-Session ", PacketType.CLOSE_SESSION),
        ("cANcel-sesSION", PacketType.CANCEL_SESSION),
        ("Ack", None),
        ("Get-Reply-Url", None),
        ("", None),
        (None, None),
    ],
)
def test_packet_types_compare_case_insensitively(value: str | None, expected: object) -> None:
    """Packet types match in any case (transfervm's tests send CreatE-SEssION); others do not."""
    assert packet_type(value) == expected


def test_new_session_ids_are_braced_upper_case_guids() -> None:
    """A session id looks like IIS's: {XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX}, upper case."""
    sid = new_session_id()
    assert sid[0] + sid[-1] == "{}"
    assert len(sid) == 38
    assert sid == sid.upper()
    assert parse_session_id(sid) == sid
    assert new_session_id() != sid


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("{c85b4e0a-9eb9-4114-bfa4-8a43b4710091}", "{C85B4E0A-9EB9-4114-BFA4-8A43B4710091}"),
        ("C85B4E0A-9EB9-4114-BFA4-8A43B4710091", "{C85B4E0A-9EB9-4114-BFA4-8A43B4710091}"),
        ("c85b4e0a9eb94114bfa48a43b4710091", None),
        ("1234567890", None),
        ("{../../etc}", None),
        ("", None),
        (None, None),
    ],
)
def test_session_ids_are_read_leniently_but_only_as_guids(
    value: str | None, expected: str | None
) -> None:
    """Any case, braces optional; anything but a GUID names no session (never a path)."""
    assert parse_session_id(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (PROTOCOL_GUID, PROTOCOL_GUID),
        ("{7DF0354D-249B-430F-820D-3D2A9BEF4931}", PROTOCOL_GUID),
        (
            "{11111111-2222-3333-4444-555555555555} {7df0354d-249b-430f-820d-3d2a9bef4931}",
            PROTOCOL_GUID,
        ),
        (
            "{11111111-2222-3333-4444-555555555555},{7df0354d-249b-430f-820d-3d2a9bef4931}",
            PROTOCOL_GUID,
        ),
        ("{11111111-2222-3333-4444-555555555555}", None),
        ("", None),
        (None, None),
    ],
)
def test_protocol_lists_split_on_spaces_or_commas(value: str | None, expected: str | None) -> None:
    """BITS-Supported-Protocols is a space or comma list; the GUID matches in any case."""
    assert choose_protocol(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("bytes 0-4891/4892", ContentRange(0, 4891, 4892)),
        ("Bytes 128-212/1000", ContentRange(128, 212, 1000)),
        ("bytes 9-9/10", ContentRange(9, 9, 10)),
        ("bytes */0", ContentRange(0, -1, 0)),
        ("bytes 0--1/0", ContentRange(0, -1, 0)),
        ("bytes 0-0/0", ContentRange(0, -1, 0)),
    ],
)
def test_content_ranges_parse(value: str, expected: ContentRange) -> None:
    """bytes first-last/total, inclusive; the empty upload has three spellings."""
    assert parse_content_range(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "bytes 0-4",
        "bytes=0-4/5",
        "0-4/5",
        "bytes 5-2/10",
        "bytes 0-10/10",
        "bytes -1-4/5",
        "bytes 0-4/*",
        "bytes 0-4/5, 6-7/8",
        "bytes 1-0/0",
        f"bytes 0-1/{2**63}",
    ],
)
def test_bad_content_ranges_are_400_invalidarg(value: str | None) -> None:
    """A missing, malformed or impossible Content-Range is 400 / E_INVALIDARG / context 0x5."""
    with pytest.raises(PacketError) as info:
        parse_content_range(value)
    assert (info.value.status, info.value.code) == (400, 0x80070057)
    assert info.value.context is ErrorContext.REMOTE_FILE


@pytest.mark.parametrize(
    ("received", "fragment", "expected"),
    [
        (0, ContentRange(0, 99, 300), Placement(True, 0, 100)),  # in order
        (100, ContentRange(101, 150, 300), Placement(False)),  # gap
        (101, ContentRange(50, 150, 300), Placement(True, 51, 50)),  # overlap: new part only
        (100, ContentRange(100, 100, 300), Placement(True, 0, 1)),
        (150, ContentRange(0, 99, 300), Placement(True, 100, 0)),  # duplicate
        (150, ContentRange(50, 149, 300), Placement(True, 100, 0)),  # duplicate ending at 149
        (300, ContentRange(200, 299, 300), Placement(True, 100, 0)),  # final, again
        (0, ContentRange(0, -1, 0), Placement(True, 0, 0)),  # the empty upload
    ],
)
def test_placement_is_in_order(received: int, fragment: ContentRange, expected: Placement) -> None:
    """Gap: out of sync; overlap: only the new bytes; duplicate: nothing to write."""
    assert place(received, fragment) == expected


def test_ack_headers_in_order_with_content_length_zero() -> None:
    """A success Ack has no error headers; every Ack ends with Content-Length: 0."""
    ack = Ack(session_id="{S}", received=213, reply_url="r")
    assert ack.headers() == [
        ("BITS-Packet-Type", "Ack"),
        ("BITS-Session-Id", "{S}"),
        ("BITS-Received-Content-Range", "213"),
        ("BITS-Reply-URL", "r"),
        ("Content-Length", "0"),
    ]


def test_error_acks_carry_hex_code_and_context() -> None:
    """Non-2xx Acks carry BITS-Error-Code as 0x%08X and the context as hex."""
    ack = PacketError(500, 0x8020001F, "gone").ack(None)
    assert ("BITS-Error-Code", "0x8020001F") in ack.headers()
    assert ("BITS-Error-Context", "0x5") in ack.headers()
    app = PacketError(502, 0x801901F6, "x", context=ErrorContext.REMOTE_APPLICATION).ack(None)
    assert ("BITS-Error-Context", "0x7") in app.headers()
    gap = PacketError(416, 0, "gap", received=7).ack("{S}")
    assert ("BITS-Error-Code", "0x00000000") in gap.headers()
    assert ("BITS-Received-Content-Range", "7") in gap.headers()


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (500, (500, 0x801901F4)),
        (503, (503, 0x801901F7)),
        (403, (403, 0x80190193)),
        (404, (404, 0x80190194)),
        (409, (409, 0x80190199)),
        (302, (302, 0x8019012E)),
        (401, (400, 0x80190191)),
        (407, (400, 0x80190197)),
        (413, (400, 0x8019019D)),
        (416, (400, 0x801901A0)),
        (100, (502, 0x801901F6)),
    ],
)
def test_application_failures_keep_their_status_class(
    status: int, expected: tuple[int, int]
) -> None:
    """The application's status passes through (the client classifies it) unless it would mean
    authentication, a smaller fragment or a resync on this hop; the code names the original."""
    assert application_failure(status) == expected


@pytest.mark.parametrize(
    ("status", "transient"),
    [
        (300, False),
        (305, False),
        (306, True),
        (307, False),
        (308, True),
        (400, False),
        (403, False),
        (408, True),
        (409, True),
        (500, True),
        (501, False),
        (503, True),
        (505, False),
        (600, True),
    ],
)
def test_retry_classification_of_application_errors(status: int, transient: bool) -> None:
    """SDK "Handling Server Application Errors": 3xx transient but 300-305 and 307; 4xx fatal
    but 408 and 409; 5xx transient but 501 and 505; anything else transient."""
    assert is_transient(status) is transient
