"""sd_notify written by hand: path and abstract addresses, and silence without NOTIFY_SOCKET."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from bitsd.daemon import sdnotify


def test_nothing_is_sent_without_notify_socket() -> None:
    """Outside systemd (no NOTIFY_SOCKET) notify does nothing."""
    assert not sdnotify.notify("READY=1", env={})


def test_datagram_reaches_a_path_address(tmp_path: Path) -> None:
    """A filesystem address gets the state as one datagram."""
    address = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as manager:
        manager.bind(str(address))
        assert sdnotify.notify("READY=1", env={"NOTIFY_SOCKET": str(address)})
        assert manager.recv(64) == b"READY=1"


def test_datagram_reaches_an_abstract_address() -> None:
    """An address starting with @ is an abstract socket (a NUL byte on the wire)."""
    name = f"bitsd-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as manager:
        manager.bind("\0" + name)
        assert sdnotify.notify("STOPPING=1", env={"NOTIFY_SOCKET": "@" + name})
        assert manager.recv(64) == b"STOPPING=1"


def test_failures_are_reported_not_raised(tmp_path: Path) -> None:
    """Nobody listening, or an address form bitsd does not speak: False, no exception."""
    assert not sdnotify.notify("READY=1", env={"NOTIFY_SOCKET": str(tmp_path / "none")})
    assert not sdnotify.notify("READY=1", env={"NOTIFY_SOCKET": "vsock:2:1234"})
