"""Where the daemon lives: explicit arguments, then BITSD_*, then XDG, then the home folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bitsd.daemon.paths import Paths, ensure_private_dir, resolve


def test_defaults_follow_the_home_folder() -> None:
    """With no XDG variables, everything is under ~/.local/state and ~/.config; the socket sits
    in the state folder."""
    assert resolve(env={"HOME": "/home/u"}) == Paths(
        Path("/home/u/.local/state/bitsd"),
        Path("/home/u/.local/state/bitsd/bitsd.sock"),
        Path("/home/u/.config/bitsd/config.toml"),
    )


def test_xdg_variables_move_each_file() -> None:
    """XDG_STATE_HOME, XDG_RUNTIME_DIR and XDG_CONFIG_HOME place the state, the socket (in a
    bitsd folder) and the config."""
    env = {
        "HOME": "/home/u",
        "XDG_STATE_HOME": "/xs",
        "XDG_RUNTIME_DIR": "/run/user/1000",
        "XDG_CONFIG_HOME": "/xc",
    }
    assert resolve(env=env) == Paths(
        Path("/xs/bitsd"), Path("/run/user/1000/bitsd/bitsd.sock"), Path("/xc/bitsd/config.toml")
    )


def test_relative_xdg_variables_are_ignored() -> None:
    """The XDG spec says relative paths in these variables are invalid: they are ignored."""
    env = {"HOME": "/h", "XDG_STATE_HOME": "rel", "XDG_RUNTIME_DIR": "x", "XDG_CONFIG_HOME": "c"}
    assert resolve(env=env) == resolve(env={"HOME": "/h"})


def test_bitsd_variables_beat_xdg_and_arguments_beat_both() -> None:
    """BITSD_STATE_DIR, BITSD_SOCKET and BITSD_CONFIG override XDG; arguments override them."""
    env = {
        "HOME": "/h",
        "XDG_RUNTIME_DIR": "/run/user/1",
        "BITSD_STATE_DIR": "/s",
        "BITSD_SOCKET": "/k/sock",
        "BITSD_CONFIG": "/c.toml",
    }
    assert resolve(env=env) == Paths(Path("/s"), Path("/k/sock"), Path("/c.toml"))
    assert resolve(state_dir="/a", socket="/b", config="/c", env=env) == Paths(
        Path("/a"), Path("/b"), Path("/c")
    )


def test_state_override_moves_the_fallback_socket() -> None:
    """Without XDG_RUNTIME_DIR the socket follows an overridden state folder."""
    assert resolve(env={"HOME": "/h", "BITSD_STATE_DIR": "/s"}).socket == Path("/s/bitsd.sock")


def test_relative_arguments_become_absolute(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A relative path is resolved against the working folder at once."""
    monkeypatch.chdir(tmp_path)
    paths = resolve(state_dir="st", socket="so", config="co", env={"HOME": "/h"})
    assert paths == Paths(tmp_path / "st", tmp_path / "so", tmp_path / "co")


def test_private_dir_is_created_0700_and_existing_one_is_left(tmp_path: Path) -> None:
    """A folder created for the daemon is 0700 (its missing parents too are created); an
    existing folder keeps its mode."""
    old = os.umask(0o022)
    try:
        ensure_private_dir(tmp_path / "a" / "b")
    finally:
        os.umask(old)
    assert (tmp_path / "a" / "b").stat().st_mode & 0o777 == 0o700
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    shared.chmod(0o755)
    ensure_private_dir(shared)
    assert shared.stat().st_mode & 0o777 == 0o755


def test_private_dir_refuses_a_file(tmp_path: Path) -> None:
    """A file where the folder should be is an error, not silently used."""
    (tmp_path / "f").write_text("x")
    with pytest.raises(NotADirectoryError, match="not a folder"):
        ensure_private_dir(tmp_path / "f")
