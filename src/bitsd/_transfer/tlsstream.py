"""A TLS connection of the raw HTTP transport (``rawhttp.py``): an ``ssl.SSLSocket`` on the
non-blocking socket of a :class:`~bitsd._transfer.splice.PlainStream`, with OpenSSL's read-ahead
on, and bodies decrypted into large buffers written straight to the temporary file.

Rules:
- The SSL context is the job's, from the same cache as the aiohttp path's (``tls.TlsContexts``):
  trust, client certificate, the BG_SSL_IGNORE_* flags and bitsd's own certificate checks (run by
  the context's SSLSocket class at the end of the handshake) are decided there, once. The server
  name is sent (SNI) and checked as aiohttp does: the URL's host without a trailing dot (an IP
  address is matched against the certificate's IP addresses and not sent).
- Everything runs on the event loop, non-blocking: OpenSSL reads and writes the socket itself;
  when it wants to read (or write) more, the stream waits for the socket with the plain
  stream's waits, bounded by the read timeout; the handshake is bounded by the caller (the
  connect timeout). OpenSSL reads ahead (``readahead.py``: what the socket holds, up to its
  record buffer, in one system call) when that can be switched on, else record by record.
- A body (:meth:`TlsStream.pour`) is decrypted record after record into a buffer of up to
  ``chunk_size`` bytes, which is written to ``sink.fd`` with ``os.write`` and reported with
  ``sink.advance`` when it is full, when the body ends, and before every wait (progress never
  waits on a slow server); a throttled sink bounds each buffer by its ``piece()``.
- EOF, with or without the server's close_notify, ends a read (b"" / bytes left); what it means
  (a body closed early) is the caller's to decide; during the handshake it is a
  ``ConnectionResetError``. OpenSSL's errors (alerts, a bad record) are raised as they are,
  ``ssl.SSLError``; ``classify`` maps them.
- An idle connection is usable (:meth:`TlsStream.alive`) only if nothing at all arrived since
  its last answer (no alert, no close_notify, no stray record): nothing decrypted or read ahead
  inside OpenSSL, nothing readable on the socket.
"""

from __future__ import annotations

import select
import socket
import ssl
from collections.abc import Callable
from typing import cast

from bitsd._transfer import readahead
from bitsd._transfer.base import Sink
from bitsd._transfer.splice import PlainStream, ThrottledSink, write_all

__all__ = ["TlsStream"]

# Bytes read at once into memory (heads, chunked bodies): the most one TLS record holds.
_READ = 16 * 1024


class TlsStream:
    """One TLS connection over a plain one (see the module rules).

    Args:
        raw: the TCP connection; the stream owns it (its socket is replaced by the TLS socket
            on the same descriptor, on which it still waits).
        context: the job's SSL context.
        host: the URL's host (the server name to send and check).
        chunk_size: the largest buffer a body is decrypted into before it is written.
    """

    __slots__ = ("_ahead", "_chunk", "_eof", "_raw", "_sock")

    def __init__(
        self, raw: PlainStream, context: ssl.SSLContext, host: str, *, chunk_size: int
    ) -> None:
        self._raw = raw
        self._sock = context.wrap_socket(
            raw.sock, server_hostname=host.rstrip(".") or None, do_handshake_on_connect=False
        )
        raw.sock = self._sock
        self._ahead = readahead.enable(self._sock)
        self._chunk = chunk_size
        self._eof = False

    def retune(self, *, read_timeout: float, chunk_size: int) -> None:
        """Use new settings from the next wait and body on (see ``PlainStream.retune``)."""
        self._raw.retune(read_timeout=read_timeout, chunk_size=chunk_size)
        self._chunk = chunk_size

    @property
    def sock(self) -> socket.socket:
        """The TCP socket (for tests that cut it)."""
        return self._sock

    def close(self) -> None:
        self._raw.close()  # closes self._sock (the raw stream's socket now) and unregisters it

    async def handshake(self) -> None:
        """Run the TLS handshake (and bitsd's certificate checks).

        Raises:
            ssl.SSLError: the handshake failed (an untrusted certificate is an
                ``ssl.SSLCertVerificationError``).
            ConnectionResetError: the server closed the connection during the handshake.
        """
        while True:
            try:
                self._sock.do_handshake()
            except ssl.SSLWantReadError:
                await self._raw.readable()
            except ssl.SSLWantWriteError:
                await self._raw.writable()
            except ssl.SSLEOFError:
                raise ConnectionResetError(
                    "the server closed the connection during the TLS handshake"
                ) from None
            else:
                return

    async def send(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                view = view[self._sock.send(view) :]
            except ssl.SSLWantWriteError:
                await self._raw.writable()
            except ssl.SSLWantReadError:
                await self._raw.readable()

    async def recv(self, size: int) -> bytes:
        """Up to ``size`` decrypted bytes (at most one record); b"" at EOF."""
        while True:
            try:
                data = self._sock.recv(min(size, _READ))
            except ssl.SSLWantReadError:
                await self._raw.readable()
                continue
            except ssl.SSLWantWriteError:
                await self._raw.writable()
                continue
            except ssl.SSLZeroReturnError:
                data = b""
            if not data:  # close_notify, or the connection closed
                self._eof = True
            return data

    def alive(self) -> bool:
        """Whether an idle connection can carry another request."""
        if self._eof or self._sock.pending():
            return False
        if self._ahead is not None and self._ahead.has_pending():
            return False
        poller = select.poll()
        poller.register(self._sock.fileno(), select.POLLIN | select.POLLPRI)
        return not poller.poll(0)  # readable: EOF, an alert or stray bytes; or an error

    async def pour(self, sink: Sink, count: int) -> int:
        """Decrypt up to ``count`` body bytes into the sink's file. Returns the bytes left (0
        unless the server closed the connection early)."""
        size = min(count, self._chunk)
        view = memoryview(bytearray(size))
        # Given a buffer, SSLSocket.read returns the count it wrote (typeshed says bytes).
        read = cast("Callable[[int, memoryview], int]", self._sock.read)
        fd, local_name = sink.fd, sink.local_name
        piece = sink.piece if isinstance(sink, ThrottledSink) else None
        while count and not self._eof:
            step = min(count, size)
            if piece is not None:
                step = min(step, piece() or step)
            filled = 0
            while filled < step:
                try:
                    got = read(step - filled, view[filled:])
                except ssl.SSLWantReadError:
                    if filled:
                        break  # hand over what is here before waiting
                    await self._raw.readable()
                    continue
                except ssl.SSLWantWriteError:
                    await self._raw.writable()
                    continue
                except ssl.SSLZeroReturnError:
                    got = 0
                if not got:  # close_notify, or the connection closed
                    self._eof = True
                    break
                filled += got
            if filled:
                write_all(fd, view[:filled], local_name)
                count -= filled
                await sink.advance(filled)
        return count
