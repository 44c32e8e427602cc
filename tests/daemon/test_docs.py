"""docs/daemon.md and the systemd unit cannot drift from the daemon."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from bitsd.daemon import config
from bitsd.daemon.cli import serve_command

DOCS = Path(__file__).resolve().parents[2] / "docs"
ISSUE_KEYS = {
    "max_background_jobs",
    "time_slice",
    "job_inactivity_timeout",
    "default_minimum_retry_delay",
    "default_no_progress_timeout",
    "notify_retry_interval",
    "log_level",
}


def test_config_table_names_real_keys_with_their_defaults() -> None:
    """Each row of the config table is a key the daemon accepts, and a literal default is the
    default the daemon applies; the issue's keys are all there."""
    text = (DOCS / "daemon.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `(\w+)` \| ([^|]+) \|", text, flags=re.MULTILINE)
    documented = {key: default.strip() for key, default in rows if key in ISSUE_KEYS}
    assert set(documented) == ISSUE_KEYS
    defaults = config.DaemonConfig()
    for key, default in documented.items():
        literal = default.split(" (")[0].strip("`")
        if literal.startswith("("):
            continue  # described, not a value
        value = tomllib.loads(f"v = {literal}")["v"]
        parsed = config.parse({key: value}, source="docs")
        assert parsed == defaults, key


def test_every_option_is_documented() -> None:
    """Each option of the serve command has a row in docs/daemon.md."""
    text = (DOCS / "daemon.md").read_text(encoding="utf-8")
    for option in serve_command.params:
        for name in option.opts:
            if name.startswith("--") and name != "--help":
                assert f"| `{name}" in text, name


def test_systemd_unit_waits_for_readiness_and_reloads_with_sighup() -> None:
    """The unit is Type=notify, starts ``bitsd serve``, reloads with SIGHUP and does not
    restart a daemon that refused to start (exit 2, 3 or 4)."""
    unit = (DOCS / "bitsd.service").read_text(encoding="utf-8")
    for line in (
        "Type=notify",
        "ExecStart=%h/.local/bin/bitsd serve",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "RestartPreventExitStatus=2 3 4",
        "WantedBy=default.target",
    ):
        assert f"\n{line}\n" in unit, line
