"""Exit codes and the one-line error messages of the ``bitsd`` command line.

Rules:
- Every failure a person sees is ONE line on stderr, never a traceback. A BITS error reads
  ``<NAME> (0x<HRESULT>) in <CONTEXT>: <what happened>; <what to do>``, e.g.
  ``BG_E_HTTP_ERROR_404 (0x80190194) in REMOTE_FILE: the server has no file at URL; fix the
  URL and run bitsd resume JOB``. The context of a job's error is its BITS error context; the
  context of an error the daemon answered a command with is that command (``in resume``).
- What to do comes from two tables keyed by HRESULT: :data:`_ADVICE` for a job's error (with the
  HTTP statuses grouped by class) and :data:`_COMMAND_ADVICE` for an error the daemon answers a
  command with, where :data:`_ADVICE_OF_COMMAND` first gives the codes that mean something
  particular for one command. A code missing from them gets a generic sentence.
- The exit code says what kind of failure it was (:class:`ExitCode`, documented in docs/cli.md);
  click's own usage errors keep click's code 2.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import IO, Any

import click

from bitsd import codes
from bitsd._client import DAEMON_UNAVAILABLE
from bitsd._errors import BitsError, without_userinfo
from bitsd._records import ErrorInfo

__all__ = [
    "Advice",
    "CliError",
    "ExitCode",
    "advice_for",
    "bits_error_line",
    "error_info_line",
    "fail",
    "from_bits_error",
]


class ExitCode(enum.IntEnum):
    """The exit statuses of ``bitsd`` (docs/cli.md, "Exit codes")."""

    OK = 0
    JOB_ERROR = 1
    """The job ended in ERROR, or the daemon refused a command with a BITS error."""
    USAGE = 2
    """A bad argument or option (click's own code), or a job name that matches several jobs."""
    UNREACHABLE = 3
    """The daemon could not be reached (and, with autostart, not started)."""
    NOT_FOUND = 4
    """No job with that id or display name among the user's jobs."""
    TIMEOUT = 124
    """``bitsd wait --timeout`` ran out first (the code of timeout(1))."""
    INTERRUPTED = 130
    """Ctrl+C (128 + SIGINT); the job goes on in the daemon."""


class CliError(click.ClickException):
    """A failure that ends the command: its one line goes to stderr, its class's code is the
    exit code. Make one with :func:`fail`."""

    exit_code = ExitCode.JOB_ERROR

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(self.format_message(), file=file, err=file is None)


# One subclass per exit code: click reads the code from the class.
_ERROR_CLASSES: dict[ExitCode, type[CliError]] = {
    code: type(f"CliError{int(code)}", (CliError,), {"exit_code": code}) for code in ExitCode
}


def fail(message: str, code: ExitCode = ExitCode.JOB_ERROR) -> CliError:
    """The error that ends the command with ``message`` on stderr and exit status ``code``."""
    return _ERROR_CLASSES[code](message)


@dataclasses.dataclass(frozen=True, slots=True)
class Advice:
    """What a code means for the person at the terminal, and what they can do about it.

    Both are templates: ``{url}`` the remote name, ``{local}`` the local name, ``{path}`` the
    one of the two the context points at, ``{job}`` the job id, ``{status}`` the HTTP status.
    """

    what: str
    todo: str


_RETRY = "bitsd retries it after the job's retry delay; run bitsd resume {job} to retry now"
_CONNECTION = Advice("the connection to the server of {url} failed", _RETRY)

# HRESULT -> what to do, for the errors the daemon answers a command with. Anything else there
# (e.g. a local folder that does not exist, from add) is fixed by running the command again.
_COMMAND_ADVICE: dict[int, str] = {
    codes.BG_E_NOT_FOUND: "list your jobs with bitsd list",
    codes.BG_E_INVALID_STATE: "see the job's state with bitsd info {job}",
    codes.BG_E_EMPTY: "add one with bitsd add {job} URL LOCAL, then bitsd resume {job}",
    codes.BG_E_ERROR_INFORMATION_UNAVAILABLE: (
        "the job is not in error; see its state with bitsd info {job}"
    ),
    codes.BG_E_READ_ONLY_PROPERTY_AFTER_RESUME: (
        "this property can only be set before the first resume; create a new job"
    ),
    codes.BG_E_READ_ONLY_PROPERTY_AFTER_ADDFILE: (
        "this property can only be set before files are added; create a new job"
    ),
    codes.E_INVALIDARG: "check the arguments (bitsd {command} --help)",
    codes.BG_E_STRING_TOO_LONG: "use a shorter text (at most 1,024 characters)",
    codes.E_NOTIMPL: "bitsd does not support this, or not for this type of job (bitsd info {job})",
    codes.BG_E_CLIENT_SERVER_PROTOCOL_MISMATCH: (
        "restart the daemon so that it runs the same bitsd version as this command"
    ),
    codes.BG_E_DATABASE_CORRUPT: (
        "the daemon's job store is unusable; see its log in the state folder"
    ),
    DAEMON_UNAVAILABLE: (
        "start it with bitsd serve --detach, or let bitsd start it (no --no-autostart, no "
        "BITSD_NO_AUTOSTART); its log is daemon.log in the state folder"
    ),
    codes.BG_E_TOO_MANY_JOBS_PER_USER: "complete or cancel some of your jobs (bitsd list)",
    codes.BG_E_TOO_MANY_FILES_IN_JOB: "split the files over several jobs",
    codes.E_PENDING: "wait until the file is transferred (bitsd wait {job})",
    codes.BG_E_NOT_SUPPORTED_WITH_CUSTOM_HTTP_METHOD: (
        "a job with a custom HTTP method is FOREGROUND, without dynamic content or on-demand "
        "mode; create a new job"
    ),
    codes.BG_E_UNSUPPORTED_JOB_CONFIGURATION: (
        "file ranges, dynamic content and on-demand mode (http(s) files only) do not go "
        "together; create a new job"
    ),
    codes.BG_E_RANDOM_ACCESS_NOT_SUPPORTED: (
        "ranges are asked of on-demand download jobs (bitsd set {job} --on-demand before the "
        "first resume) whose server supports ranges; see the job with bitsd info {job}"
    ),
    codes.BG_E_INVALID_RANGE: "give ranges inside the file, e.g. 0:1000 or 5000:eof",
    codes.BG_E_OVERLAPPING_RANGES: "give ranges that do not overlap",
    codes.BG_E_TOO_MANY_RANGES_IN_FILE: "give at most 500 ranges per file, or split the file",
}

# (command, HRESULT) -> what to do, where a code means something particular for that command.
_ADVICE_OF_COMMAND: dict[tuple[str, int], str] = {
    (
        "reply",
        codes.E_NOTIMPL,
    ): "an upload-reply job has one (bitsd create NAME --type upload-reply)",
    ("reply", codes.BG_E_INVALID_STATE): "wait for it with bitsd wait {job}",
    ("reply", codes.BG_E_TOO_LARGE): (
        "run bitsd complete {job}, then read the reply file (bitsd reply {job} --progress names it)"
    ),
}

# HRESULT -> advice, for a job's error (what GetError reports). HTTP statuses not listed here are
# grouped by class in advice_for().
_ADVICE: dict[int, Advice] = {
    # -- the server's answers --------------------------------------------------------------
    codes.BG_E_HTTP_ERROR_404: Advice(
        "the server has no file at {url}", "fix the URL and run bitsd resume {job}"
    ),
    codes.BG_E_HTTP_ERROR_410: Advice(
        "the server has no file at {url} any more", "fix the URL and run bitsd resume {job}"
    ),
    codes.BG_E_HTTP_ERROR_401: Advice(
        "the server asks for a login to {url}, and the job has no credentials it accepts",
        "give them with bitsd credentials {job} set --target server --scheme SCHEME --user NAME, "
        "then run bitsd resume {job}",
    ),
    codes.BG_E_HTTP_ERROR_407: Advice(
        "the proxy asks for a login, and the job has no proxy credentials it accepts",
        "give them with bitsd credentials {job} set --target proxy --scheme SCHEME --user NAME, "
        "then run bitsd resume {job}",
    ),
    codes.BG_E_HTTP_ERROR_403: Advice(
        "the server refuses access to {url}",
        "get access to the file on the server, then run bitsd resume {job}",
    ),
    codes.BG_E_HTTP_ERROR_416: Advice(
        "the server refuses the byte range asked for {url}",
        "run bitsd resume {job}; if it fails again, bitsd cancel {job} and start over",
    ),
    codes.BG_E_INSUFFICIENT_RANGE_SUPPORT: Advice(
        "the server of {url} ignores Range requests, so the download cannot resume",
        "use a server or proxy that supports ranges, or download it again with "
        "bitsd transfer --dynamic {url}",
    ),
    codes.BG_E_MISSING_FILE_SIZE: Advice(
        "the server of {url} does not tell the file's size (no Content-Length)",
        "download it again with bitsd transfer --dynamic {url}",
    ),
    codes.BG_E_INSUFFICIENT_HTTP_SUPPORT: Advice(
        "the server of {url} does not speak HTTP/1.1", "use another server, or bitsd cancel {job}"
    ),
    codes.BG_E_INVALID_SERVER_RESPONSE: Advice(
        "the server of {url} answered something bitsd cannot use", _RETRY
    ),
    codes.BG_E_INVALID_RANGE: Advice(
        "the range asked for is outside the file at {url}",
        "bitsd cancel {job} and start over (an on-demand job has dropped that range: bitsd "
        "resume {job} goes on with the others)",
    ),
    codes.BG_E_RANDOM_ACCESS_NOT_SUPPORTED: Advice(
        "the server of {url} ignores Range requests, so ranges of it cannot be fetched on demand",
        "use a server that supports ranges, or bitsd cancel {job} and download it whole with "
        "bitsd transfer {url}",
    ),
    # -- the connection --------------------------------------------------------------------
    codes.BG_E_CONNECT_FAILURE: Advice("cannot connect to the server of {url}", _RETRY),
    codes.BG_E_NAME_RESOLUTION_FAILURE: Advice(
        "the host name of {url} cannot be resolved", "check the URL and the network; " + _RETRY
    ),
    codes.BG_E_CONNECTION_CLOSED: Advice(
        "the server closed the connection before the end of {url}", _RETRY
    ),
    codes.BG_E_RECEIVE_FAILURE: _CONNECTION,
    codes.BG_E_SEND_FAILURE: _CONNECTION,
    codes.BG_E_KEEP_ALIVE_FAILURE: _CONNECTION,
    codes.BG_E_NETWORK_DISCONNECTED: Advice(
        "the network is disconnected", "bitsd goes on when the network is back"
    ),
    codes.BG_E_TIMEOUT: Advice("the server of {url} did not answer in time", _RETRY),
    codes.BG_E_SECURE_CHANNEL_FAILURE: Advice(
        "the TLS handshake with the server of {url} failed", _RETRY
    ),
    codes.BG_E_TRUST_FAILURE: Advice(
        "the TLS certificate of the server of {url} is not trusted",
        "fix the server's certificate, or trust its CA with bitsd set {job} --ca-bundle PEM, "
        "then run bitsd resume {job}",
    ),
    codes.BG_E_INVALID_PROXY_INFO: Advice(
        "the job's proxy settings cannot be used",
        "fix them with bitsd set {job} --proxy-list '...' (or --proxy-usage preconfig), then "
        "run bitsd resume {job}",
    ),
    codes.HRESULT_FROM_WIN32(12156): Advice(  # ERROR_HTTP_REDIRECT_FAILED
        "{url} redirects too often", "fix the URL and run bitsd resume {job}"
    ),
    codes.BG_E_MAX_DOWNLOAD_SIZE_LIMIT_REACHED: Advice(
        "the files of the job are larger than its maximum download size",
        "the limit can only be set before the first resume: bitsd cancel {job} and start a new "
        "job with a larger --max-download-size",
    ),
    codes.BG_E_MAXDOWNLOAD_TIMEOUT: Advice(
        "the job took longer than its maximum download time",
        "raise it with bitsd set {job} --max-download-time S, then run bitsd resume {job}",
    ),
    # -- the local file --------------------------------------------------------------------
    codes.BG_E_VALIDATION_FAILED: Advice(
        "{local} failed validation (its SHA-256 differs from the expected one, or it was "
        "marked invalid)",
        "run bitsd resume {job} to download it again, or bitsd cancel {job}",
    ),
    codes.HRESULT_FROM_WIN32(112): Advice(  # ERROR_DISK_FULL (ENOSPC, EDQUOT)
        "no space is left on the disk of {local}",
        "free some space, then run bitsd resume {job}",
    ),
    codes.E_ACCESSDENIED: Advice(
        "permission denied on {path}", "fix the permissions, then run bitsd resume {job}"
    ),
    codes.HRESULT_FROM_WIN32(19): Advice(  # ERROR_WRITE_PROTECT (EROFS)
        "the file system of {local} is read-only",
        "choose a writable folder for a new job, or remount it and run bitsd resume {job}",
    ),
    codes.HRESULT_FROM_WIN32(2): Advice(  # ERROR_FILE_NOT_FOUND
        "there is no file at {path}", "fix the path and run bitsd resume {job}"
    ),
    codes.HRESULT_FROM_WIN32(3): Advice(  # ERROR_PATH_NOT_FOUND
        "a folder of {path} does not exist", "create it, then run bitsd resume {job}"
    ),
}

_GENERIC_JOB = "retry with bitsd resume {job}, or give up with bitsd cancel {job}"
_GENERIC_COMMAND = "fix that and run bitsd {command} again"

# Names for codes that bitsd.codes does not name, so that the line never starts with a number.
_EXTRA_NAMES: dict[int, str] = {
    DAEMON_UNAVAILABLE: "HRESULT_FROM_WIN32(RPC_S_SERVER_UNAVAILABLE)",
    codes.HRESULT_FROM_WIN32(12156): "HRESULT_FROM_WIN32(ERROR_HTTP_REDIRECT_FAILED)",
}


def _name(hresult: int) -> str:
    return _EXTRA_NAMES.get(hresult) or codes.name_of(hresult)


def advice_for(hresult: int) -> Advice | None:
    """The advice for a code: its own entry, else the one of its HTTP status class, else None."""
    hresult = codes.to_unsigned(hresult)
    found = _ADVICE.get(hresult)
    if found is not None:
        return found
    status = codes.http_status_of(hresult)
    if status is None:
        return None
    if status >= 500 and status not in (501, 505):
        return Advice("the server of {url} failed (HTTP {status})", _RETRY)
    if status >= 500:
        return Advice(
            "the server of {url} cannot serve this request (HTTP {status})",
            "use another server, or bitsd cancel {job}",
        )
    if status >= 400:
        return Advice(
            "the server rejected the request for {url} (HTTP {status})",
            "check the URL, then run bitsd resume {job}",
        )
    return Advice(
        "the server of {url} answered HTTP {status}", "check the URL, then run bitsd resume {job}"
    )


def _sentence(text: str) -> str:
    """A description as the middle of a line: one line, no final full stop."""
    return " ".join(text.split()).rstrip(".")


def _line(hresult: int, context: str, what: str, todo: str) -> str:
    return f"{_name(hresult)} (0x{codes.to_unsigned(hresult):08X}) in {context}: {what}; {todo}"


def error_info_line(error: ErrorInfo, job: str, *, todo: str | None = None) -> str:
    """The one line for a job's error (what ``bitsd error`` and ``bitsd transfer`` print).

    Args:
        error: the job's error.
        job: the job id, for the advice.
        todo: replaces the advice's "what to do" (e.g. when the job was cancelled already).
    """
    # An error never shows a password of a URL (docs/design-choices.md, "Credentials in URLs").
    url = without_userinfo(error.file.remote_name) if error.file else "the URL"
    local = error.file.local_name if error.file else "the local file"
    path = local if error.context.name == "LOCAL_FILE" else url
    status = codes.http_status_of(error.code)
    fields = {"url": url, "local": local, "path": path, "job": job, "status": status}
    advice = advice_for(error.code)
    what = advice.what.format(**fields) if advice is not None else _sentence(error.description)
    if todo is None:
        todo = (advice.todo if advice is not None else _GENERIC_JOB).format(**fields)
    return _line(error.code, error.context.name, what, todo)


def bits_error_line(error: BitsError, command: str, job: str | None = None) -> str:
    """The one line for a BITS error the daemon answered ``command`` with."""
    what = _sentence(error.message) or _sentence(codes.describe(error.hresult))
    todo = _ADVICE_OF_COMMAND.get((command, error.hresult)) or _COMMAND_ADVICE.get(
        error.hresult, _GENERIC_COMMAND
    )
    return _line(error.hresult, command, what, todo.format(job=job or "JOB", command=command))


def from_bits_error(error: BitsError, command: str, job: str | None = None) -> CliError:
    """The CliError that ends a command the daemon answered with ``error``."""
    if error.hresult == DAEMON_UNAVAILABLE:
        code = ExitCode.UNREACHABLE
    elif error.hresult == codes.BG_E_NOT_FOUND:
        code = ExitCode.NOT_FOUND
    else:
        code = ExitCode.JOB_ERROR
    return fail(bits_error_line(error, command, job), code)
