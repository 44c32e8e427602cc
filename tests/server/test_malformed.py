"""Malformed packets, written byte for byte by a raw-socket client, get the status, BITS error
code and context the reference gives (MC-BUP §2.2.1.2 and §3.2.5.2.3; the reference's §7)."""

from __future__ import annotations

import pytest

from tests.server.client import INVALIDARG, PROTOCOL, Headers, Reply
from tests.server.conftest import Running


async def _raw(running: Running, request: bytes) -> Reply:
    async with running.client() as c:
        await c.send(request)
        return await c.read_reply()


async def test_missing_packet_type_is_400(running: Running) -> None:
    """BITS_POST without BITS-Packet-Type: 400 / E_INVALIDARG / 0x5."""
    reply = await _raw(
        running, b"BITS_POST /a.bin HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
    )
    assert reply.status == 400
    assert reply.error == (INVALIDARG, "0x5")
    assert reply.header("BITS-Packet-Type") == "Ack"
    assert reply.header("Content-Length") == "0"


@pytest.mark.parametrize("packet", ["Upload", "Ack", "Get-Reply-Url", "Create Session", ""])
async def test_unknown_packet_type_is_400(running: Running, packet: str) -> None:
    """A packet type that is not one of the five: 400 / E_INVALIDARG / 0x5."""
    async with running.client() as c:
        reply = await c.bits("/a.bin", packet)
    assert reply.status == 400
    assert reply.error == (INVALIDARG, "0x5")


@pytest.mark.parametrize("packet", ["PING", "ping", "pInG"])
async def test_packet_type_in_any_case(running: Running, packet: str) -> None:
    """Packet types compare case-insensitively."""
    async with running.client() as c:
        assert (await c.bits("/a.bin", packet)).status == 200


async def test_missing_content_length_is_411(running: Running) -> None:
    """A packet without Content-Length: 411 / E_INVALIDARG / 0x5 (MC-BUP's SHOULD; IIS says
    400)."""
    reply = await _raw(
        running, b"BITS_POST /a.bin HTTP/1.1\r\nHost: x\r\nBITS-Packet-Type: Ping\r\n\r\n"
    )
    assert reply.status == 411
    assert reply.error == (INVALIDARG, "0x5")


@pytest.mark.parametrize("packet", ["Ping", "Create-Session", "Close-Session", "Cancel-Session"])
async def test_body_on_a_non_fragment_packet_is_400(running: Running, packet: str) -> None:
    """Only Fragments have bodies: anything else with one is 400 / E_INVALIDARG / 0x5."""
    headers: Headers = [
        ("BITS-Supported-Protocols", PROTOCOL),
        ("BITS-Session-Id", "{0F0E0D0C-0B0A-0908-0706-050403020100}"),
    ]
    async with running.client() as c:
        reply = await c.bits("/a.bin", packet, headers, b"body")
        assert reply.status == 400
        assert reply.error == (INVALIDARG, "0x5")
        assert (await c.ping("/a.bin")).status == 200  # the body was read: in sync


@pytest.mark.parametrize(
    "protocols",
    [None, "", "{11111111-2222-3333-4444-555555555555}", "7df0354d"],
)
async def test_create_session_without_our_protocol_is_400(
    running: Running, protocols: str | None
) -> None:
    """Create-Session offering no protocol we speak: 400 / E_INVALIDARG / 0x5, no session id."""
    headers = [] if protocols is None else [("BITS-Supported-Protocols", protocols)]
    async with running.client() as c:
        reply = await c.bits("/a.bin", "Create-Session", headers)
    assert reply.status == 400
    assert reply.error == (INVALIDARG, "0x5")
    assert reply.header("BITS-Session-Id") is None
    assert not running.sessions.exists() or not any(running.sessions.iterdir())


async def test_create_session_accepts_a_list_in_any_case(running: Running) -> None:
    """Several GUIDs, comma or space separated, ours in upper case: 200, ours is chosen."""
    offer = "{11111111-2222-3333-4444-555555555555}, {7DF0354D-249B-430F-820D-3D2A9BEF4931}"
    async with running.client() as c:
        reply = await c.bits("/a.bin", "Create-Session", [("BITS-Supported-Protocols", offer)])
    assert reply.status == 200
    assert reply.header("BITS-Protocol") == PROTOCOL


async def test_fragment_without_session_id_is_400(running: Running) -> None:
    """A Fragment with no BITS-Session-Id: 400 / E_INVALIDARG / 0x5."""
    async with running.client() as c:
        reply = await c.bits("/a.bin", "Fragment", [("Content-Range", "bytes 0-0/1")], b"x")
    assert reply.status == 400
    assert reply.error == (INVALIDARG, "0x5")


@pytest.mark.parametrize(
    "content_range",
    [None, "bytes 0-3", "bytes=0-3/4", "0-3/4", "bytes 3-0/4", "bytes 0-4/4", "items 0-3/4"],
)
async def test_bad_content_range_is_400(running: Running, content_range: str | None) -> None:
    """A Fragment whose Content-Range is missing, malformed or impossible: 400 / E_INVALIDARG /
    0x5; nothing is written."""
    async with running.client() as c:
        sid = await c.create_session("/a.bin")
        headers = [("BITS-Session-Id", sid)]
        if content_range is not None:
            headers.append(("Content-Range", content_range))
        reply = await c.bits("/a.bin", "Fragment", headers, b"data")
        assert reply.status == 400
        assert reply.error == (INVALIDARG, "0x5")
    assert (running.sessions / sid / "request.bin").stat().st_size == 0


async def test_content_length_must_match_the_range(running: Running) -> None:
    """Content-Length that is not the range's length: 400 / E_INVALIDARG / 0x5."""
    async with running.client() as c:
        sid = await c.create_session("/a.bin")
        reply = await c.fragment("/a.bin", sid, 0, b"abc", 10, content_range="bytes 0-4/10")
    assert reply.status == 400
    assert reply.error == (INVALIDARG, "0x5")


async def test_content_encoding_other_than_identity_is_400(running: Running) -> None:
    """Only identity is accepted (the Create-Session Ack says so)."""
    async with running.client() as c:
        sid = await c.create_session("/a.bin")
        reply = await c.bits(
            "/a.bin",
            "Fragment",
            [
                ("BITS-Session-Id", sid),
                ("Content-Range", "bytes 0-3/4"),
                ("Content-Encoding", "gzip"),
            ],
            b"data",
        )
    assert reply.status == 400
    assert reply.error == (INVALIDARG, "0x5")


async def test_header_over_4_kb_is_400(running: Running) -> None:
    """A header value over 4 KB (a Windows server's maximum): 400 / E_INVALIDARG / 0x5."""
    async with running.client() as c:
        reply = await c.bits("/a.bin", "Ping", [("Content-Name", "n" * 4097)])
    assert reply.status == 400
    assert reply.error == (INVALIDARG, "0x5")


@pytest.mark.parametrize("method", ["GET", "HEAD", "PUT", "POST", "DELETE"])
async def test_other_methods_are_405(running: Running, method: str) -> None:
    """This server serves uploads only: other methods get 405 with Allow: BITS_POST."""
    (running.root / "a.bin").write_bytes(b"secret")
    async with running.client() as c:
        reply = await c.request(method, "/a.bin")
    assert reply.status == 405
    assert reply.header("Allow") == "BITS_POST"
    assert b"secret" not in reply.body


@pytest.mark.parametrize("target", ["/", "/a/", "/a/b/"])
async def test_destination_that_is_a_folder_is_400(running: Running, target: str) -> None:
    """A URL that names a folder: 400 / E_INVALIDARG / 0x5."""
    async with running.client() as c:
        reply = await c.bits(target, "Create-Session", [("BITS-Supported-Protocols", PROTOCOL)])
    assert reply.status == 400
    assert reply.error == (INVALIDARG, "0x5")


async def test_existing_folder_at_destination_is_400(running: Running) -> None:
    """A URL whose file name is an existing folder: 400 / E_INVALIDARG / 0x5."""
    (running.root / "folder").mkdir()
    async with running.client() as c:
        reply = await c.bits("/folder", "Create-Session", [("BITS-Supported-Protocols", PROTOCOL)])
    assert reply.status == 400
    assert reply.error == (INVALIDARG, "0x5")
