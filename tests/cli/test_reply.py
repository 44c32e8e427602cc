"""The reply of upload-reply jobs in both command lines, against a real daemon process and a
BITS upload server on loopback (tests/servers/bits_upload.py) whose server application answers
every upload with :attr:`BitsUploadServer.reply`: bitsadmin's /SETREPLYFILENAME,
/GETREPLYFILENAME, /GETREPLYPROGRESS and /GETREPLYDATA, and ``bitsd reply``, ``bitsd set
--reply-file`` and ``bitsd info``; a job of another type, a reply that is not there yet, a reply
over 1 MB."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from bitsd import codes
from tests.cli.bitsadmin_fixtures import BitsAdmin, bitsadmin, bitsadmin_daemon
from tests.cli.conftest import BITSD, SUBPROCESS_TIMEOUT, Cli
from tests.client.daemon import Daemon
from tests.servers.bits_upload import BitsUploadServer

__all__ = ["bitsadmin", "bitsadmin_daemon"]  # fixtures used by name

REPLY = b"thanks for the report\x00\xff"  # 23 bytes, two of them not printable
UPLOAD = b"name,score\nada,3\n"
MAX_REPLY_DATA = 1024 * 1024  # GetReplyData's limit: 1 MB


@pytest.fixture(scope="module")
def bits() -> Iterator[BitsUploadServer]:
    """A BITS upload server in a thread, reachable from the daemon process."""
    with BitsUploadServer.in_thread() as server:
        yield server


@pytest.fixture
def cli(bitsadmin_daemon: Daemon) -> Cli:
    """``bitsd`` wired to the module's daemon (the one bitsadmin talks to)."""
    return Cli({"BITSD_SOCKET": str(bitsadmin_daemon.socket), "BITSD_NO_AUTOSTART": "1"})


@pytest.fixture
def upload(tmp_path: Path) -> Path:
    """The file the jobs upload."""
    path = tmp_path / "report.csv"
    path.write_bytes(UPLOAD)
    return path


def _reply_job(bitsadmin: BitsAdmin, bits: BitsUploadServer, upload: Path, name: str) -> str:
    """An upload-reply job of ``upload``, created and added through bitsadmin; its GUID."""
    job = bitsadmin.raw("/create", "/upload-reply", name)
    bitsadmin.ok("/addfile", job, bits.url(f"/up/{name}.csv"), str(upload))
    return job


def _transferred(bitsadmin: BitsAdmin, job: str) -> None:
    bitsadmin.ok("/resume", job)
    state = bitsadmin.wait_state(job, "TRANSFERRED", "ERROR", "TRANSIENT_ERROR")
    assert state == "TRANSFERRED", bitsadmin("/geterror", job)


def _failure(status: int, err: str, action: str, hresult: int) -> None:
    """bitsadmin's two lines for a failed call: ``Unable to <action> - 0x...`` and the name."""
    assert status == 1
    lines = err.splitlines()
    assert lines[0] == f"Unable to {action} - 0x{hresult:08x}", err
    assert lines[1].startswith(f"{codes.name_of(hresult)}: "), err


# -- bitsadmin ---------------------------------------------------------------------------------


def test_bitsadmin_reply_switches(
    bitsadmin: BitsAdmin, bits: BitsUploadServer, upload: Path, tmp_path: Path
) -> None:
    """The reply file name is NULL until set and reads back as set; the progress is UNKNOWN
    until the upload is done, then complete; /GETREPLYDATA prints the reply as a hex dump, and
    with /RAWRETURN as bare hex digits that turn back into the bytes; /COMPLETE puts the reply
    in its file."""
    bits.reply = REPLY
    job = _reply_job(bitsadmin, bits, upload, "bitsadmin-reply")
    assert bitsadmin.raw("/getreplyfilename", job) == "NULL"
    assert bitsadmin.raw("/getreplyprogress", job) == "0 of UNKNOWN bytes transferred"
    reply_file = tmp_path / "answer.bin"
    set_out = bitsadmin.ok("/SetReplyFileName", "bitsadmin-reply", str(reply_file))
    assert set_out.endswith(f"Reply file name set to {reply_file}.\n")
    assert bitsadmin.raw("/getreplyfilename", job) == str(reply_file)
    _transferred(bitsadmin, job)
    assert ("/up/bitsadmin-reply.csv", UPLOAD) in bits.posted
    progress = bitsadmin.ok("/getreplyprogress", job).splitlines()[2:]
    assert progress == ["23 of 23 bytes transferred (100%)"]
    dump = bitsadmin.ok("/getreplydata", job).splitlines()[2:]
    assert dump == [
        "00000000  74 68 61 6e 6b 73 20 66  6f 72 20 74 68 65 20 72  |thanks for the r|",
        "00000010  65 70 6f 72 74 00 ff                              |eport..|",
    ]
    raw = bitsadmin.raw("/getreplydata", job)
    assert bytes.fromhex(raw) == REPLY
    assert not reply_file.exists(), "the reply file appears on /complete"
    bitsadmin.ok("/complete", job)
    assert reply_file.read_bytes() == REPLY


def test_bitsadmin_empty_reply_and_generated_name(
    bitsadmin: BitsAdmin, bits: BitsUploadServer, upload: Path
) -> None:
    """An empty reply prints a note (nothing with /RAWRETURN); /SETREPLYFILENAME NULL leaves
    the name to bitsd, which names the file after the upload at the first /RESUME."""
    bits.reply = b""
    job = _reply_job(bitsadmin, bits, upload, "bitsadmin-empty")
    assert bitsadmin.ok("/setreplyfilename", job, "NULL").endswith("Reply file name set to NULL.\n")
    _transferred(bitsadmin, job)
    generated = bitsadmin.raw("/getreplyfilename", job)
    assert generated.startswith(str(upload) + ".")
    assert generated.endswith(".reply")
    assert bitsadmin.raw("/getreplyprogress", job) == "0 of 0 bytes transferred"
    assert bitsadmin.ok("/getreplydata", job).endswith("\n\nThe reply is empty.\n")
    assert bitsadmin.raw("/getreplydata", job) == ""
    bitsadmin.ok("/complete", job)
    assert Path(generated).read_bytes() == b""


def test_bitsadmin_reply_errors(
    bitsadmin: BitsAdmin, bits: BitsUploadServer, upload: Path, tmp_path: Path
) -> None:
    """Each reply switch on a download job fails with E_NOTIMPL as the engine raises it; the
    data of a job that is not TRANSFERRED is BG_E_INVALID_STATE; a relative reply file name
    is E_INVALIDARG; the name cannot change once the reply is downloaded."""
    bitsadmin.ok("/create", "plain-download")
    for argv, action in [
        (["/getreplydata"], "get reply data"),
        (["/getreplyfilename"], "get reply file name"),
        (["/getreplyprogress"], "get reply progress"),
        (["/setreplyfilename", str(tmp_path / "r")], "set reply file name"),
    ]:
        result = bitsadmin(argv[0], "plain-download", *argv[1:])
        _failure(result.status, result.err, action, codes.E_NOTIMPL)
        assert "only upload-reply jobs have a reply; this one is DOWNLOAD" in result.err
    bits.reply = REPLY
    job = _reply_job(bitsadmin, bits, upload, "not-yet")
    early = bitsadmin("/getreplydata", job)
    _failure(early.status, early.err, "get reply data", codes.BG_E_INVALID_STATE)
    assert "the reply is there once the job is TRANSFERRED" in early.err
    relative = bitsadmin("/setreplyfilename", job, "answer.bin")
    _failure(relative.status, relative.err, "set reply file name", codes.E_INVALIDARG)
    _transferred(bitsadmin, job)
    late = bitsadmin("/setreplyfilename", job, str(tmp_path / "late.bin"))
    _failure(late.status, late.err, "set reply file name", codes.BG_E_INVALID_STATE)


def test_reply_over_1_mb_is_too_large_for_both_clis(
    bitsadmin: BitsAdmin, cli: Cli, bits: BitsUploadServer, upload: Path, tmp_path: Path
) -> None:
    """A reply of exactly 1 MB is returned whole; one byte more is BG_E_TOO_LARGE in bitsadmin
    and in bitsd (which says where to read it), and the reply file has all of it after
    Complete."""
    bits.reply = bytes(range(256)) * (MAX_REPLY_DATA // 256)
    whole = _reply_job(bitsadmin, bits, upload, "just-1mb")
    _transferred(bitsadmin, whole)
    assert bytes.fromhex(bitsadmin.raw("/getreplydata", whole)) == bits.reply
    assert cli("reply", whole.strip("{}").lower()).stdout_bytes == bits.reply
    bitsadmin.ok("/cancel", whole)

    bits.reply = b"x" * (MAX_REPLY_DATA + 1)
    job = _reply_job(bitsadmin, bits, upload, "over-1mb")
    reply_file = tmp_path / "big.reply"
    bitsadmin.ok("/setreplyfilename", job, str(reply_file))
    _transferred(bitsadmin, job)
    assert bitsadmin.raw("/getreplyprogress", job) == "1048577 of 1048577 bytes transferred (100%)"
    big = bitsadmin("/getreplydata", job)
    _failure(big.status, big.err, "get reply data", codes.BG_E_TOO_LARGE)
    assert big.out.count("\n") == 2  # the banner only
    job_id = job.strip("{}").lower()
    result = cli("reply", job_id)
    assert result.exit_code == 1
    assert result.stdout_bytes == b""
    assert result.stderr.startswith("BG_E_TOO_LARGE (0x80200020) in reply: the reply has 1048577")
    assert f"run bitsd complete {job_id}, then read the reply file" in result.stderr
    bitsadmin.ok("/complete", job)
    assert reply_file.read_bytes() == bits.reply


# -- bitsd -----------------------------------------------------------------------------------


def test_bitsd_reply_set_and_info(
    cli: Cli, bits: BitsUploadServer, upload: Path, tmp_path: Path
) -> None:
    """``bitsd set --reply-file`` names the reply file; ``bitsd info`` and ``bitsd reply
    --progress`` show it with the progress (unknown before the upload); ``bitsd reply`` is
    BG_E_INVALID_STATE until TRANSFERRED, then writes the reply unchanged to stdout or to
    --output; Complete puts it in the reply file."""
    bits.reply = REPLY
    job = cli("create", "cli-reply", "--type", "upload-reply").stdout.strip()
    assert cli("add", job, bits.url("/up/cli-reply.csv"), str(upload)).exit_code == 0
    reply_file = tmp_path / "cli.reply"
    result = cli("set", "cli-reply", "--reply-file", str(reply_file))
    assert result.exit_code == 0, result.output
    assert result.stdout == f"job {job}: set reply file\n"
    info = cli("info", job).stdout.splitlines()
    assert f"reply file           {reply_file}" in info
    assert "reply progress       0 B / ? (the upload is not done yet)" in info
    assert cli("reply", job, "--progress").stdout.splitlines() == [
        f"reply file      {reply_file}",
        "reply progress  0 B / ? (the upload is not done yet)",
    ]
    early = cli("reply", job)
    assert early.exit_code == 1
    assert early.stderr == (
        f"BG_E_INVALID_STATE (0x80200002) in reply: the job is SUSPENDED; the reply is there "
        f"once the job is TRANSFERRED; wait for it with bitsd wait {job}\n"
    )
    assert cli("resume", job).exit_code == 0
    assert cli("wait", job, "--timeout", "20").stdout == "TRANSFERRED\n"
    assert "reply progress       100% 23 B / 23 B" in cli("info", job).stdout.splitlines()
    assert cli("reply", job).stdout_bytes == REPLY
    saved = tmp_path / "saved.bin"
    result = cli("reply", job[:8], "-o", str(saved))
    assert result.exit_code == 0, result.output
    assert saved.read_bytes() == REPLY
    assert result.stderr == f"job {job}: reply (23 B) written to {saved}\n"
    unwritable = cli("reply", job, "-o", str(tmp_path / "no-folder" / "x"))
    assert unwritable.exit_code == 1
    assert "Could not open file" in unwritable.stderr
    process = subprocess.run(
        [str(BITSD), "reply", job],
        env={**os.environ, **cli.env},
        capture_output=True,
        timeout=SUBPROCESS_TIMEOUT,
        check=False,
    )
    assert (process.returncode, process.stdout) == (0, REPLY), process.stderr
    late = cli("set", job, "--reply-file", str(tmp_path / "late.reply"))
    assert late.exit_code == 1
    assert late.stderr.startswith("BG_E_INVALID_STATE (0x80200002) in set: the reply is being")
    assert cli("complete", job).exit_code == 0
    assert reply_file.read_bytes() == REPLY


def test_bitsd_reply_errors_and_usage(cli: Cli, tmp_path: Path) -> None:
    """On a download job ``bitsd reply`` and ``bitsd set --reply-file`` are E_NOTIMPL (exit 1)
    and ``bitsd info`` has no reply rows; --reply-file '' leaves the name to bitsd; --progress
    does not go with --output (exit 2)."""
    job = cli("create", "cli-no-reply").stdout.strip()
    result = cli("reply", job)
    assert result.exit_code == 1
    assert result.stderr == (
        "E_NOTIMPL (0x80004001) in reply: only upload-reply jobs have a reply; this one is "
        "DOWNLOAD; an upload-reply job has one (bitsd create NAME --type upload-reply)\n"
    )
    assert cli("reply", job, "--progress").exit_code == 1
    denied = cli("set", job, "--reply-file", str(tmp_path / "r"))
    assert denied.exit_code == 1
    assert denied.stderr.startswith("E_NOTIMPL (0x80004001) in set: only upload-reply jobs")
    assert "reply file" not in cli("info", job).stdout
    assert cli("cancel", job).exit_code == 0

    reply_job = cli("create", "cli-generated", "--type", "upload-reply").stdout.strip()
    assert cli("set", reply_job, "--reply-file", str(tmp_path / "r")).exit_code == 0
    assert cli("set", reply_job, "--reply-file", "").exit_code == 0
    shown = cli("reply", reply_job, "--progress").stdout.splitlines()
    assert shown[0] == "reply file      - (named at the first resume)"
    usage = cli("reply", reply_job, "--progress", "-o", str(tmp_path / "x"))
    assert usage.exit_code == 2
    assert "--progress prints the progress; it does not go with --output" in usage.stderr
    assert cli("cancel", reply_job).exit_code == 0
