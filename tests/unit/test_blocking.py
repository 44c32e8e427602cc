"""bitsd._blocking, the synchronous client's channel, against a real HTTP/1.1 server on a Unix
socket: one kept-alive connection per thread, closed when its thread ends or on close()."""

from __future__ import annotations

import gc
import http.client
import http.server
import socket
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


class _ThenClose(bytes):
    """Scripted answer bytes after which the server closes the connection."""


class _Scripted:
    """A Unix-socket server that answers each request with the next scripted bytes (None:
    close without answering; "silent": say nothing; a _ThenClose: answer, then close) and
    records what it received."""

    def __init__(self, path: str, answers: list[bytes | str | None]) -> None:
        self.path = path
        self.answers = list(answers)
        self.requests: list[bytes] = []
        self.accepted = 0
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(path)
        self._listener.listen(8)
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while self.answers:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            self.accepted += 1
            with conn:
                while self.answers:
                    request = self._read_request(conn)
                    if request is None:
                        break
                    self.requests.append(request)
                    answer = self.answers.pop(0)
                    if answer == "silent":
                        time.sleep(1.0)
                        break
                    if answer is None:
                        break
                    assert isinstance(answer, bytes)
                    conn.sendall(answer)
                    if isinstance(answer, _ThenClose):
                        break

    @staticmethod
    def _read_request(conn: socket.socket) -> bytes | None:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return None
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
        while len(body) < length:
            body += conn.recv(65536)
        return data[: len(head) + 4] + body

    def close(self) -> None:
        self._listener.close()


_OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: application/json\r\n\r\n{}"


@pytest.fixture
def folder() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as name:
        yield Path(name)


def test_a_request_is_one_exact_message_and_answers_keep_the_connection(folder: Path) -> None:
    server = _Scripted(str(folder / "s"), [_OK, _OK])
    channel = BlockingChannel(server.path)
    assert channel.exchange("POST", "/v1/jobs", b'{"a":1}', 5) == (200, b"{}")
    assert channel.exchange("GET", "/v1/jobs?view=brief", None, 5) == (200, b"{}")
    assert server.requests == [
        b"POST /v1/jobs HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        b'Content-Length: 7\r\n\r\n{"a":1}',
        b"GET /v1/jobs?view=brief HTTP/1.1\r\nHost: localhost\r\n\r\n",
    ]
    assert server.accepted == 1
    channel.close()
    server.close()


def test_connection_close_and_chunked_answers(folder: Path) -> None:
    chunked = _ThenClose(
        b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        b"3\r\n[1,\r\n2\r\n2]\r\n0\r\n\r\n"
    )
    server = _Scripted(str(folder / "s"), [chunked, _OK])
    channel = BlockingChannel(server.path)
    assert channel.exchange("GET", "/x", None, 5) == (201, b"[1,2]")
    assert channel.exchange("GET", "/x", None, 5) == (200, b"{}")
    assert server.accepted == 2  # the first answer closed its connection
    channel.close()
    server.close()


def test_an_answer_cut_short_is_remote_disconnected_and_the_next_call_reconnects(
    folder: Path,
) -> None:
    cut = _ThenClose(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{}")
    server = _Scripted(str(folder / "s"), [cut, None, _OK])
    channel = BlockingChannel(server.path)
    with pytest.raises(http.client.RemoteDisconnected):
        channel.exchange("GET", "/x", None, 5)
    with pytest.raises(http.client.RemoteDisconnected):  # closed with no answer at all
        channel.exchange("GET", "/x", None, 5)
    assert channel.exchange("GET", "/x", None, 5) == (200, b"{}")
    assert server.accepted == 3
    channel.close()
    server.close()


def test_an_answer_that_is_not_http_is_an_http_exception(folder: Path) -> None:
    server = _Scripted(str(folder / "s"), [_ThenClose(b"SSH-2.0-OpenSSH\r\n\r\n"), _OK])
    channel = BlockingChannel(server.path)
    with pytest.raises(http.client.HTTPException):
        channel.exchange("GET", "/x", None, 5)
    assert channel.exchange("GET", "/x", None, 5) == (200, b"{}")
    channel.close()
    server.close()


def test_a_silent_daemon_times_out(folder: Path) -> None:
    server = _Scripted(str(folder / "s"), ["silent"])
    channel = BlockingChannel(server.path)
    with pytest.raises(TimeoutError):
        channel.exchange("GET", "/x", None, 0.2)
    channel.close()
    server.close()


@pytest.mark.parametrize("target", ["/x\r\nEvil: 1", "/x y", "/x\0", "/x\n"])
def test_a_request_line_injection_is_refused_before_sending(folder: Path, target: str) -> None:
    server = _Scripted(str(folder / "s"), [_OK])
    channel = BlockingChannel(server.path)
    with pytest.raises(ValueError, match="request line"):
        channel.exchange("GET", target, None, 5)
    assert server.requests == []
    assert channel.exchange("GET", "/ok", None, 5) == (200, b"{}")
    channel.close()
    server.close()
