"""The pure parts of bitsadmin: its output layout and its switch table, without a daemon."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bitsd import codes
from bitsd._enums import ErrorContext, JobState, JobType, NotifyFlags, Priority, ProxyUsage
from bitsd._records import (
    ErrorInfo,
    FileInfo,
    FileProgress,
    JobProgress,
    JobSnapshot,
    JobTimes,
    ReplyProgress,
)
from bitsd.cli.bitsadmin import SWITCHES, UTIL_SWITCHES, main
from bitsd.cli.bitsadmin_format import (
    certificate_text,
    cmd_line_text,
    error_lines,
    guid,
    hex_dump_lines,
    info_lines,
    list_line,
    reply_progress_text,
    seconds_text,
    size_text,
    time_text,
)

LOCAL = datetime.now().astimezone().tzinfo


# Every switch of Microsoft's bitsadmin (shared/reference/bits-inventory.md, section 7.1).
WINDOWS_SWITCHES = """
/create /addfile /addfileset /addfilewithranges /resume /suspend /cancel /complete /reset
/takeownership /transfer /info /list /listfiles /monitor /getstate /gettype /geterror
/geterrorcount /getbytestotal /getbytestransferred /getfilestotal /getfilestransferred
/getcreationtime /getmodificationtime /getcompletiontime /getowner /getdisplayname
/getdescription /getpriority /getminretrydelay /getnoprogresstimeout /getmaxdownloadtime
/getnotifycmdline /getnotifyflags /getnotifyinterface /getproxyusage /getproxylist
/getproxybypasslist /getreplydata /getreplyfilename /getreplyprogress /getaclflags
/getcustomheaders /getclientcertificate /getsecurityflags /gethttpmethod
/gethelpertokenflags /gethelpertokensid /getpeercachingflags /gettemporaryname
/getvalidationstate /setdisplayname /setdescription /setpriority /setminretrydelay
/setnoprogresstimeout /setmaxdownloadtime /setnotifycmdline /setnotifyflags
/setproxysettings /setreplyfilename /setaclflag /setcredentials /removecredentials
/setcustomheaders /makecustomheaderswriteonly /setclientcertificatebyid
/setclientcertificatebyname /removeclientcertificate /setsecurityflags /sethttpmethod
/sethelpertoken /sethelpertokenflags /setpeercachingflags /setvalidationstate
/replaceremoteprefix /cache /peercaching /peers /util /help
"""


def test_guid_is_upper_case_in_braces() -> None:
    """Job ids print as Windows prints GUIDs, whatever form they come in."""
    expected = "{0B9C6F2E-1D2A-4E5F-8A9B-0C1D2E3F4A5B}"
    assert guid("0b9c6f2e-1d2a-4e5f-8a9b-0c1d2e3f4a5b") == expected
    assert guid("{0B9C6F2E-1D2A-4E5F-8A9B-0C1D2E3F4A5B}") == expected


@pytest.mark.parametrize(
    ("when", "text"),
    [
        (datetime(2002, 12, 17, 13, 21, 17, tzinfo=LOCAL), "12/17/2002 1:21:17 PM"),
        (datetime(2026, 1, 2, 0, 5, 9, tzinfo=LOCAL), "1/2/2026 12:05:09 AM"),
        (datetime(2026, 7, 4, 12, 0, 0, tzinfo=LOCAL), "7/4/2026 12:00:00 PM"),
        (None, "UNKNOWN"),
    ],
)
def test_times_print_as_en_us_windows(when: datetime | None, text: str) -> None:
    """Times print as M/D/YYYY h:mm:ss AM|PM in local time; no time is UNKNOWN."""
    assert time_text(when) == text


def test_times_are_converted_to_local_time() -> None:
    """A UTC time from the daemon is shown in the local time zone."""
    utc = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
    assert time_text(utc) == time_text(utc.astimezone(LOCAL))
    assert time_text(utc + timedelta(hours=1)) != time_text(utc)


def test_sizes_seconds_and_command_lines() -> None:
    """BG_SIZE_UNKNOWN prints UNKNOWN; whole seconds print without a fraction; the notify
    command line prints quoted parts, NULL for a missing part, none for no command line."""
    assert size_text(codes.SIZE_UNKNOWN) == "UNKNOWN"
    assert size_text(0) == "0"
    assert seconds_text(600.0) == "600"
    assert seconds_text(0.5) == "0.5"
    assert cmd_line_text("/bin/true", "true x") == "'/bin/true' 'true x'"
    assert cmd_line_text("/bin/true", None) == "'/bin/true' NULL"
    assert cmd_line_text(None, None) == "none"


def _snapshot(**fields: object) -> JobSnapshot:
    """A JobSnapshot with BITS's defaults, changed by ``fields``."""
    when = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
    defaults: dict[str, object] = {
        "id": "482fcaf0-74bf-469b-8929-5ccd028c9499",
        "display_name": "job2",
        "description": "",
        "type": JobType.DOWNLOAD,
        "state": JobState.SUSPENDED,
        "priority": Priority.NORMAL,
        "owner": 0,
        "notify_flags": NotifyFlags(3),
        "notify_program": None,
        "notify_parameters": None,
        "minimum_retry_delay": 600.0,
        "no_progress_timeout": 1_209_600.0,
        "maximum_download_time": 7_776_000.0,
        "dynamic_content": False,
        "error_count": 0,
        "progress": JobProgress(0, 0, 0, 0),
        "times": JobTimes(when, when, None),
        "error": None,
    }
    return JobSnapshot(**{**defaults, **fields})  # type: ignore[arg-type]


def test_reply_progress_and_hex_dump() -> None:
    """/GETREPLYPROGRESS: "N of M bytes transferred", UNKNOWN before the upload is done, a
    percentage when there is a total; /GETREPLYDATA: hexdump -C's lines, a gap after 8 bytes,
    non-printable bytes as dots, a short last line padded."""
    assert reply_progress_text(ReplyProgress(codes.SIZE_UNKNOWN, 0)) == (
        "0 of UNKNOWN bytes transferred"
    )
    assert reply_progress_text(ReplyProgress(0, 0)) == "0 of 0 bytes transferred"
    assert reply_progress_text(ReplyProgress(3000, 1000)) == "1000 of 3000 bytes transferred (33%)"
    data = bytes(range(0x1E, 0x1E + 16)) + b"\x7f~\n"
    assert hex_dump_lines(data) == [
        "00000000  1e 1f 20 21 22 23 24 25  26 27 28 29 2a 2b 2c 2d  |.. !\"#$%&'()*+,-|",
        "00000010  7f 7e 0a                                          |.~.|",
    ]
    assert hex_dump_lines(b"") == []
    assert len(hex_dump_lines(bytes(32))) == 2


def test_list_line_layout() -> None:
    """`{GUID} 'name' STATE files / files bytes / bytes`, as bitsadmin /list prints it."""
    view = _snapshot(
        state=JobState.TRANSIENT_ERROR, progress=JobProgress(codes.SIZE_UNKNOWN, 0, 1, 0)
    )
    assert list_line(view) == (
        "{482FCAF0-74BF-469B-8929-5CCD028C9499} 'job2' TRANSIENT_ERROR 0 / 1 0 / UNKNOWN"
    )


def test_info_lines_show_the_proxy_settings_in_bitsadmins_place() -> None:
    """The verbose block has bitsadmin's PROXY line after the retry settings (NULL for a list
    that is not set); the owner is the uid's login name; the client certificate prints as
    its files."""
    view = _snapshot(
        proxy_usage=int(ProxyUsage.OVERRIDE), proxy_list="http://proxy:3128", proxy_bypass=None
    )
    lines = info_lines(view, verbose=True, files=[])
    assert lines[1] == "TYPE: DOWNLOAD STATE: SUSPENDED OWNER: root"
    assert lines[6:8] == [
        "RETRY DELAY: 600 NO PROGRESS TIMEOUT: 1209600 ERROR COUNT: 0",
        "PROXY USAGE: OVERRIDE PROXY LIST: http://proxy:3128 PROXY BYPASS LIST: NULL",
    ]
    assert certificate_text(None) == "none"
    assert certificate_text(("/c.pem", None)) == "'/c.pem' NULL"
    assert certificate_text(("/c.pem", "/k.pem")) == "'/c.pem' '/k.pem'"


def test_error_lines_layout() -> None:
    """The error block aligns its labels and names the code and the context."""
    error = ErrorInfo(
        code=codes.BG_E_HTTP_ERROR_404,
        context=ErrorContext.REMOTE_FILE,
        description="Not found.",
        context_description="The remote file.",
        file=FileInfo("http://h/f", "/tmp/f", FileProgress(codes.SIZE_UNKNOWN, 0, False), "/t"),
        protocol="http",
    )
    assert error_lines(error) == [
        "ERROR FILE:    http://h/f -> /tmp/f",
        "ERROR CODE:    0x80190194 (BG_E_HTTP_ERROR_404) - Not found.",
        "ERROR CONTEXT: 0x00000005 (REMOTE_FILE) - The remote file.",
    ]


def test_switch_table_covers_bitsadmin() -> None:
    """Every switch of Microsoft's bitsadmin (inventory section 7.1) is in the table, either
    with a handler or with the reason bitsd does not support it, and names are unique."""
    names = [s.name for s in SWITCHES]
    assert len(names) == len(set(names))
    for switch in SWITCHES:
        assert (switch.handler is None) == (switch.unsupported is not None), switch.name
    windows = WINDOWS_SWITCHES.split()
    known = {n.lower() for n in names}
    assert [w for w in windows if w not in known] == []
    assert {u.name for u in UTIL_SWITCHES} >= {
        "/VERSION",
        "/GETIEPROXY",
        "/SETIEPROXY",
        "/REPAIRSERVICE",
        "/ENABLEANALYTICCHANNEL",
    }


def test_no_switch_prints_the_help(capsys: pytest.CaptureFixture[str]) -> None:
    """`bitsadmin` alone prints the help and succeeds."""
    assert main([]) == 0
    assert "USAGE: bitsadmin [/RAWRETURN] [/WRAP | /NOWRAP] command" in capsys.readouterr().out


def test_wrap_breaks_lines_at_the_terminal_width(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`/wrap` breaks long lines at the terminal's width; `/nowrap` (the default) does not."""
    monkeypatch.setenv("COLUMNS", "40")
    assert main(["/wrap", "/?"]) == 0
    wrapped = capsys.readouterr().out.splitlines()
    assert max(len(line) for line in wrapped) <= 40
    assert main(["/nowrap", "/?"]) == 0
    assert max(len(line) for line in capsys.readouterr().out.splitlines()) > 40


def test_rawreturn_version_has_no_banner_and_no_newline(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`/rawreturn /util /version` prints the bare version."""
    assert main(["/RawReturn", "/Util", "/Version"]) == 0
    out = capsys.readouterr().out
    assert out
    assert "\n" not in out
    assert "bitsadmin" not in out
