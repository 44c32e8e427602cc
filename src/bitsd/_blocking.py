"""The control API from a thread with no event loop: the synchronous client's fast path.

Rules:
- A :class:`BlockingChannel` sends one request at a time per thread over the daemon's Unix
  socket with the standard library's ``http.client``, on a kept-alive connection of that
  thread's own. It answers the status and the body's bytes; it maps nothing and retries
  nothing: ``bitsd._client.Manager._request`` decides what a failure means, for both paths.
- Why it exists: a blocking call from ``bitsd.connect()`` used to hop to the client's private
  event loop and back (``run_coroutine_threadsafe``) and go through aiohttp, about 0.5 ms of
  client CPU per request; this path costs about 0.1 ms (bench/control_path.py, docs/daemon.md).
  Everything that needs an event loop (the event stream of callbacks, ``wait``) still runs on
  that loop.
- ``close()`` closes every live thread's connection; a later request opens a new one. A
  thread's connection is held by that thread only, and closes when the thread ends.
"""

from __future__ import annotations

import asyncio
import http.client
import socket
import threading
import weakref

__all__ = ["BlockingChannel", "loop_running"]


def loop_running() -> bool:
    """Whether an event loop runs in this thread: calls made here must go through it (aiohttp),
    not through a :class:`BlockingChannel`, which would block it."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


class _UnixConnection(http.client.HTTPConnection):
    """``http.client`` over a Unix socket (the host name only fills the Host header)."""

    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            sock.connect(self._path)
        except BaseException:
            sock.close()
            raise
        self.sock = sock

    def __del__(self) -> None:  # the thread that held it ended: close, do not just drop
        self.close()


class BlockingChannel:
    """Blocking requests to the daemon's control socket, one kept-alive connection a thread."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._local = threading.local()
        self._lock = threading.Lock()
        # Every thread's connection, for close(); held strongly only by its thread, so the
        # connection of a thread that ended goes with it.
        self._connections: weakref.WeakSet[_UnixConnection] = weakref.WeakSet()

    def exchange(
        self, method: str, target: str, body: bytes | None, timeout: float
    ) -> tuple[int, bytes]:
        """Send one request and read its whole answer.

        Raises:
            OSError: the connection failed (``BrokenPipeError`` when the request could not be
                written; ``http.client.RemoteDisconnected`` when no answer came; ``TimeoutError``);
                the thread's connection is closed, and the next call opens another.
            http.client.HTTPException: the answer was not HTTP.
        """
        conn = self._connection(timeout)
        headers = {"Content-Type": "application/json"} if body is not None else {}
        try:
            conn.request(method, target, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
        except BaseException:
            conn.close()
            raise
        if resp.will_close:
            conn.close()
        return resp.status, data

    def _connection(self, timeout: float) -> _UnixConnection:
        conn: _UnixConnection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = _UnixConnection(self.path, timeout)
            self._local.conn = conn
            with self._lock:
                self._connections.add(conn)
        conn.timeout = timeout
        if conn.sock is not None:
            conn.sock.settimeout(timeout)
        return conn

    def close(self) -> None:
        """Close every thread's connection."""
        with self._lock:
            connections = list(self._connections)
            self._connections = weakref.WeakSet()
        for conn in connections:
            conn.close()
        self._local = threading.local()
