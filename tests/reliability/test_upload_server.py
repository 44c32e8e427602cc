"""The upload server (``bitsd.server``) under attack on loopback: a malformed-packet matrix
sent while a real upload is in progress on another connection, path traversal, oversize
uploads and fragments, and slow or stalled clients. Each fault gets the status, BITS error code
and context of docs/upload-server.md; nothing is written outside the root; the honest upload
finishes byte-identical."""

from __future__ import annotations

import asyncio
import hashlib
import random
import time
from dataclasses import dataclass
from pathlib import Path

from tests.reliability.conftest import Held
from tests.server.client import (
    ACCESSDENIED,
    INVALIDARG,
    PROTOCOL,
    SESSION_NOT_FOUND,
    TOO_LARGE,
    RawClient,
    Reply,
)
from tests.server.conftest import Running, clock, files_under, root, run_server, running
from tests.server.test_confinement import TRAVERSALS

__all__ = ["clock", "root", "running"]  # the upload server tier's fixtures, used below

SID = "{0F0E0D0C-0B0A-0908-0706-050403020100}"
PING = b"BITS_POST /a.bin HTTP/1.1\r\nHost: x\r\nBITS-Packet-Type: Ping\r\n"


@dataclass(frozen=True)
class Bad:
    """A malformed packet (``{sid}`` is replaced by a live session id) and its answer."""

    name: str
    request: bytes
    status: int
    code: str | None = INVALIDARG
    context: str | None = "0x5"


def _packet(packet: str, headers: str = "", body: bytes = b"", length: int | None = None) -> bytes:
    size = len(body) if length is None else length
    return (
        f"BITS_POST /m.bin HTTP/1.1\r\nHost: x\r\nBITS-Packet-Type: {packet}\r\n{headers}"
        f"Content-Length: {size}\r\n\r\n"
    ).encode() + body


MATRIX = [
    Bad(
        "no packet type", b"BITS_POST /m.bin HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", 400
    ),
    Bad("unknown packet type", _packet("Upload"), 400),
    Bad("no Content-Length", PING + b"\r\n", 411),
    Bad("a body on a Ping", _packet("Ping", body=b"body"), 400),
    Bad("Create-Session offering no protocol we speak", _packet("Create-Session"), 400),
    Bad(
        "Create-Session offering another protocol",
        _packet("Create-Session", "BITS-Supported-Protocols: {11111111-2222-3333-4444-5555}\r\n"),
        400,
    ),
    Bad("Fragment without a session id", _packet("Fragment", body=b"x"), 400),
    Bad(
        "Fragment of an unknown session",
        _packet("Fragment", f"BITS-Session-Id: {SID}\r\nContent-Range: bytes 0-0/1\r\n", b"x"),
        500,
        SESSION_NOT_FOUND,
    ),
    Bad(
        "Fragment with a session id that is no GUID",
        _packet(
            "Fragment", "BITS-Session-Id: {not-a-guid}\r\nContent-Range: bytes 0-0/1\r\n", b"x"
        ),
        500,
        SESSION_NOT_FOUND,
    ),
    *(
        Bad(
            f"Fragment with Content-Range {value!r}",
            _packet("Fragment", "BITS-Session-Id: {sid}\r\n" + value, b"data"),
            400,
        )
        for value in (
            "",
            "Content-Range: bytes 0-3\r\n",
            "Content-Range: bytes=0-3/4\r\n",
            "Content-Range: bytes 3-0/4\r\n",
            "Content-Range: bytes 0-4/4\r\n",
            "Content-Range: items 0-3/4\r\n",
            "Content-Range: bytes -1-2/4\r\n",
            "Content-Range: bytes 0-3/99999999999999999999\r\n",
        )
    ),
    Bad(
        "Content-Length not the range's length",
        _packet("Fragment", "BITS-Session-Id: {sid}\r\nContent-Range: bytes 0-4/10\r\n", b"abc"),
        400,
    ),
    Bad(
        "Content-Encoding gzip",
        _packet(
            "Fragment",
            "BITS-Session-Id: {sid}\r\nContent-Range: bytes 0-3/4\r\nContent-Encoding: gzip\r\n",
            b"data",
        ),
        400,
    ),
    Bad(
        "a fragment that leaves a gap",
        _packet("Fragment", "BITS-Session-Id: {sid}\r\nContent-Range: bytes 2-3/4\r\n", b"ta"),
        416,
        "0x00000000",
    ),
    Bad("a header value over 4 KB", _packet("Ping", "Content-Name: " + "n" * 4097 + "\r\n"), 400),
    Bad("GET", b"GET /m.bin HTTP/1.1\r\nHost: x\r\n\r\n", 405, None, None),
]


async def _send(running: Running, raw: bytes) -> Reply:
    async with running.client() as c:
        await c.send(raw)
        return await c.read_reply()


async def test_malformed_packets_during_an_upload(
    running: Running, tmp_path: Path, held: Held
) -> None:
    """Each malformed packet of the matrix (sent while another connection uploads a 4 MB file
    fragment by fragment) gets its documented status, BITS-Error-Code and context; nothing
    appears outside the root, and the honest upload completes byte-identical."""
    data = random.Random(3).randbytes(4_000_000)
    before = files_under(tmp_path)
    async with running.client() as honest, running.client() as victim_owner:
        sid = await honest.create_session("/honest.bin")
        victim = await victim_owner.create_session("/m.bin")
        offset = 0
        for bad in MATRIX:
            reply = await _send(running, bad.request.replace(b"{sid}", victim.encode()))
            assert reply.status == bad.status, (bad.name, reply)
            assert reply.error == (bad.code, bad.context), (bad.name, reply)
            piece = data[offset : offset + 100_000]
            answer = await honest.fragment("/honest.bin", sid, offset, piece, len(data))
            assert answer.status == 200, (bad.name, answer)
            offset += len(piece)
        while offset < len(data):
            piece = data[offset : offset + 1_000_000]
            assert (
                await honest.fragment("/honest.bin", sid, offset, piece, len(data))
            ).status == 200
            offset += len(piece)
        assert (await honest.close_session("/honest.bin", sid)).status == 200
    assert hashlib.sha256((running.root / "honest.bin").read_bytes()).digest() == (
        hashlib.sha256(data).digest()
    )
    assert not (running.root / "m.bin").exists()
    assert files_under(tmp_path) - before <= {"root/honest.bin"}
    held(
        "upload server",
        f"malformed packets ({len(MATRIX)}: no or unknown packet type, no Content-Length, a body "
        "where none belongs, no or foreign protocol, a missing session id (400), unknown or "
        "non-GUID ones (500 BG_E_SESSION_NOT_FOUND), "
        "8 bad Content-Ranges, a wrong Content-Length, gzip, a gap, a 4 KB+ header, GET) "
        "while another connection uploaded: each answered with its documented status, "
        "BITS-Error-Code and context; the upload finished byte-identical, nothing else written",
        len(MATRIX),
    )


async def test_traversal_writes_nothing_anywhere(
    running: Running, tmp_path: Path, held: Held
) -> None:
    """Every traversal form of the confinement tests, and the server's own names, through a
    whole upload attempt (Create-Session, a Fragment, Close-Session): refused at once
    (400 E_INVALIDARG or 403 E_ACCESSDENIED); no file appears outside the root or in it."""
    before = files_under(tmp_path)
    targets = [*TRAVERSALS, "/.bits-sessions/x.bin", "/a/.BITS-Replies/x.bin"]
    for target in targets:
        async with running.client() as c:
            reply = await c.bits(target, "Create-Session", [("BITS-Supported-Protocols", PROTOCOL)])
            assert (reply.status, reply.error) in (
                (400, (INVALIDARG, "0x5")),
                (403, (ACCESSDENIED, "0x5")),
            ), (target, reply)
            fragment = await c.fragment(target, SID, 0, b"evil", 4)
            assert fragment.status in (400, 403, 500), (target, fragment)
            assert fragment.status != 500 or fragment.error[0] == SESSION_NOT_FOUND
            assert (await c.close_session(target, SID)).status in (400, 403, 500)
    assert files_under(tmp_path) == before
    held(
        "upload server",
        f"path traversal ({len(targets)} targets: .., percent-encoded, backslashed, NUL, "
        "absolute-form, the server's own .bits- names) through Create-Session, Fragment and "
        "Close-Session: refused (400 E_INVALIDARG / 403 E_ACCESSDENIED; a Fragment or Close "
        "of no session 500 BG_E_SESSION_NOT_FOUND), nothing written anywhere",
        len(targets),
    )


async def test_oversize_uploads_and_fragments(tmp_path: Path, held: Held) -> None:
    """An upload announcing more than max_upload_size is refused at its first fragment (500
    BG_E_TOO_LARGE) before a byte is written; a fragment body over max_fragment_size gets 413
    (the client shrinks its fragments) and writes nothing; a fragment past the announced end
    is 400; the session still accepts a proper upload afterwards."""
    root = tmp_path / "root"
    root.mkdir()
    async with run_server(root, max_upload_size=10_000, max_fragment_size=4096) as running:
        async with running.client() as c:
            sid = await c.create_session("/big.bin")
            too_large = await c.fragment("/big.bin", sid, 0, b"x" * 100, 10_001)
            assert (too_large.status, too_large.error) == (500, (TOO_LARGE, "0x5"))
            assert (running.sessions / sid / "request.bin").stat().st_size == 0
            sid = await c.create_session("/ok.bin")
            big_fragment = await c.fragment("/ok.bin", sid, 0, b"y" * 5000, 9000)
            assert big_fragment.status == 413
            assert (running.sessions / sid / "request.bin").stat().st_size == 0
            beyond = await c.fragment(
                "/ok.bin", sid, 0, b"z" * 10, 9000, content_range="bytes 8995-9004/9000"
            )
            assert beyond.status in (400, 416)
            data = random.Random(4).randbytes(9000)
            for first in range(0, 9000, 4096):
                piece = data[first : first + 4096]
                assert (await c.fragment("/ok.bin", sid, first, piece, 9000)).status == 200
            assert (await c.close_session("/ok.bin", sid)).status == 200
        assert (root / "ok.bin").read_bytes() == data
        assert not (root / "big.bin").exists()
    held(
        "upload server",
        "oversize: a total over max_upload_size refused at the first fragment (500 "
        "BG_E_TOO_LARGE, 0 bytes written); a fragment over max_fragment_size 413 (nothing "
        "written); a range past the announced end refused; the session then completed "
        "byte-identical",
    )


async def test_stalled_clients_do_not_block_uploads(running: Running, held: Held) -> None:
    """While 20 connections stall (half a head; a Fragment head announcing 1 MB whose body
    never comes), a normal client pings and uploads 1 MB in fragments quickly."""
    stalled: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    for i in range(20):
        reader, writer = await asyncio.open_connection("127.0.0.1", running.serving.port)
        if i % 2:
            writer.write(b"BITS_POST /s.bin HTTP/1.1\r\nHost: x\r\nBITS-Pack")
        else:
            writer.write(
                _packet(
                    "Fragment",
                    f"BITS-Session-Id: {SID}\r\nContent-Range: bytes 0-1048575/1048576\r\n",
                    b"partial",
                    length=1_048_576,
                )
            )
        await writer.drain()
        stalled.append((reader, writer))
    try:
        data = random.Random(5).randbytes(1_048_576)
        began = time.monotonic()
        async with RawClient("127.0.0.1", running.serving.port) as c:
            assert (await c.ping("/fine.bin")).status == 200
            sid = await c.create_session("/fine.bin")
            for first in range(0, len(data), 262_144):
                piece = data[first : first + 262_144]
                assert (await c.fragment("/fine.bin", sid, first, piece, len(data))).status == 200
            assert (await c.close_session("/fine.bin", sid)).status == 200
        took = time.monotonic() - began
        assert took < 5, took
    finally:
        for _, writer in stalled:
            writer.close()
    assert (running.root / "fine.bin").read_bytes() == data
    held(
        "upload server",
        f"slowloris: 20 connections stalled (half a head; a Fragment announcing 1 MB that never "
        f"came); a normal client uploaded 1 MB in 4 fragments meanwhile in {took * 1000:.0f} ms",
        20,
    )
