"""The control API from a thread with no event loop: the synchronous client's fast path.

Rules:
- A :class:`BlockingChannel` sends one request at a time per thread over the daemon's Unix
  socket, on a kept-alive connection of that thread's own. It answers the status and the body's
  bytes; it maps nothing and retries nothing: ``bitsd._client.Manager._request`` decides what a
  failure means, for both paths.
- A request goes out in one ``sendall`` (head and body together: the daemon wakes once per
  request); the answer is parsed by httptools (the parser the daemon's own server and the
  transfer client use), so no header is parsed by hand. The head is written by
  ``bitsd._httphead`` (the transfer client's writer too): a CR, LF, NUL or space in the
  method or target is refused before anything is sent.
- Failures keep ``http.client``'s exception types, which the client maps:
  ``RemoteDisconnected`` when the connection ends before the whole answer,
  ``HTTPException`` when the answer is not HTTP, ``BrokenPipeError`` when the request could not
  be written, ``TimeoutError``. Any failure closes the thread's connection; the next call opens
  another. An answer that does not keep the connection alive closes it after being read.
- Why it exists: a blocking call from ``bitsd.connect()`` used to hop to the client's private
  event loop and back (``run_coroutine_threadsafe``) and go through aiohttp, about 0.5 ms of
  client CPU per request; through ``http.client`` it cost ~0.11 ms (its header parsing runs the
  email package); this path costs a fraction of that (bench/control_path.py, docs/daemon.md).
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

import httptools

from bitsd._httphead import request_head

__all__ = ["BlockingChannel", "loop_running"]

# Bytes read from the socket at once: most answers fit in one read.
_READ = 256 * 1024
_HOST = [("Host", "localhost")]
_JSON = [("Content-Type", "application/json")]


def loop_running() -> bool:
    """Whether an event loop runs in this thread: calls made here must go through it (aiohttp),
    not through a :class:`BlockingChannel`, which would block it."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _request_bytes(method: str, target: str, body: bytes | None) -> bytes:
    """The whole request: head and body.

    Raises:
        ValueError: a CR, LF, NUL or space in the method or target (a request-line injection).
    """
    if body is None:
        return request_head(method, target, _HOST)
    return request_head(method, target, [*_HOST, *_JSON, ("Content-Length", str(len(body)))]) + body


class _Answer:
    """The parser callbacks of one answer: its body and whether it is complete."""

    __slots__ = ("body", "complete", "keep_alive", "parser")

    def __init__(self) -> None:
        self.body: list[bytes] = []
        self.complete = False
        self.keep_alive = False
        self.parser = httptools.HttpResponseParser(self)

    def on_headers_complete(self) -> None:
        # Asked here: once the message is complete, llhttp no longer knows.
        self.keep_alive = self.parser.should_keep_alive()

    def on_body(self, data: bytes) -> None:
        self.body.append(data)

    def on_message_complete(self) -> None:
        self.complete = True


class _UnixConnection:
    """One kept-alive connection to the daemon's socket."""

    __slots__ = ("__weakref__", "_path", "sock")

    def __init__(self, path: str) -> None:
        self._path = path
        self.sock: socket.socket | None = None

    def exchange(
        self, method: str, target: str, body: bytes | None, timeout: float
    ) -> tuple[int, bytes]:
        request = _request_bytes(method, target, body)
        sock = self.sock
        if sock is None:
            sock = self.sock = self._connect(timeout)
        else:
            sock.settimeout(timeout)
        try:
            sock.sendall(request)
            answer = _Answer()
            parser = answer.parser
            while not answer.complete:
                data = sock.recv(_READ)
                if not data:
                    raise http.client.RemoteDisconnected(
                        "the daemon closed the connection before its whole answer"
                    )
                try:
                    parser.feed_data(data)
                except httptools.HttpParserUpgrade as exc:  # pragma: no cover - never asked
                    raise http.client.HTTPException(f"unexpected upgrade: {exc}") from exc
                except httptools.HttpParserError as exc:
                    raise http.client.HTTPException(f"not an HTTP answer: {exc}") from exc
            status = parser.get_status_code()
            if not answer.keep_alive:
                self.close()
        except BaseException:
            self.close()
            raise
        return status, b"".join(answer.body)

    def _connect(self, timeout: float) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(timeout)
            sock.connect(self._path)
        except BaseException:
            sock.close()
            raise
        return sock

    def close(self) -> None:
        sock, self.sock = self.sock, None
        if sock is not None:
            sock.close()

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
                written; ``http.client.RemoteDisconnected`` when the whole answer did not come;
                ``TimeoutError``); the thread's connection is closed, and the next call opens
                another.
            http.client.HTTPException: the answer was not HTTP.
            ValueError: a CR, LF, NUL or space in the method or target.
        """
        conn: _UnixConnection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = _UnixConnection(self.path)
            self._local.conn = conn
            with self._lock:
                self._connections.add(conn)
        return conn.exchange(method, target, body, timeout)

    def close(self) -> None:
        """Close every thread's connection."""
        with self._lock:
            connections = list(self._connections)
            self._connections = weakref.WeakSet()
        for conn in connections:
            conn.close()
        self._local = threading.local()
