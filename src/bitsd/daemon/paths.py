"""Where the daemon keeps its state, listens, and reads its configuration.

Rules (docs/control-api.md, "Where the daemon listens"):
- state folder: ``$BITSD_STATE_DIR``, else ``$XDG_STATE_HOME/bitsd``, else ``~/.local/state/bitsd``;
- control socket: ``$BITSD_SOCKET``, else ``$XDG_RUNTIME_DIR/bitsd/bitsd.sock``, else
  ``<state folder>/bitsd.sock``;
- config file: ``$BITSD_CONFIG``, else ``$XDG_CONFIG_HOME/bitsd/config.toml``, else
  ``~/.config/bitsd/config.toml``.
- An explicit argument (a command-line option) beats the environment. XDG variables that are not
  absolute paths are ignored, as the XDG Base Directory specification requires. Every path is
  made absolute at once, so a daemon that changes its working folder still finds its files.
- A folder the daemon creates for its state or its socket is mode 0700; an existing folder is
  used as it is (an override may point into a folder the user shares on purpose).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path

__all__ = [
    "CONFIG_FILE_NAME",
    "LOCK_FILE_NAME",
    "LOG_FILE_NAME",
    "SOCKET_FILE_NAME",
    "Paths",
    "ensure_private_dir",
    "resolve",
]

APP_DIR_NAME = "bitsd"
SOCKET_FILE_NAME = "bitsd.sock"
CONFIG_FILE_NAME = "config.toml"
LOCK_FILE_NAME = "daemon.lock"
LOG_FILE_NAME = "daemon.log"


@dataclasses.dataclass(frozen=True, slots=True)
class Paths:
    """The daemon's files, all absolute.

    Attributes:
        state_dir: jobs.sqlite, the lock file and (when detached) the log.
        socket: the control socket.
        config: the TOML configuration file (it need not exist).
    """

    state_dir: Path
    socket: Path
    config: Path

    @property
    def lock(self) -> Path:
        """The lock file that makes the daemon unique per state folder."""
        return self.state_dir / LOCK_FILE_NAME

    @property
    def log(self) -> Path:
        """Where a detached daemon writes its log."""
        return self.state_dir / LOG_FILE_NAME


def resolve(
    *,
    state_dir: str | os.PathLike[str] | None = None,
    socket: str | os.PathLike[str] | None = None,
    config: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
) -> Paths:
    """The daemon's paths from explicit arguments, then the environment, then the defaults.

    Args:
        state_dir, socket, config: explicit choices (``None``: look further).
        env: the environment to read (default ``os.environ``).
    """
    env = os.environ if env is None else env
    home = Path(env.get("HOME") or Path.home())

    def explicit(arg: str | os.PathLike[str] | None, var: str) -> Path | None:
        value = os.fspath(arg) if arg is not None else env.get(var)
        return _absolute(Path(value).expanduser()) if value else None

    def xdg(var: str, default: Path) -> Path:
        value = env.get(var, "")
        return Path(value) if os.path.isabs(value) else default

    state = explicit(state_dir, "BITSD_STATE_DIR") or (
        xdg("XDG_STATE_HOME", home / ".local" / "state") / APP_DIR_NAME
    )
    runtime = env.get("XDG_RUNTIME_DIR", "")
    sock = explicit(socket, "BITSD_SOCKET") or (
        Path(runtime) / APP_DIR_NAME / SOCKET_FILE_NAME
        if os.path.isabs(runtime)
        else state / SOCKET_FILE_NAME
    )
    conf = explicit(config, "BITSD_CONFIG") or (
        xdg("XDG_CONFIG_HOME", home / ".config") / APP_DIR_NAME / CONFIG_FILE_NAME
    )
    return Paths(_absolute(state), _absolute(sock), _absolute(conf))


def ensure_private_dir(path: Path) -> None:
    """Create the folder ``path`` with mode 0700 if it does not exist (missing parents get the
    default mode); leave an existing folder as it is.

    Raises:
        OSError: it cannot be created, or it exists and is not a folder.
    """
    try:
        path.mkdir(mode=0o700)
    except FileExistsError:
        if not path.is_dir():
            raise NotADirectoryError(f"{path} exists and is not a folder") from None
        return
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        ensure_private_dir(path)
        return
    path.chmod(0o700)  # mkdir's mode passes through the umask


def _absolute(path: Path) -> Path:
    return path if path.is_absolute() else Path.cwd() / path
