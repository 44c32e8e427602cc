"""Uploads stay under the root: traversal (plain, percent-encoded, backslashed, absolute-form),
the server's own names, and symlinks that lead outside are refused; nothing is written outside.
The pure path rules (bitsd.server.paths) first, then the same attempts on the wire."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from bitsd.server import Serving, make_app
from bitsd.server.paths import (
    DestinationExists,
    ForbiddenPath,
    InvalidPath,
    PathConflict,
    Root,
    route_segments,
)
from tests.server.client import ACCESSDENIED, INVALIDARG, PROTOCOL, RawClient
from tests.server.conftest import Running, files_under, run_server

TRAVERSALS = [
    "/../x.bin",
    "/a/../../x.bin",
    "/%2e%2e/x.bin",
    "/%2E%2E/x.bin",
    "/a/%2e%2e/%2e%2e/x.bin",
    "/.%2e/x.bin",
    "/..%2fx.bin",
    "/a%2f..%2f..%2fx.bin",
    "/..%5cx.bin",
    "/..\\x.bin",
    "/./x.bin",
    "//x.bin",
    "/a//x.bin",
    "/%00x.bin",
    "/x%0a.bin",
    "/%ff.bin",
    "http://127.0.0.1/../x.bin",
    "x.bin",
]


@pytest.mark.parametrize(
    ("raw", "root_path", "expected"),
    [
        (b"/a/b.bin", "", ("a", "b.bin")),
        (b"/a%20b/c%2Bd.bin", "", ("a b", "c+d.bin")),
        (b"/%E2%82%AC.bin", "", ("\u20ac.bin",)),
        (b"/%252e%252e/x", "", ("%2e%2e", "x")),  # decoded once: a literal name
        (b"/uploads/a/b.bin", "/uploads", ("a", "b.bin")),
        (b"/other/a/b.bin", "/uploads", ("other", "a", "b.bin")),
        (b"http://host:8080/a/b.bin", "", ("a", "b.bin")),
    ],
)
def test_route_segments(raw: bytes, root_path: str, expected: tuple[str, ...]) -> None:
    """Segments are split before decoding, decoded once, and the mount point's are dropped."""
    assert route_segments(raw, root_path) == expected


@pytest.mark.parametrize("target", TRAVERSALS)
def test_traversal_segments_are_invalid(target: str) -> None:
    """'.', '..', empty segments, encoded separators, NUL, control characters, bad UTF-8 and
    non-paths are refused before any file system access."""
    with pytest.raises(InvalidPath):
        route_segments(target.encode("latin-1"))


def test_root_refuses_symlinks_out_but_follows_symlinks_in(tmp_path: Path) -> None:
    """A symlinked folder leading outside the root is forbidden; one inside is followed."""
    root = tmp_path / "root"
    (root / "real").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    (root / "out").symlink_to(tmp_path / "outside")
    (root / "in").symlink_to(root / "real")
    (root / "file").write_bytes(b"")
    r = Root(root)
    with pytest.raises(ForbiddenPath):
        r.inspect(("out", "x.bin"), overwrite=False)
    with pytest.raises(ForbiddenPath):
        r.inspect(("out", "deeper", "x.bin"), overwrite=False)
    with pytest.raises(PathConflict):
        r.inspect(("file", "x.bin"), overwrite=False)
    r.inspect(("in", "x.bin"), overwrite=False)
    source = tmp_path / "data"
    source.write_bytes(b"data")
    assert r.place(source, ("in", "x.bin"), overwrite=False) == root / "in" / "x.bin"
    assert (root / "real" / "x.bin").read_bytes() == b"data"
    assert not source.exists()
    source.write_bytes(b"again")
    with pytest.raises(DestinationExists):
        r.place(source, ("in", "x.bin"), overwrite=False)


@pytest.mark.parametrize("target", TRAVERSALS)
async def test_traversal_on_the_wire_is_400(running: Running, tmp_path: Path, target: str) -> None:
    """Each traversal attempt is refused at Create-Session (400 / E_INVALIDARG / 0x5) and
    nothing appears outside the root (or inside it)."""
    before = files_under(tmp_path)
    async with running.client() as c:
        reply = await c.bits(target, "Create-Session", [("BITS-Supported-Protocols", PROTOCOL)])
    assert reply.status == 400, target
    assert reply.error == (INVALIDARG, "0x5")
    assert files_under(tmp_path) == before


@pytest.mark.parametrize(
    "target", ["/.bits-sessions/x.bin", "/a/.BITS-Replies/x.bin", "/.bits-sessions", "/.bits-x"]
)
async def test_server_names_are_403(running: Running, target: str) -> None:
    """Names starting with .bits- are the server's: 403 / E_ACCESSDENIED / 0x5."""
    async with running.client() as c:
        reply = await c.bits(target, "Create-Session", [("BITS-Supported-Protocols", PROTOCOL)])
    assert reply.status == 403
    assert reply.error == (ACCESSDENIED, "0x5")


async def test_symlink_escape_is_403(running: Running, tmp_path: Path) -> None:
    """A folder under the root that is a symlink to elsewhere: 403 / E_ACCESSDENIED / 0x5."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (running.root / "link").symlink_to(outside)
    async with running.client() as c:
        reply = await c.bits(
            "/link/x.bin", "Create-Session", [("BITS-Supported-Protocols", PROTOCOL)]
        )
    assert reply.status == 403
    assert reply.error == (ACCESSDENIED, "0x5")
    assert list(outside.iterdir()) == []


async def test_symlink_swapped_in_before_close_is_403(running: Running, tmp_path: Path) -> None:
    """A folder replaced by a symlink to elsewhere while the upload runs: Close-Session is 403
    and nothing is written outside; the session stays for a Cancel."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (running.root / "d").mkdir()
    async with running.client() as c:
        sid = await c.create_session("/d/x.bin")
        await c.fragment("/d/x.bin", sid, 0, b"data", 4)
        (running.root / "d").rmdir()
        (running.root / "d").symlink_to(outside)
        reply = await c.close_session("/d/x.bin", sid)
        assert reply.status == 403
        assert reply.error == (ACCESSDENIED, "0x5")
        assert list(outside.iterdir()) == []
        assert (await c.cancel_session("/d/x.bin", sid)).status == 200


async def test_final_symlink_is_never_followed(root: Path, tmp_path: Path) -> None:
    """A destination that is a symlink to a file outside: without overwrites 409; with
    overwrites the link itself is replaced and the outside file is untouched."""
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"precious")
    (root / "x.bin").symlink_to(victim)
    async with run_server(root) as running, running.client() as c:
        reply = await c.bits("/x.bin", "Create-Session", [("BITS-Supported-Protocols", PROTOCOL)])
        assert reply.status == 409
    async with run_server(root, allow_overwrites=True) as running, running.client() as c:
        sid = await c.create_session("/x.bin")
        await c.fragment("/x.bin", sid, 0, b"upload", 6)
        assert (await c.close_session("/x.bin", sid)).status == 200
    assert victim.read_bytes() == b"precious"
    assert not (root / "x.bin").is_symlink()
    assert (root / "x.bin").read_bytes() == b"upload"


async def test_mount_point_is_not_part_of_the_path(tmp_path: Path) -> None:
    """Mounted at /uploads in another Starlette app, /uploads/a/b.bin is stored as root/a/b.bin."""
    root = tmp_path / "root"
    app = Starlette(routes=[Mount("/uploads", app=make_app(root))])
    async with Serving(app) as serving, RawClient("127.0.0.1", serving.port) as c:
        sid = await c.create_session("/uploads/a/b.bin")
        await c.fragment("/uploads/a/b.bin", sid, 0, b"mounted", 7)
        assert (await c.close_session("/uploads/a/b.bin", sid)).status == 200
    assert (root / "a" / "b.bin").read_bytes() == b"mounted"
    assert not (root / "uploads").exists()
    assert set(os.listdir(root)) == {".bits-sessions", "a"}
