"""The commands that change a job: create, add, add-set, resume, suspend, cancel, complete, set,
replace-prefix, validate and ranges (``credentials`` is in :mod:`bitsd.cli.credentials`).

Each is one BITS verb (or a few setters) on the daemon; what the daemon refuses comes back as
its BITS error, printed as one line with what to do (exit 1; 4 for an unknown job).
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from typing import IO, Any

import click

from bitsd import codes
from bitsd._client import Manager, RemoteJob
from bitsd._enums import JobType, ProxyUsage
from bitsd._records import FileInfo
from bitsd.cli import jsonout, params, session
from bitsd.cli.session import Call

__all__ = ["COMMANDS"]

_TYPES = {
    "download": JobType.DOWNLOAD,
    "upload": JobType.UPLOAD,
    "upload-reply": JobType.UPLOAD_REPLY,
}


def _note(text: str) -> None:
    click.echo(text, err=True)


@click.command()
@click.argument("name")
@click.option(
    "--type",
    "job_type",
    type=click.Choice(list(_TYPES), case_sensitive=False),
    default="download",
    show_default=True,
    help="The job's type; an upload job sends its one file (bitsd add JOB URL LOCAL) to URL.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the new job as JSON.")
def create(name: str, job_type: str, as_json: bool) -> None:
    """Create a SUSPENDED job named NAME and print its id.

    Add files with `bitsd add`, then start it with `bitsd resume`.
    """

    async def body(manager: Manager, call: Call) -> None:
        job = await manager.create_job(name, _TYPES[job_type.lower()])
        call.job = job.id
        if as_json:
            jsonout.emit(jsonout.job_doc(await job.snapshot()))
            return
        click.echo(job.id)
        _note(f"created job {job.id} ({name}); add files: bitsd add {job.id} URL LOCAL")

    session.run("create", body)


def _local(path: str) -> str:
    """LOCAL as the daemon needs it: absolute (relative paths are from the current folder)."""
    return os.path.abspath(os.path.expanduser(path))


@click.command()
@click.argument("job", type=params.JOB)
@click.argument("url")
@click.argument("local", type=click.Path(dir_okay=False))
@click.option(
    "--sha256",
    type=params.SHA256,
    help="The file's expected SHA-256: a mismatch fails the job (BG_E_VALIDATION_FAILED).",
)
@click.option(
    "--range",
    "ranges",
    multiple=True,
    metavar="OFFSET:LENGTH",
    help=(
        "Download only these bytes of URL; LOCAL is the ranges concatenated in order. Repeat "
        "it or separate ranges by commas; LENGTH 'eof' runs to the end (AddFileWithRanges)."
    ),
)
def add(job: str, url: str, local: str, sha256: str | None, ranges: tuple[str, ...]) -> None:
    """Add the file at URL to JOB, to be saved as LOCAL."""
    target = _local(local)
    byte_ranges = params.parse_ranges(ranges) if ranges else None
    if byte_ranges is not None and sha256 is not None:
        raise click.UsageError("--sha256 checks a whole file; it does not go with --range")

    async def body(manager: Manager, call: Call) -> None:
        handle = await session.resolve(manager, job, call)
        if byte_ranges is not None:
            await handle.add_file_with_ranges(url, target, byte_ranges)
            count = len(byte_ranges)
            shown = f" ({count} range{'s' if count != 1 else ''})"
        else:
            await handle.add_file(url, target, sha256=sha256)
            shown = "" if sha256 is None else " (SHA-256 checked)"
        _note(f"job {handle.id}: added {url} -> {target}{shown}")

    session.run("add", body)


def _read_file_set(stream: IO[str], source: str) -> list[tuple[str, str]]:
    """Lines "URL LOCAL" (LOCAL may contain spaces); blank lines and # comments are skipped."""
    pairs: list[tuple[str, str]] = []
    for number, raw in enumerate(stream, start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(None, 1)
        if len(parts) != 2:
            raise click.BadParameter(
                f"{source}, line {number}: expected 'URL LOCAL', got {line!r}",
                param_hint="'--file'",
            )
        pairs.append((parts[0], _local(parts[1])))
    if not pairs:
        raise click.BadParameter(f"{source} lists no files", param_hint="'--file'")
    return pairs


@click.command("add-set")
@click.argument("job", type=params.JOB)
@click.option(
    "--file",
    "listing",
    type=click.File("r"),
    required=True,
    help="A file of lines 'URL LOCAL' ('-' reads stdin).",
)
def add_set(job: str, listing: IO[str]) -> None:
    """Add every file listed in --file to JOB, all or none."""
    pairs = _read_file_set(listing, listing.name)

    async def body(manager: Manager, call: Call) -> None:
        handle = await session.resolve(manager, job, call)
        await handle.add_file_set(pairs)
        _note(f"job {handle.id}: added {len(pairs)} file{'s' if len(pairs) != 1 else ''}")

    session.run("add-set", body)


def _verb_command(
    name: str, summary: str, verb: Callable[[RemoteJob], Awaitable[int | None]], done: str
) -> click.Command:
    @click.command(name, help=summary)
    @click.argument("job", type=params.JOB)
    def command(job: str) -> None:
        async def body(manager: Manager, call: Call) -> None:
            handle = await session.resolve(manager, job, call)
            result = await verb(handle)
            extra = ""
            if result is not None and result != codes.S_OK:
                extra = f" ({codes.name_of(result)}: {codes.describe(result)})"
            click.echo(f"job {handle.id} {done}{extra}")

        session.run(name, body)

    return command


async def _resume(job: RemoteJob) -> None:
    await job.resume()


async def _suspend(job: RemoteJob) -> None:
    await job.suspend()


async def _cancel(job: RemoteJob) -> int:
    return await job.cancel()


async def _complete(job: RemoteJob) -> int:
    return await job.complete()


resume = _verb_command("resume", "Queue JOB for transfer (or retry it now).", _resume, "resumed")
suspend = _verb_command(
    "suspend", "Stop transferring JOB; keep its progress.", _suspend, "suspended"
)
cancel = _verb_command("cancel", "Cancel JOB and delete its temporary files.", _cancel, "cancelled")
complete = _verb_command(
    "complete",
    "Move JOB's transferred files to their names and end the job.",
    _complete,
    "completed",
)


Step = tuple[str, Callable[[RemoteJob], Awaitable[object]]]


@click.command("set")
@click.argument("job", type=params.JOB)
@click.option("--priority", type=params.PRIORITY, help="foreground, high, normal or low.")
@click.option("--description", help="At most 1,024 characters.")
@click.option("--display-name", help="The job's name (need not be unique).")
@click.option("--retry-delay", type=params.DURATION, help="Wait before retrying (at least 5 s).")
@click.option(
    "--no-progress-timeout",
    type=params.DURATION,
    help="Give up after this long without progress (0: every error is fatal).",
)
@click.option(
    "--max-download-time", type=params.DURATION, help="Time limit of the transfer (0: none)."
)
@click.option(
    "--notify-flags",
    type=params.NOTIFY_FLAGS,
    help="Number, or names like JOB_TRANSFERRED|JOB_ERROR.",
)
@click.option(
    "--notify-cmd",
    metavar="'PROGRAM ARGS...'",
    help="Run this command line when the job is transferred or fails ('' removes it).",
)
@click.option(
    "--dynamic/--no-dynamic",
    default=None,
    help="Download without ranges (before the first resume only).",
)
@click.option(
    "--reply-file",
    metavar="PATH",
    help="Where an upload-reply job's reply goes on complete ('': the name bitsd makes).",
)
@click.option(
    "--on-demand/--no-on-demand",
    default=None,
    help="Fetch files by the ranges asked with bitsd ranges (before the first resume only).",
)
@click.option(
    "--max-download-size",
    type=params.SIZE,
    help="Most bytes the job may download, e.g. 500MB ('none': no limit; before the first resume).",
)
@click.option(
    "--bandwidth-limit",
    type=params.BYTE_RATE,
    help="Most bytes per second for this job, e.g. 2MB/s ('none': no limit).",
)
@click.option(
    "--transfer-policy",
    type=params.TRANSFER_POLICY,
    help=(
        f"Networks the job may use: {', '.join(params.transfer_policy_names())}, a number, or "
        "cost states joined by |."
    ),
)
@click.option(
    "--http-method",
    metavar="METHOD",
    help="Send METHOD instead of GET (the job becomes FOREGROUND; before the first resume).",
)
@click.option(
    "--custom-headers",
    "custom_headers",
    multiple=True,
    metavar="'NAME: VALUE'",
    help="Headers sent with every request (repeat, or one per line; '' removes them).",
)
@click.option(
    "--custom-headers-file",
    type=click.File("r"),
    help="Read the custom headers from this file, one per line ('-' reads stdin).",
)
@click.option(
    "--custom-headers-write-only",
    is_flag=True,
    help="Make the custom headers unreadable from now on (cannot be undone).",
)
@click.option(
    "--security-flags",
    type=params.SECURITY_FLAGS,
    help="TLS and redirect flags: a number, or names (IGNORE_UNKNOWN_CA|REDIRECT_POLICY_DISALLOW).",
)
@click.option(
    "--proxy-usage",
    type=params.PROXY_USAGE,
    help="preconfig (the environment's *_proxy), no-proxy, override (--proxy-list) or autodetect.",
)
@click.option(
    "--proxy-list",
    metavar="'PROXY...'",
    help="Space-separated [scheme=][scheme://]host[:port] (implies --proxy-usage override).",
)
@click.option(
    "--proxy-bypass",
    metavar="'HOST...'",
    help="Space-separated hosts reached without the proxy (<local> and * wildcards allowed).",
)
@click.option(
    "--ca-bundle",
    metavar="PEM",
    help="Trust the CAs of this PEM file instead of the system's ('' returns to the system's).",
)
@click.option(
    "--client-cert", metavar="PEM", help="Present this client certificate (PEM) to servers."
)
@click.option(
    "--client-key",
    metavar="PEM",
    help="The client certificate's key, if it is not in --client-cert's file.",
)
@click.option("--no-client-cert", is_flag=True, help="Remove the client certificate.")
def set_(
    job: str,
    priority: str | None,
    description: str | None,
    display_name: str | None,
    retry_delay: float | None,
    no_progress_timeout: float | None,
    max_download_time: float | None,
    notify_flags: int | None,
    notify_cmd: str | None,
    dynamic: bool | None,
    reply_file: str | None,
    on_demand: bool | None,
    **http: Any,
) -> None:
    """Change JOB's properties (those given; in the order listed).

    Credentials are set with bitsd credentials, never here.
    """
    notify = None if notify_cmd is None else params.parse_notify_cmd(notify_cmd)
    steps: list[Step] = []
    if priority is not None:
        steps.append(("priority", lambda j: j.set_priority(params.priority(priority))))
    if description is not None:
        steps.append(("description", lambda j: j.set_description(description)))
    if display_name is not None:
        steps.append(("display name", lambda j: j.set_display_name(display_name)))
    if retry_delay is not None:
        steps.append(("retry delay", lambda j: j.set_minimum_retry_delay(retry_delay)))
    if no_progress_timeout is not None:
        steps.append(
            ("no-progress timeout", lambda j: j.set_no_progress_timeout(no_progress_timeout))
        )
    if max_download_time is not None:
        steps.append(
            ("max download time", lambda j: j.set_maximum_download_time(max_download_time))
        )
    if notify_flags is not None:
        steps.append(("notify flags", lambda j: j.set_notify_flags(notify_flags)))
    if notify is not None:
        steps.append(
            ("notify command", lambda j: j.set_notify_cmd_line(notify.program, notify.parameters))
        )
    if dynamic is not None:
        steps.append(("dynamic content", lambda j: j.set_dynamic_content(dynamic)))
    if reply_file is not None:
        reply_path = _local(reply_file) if reply_file else None
        steps.append(("reply file", lambda j: j.set_reply_file_name(reply_path)))
    if on_demand is not None:
        steps.append(("on-demand mode", lambda j: j.set_on_demand(on_demand)))
    steps.extend(_http_steps(click.get_current_context(), http))
    if not steps:
        raise click.UsageError("nothing to set: give at least one option (see bitsd set --help)")

    async def body(manager: Manager, call: Call) -> None:
        handle = await session.resolve(manager, job, call)
        for _, step in steps:
            await step(handle)
        click.echo(f"job {handle.id}: set {', '.join(name for name, _ in steps)}")

    session.run("set", body)


def _given(ctx: click.Context, name: str) -> bool:
    source = ctx.get_parameter_source(name)
    return source is not None and source is not click.core.ParameterSource.DEFAULT


def _http_steps(ctx: click.Context, o: dict[str, Any]) -> list[Step]:
    """The steps of the HTTP options of ``set`` (issue 6), in the order of --help.

    Raises:
        click.UsageError: options that contradict each other.
    """
    steps: list[Step] = []
    size, rate, policy, method = (
        o["max_download_size"],
        o["bandwidth_limit"],
        o["transfer_policy"],
        o["http_method"],
    )
    if _given(ctx, "max_download_size"):
        steps.append(("max download size", lambda j: j.set_maximum_download_size(size)))
    if _given(ctx, "bandwidth_limit"):
        steps.append(("bandwidth limit", lambda j: j.set_bandwidth_limit(rate)))
    if policy is not None:
        steps.append(("transfer policy", lambda j: j.set_transfer_policy(policy)))
    if method is not None:
        steps.append(("http method", lambda j: j.set_http_method(method or None)))
    header_texts = list(o["custom_headers"])
    if o["custom_headers_file"] is not None:
        header_texts.append(o["custom_headers_file"].read())
    if header_texts:
        headers = params.header_lines(header_texts)
        steps.append(("custom headers", lambda j: j.set_custom_headers(headers)))
    if o["custom_headers_write_only"]:
        steps.append(("custom headers write-only", lambda j: j.make_custom_headers_write_only()))
    flags = o["security_flags"]
    if flags is not None:
        steps.append(("security flags", lambda j: j.set_security_flags(flags)))
    steps.extend(_proxy_steps(o["proxy_usage"], o["proxy_list"], o["proxy_bypass"]))
    bundle = o["ca_bundle"]
    if bundle is not None:
        steps.append(("ca bundle", lambda j: j.set_ca_bundle(_local(bundle) if bundle else None)))
    cert, key, no_cert = o["client_cert"], o["client_key"], o["no_client_cert"]
    if no_cert and (cert is not None or key is not None):
        raise click.UsageError("--no-client-cert does not go with --client-cert or --client-key")
    if key is not None and cert is None:
        raise click.UsageError("--client-key needs --client-cert")
    if cert is not None:
        cert_path, key_path = _local(cert), None if key is None else _local(key)
        steps.append(
            ("client certificate", lambda j: j.set_client_certificate(cert_path, key_path))
        )
    if no_cert:
        steps.append(("client certificate removed", lambda j: j.remove_client_certificate()))
    return steps


def _proxy_steps(usage: ProxyUsage | None, proxies: str | None, bypass: str | None) -> list[Step]:
    if usage is None and proxies is None and bypass is None:
        return []
    if usage is None:
        if proxies is None:
            raise click.UsageError("--proxy-bypass needs --proxy-list (or --proxy-usage)")
        usage = ProxyUsage.OVERRIDE
    chosen = usage
    return [("proxy", lambda j: j.set_proxy_settings(chosen, proxies or None, bypass or None))]


@click.command("replace-prefix")
@click.argument("job", type=params.JOB)
@click.argument("old")
@click.argument("new")
def replace_prefix(job: str, old: str, new: str) -> None:
    """Point JOB's files at another server: every remote name that starts with OLD (case
    matters) starts with NEW instead (ReplaceRemotePrefix).

    Files already transferred are not fetched again; the others go on where they were unless
    the new server's copy differs.
    """

    async def body(manager: Manager, call: Call) -> None:
        handle = await session.resolve(manager, job, call)
        result = await handle.replace_remote_prefix(old, new)
        if result == codes.S_FALSE:
            click.echo(f"job {handle.id}: no remote name starts with {old}; nothing changed")
        else:
            click.echo(f"job {handle.id}: remote names starting with {old} now start with {new}")

    session.run("replace-prefix", body)


@click.command()
@click.argument("job", type=params.JOB)
@click.argument("file", metavar="FILE")
@click.option(
    "--valid/--invalid",
    default=None,
    help="Accept the file, or reject it (the job goes to ERROR and downloads it again on resume).",
)
def validate(job: str, file: str, valid: bool | None) -> None:
    """Accept or reject a transferred FILE of JOB (SetValidationState); without --valid or
    --invalid, print whether it was accepted.

    FILE is the file's index in bitsd files (from 0) or its local name.
    """

    async def body(manager: Manager, call: Call) -> None:
        handle = await session.resolve(manager, job, call)
        index, info = _file_of(await handle.files(), file)
        if valid is None:
            accepted = await handle.get_validation_state(index)
            click.echo(f"{info.local_name}: {'valid' if accepted else 'not validated'}")
            return
        await handle.set_validation_state(index, valid)
        if valid:
            click.echo(f"job {handle.id}: {info.local_name} is valid")
        else:
            click.echo(
                f"job {handle.id}: {info.local_name} is invalid; the job is in ERROR "
                f"(BG_E_VALIDATION_FAILED); bitsd resume {handle.id} downloads it again"
            )

    session.run("validate", body)


@click.command()
@click.argument("job", type=params.JOB)
@click.argument("file", metavar="FILE")
@click.option(
    "--request",
    "requests",
    multiple=True,
    metavar="OFFSET:LENGTH",
    help=(
        "Ask for these bytes first (RequestFileRanges); repeat it or separate ranges by commas; "
        "LENGTH 'eof' runs to the end."
    ),
)
@click.option(
    "--position",
    type=click.IntRange(min=0),
    help="Fill the file's gaps from this offset on (UpdateDownloadPosition).",
)
@click.option("--resume", "then_resume", is_flag=True, help="Resume the job afterwards.")
def ranges(
    job: str, file: str, requests: tuple[str, ...], position: int | None, then_resume: bool
) -> None:
    """Ask for byte ranges of FILE of an on-demand JOB, then print the ranges FILE holds, one
    OFFSET:LENGTH a line (GetFilledFileRanges).

    FILE is the file's index in bitsd files (from 0) or its local name. The job fetches the
    ranges asked on its next run (--resume, or bitsd resume JOB) and is SUSPENDED when they
    are in, TRANSFERRED when the whole file is; a resume with nothing asked fills the gaps
    from --position on. Make a job on-demand with bitsd set JOB --on-demand before its first
    resume.
    """
    asked = params.parse_ranges(requests) if requests else None

    async def body(manager: Manager, call: Call) -> None:
        handle = await session.resolve(manager, job, call)
        index, info = _file_of(await handle.files(), file)
        if position is not None:
            await handle.update_download_position(index, position)
            _note(f"job {handle.id}: {info.local_name} fills its gaps from {position} on")
        if asked is not None:
            await handle.request_file_ranges(index, asked)
            count = len(asked)
            _note(f"job {handle.id}: asked for {count} range{'s' if count != 1 else ''}")
        if then_resume:
            await handle.resume()
            _note(f"job {handle.id} resumed")
        filled = await handle.get_filled_file_ranges(index)
        held = sum(length for _, length in filled)
        _note(f"{info.local_name}: {held:,} bytes held in {len(filled)} range(s)")
        for offset, length in filled:
            click.echo(f"{offset}:{length}")

    session.run("ranges", body)


def _file_of(files: list[FileInfo], ref: str) -> tuple[int, FileInfo]:
    """The (index, file) FILE names: an index, a local name, or a base name one file has."""
    if ref.isdigit() and int(ref) < len(files):
        return int(ref), files[int(ref)]
    target = _local(ref)
    for index, info in enumerate(files):
        if info.local_name == target:
            return index, info
    named = [(i, f) for i, f in enumerate(files) if os.path.basename(f.local_name) == ref]
    if len(named) == 1:
        return named[0]
    if not files:
        raise click.BadParameter("the job has no files", param_hint="'FILE'")
    raise click.BadParameter(
        f"{ref!r} is neither a file index (0 to {len(files) - 1}) nor a local name of the job",
        param_hint="'FILE'",
    )


COMMANDS: list[click.Command] = [
    create,
    add,
    add_set,
    resume,
    suspend,
    cancel,
    complete,
    set_,
    replace_prefix,
    validate,
    ranges,
]
