"""Whole upload sessions against the real server on loopback, driven by a raw client: Ping,
Create-Session, Fragments (in order, gaps, overlaps, duplicates, too large), Close-Session
(the file appears only then, atomically) and Cancel-Session."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from tests.server.client import (
    INVALIDARG,
    PROTOCOL,
    SESSION_NOT_FOUND,
    RawClient,
)
from tests.server.conftest import Running, digest, files_under, make_file, run_server


async def test_ping_is_an_ack_with_content_length_zero(running: Running) -> None:
    """Ping: 200, BITS-Packet-Type: Ack, Content-Length: 0, no error headers, in IIS's case."""
    async with running.client() as c:
        reply = await c.ping("/any/where.bin")
    assert reply.status == 200
    names = [name for name, _ in reply.headers]
    assert "BITS-Packet-Type" in names
    assert reply.header("BITS-Packet-Type") == "Ack"
    assert reply.header("Content-Length") == "0"
    assert reply.error == (None, None)


async def test_create_session_answers_protocol_session_and_encoding(running: Running) -> None:
    """Create-Session: the protocol GUID, a braced upper-case session id, identity encoding;
    the session exists on disk, the destination does not."""
    async with running.client() as c:
        reply = await c.bits("/a/b.bin", "Create-Session", [("BITS-Supported-Protocols", PROTOCOL)])
    assert reply.status == 200
    assert reply.header("BITS-Protocol") == PROTOCOL
    sid = reply.header("BITS-Session-Id")
    assert sid is not None
    assert sid == sid.upper()
    assert sid[0] + sid[-1] == "{}"
    assert reply.header("Accept-Encoding") == "identity"
    assert reply.header("Content-Length") == "0"
    assert (running.sessions / sid / "state.json").is_file()
    assert not (running.root / "a").exists()


async def test_one_byte_upload(running: Running) -> None:
    """One fragment of one byte, then Close-Session: the file holds that byte."""
    async with running.client() as c:
        assert (await c.ping("/one.bin")).status == 200
        sid = await c.create_session("/one.bin")
        reply = await c.fragment("/one.bin", sid, 0, b"\x7f", 1)
        assert reply.status == 200
        assert reply.received == 1
        assert reply.header("BITS-Session-Id") == sid
        assert reply.header("BITS-Reply-URL") is None
        assert not (running.root / "one.bin").exists()
        closed = await c.close_session("/one.bin", sid)
    assert closed.status == 200
    assert closed.header("BITS-Session-Id") == sid
    assert (running.root / "one.bin").read_bytes() == b"\x7f"
    assert files_under(running.root) == {"one.bin"}


@pytest.mark.parametrize("content_range", ["bytes */0", "bytes 0--1/0", "bytes 0-0/0"])
async def test_empty_upload_with_an_empty_fragment(running: Running, content_range: str) -> None:
    """A 0-byte upload: an empty fragment (any of three spellings) completes it."""
    async with running.client() as c:
        sid = await c.create_session("/empty.bin")
        reply = await c.fragment("/empty.bin", sid, 0, b"", 0, content_range=content_range)
        assert reply.status == 200
        assert reply.received == 0
        assert (await c.close_session("/empty.bin", sid)).status == 200
    assert (running.root / "empty.bin").read_bytes() == b""


async def test_empty_upload_closed_without_a_fragment(running: Running) -> None:
    """A session closed before any fragment is an empty file (nothing was announced)."""
    async with running.client() as c:
        sid = await c.create_session("/d/empty.bin")
        assert (await c.close_session("/d/empty.bin", sid)).status == 200
    assert (running.root / "d" / "empty.bin").read_bytes() == b""


async def test_200_mb_upload_in_fragments_from_disk(running: Running, tmp_path: Path) -> None:
    """200 MB in 8 MiB fragments streamed from disk with sendfile; the stored file is the
    same, byte for byte."""
    source = make_file(tmp_path / "big.bin", 200 * 1000 * 1000, seed=1)
    async with running.client() as c:
        sid, final = await c.upload("/big/file.bin", source, 8 * 1024 * 1024)
        assert final.received == 200 * 1000 * 1000
        assert not (running.root / "big" / "file.bin").exists()
        assert (await c.close_session("/big/file.bin", sid)).status == 200
    assert digest(running.root / "big" / "file.bin") == digest(source)


async def test_gap_is_416_with_the_offset_expected(running: Running) -> None:
    """A fragment after a gap: 416, BITS-Received-Content-Range = the offset expected, code 0."""
    async with running.client() as c:
        sid = await c.create_session("/g.bin")
        assert (await c.fragment("/g.bin", sid, 0, b"a" * 100, 300)).received == 100
        reply = await c.fragment("/g.bin", sid, 150, b"b" * 50, 300)
        assert reply.status == 416
        assert reply.received == 100
        assert reply.error == ("0x00000000", "0x5")
        assert reply.header("BITS-Session-Id") == sid
        # the connection goes on; the client continues from 100
        assert (await c.fragment("/g.bin", sid, 100, b"c" * 200, 300)).received == 300
        assert (await c.close_session("/g.bin", sid)).status == 200
    assert (running.root / "g.bin").read_bytes() == b"a" * 100 + b"c" * 200


async def test_overlap_writes_only_the_new_part(running: Running) -> None:
    """0-100 then 50-150: bytes 101-150 come from the second fragment (SDK's example), and
    existing bytes are not overwritten."""
    async with running.client() as c:
        sid = await c.create_session("/o.bin")
        assert (await c.fragment("/o.bin", sid, 0, b"A" * 101, 151)).received == 101
        reply = await c.fragment("/o.bin", sid, 50, b"B" * 101, 151)
        assert reply.status == 200
        assert reply.received == 151
        assert (await c.close_session("/o.bin", sid)).status == 200
    assert (running.root / "o.bin").read_bytes() == b"A" * 101 + b"B" * 50


async def test_duplicate_is_200_with_the_current_offset(running: Running) -> None:
    """A fragment received already (a retransmission after a lost Ack): 200, nothing written,
    the current offset."""
    async with running.client() as c:
        sid = await c.create_session("/dup.bin")
        await c.fragment("/dup.bin", sid, 0, b"1" * 10, 30)
        await c.fragment("/dup.bin", sid, 10, b"2" * 10, 30)
        reply = await c.fragment("/dup.bin", sid, 0, b"X" * 10, 30)
        assert reply.status == 200
        assert reply.received == 20
        assert reply.error == (None, None)
        await c.fragment("/dup.bin", sid, 20, b"3" * 10, 30)
        again = await c.fragment("/dup.bin", sid, 20, b"Y" * 10, 30)
        assert again.status == 200
        assert again.received == 30
        assert (await c.close_session("/dup.bin", sid)).status == 200
    assert (running.root / "dup.bin").read_bytes() == b"1" * 10 + b"2" * 10 + b"3" * 10


async def test_too_large_fragment_is_413_and_the_connection_goes_on(root: Path) -> None:
    """A fragment over max_fragment_size: 413 with the offset, before its body is stored; the
    client shrinks it and continues on the same connection."""
    async with run_server(root, max_fragment_size=1024) as running, running.client() as c:
        sid = await c.create_session("/t.bin")
        reply = await c.fragment("/t.bin", sid, 0, b"x" * 2048, 2048)
        assert reply.status == 413
        assert reply.received == 0
        assert reply.error == ("0x8019019D", "0x5")
        assert (running.sessions / sid / "request.bin").stat().st_size == 0
        assert (await c.fragment("/t.bin", sid, 0, b"x" * 1024, 2048)).received == 1024
        assert (await c.fragment("/t.bin", sid, 1024, b"y" * 1024, 2048)).received == 2048


async def test_total_must_not_change(running: Running) -> None:
    """A later fragment with another total: 400 / E_INVALIDARG, with the offset."""
    async with running.client() as c:
        sid = await c.create_session("/tot.bin")
        await c.fragment("/tot.bin", sid, 0, b"x" * 10, 20)
        reply = await c.fragment("/tot.bin", sid, 10, b"x" * 10, 25)
    assert reply.status == 400
    assert reply.received == 10
    assert reply.error == (INVALIDARG, "0x5")


@pytest.mark.parametrize("packet", ["Fragment", "Close-Session", "Cancel-Session"])
@pytest.mark.parametrize(
    "session_id", ["{0F0E0D0C-0B0A-0908-0706-050403020100}", "not-a-guid", "12345"]
)
async def test_unknown_session_is_500_session_not_found(
    running: Running, packet: str, session_id: str
) -> None:
    """A session this server does not know (or an id that is no GUID): 500, BG_E_SESSION_NOT_FOUND,
    context 0x5, and the id is not echoed."""
    headers = [("BITS-Session-Id", session_id)]
    body = None
    if packet == "Fragment":
        headers.append(("Content-Range", "bytes 0-3/4"))
        body = b"data"
    async with running.client() as c:
        reply = await c.bits("/u.bin", packet, headers, body)
    assert reply.status == 500
    assert reply.error == (SESSION_NOT_FOUND, "0x5")
    assert reply.header("BITS-Session-Id") is None


async def test_session_belongs_to_its_url(running: Running) -> None:
    """A session created for one URL is unknown at another."""
    async with running.client() as c:
        sid = await c.create_session("/mine.bin")
        reply = await c.fragment("/other.bin", sid, 0, b"x", 1)
    assert reply.status == 500
    assert reply.error == (SESSION_NOT_FOUND, "0x5")


async def test_file_appears_only_on_close_and_atomically(running: Running) -> None:
    """Until Close-Session nothing is at the destination (not even after the last fragment);
    Close moves the received file there in one step (same inode: a rename, not a copy)."""
    async with running.client() as c:
        sid = await c.create_session("/x/y/final.bin")
        await c.fragment("/x/y/final.bin", sid, 0, b"p" * 5000, 10000)
        assert files_under(running.root) == set()
        await c.fragment("/x/y/final.bin", sid, 5000, b"q" * 5000, 10000)
        assert files_under(running.root) == set()
        inode = os.stat(running.sessions / sid / "request.bin").st_ino
        assert (await c.close_session("/x/y/final.bin", sid)).status == 200
    final = running.root / "x" / "y" / "final.bin"
    assert os.stat(final).st_ino == inode
    assert final.read_bytes() == b"p" * 5000 + b"q" * 5000
    assert files_under(running.root) == {"x", "x/y", "x/y/final.bin"}
    assert not (running.sessions / sid / "request.bin").exists()


async def test_close_is_replayed_and_later_packets_find_no_session(running: Running) -> None:
    """A repeated Close-Session (its Ack was lost) gets 200 again; a Fragment after Close does
    not find the session; Cancel after Close has no effect (200) and the file stays."""
    async with running.client() as c:
        sid = await c.create_session("/r.bin")
        await c.fragment("/r.bin", sid, 0, b"z", 1)
        assert (await c.close_session("/r.bin", sid)).status == 200
        assert (await c.close_session("/r.bin", sid)).status == 200
        late = await c.fragment("/r.bin", sid, 0, b"z", 1)
        assert late.status == 500
        assert late.error == (SESSION_NOT_FOUND, "0x5")
        assert (await c.cancel_session("/r.bin", sid)).status == 200
    assert (running.root / "r.bin").read_bytes() == b"z"


async def test_close_before_the_upload_is_complete_discards_it(running: Running) -> None:
    """Close-Session with bytes missing: 400 / E_INVALIDARG, the upload is deleted, no file."""
    async with running.client() as c:
        sid = await c.create_session("/part.bin")
        await c.fragment("/part.bin", sid, 0, b"x" * 10, 20)
        reply = await c.close_session("/part.bin", sid)
        assert reply.status == 400
        assert reply.error == (INVALIDARG, "0x5")
        assert (await c.fragment("/part.bin", sid, 10, b"x" * 10, 20)).status == 500
    assert not (running.root / "part.bin").exists()
    assert not (running.sessions / sid).exists()


async def test_cancel_deletes_the_data(running: Running) -> None:
    """Cancel-Session: 200, the data is gone, nothing is placed, a repeated Cancel is 200, and
    the session is gone for other packets."""
    async with running.client() as c:
        sid = await c.create_session("/c.bin")
        await c.fragment("/c.bin", sid, 0, b"x" * 10, 10)
        assert (await c.cancel_session("/c.bin", sid)).status == 200
        assert not (running.sessions / sid / "request.bin").exists()
        assert (await c.cancel_session("/c.bin", sid)).status == 200
        closed = await c.close_session("/c.bin", sid)
        assert closed.status == 500
        assert closed.error == (SESSION_NOT_FOUND, "0x5")
    assert not (running.root / "c.bin").exists()


async def test_existing_file_is_not_overwritten_unless_allowed(root: Path) -> None:
    """By default (IIS's BITSAllowOverwrites=0) an existing destination is 409 / E_ACCESSDENIED
    at Create-Session; with allow_overwrites it is replaced on Close."""
    (root / "exists.bin").write_bytes(b"old")
    async with run_server(root) as running, running.client() as c:
        reply = await c.bits(
            "/exists.bin", "Create-Session", [("BITS-Supported-Protocols", PROTOCOL)]
        )
        assert reply.status == 409
        assert reply.error == ("0x80070005", "0x5")
    async with run_server(root, allow_overwrites=True) as running, running.client() as c:
        sid = await c.create_session("/exists.bin")
        await c.fragment("/exists.bin", sid, 0, b"new", 3)
        assert (await c.close_session("/exists.bin", sid)).status == 200
    assert (root / "exists.bin").read_bytes() == b"new"


async def test_a_file_created_meanwhile_is_not_overwritten(running: Running) -> None:
    """Another upload that closed first wins: the second Close is 409 and does not replace it."""
    async with running.client() as c:
        first = await c.create_session("/race.bin")
        second = await c.create_session("/race.bin")
        await c.fragment("/race.bin", first, 0, b"first", 5)
        await c.fragment("/race.bin", second, 0, b"secnd", 5)
        assert (await c.close_session("/race.bin", first)).status == 200
        reply = await c.close_session("/race.bin", second)
    assert reply.status == 409
    assert reply.error == ("0x80070005", "0x5")
    assert (running.root / "race.bin").read_bytes() == b"first"


async def test_fragments_on_several_connections(running: Running) -> None:
    """A session is not tied to a connection: each fragment may come on a new one."""
    async with running.client() as c:
        sid = await c.create_session("/multi.bin")
    for i in range(3):
        async with RawClient("127.0.0.1", running.serving.port) as c:
            assert (await c.ping("/multi.bin")).status == 200
            reply = await c.fragment("/multi.bin", sid, i * 4, b"%04d" % i, 12)
            assert reply.received == (i + 1) * 4
    async with running.client() as c:
        assert (await c.close_session("/multi.bin", sid)).status == 200
    assert (running.root / "multi.bin").read_bytes() == b"000000010002"


async def test_dropped_connection_mid_fragment_keeps_what_arrived(running: Running) -> None:
    """A connection that drops in the middle of a fragment: the bytes that arrived are kept,
    and the next fragment is placed from the server's offset."""
    async with running.client() as c:
        sid = await c.create_session("/drop.bin")
        head = (
            "BITS_POST /drop.bin HTTP/1.1\r\nHost: x\r\nBITS-Packet-Type: Fragment\r\n"
            f"BITS-Session-Id: {sid}\r\nContent-Range: bytes 0-999/1000\r\n"
            "Content-Length: 1000\r\n\r\n"
        )
        await c.send(head.encode() + b"a" * 600)
    request = running.sessions / sid / "request.bin"
    for _ in range(500):
        if request.stat().st_size == 600:
            break
        await asyncio.sleep(0.01)
    assert request.stat().st_size == 600
    async with running.client() as c:
        resumed = await c.fragment("/drop.bin", sid, 800, b"c" * 200, 1000)
        assert resumed.status == 416
        assert resumed.received == 600
        reply = await c.fragment("/drop.bin", sid, 0, b"b" * 1000, 1000)
        assert reply.received == 1000
        assert (await c.close_session("/drop.bin", sid)).status == 200
    assert (running.root / "drop.bin").read_bytes() == b"a" * 600 + b"b" * 400


async def test_expect_100_continue(running: Running) -> None:
    """A fragment sent with Expect: 100-continue gets 100 Continue before its body is read; a
    fragment refused before its body (a gap) gets its Ack at once with Connection: close, so
    that a client that never sends the body is not left out of step."""
    async with running.client() as c:
        sid = await c.create_session("/e.bin")
        head = (
            "BITS_POST /e.bin HTTP/1.1\r\nHost: x\r\nBITS-Packet-Type: Fragment\r\n"
            f"BITS-Session-Id: {sid}\r\nContent-Range: bytes 0-3/8\r\nContent-Length: 4\r\n"
            "Expect: 100-continue\r\n\r\n"
        )
        await c.send(head.encode())
        assert (await c.read_reply()).status == 100
        await c.send(b"abcd")
        reply = await c.read_reply()
        assert reply.status == 200
        assert reply.received == 4
        assert reply.header("Connection") is None
        await c.send(head.replace("0-3/8", "6-7/8").replace("Length: 4", "Length: 2").encode())
        gap = await c.read_reply()
        assert gap.status == 416
        assert gap.received == 4
        assert gap.header("Connection") == "close"
