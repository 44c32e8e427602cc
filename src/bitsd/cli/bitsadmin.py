"""``bitsadmin``: Microsoft's BITS administration tool, with its Windows switch syntax, for bitsd.

Usage: ``bitsadmin [/RAWRETURN] [/WRAP | /NOWRAP] /SWITCH [arguments...]`` (docs/bitsadmin.md).

Rules:
- Switches start with ``/`` and are case-insensitive (``/AddFile`` is ``/addfile``). ``<job>``
  is a display name or a GUID, braces optional.
- One table, :data:`SWITCHES`, says everything about a switch: its syntax, the number of
  positional arguments, the option switches it takes and how many values each takes, the
  handler, and the action named in ``Unable to <action> - 0x...``. The parser and the help
  are generated from it. A switch of Microsoft's bitsadmin that bitsd cannot honour is in
  the table with the reason instead of a handler: it fails with ``<switch> is not supported
  by bitsd`` and exit status 1, never silently.
- Option switches are recognised by exact name only (``/verbose``), so local paths, which
  start with ``/`` on Linux, are positional arguments.
- Exit status: 0 on success, 1 on any failure (bad arguments, unsupported switch, a BITS call
  that failed, a /transfer that did not complete).
- Messages follow bitsadmin's layout; the banner names bitsd, not Microsoft.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable, Mapping, Sequence

import bitsd
from bitsd._errors import BitsError
from bitsd._sync import Job
from bitsd.cli import bitsadmin_commands as cmd
from bitsd.cli.bitsadmin_core import (
    EXIT_FAILURE,
    EXIT_OK,
    Call,
    CallFailedError,
    Console,
    Context,
    UnsupportedError,
    UsageError,
)
from bitsd.cli.bitsadmin_format import guid, seconds_text

__all__ = ["SWITCHES", "UTIL_SWITCHES", "Switch", "banner", "main"]


@dataclasses.dataclass(frozen=True)
class Switch:
    """One row of the switch table.

    Attributes:
        name: the switch as help prints it, e.g. ``/ADDFILE``.
        usage: its syntax after the switch name (``job remote_url local_name``).
        summary: one line for ``/?``.
        handler: the function that runs it; None for a switch bitsd does not support.
        action: what failed, for ``Unable to <action> - 0x...``.
        args: how many positional arguments it needs at least.
        optional: how many more it accepts; None for any number.
        options: option switches (lower case) and how many values each takes.
        unsupported: why bitsd does not support it (with ``handler`` None).
        aliases: other names (lower case) that mean the same switch.
        hidden: left out of ``/?``.
    """

    name: str
    usage: str = ""
    summary: str = ""
    handler: cmd.Handler | None = None
    action: str = ""
    args: int = 0
    optional: int | None = 0
    options: Mapping[str, int] = dataclasses.field(default_factory=dict)
    unsupported: str | None = None
    aliases: tuple[str, ...] = ()
    hidden: bool = False

    @property
    def syntax(self) -> str:
        return f"{self.name} {self.usage}".rstrip()


def _get(name: str, read: Callable[[Job], str], summary: str, action: str | None = None) -> Switch:
    action = action or f"get {summary[:1].lower()}{summary[1:]}"
    return Switch(name, "job", summary, cmd.getter(read), action, 1)


def _set(
    name: str,
    value: str,
    apply: Callable[[Job, str], str],
    summary: str,
    action: str | None = None,
) -> Switch:
    action = action or summary[:1].lower() + summary[1:]
    return Switch(name, f"job {value}", summary, cmd.setter(apply), action, 2)


def _no(name: str, reason: str, usage: str = "", *aliases: str) -> Switch:
    return Switch(name, usage, unsupported=reason, optional=None, aliases=aliases)


@dataclasses.dataclass(frozen=True)
class UtilSwitch:
    """A sub-switch of ``/UTIL``."""

    name: str
    summary: str
    unsupported: str | None = None


UTIL_SWITCHES: tuple[UtilSwitch, ...] = (
    UtilSwitch("/VERSION", "Print the bitsd version"),
    UtilSwitch("/HELP", "Print the /UTIL switches (also /?)"),
    UtilSwitch("/GETIEPROXY", "", "Linux has no Internet Explorer proxy settings"),
    UtilSwitch("/SETIEPROXY", "", "Linux has no Internet Explorer proxy settings"),
    UtilSwitch(
        "/REPAIRSERVICE",
        "",
        "there is no Windows service to repair; restart the bitsd daemon instead",
    ),
    UtilSwitch(
        "/ENABLEANALYTICCHANNEL",
        "",
        "bitsd has no Windows event channel; the daemon logs to its state folder",
    ),
)

# -- help ------------------------------------------------------------------------------------


def _help_lines() -> list[str]:
    lines = [
        "USAGE: bitsadmin [/RAWRETURN] [/WRAP | /NOWRAP] command",
        "Switches are case-insensitive; job is a job's display name or its GUID.",
        "/RAWRETURN prints only the value (no banner, no trailing newline).",
        "",
        "The following commands are available:",
    ]
    for switch in SWITCHES:
        if switch.unsupported is not None or switch.hidden:
            continue
        syntax = switch.syntax
        if len(syntax) <= 40:
            lines.append(f"   {syntax:<40} {switch.summary}")
        else:
            lines.append(f"   {syntax}")
            lines.append(f"   {'':<40} {switch.summary}")
    lines.append("")
    lines.append("Not supported by bitsd (each prints why and exits with status 1):")
    names = [s.name for s in SWITCHES if s.unsupported is not None]
    names += [f"/UTIL {u.name}" for u in UTIL_SWITCHES if u.unsupported is not None]
    row: list[str] = []
    for name in names:
        if row and len("   " + " ".join([*row, name])) > 96:
            lines.append("   " + " ".join(row))
            row = []
        row.append(name)
    if row:
        lines.append("   " + " ".join(row))
    return lines


def _switch_help(switch: Switch) -> list[str]:
    lines = [f"USAGE: bitsadmin {switch.syntax}"]
    if switch.unsupported is not None:
        lines.append(f"{switch.name} is not supported by bitsd: {switch.unsupported}.")
    else:
        lines.append(switch.summary + ".")
    if switch.name == "/UTIL":
        lines.extend(_util_help())
    return lines


def _util_help() -> list[str]:
    lines = ["The /UTIL switches:"]
    for u in UTIL_SWITCHES:
        text = u.summary if u.unsupported is None else f"not supported by bitsd: {u.unsupported}"
        lines.append(f"   /UTIL {u.name:<24} {text}")
    return lines


def help_command(ctx: Context, call: Call) -> int:
    """``/help`` and ``/?``; ``/help /switch`` describes one switch."""
    topic = _BY_NAME.get(call.args[0].lower()) if call.args else None
    for line in _switch_help(topic) if topic is not None else _help_lines():
        ctx.console.data(line)
    return EXIT_OK


def util_command(ctx: Context, call: Call) -> int:
    """``/util /version`` and ``/util /help``; the other /UTIL switches are unsupported."""
    if not call.args:
        raise UsageError("/UTIL needs a switch", "bitsadmin /UTIL /VERSION | /HELP")
    sub = _UTIL_BY_NAME.get(call.args[0].lower())
    if sub is None and call.args[0] == "/?":
        sub = _UTIL_BY_NAME["/help"]
    if sub is None:
        raise UsageError(f"unknown /UTIL switch {call.args[0]}", "bitsadmin /UTIL /HELP")
    if sub.unsupported is not None:
        raise UnsupportedError(f"/UTIL {sub.name}", sub.unsupported)
    if len(call.args) > 1:
        raise UsageError(f"/UTIL {sub.name} takes no arguments", f"bitsadmin /UTIL {sub.name}")
    if sub.name == "/VERSION":
        ctx.console.data(
            bitsd.__version__ if ctx.console.raw else f"bitsd version {bitsd.__version__}"
        )
    else:
        for line in _util_help():
            ctx.console.data(line)
    return EXIT_OK


_CERTIFICATE_STORES = (
    "Linux has no Windows certificate stores; use bitsd set --client-cert PEM "
    "[--client-key PEM] JOB to give the job a certificate file"
)
_WINDOWS_SECURITY = (
    "it is a Windows security feature; a bitsd job belongs to the Unix user whose daemon holds it"
)
_PEERS = "bitsd has no peer caching (BranchCache)"
_NOTIFY_INTERFACE = "the control API does not say which program holds a job's callback"

_TYPE_OPTIONS = {"/download": 0, "/upload": 0, "/upload-reply": 0}

SWITCHES: tuple[Switch, ...] = (
    # -- job lifecycle
    Switch(
        "/CREATE",
        "[/DOWNLOAD | /UPLOAD | /UPLOAD-REPLY] name",
        "Create a job (SUSPENDED, no files) and print its GUID",
        cmd.create,
        "create job",
        1,
        options=_TYPE_OPTIONS,
    ),
    Switch(
        "/ADDFILE",
        "job remote_url local_name",
        "Add a file to the job",
        cmd.add_file,
        "add file",
        3,
    ),
    Switch(
        "/ADDFILESET",
        "job textfile",
        "Add the files listed in textfile ('remote_url local_name' per line, # comments)",
        cmd.add_file_set,
        "add file set",
        2,
    ),
    Switch(
        "/ADDFILEWITHRANGES",
        "job remote_url local_name range_list",
        "Add a file made of byte ranges of the remote file (range_list: offset:length,... "
        "in bytes; length eof runs to the end)",
        cmd.add_file_with_ranges,
        "add file",
        4,
    ),
    Switch(
        "/REPLACEREMOTEPREFIX",
        "job old_prefix new_prefix",
        "Replace the start of every remote name that starts with old_prefix",
        cmd.replace_remote_prefix,
        "replace remote prefix",
        3,
    ),
    Switch("/RESUME", "job", "Resume (queue) the job", cmd.resume, "resume job", 1),
    Switch("/SUSPEND", "job", "Suspend the job", cmd.suspend, "suspend job", 1),
    Switch(
        "/CANCEL",
        "job",
        "Cancel the job and delete its temporary files",
        cmd.cancel,
        "cancel job",
        1,
    ),
    Switch(
        "/COMPLETE",
        "job",
        "Complete the job: its files appear at their local names",
        cmd.complete,
        "complete job",
        1,
    ),
    Switch(
        "/RESET",
        "[/ALLUSERS]",
        "Cancel all your jobs",
        cmd.reset,
        "reset jobs",
        options={"/allusers": 0},
    ),
    Switch(
        "/TRANSFER",
        "name [/DOWNLOAD | /UPLOAD] [/PRIORITY priority] [/DYNAMIC] "
        "remote_url local_name [remote_url local_name ...]",
        "Transfer files: create, add, resume, wait (progress), complete",
        cmd.transfer,
        "transfer",
        3,
        None,
        options={**_TYPE_OPTIONS, "/priority": 1, "/dynamic": 0, "/aclflags": 1},
    ),
    _no("/TAKEOWNERSHIP", _WINDOWS_SECURITY, "job"),
    # -- queries
    Switch(
        "/INFO",
        "job [/VERBOSE]",
        "Display information about the job",
        cmd.info,
        "get job information",
        1,
        options={"/verbose": 0},
    ),
    Switch(
        "/LIST",
        "[/ALLUSERS] [/VERBOSE]",
        "List your jobs",
        cmd.list_jobs,
        "list jobs",
        options={"/allusers": 0, "/verbose": 0},
    ),
    Switch("/LISTFILES", "job", "List the files of the job", cmd.list_files, "list files", 1),
    Switch(
        "/MONITOR",
        "[/ALLUSERS] [/REFRESH sec]",
        "List the jobs again every sec seconds (default 5) until Ctrl+C",
        cmd.monitor,
        "monitor jobs",
        options={"/allusers": 0, "/refresh": 1, "/count": 1},
    ),
    _get("/GETSTATE", cmd.get_state, "The job's state"),
    _get("/GETTYPE", lambda job: job.get_type().name, "The job's type"),
    Switch(
        "/GETERROR", "job", "The job's error: file, code and context", cmd.get_error, "get error", 1
    ),
    _get(
        "/GETERRORCOUNT",
        lambda job: str(job.get_error_count()),
        "The number of errors the job has had",
    ),
    _get("/GETBYTESTOTAL", cmd.get_bytes_total, "The size of the job in bytes"),
    _get("/GETBYTESTRANSFERRED", cmd.get_bytes_transferred, "The bytes transferred"),
    _get("/GETFILESTOTAL", cmd.get_files_total, "The number of files in the job"),
    _get("/GETFILESTRANSFERRED", cmd.get_files_transferred, "The number of files transferred"),
    _get("/GETCREATIONTIME", cmd.get_creation_time, "The job's creation time"),
    _get("/GETMODIFICATIONTIME", cmd.get_modification_time, "The job's last modification time"),
    _get(
        "/GETCOMPLETIONTIME",
        cmd.get_completion_time,
        "When the job finished transferring (UNKNOWN before)",
    ),
    _get("/GETOWNER", cmd.get_owner, "The job's owner"),
    _get("/GETDISPLAYNAME", lambda job: job.get_display_name(), "The job's display name"),
    _get("/GETDESCRIPTION", lambda job: job.get_description(), "The job's description"),
    _get("/GETPRIORITY", lambda job: job.get_priority().name, "The job's priority"),
    dataclasses.replace(
        _get(
            "/GETMINRETRYDELAY",
            lambda job: seconds_text(job.get_minimum_retry_delay()),
            "The minimum retry delay in seconds",
        ),
        aliases=("/getminretry",),
    ),
    _get(
        "/GETNOPROGRESSTIMEOUT",
        lambda job: seconds_text(job.get_no_progress_timeout()),
        "The no-progress timeout in seconds",
    ),
    _get(
        "/GETMAXDOWNLOADTIME",
        lambda job: seconds_text(job.get_maximum_download_time()),
        "The maximum download time in seconds (0: no limit)",
    ),
    _get(
        "/GETNOTIFYCMDLINE",
        cmd.get_notify_cmd_line,
        "The program run when the job is transferred or in error",
    ),
    _get("/GETNOTIFYFLAGS", lambda job: str(int(job.get_notify_flags())), "The notification flags"),
    _get("/GETID", lambda job: guid(job.id), "The job's GUID (bitsd addition)"),
    Switch(
        "/GETTEMPORARYNAME",
        "job file_index",
        "The temporary file of the job's file number file_index (from 0)",
        cmd.get_temporary_name,
        "get temporary name",
        2,
    ),
    _no("/GETNOTIFYINTERFACE", _NOTIFY_INTERFACE, "job"),
    _get(
        "/GETPROXYUSAGE",
        cmd.get_proxy_usage,
        "The proxy usage (PRECONFIG, NO_PROXY, OVERRIDE or AUTODETECT)",
        "get proxy usage",
    ),
    _get("/GETPROXYLIST", cmd.get_proxy_list, "The proxy list (NULL: none)", "get proxy list"),
    _get(
        "/GETPROXYBYPASSLIST",
        cmd.get_proxy_bypass_list,
        "The proxy bypass list (NULL: none)",
        "get proxy bypass list",
    ),
    Switch(
        "/GETCUSTOMHEADERS",
        "job",
        "The custom HTTP headers, one per line (NULL: none)",
        cmd.get_custom_headers,
        "get custom headers",
        1,
    ),
    _get(
        "/GETSECURITYFLAGS",
        cmd.get_security_flags,
        "The HTTP security flags (TLS checks, redirect policy), in hex",
        "get security flags",
    ),
    _get(
        "/GETHTTPMETHOD", cmd.get_http_method, "The HTTP method (GET unless set)", "get HTTP method"
    ),
    _get(
        "/GETCLIENTCERTIFICATE",
        cmd.get_client_certificate,
        "The client certificate's file and key file, or none",
        "get client certificate",
    ),
    Switch(
        "/GETVALIDATIONSTATE",
        "job file_index",
        "Whether file number file_index was accepted (TRUE or FALSE)",
        cmd.get_validation_state,
        "get validation state",
        2,
    ),
    Switch(
        "/GETREPLYDATA",
        "job",
        "The server's reply to an upload-reply job, in hexadecimal (at most 1 MB)",
        cmd.get_reply_data,
        "get reply data",
        1,
    ),
    _get(
        "/GETREPLYFILENAME",
        cmd.get_reply_file_name,
        "The file the reply of an upload-reply job goes to (NULL: not named yet)",
        "get reply file name",
    ),
    _get(
        "/GETREPLYPROGRESS",
        cmd.get_reply_progress,
        "The size and progress of the reply of an upload-reply job",
        "get reply progress",
    ),
    _no("/GETACLFLAGS", _WINDOWS_SECURITY, "job"),
    _no("/GETHELPERTOKENFLAGS", _WINDOWS_SECURITY, "job"),
    _no("/GETHELPERTOKENSID", _WINDOWS_SECURITY, "job"),
    _no("/GETPEERCACHINGFLAGS", _PEERS, "job"),
    # -- setters
    _set("/SETDISPLAYNAME", "display_name", cmd.set_display_name, "Set display name"),
    _set("/SETDESCRIPTION", "description", cmd.set_description, "Set description"),
    _set("/SETPRIORITY", "FOREGROUND|HIGH|NORMAL|LOW", cmd.set_priority, "Set priority"),
    dataclasses.replace(
        _set(
            "/SETMINRETRYDELAY", "seconds", cmd.set_minimum_retry_delay, "Set minimum retry delay"
        ),
        aliases=("/setminretry",),
    ),
    _set(
        "/SETNOPROGRESSTIMEOUT", "seconds", cmd.set_no_progress_timeout, "Set no progress timeout"
    ),
    _set(
        "/SETMAXDOWNLOADTIME", "seconds", cmd.set_maximum_download_time, "Set maximum download time"
    ),
    _set(
        "/SETNOTIFYFLAGS",
        "flags",
        cmd.set_notify_flags,
        "Set notification flags (1 transferred, 2 error, 4 disable)",
    ),
    Switch(
        "/SETNOTIFYCMDLINE",
        "job program_name|NULL [program_parameters|NULL]",
        "Set the program to run when the job is transferred or in error",
        cmd.set_notify_cmd_line,
        "set notification command line",
        2,
        None,
    ),
    Switch(
        "/SETPROXYSETTINGS",
        "job PRECONFIG|NO_PROXY|OVERRIDE|AUTODETECT [proxy_list] [bypass_list]",
        "Set how the job reaches servers; OVERRIDE takes a proxy list and a bypass list "
        "(either may be NULL)",
        cmd.set_proxy_settings,
        "set proxy settings",
        2,
        2,
    ),
    Switch(
        "/SETCREDENTIALS",
        "job SERVER|PROXY BASIC|DIGEST|NTLM|NEGOTIATE username password",
        "Set the credentials for a server or proxy (the password is visible to other "
        "processes: see bitsd credentials)",
        cmd.set_credentials,
        "set credentials",
        5,
    ),
    Switch(
        "/REMOVECREDENTIALS",
        "job SERVER|PROXY BASIC|DIGEST|NTLM|NEGOTIATE",
        "Remove the credentials of a target and scheme",
        cmd.remove_credentials,
        "remove credentials",
        3,
    ),
    Switch(
        "/SETCUSTOMHEADERS",
        "job header1 [header2 ...] | job NULL",
        "Set the HTTP headers sent with every request ('Name: value' each; NULL removes them)",
        cmd.set_custom_headers,
        "set custom headers",
        2,
        None,
    ),
    Switch(
        "/MAKECUSTOMHEADERSWRITEONLY",
        "job",
        "Make the custom headers unreadable from now on",
        cmd.make_custom_headers_write_only,
        "make custom headers write-only",
        1,
    ),
    _set(
        "/SETSECURITYFLAGS",
        "value",
        cmd.set_security_flags,
        "Set HTTP security flags (decimal or 0x hex: TLS checks, redirect policy)",
        "set security flags",
    ),
    _set(
        "/SETHTTPMETHOD",
        "method",
        cmd.set_http_method,
        "Set the HTTP method (the job becomes FOREGROUND)",
        "set HTTP method",
    ),
    Switch(
        "/REMOVECLIENTCERTIFICATE",
        "job",
        "Remove the client certificate",
        cmd.remove_client_certificate,
        "remove client certificate",
        1,
    ),
    Switch(
        "/SETVALIDATIONSTATE",
        "job file_index TRUE|FALSE",
        "Accept (TRUE) or reject (FALSE: the job goes to ERROR) file number file_index",
        cmd.set_validation_state,
        "set validation state",
        3,
    ),
    _no("/SETCLIENTCERTIFICATEBYID", _CERTIFICATE_STORES, "job store_location store_name hexa-id"),
    _no(
        "/SETCLIENTCERTIFICATEBYNAME", _CERTIFICATE_STORES, "job store_location store_name subject"
    ),
    _set(
        "/SETREPLYFILENAME",
        "path|NULL",
        cmd.set_reply_file_name,
        "Set the file the reply of an upload-reply job goes to (NULL: bitsd names it)",
        "set reply file name",
    ),
    _no("/SETACLFLAG", _WINDOWS_SECURITY, "job flags", "/setaclflags"),
    _no("/SETHELPERTOKEN", _WINDOWS_SECURITY, "job [username@domain password]"),
    _no("/SETHELPERTOKENFLAGS", _WINDOWS_SECURITY, "job flags"),
    _no("/SETPEERCACHINGFLAGS", _PEERS, "job value"),
    # -- peer caching and utilities
    _no("/CACHE", _PEERS, "/?"),
    _no("/PEERCACHING", _PEERS, "/?"),
    _no("/PEERS", _PEERS, "/?"),
    Switch(
        "/UTIL",
        "/VERSION | /HELP",
        "Utilities: /UTIL /VERSION prints bitsd's version",
        util_command,
        "run utility",
        0,
        None,
    ),
    Switch(
        "/HELP",
        "",
        "Print this help (also /?)",
        help_command,
        "print help",
        0,
        None,
        aliases=("/?",),
    ),
)


_GLOBAL_SWITCHES = ("/rawreturn", "/wrap", "/nowrap")
_BY_NAME: dict[str, Switch] = {}
for _switch in SWITCHES:
    for _key in (_switch.name.lower(), *_switch.aliases):
        _BY_NAME[_key] = _switch
_UTIL_BY_NAME = {u.name.lower(): u for u in UTIL_SWITCHES}


def banner() -> str:
    """The first line of every normal output (Microsoft's copyright line is not bitsd's)."""
    return f"bitsadmin (bitsd {bitsd.__version__}) - BITS administration utility for Linux"


# -- parsing and dispatch --------------------------------------------------------------------


def _parse(switch: Switch, tokens: Sequence[str]) -> Call:
    args: list[str] = []
    options: dict[str, list[str]] = {}
    i = 0
    while i < len(tokens):
        key = tokens[i].lower()
        arity = switch.options.get(key)
        if arity is None:
            args.append(tokens[i])
            i += 1
            continue
        values = list(tokens[i + 1 : i + 1 + arity])
        if len(values) < arity:
            raise UsageError(f"{key.upper()} needs a value", f"bitsadmin {switch.syntax}")
        options.setdefault(key, []).extend(values or [""])
        i += 1 + arity
    most = None if switch.optional is None else switch.args + switch.optional
    if len(args) < switch.args or (most is not None and len(args) > most):
        raise UsageError(
            f"wrong number of arguments for {switch.name}", f"bitsadmin {switch.syntax}"
        )
    return Call(switch.name.lower(), args, options)


def _split_globals(argv: Sequence[str]) -> tuple[bool, bool, list[str]]:
    raw = wrap = False
    rest = []
    for token in argv:
        key = token.lower()
        if key == "/rawreturn":
            raw = True
        elif key == "/wrap":
            wrap = True
        elif key == "/nowrap":
            wrap = False
        else:
            rest.append(token)
    return raw, wrap, rest


def _run(ctx: Context, tokens: Sequence[str]) -> int:
    if not tokens:
        return help_command(ctx, Call("/help", []))
    first = tokens[0]
    switch = _BY_NAME.get(first.lower())
    if switch is None:
        if not first.startswith("/"):
            raise UsageError(f"'{first}' is not a switch; switches start with '/'")
        raise UsageError(f"unknown switch {first}")
    if switch.unsupported is not None:
        sub = f" {tokens[1]}" if len(tokens) > 1 and tokens[1].startswith("/") else ""
        raise UnsupportedError(switch.name + sub.upper(), switch.unsupported)
    if switch.name != "/HELP" and "/?" in tokens[1:]:
        return help_command(ctx, Call("/help", [switch.name]))
    call = _parse(switch, tokens[1:])
    assert switch.handler is not None
    try:
        return switch.handler(ctx, call)
    except BitsError as exc:
        raise CallFailedError.of(switch.action, exc) from exc


def main(argv: Sequence[str] | None = None) -> int:
    """Run bitsadmin with ``argv`` (default: the process's arguments); return the exit status."""
    raw, wrap, tokens = _split_globals(sys.argv[1:] if argv is None else argv)
    console = Console(sys.stdout, sys.stderr, raw=raw, wrap=wrap)
    ctx = Context(console)
    console.info(banner())
    console.info()
    try:
        return _run(ctx, tokens)
    except UsageError as exc:
        console.error(f"Error: {exc.message}.")
        console.error(f"Usage: {exc.usage}" if exc.usage else "Type bitsadmin /? for help.")
        return EXIT_FAILURE
    except UnsupportedError as exc:
        console.error(f"{exc.switch} is not supported by bitsd: {exc.reason}.")
        return EXIT_FAILURE
    except CallFailedError as exc:
        for line in exc.lines():
            console.error(line)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        console.error("Interrupted.")
        return EXIT_FAILURE
    finally:
        ctx.close()
        if not raw:
            sys.stdout.flush()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
