"""Peer credentials: the daemon serves its own user only.

Rules:
- Every accepted connection's ``SO_PEERCRED`` uid (the peer's effective uid when it connected)
  is compared with the daemon's effective uid in ``connection_made``, before uvicorn reads a
  byte: another uid is logged (``event=peer.refused``) and the connection closed unanswered.
- The check lives in the HTTP protocol (uvicorn's httptools one, see
  ``bitsd.daemon.service``), which every connection starts with. A WebSocket is an HTTP
  connection that uvicorn upgrades in place (``handle_websocket_upgrade`` hands the same,
  already checked, transport to the ws protocol), so no route can bypass it.
- The socket file's mode (0600 in a 0700 folder) refuses other users first; this check is the
  second wall, for a socket made reachable by mistake.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import struct

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from bitsd.daemon import logs

__all__ = ["PeerCheckedHttpProtocol", "peer_credentials"]

log = logging.getLogger("bitsd.daemon")

_UCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


def peer_credentials(sock: socket.socket) -> tuple[int, int, int]:
    """The (pid, uid, gid) of the process at the other end of a Unix socket."""
    return _UCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size))


class PeerCheckedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, closing connections from any uid but the daemon's."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        pid, uid, _ = peer_credentials(transport.get_extra_info("socket"))
        if uid != os.geteuid():
            logs.event(log, "peer.refused", level=logging.WARNING, uid=uid, pid=pid)
            # Closing stops reading at once: the request, if any, is never parsed.
            transport.close()
