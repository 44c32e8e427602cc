"""bitsadmin against a real daemon process and a real HTTP server: the examples of
docs/bitsadmin.md, the Windows switch syntax, and the switches bitsd refuses."""

from __future__ import annotations

import os
import re
import signal
import stat
import time
from pathlib import Path

import pytest

from bitsd.cli.bitsadmin import SWITCHES, main
from tests.cli.bitsadmin_fixtures import (
    GUID_RE,
    BitsAdmin,
    bitsadmin,
    bitsadmin_daemon,
)
from tests.servers.faulty import Fault, FaultServer

__all__ = ["bitsadmin", "bitsadmin_daemon"]  # fixtures used by name

PAYLOAD = bytes(range(256)) * 1200  # 300 KiB, every byte value
BANNER = re.compile(r"^bitsadmin \(bitsd [^)]+\) - BITS administration utility for Linux\n\n")


def _created_guid(out: str) -> str:
    match = re.search(r"Created job (\{[0-9A-F-]+\})\.", out)
    assert match, out
    return match.group(1)


# -- the doc examples --------------------------------------------------------------------------


def test_transfer_downloads_and_completes(
    bitsadmin: BitsAdmin, server: FaultServer, tmp_path: Path
) -> None:
    """`/transfer` creates the job at NORMAL priority, prints progress, completes it on success;
    the file is byte-identical and the job is gone from /list."""
    server.add("/transfer.bin", PAYLOAD)
    local = tmp_path / "transfer.bin"
    result = bitsadmin("/transfer", "myDownloadJob", server.url("/transfer.bin"), str(local))
    assert result.status == 0, result
    assert BANNER.match(result.out)
    assert "DISPLAY: 'myDownloadJob' TYPE: DOWNLOAD STATE:" in result.out
    assert "PRIORITY: NORMAL FILES: 1 / 1 BYTES: 307200 / 307200 (100%)" in result.out
    assert result.out.endswith("Transfer complete.\n")
    assert local.read_bytes() == PAYLOAD
    assert bitsadmin.ok("/list").endswith("Listed 0 job(s).\n")


def test_transfer_with_priority_several_files(
    bitsadmin: BitsAdmin, server: FaultServer, tmp_path: Path
) -> None:
    """`/transfer name /download /priority foreground r1 l1 r2 l2` downloads every pair."""
    server.add("/a.bin", b"a" * 1000)
    server.add("/b.bin", b"b" * 2000)
    result = bitsadmin(
        "/transfer",
        "pair",
        "/download",
        "/priority",
        "foreground",
        server.url("/a.bin"),
        str(tmp_path / "a.bin"),
        server.url("/b.bin"),
        str(tmp_path / "b.bin"),
    )
    assert result.status == 0, result
    assert "PRIORITY: FOREGROUND FILES: 2 / 2 BYTES: 3000 / 3000 (100%)" in result.out
    assert (tmp_path / "a.bin").read_bytes() == b"a" * 1000
    assert (tmp_path / "b.bin").read_bytes() == b"b" * 2000


def test_create_addfile_resume_complete(
    bitsadmin: BitsAdmin, server: FaultServer, tmp_path: Path
) -> None:
    """The step-by-step example: /create prints the GUID, /addfile and /resume by name,
    /complete by GUID makes the file appear."""
    server.add("/10mb.zip", PAYLOAD)
    local = tmp_path / "10mb.zip"
    out = bitsadmin.ok("/create", "myDownloadJob")
    job = _created_guid(out)
    assert BANNER.match(out)
    assert out.splitlines()[2:] == [f"Created job {job}."]
    added = bitsadmin.ok("/addfile", "myDownloadJob", server.url("/10mb.zip"), str(local))
    assert f"Added {server.url('/10mb.zip')} -> {local} to job." in added
    assert bitsadmin.ok("/resume", "myDownloadJob").endswith("Job resumed.\n")
    assert bitsadmin.wait_state(job, "TRANSFERRED") == "TRANSFERRED"
    assert not local.exists()  # BITS shows files only after Complete
    assert bitsadmin.ok("/complete", job).endswith("Job completed.\n")
    assert local.read_bytes() == PAYLOAD
    gone = bitsadmin("/getstate", job)
    assert gone.status == 1
    assert "Unable to find job - 0x80200001" in gone.err


def test_rawreturn_getstate_prints_the_bare_state(
    bitsadmin: BitsAdmin, server: FaultServer, tmp_path: Path
) -> None:
    """`bitsadmin /rawreturn /getstate job`, run as the installed program, prints exactly
    `TRANSFERRED`: no banner, no newline, so a script can compare it."""
    server.add("/raw.bin", b"raw" * 100)
    job = bitsadmin.raw("/create", "raw")
    assert GUID_RE.fullmatch(job)
    bitsadmin.ok("/addfile", job, server.url("/raw.bin"), str(tmp_path / "raw.bin"))
    bitsadmin.ok("/resume", job)
    bitsadmin.wait_state(job, "TRANSFERRED")
    result = bitsadmin.run("/rawreturn", "/getstate", job)
    assert result == type(result)(0, "TRANSFERRED", "")
    assert bitsadmin.raw("/getbytestotal", "raw") == "300"


def test_setnotifycmdline_runs_the_program(
    bitsadmin: BitsAdmin, server: FaultServer, tmp_path: Path
) -> None:
    """`/setnotifycmdline job program "name args"`: the daemon runs the program when the job
    is transferred; here a script writes a marker file."""
    server.add("/notify.bin", b"n" * 5000)
    marker = tmp_path / "marker"
    script = tmp_path / "notify.sh"
    script.write_text('#!/bin/sh\necho "$1" > "$2"\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    job = bitsadmin.raw("/create", "notified")
    out = bitsadmin.ok("/setnotifycmdline", job, str(script), f"notify.sh transferred {marker}")
    assert f"Notification command line set to '{script}' 'notify.sh transferred {marker}'." in out
    assert bitsadmin.raw("/getnotifycmdline", job) == (
        f"'{script}' 'notify.sh transferred {marker}'"
    )
    bitsadmin.ok("/addfile", job, server.url("/notify.bin"), str(tmp_path / "n.bin"))
    bitsadmin.ok("/resume", job)
    deadline = time.monotonic() + 15
    while not marker.exists() or not marker.read_text():
        assert time.monotonic() < deadline, "the notify program did not run"
        time.sleep(0.05)
    assert marker.read_text() == "transferred\n"


def test_setnotifycmdline_null_removes_it(bitsadmin: BitsAdmin) -> None:
    """`/setnotifycmdline job NULL NULL` removes the command line; several parameter words
    are joined into one command line."""
    job = bitsadmin.raw("/create", "nulls")
    bitsadmin.ok("/setnotifycmdline", job, "/bin/echo", "echo", "two words")
    assert bitsadmin.raw("/getnotifycmdline", job) == "'/bin/echo' 'echo 'two words''"
    assert "removed" in bitsadmin.ok("/setnotifycmdline", job, "NULL", "NULL")
    assert bitsadmin.raw("/getnotifycmdline", job) == "none"


def test_list_and_list_verbose(bitsadmin: BitsAdmin, tmp_path: Path) -> None:
    """`/list` prints one line per job and a count; `/list /verbose` prints each job's
    detailed block."""
    first = bitsadmin.raw("/create", "job1")
    second = bitsadmin.raw("/create", "job2")
    bitsadmin.ok("/addfile", second, "http://127.0.0.1:9/x.zip", str(tmp_path / "x.zip"))
    out = bitsadmin.ok("/list")
    assert f"{first} 'job1' SUSPENDED 0 / 0 0 / 0\n" in out
    assert f"{second} 'job2' SUSPENDED 0 / 1 0 / UNKNOWN\n" in out
    assert out.endswith("\nListed 2 job(s).\n")
    verbose = bitsadmin.ok("/LIST", "/Verbose")
    assert f"GUID: {first} DISPLAY: 'job1'" in verbose
    assert f"GUID: {second} DISPLAY: 'job2'" in verbose
    assert verbose.count("NOTIFICATION COMMAND LINE: none") == 2
    assert f"\t0 / UNKNOWN WORKING http://127.0.0.1:9/x.zip -> {tmp_path / 'x.zip'}" in verbose
    assert verbose.endswith("Listed 2 job(s).\n")
    assert bitsadmin.raw("/list") == (
        f"{first} 'job1' SUSPENDED 0 / 0 0 / 0\n{second} 'job2' SUSPENDED 0 / 1 0 / UNKNOWN"
    )


def test_info_and_info_verbose(bitsadmin: BitsAdmin, tmp_path: Path) -> None:
    """`/info job` prints bitsadmin's three summary lines; `/verbose` adds times, notification,
    retry settings, description, files and command line."""
    job = bitsadmin.raw("/create", "infojob")
    bitsadmin.ok("/setdescription", job, "nightly update")
    bitsadmin.ok("/setpriority", job, "high")
    bitsadmin.ok("/setminretrydelay", job, "30")
    bitsadmin.ok("/addfile", job, "http://127.0.0.1:9/10mb.zip", str(tmp_path / "10mb.zip"))
    user = bitsadmin.raw("/getowner", job)
    out = bitsadmin.ok("/info", "infojob")
    assert out.splitlines()[2:] == [
        f"GUID: {job} DISPLAY: 'infojob'",
        f"TYPE: DOWNLOAD STATE: SUSPENDED OWNER: {user}",
        "PRIORITY: HIGH FILES: 0 / 1 BYTES: 0 / UNKNOWN",
    ]
    lines = bitsadmin.ok("/info", "infojob", "/verbose").splitlines()[2:]
    when = r"\d{1,2}/\d{1,2}/\d{4} \d{1,2}:\d\d:\d\d [AP]M"
    assert re.fullmatch(f"CREATION TIME: {when} MODIFICATION TIME: {when}", lines[3])
    assert lines[4:] == [
        "COMPLETION TIME: UNKNOWN",
        "NOTIFY INTERFACE: UNKNOWN NOTIFICATION FLAGS: 3",
        "RETRY DELAY: 30 NO PROGRESS TIMEOUT: 1209600 ERROR COUNT: 0",
        "PROXY USAGE: PRECONFIG PROXY LIST: NULL PROXY BYPASS LIST: NULL",
        "MAX DOWNLOAD TIME: 7776000 DYNAMIC CONTENT: FALSE",
        "DESCRIPTION: nightly update",
        "JOB FILES:",
        f"\t0 / UNKNOWN WORKING http://127.0.0.1:9/10mb.zip -> {tmp_path / '10mb.zip'}",
        "NOTIFICATION COMMAND LINE: none",
    ]


def test_geterror_after_404(bitsadmin: BitsAdmin, server: FaultServer, tmp_path: Path) -> None:
    """A 404 puts the job in ERROR; `/geterror` shows the file, BG_E_HTTP_ERROR_404
    (0x80190194) and the REMOTE_FILE context, and `/info /verbose` shows the same block."""
    url = server.url("/missing.zip")
    local = tmp_path / "missing.zip"
    job = bitsadmin.raw("/create", "broken")
    bitsadmin.ok("/addfile", job, url, str(local))
    bitsadmin.ok("/resume", job)
    assert bitsadmin.wait_state(job, "ERROR") == "ERROR"
    lines = bitsadmin.ok("/geterror", "broken").splitlines()[2:]
    assert lines[0] == f"ERROR FILE:    {url} -> {local}"
    assert lines[1].startswith("ERROR CODE:    0x80190194 (BG_E_HTTP_ERROR_404) - ")
    assert lines[2].startswith("ERROR CONTEXT: 0x00000005 (REMOTE_FILE) - ")
    assert "ERROR CODE:    0x80190194 (BG_E_HTTP_ERROR_404)" in bitsadmin.ok(
        "/info", job, "/verbose"
    )
    assert bitsadmin.raw("/geterrorcount", job) == "1"
    none = bitsadmin("/geterror", bitsadmin.raw("/create", "fine"))
    assert none.status == 1
    assert "Unable to get error - 0x8020000f" in none.err


def test_transfer_cancels_on_fatal_error(
    bitsadmin: BitsAdmin, server: FaultServer, tmp_path: Path
) -> None:
    """`/transfer` of a missing file reports the error, cancels the job and exits 1."""
    result = bitsadmin(
        "/transfer", "lost", server.url("/nowhere.bin"), str(tmp_path / "nowhere.bin")
    )
    assert result.status == 1
    assert "0x80190194 (BG_E_HTTP_ERROR_404)" in result.err
    assert "Unable to complete transfer - 0x80190194" in result.err
    assert "The job was cancelled." in result.err
    assert bitsadmin.ok("/list").endswith("Listed 0 job(s).\n")


def test_transfer_waits_through_transient_errors_until_ctrl_c(
    bitsadmin: BitsAdmin, server: FaultServer, tmp_path: Path
) -> None:
    """The installed `bitsadmin /transfer` waits through a transient error (HTTP 503); on
    Ctrl+C it says it leaves the job to the daemon, which still has it."""
    server.add("/busy.bin", b"b" * 100)
    server.set_fault("/busy.bin", Fault(status=503))
    process = bitsadmin.popen(
        "/transfer", "busy", server.url("/busy.bin"), str(tmp_path / "busy.bin")
    )
    try:
        assert process.stdout is not None
        seen = ""
        deadline = time.monotonic() + 20
        while "Press Ctrl+C" not in seen:
            assert time.monotonic() < deadline, seen
            seen += process.stdout.readline()
        assert "STATE: TRANSIENT_ERROR" in seen
        assert "0x801901f7 (BG_E_HTTP_ERROR_503)" in seen
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 1
    assert "stays with the bitsd daemon" in err
    job = GUID_RE.search(err)
    assert job is not None
    assert bitsadmin.raw("/getdisplayname", job.group(0)) == "busy"
    server.clear_fault("/busy.bin")


def test_switches_are_case_insensitive(bitsadmin: BitsAdmin, tmp_path: Path) -> None:
    """`/CREATE`, `/AddFile`, `/ListFiles`, `/GETSTATE` are the same switches in any case."""
    job = _created_guid(bitsadmin.ok("/CREATE", "/DOWNLOAD", "mixed"))
    bitsadmin.ok("/AddFile", "mixed", "http://127.0.0.1:9/a", str(tmp_path / "a"))
    assert "Listed 1 file(s)." in bitsadmin.ok("/ListFiles", job)
    assert bitsadmin.raw("/GetState", "mixed") == "SUSPENDED"
    assert bitsadmin.raw("/RAWRETURN", "/GETTYPE", job) == "DOWNLOAD"


def test_job_by_display_name_and_guid(bitsadmin: BitsAdmin) -> None:
    """`<job>` is a display name, or a GUID with or without braces in any case; an unknown
    name and a name shared by two jobs fail with "Unable to find job"."""
    job = bitsadmin.raw("/create", "named")
    assert bitsadmin.raw("/getid", "named") == job
    assert bitsadmin.raw("/getdisplayname", job) == "named"
    assert bitsadmin.raw("/getdisplayname", job.strip("{}").lower()) == "named"
    missing = bitsadmin("/getstate", "nosuchjob")
    assert missing.status == 1
    assert missing.err.startswith("Unable to find job - 0x80200001\n")
    bitsadmin.ok("/create", "named")
    twice = bitsadmin("/resume", "named")
    assert twice.status == 1
    assert "2 jobs are named 'named'; name the job by its GUID" in twice.err


def test_getters_and_setters(bitsadmin: BitsAdmin) -> None:
    """Every /set... changes what the matching /get... prints."""
    job = bitsadmin.raw("/create", "props")
    cases = [
        ("/setdisplayname", "renamed", "/getdisplayname", "renamed"),
        ("/setdescription", "a description", "/getdescription", "a description"),
        ("/setpriority", "Low", "/getpriority", "LOW"),
        ("/setminretrydelay", "45", "/getminretrydelay", "45"),
        ("/setnoprogresstimeout", "120", "/getnoprogresstimeout", "120"),
        ("/setmaxdownloadtime", "3600", "/getmaxdownloadtime", "3600"),
        ("/setnotifyflags", "0x1", "/getnotifyflags", "1"),
    ]
    for set_switch, value, get_switch, expected in cases:
        bitsadmin.ok(set_switch, job, value)
        assert bitsadmin.raw(get_switch, job) == expected, set_switch
    assert bitsadmin.raw("/getminretry", job) == "45"  # the short name works too
    assert "Minimum retry delay set to 5." in bitsadmin.ok("/setminretry", job, "1")
    assert bitsadmin.raw("/gettype", job) == "DOWNLOAD"
    assert bitsadmin.raw("/getbytestotal", job) == "0"
    assert bitsadmin.raw("/getfilestotal", job) == "0"
    assert bitsadmin.raw("/getcompletiontime", job) == "UNKNOWN"
    assert re.fullmatch(
        r"\d+/\d+/\d{4} \d+:\d\d:\d\d [AP]M", bitsadmin.raw("/getcreationtime", job)
    )
    bad = bitsadmin("/setpriority", job, "urgent")
    assert bad.status == 1
    assert "Unable to set priority - 0x80070057" in bad.err


def test_addfileset_suspend_cancel(bitsadmin: BitsAdmin, tmp_path: Path) -> None:
    """`/addfileset` reads "remote local" lines (skipping # comments); /suspend and /cancel
    work by name."""
    listing = tmp_path / "files.txt"
    listing.write_text(
        "# two files\n"
        f"http://127.0.0.1:9/one {tmp_path / 'one'}\n\n"
        f"http://127.0.0.1:9/two '{tmp_path / 'two words'}'\n"
    )
    job = bitsadmin.raw("/create", "set")
    assert "Added 2 file(s) to job." in bitsadmin.ok("/addfileset", "set", str(listing))
    files = bitsadmin.raw("/listfiles", job).splitlines()
    assert files == [
        f"0 / UNKNOWN WORKING http://127.0.0.1:9/one -> {tmp_path / 'one'}",
        f"0 / UNKNOWN WORKING http://127.0.0.1:9/two -> {tmp_path / 'two words'}",
    ]
    temporary = bitsadmin.raw("/gettemporaryname", job, "1")
    assert temporary.startswith(f"{tmp_path}/.two words.")
    assert bitsadmin("/gettemporaryname", job, "2").status == 1
    assert bitsadmin.ok("/suspend", "set").endswith("Job suspended.\n")
    assert bitsadmin.ok("/cancel", "set").endswith("Job canceled.\n")
    assert bitsadmin("/getstate", job).status == 1


def test_reset_cancels_every_job(bitsadmin: BitsAdmin) -> None:
    """`/reset` cancels all the user's jobs and counts them, as bitsadmin prints it."""
    first = bitsadmin.raw("/create", "r1")
    second = bitsadmin.raw("/create", "r2")
    out = bitsadmin.ok("/reset")
    assert f"{first} canceled.\n{second} canceled.\n2 out of 2 jobs canceled.\n" in out
    assert bitsadmin.ok("/list").endswith("Listed 0 job(s).\n")


def test_allusers_means_the_users_own_jobs_except_for_root(
    bitsadmin: BitsAdmin, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`/allusers` lists (or resets) the user's jobs, which are all the jobs a user's daemon
    holds; root would expect every user's jobs, which no single daemon has: refused, exit 1."""
    job = bitsadmin.raw("/create", "mine")
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert f"{job} 'mine' SUSPENDED" in bitsadmin.ok("/list", "/allusers")
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    for argv in (["/list", "/allusers"], ["/reset", "/AllUsers"], ["/monitor", "/allusers"]):
        result = bitsadmin(*argv)
        assert result.status == 1
        assert "/ALLUSERS is not supported by bitsd: " in result.err
    assert bitsadmin.raw("/getstate", job) == "SUSPENDED"


def test_monitor_refreshes(bitsadmin: BitsAdmin) -> None:
    """`/monitor /refresh sec` prints the job list again after each refresh (the hidden
    `/count` stops it)."""
    job = bitsadmin.raw("/create", "watched")
    out = bitsadmin.ok("/monitor", "/refresh", "0.1", "/count", "2")
    assert out.count("MONITORING BACKGROUND COPY MANAGER(0.1 second refresh)") == 2
    assert out.count(f"{job} 'watched' SUSPENDED 0 / 0 0 / 0") == 2


def test_create_makes_jobs_of_the_type_asked_for(bitsadmin: BitsAdmin) -> None:
    """`/create /upload` and `/create /upload-reply` make jobs of those types; the default is a
    download job."""
    for option, expected in (("/Upload", "UPLOAD"), ("/upload-reply", "UPLOAD_REPLY")):
        job = bitsadmin.raw("/create", option, f"typed-{expected}")
        assert bitsadmin.raw("/gettype", job) == expected
    assert bitsadmin.raw("/gettype", bitsadmin.raw("/create", "plain")) == "DOWNLOAD"
    both = bitsadmin("/create", "/upload", "/download", "twice")
    assert both.status == 1
    assert "give at most one of /DOWNLOAD, /UPLOAD and /UPLOAD-REPLY" in both.err


# -- without a daemon ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "switch"),
    [
        (["/cache", "/list"], "/CACHE /LIST"),
        (["/peers", "/discover"], "/PEERS /DISCOVER"),
        (["/setclientcertificatebyid", "j", "0", "MY", "00ff"], "/SETCLIENTCERTIFICATEBYID"),
        (["/SetClientCertificateByName", "j", "0", "MY", "me"], "/SETCLIENTCERTIFICATEBYNAME"),
        (["/takeownership", "j"], "/TAKEOWNERSHIP"),
        (["/getnotifyinterface", "j"], "/GETNOTIFYINTERFACE"),
        (["/util", "/getieproxy", "localsystem"], "/UTIL /GETIEPROXY"),
        (["/transfer", "j", "/aclflags", "o", "http://h/f", "/tmp/f"], "/ACLFLAGS"),
    ],
)
def test_unsupported_switches_fail_clearly(
    argv: list[str], switch: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A switch for a feature bitsd lacks prints "<switch> is not supported by bitsd" and
    exits 1, never a silent success."""
    assert main(argv) == 1
    captured = capsys.readouterr()
    assert f"{switch} is not supported by bitsd: " in captured.err
    assert "\n" not in BANNER.sub("", captured.out)


def test_no_daemon_without_autostart(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """With BITSD_NO_AUTOSTART and no daemon, a switch that needs the daemon fails with the
    HRESULT a Windows client gets when the service is gone."""
    monkeypatch.setenv("BITSD_NO_AUTOSTART", "1")
    monkeypatch.setenv("BITSD_SOCKET", str(tmp_path / "none.sock"))
    assert main(["/list"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("Unable to connect to the bitsd daemon - 0x800706ba\n")


def test_help(capsys: pytest.CaptureFixture[str]) -> None:
    """`/?` lists every supported switch and the unsupported ones; `/switch /?` describes one
    switch; a bad call prints its usage."""
    assert main(["/?"]) == 0
    text = capsys.readouterr().out
    for switch in SWITCHES:
        if not switch.hidden:
            assert switch.name in text
    assert "/TRANSFER name [/DOWNLOAD | /UPLOAD] [/PRIORITY priority]" in text
    assert "Not supported by bitsd" in text
    assert main(["/AddFile", "/?"]) == 0
    assert "USAGE: bitsadmin /ADDFILE job remote_url local_name" in capsys.readouterr().out
    assert main(["/addfile", "onlyjob"]) == 1
    err = capsys.readouterr().err
    assert err == (
        "Error: wrong number of arguments for /ADDFILE.\n"
        "Usage: bitsadmin /ADDFILE job remote_url local_name\n"
    )
    assert main(["/nosuchswitch"]) == 1
    assert "unknown switch /nosuchswitch" in capsys.readouterr().err


def test_installed_entry_point_help_and_version(bitsadmin: BitsAdmin) -> None:
    """The installed `bitsadmin` program prints the help and, with /rawreturn, the bare
    version."""
    result = bitsadmin.run("/help")
    assert result.status == 0
    assert BANNER.match(result.out)
    version = bitsadmin.run("/rawreturn", "/util", "/version")
    assert version.status == 0
    assert re.fullmatch(r"\d+\.\d+\.\d+\S*", version.out)
    assert os.path.basename(str(bitsadmin.entry_point())) == "bitsadmin"
