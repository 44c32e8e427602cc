"""The TLS stream of bitsd's own client (``tlsstream.py``) on its own: OpenSSL's read-ahead is
switched on through ``readahead.py`` (and the stream works the same when it cannot be), and an
idle connection is unusable when anything arrived after its answer, even bytes OpenSSL already
read ahead from the socket."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import cast

import pytest

from bitsd._transfer import readahead
from bitsd._transfer.base import Sink
from bitsd._transfer.splice import PlainStream
from bitsd._transfer.tls import TlsContexts, TlsSettings
from bitsd._transfer.tlsstream import TlsStream
from tests.engine.conftest import body
from tests.servers.tls import Pki

_BODY = body(3000, 7)
_ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(_BODY), _BODY)
_STRAY = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"


class _Sink:
    """What ``pour`` uses of a sink."""

    def __init__(self, fd: int) -> None:
        self.fd, self.local_name, self.advanced = fd, "out", 0

    async def advance(self, count: int) -> None:
        self.advanced += count

    async def write(self, data: bytes) -> None:
        os.write(self.fd, data)
        self.advanced += len(data)


class _Server:
    """Answers every request with ``_ANSWER`` (and, if ``stray``, more bytes right after it, in
    a TLS record of their own)."""

    def __init__(self, ca_file: str) -> None:
        self.ca_file = ca_file
        self.stray = False
        self.port = 0

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                writer.write(_ANSWER)
                await writer.drain()
                if self.stray:
                    writer.write(_STRAY)
                    await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[_Server]:
    pki = Pki(tmp_path / "pki")
    server = _Server(pki.ca_file)
    listener = await asyncio.start_server(
        server._serve, "127.0.0.1", 0, ssl=pki.server_context("127.0.0.1")
    )
    server.port = listener.sockets[0].getsockname()[1]
    async with listener:
        yield server


@contextlib.asynccontextmanager
async def _opened(server: _Server) -> AsyncIterator[TlsStream]:
    """A TLS stream to ``server``, handshake done; closed at the end of the block."""
    context = TlsContexts().context_for(
        TlsSettings(
            ca_bundle=server.ca_file,
            client_certificate=None,
            client_key=None,
            ignore=0,
        )
    )
    sock = socket.socket()
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", server.port))
    stream = TlsStream(
        PlainStream(sock, read_timeout=5, chunk_size=1 << 20), context, "127.0.0.1", chunk_size=1024
    )
    try:
        await stream.handshake()
        yield stream
    finally:
        stream.close()


async def _exchange(stream: TlsStream, out: Path) -> bytes:
    """One GET whose answer is read as the raw client does: the head with ``recv``, the rest of
    the body with ``pour``. Returns the body as written."""
    await stream.send(b"GET /f HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    await asyncio.sleep(0.05)  # the whole answer (and any stray bytes) waits in the socket
    head = b""
    while b"\r\n\r\n" not in head:
        data = await stream.recv(64)  # small, so that the body is poured, not read here
        assert data
        head += data
    _, _, start = head.partition(b"\r\n\r\n")
    fd = os.open(out, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, start)
        assert await stream.pour(cast("Sink", _Sink(fd)), len(_BODY) - len(start)) == 0
        return os.pread(fd, len(_BODY) + 1, 0)
    finally:
        os.close(fd)


@pytest.fixture(params=["read-ahead", "record-by-record"])
def read_ahead(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    if request.param == "record-by-record":
        monkeypatch.setattr(readahead, "enable", lambda sock: None)
    return bool(request.param == "read-ahead")


async def test_read_ahead_is_on_for_the_raw_clients_tls_sockets(server: _Server) -> None:
    async with _opened(server) as stream:
        ahead = stream._ahead
        assert ahead is not None, "this CPython and libssl are the ones readahead.py knows"
        assert readahead._LIB is not None
        assert readahead._LIB.ctrl(ahead._ssl, readahead._SSL_CTRL_GET_READ_AHEAD, 0, None) == 1


async def test_a_connection_is_reusable_after_an_answer_read_to_its_end(
    server: _Server, read_ahead: bool, tmp_path: Path
) -> None:
    async with _opened(server) as stream:
        for _ in range(3):
            assert await _exchange(stream, tmp_path / "out") == _BODY
            assert stream.alive()


async def test_bytes_after_the_answer_make_the_connection_unusable(
    server: _Server, read_ahead: bool, tmp_path: Path
) -> None:
    """The stray bytes came with the answer: with read-ahead OpenSSL holds them (nothing is left
    on the socket to see), without it they wait on the socket; either way the connection is not
    reused."""
    server.stray = True
    async with _opened(server) as stream:
        assert await _exchange(stream, tmp_path / "out") == _BODY
        if read_ahead:
            assert stream._ahead is not None
            assert stream._ahead.has_pending()
        assert not stream.alive()


async def test_a_closed_connection_is_unusable(
    server: _Server, read_ahead: bool, tmp_path: Path
) -> None:
    async with _opened(server) as stream:
        assert await _exchange(stream, tmp_path / "out") == _BODY
        stream.sock.shutdown(socket.SHUT_RDWR)  # drops the SSLSocket's own SSL object
        assert not stream.alive()


async def test_an_unknown_object_layout_leaves_read_ahead_off(
    server: _Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """If the ``_ssl._SSLSocket`` object is not laid out as expected (here: a head one pointer
    longer), nothing is called on a pointer that was not confirmed; the stream runs without
    read-ahead."""
    monkeypatch.setattr(readahead, "_HEAD", readahead._HEAD + readahead._POINTER)
    async with _opened(server) as stream:
        assert stream._ahead is None
        assert await _exchange(stream, tmp_path / "out") == _BODY
        assert stream.alive()


def test_without_the_openssl_functions_read_ahead_stays_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(readahead, "_LIB", None)
    context = ssl.create_default_context()
    raw = socket.socket()
    with context.wrap_socket(raw, do_handshake_on_connect=False, server_hostname="x") as tls:
        assert readahead.enable(tls) is None
