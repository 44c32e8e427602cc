"""The job options of issue 6 on the command line, against the real daemon: ranged and checked
files, credentials (never shown), custom headers (they reach the server), proxy, TLS, limits and
policies, replace-prefix and validate; every --json document still validates."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from tests.cli.conftest import BITSD, SUBPROCESS_TIMEOUT, Cli, body, job_id_of, validate
from tests.cli.terminal import Screen
from tests.servers.faulty import FaultServer

# The Job fields issue 6 added, with their defaults (what `bitsd info --json` shows for a new job).
DEFAULTS = {
    "maximum_download_size": None,
    "custom_headers": None,
    "custom_headers_write_only": False,
    "http_method": None,
    "security_flags": 0,
    "proxy_usage": 0,
    "proxy_list": None,
    "proxy_bypass": None,
    "ca_bundle": None,
    "client_certificate": None,
    "transfer_policy": 0x80000067,
    "bandwidth_limit": None,
}


def _create(cli: Cli, name: str) -> str:
    result = cli("create", name)
    assert result.exit_code == 0, result.output
    return result.stdout.strip()


def _finish(cli: Cli, job: str) -> None:
    """Resume, wait for TRANSFERRED and complete."""
    assert cli("resume", job).exit_code == 0
    waited = cli("wait", job, "--timeout", "20")
    assert waited.stdout.strip() == "TRANSFERRED", waited.output
    done = cli("complete", job)
    assert done.exit_code == 0, done.output


def test_add_with_ranges_makes_the_concatenated_file(
    cli: Cli, server: FaultServer, dest: Path, schema: Mapping[str, Any]
) -> None:
    """`add --range` (repeated, comma-separated, `eof`) downloads only those bytes, in the order
    given; --sha256 does not go with --range; a bad range is a usage error."""
    data = body(300_000, seed=41)
    server.add("/cli/ranges.bin", data)
    job = _create(cli, "cli-ranges")
    target = dest / "ranges.bin"
    added = cli(
        "add",
        job,
        server.url("/cli/ranges.bin"),
        str(target),
        "--range",
        "200000:1000",
        "--range",
        "10:90,250000:eof",
    )
    assert added.exit_code == 0, added.output
    assert "(3 ranges)" in added.stderr
    files = cli.json("files", job)
    validate(schema, "files", files)
    _finish(cli, job)
    assert target.read_bytes() == data[200_000:201_000] + data[10:100] + data[250_000:]
    both = cli("add", "x", "http://h/a", str(dest / "a"), "--range", "0:1", "--sha256", "0" * 64)
    assert both.exit_code == 2
    assert "does not go with --range" in both.stderr
    for bad in ("0-100", "a:1", "5:0", "1:"):
        result = cli("add", "x", "http://h/a", str(dest / "a"), "--range", bad)
        assert result.exit_code == 2, bad
        assert "Usage:" in result.stderr


def test_sha256_accepts_the_right_file_and_fails_the_wrong_one(
    cli: Cli, server: FaultServer, dest: Path
) -> None:
    """`transfer --sha256` completes when the digest matches; a mismatch ends in ERROR with
    BG_E_VALIDATION_FAILED and advice (exit 1); `add --sha256` takes it too."""
    data = body(50_000, seed=42)
    server.add("/cli/checked.bin", data)
    digest = hashlib.sha256(data).hexdigest()
    good = cli(
        "transfer", server.url("/cli/checked.bin"), "-d", str(dest), "--sha256", digest.upper()
    )
    assert good.exit_code == 0, good.output
    assert (dest / "checked.bin").read_bytes() == data
    wrong = cli(
        "transfer",
        server.url("/cli/checked.bin"),
        "-o",
        str(dest / "wrong.bin"),
        "--sha256",
        "0" * 64,
        "--cancel-on-error",
    )
    assert wrong.exit_code == 1
    assert wrong.stderr.splitlines()[-1].startswith("BG_E_VALIDATION_FAILED (0x80200053) in ")
    assert not (dest / "wrong.bin").exists()
    job = _create(cli, "cli-sha-add")
    added = cli(
        "add", job, server.url("/cli/checked.bin"), str(dest / "add.bin"), "--sha256", digest
    )
    assert added.exit_code == 0, added.output
    _finish(cli, job)
    assert (dest / "add.bin").read_bytes() == data
    two = cli("transfer", "http://h/a", "http://h/b", "--sha256", digest)
    assert two.exit_code == 2
    assert "--sha256 checks one file" in two.stderr


def _prompted(cli: Cli, args: list[str], password: str) -> str:
    """Run ``bitsd ARGS`` on a pseudo-terminal, type ``password`` at both prompts, and return
    everything the terminal showed."""
    master, slave = os.openpty()
    proc = subprocess.Popen(
        [str(BITSD), *args],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env={**os.environ, **cli.env},
        start_new_session=True,
    )
    os.close(slave)
    screen = Screen(master)
    try:
        first = screen.read_until(b"Password for ")
        os.write(master, password.encode() + b"\n")
        screen.read_until(b"Repeat the password", first)
        os.write(master, password.encode() + b"\n")
        assert proc.wait(SUBPROCESS_TIMEOUT) == 0, screen.data
        screen.drain()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    return screen.data.decode(errors="replace")


def test_credentials_from_stdin_and_prompt_are_never_shown(
    cli: Cli, server: FaultServer, dest: Path, schema: Mapping[str, Any]
) -> None:
    """Credentials set with --password-stdin open a Basic-protected file; the password is in
    no output: not the command's, not `info`, not `info --json`, not `list --json`. On a
    terminal the prompt reads it twice without echo; without a terminal and without
    --password-stdin the command refuses; remove forgets them (and says when there were
    none)."""
    password = "s3cret-from-stdin"  # noqa: S105 (a test account)
    data = body(20_000, seed=43)
    server.add("/cli/private.bin", data)
    server.protect("/cli/private.bin", ("alice", password))
    job = _create(cli, "cli-creds")
    result = cli(
        "credentials",
        job,
        "set",
        "--target",
        "server",
        "--scheme",
        "basic",
        "--user",
        "alice",
        "--password-stdin",
        input=password + "\n",
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"job {job}: SERVER BASIC credentials set for user alice"
    shown = [result.stdout, result.stderr]
    info = cli.json("info", job)
    validate(schema, "info", info)
    listed = cli.json("list")
    validate(schema, "list", listed)
    shown += [json.dumps(info), json.dumps(listed), cli("info", job).stdout]
    assert cli("add", job, server.url("/cli/private.bin"), str(dest / "private.bin")).exit_code == 0
    _finish(cli, job)
    assert (dest / "private.bin").read_bytes() == data

    other = _create(cli, "cli-creds-prompt")
    typed = "typed-at-the-prompt"
    screen = _prompted(
        cli,
        ["credentials", other, "set", "--target", "proxy", "--scheme", "ntlm", "--user", "bob"],
        typed,
    )
    assert f"job {other}: PROXY NTLM credentials set for user bob" in screen
    shown += [screen, json.dumps(cli.json("info", other))]
    for text in shown:
        assert password not in text
        assert typed not in text
    no_terminal = cli(
        "credentials", other, "set", "--target", "server", "--scheme", "basic", "--user", "x"
    )
    assert no_terminal.exit_code == 2
    assert "pipe it with --password-stdin" in no_terminal.stderr
    removed = cli("credentials", other, "remove", "--target", "proxy", "--scheme", "ntlm")
    assert removed.stdout.strip() == f"job {other}: PROXY NTLM credentials removed"
    again = cli("credentials", other, "remove", "--target", "proxy", "--scheme", "ntlm")
    assert again.exit_code == 0
    assert again.stdout.strip() == f"job {other}: had no PROXY NTLM credentials"
    passport = cli("credentials", other, "set", "--target", "server", "--scheme", "passport")
    assert passport.exit_code == 2
    assert cli("cancel", other).exit_code == 0


def test_custom_headers_reach_the_server_and_can_be_write_only(
    cli: Cli, server: FaultServer, dest: Path, tmp_path: Path, schema: Mapping[str, Any]
) -> None:
    """`transfer --header` sends the headers with every request; `set --custom-headers` and
    `--custom-headers-file` store them (info shows them), `--custom-headers-write-only` hides
    them for good; a line that is no header is a usage error."""
    server.add("/cli/headers.bin", body(10_000, seed=44))
    done = cli(
        "transfer",
        server.url("/cli/headers.bin"),
        "-d",
        str(dest),
        "--header",
        "X-Bitsd-Test: one",
        "--header",
        "X-Other:  two words",
    )
    assert done.exit_code == 0, done.output
    seen = [r.headers for r in server.requests_for("/cli/headers.bin") if r.method == "GET"]
    assert seen
    assert all(h.get("x-bitsd-test") == "one" and h.get("x-other") == "two words" for h in seen)

    job = _create(cli, "cli-headers")
    listing = tmp_path / "headers.txt"
    listing.write_text("X-From-File: 3\n\nX-Also: 4\n")
    result = cli(
        "set",
        job,
        "--custom-headers",
        "X-A: 1",
        "--custom-headers",
        "X-B: 2",
        "--custom-headers-file",
        str(listing),
    )
    assert result.exit_code == 0, result.output
    info = cli.json("info", job)
    validate(schema, "info", info)
    assert info["custom_headers"] == "X-A: 1\r\nX-B: 2\r\nX-From-File: 3\r\nX-Also: 4\r\n"
    assert "X-From-File: 3" in cli("info", job).stdout
    hidden = cli("set", job, "--custom-headers-write-only")
    assert hidden.exit_code == 0, hidden.output
    info = cli.json("info", job)
    validate(schema, "info", info)
    assert (info["custom_headers"], info["custom_headers_write_only"]) == (None, True)
    assert "(write-only)" in cli("info", job).stdout
    assert "X-A" not in cli("info", job).stdout
    bad = cli("set", job, "--custom-headers", "no colon here")
    assert bad.exit_code == 2
    assert "is not a 'Name: value' header" in bad.stderr
    assert cli("cancel", job).exit_code == 0


def test_set_every_http_option_and_back(
    cli: Cli, tmp_path: Path, schema: Mapping[str, Any]
) -> None:
    """`set` changes every new property (info --json and the table show them) and puts them
    back; the daemon's refusals come back as BITS errors (exit 1), contradictions as usage
    errors (exit 2)."""
    job = _create(cli, "cli-http")
    pem = {name: tmp_path / f"{name}.pem" for name in ("ca", "cert", "key")}
    for path in pem.values():
        path.write_text("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n")
    info = cli.json("info", job)
    assert {k: info[k] for k in DEFAULTS} == DEFAULTS
    result = cli(
        "set",
        job,
        "--max-download-size",
        "10MB",
        "--bandwidth-limit",
        "2MiB/s",
        "--transfer-policy",
        "always",
        "--http-method",
        "HEAD",
        "--security-flags",
        "ignore_unknown_ca|BG_HTTP_REDIRECT_POLICY_DISALLOW",
        "--proxy-list",
        "http://127.0.0.1:3128",
        "--proxy-bypass",
        "<local> *.example.org",
        "--ca-bundle",
        str(pem["ca"]),
        "--client-cert",
        str(pem["cert"]),
        "--client-key",
        str(pem["key"]),
    )
    assert result.exit_code == 0, result.output
    info = cli.json("info", job)
    validate(schema, "info", info)
    assert {k: info[k] for k in DEFAULTS} == {
        "maximum_download_size": 10_000_000,
        "custom_headers": None,
        "custom_headers_write_only": False,
        "http_method": "HEAD",
        "security_flags": 0x208,
        "proxy_usage": 2,
        "proxy_list": "http://127.0.0.1:3128",
        "proxy_bypass": "<local> *.example.org",
        "ca_bundle": str(pem["ca"]),
        "client_certificate": str(pem["cert"]),
        "transfer_policy": 0x800000FF,
        "bandwidth_limit": 2 * 1024 * 1024,
    }
    assert info["priority"] == "FOREGROUND"  # a custom method makes the job FOREGROUND
    table = cli("info", job).stdout
    for row in (
        "max download size    10.0 MB (10,000,000 B)",
        "bandwidth limit      2.1 MB/s (2,097,152 B/s)",
        "transfer policy      ALWAYS (0x800000FF)",
        "http method          HEAD",
        "security flags       0x208 (IGNORE_UNKNOWN_CA|REDIRECT_POLICY_DISALLOW)",
        "proxy                OVERRIDE http://127.0.0.1:3128 (bypass: <local> *.example.org)",
        f"client certificate   {pem['cert']}",
    ):
        assert row in table, table
    back = cli(
        "set",
        job,
        "--max-download-size",
        "none",
        "--bandwidth-limit",
        "none",
        "--transfer-policy",
        "standard",
        "--http-method",
        "",
        "--security-flags",
        "0",
        "--proxy-usage",
        "preconfig",
        "--ca-bundle",
        "",
        "--no-client-cert",
    )
    assert back.exit_code == 0, back.output
    info = cli.json("info", job)
    validate(schema, "info", info)
    assert {k: info[k] for k in DEFAULTS} == DEFAULTS
    refused = cli("set", job, "--proxy-usage", "no-proxy", "--proxy-list", "http://p:1")
    assert refused.exit_code == 1
    assert refused.stderr.startswith("E_INVALIDARG (0x80070057) in set: ")
    crl = cli("set", job, "--security-flags", "ENABLE_CRL_CHECK")
    assert crl.exit_code == 1
    assert crl.stderr.startswith("E_NOTIMPL (0x80004001) in set: ")
    missing = cli("set", job, "--ca-bundle", str(tmp_path / "none.pem"))
    assert missing.exit_code == 1
    assert cli("cancel", job).exit_code == 0


@pytest.mark.parametrize(
    "args",
    [
        ["--client-key", "/k.pem"],
        ["--client-cert", "/c.pem", "--no-client-cert"],
        ["--proxy-bypass", "<local>"],
        ["--max-download-size", "0"],
        ["--max-download-size", "lots"],
        ["--bandwidth-limit", "fast"],
        ["--transfer-policy", "cheap"],
        ["--security-flags", "IGNORE_EVERYTHING"],
        ["--proxy-usage", "sometimes"],
    ],
)
def test_contradictory_or_bad_http_options_are_usage_errors(cli: Cli, args: list[str]) -> None:
    """Checked before the daemon is asked (the job need not exist): exit 2 with usage."""
    result = cli("set", "no-such-job", *args)
    assert result.exit_code == 2, result.output
    assert "Usage:" in result.stderr


def test_replace_prefix_points_the_files_at_another_server(
    cli: Cli, server: FaultServer, dest: Path
) -> None:
    """replace-prefix changes the start of the remote names (then the job downloads from the
    new server); a prefix no name has changes nothing and says so."""
    data = body(30_000, seed=45)
    server.add("/cli/moved/file.bin", data)
    job = _create(cli, "cli-prefix")
    dead = "http://127.0.0.1:9/cli/moved/file.bin"
    assert cli("add", job, dead, str(dest / "moved.bin")).exit_code == 0
    result = cli("replace-prefix", job, "http://127.0.0.1:9/", server.base_url + "/")
    assert result.exit_code == 0, result.output
    assert "now start with" in result.stdout
    files = cli.json("files", job)["files"]
    assert [f["remote_name"] for f in files] == [server.url("/cli/moved/file.bin")]
    nothing = cli("replace-prefix", job, "https://elsewhere/", "https://there/")
    assert nothing.exit_code == 0
    assert "nothing changed" in nothing.stdout
    _finish(cli, job)
    assert (dest / "moved.bin").read_bytes() == data


def test_validate_accepts_and_rejects_a_transferred_file(
    cli: Cli, server: FaultServer, dest: Path, schema: Mapping[str, Any]
) -> None:
    """validate FILE (by index or local name): before the file is transferred E_PENDING (exit
    1); --invalid puts the job in ERROR with BG_E_VALIDATION_FAILED; resume downloads it again;
    --valid is reported back."""
    data = body(40_000, seed=46)
    server.add("/cli/validate.bin", data)
    job = _create(cli, "cli-validate")
    target = dest / "validate.bin"
    assert cli("add", job, server.url("/cli/validate.bin"), str(target)).exit_code == 0
    early = cli("validate", job, "0", "--valid")
    assert early.exit_code == 1
    assert early.stderr.startswith("E_PENDING (0x8000000A) in validate: ")
    assert cli("resume", job).exit_code == 0
    assert cli("wait", job, "--timeout", "20").stdout.strip() == "TRANSFERRED"
    assert cli("validate", job, "0").stdout.strip() == f"{target}: not validated"
    rejected = cli("validate", job, "validate.bin", "--invalid")
    assert rejected.exit_code == 0, rejected.output
    assert "BG_E_VALIDATION_FAILED" in rejected.stdout
    error = cli.json("error", job)
    validate(schema, "error", error)
    assert (error["state"], error["error"]["name"]) == ("ERROR", "BG_E_VALIDATION_FAILED")
    assert cli("resume", job).exit_code == 0
    assert cli("wait", job, "--timeout", "20").stdout.strip() == "TRANSFERRED"
    assert cli("validate", job, str(target), "--valid").exit_code == 0
    assert cli("validate", job, "0").stdout.strip() == f"{target}: valid"
    unknown = cli("validate", job, "7")
    assert unknown.exit_code == 2
    assert cli("complete", job).exit_code == 0
    assert target.read_bytes() == data


def test_a_401_advises_bitsd_credentials(cli: Cli, server: FaultServer, dest: Path) -> None:
    """A protected file without credentials: the line says how to give them."""
    server.add("/cli/locked.bin", b"x" * 100)
    server.protect("/cli/locked.bin", ("carol", "pw"))
    result = cli("transfer", server.url("/cli/locked.bin"), "-d", str(dest))
    assert result.exit_code == 1
    job = job_id_of(result.stderr.splitlines())
    last = result.stderr.splitlines()[-1]
    assert last.startswith("BG_E_HTTP_ERROR_401 (0x80190191) in REMOTE_FILE: ")
    assert last.endswith(
        f"give them with bitsd credentials {job} set --target server --scheme SCHEME "
        f"--user NAME, then run bitsd resume {job}"
    )
    assert cli("cancel", job).exit_code == 0
