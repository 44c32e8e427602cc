"""The handlers of the ``bitsadmin`` switches that bitsd supports.

Every handler has the signature ``(ctx, call) -> exit status``. It reads its arguments from
the :class:`~bitsd.cli.bitsadmin_core.Call` (the parser has already checked their number),
talks to the daemon through ``ctx``, prints through ``ctx.console``, and lets a ``BitsError``
escape: the dispatcher reports it as ``Unable to <the switch's action> - 0x...``. A handler
raises :class:`CallFailedError` itself only when the failing step is not the switch's main action.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from bitsd import codes
from bitsd._enums import AuthScheme, AuthTarget, JobState, JobType, Priority, ProxyUsage
from bitsd._errors import (
    BitsError,
    ErrorInfoUnavailableError,
    InvalidArgumentError,
    NotFoundError,
)
from bitsd._records import FileInfo
from bitsd._sync import Job
from bitsd.cli.bitsadmin_core import (
    EXIT_FAILURE,
    EXIT_OK,
    Call,
    CallFailedError,
    Context,
    UnsupportedError,
    UsageError,
)
from bitsd.cli.bitsadmin_format import (
    NULL,
    certificate_text,
    cmd_line_text,
    error_lines,
    file_line,
    guid,
    hex_dump_lines,
    info_lines,
    list_line,
    null_text,
    owner_name,
    proxy_usage_text,
    reply_progress_text,
    seconds_text,
    size_text,
    time_text,
    transfer_lines,
)

__all__ = [
    "COMMAND_LINE_WARNING",
    "Handler",
    "add_file",
    "add_file_set",
    "add_file_with_ranges",
    "cancel",
    "complete",
    "create",
    "get_custom_headers",
    "get_error",
    "get_reply_data",
    "get_temporary_name",
    "get_validation_state",
    "getter",
    "info",
    "list_files",
    "list_jobs",
    "make_custom_headers_write_only",
    "monitor",
    "parse_range_list",
    "remove_client_certificate",
    "remove_credentials",
    "replace_remote_prefix",
    "reset",
    "resume",
    "set_credentials",
    "set_custom_headers",
    "set_notify_cmd_line",
    "set_proxy_settings",
    "set_validation_state",
    "setter",
    "suspend",
    "transfer",
]

Handler = Callable[[Context, Call], int]
T = TypeVar("T")

# Seconds /transfer waits for TRANSFERRED or ERROR between two progress reports: bitsd's
# choice (bitsadmin does not document its refresh rate).
TRANSFER_POLL_SECONDS = 0.5
# /monitor's refresh when /refresh is not given: bitsadmin's default.
DEFAULT_MONITOR_REFRESH = 5.0

# What /SETCREDENTIALS prints on stderr: its password is on the command line.
COMMAND_LINE_WARNING = (
    "Warning: the password is on the command line, where other processes of this computer can "
    "read it (ps, /proc/PID/cmdline) and where your shell may record it. "
    "bitsd credentials JOB set --password-stdin reads it from stdin instead."
)

_TYPE_OPTIONS = {
    "/download": JobType.DOWNLOAD,
    "/upload": JobType.UPLOAD,
    "/upload-reply": JobType.UPLOAD_REPLY,
}


# -- argument parsing helpers ----------------------------------------------------------------


def _job_type(call: Call) -> JobType:
    given = [_TYPE_OPTIONS[o] for o in _TYPE_OPTIONS if call.has(o)]
    if len(given) > 1:
        raise UsageError("give at most one of /DOWNLOAD, /UPLOAD and /UPLOAD-REPLY")
    return given[0] if given else JobType.DOWNLOAD


def parse_priority(text: str) -> Priority:
    """FOREGROUND, HIGH, NORMAL or LOW, in any case."""
    try:
        return Priority[text.upper()]
    except KeyError:
        names = "|".join(p.name for p in Priority)
        raise InvalidArgumentError(f"'{text}' is not a priority; use {names}") from None


def parse_seconds(text: str) -> float:
    """A non-negative number of seconds."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0 or value == float("inf"):
        raise InvalidArgumentError(f"'{text}' is not a number of seconds")
    return value


def parse_flags(text: str) -> int:
    """Notify flags as a number: ``3`` or ``0x3``."""
    try:
        return int(text, 0)
    except ValueError:
        raise InvalidArgumentError(f"'{text}' is not a number (e.g. 3 or 0x3)") from None


def _null(text: str) -> str | None:
    return None if text.upper() == "NULL" else text


def _name_of(kind: type[T], text: str, what: str, hresult: int = codes.E_INVALIDARG) -> T:
    """An enum member by its name in any case (``NO_PROXY``, ``Basic``)."""
    members: dict[str, T] = getattr(kind, "__members__", {})
    found = members.get(text.upper())
    if found is None:
        names = "|".join(members)
        raise BitsError(f"'{text}' is not a {what}; use {names}", hresult=hresult)
    return found


def parse_bool(text: str) -> bool:
    """TRUE or FALSE, in any case."""
    upper = text.upper()
    if upper not in ("TRUE", "FALSE"):
        raise InvalidArgumentError(f"'{text}' is neither TRUE nor FALSE")
    return upper == "TRUE"


def parse_range_list(text: str) -> list[tuple[int, int]]:
    """bitsadmin's range list: ``offset:length`` pairs separated by commas, in bytes; a length
    of ``eof`` runs to the end of the file (``0:100,2000:eof``)."""
    ranges = []
    for part in text.split(","):
        offset_text, sep, length_text = part.strip().partition(":")
        try:
            offset = int(offset_text)
            length = codes.LENGTH_TO_EOF if length_text.lower() == "eof" else int(length_text)
        except ValueError:
            offset = length = -1
        if not sep or offset < 0 or length < 0:
            raise InvalidArgumentError(
                f"'{part.strip()}' is not offset:length (a length may be eof)"
            )
        ranges.append((offset, length))
    return ranges


def _file_index(job: Job, text: str) -> int:
    """A file_index argument: the number of one of the job's files, from 0."""
    count = len(job.files())
    if not text.isdigit() or int(text) >= count:
        raise InvalidArgumentError(
            f"'{text}' is not a file index of the job (0 to {count - 1})"
            if count
            else "the job has no files"
        )
    return int(text)


# -- job lifecycle ---------------------------------------------------------------------------


def create(ctx: Context, call: Call) -> int:
    """``/create [/download|/upload|/upload-reply] name``: a SUSPENDED job; prints its GUID."""
    job = ctx.manager().create_job(call.args[0], _job_type(call))
    ctx.console.info(f"Created job {guid(job.id)}.")
    if ctx.console.raw:
        ctx.console.data(guid(job.id))
    return EXIT_OK


def add_file(ctx: Context, call: Call) -> int:
    """``/addfile job remote_url local_name``."""
    job = ctx.job(call.args[0])
    remote, local = call.args[1], call.args[2]
    job.add_file(remote, local)
    ctx.console.info(f"Added {remote} -> {local} to job.")
    return EXIT_OK


def add_file_with_ranges(ctx: Context, call: Call) -> int:
    """``/addfilewithranges job remote_url local_name range_list``: the local file is the
    ranges of the remote file, concatenated in order."""
    job = ctx.job(call.args[0])
    remote, local = call.args[1], call.args[2]
    ranges = parse_range_list(call.args[3])
    job.add_file_with_ranges(remote, local, ranges)
    ctx.console.info(f"Added {remote} -> {local} ({len(ranges)} range(s)) to job.")
    return EXIT_OK


def replace_remote_prefix(ctx: Context, call: Call) -> int:
    """``/replaceremoteprefix job old_prefix new_prefix``."""
    job = ctx.job(call.args[0])
    old, new = call.args[1], call.args[2]
    if job.replace_remote_prefix(old, new) == codes.S_FALSE:
        ctx.console.info(f"No remote name of the job starts with {old}; nothing changed.")
    else:
        ctx.console.info(f"Remote prefix {old} replaced by {new}.")
    return EXIT_OK


def read_file_set(path: str) -> list[tuple[str, str]]:
    """The pairs of an /addfileset text file: ``remote local`` per line; ``#`` comments and
    blank lines are skipped; names with spaces may be quoted as in a POSIX shell."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        errno = exc.errno or 0
        raise CallFailedError(
            "read the file set", codes.hresult_from_errno(errno), str(exc)
        ) from exc
    pairs = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            words = shlex.split(line)
        except ValueError as exc:
            raise UsageError(f"{path}, line {number}: {exc}") from None
        if len(words) != 2:
            raise UsageError(
                f"{path}, line {number}: expected 'remote_url local_name', got {len(words)} names"
            )
        pairs.append((words[0], words[1]))
    if not pairs:
        raise UsageError(f"{path} lists no files")
    return pairs


def add_file_set(ctx: Context, call: Call) -> int:
    """``/addfileset job textfile``: all files of the text file, all or none."""
    job = ctx.job(call.args[0])
    pairs = read_file_set(call.args[1])
    job.add_file_set(pairs)
    ctx.console.info(f"Added {len(pairs)} file(s) to job.")
    return EXIT_OK


def _verb(do: Callable[[Job], object], message: str) -> Handler:
    def handler(ctx: Context, call: Call) -> int:
        do(ctx.job(call.args[0]))
        ctx.console.info(message)
        return EXIT_OK

    return handler


resume = _verb(Job.resume, "Job resumed.")
suspend = _verb(Job.suspend, "Job suspended.")


def cancel(ctx: Context, call: Call) -> int:
    """``/cancel job``: removes the job and its temporary files."""
    result = ctx.job(call.args[0]).cancel()
    ctx.console.info("Job canceled.")
    if result == codes.BG_S_UNABLE_TO_DELETE_FILES:
        ctx.console.error(
            "Warning: some temporary files could not be deleted (BG_S_UNABLE_TO_DELETE_FILES)."
        )
    return EXIT_OK


def complete(ctx: Context, call: Call) -> int:
    """``/complete job``: the transferred files appear at their local names."""
    result = ctx.job(call.args[0]).complete()
    if result == codes.BG_S_PARTIAL_COMPLETE:
        ctx.console.info(
            "Job partially completed: files that had not finished were deleted "
            "(BG_S_PARTIAL_COMPLETE)."
        )
    else:
        ctx.console.info("Job completed.")
    return EXIT_OK


def _all_users(call: Call) -> None:
    """``/allusers``: bitsd keeps each user's jobs in that user's own daemon, so the jobs a
    user can reach are all the jobs "all users" can mean, except for root, who would expect
    every other user's jobs too."""
    if call.has("/allusers") and os.geteuid() == 0:
        raise UnsupportedError(
            "/ALLUSERS",
            "each user's jobs live in that user's own daemon; run bitsadmin as each user",
        )


def reset(ctx: Context, call: Call) -> int:
    """``/reset [/allusers]``: cancel every job of the user."""
    _all_users(call)
    jobs = list(ctx.each_job())
    done = 0
    for job in jobs:
        try:
            job.cancel()
        except NotFoundError:
            done += 1  # it ended on its own meanwhile: it is gone all the same
            continue
        except BitsError as exc:
            for line in CallFailedError.of(f"cancel {guid(job.id)}", exc).lines():
                ctx.console.error(line)
            continue
        done += 1
        ctx.console.info(f"{guid(job.id)} canceled.")
    ctx.console.info(f"{done} out of {len(jobs)} jobs canceled.")
    return EXIT_OK if done == len(jobs) else EXIT_FAILURE


# -- /transfer -------------------------------------------------------------------------------


def transfer(ctx: Context, call: Call) -> int:
    """``/transfer name [/download|/upload] [/priority P] [/dynamic] remote local ...``.

    Creates the job (NORMAL priority unless /priority says otherwise), adds every file,
    resumes it and prints its progress until it ends: TRANSFERRED is completed (exit 0),
    ERROR is reported and cancelled (exit 1). Transient errors are reported and waited
    through. Ctrl+C stops waiting and leaves the job to the daemon (exit 1).
    """
    name, rest = call.args[0], list(call.args[1:])
    if not rest or len(rest) % 2:
        raise UsageError("/TRANSFER needs remote_url local_name pairs after the job name")
    if call.has("/aclflags"):
        raise UnsupportedError(
            "/ACLFLAGS", "bitsd does not copy owner, group or ACLs to local files"
        )
    job_type = _job_type(call)
    priority_text = call.value("/priority")
    try:
        priority = parse_priority(priority_text) if priority_text is not None else None
    except InvalidArgumentError as exc:
        raise CallFailedError.of("set priority", exc) from exc
    pairs = list(zip(rest[::2], rest[1::2], strict=True))

    try:
        job = ctx.manager().create_job(name, job_type)
    except BitsError as exc:
        raise CallFailedError.of("create job", exc) from exc
    try:
        if priority is not None and priority != Priority.NORMAL:
            job.set_priority(priority)
        if call.has("/dynamic"):
            job.set_dynamic_content(True)
        try:
            job.add_file_set(pairs)
        except BitsError as exc:
            raise CallFailedError.of("add file", exc) from exc
        job.resume()
    except BaseException:
        # bitsadmin does not leave a half-made job behind.
        with contextlib.suppress(BitsError):
            job.cancel()
        raise
    ident = guid(job.id)
    try:
        return _watch(ctx, job)
    except KeyboardInterrupt:
        ctx.console.error(
            f"Stopped waiting. Job {ident} stays with the bitsd daemon, which goes on with it; "
            f"follow it with: bitsadmin /info {ident}"
        )
        return EXIT_FAILURE
    except (CallFailedError, BitsError) as exc:
        failure = exc if isinstance(exc, CallFailedError) else CallFailedError.of("transfer", exc)
        for line in failure.lines():
            ctx.console.error(line)
        ctx.console.error(f"Job {ident} stays with the bitsd daemon.")
        return EXIT_FAILURE


def _watch(ctx: Context, job: Job) -> int:
    console = ctx.console
    last: tuple[object, ...] | None = None
    last_error: tuple[int, str] | None = None
    while True:
        try:
            with contextlib.suppress(TimeoutError):
                job.wait((JobState.TRANSFERRED, JobState.ERROR), TRANSFER_POLL_SECONDS)
            view = job.snapshot()
        except NotFoundError:
            console.error(f"Job {guid(job.id)} was completed or cancelled by another program.")
            return EXIT_FAILURE
        except BitsError as exc:
            raise CallFailedError.of("follow the transfer", exc) from exc
        shown = (view.state, view.progress)
        if shown != last:
            console.status(transfer_lines(view))
            last = shown
        if view.state == JobState.TRANSIENT_ERROR:
            with contextlib.suppress(ErrorInfoUnavailableError):
                error = job.get_error()
                if (error.code, error.description) != last_error:
                    last_error = (error.code, error.description)
                    for line in error_lines(error):
                        console.info(line)
                    console.info(
                        "A transient error: the daemon retries after the retry delay. "
                        "Press Ctrl+C to stop waiting (the job stays with the daemon)."
                    )
        elif view.state == JobState.TRANSFERRED:
            try:
                job.complete()
            except BitsError as exc:
                raise CallFailedError.of("complete job", exc) from exc
            console.info("Transfer complete.")
            return EXIT_OK
        elif view.state == JobState.ERROR:
            return _give_up(ctx, job)


def _give_up(ctx: Context, job: Job) -> int:
    """A fatal error: report it, cancel the job (bitsadmin's /transfer does), exit 1."""
    try:
        error = job.get_error()
    except ErrorInfoUnavailableError:
        error = None
    with contextlib.suppress(BitsError):
        job.cancel()
    if error is None:
        ctx.console.error("Unable to complete transfer; the job was cancelled.")
        return EXIT_FAILURE
    for line in error_lines(error):
        ctx.console.error(line)
    ctx.console.error(f"Unable to complete transfer - 0x{codes.to_unsigned(error.code):08x}")
    ctx.console.error("The job was cancelled.")
    return EXIT_FAILURE


# -- queries ---------------------------------------------------------------------------------


def info(ctx: Context, call: Call) -> int:
    """``/info job [/verbose]``."""
    job = ctx.job(call.args[0])
    verbose = call.has("/verbose")
    for line in info_lines(job.snapshot(), verbose=verbose, files=_files_if(job, verbose)):
        ctx.console.data(line)
    return EXIT_OK


def _files_if(job: Job, verbose: bool) -> list[FileInfo] | None:
    return job.files() if verbose else None


def _views(ctx: Context, verbose: bool) -> list[tuple[str, list[str]]]:
    shown = []
    for job in ctx.each_job():
        try:
            view = job.snapshot()
            files = _files_if(job, verbose)
        except NotFoundError:
            continue  # it ended while we listed
        lines = info_lines(view, verbose=True, files=files) if verbose else [list_line(view)]
        shown.append((job.id, lines))
    return shown


def list_jobs(ctx: Context, call: Call) -> int:
    """``/list [/allusers] [/verbose]``."""
    _all_users(call)
    verbose = call.has("/verbose")
    shown = _views(ctx, verbose)
    for index, (_, lines) in enumerate(shown):
        if verbose and index:
            ctx.console.info()
        for line in lines:
            ctx.console.data(line)
    ctx.console.info()
    ctx.console.info(f"Listed {len(shown)} job(s).")
    return EXIT_OK


def list_files(ctx: Context, call: Call) -> int:
    """``/listfiles job``."""
    files = ctx.job(call.args[0]).files()
    for f in files:
        ctx.console.data(file_line(f))
    ctx.console.info()
    ctx.console.info(f"Listed {len(files)} file(s).")
    return EXIT_OK


def monitor(ctx: Context, call: Call) -> int:
    """``/monitor [/allusers] [/refresh sec]``: /list every ``sec`` seconds until Ctrl+C.

    The hidden option ``/count K`` stops after K screens (for tests and scripts).
    """
    _all_users(call)
    text = call.value("/refresh")
    try:
        refresh = parse_seconds(text) if text is not None else DEFAULT_MONITOR_REFRESH
    except InvalidArgumentError as exc:
        raise UsageError(f"/REFRESH: {exc.message}") from None
    count_text = call.value("/count")
    count = None
    if count_text is not None:
        if not count_text.isdigit() or int(count_text) < 1:
            raise UsageError(f"/COUNT: '{count_text}' is not a positive whole number")
        count = int(count_text)
    screens = 0
    try:
        while True:
            shown = _views(ctx, verbose=False)
            if screens:
                ctx.console.clear_screen()
            ctx.console.data(
                f"MONITORING BACKGROUND COPY MANAGER({seconds_text(refresh)} second refresh)"
            )
            for _, lines in shown:
                for line in lines:
                    ctx.console.data(line)
            screens += 1
            if count is not None and screens >= count:
                return EXIT_OK
            time.sleep(refresh)
    except KeyboardInterrupt:
        return EXIT_OK


# -- getters and setters ---------------------------------------------------------------------


def getter(read: Callable[[Job], str]) -> Handler:
    """A ``/get... job`` handler that prints ``read(job)`` (the bare value)."""

    def handler(ctx: Context, call: Call) -> int:
        ctx.console.data(read(ctx.job(call.args[0])))
        return EXIT_OK

    return handler


def setter(apply: Callable[[Job, str], str]) -> Handler:
    """A ``/set... job value`` handler: ``apply`` sets the value and returns the message."""

    def handler(ctx: Context, call: Call) -> int:
        job = ctx.job(call.args[0])
        ctx.console.info(apply(job, call.args[1]))
        return EXIT_OK

    return handler


def get_error(ctx: Context, call: Call) -> int:
    """``/geterror job``: the ERROR FILE / ERROR CODE / ERROR CONTEXT block."""
    for line in error_lines(ctx.job(call.args[0]).get_error()):
        ctx.console.data(line)
    return EXIT_OK


def get_temporary_name(ctx: Context, call: Call) -> int:
    """``/gettemporaryname job file_index``: the temporary file of file number file_index."""
    job = ctx.job(call.args[0])
    index = _file_index(job, call.args[1])
    ctx.console.data(job.files()[index].temporary_name)
    return EXIT_OK


def get_state(job: Job) -> str:
    return job.get_state().name


def get_bytes_total(job: Job) -> str:
    return size_text(job.get_progress().bytes_total)


def get_bytes_transferred(job: Job) -> str:
    return str(job.get_progress().bytes_transferred)


def get_files_total(job: Job) -> str:
    return str(job.get_progress().files_total)


def get_files_transferred(job: Job) -> str:
    return str(job.get_progress().files_transferred)


def get_creation_time(job: Job) -> str:
    return time_text(job.get_times().creation_time)


def get_modification_time(job: Job) -> str:
    return time_text(job.get_times().modification_time)


def get_completion_time(job: Job) -> str:
    return time_text(job.get_times().transfer_completion_time)


def get_owner(job: Job) -> str:
    return owner_name(job.get_owner())


def get_notify_cmd_line(job: Job) -> str:
    return cmd_line_text(*job.get_notify_cmd_line())


def set_priority(job: Job, text: str) -> str:
    priority = parse_priority(text)
    job.set_priority(priority)
    return f"Priority set to {priority.name}."


def set_display_name(job: Job, text: str) -> str:
    job.set_display_name(text)
    return f"Display name set to {text}."


def set_description(job: Job, text: str) -> str:
    job.set_description(text)
    return f"Description set to {text}."


def set_minimum_retry_delay(job: Job, text: str) -> str:
    job.set_minimum_retry_delay(parse_seconds(text))
    return f"Minimum retry delay set to {seconds_text(job.get_minimum_retry_delay())}."


def set_no_progress_timeout(job: Job, text: str) -> str:
    job.set_no_progress_timeout(parse_seconds(text))
    return f"No progress timeout set to {seconds_text(parse_seconds(text))}."


def set_maximum_download_time(job: Job, text: str) -> str:
    job.set_maximum_download_time(parse_seconds(text))
    return f"Maximum download time set to {seconds_text(parse_seconds(text))}."


def set_notify_flags(job: Job, text: str) -> str:
    flags = parse_flags(text)
    job.set_notify_flags(flags)
    return f"Notification flags set to {flags}."


def set_notify_cmd_line(ctx: Context, call: Call) -> int:
    """``/setnotifycmdline job program [parameters...]``; each may be NULL.

    One parameters argument is the whole command line as given (``"touch /tmp/x"``);
    several are joined as a POSIX shell would quote them. The first token of the command
    line is the program's name, as in BITS.
    """
    job = ctx.job(call.args[0])
    program = _null(call.args[1])
    rest = list(call.args[2:])
    if not rest:
        parameters = None
    elif len(rest) == 1:
        parameters = _null(rest[0])
    else:
        parameters = shlex.join(rest)
    job.set_notify_cmd_line(program, parameters)
    if program is None and parameters is None:
        ctx.console.info("Notification command line removed.")
    else:
        ctx.console.info(f"Notification command line set to {cmd_line_text(program, parameters)}.")
    return EXIT_OK


# -- HTTP options, credentials, validation (issue 6) ----------------------------------------


def get_custom_headers(ctx: Context, call: Call) -> int:
    """``/getcustomheaders job``: one header per line, or NULL (fails with E_ACCESSDENIED
    when they are write-only)."""
    headers = ctx.job(call.args[0]).get_custom_headers()
    lines = headers.removesuffix("\r\n").split("\r\n") if headers else [NULL]
    for line in lines:
        ctx.console.data(line)
    return EXIT_OK


def set_custom_headers(ctx: Context, call: Call) -> int:
    """``/setcustomheaders job header1 header2 ...``: each argument is one ``Name: value``
    header; ``NULL`` alone removes them."""
    job = ctx.job(call.args[0])
    headers = list(call.args[1:])
    if len(headers) == 1 and _null(headers[0]) is None:
        job.set_custom_headers(None)
        ctx.console.info("Custom headers removed.")
        return EXIT_OK
    job.set_custom_headers("".join(f"{h}\r\n" for h in headers))
    ctx.console.info(f"Custom headers set ({len(headers)} header(s)).")
    return EXIT_OK


def make_custom_headers_write_only(ctx: Context, call: Call) -> int:
    """``/makecustomheaderswriteonly job``: nobody can read them back any more."""
    ctx.job(call.args[0]).make_custom_headers_write_only()
    ctx.console.info("Custom headers are write-only now.")
    return EXIT_OK


def get_security_flags(job: Job) -> str:
    return f"0x{int(job.get_security_flags()):X}"


def set_security_flags(job: Job, text: str) -> str:
    flags = parse_flags(text)
    job.set_security_flags(flags)
    return f"Security flags set to 0x{flags:X}."


def get_http_method(job: Job) -> str:
    return job.get_http_method() or "GET"


def set_http_method(job: Job, text: str) -> str:
    job.set_http_method(text)
    return f"HTTP method set to {text}."


def get_proxy_usage(job: Job) -> str:
    return proxy_usage_text(job.get_proxy_settings()[0])


def get_proxy_list(job: Job) -> str:
    return null_text(job.get_proxy_settings()[1])


def get_proxy_bypass_list(job: Job) -> str:
    return null_text(job.get_proxy_settings()[2])


def set_proxy_settings(ctx: Context, call: Call) -> int:
    """``/setproxysettings job usage [list] [bypass]``: usage PRECONFIG, NO_PROXY, OVERRIDE
    or AUTODETECT; OVERRIDE takes the proxy list and the bypass list (either may be NULL), the
    others take neither. The daemon judges the rest and answers with BITS's codes."""
    job = ctx.job(call.args[0])
    usage = _name_of(ProxyUsage, call.args[1], "proxy usage")
    rest = [_null(text) for text in call.args[2:]]
    proxies = rest[0] if rest else None
    bypass = rest[1] if len(rest) > 1 else None
    job.set_proxy_settings(usage, proxies, bypass)
    ctx.console.info(f"Proxy usage set to {usage.name}.")
    return EXIT_OK


def _auth(call: Call) -> tuple[AuthTarget, AuthScheme]:
    target = _name_of(AuthTarget, call.args[1], "target", hresult=codes.BG_E_INVALID_AUTH_TARGET)
    scheme = _name_of(AuthScheme, call.args[2], "scheme", hresult=codes.BG_E_INVALID_AUTH_SCHEME)
    return target, scheme


def set_credentials(ctx: Context, call: Call) -> int:
    """``/setcredentials job target scheme username password``: target SERVER or PROXY,
    scheme BASIC, DIGEST, NTLM, NEGOTIATE (or PASSPORT, which bitsd refuses). The password is
    on the command line as in Windows; a warning on stderr says so."""
    ctx.console.error(COMMAND_LINE_WARNING)
    job = ctx.job(call.args[0])
    target, scheme = _auth(call)
    job.set_credentials(target, scheme, call.args[3], call.args[4])
    ctx.console.info(f"Credentials set for {target.name} {scheme.name}.")
    return EXIT_OK


def remove_credentials(ctx: Context, call: Call) -> int:
    """``/removecredentials job target scheme``."""
    job = ctx.job(call.args[0])
    target, scheme = _auth(call)
    if job.remove_credentials(target, scheme) == codes.S_FALSE:
        ctx.console.info(f"The job had no credentials for {target.name} {scheme.name}.")
    else:
        ctx.console.info(f"Credentials removed for {target.name} {scheme.name}.")
    return EXIT_OK


def get_validation_state(ctx: Context, call: Call) -> int:
    """``/getvalidationstate job file_index``: TRUE once the file was accepted."""
    job = ctx.job(call.args[0])
    ctx.console.data(str(job.get_validation_state(_file_index(job, call.args[1]))).upper())
    return EXIT_OK


def set_validation_state(ctx: Context, call: Call) -> int:
    """``/setvalidationstate job file_index TRUE|FALSE``: FALSE puts the job in ERROR
    (BG_E_VALIDATION_FAILED); /resume downloads the file again."""
    job = ctx.job(call.args[0])
    index = _file_index(job, call.args[1])
    valid = parse_bool(call.args[2])
    job.set_validation_state(index, valid)
    ctx.console.info(f"Validation state of file {index} set to {str(valid).upper()}.")
    return EXIT_OK


def get_client_certificate(job: Job) -> str:
    return certificate_text(job.get_client_certificate())


def remove_client_certificate(ctx: Context, call: Call) -> int:
    """``/removeclientcertificate job``."""
    ctx.job(call.args[0]).remove_client_certificate()
    ctx.console.info("Client certificate removed.")
    return EXIT_OK


# -- upload-reply jobs (docs/uploads.md) ---------------------------------------------------


def get_reply_file_name(job: Job) -> str:
    return null_text(job.get_reply_file_name())


def get_reply_progress(job: Job) -> str:
    return reply_progress_text(job.get_reply_progress())


def set_reply_file_name(job: Job, text: str) -> str:
    """An absolute path, or NULL for the name bitsd generates (after the upload file)."""
    job.set_reply_file_name(_null(text))
    return f"Reply file name set to {null_text(job.get_reply_file_name())}."


def get_reply_data(ctx: Context, call: Call) -> int:
    """``/getreplydata job``: the reply in hexadecimal (a hex dump; with /rawreturn one line of
    hex digits, which ``xxd -r -p`` turns back into the bytes). In TRANSFERRED only, at most
    1 MB (BG_E_TOO_LARGE: read the reply file after /complete)."""
    data = ctx.job(call.args[0]).get_reply_data()
    if ctx.console.raw:
        if data:
            ctx.console.data(data.hex())
        return EXIT_OK
    if not data:
        ctx.console.info("The reply is empty.")
    for line in hex_dump_lines(data):
        ctx.console.data(line)
    return EXIT_OK
