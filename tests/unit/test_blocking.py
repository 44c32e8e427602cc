"""bitsd._blocking, the synchronous client's channel, against a real HTTP/1.1 server on a Unix
socket: one kept-alive connection per thread, closed when its thread ends or on close()."""

from __future__ import annotations

import gc
import http.server
import socketserver
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bitsd._blocking import BlockingChannel


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive

    def do_GET(self) -> None:
        body = b'{"ok": true}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


class _Server(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True

    def __init__(self, path: str) -> None:
        super().__init__(path, _Handler)
        self.opened = 0
        self.closed = 0
        self.lock = threading.Lock()

    def process_request_thread(self, request: object, client_address: object) -> None:
        with self.lock:
            self.opened += 1
        try:
            super().process_request_thread(request, client_address)  # type: ignore[arg-type]
        finally:
            with self.lock:
                self.closed += 1


@pytest.fixture
def server() -> Iterator[_Server]:
    with tempfile.TemporaryDirectory() as folder:
        srv = _Server(str(Path(folder) / "s.sock"))
        thread = threading.Thread(target=srv.serve_forever, daemon=True)
        thread.start()
        try:
            yield srv
        finally:
            srv.shutdown()
            srv.server_close()


def _until(check: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.01)


def test_one_kept_alive_connection_per_thread(server: _Server) -> None:
    """Calls from one thread share a connection; another thread gets its own."""
    channel = BlockingChannel(server.server_address)  # type: ignore[arg-type]
    for _ in range(5):
        assert channel.exchange("GET", "/v1/version", None, 5) == (200, b'{"ok": true}')
    other = threading.Thread(target=channel.exchange, args=("GET", "/x", None, 5))
    other.start()
    other.join()
    assert server.opened == 2
    channel.close()


def test_a_threads_connection_closes_when_the_thread_ends(server: _Server) -> None:
    """A thread that made calls and ended leaves no connection open; close() closes the
    others, and the next call opens a new one."""
    channel = BlockingChannel(server.server_address)  # type: ignore[arg-type]
    threads = [
        threading.Thread(target=channel.exchange, args=("GET", "/x", None, 5)) for _ in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    del threads, t
    gc.collect()
    _until(lambda: server.closed == 3)
    channel.exchange("GET", "/x", None, 5)
    channel.close()
    _until(lambda: server.closed == 4)
    assert channel.exchange("GET", "/x", None, 5)[0] == 200
    assert server.opened == 5
    channel.close()
