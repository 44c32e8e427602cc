"""``bitsd transfer``: blocking downloads, errors with advice, --async, Ctrl+C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tests.cli.conftest import BITSD, SUBPROCESS_TIMEOUT, Cli, body, job_id_of, validate
from tests.servers.faulty import Fault, FaultServer


def test_a_dropped_connection_is_waited_through_and_the_file_is_whole(
    cli: Cli, server: FaultServer, dest: Path
) -> None:
    """The server cuts the connection once mid-way: the transfer shows the transient error,
    the daemon retries after the retry delay (5 s, the BITS floor) with a range request, and
    the file ends byte-identical at its final name."""
    data = body(1_500_000, seed=11)
    server.add("/cli/drop.bin", data)
    server.set_fault("/cli/drop.bin", Fault(drop_after=400_000, times=1))
    result = cli("transfer", server.url("/cli/drop.bin"), "-d", str(dest), "--retry-delay", "5")
    assert result.exit_code == 0, result.output
    target = dest / "drop.bin"
    assert result.stdout.splitlines() == [str(target)]
    assert "transient error, waiting: " in result.stderr
    assert target.read_bytes() == data
    ranged = [r for r in server.requests_for("/cli/drop.bin") if r.method == "GET" and r.range]
    assert ranged, "the retry should resume with a Range request"


def test_a_404_exits_1_with_one_line_and_keeps_the_job(
    cli: Cli, server: FaultServer, dest: Path, schema: Mapping[str, Any]
) -> None:
    """A missing file: exit 1, the one-line error with its advice, and the job stays in ERROR
    for ``bitsd error`` (whose JSON validates against the schema)."""
    url = server.url("/cli/missing.bin")
    result = cli("transfer", url, "-d", str(dest))
    assert result.exit_code == 1, result.output
    job = job_id_of(result.stderr.splitlines())
    last = result.stderr.splitlines()[-1]
    assert last == (
        f"BG_E_HTTP_ERROR_404 (0x80190194) in REMOTE_FILE: the server has no file at {url}; "
        f"fix the URL and run bitsd resume {job}"
    )
    assert "Traceback" not in result.output
    doc = cli.json("error", job)
    validate(schema, "error", doc)
    assert doc["state"] == "ERROR"
    assert doc["error"]["name"] == "BG_E_HTTP_ERROR_404"
    assert doc["message"] == last
    assert cli("cancel", job).exit_code == 0


def test_cancel_on_error_removes_the_job(cli: Cli, server: FaultServer, dest: Path) -> None:
    """--cancel-on-error: the failed job is cancelled, the line says so, the job is gone."""
    result = cli(
        "transfer", server.url("/cli/missing-too.bin"), "-d", str(dest), "--cancel-on-error"
    )
    assert result.exit_code == 1
    job = job_id_of(result.stderr.splitlines())
    assert result.stderr.splitlines()[-1].endswith("; the job was cancelled (--cancel-on-error)")
    assert cli("info", job).exit_code == 4


def test_async_returns_at_once_and_wait_and_complete_finish_it(
    cli: Cli, server: FaultServer, dest: Path, schema: Mapping[str, Any]
) -> None:
    """--async --json prints the started job; wait --json sees it TRANSFERRED; complete puts
    the file at its name."""
    data = body(200_000, seed=12)
    server.add("/cli/async.bin", data)
    target = dest / "renamed.bin"
    doc = cli.json(
        "transfer", server.url("/cli/async.bin"), "-o", str(target), "--async", "--priority", "high"
    )
    validate(schema, "transfer", doc)
    assert [f["local_name"] for f in doc["files"]] == [str(target)]
    job = doc["job"]
    assert cli.json("info", job)["priority"] == "HIGH"
    waited = cli.json("wait", job, "--timeout", "20")
    validate(schema, "wait", waited)
    assert waited == {"job": job, "state": "TRANSFERRED", "timed_out": False}
    result = cli("complete", job)
    assert result.exit_code == 0, result.output
    assert target.read_bytes() == data


def test_transfer_as_a_process_prints_the_final_paths(
    cli: Cli, server: FaultServer, dest: Path
) -> None:
    """The installed entry point, two files in one job, stderr not a terminal: plain progress
    lines on stderr, the final paths on stdout, exit 0."""
    first, second = body(70_000, seed=13), body(90_000, seed=14)
    server.add("/cli/p/one.bin", first)
    server.add("/cli/p/two words.bin", second)
    done = cli.process(
        "transfer",
        server.url("/cli/p/one.bin"),
        server.base_url + "/cli/p/two%20words.bin",
        "-d",
        str(dest),
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [str(dest / "one.bin"), str(dest / "two words.bin")]
    assert "\x1b[" not in done.stderr  # no live bars when stderr is a pipe
    assert "state: TRANSFERRED" in done.stderr
    assert (dest / "one.bin").read_bytes() == first
    assert (dest / "two words.bin").read_bytes() == second


def test_ctrl_c_leaves_the_job_to_the_daemon(
    cli: Cli, server: FaultServer, dest: Path, schema: Mapping[str, Any]
) -> None:
    """SIGINT while waiting: exit 130, the message names the job, and the job goes on."""
    server.add("/cli/slow.bin", body(2_000_000, seed=15))
    server.set_fault("/cli/slow.bin", Fault(rate=50_000))
    proc = subprocess.Popen(
        [str(BITSD), "transfer", server.url("/cli/slow.bin"), "-d", str(dest)],
        env={**os.environ, **cli.env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        first = proc.stderr.readline()
        job = job_id_of([first])
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=SUBPROCESS_TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert f"the job goes on in the background: bitsd info {job}" in err
    assert "Traceback" not in err
    info = json.loads(cli("info", job, "--json").stdout)
    validate(schema, "info", info)
    assert info["state"] in ("QUEUED", "CONNECTING", "TRANSFERRING")
    assert cli("cancel", job).exit_code == 0


def test_transfer_json_reports_the_completed_job_and_the_failed_one(
    cli: Cli, server: FaultServer, dest: Path, schema: Mapping[str, Any]
) -> None:
    """--json without --async: no progress, one document at the end; ACKNOWLEDGED with the
    files after Complete (exit 0), or ERROR with the error and its line (exit 1)."""
    data = body(30_000, seed=16)
    server.add("/cli/json.bin", data)
    done = cli("transfer", server.url("/cli/json.bin"), "-d", str(dest), "--json")
    assert done.exit_code == 0, done.output
    assert done.stderr == ""
    doc = json.loads(done.stdout)
    validate(schema, "transfer", doc)
    assert doc["state"] == "ACKNOWLEDGED"
    assert [(f["local_name"], f["progress"]["completed"]) for f in doc["files"]] == [
        (str(dest / "json.bin"), True)
    ]
    assert (dest / "json.bin").read_bytes() == data
    failed = cli("transfer", server.url("/cli/json-missing.bin"), "-d", str(dest), "--json")
    assert failed.exit_code == 1
    doc = json.loads(failed.stdout)
    validate(schema, "transfer", doc)
    assert doc["state"] == "ERROR"
    assert doc["error"]["name"] == "BG_E_HTTP_ERROR_404"
    assert failed.stderr.strip() == doc["message"]
    assert cli("cancel", doc["job"]).exit_code == 0
