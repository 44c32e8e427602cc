"""One daemon per state folder, and a control socket only its owner can open."""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

import pytest

from bitsd.daemon.listen import ListenError, bind_control_socket, remove_control_socket
from bitsd.daemon.lock import DaemonLock, LockHeldError


def test_second_lock_names_the_holder(tmp_path: Path) -> None:
    """While one DaemonLock holds the file, another fails at once with the holder's pid; after
    release it can be taken again."""
    path = tmp_path / "daemon.lock"
    with DaemonLock(path) as first:
        assert first.held
        assert path.read_text() == f"{os.getpid()}\n"
        with pytest.raises(LockHeldError) as info:
            DaemonLock(path).acquire()
        assert str(info.value) == f"another daemon (pid {os.getpid()}) holds {path}"
        assert info.value.pid == os.getpid()
    with DaemonLock(path) as again:
        assert again.held


def test_unreadable_holder_pid_is_said_to_be_unknown(tmp_path: Path) -> None:
    """A holder that has not written its pid yet is reported as unknown, after a short wait."""
    path = tmp_path / "daemon.lock"
    with DaemonLock(path):
        path.write_text("")
        with pytest.raises(LockHeldError, match=r"another daemon \(pid unknown\)"):
            DaemonLock(path).acquire()


def test_socket_is_0600_in_a_new_0700_folder(tmp_path: Path) -> None:
    """The socket file is private from its first instant, whatever the umask."""
    path = tmp_path / "run" / "s.sock"
    old = os.umask(0o000)
    try:
        sock = bind_control_socket(path)
    finally:
        os.umask(old)
    with sock:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert os.umask(old) == old, "the umask is restored"


def test_stale_socket_is_replaced(tmp_path: Path) -> None:
    """A socket file nobody listens on (a dead daemon's) is unlinked and bound anew."""
    path = tmp_path / "s.sock"
    with socket.socket(socket.AF_UNIX) as dead:
        dead.bind(str(path))
    with bind_control_socket(path) as sock:
        sock.listen()
        with socket.socket(socket.AF_UNIX) as client:
            client.connect(str(path))
    remove_control_socket(path)
    assert not path.exists()
    remove_control_socket(path)  # already gone: nothing to do


def test_a_file_that_is_not_a_socket_is_never_deleted(tmp_path: Path) -> None:
    """A regular file at the socket path is an error and stays."""
    path = tmp_path / "s.sock"
    path.write_text("precious")
    with pytest.raises(ListenError, match="exists and is not a socket"):
        bind_control_socket(path)
    assert path.read_text() == "precious"


def test_too_long_path_is_refused_with_the_reason(tmp_path: Path) -> None:
    """sun_path holds 107 bytes and a NUL: a longer path gets a message that says so."""
    path = tmp_path / ("x" * 120)
    with pytest.raises(ListenError, match="Unix sockets allow at most 107"):
        bind_control_socket(path)
