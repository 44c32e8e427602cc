"""Local faults: the destination folder removed or made read-only during a job, a file already
at the final name, a full file system. Each fault ends in ERROR with LOCAL_FILE and the
Windows code a BITS client knows; once it is repaired, Resume finishes byte-identical."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from bitsd import ErrorContext, JobState, codes
from tests.engine.conftest import EngineFactory, body, settle
from tests.engine.test_errors import test_full_disk_is_fatal_local_file_error as _full_disk
from tests.reliability.conftest import Held
from tests.servers.faulty import Fault, FaultServer

DATA = body(2_000_000, 11)
SLOW = Fault(rate=1_000_000)
PATH_NOT_FOUND = codes.HRESULT_FROM_WIN32(3)  # ERROR_PATH_NOT_FOUND
FILE_NOT_FOUND = codes.HRESULT_FROM_WIN32(2)  # ERROR_FILE_NOT_FOUND
WRITE_PROTECT = codes.HRESULT_FROM_WIN32(19)  # ERROR_WRITE_PROTECT


async def _transferring(job: object, minimum: int = 1) -> None:
    """Wait (real time, bounded) until the job has written at least ``minimum`` bytes."""
    import asyncio

    async def poll() -> None:
        while (await job.get_progress()).bytes_transferred < minimum:  # type: ignore[attr-defined]
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), 15)


@pytest.mark.parametrize("what", ["folder", "temporary file"])
async def test_removed_during_the_transfer(
    what: str,
    server: FaultServer,
    make_engine: EngineFactory,
    tmp_path: Path,
    held: Held,
) -> None:
    """The destination folder (or only the temporary file) removed while the file is being
    written: the bytes going to a file without a name are not counted as done; the job fails
    in LOCAL_FILE with ERROR_PATH_NOT_FOUND (folder) or ERROR_FILE_NOT_FOUND (file) at the next
    checkpoint, never reaches TRANSFERRED; once the folder is back Resume finishes it."""
    sub = tmp_path / "sub"
    sub.mkdir()
    server.add("/f", DATA)
    server.set_fault("/f", SLOW)
    async with make_engine() as engine:
        job = await engine.create_job(f"{what} removed")
        await job.add_file(server.url("/f"), str(sub / "f"))
        await job.resume()
        await _transferring(job, 200_000)
        temp = (await job.files())[0].temporary_name
        if what == "folder":
            shutil.rmtree(sub)
        else:
            os.unlink(temp)
        assert await settle(job) is JobState.ERROR
        err = await job.get_error()
        expected = PATH_NOT_FOUND if what == "folder" else FILE_NOT_FOUND
        assert (err.context, err.code) == (ErrorContext.LOCAL_FILE, expected)
        assert err.file is not None
        assert err.file.local_name == str(sub / "f")
        sub.mkdir(exist_ok=True)
        server.clear_fault("/f")
        await job.resume()
        assert await settle(job) is JobState.TRANSFERRED
        await job.complete()
    assert (sub / "f").read_bytes() == DATA
    held(
        "local faults",
        f"the destination {what} removed while the file was written: ERROR in LOCAL_FILE, "
        f"{codes.name_of(expected)}, never TRANSFERRED with lost bytes; Resume after "
        "repairing finished byte-identical",
    )


async def test_folder_removed_before_its_file_starts(
    server: FaultServer, make_engine: EngineFactory, tmp_path: Path, held: Held
) -> None:
    """The folder of the job's second file removed while the first transfers: the second file
    fails to open in LOCAL_FILE with ERROR_PATH_NOT_FOUND (the code add_file gives for a
    missing folder); the finished first file is kept."""
    sub = tmp_path / "sub"
    sub.mkdir()
    server.add("/a", DATA)
    server.add("/b", DATA[:1000])
    server.set_fault("/a", SLOW)
    async with make_engine(file_concurrency=1) as engine:
        job = await engine.create_job("second folder removed")
        await job.add_file_set(
            [(server.url("/a"), str(tmp_path / "a")), (server.url("/b"), str(sub / "b"))]
        )
        await job.resume()
        await _transferring(job)
        sub.rmdir()
        assert await settle(job) is JobState.ERROR
        err = await job.get_error()
        assert (err.context, err.code) == (ErrorContext.LOCAL_FILE, PATH_NOT_FOUND)
        assert err.file is not None
        assert err.file.local_name == str(sub / "b")
        progress = await job.get_progress()
        assert progress.files_transferred == 1
    held(
        "local faults",
        "the folder of a file not yet started removed during the job: ERROR in LOCAL_FILE, "
        f"{codes.name_of(PATH_NOT_FOUND)} naming that file; the finished file kept",
    )


@contextlib.contextmanager
def _bind_mount(folder: Path) -> Iterator[None]:
    """``folder`` bind-mounted on itself, so that it can be remounted read-only (root only)."""
    if os.geteuid() != 0:
        pytest.skip("a read-only bind mount needs root")
    mounted = subprocess.run(
        ["mount", "--bind", str(folder), str(folder)], capture_output=True, check=False
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot bind-mount here: {mounted.stderr.decode().strip()}")
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def _remount(folder: Path, mode: str) -> None:
    subprocess.run(["mount", "-o", f"remount,bind,{mode}", str(folder)], check=True)


@pytest.mark.parametrize("when", ["before the file starts", "between two runs of the file"])
async def test_folder_made_read_only_during_the_job(
    when: str,
    server: FaultServer,
    make_engine: EngineFactory,
    tmp_path: Path,
    held: Held,
) -> None:
    """The destination folder becomes read-only during the job (a read-only bind mount: root
    ignores permission bits, and Linux refuses to remount a file system read-only while a file
    on it is open for writing): opening the temporary file fails in LOCAL_FILE with
    ERROR_WRITE_PROTECT; once writable again Resume finishes byte-identical, keeping the
    bytes already written."""
    ro = tmp_path / "ro"
    ro.mkdir()
    server.add("/a", DATA)
    server.add("/b", DATA)
    with _bind_mount(ro):
        async with make_engine(file_concurrency=1) as engine:
            job = await engine.create_job(f"read-only {when}")
            if when == "before the file starts":
                server.set_fault("/a", SLOW)
                await job.add_file_set(
                    [(server.url("/a"), str(tmp_path / "a")), (server.url("/b"), str(ro / "b"))]
                )
                await job.resume()
                await _transferring(job)
                _remount(ro, "ro")
            else:
                server.set_fault("/b", SLOW)
                await job.add_file(server.url("/b"), str(ro / "b"))
                await job.resume()
                await _transferring(job, 200_000)
                await job.suspend()  # the temporary file is closed: the folder can go read-only
                _remount(ro, "ro")
                await job.resume()
            assert await settle(job) is JobState.ERROR
            err = await job.get_error()
            assert (err.context, err.code) == (ErrorContext.LOCAL_FILE, WRITE_PROTECT)
            held_bytes = (await job.files())[-1].progress.bytes_transferred
            _remount(ro, "rw")
            server.clear_fault("/a")
            server.clear_fault("/b")
            await job.resume()
            assert await settle(job) is JobState.TRANSFERRED
            await job.complete()
        assert (ro / "b").read_bytes() == DATA
        if when != "before the file starts":
            assert held_bytes > 0
            assert server.requests_for("/b")[-1].range == f"bytes={held_bytes}-"
    held(
        "local faults",
        f"the destination folder made read-only (bind mount remounted ro) {when}: ERROR in "
        f"LOCAL_FILE, {codes.name_of(WRITE_PROTECT)}; writable again, Resume finished "
        "byte-identical"
        + (" from the bytes already written" if when != "before the file starts" else ""),
    )


async def test_no_write_permission_during_the_job(
    server: FaultServer, make_engine: EngineFactory, tmp_path: Path, held: Held
) -> None:
    """Without root, the folder's write permission removed before its file starts: LOCAL_FILE,
    E_ACCESSDENIED."""
    if os.geteuid() == 0:
        pytest.skip("root ignores permission bits; the read-only mount rows cover it")
    locked = tmp_path / "locked"
    locked.mkdir()
    server.add("/a", DATA)
    server.add("/b", DATA)
    server.set_fault("/a", SLOW)
    async with make_engine(file_concurrency=1) as engine:
        job = await engine.create_job("no permission")
        await job.add_file_set(
            [(server.url("/a"), str(tmp_path / "a")), (server.url("/b"), str(locked / "b"))]
        )
        await job.resume()
        await _transferring(job)
        locked.chmod(0o555)
        try:
            assert await settle(job) is JobState.ERROR
            err = await job.get_error()
            assert (err.context, err.code) == (ErrorContext.LOCAL_FILE, codes.E_ACCESSDENIED)
        finally:
            locked.chmod(0o755)
    held("local faults", "write permission removed from the folder: LOCAL_FILE, E_ACCESSDENIED")


async def test_existing_file_at_the_final_name(
    server: FaultServer, make_engine: EngineFactory, dest: Path, held: Held
) -> None:
    """A file already at the final name is left exactly as it is (same inode, content and
    mtime) until Complete, which replaces it atomically: a hard link to the old file still
    holds the old bytes, the final name holds the new ones (docs/design-choices.md)."""
    final = dest / "f"
    final.write_bytes(b"old content")
    os.utime(final, (1_000_000_000, 1_000_000_000))
    old_link = dest.parent / "old-link"
    os.link(final, old_link)
    before = final.stat()
    server.add("/f", DATA)
    async with make_engine() as engine:
        job = await engine.create_job("existing final name")
        await job.add_file(server.url("/f"), str(final))
        await job.resume()
        assert await settle(job) is JobState.TRANSFERRED
        after = final.stat()
        assert (after.st_ino, after.st_mtime_ns, after.st_size) == (
            before.st_ino,
            before.st_mtime_ns,
            before.st_size,
        )
        assert final.read_bytes() == b"old content"
        assert await job.complete() == codes.S_OK
    assert final.read_bytes() == DATA
    assert final.stat().st_ino != before.st_ino
    assert old_link.read_bytes() == b"old content"
    held(
        "local faults",
        "a file already at the final name: untouched (inode, bytes, mtime) until Complete, "
        "then replaced atomically by rename (a hard link to the old file kept the old bytes)",
    )


async def test_full_disk(
    server: FaultServer, make_engine: EngineFactory, tmp_path: Path, held: Held
) -> None:
    """The full-disk case of the engine tier (tests/engine/test_errors.py, a 1 MiB tmpfs):
    ERROR in LOCAL_FILE with ERROR_DISK_FULL; after space is freed Resume continues from the
    bytes written, without fetching them again."""
    await _full_disk(server, make_engine, tmp_path)
    held(
        "local faults",
        "a full file system (1 MiB tmpfs; tests/engine/test_errors.py): ERROR in LOCAL_FILE, "
        "HRESULT_FROM_WIN32(ERROR_DISK_FULL); after space was freed Resume continued from "
        "the bytes written (Range request), byte-identical",
    )
