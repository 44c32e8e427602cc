"""systemd's readiness protocol (sd_notify), written by hand: one datagram per state change.

Rules:
- Only when ``NOTIFY_SOCKET`` is set (systemd sets it for ``Type=notify`` units); otherwise
  nothing happens.
- The address is a filesystem path, or an abstract socket when it starts with ``@``.
- Failing to notify is logged and never stops the daemon.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

from bitsd.daemon import logs

__all__ = ["notify"]

log = logging.getLogger("bitsd.daemon")


def notify(state: str, env: Mapping[str, str] | None = None) -> bool:
    """Send ``state`` (e.g. ``"READY=1"``) to the service manager.

    Returns:
        True if a datagram was sent.
    """
    address = (os.environ if env is None else env).get("NOTIFY_SOCKET", "")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    elif not address.startswith("/"):
        logs.event(log, "sdnotify.error", level=logging.WARNING, error="unsupported address")
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto(state.encode(), address)
    except OSError as exc:
        logs.event(log, "sdnotify.error", level=logging.WARNING, error=exc)
        return False
    return True
