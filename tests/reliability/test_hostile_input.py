"""Hostile input: local names with ``..``, symlinks planted in the destination folder, names
with newlines or NUL; URLs of other schemes, with credentials, too long; header injection
through custom headers. bitsd's rules are in docs/design-choices.md ("Local names",
"Temporary files", "An existing file at the final name", "Credentials in URLs")."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

import pytest

from bitsd import ErrorContext, InvalidArgumentError, JobState, codes
from bitsd.daemon.logs import LogfmtFormatter
from tests.engine.conftest import EngineFactory, body, settle
from tests.reliability.conftest import Held
from tests.servers.faulty import Fault, FaultServer

DATA = body(300_000, 21)
LOOP = codes.HRESULT_FROM_WIN32(1921)  # ERROR_CANT_RESOLVE_FILENAME (ELOOP)
PRECIOUS = b"a file the job must never write"


def _read(path: Path) -> bytes:
    return path.read_bytes()


# -- paths -------------------------------------------------------------------------------------


async def test_dot_dot_segments_are_normalised_lexically(
    server: FaultServer, make_engine: EngineFactory, tmp_path: Path, held: Held
) -> None:
    """``..`` in a local name is resolved on the text (os.path.normpath) at add_file, not
    through symlinks: ``dest/link/../f`` is ``dest/f`` even when ``link`` points into another
    folder. files() reports the normalised name, and the temporary and final files go exactly
    there; a relative name (``../f``) is refused."""
    dest = tmp_path / "dest"
    elsewhere = tmp_path / "elsewhere" / "inner"
    elsewhere.mkdir(parents=True)
    dest.mkdir()
    (dest / "sub").mkdir()
    (dest / "link").symlink_to(elsewhere)
    server.add("/f", DATA)
    async with make_engine() as engine:
        job = await engine.create_job("dot dot")
        await job.add_file(server.url("/f"), f"{dest}/sub/../f")
        await job.add_file(server.url("/f"), f"{dest}/link/../g")
        with pytest.raises(InvalidArgumentError):
            await job.add_file(server.url("/f"), "../h")
        assert [f.local_name for f in await job.files()] == [str(dest / "f"), str(dest / "g")]
        assert {Path(f.temporary_name).parent for f in await job.files()} == {dest}
        await job.resume()
        assert await settle(job) is JobState.TRANSFERRED
        await job.complete()
    assert (dest / "f").read_bytes() == DATA
    assert (dest / "g").read_bytes() == DATA
    assert not (tmp_path / "elsewhere" / "g").exists()
    assert sorted(os.listdir(elsewhere)) == []
    held(
        "hostile input",
        "local names with `..` segments: normalised on the text at add_file (dest/link/../g is "
        "dest/g even when link points elsewhere); files() shows the normalised name; the file "
        "landed exactly there; relative names refused (E_INVALIDARG)",
    )


@pytest.mark.parametrize("when", ["before the transfer starts", "while the job is suspended"])
async def test_symlink_at_the_temporary_name_is_not_followed(
    when: str,
    server: FaultServer,
    make_engine: EngineFactory,
    dest: Path,
    tmp_path: Path,
    held: Held,
) -> None:
    """A symlink planted at the temporary name after add_file (pointing at a file the job must
    not write) is never followed (O_NOFOLLOW): the job fails in LOCAL_FILE with
    ERROR_CANT_RESOLVE_FILENAME and the target is untouched; with the link gone, Resume
    finishes byte-identical."""
    target = tmp_path / "precious"
    target.write_bytes(PRECIOUS)
    server.add("/f", DATA)
    async with make_engine(file_concurrency=1) as engine:
        job = await engine.create_job("temp symlink")
        await job.add_file(server.url("/f"), str(dest / "f"))
        temp = (await job.files())[0].temporary_name
        if when != "before the transfer starts":
            server.set_fault("/f", Fault(rate=500_000))
            await job.resume()
            while (await job.get_progress()).bytes_transferred == 0:
                await asyncio.sleep(0.01)
            await job.suspend()
            os.unlink(temp)  # it exists: bytes were written
            server.clear_fault("/f")
        os.symlink(target, temp)
        await job.resume()
        assert await settle(job) is JobState.ERROR
        err = await job.get_error()
        assert (err.context, err.code) == (ErrorContext.LOCAL_FILE, LOOP)
        assert _read(target) == PRECIOUS
        os.unlink(temp)
        await job.resume()
        assert await settle(job) is JobState.TRANSFERRED
        await job.complete()
    assert (dest / "f").read_bytes() == DATA
    assert target.read_bytes() == PRECIOUS
    held(
        "hostile input",
        f"a symlink planted at the temporary name {when}: not followed (O_NOFOLLOW), ERROR "
        f"in LOCAL_FILE {codes.name_of(LOOP)}, the link's target untouched; link removed, "
        "Resume finished byte-identical",
    )


async def test_symlink_at_the_final_name_is_replaced_not_written_through(
    server: FaultServer, make_engine: EngineFactory, dest: Path, tmp_path: Path, held: Held
) -> None:
    """A symlink planted at the final name after add_file: Complete's rename replaces the
    link itself; the file it pointed to keeps its bytes."""
    target = tmp_path / "precious"
    target.write_bytes(PRECIOUS)
    server.add("/f", DATA)
    async with make_engine() as engine:
        job = await engine.create_job("final symlink")
        await job.add_file(server.url("/f"), str(dest / "f"))
        (dest / "f").symlink_to(target)
        await job.resume()
        assert await settle(job) is JobState.TRANSFERRED
        assert await job.complete() == codes.S_OK
    assert not (dest / "f").is_symlink()
    assert (dest / "f").read_bytes() == DATA
    assert target.read_bytes() == PRECIOUS
    held(
        "hostile input",
        "a symlink planted at the final name after add_file: Complete's rename replaced the "
        "link itself, the file it pointed to untouched",
    )


async def test_folder_swapped_for_a_symlink_keeps_temp_and_final_together(
    server: FaultServer, make_engine: EngineFactory, tmp_path: Path, held: Held
) -> None:
    """The folder of a local name replaced by a symlink after add_file is resolved as the
    kernel resolves any path: the temporary file and the final file both go to the link's
    target, so the rename of Complete stays within one folder (atomic). (The owner's own
    folders; another user cannot swap a folder the owner owns.)"""
    sub = tmp_path / "sub"
    sub.mkdir()
    other = tmp_path / "other"
    other.mkdir()
    server.add("/f", DATA)
    async with make_engine() as engine:
        job = await engine.create_job("folder symlink")
        await job.add_file(server.url("/f"), str(sub / "f"))
        sub.rmdir()
        sub.symlink_to(other)
        await job.resume()
        assert await settle(job) is JobState.TRANSFERRED
        await job.complete()
    assert (other / "f").read_bytes() == DATA
    assert os.listdir(other) == ["f"]
    held(
        "hostile input",
        "the folder of a local name swapped for a symlink after add_file: temporary and final "
        "file both in the link's target (one folder, atomic rename), nothing elsewhere",
    )


async def test_names_with_nul_are_refused_and_newlines_allowed(
    server: FaultServer,
    make_engine: EngineFactory,
    dest: Path,
    caplog: pytest.LogCaptureFixture,
    held: Held,
) -> None:
    """NUL in a local name is refused (E_INVALIDARG; no POSIX path can hold it). A newline is
    a legal POSIX file name character and is allowed: the file lands under that exact name,
    and a log line naming it stays one line (logfmt escapes it)."""
    server.add("/f", DATA)
    odd = str(dest / "two\nlines")
    async with make_engine() as engine:
        job = await engine.create_job("odd names")
        with pytest.raises(InvalidArgumentError) as refused:
            await job.add_file(server.url("/f"), str(dest / "nul\x00name"))
        assert refused.value.hresult == codes.E_INVALIDARG
        await job.add_file(server.url("/f"), odd)
        assert [f.local_name for f in await job.files()] == [odd]
        os.symlink(dest / "nowhere", (await job.files())[0].temporary_name)
        with caplog.at_level(logging.INFO, logger="bitsd"):
            await job.resume()
            assert await settle(job) is JobState.ERROR
        assert "two\nlines" in (await job.get_error()).description
        lines = [LogfmtFormatter().format(r) for r in caplog.records if "two" in r.getMessage()]
        assert lines
        assert all("\n" not in line for line in lines)
        os.unlink((await job.files())[0].temporary_name)
        await job.resume()
        assert await settle(job) is JobState.TRANSFERRED
        await job.complete()
    assert _read(Path(odd)) == DATA
    held(
        "hostile input",
        "a NUL in a local name refused (E_INVALIDARG); a newline allowed: the file landed "
        "under that exact name, and the daemon's log line naming it stayed one line",
    )


# -- URLs and headers --------------------------------------------------------------------------

REFUSED_URLS = [
    "ftp://host/f",
    "gopher://host/f",
    "smb://host/share/f",
    "javascript:alert(1)",
    "data:text/plain,hello",
    "file://otherhost/etc/passwd",
    "http:///no-host",
    "http://host:0/f",
    "http://host:99999/f",
    "\\\\server\\share\\f",
    "relative/path",
    "http://host/a\r\nInjected: 1",
    "http://host/a b\tc",
]


async def test_unsupported_and_malformed_urls_are_refused(
    make_engine: EngineFactory, dest: Path, held: Held
) -> None:
    """Other schemes, file:// on another host, no host, a bad port, UNC and relative names,
    control characters: E_INVALIDARG at add_file, and the job has no file."""
    async with make_engine() as engine:
        job = await engine.create_job("bad urls")
        for url in REFUSED_URLS:
            with pytest.raises(InvalidArgumentError) as refused:
                await job.add_file(url, str(dest / "f"))
            assert refused.value.hresult == codes.E_INVALIDARG, url
        assert await job.files() == []
    held(
        "hostile input",
        f"{len(REFUSED_URLS)} unsupported or malformed remote names (ftp, gopher, smb, "
        "javascript, data, file:// on another host, no host, port 0 or > 65535, UNC, "
        "relative, CR/LF, tab): E_INVALIDARG at add_file, nothing added",
        len(REFUSED_URLS),
    )


async def test_url_length_limit_is_2200(
    server: FaultServer, make_engine: EngineFactory, dest: Path, held: Held
) -> None:
    """A remote name of exactly 2,200 characters is accepted; one of 2,201 is refused."""
    base = server.url("/")
    longest = base + "x" * (2200 - len(base))
    async with make_engine() as engine:
        job = await engine.create_job("long url")
        await job.add_file(longest, str(dest / "f"))
        with pytest.raises(InvalidArgumentError):
            await job.add_file(longest + "y", str(dest / "g"))
        assert [f.remote_name for f in await job.files()] == [longest]
    held("hostile input", "remote names: 2,200 characters accepted, 2,201 refused (E_INVALIDARG)")


async def test_credentials_in_a_url_are_never_shown_or_logged(
    server: FaultServer,
    make_engine: EngineFactory,
    dest: Path,
    caplog: pytest.LogCaptureFixture,
    held: Held,
) -> None:
    """``http://user:password@host/``: the password appears in no error description (of a
    failed transfer, of a refused URL) and in no log record of any logger at any level; the
    URL is still shown, without its userinfo."""
    hidden = "s3cret-Pa55"
    port = server.url("/").split(":")[2].rstrip("/")
    server.add("/ok", DATA)
    with caplog.at_level(logging.DEBUG):
        async with make_engine() as engine:
            job = await engine.create_job("url credentials")
            await job.add_file(f"http://user:{hidden}@127.0.0.1:{port}/missing", str(dest / "f"))
            await job.resume()
            assert await settle(job) is JobState.ERROR
            description = (await job.get_error()).description
            assert f"http://127.0.0.1:{port}/missing" in description
            messages = [description]
            for url in (f"ftp://user:{hidden}@host/f", f"file://user:{hidden}@host/f"):
                with pytest.raises(InvalidArgumentError) as refused:
                    await job.add_file(url, str(dest / "g"))
                messages += [str(refused.value), refused.value.message]
            await job.cancel()
    logged = [r.getMessage() for r in caplog.records] + [
        LogfmtFormatter().format(r) for r in caplog.records
    ]
    assert not [m for m in messages + logged if hidden in m]
    held(
        "hostile input",
        "credentials in a URL (http://user:password@host/): absent from error descriptions "
        "(a failed transfer, refused URLs) and from every log record at DEBUG; the URL shown "
        "without its userinfo",
    )


async def test_header_injection_through_custom_headers_is_refused(
    server: FaultServer, make_engine: EngineFactory, dest: Path, held: Held
) -> None:
    """CR, LF or NUL inside a custom header line is refused (E_INVALIDARG), as is a line
    without a colon; accepted headers reach the server exactly, and a custom Range cannot
    change the range bitsd asks for."""
    server.add("/f", DATA)
    injections = [
        "X-A: 1\nInjected: yes\r\n",
        "X-A: 1\rInjected: yes\r\n",
        "X-A: 1\x00Injected: yes\r\n",
        "X-A: 1\r\n\r\nGET /other HTTP/1.1\r\n",
        "X-A: 1",
        "no colon\r\n",
    ]
    async with make_engine() as engine:
        job = await engine.create_job("headers")
        for value in injections:
            with pytest.raises(InvalidArgumentError):
                await job.set_custom_headers(value)
        assert await job.get_custom_headers() is None
        await job.set_custom_headers("X-Trace: 7\r\nRange: bytes=0-9\r\n")
        await job.add_file(server.url("/f"), str(dest / "f"))
        await job.resume()
        assert await settle(job) is JobState.TRANSFERRED
        await job.complete()
    (request,) = server.requests_for("/f")
    assert request.headers["x-trace"] == "7"
    assert request.range == "bytes=0-"
    assert "injected" not in request.headers
    assert (dest / "f").read_bytes() == DATA
    held(
        "hostile input",
        f"header injection through custom headers ({len(injections)} forms: bare LF, bare CR, "
        "NUL, an empty line, no CR/LF, no colon): refused (E_INVALIDARG); accepted headers "
        "arrived exactly, a custom Range did not change bitsd's range",
        len(injections),
    )
