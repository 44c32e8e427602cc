"""The config file: every EngineConfig field and log_level; anything else is a clear error."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from bitsd import EngineConfig
from bitsd.daemon.config import ConfigError, DaemonConfig, load, parse


def test_missing_file_gives_the_defaults(tmp_path: Path) -> None:
    """No file is no error: every setting keeps its default."""
    assert load(tmp_path / "none.toml") == DaemonConfig()


def test_every_key_is_read(tmp_path: Path) -> None:
    """The keys of the issue set the engine's service defaults and the log level."""
    path = tmp_path / "c.toml"
    path.write_text(
        "max_background_jobs = 2\ntime_slice = 60\njob_inactivity_timeout = 86400.5\n"
        "default_minimum_retry_delay = 30\ndefault_no_progress_timeout = 3600\n"
        'notify_retry_interval = 0.2\nlog_level = "DEBUG"\n'
    )
    expected = EngineConfig(
        max_background_jobs=2,
        time_slice=60.0,
        job_inactivity_timeout=86400.5,
        default_minimum_retry_delay=30.0,
        default_no_progress_timeout=3600.0,
        notify_retry_interval=0.2,
    )
    assert load(path) == DaemonConfig(expected, "debug")


def test_settings_cover_every_engine_field() -> None:
    """engine_settings() names every field, so a reload restores defaults of removed keys."""
    settings = DaemonConfig().engine_settings()
    assert list(settings) == [f.name for f in dataclasses.fields(EngineConfig)]
    assert EngineConfig(**settings) == EngineConfig()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("max_jobs = 3", "unknown key 'max_jobs'"),
        ("[daemon]\nx = 1", "unknown key 'daemon'"),
        ('time_slice = "5m"', "time_slice must be a number, not '5m'"),
        ("max_background_jobs = 2.5", "max_background_jobs must be an integer, not 2.5"),
        ("max_background_jobs = true", "max_background_jobs must be an integer, not True"),
        ("time_slice = nan", "time_slice must be a number"),
        ("max_background_jobs = 0", "max_background_jobs must be > 0"),
        ('log_level = "loud"', "log_level must be one of debug, info, warning, error"),
        ("time_slice = ", "not valid TOML"),
    ],
)
def test_bad_files_name_the_file_and_the_key(tmp_path: Path, text: str, message: str) -> None:
    """Each mistake is a ConfigError naming the file and what is wrong."""
    path = tmp_path / "c.toml"
    path.write_text(text + "\n")
    with pytest.raises(ConfigError, match=str(path)) as info:
        load(path)
    assert message in str(info.value)


def test_unreadable_file_is_an_error(tmp_path: Path) -> None:
    """A config path that is a folder cannot be read: an error, not the defaults."""
    with pytest.raises(ConfigError, match="cannot read"):
        load(tmp_path)


def test_parse_checks_decoded_documents() -> None:
    """parse() is the same check for a document already decoded."""
    assert parse({"chunk_size": 4096}, source="x").engine.chunk_size == 4096
    with pytest.raises(ConfigError, match="x: unknown key 'y'"):
        parse({"y": 1}, source="x")
