"""bitsadmin's switches for the job options of issue 6, against a real daemon and HTTP server:
ranges, remote prefixes, custom headers, security flags, HTTP method, proxy settings,
credentials, validation state and client certificates."""

from __future__ import annotations

from pathlib import Path

import pytest

from bitsd._errors import InvalidArgumentError
from bitsd.cli.bitsadmin_commands import COMMAND_LINE_WARNING, parse_range_list
from bitsd.codes import LENGTH_TO_EOF
from tests.cli.bitsadmin_fixtures import BitsAdmin, bitsadmin, bitsadmin_daemon
from tests.servers.faulty import FaultServer

__all__ = ["bitsadmin", "bitsadmin_daemon"]  # fixtures used by name

DATA = bytes(range(256)) * 400  # 100 KiB, every byte value


def _finish(bitsadmin: BitsAdmin, job: str) -> None:
    bitsadmin.ok("/resume", job)
    assert bitsadmin.wait_state(job, "TRANSFERRED", "ERROR") == "TRANSFERRED", bitsadmin.ok(
        "/geterror", job
    )
    bitsadmin.ok("/complete", job)


def test_range_lists_parse_as_bitsadmin_writes_them() -> None:
    """`offset:length` pairs separated by commas; `eof` runs to the end."""
    assert parse_range_list("0:100,2000:eof") == [(0, 100), (2000, LENGTH_TO_EOF)]
    assert parse_range_list(" 5:1 ") == [(5, 1)]
    for bad in ("0-100", "x:1", "1:", "-1:5", ""):
        with pytest.raises(InvalidArgumentError):
            parse_range_list(bad)


def test_addfilewithranges_downloads_the_ranges_in_order(
    bitsadmin: BitsAdmin, server: FaultServer, tmp_path: Path
) -> None:
    """`/addfilewithranges job remote local 50000:100,10:1000,60000:eof` makes the file of
    those bytes, in that order;
    a bad range list and overlapping ranges fail with their codes."""
    server.add("/ba/ranges.bin", DATA)
    local = tmp_path / "ranges.bin"
    job = bitsadmin.raw("/create", "ranged")
    out = bitsadmin.ok(
        "/addfilewithranges",
        job,
        server.url("/ba/ranges.bin"),
        str(local),
        "50000:100,10:1000,60000:eof",
    )
    assert f"Added {server.url('/ba/ranges.bin')} -> {local} (3 range(s)) to job." in out
    _finish(bitsadmin, job)
    assert local.read_bytes() == DATA[50_000:50_100] + DATA[10:1010] + DATA[60_000:]
    other = bitsadmin.raw("/create", "bad-ranges")
    bad = bitsadmin("/addfilewithranges", other, server.url("/a"), str(tmp_path / "a"), "0-10")
    assert bad.status == 1
    assert bad.err.startswith("Unable to add file - 0x80070057\n")
    overlap = bitsadmin(
        "/addfilewithranges", other, server.url("/a"), str(tmp_path / "a"), "0:10,5:10"
    )
    assert overlap.status == 1
    assert "Unable to add file - 0x8020002c" in overlap.err  # BG_E_OVERLAPPING_RANGES


def test_replaceremoteprefix_moves_the_files_to_another_server(
    bitsadmin: BitsAdmin, server: FaultServer, tmp_path: Path
) -> None:
    """`/replaceremoteprefix job old new` rewrites the remote names; the job then downloads
    from the new server."""
    server.add("/ba/moved.bin", DATA)
    local = tmp_path / "moved.bin"
    job = bitsadmin.raw("/create", "moved")
    bitsadmin.ok("/addfile", job, "http://127.0.0.1:9/ba/moved.bin", str(local))
    out = bitsadmin.ok("/replaceremoteprefix", job, "http://127.0.0.1:9", server.base_url)
    assert f"Remote prefix http://127.0.0.1:9 replaced by {server.base_url}." in out
    assert bitsadmin.raw("/listfiles", job).endswith(f"{server.url('/ba/moved.bin')} -> {local}")
    assert "nothing changed" in bitsadmin.ok("/replaceremoteprefix", job, "ftp://x", "ftp://y")
    _finish(bitsadmin, job)
    assert local.read_bytes() == DATA


def test_custom_headers_reach_the_server_and_become_write_only(
    bitsadmin: BitsAdmin, server: FaultServer, tmp_path: Path
) -> None:
    """`/setcustomheaders job "A: 1" "B: 2"` sends both headers; /getcustomheaders prints them
    one per line (NULL when none); after /makecustomheaderswriteonly reading them fails with
    E_ACCESSDENIED; NULL removes them."""
    server.add("/ba/headers.bin", DATA)
    job = bitsadmin.raw("/create", "headers")
    assert bitsadmin.raw("/getcustomheaders", job) == "NULL"
    bitsadmin.ok("/setcustomheaders", job, "X-Ba-One: 1", "X-Ba-Two: two words")
    assert bitsadmin.raw("/getcustomheaders", job) == "X-Ba-One: 1\nX-Ba-Two: two words"
    assert "Custom headers removed." in bitsadmin.ok("/setcustomheaders", job, "NULL")
    assert bitsadmin.raw("/getcustomheaders", job) == "NULL"
    bitsadmin.ok("/setcustomheaders", job, "X-Ba-One: 1", "X-Ba-Two: two words")
    bitsadmin.ok("/makecustomheaderswriteonly", job)
    hidden = bitsadmin("/getcustomheaders", job)
    assert hidden.status == 1
    assert hidden.err.startswith("Unable to get custom headers - 0x80070005\n")
    bitsadmin.ok("/addfile", job, server.url("/ba/headers.bin"), str(tmp_path / "h.bin"))
    _finish(bitsadmin, job)
    seen = [r.headers for r in server.requests_for("/ba/headers.bin") if r.method == "GET"]
    assert seen
    assert all(h["x-ba-one"] == "1" and h["x-ba-two"] == "two words" for h in seen)
    other = bitsadmin.raw("/create", "bad-header")
    bad = bitsadmin("/setcustomheaders", other, "not a header")
    assert bad.status == 1
    assert "Unable to set custom headers - 0x80070057" in bad.err


def test_security_flags_and_http_method(bitsadmin: BitsAdmin) -> None:
    """/setsecurityflags takes decimal or hex and /getsecurityflags prints hex; CRL checking
    is E_NOTIMPL; /sethttpmethod makes the job FOREGROUND; /gethttpmethod prints GET by
    default."""
    job = bitsadmin.raw("/create", "flags")
    assert bitsadmin.raw("/getsecurityflags", job) == "0x0"
    assert "Security flags set to 0x208." in bitsadmin.ok("/setsecurityflags", job, "0x0208")
    assert bitsadmin.raw("/getsecurityflags", job) == "0x208"
    bitsadmin.ok("/setsecurityflags", job, "8")
    assert bitsadmin.raw("/getsecurityflags", job) == "0x8"
    crl = bitsadmin("/setsecurityflags", job, "1")
    assert crl.status == 1
    assert crl.err.startswith("Unable to set security flags - 0x80004001\n")
    assert bitsadmin.raw("/gethttpmethod", job) == "GET"
    bitsadmin.ok("/sethttpmethod", job, "HEAD")
    assert bitsadmin.raw("/gethttpmethod", job) == "HEAD"
    assert bitsadmin.raw("/getpriority", job) == "FOREGROUND"


def test_setproxysettings_and_its_validation_errors(bitsadmin: BitsAdmin) -> None:
    """/setproxysettings job usage [list] [bypass] sets what the /getproxy... switches print
    and /info /verbose shows; its mistakes fail with BITS's codes: E_INVALIDARG for an unknown
    usage, OVERRIDE without a list or a list without OVERRIDE, BG_E_PROXY_LIST_TOO_LARGE and
    BG_E_PROXY_BYPASS_LIST_TOO_LARGE for lists over 32 KB."""
    job = bitsadmin.raw("/create", "proxied")
    assert bitsadmin.raw("/getproxyusage", job) == "PRECONFIG"
    assert bitsadmin.raw("/getproxylist", job) == "NULL"
    out = bitsadmin.ok(
        "/setproxysettings", job, "override", "http://127.0.0.1:3128", "<local> *.example.org"
    )
    assert "Proxy usage set to OVERRIDE." in out
    assert bitsadmin.raw("/getproxyusage", job) == "OVERRIDE"
    assert bitsadmin.raw("/getproxylist", job) == "http://127.0.0.1:3128"
    assert bitsadmin.raw("/getproxybypasslist", job) == "<local> *.example.org"
    assert (
        "PROXY USAGE: OVERRIDE PROXY LIST: http://127.0.0.1:3128 "
        "PROXY BYPASS LIST: <local> *.example.org"
    ) in bitsadmin.ok("/info", job, "/verbose")
    bitsadmin.ok("/setproxysettings", job, "OVERRIDE", "http://127.0.0.1:3128", "NULL")
    assert bitsadmin.raw("/getproxybypasslist", job) == "NULL"
    bitsadmin.ok("/setproxysettings", job, "NO_PROXY")
    assert bitsadmin.raw("/getproxyusage", job) == "NO_PROXY"
    assert bitsadmin.raw("/getproxylist", job) == "NULL"
    huge = "http://p:1 " * 3000
    for argv, code in (
        (["SOMETIMES"], "0x80070057"),
        (["OVERRIDE"], "0x80070057"),
        (["NO_PROXY", "http://p:1"], "0x80070057"),
        (["OVERRIDE", huge], "0x80200018"),
        (["OVERRIDE", "http://p:1", huge], "0x80200019"),
    ):
        result = bitsadmin("/setproxysettings", job, *argv)
        assert result.status == 1, argv
        assert result.err.startswith(f"Unable to set proxy settings - {code}\n"), result.err
    assert bitsadmin.raw("/getproxyusage", job) == "NO_PROXY"  # nothing half-set
    too_many = bitsadmin("/setproxysettings", job, "OVERRIDE", "a", "b", "c")
    assert too_many.status == 1
    assert "wrong number of arguments for /SETPROXYSETTINGS" in too_many.err


def test_setcredentials_opens_a_protected_file_and_warns(
    bitsadmin: BitsAdmin, server: FaultServer, tmp_path: Path
) -> None:
    """/setcredentials job SERVER BASIC user password (Windows syntax) warns on stderr that the
    password is visible to other processes, never prints it, and the download authenticates;
    /removecredentials forgets them; bad targets and schemes fail with BITS's codes."""
    password = "pw-on-the-command-line"  # noqa: S105 (a test account)
    server.add("/ba/private.bin", DATA)
    server.protect("/ba/private.bin", ("dave", password))
    local = tmp_path / "private.bin"
    job = bitsadmin.raw("/create", "private")
    result = bitsadmin("/setcredentials", job, "server", "Basic", "dave", password)
    assert result.status == 0, result
    assert COMMAND_LINE_WARNING in result.err
    assert "Credentials set for SERVER BASIC." in result.out
    assert password not in result.out + result.err
    assert password not in bitsadmin.ok("/info", job, "/verbose")
    bitsadmin.ok("/addfile", job, server.url("/ba/private.bin"), str(local))
    _finish(bitsadmin, job)
    assert local.read_bytes() == DATA

    other = bitsadmin.raw("/create", "creds")
    bitsadmin.ok("/setcredentials", other, "PROXY", "NTLM", "dave", password)
    removed = bitsadmin.ok("/removecredentials", other, "PROXY", "NTLM")
    assert "Credentials removed for PROXY NTLM." in removed
    again = bitsadmin.ok("/removecredentials", other, "proxy", "ntlm")
    assert "The job had no credentials for PROXY NTLM." in again
    for argv, action, code in (
        (["/setcredentials", other, "CLIENT", "BASIC", "u", "p"], "set", "0x80200027"),
        (["/setcredentials", other, "SERVER", "KERBEROS", "u", "p"], "set", "0x80200028"),
        (["/setcredentials", other, "SERVER", "PASSPORT", "u", "p"], "set", "0x80004001"),
        (["/removecredentials", other, "SERVER", "FORM"], "remove", "0x80200028"),
    ):
        failed = bitsadmin(*argv)
        assert failed.status == 1, argv
        assert f"Unable to {action} credentials - {code}" in failed.err, failed.err


def test_validation_state_and_client_certificate(
    bitsadmin: BitsAdmin, server: FaultServer, tmp_path: Path
) -> None:
    """/setvalidationstate job 0 FALSE puts the job in ERROR (BG_E_VALIDATION_FAILED) and
    /resume downloads the file again; TRUE is what /getvalidationstate prints back. Before
    the file is transferred: E_PENDING. /getclientcertificate prints none; by-store switches
    say how bitsd does it instead."""
    server.add("/ba/validate.bin", DATA)
    local = tmp_path / "validate.bin"
    job = bitsadmin.raw("/create", "validated")
    bitsadmin.ok("/addfile", job, server.url("/ba/validate.bin"), str(local))
    early = bitsadmin("/setvalidationstate", job, "0", "TRUE")
    assert early.status == 1
    assert early.err.startswith("Unable to set validation state - 0x8000000a\n")
    bitsadmin.ok("/resume", job)
    bitsadmin.wait_state(job, "TRANSFERRED")
    assert bitsadmin.raw("/getvalidationstate", job, "0") == "FALSE"
    bitsadmin.ok("/setvalidationstate", job, "0", "false")
    assert bitsadmin.raw("/getstate", job) == "ERROR"
    assert "BG_E_VALIDATION_FAILED" in bitsadmin.ok("/geterror", job)
    bitsadmin.ok("/resume", job)
    bitsadmin.wait_state(job, "TRANSFERRED")
    bitsadmin.ok("/setvalidationstate", job, "0", "TRUE")
    assert bitsadmin.raw("/getvalidationstate", job, "0") == "TRUE"
    assert bitsadmin("/getvalidationstate", job, "1").status == 1
    assert bitsadmin("/setvalidationstate", job, "0", "MAYBE").status == 1
    assert bitsadmin.raw("/getclientcertificate", job) == "none"
    assert "Client certificate removed." in bitsadmin.ok("/removeclientcertificate", job)
    by_store = bitsadmin("/setclientcertificatebyname", job, "0", "MY", "me")
    assert by_store.status == 1
    assert "use bitsd set --client-cert" in by_store.err
    bitsadmin.ok("/complete", job)
    assert local.read_bytes() == DATA
