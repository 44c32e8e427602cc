"""A TLS connection of the raw HTTP transport (``rawhttp.py``): OpenSSL over memory BIOs on a
:class:`~bitsd._transfer.splice.PlainStream`, with bodies decrypted into large buffers and
written straight to the temporary file.

Rules:
- The SSL context is the job's, from the same cache as the aiohttp path's (``tls.TlsContexts``):
  trust, client certificate, the BG_SSL_IGNORE_* flags and bitsd's own certificate checks (run by
  the context's SSLObject class at the end of the handshake) are decided there, once. The server
  name is sent (SNI) and checked as aiohttp does: the URL's host without a trailing dot (an IP
  address is matched against the certificate's IP addresses and not sent).
- Everything runs on the event loop, non-blocking: the socket is read in large pieces
  (``_RAW_READ``) into OpenSSL's incoming BIO, what OpenSSL has to send (handshake, key updates)
  is sent as soon as it is there. Every wait is the plain stream's, bounded by the read timeout;
  the handshake is bounded by the caller (the connect timeout).
- A body (:meth:`TlsStream.pour`) is decrypted record after record into a buffer of up to
  ``chunk_size`` bytes, which is written to ``sink.fd`` with ``os.write`` and reported with
  ``sink.advance`` when it is full, when the body ends, and before every wait (progress never
  waits on a slow server); a throttled sink bounds each buffer by its ``piece()``.
- EOF, with or without the server's close_notify, ends a read (b"" / bytes left); what it means
  (a body closed early) is the caller's to decide. OpenSSL's errors (alerts, a bad record) are
  raised as they are, ``ssl.SSLError``; ``classify`` maps them.
- An idle connection is usable (:meth:`TlsStream.alive`) only if nothing at all arrived since
  its last answer (no alert, no close_notify, no stray record).
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable
from typing import cast

from bitsd._transfer.base import Sink
from bitsd._transfer.splice import PlainStream, ThrottledSink, write_all

__all__ = ["TlsStream"]

# Bytes read from the socket at once into OpenSSL. 256 KiB is 16 records of 16 KiB: one system
# call per 16 records, and few enough bytes held per connection.
_RAW_READ = 256 * 1024
# Bytes read at once into memory (heads, chunked bodies): the most one TLS record holds.
_READ = 16 * 1024


class TlsStream:
    """One TLS connection over a plain one (see the module rules).

    Args:
        raw: the TCP connection; the stream owns it.
        context: the job's SSL context.
        host: the URL's host (the server name to send and check).
        chunk_size: the largest buffer a body is decrypted into before it is written.
    """

    __slots__ = ("_chunk", "_eof", "_incoming", "_obj", "_outgoing", "_raw")

    def __init__(
        self, raw: PlainStream, context: ssl.SSLContext, host: str, *, chunk_size: int
    ) -> None:
        self._raw = raw
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._obj = context.wrap_bio(
            self._incoming, self._outgoing, server_hostname=host.rstrip(".") or None
        )
        self._chunk = chunk_size
        self._eof = False

    @property
    def sock(self) -> socket.socket:
        """The TCP socket (for tests that cut it)."""
        return self._raw.sock

    def close(self) -> None:
        self._raw.close()

    async def handshake(self) -> None:
        """Run the TLS handshake (and bitsd's certificate checks).

        Raises:
            ssl.SSLError: the handshake failed (an untrusted certificate is an
                ``ssl.SSLCertVerificationError``).
            ConnectionResetError: the server closed the connection during the handshake.
        """
        while True:
            try:
                self._obj.do_handshake()
            except ssl.SSLWantReadError:
                await self._flush()
                if not await self._fill():
                    raise ConnectionResetError(
                        "the server closed the connection during the TLS handshake"
                    ) from None
                continue
            break
        await self._flush()

    async def send(self, data: bytes) -> None:
        self._obj.write(data)
        await self._flush()

    async def recv(self, size: int) -> bytes:
        """Up to ``size`` decrypted bytes (at most one record); b"" at EOF."""
        while True:
            try:
                data = self._obj.read(min(size, _READ))
            except ssl.SSLWantReadError:
                if not await self._fill():
                    return b""
                continue
            except ssl.SSLZeroReturnError:
                data = b""
            if not data:  # close_notify
                self._eof = True
            await self._flush()
            return data

    def alive(self) -> bool:
        """Whether an idle connection can carry another request."""
        return (
            not self._eof
            and not self._incoming.pending
            and not self._obj.pending()
            and self._raw.alive()
        )

    async def pour(self, sink: Sink, count: int) -> int:
        """Decrypt up to ``count`` body bytes into the sink's file. Returns the bytes left (0
        unless the server closed the connection early)."""
        size = min(count, self._chunk)
        view = memoryview(bytearray(size))
        raw = memoryview(bytearray(min(_RAW_READ, count + _READ)))  # small bodies, small reads
        # Given a buffer, SSLObject.read returns the count it wrote (typeshed says bytes).
        read = cast("Callable[[int, memoryview], int]", self._obj.read)
        take = self._take
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
                    if take(raw):
                        continue
                    if self._eof or filled:
                        break  # the end, or hand over what is here before waiting
                    await self._raw.readable()
                    continue
                except ssl.SSLZeroReturnError:
                    got = 0
                if not got:  # close_notify
                    self._eof = True
                    break
                filled += got
            if filled:
                write_all(fd, view[:filled], local_name)
                count -= filled
                await sink.advance(filled)
        await self._flush()
        return count

    # -- the socket side -------------------------------------------------------------------

    def _take(self, buffer: memoryview) -> bool:
        """Move what the socket holds now into OpenSSL, without waiting. False if nothing was
        there (then ``_eof`` says whether the server closed the connection)."""
        got = self._raw.recv_now(buffer)
        if not got:
            self._eof = self._eof or got == 0
            return False
        self._incoming.write(buffer[:got])
        return True

    async def _fill(self) -> bool:
        """Wait for bytes from the socket and move them into OpenSSL. False at EOF."""
        buffer = memoryview(bytearray(_READ + 1024))
        while not self._take(buffer):
            if self._eof:
                return False
            await self._raw.readable()
        return True

    async def _flush(self) -> None:
        if self._outgoing.pending:
            await self._raw.send(self._outgoing.read())
