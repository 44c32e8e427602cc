"""The one-line error messages and their advice, without a daemon."""

from __future__ import annotations

import pytest

from bitsd import codes
from bitsd._client import DAEMON_UNAVAILABLE
from bitsd._enums import ErrorContext
from bitsd._errors import BitsError, EmptyJobError, NotFoundError
from bitsd._records import ErrorInfo, FileInfo, FileProgress
from bitsd.cli.errors import (
    ExitCode,
    advice_for,
    bits_error_line,
    error_info_line,
    from_bits_error,
)

JOB = "0b9c2f4e-1111-4222-8333-444455556666"
URL = "http://example.org/file.iso"
LOCAL = "/tmp/dest/file.iso"


def _error(code: int, context: ErrorContext, description: str = "") -> ErrorInfo:
    file = FileInfo(URL, LOCAL, FileProgress(10, 5, False), "/tmp/dest/BIT1.tmp")
    return ErrorInfo(code, context, description or codes.describe(code), "ctx", file, "http")


def test_404_reads_as_the_issue_spells_it() -> None:
    """A 404 gives the name, the hex HRESULT, the context, what happened and what to do."""
    line = error_info_line(_error(codes.BG_E_HTTP_ERROR_404, ErrorContext.REMOTE_FILE), JOB)
    expected = (
        f"BG_E_HTTP_ERROR_404 (0x80190194) in REMOTE_FILE: the server has no file at {URL}; "
        f"fix the URL and run bitsd resume {JOB}"
    )
    assert expected == line


@pytest.mark.parametrize(
    ("code", "context", "fragment"),
    [
        (codes.BG_E_HTTP_ERROR_401, ErrorContext.REMOTE_FILE, "asks for a login"),
        (codes.BG_E_HTTP_ERROR_403, ErrorContext.REMOTE_FILE, "refuses access"),
        (codes.http_error(503), ErrorContext.REMOTE_FILE, "failed (HTTP 503)"),
        (codes.http_error(502), ErrorContext.REMOTE_FILE, "bitsd retries it"),
        (codes.http_error(418), ErrorContext.REMOTE_FILE, "rejected the request"),
        (codes.BG_E_INSUFFICIENT_RANGE_SUPPORT, ErrorContext.REMOTE_FILE, "--dynamic"),
        (codes.BG_E_MISSING_FILE_SIZE, ErrorContext.REMOTE_FILE, "Content-Length"),
        (codes.BG_E_RANDOM_ACCESS_NOT_SUPPORTED, ErrorContext.REMOTE_FILE, "on demand"),
        (codes.BG_E_INVALID_RANGE, ErrorContext.REMOTE_FILE, "dropped that range"),
        (codes.hresult_from_errno(28), ErrorContext.LOCAL_FILE, f"disk of {LOCAL}"),
        (codes.E_ACCESSDENIED, ErrorContext.LOCAL_FILE, f"permission denied on {LOCAL}"),
        (codes.E_ACCESSDENIED, ErrorContext.REMOTE_FILE, f"permission denied on {URL}"),
        (codes.BG_E_CONNECT_FAILURE, ErrorContext.GENERAL_TRANSPORT, "cannot connect"),
        (codes.BG_E_TIMEOUT, ErrorContext.GENERAL_TRANSPORT, "did not answer in time"),
        (codes.BG_E_CONNECTION_CLOSED, ErrorContext.GENERAL_TRANSPORT, "closed the connection"),
    ],
)
def test_common_codes_have_advice(code: int, context: ErrorContext, fragment: str) -> None:
    """Each common failure says what it means in words and names a command to run."""
    line = error_info_line(_error(code, context), JOB)
    assert fragment in line
    assert line.startswith(f"{codes.name_of(code)} (0x{code:08X}) in {context.name}: ")
    assert "; " in line
    assert "\n" not in line


def test_unknown_code_falls_back_to_the_daemon_description() -> None:
    """A code without advice keeps the daemon's description and gets the generic advice."""
    line = error_info_line(_error(0x80201234, ErrorContext.UNKNOWN, "Something odd."), JOB)
    assert advice_for(0x80201234) is None
    assert line == (
        f"0x80201234 (0x80201234) in UNKNOWN: Something odd; retry with bitsd resume {JOB}, "
        f"or give up with bitsd cancel {JOB}"
    )


def test_command_errors_name_the_command_as_context() -> None:
    """An error the daemon answers a command with has the command as its context."""
    line = bits_error_line(EmptyJobError(), "resume", JOB)
    assert line.startswith("BG_E_EMPTY (0x80200003) in resume: ")
    assert f"bitsd add {JOB} URL LOCAL" in line


def test_a_code_can_mean_something_particular_for_one_command() -> None:
    """BG_E_INVALID_STATE from ``reply`` says to wait for TRANSFERRED; from another command it
    keeps the general advice; BG_E_TOO_LARGE from ``reply`` says where the reply is."""
    state = BitsError("the job is SUSPENDED", hresult=codes.BG_E_INVALID_STATE)
    assert bits_error_line(state, "reply", JOB).endswith(f"; wait for it with bitsd wait {JOB}")
    assert bits_error_line(state, "resume", JOB).endswith(
        f"; see the job's state with bitsd info {JOB}"
    )
    large = bits_error_line(BitsError("too big", hresult=codes.BG_E_TOO_LARGE), "reply", JOB)
    assert large == (
        f"BG_E_TOO_LARGE (0x80200020) in reply: too big; run bitsd complete {JOB}, then read "
        f"the reply file (bitsd reply {JOB} --progress names it)"
    )


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (NotFoundError("no job"), ExitCode.NOT_FOUND),
        (BitsError("gone", hresult=DAEMON_UNAVAILABLE), ExitCode.UNREACHABLE),
        (EmptyJobError(), ExitCode.JOB_ERROR),
    ],
)
def test_exit_codes_follow_the_kind_of_failure(error: BitsError, code: ExitCode) -> None:
    """Unknown job 4, unreachable daemon 3, any other BITS error 1."""
    failure = from_bits_error(error, "info")
    assert failure.exit_code == code
    assert "\n" not in failure.format_message()


def test_unreachable_daemon_line_has_a_name() -> None:
    """The daemon-unavailable HRESULT reads as its Win32 name, not as a bare number."""
    line = bits_error_line(BitsError("unreachable", hresult=DAEMON_UNAVAILABLE), "list")
    assert line.startswith("HRESULT_FROM_WIN32(RPC_S_SERVER_UNAVAILABLE) (0x800706BA) in list:")


def test_other_command_errors_say_to_run_the_command_again() -> None:
    """An error of a command without its own advice (a local folder that is missing, from add)
    keeps the daemon's words and says to fix it and run the same command again."""
    error = BitsError("the local folder /nope does not exist.", hresult=codes.HRESULT_FROM_WIN32(3))
    line = bits_error_line(error, "add", JOB)
    assert line == (
        "HRESULT_FROM_WIN32(ERROR_PATH_NOT_FOUND) (0x80070003) in add: the local folder /nope "
        "does not exist; fix that and run bitsd add again"
    )
