"""The job verbs step by step: create, add, add-set, set, resume, suspend, wait, complete,
cancel; and how JOB names a job (id, braces, display name, ambiguous, unknown)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from tests.cli.conftest import Cli, body, validate
from tests.servers.faulty import Fault, FaultServer


def test_create_add_resume_complete(
    cli: Cli, server: FaultServer, dest: Path, schema: Mapping[str, Any]
) -> None:
    """The bitsadmin-style flow: create prints the id, add takes a relative LOCAL from the
    current folder, resume starts it, wait sees TRANSFERRED, complete puts the file in place."""
    data = body(120_000, seed=21)
    server.add("/cli/flow.bin", data)
    created = cli("create", "cli-flow")
    assert created.exit_code == 0, created.output
    job = created.stdout.strip()
    info = cli.json("info", job)
    validate(schema, "info", info)
    assert (info["state"], info["display_name"], info["type"]) == (
        "SUSPENDED",
        "cli-flow",
        "DOWNLOAD",
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(dest)
        added = cli("add", job, server.url("/cli/flow.bin"), "flow.bin")
    assert added.exit_code == 0, added.output
    files = cli.json("files", job)
    validate(schema, "files", files)
    assert [f["local_name"] for f in files["files"]] == [str(dest / "flow.bin")]
    assert cli("resume", job).exit_code == 0
    assert cli("wait", job, "--timeout", "20").stdout.strip() == "TRANSFERRED"
    completed = cli("complete", job)
    assert completed.exit_code == 0, completed.output
    assert completed.stdout.strip() == f"job {job} completed"
    assert (dest / "flow.bin").read_bytes() == data
    assert cli("info", job).exit_code == 4  # final jobs are gone from the user's list


def test_add_set_set_and_suspend(
    cli: Cli, server: FaultServer, dest: Path, tmp_path: Path, schema: Mapping[str, Any]
) -> None:
    """add-set reads "URL LOCAL" lines (comments, blanks, spaces in LOCAL); set changes every
    property it is given; suspend and resume move the job; JOB may be the display name or the
    id in braces."""
    for name in ("a", "b"):
        server.add(f"/cli/set/{name}.bin", body(50_000, seed=ord(name)))
    listing = tmp_path / "files.txt"
    listing.write_text(
        "# two files\n\n"
        f"{server.url('/cli/set/a.bin')} {dest / 'a file.bin'}\n"
        f"{server.url('/cli/set/b.bin')}   {dest / 'b.bin'}\n"
    )
    job = cli("create", "cli-set-job").stdout.strip()
    result = cli("add-set", "cli-set-job", "--file", str(listing))
    assert result.exit_code == 0, result.output
    result = cli(
        "set",
        f"{{{job}}}",
        "--priority",
        "low",
        "--description",
        "two files",
        "--retry-delay",
        "1m",
        "--no-progress-timeout",
        "2h",
        "--max-download-time",
        "1d",
        "--notify-flags",
        "JOB_TRANSFERRED|JOB_ERROR|JOB_MODIFICATION",
        "--notify-cmd",
        "true done",
        "--dynamic",
        "--display-name",
        "cli-set-renamed",
    )
    assert result.exit_code == 0, result.output
    info = cli.json("info", "cli-set-renamed")
    validate(schema, "info", info)
    assert info["priority"] == "LOW"
    assert info["description"] == "two files"
    assert info["minimum_retry_delay"] == 60.0
    assert info["no_progress_timeout"] == 7200.0
    assert info["maximum_download_time"] == 86400.0
    assert info["notify_flags"] == 1 | 2 | 8
    assert info["notify_cmd_line"]["parameters"] == "true done"
    assert info["notify_cmd_line"]["program"].endswith("/true")
    assert info["dynamic_content"] is True
    assert [f["local_name"] for f in cli.json("files", job)["files"]] == [
        str(dest / "a file.bin"),
        str(dest / "b.bin"),
    ]
    assert cli("resume", job).exit_code == 0
    assert cli("suspend", job).exit_code == 0
    assert cli.json("info", job)["state"] == "SUSPENDED"
    cancelled = cli("cancel", job)
    assert cancelled.exit_code == 0
    assert cancelled.stdout.strip() == f"job {job} cancelled"


def test_a_refused_verb_is_one_line_with_exit_1(cli: Cli) -> None:
    """Resume of a job without files: BG_E_EMPTY in resume, with what to do, exit 1."""
    job = cli("create", "cli-empty").stdout.strip()
    result = cli("resume", job)
    assert result.exit_code == 1
    line = result.stderr.strip()
    assert "\n" not in line
    assert line.startswith("BG_E_EMPTY (0x80200003) in resume: ")  # then the daemon's words
    assert line.endswith(f"; add one with bitsd add {job} URL LOCAL, then bitsd resume {job}")
    assert cli("cancel", job).exit_code == 0


def test_unknown_and_ambiguous_jobs(cli: Cli) -> None:
    """An unknown id or name exits 4; a display name two jobs share exits 2 and lists both;
    the start of one job's id (the short id of the monitor) names that job."""
    missing = cli("info", "00000000-0000-4000-8000-000000000000")
    assert missing.exit_code == 4
    assert missing.stderr.startswith("BG_E_NOT_FOUND (0x80200001) in info: ")
    assert "bitsd list" in missing.stderr
    assert cli("suspend", "no-such-job-name").exit_code == 4
    first = cli("create", "cli-twin").stdout.strip()
    second = cli("create", "cli-twin").stdout.strip()
    assert cli.json("info", first[:8])["id"] == first
    assert cli.json("info", first.upper())["id"] == first
    result = cli("info", "cli-twin")
    assert result.exit_code == 2
    assert "Usage:" in result.stderr
    assert first in result.stderr
    assert second in result.stderr
    for job in (first, second):
        assert cli("cancel", job).exit_code == 0


def test_wait_times_out_with_124_and_error_without_error(
    cli: Cli, server: FaultServer, dest: Path, schema: Mapping[str, Any]
) -> None:
    """wait --timeout on a job that cannot finish exits 124 with timed_out true; error on a job
    that has none exits 0 with null error (both documents validate)."""
    server.add("/cli/stall.bin", body(10_000, seed=22))
    server.set_fault("/cli/stall.bin", Fault(stall_before_headers=30.0))
    job = cli.json("transfer", server.url("/cli/stall.bin"), "-d", str(dest), "--async")["job"]
    result = cli("wait", job, "--timeout", "0.5", "--json")
    assert result.exit_code == 124
    doc = json.loads(result.stdout)
    validate(schema, "wait", doc)
    assert doc["timed_out"] is True
    err = cli.json("error", job)
    validate(schema, "error", err)
    assert err["error"] is None
    assert err["message"] is None
    assert cli("cancel", job).exit_code == 0


def test_on_demand_ranges(
    cli: Cli, server: FaultServer, dest: Path, schema: Mapping[str, Any]
) -> None:
    """set --on-demand makes the job on-demand (info shows it); ranges --request asks for
    byte ranges and --resume starts the job, which is SUSPENDED once they are in; ranges then
    prints the ranges held as OFFSET:LENGTH lines; a plain resume fills the rest from
    --position; refusals are the daemon's BITS errors with advice (exit 1)."""
    data = body(200_000, seed=31)
    server.add("/cli/on-demand.bin", data)
    job = cli("create", "cli-on-demand").stdout.strip()
    assert cli("set", job, "--on-demand").exit_code == 0
    info = cli.json("info", job)
    validate(schema, "info", info)
    assert info["on_demand"] is True
    assert "on demand            yes" in cli("info", job).stdout
    local = str(dest / "od.bin")
    assert cli("add", job, server.url("/cli/on-demand.bin"), local).exit_code == 0
    asked = cli("ranges", job, "0", "--request", "150000:10000,0:1000", "--resume")
    assert asked.exit_code == 0, asked.output
    assert "asked for 2 ranges" in asked.stderr
    assert cli("wait", job, "--state", "SUSPENDED", "--timeout", "20").exit_code == 0
    shown = cli("ranges", job, "od.bin")
    assert shown.exit_code == 0, shown.output
    assert shown.stdout.splitlines() == ["0:1000", "150000:10000"]
    assert "11,000 bytes held in 2 range(s)" in shown.stderr
    outside = cli("ranges", job, "0", "--request", "199999:2")
    assert outside.exit_code == 1
    assert outside.stderr.startswith("BG_E_INVALID_RANGE (0x8020002B) in ranges: ")
    assert cli("ranges", job, local, "--position", "100000", "--resume").exit_code == 0
    assert cli("wait", job, "--timeout", "20").stdout.strip() == "TRANSFERRED"
    assert cli("ranges", job, "0").stdout.splitlines() == ["0:200000"]
    assert cli("set", job, "--no-on-demand").exit_code == 1
    assert cli("complete", job).exit_code == 0
    assert (dest / "od.bin").read_bytes() == data

    plain = cli("create", "cli-plain").stdout.strip()
    assert cli("add", plain, server.url("/cli/on-demand.bin"), str(dest / "plain")).exit_code == 0
    refused = cli("ranges", plain, "0", "--request", "0:10")
    assert refused.exit_code == 1
    assert "BG_E_RANDOM_ACCESS_NOT_SUPPORTED" in refused.stderr
    assert "--on-demand" in refused.stderr
    assert cli("cancel", plain).exit_code == 0
