"""Sessions on disk: they survive a restart of the server, expire after the session timeout
(on an injected clock: no test waits for time to pass), and an upload over the size limit is
refused before a byte of it is written."""

from __future__ import annotations

from pathlib import Path

from bitsd._clock import FakeClock
from tests.server.client import SESSION_NOT_FOUND, TOO_LARGE, FileSlice
from tests.server.conftest import digest, make_file, run_server

TIMEOUT = 10_000.0


async def test_session_survives_a_restart(root: Path, tmp_path: Path) -> None:
    """Half an upload, the server stops, a new server on the same root continues the session:
    a resent first half is a duplicate (200 with the server's offset), the rest completes it."""
    source = make_file(tmp_path / "src.bin", 3 * 1024 * 1024 + 17, seed=2)
    half = 1024 * 1024 + 5
    total = source.stat().st_size
    async with run_server(root) as first, first.client() as c:
        assert (await c.ping("/r/file.bin")).status == 200
        sid = await c.create_session("/r/file.bin")
        reply = await c.fragment("/r/file.bin", sid, 0, FileSlice(source, 0, half), total)
        assert reply.received == half
    async with run_server(root) as second, second.client() as c:
        assert (await c.ping("/r/file.bin")).status == 200
        again = await c.fragment("/r/file.bin", sid, 0, FileSlice(source, 0, half), total)
        assert again.status == 200
        assert again.received == half
        ahead = await c.fragment(
            "/r/file.bin", sid, total - 10, FileSlice(source, total - 10, 10), total
        )
        assert ahead.status == 416
        assert ahead.received == half
        rest = await c.fragment(
            "/r/file.bin", sid, half, FileSlice(source, half, total - half), total
        )
        assert rest.received == total
        assert (await c.close_session("/r/file.bin", sid)).status == 200
    assert digest(root / "r" / "file.bin") == digest(source)


async def test_idle_sessions_are_swept_after_the_timeout(root: Path) -> None:
    """A session without progress for longer than the session timeout is deleted by the sweep
    with its data; a session with recent progress stays."""
    clock = FakeClock()
    async with (
        run_server(root, clock=clock, session_timeout=TIMEOUT) as running,
        running.client() as c,
    ):
        old = await c.create_session("/old.bin")
        await c.fragment("/old.bin", old, 0, b"x" * 100, 200)
        clock.advance(TIMEOUT / 2)
        young = await c.create_session("/young.bin")
        await c.fragment("/young.bin", young, 0, b"y" * 100, 200)
        clock.advance(TIMEOUT / 2 + 1)
        await running.server.sweep()
        assert not (running.sessions / old).exists()
        assert (running.sessions / young / "request.bin").stat().st_size == 100
        gone = await c.fragment("/old.bin", old, 100, b"x" * 100, 200)
        assert gone.status == 500
        assert gone.error == (SESSION_NOT_FOUND, "0x5")
        assert (await c.fragment("/young.bin", young, 100, b"y" * 100, 200)).received == 200


async def test_expired_session_is_not_found_even_before_a_sweep(root: Path) -> None:
    """A packet for an expired session gets BG_E_SESSION_NOT_FOUND and deletes it at once."""
    clock = FakeClock()
    async with (
        run_server(root, clock=clock, session_timeout=TIMEOUT) as running,
        running.client() as c,
    ):
        sid = await c.create_session("/e.bin")
        await c.fragment("/e.bin", sid, 0, b"x", 2)
        clock.advance(TIMEOUT - 1)
        assert (await c.ping("/e.bin")).status == 200  # pings do not keep a session alive
        clock.advance(2)
        reply = await c.close_session("/e.bin", sid)
        assert reply.status == 500
        assert reply.error == (SESSION_NOT_FOUND, "0x5")
        assert not (running.sessions / sid).exists()


async def test_progress_keeps_a_session_alive(root: Path) -> None:
    """Each fragment restarts the timeout: a slow upload is never swept while it progresses."""
    clock = FakeClock()
    async with (
        run_server(root, clock=clock, session_timeout=TIMEOUT) as running,
        running.client() as c,
    ):
        sid = await c.create_session("/slow.bin")
        for i in range(5):
            clock.advance(TIMEOUT - 1)
            assert (await c.fragment("/slow.bin", sid, i, b"s", 5)).received == i + 1
            await running.server.sweep()
        assert (await c.close_session("/slow.bin", sid)).status == 200
    assert (root / "slow.bin").read_bytes() == b"sssss"


async def test_closed_session_tombstones_expire_too(root: Path) -> None:
    """After Close-Session only the state is kept (to answer a repeated Close); the timeout
    removes it too."""
    clock = FakeClock()
    async with (
        run_server(root, clock=clock, session_timeout=TIMEOUT) as running,
        running.client() as c,
    ):
        sid = await c.create_session("/t.bin")
        await c.fragment("/t.bin", sid, 0, b"t", 1)
        await c.close_session("/t.bin", sid)
        assert sorted(p.name for p in (running.sessions / sid).iterdir()) == ["state.json"]
        clock.advance(TIMEOUT + 1)
        await running.server.sweep()
        assert not (running.sessions / sid).exists()
    assert (root / "t.bin").read_bytes() == b"t"


async def test_garbage_in_the_session_folder_is_swept(root: Path) -> None:
    """A folder there that is no session (bad name, unreadable state) is deleted by a sweep."""
    async with run_server(root) as running:
        (running.sessions / "junk").mkdir(parents=True)
        bad = running.sessions / "{0F0E0D0C-0B0A-0908-0706-050403020100}"
        bad.mkdir()
        (bad / "state.json").write_text("{not json")
        await running.server.sweep()
        assert list(running.sessions.iterdir()) == []


async def test_over_the_size_limit_is_refused_before_writing(root: Path) -> None:
    """max_upload_size: the first fragment announcing a larger total gets 500 / BG_E_TOO_LARGE
    / 0x5 and nothing is written; a total within the limit is accepted."""
    async with run_server(root, max_upload_size=1000) as running, running.client() as c:
        sid = await c.create_session("/big.bin")
        reply = await c.fragment("/big.bin", sid, 0, b"x" * 500, 1001)
        assert reply.status == 500
        assert reply.error == (TOO_LARGE, "0x5")
        assert reply.received == 0
        assert (running.sessions / sid / "request.bin").stat().st_size == 0
        assert (await c.ping("/big.bin")).status == 200  # the connection is still in sync
        ok = await c.create_session("/ok.bin")
        assert (await c.fragment("/ok.bin", ok, 0, b"x" * 1000, 1000)).received == 1000
        assert (await c.close_session("/ok.bin", ok)).status == 200
    assert not (root / "big.bin").exists()
    assert (root / "ok.bin").stat().st_size == 1000
