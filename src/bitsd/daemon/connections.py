"""The control socket's connections: the daemon's own user only, and no connection held idle.

Rules:
- Every accepted connection's ``SO_PEERCRED`` uid (the peer's effective uid when it connected)
  is compared with the daemon's effective uid in ``connection_made``, before uvicorn reads a
  byte: another uid is logged (``event=peer.refused``) and the connection closed unanswered.
- The checks live in the HTTP protocol (uvicorn's httptools one, see
  ``bitsd.daemon.service``), which every connection starts with. A WebSocket is an HTTP
  connection that uvicorn upgrades in place (``handle_websocket_upgrade`` hands the same,
  already checked, transport to the ws protocol), so no route can bypass them.
- The socket file's mode (0600 in a 0700 folder) refuses other users first; the uid check is
  the second wall, for a socket made reachable by mistake.
- A client has :data:`REQUEST_READ_TIMEOUT` seconds from connecting, or from the first byte of
  a request, to send that whole request; else the connection is closed
  (``event=peer.too_slow``). Between requests uvicorn's keep-alive timeout applies, and an
  upgraded WebSocket has no such deadline. Without it, a client that connects and sends
  nothing (or half a head) held a connection and its buffers for as long as the daemon ran.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import struct

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from bitsd._deadline import Deadline
from bitsd.daemon import logs

__all__ = ["REQUEST_READ_TIMEOUT", "PeerCheckedHttpProtocol", "peer_credentials"]

log = logging.getLogger("bitsd.daemon")

_UCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid

# Seconds to send a whole request once connected or once it began: bitsd's choice (nginx gives
# 60 s for a head and 60 s between body reads); control requests are a few hundred bytes.
REQUEST_READ_TIMEOUT = 30.0


def peer_credentials(sock: socket.socket) -> tuple[int, int, int]:
    """The (pid, uid, gid) of the process at the other end of a Unix socket."""
    return _UCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size))


class PeerCheckedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, closing connections from any uid but the daemon's and
    connections that do not send a whole request in time."""

    # One deadline per connection, not a timer per request (bitsd._deadline): set when a
    # request may begin, cleared when it is whole.
    _deadline: Deadline | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        pid, uid, _ = peer_credentials(transport.get_extra_info("socket"))
        if uid != os.geteuid():
            logs.event(log, "peer.refused", level=logging.WARNING, uid=uid, pid=pid)
            # Closing stops reading at once: the request, if any, is never parsed.
            transport.close()
            return
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_clock()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm()

    def on_message_complete(self) -> None:
        if self._deadline is not None:
            self._deadline.stop()
        super().on_message_complete()

    def handle_websocket_upgrade(self) -> None:
        self._stop_clock()
        super().handle_websocket_upgrade()

    def _arm(self) -> None:
        if self._deadline is None:
            self._deadline = Deadline(self.loop, self._too_slow)
        self._deadline.start(REQUEST_READ_TIMEOUT)

    def _stop_clock(self) -> None:
        if self._deadline is not None:
            self._deadline.close()

    def _too_slow(self) -> None:
        logs.event(log, "peer.too_slow", level=logging.WARNING, seconds=REQUEST_READ_TIMEOUT)
        self.transport.close()
