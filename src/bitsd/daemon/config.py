"""The daemon's configuration file: TOML, top-level keys, every one optional.

Rules:
- The keys are the fields of :class:`bitsd.EngineConfig` (the service defaults:
  ``max_background_jobs``, ``time_slice``, ``job_inactivity_timeout``,
  ``default_minimum_retry_delay``, ``default_no_progress_timeout``, ``notify_retry_interval``, …)
  and ``log_level``. Times are seconds.
- A field of a plain type (integer, number, boolean, string) is type-checked here, so a wrong
  type gets a message naming the key; a structured field (a table, such as
  ``bandwidth_schedule``) is checked and converted by EngineConfig itself, which knows its form.
- A file is read whole and checked whole before any of it is used: an unknown key, a value of
  the wrong type or out of range is a :class:`ConfigError` naming the file and the key. At start
  the daemon then refuses to start (exit status 2); on SIGHUP it logs the error and keeps the
  configuration it had.
- A missing file means the defaults; a key left out means its default (also on reload: removing
  a key from the file restores the default).
"""

from __future__ import annotations

import dataclasses
import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bitsd._policy import EngineConfig

__all__ = ["DEFAULT_LOG_LEVEL", "LOG_LEVELS", "ConfigError", "DaemonConfig", "load", "parse"]

LOG_LEVELS = ("debug", "info", "warning", "error")
DEFAULT_LOG_LEVEL = "info"

_ENGINE_TYPES: dict[str, object] = typing.get_type_hints(EngineConfig)


class ConfigError(ValueError):
    """The configuration file cannot be used; the message names the file and the key."""


@dataclasses.dataclass(frozen=True, slots=True)
class DaemonConfig:
    """A checked configuration.

    Attributes:
        engine: the engine's settings (defaults where the file says nothing).
        log_level: one of :data:`LOG_LEVELS`.
    """

    engine: EngineConfig = dataclasses.field(default_factory=EngineConfig)
    log_level: str = DEFAULT_LOG_LEVEL

    def engine_settings(self) -> dict[str, Any]:
        """Every engine setting by name, for ``Engine.reconfigure(**settings)``."""
        return {f.name: getattr(self.engine, f.name) for f in dataclasses.fields(self.engine)}


def load(path: Path) -> DaemonConfig:
    """Read and check the file at ``path``; a missing file gives the defaults.

    Raises:
        ConfigError: the file cannot be read, is not TOML, or has a bad key or value.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return DaemonConfig()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the configuration: {exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return parse(data, source=str(path))


def parse(data: Mapping[str, object], *, source: str) -> DaemonConfig:
    """Check the decoded keys of a configuration file.

    Args:
        data: the TOML document.
        source: the file's name, for messages.

    Raises:
        ConfigError: an unknown key, a value of the wrong type or out of range.
    """
    engine: dict[str, Any] = {}
    log_level = DEFAULT_LOG_LEVEL
    for key, value in data.items():
        if key == "log_level":
            if not isinstance(value, str) or value.lower() not in LOG_LEVELS:
                raise ConfigError(
                    f"{source}: log_level must be one of {', '.join(LOG_LEVELS)}, not {value!r}"
                )
            log_level = value.lower()
        elif key in _ENGINE_TYPES:
            engine[key] = _engine_value(key, value, source)
        else:
            known = ", ".join(sorted([*_ENGINE_TYPES, "log_level"]))
            raise ConfigError(f"{source}: unknown key {key!r} (known keys: {known})")
    try:
        return DaemonConfig(EngineConfig(**engine), log_level)
    except ValueError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def _engine_value(key: str, value: object, source: str) -> object:
    """``value`` if it fits the type of the EngineConfig field ``key``."""
    kinds = _plain_kinds(_ENGINE_TYPES[key])
    if kinds == {int}:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{source}: {key} must be an integer, not {value!r}")
    if kinds == {float}:
        if isinstance(value, int | float) and not isinstance(value, bool) and value == value:
            return float(value)
        raise ConfigError(f"{source}: {key} must be a number, not {value!r}")
    if kinds == {bool}:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{source}: {key} must be true or false, not {value!r}")
    if kinds == {str}:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{source}: {key} must be a string, not {value!r}")
    try:  # a structured setting: EngineConfig knows its config-file form
        setting: dict[str, Any] = {key: value}
        return getattr(EngineConfig(**setting), key)
    except (ValueError, TypeError) as exc:
        message = str(exc) if key in str(exc) else f"{key}: {exc}"
        raise ConfigError(f"{source}: {message}") from None


def _plain_kinds(hint: object) -> set[object]:
    """The types a field may hold, without None (TOML has no null: leave the key out), or an
    empty set for a structured type."""
    members = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    kinds = {m for m in members if m is not type(None)}
    return kinds if kinds <= {int, float, bool, str} and len(kinds) == 1 else set()
