"""OpenSSL read-ahead for the TLS socket of bitsd's own HTTP client (``tlsstream.py``), through
the two OpenSSL calls Python's ``ssl`` module does not expose (``SSL_set_read_ahead``,
``SSL_has_pending``), reached with ctypes.

Why: on a socket, OpenSSL without read-ahead reads every record with two system calls (its
5-byte header, then its body); with read-ahead it reads what the socket holds, up to its record
buffer (one call per ~16 KiB record).

Rules:
- The functions are looked up through the handle of Python's own ``_ssl`` module, so they are
  those of the libssl ``ssl`` runs on, never another copy of OpenSSL.
- The ``SSL *`` of an ``ssl.SSLSocket`` is read from its ``_ssl._SSLSocket`` object only when
  that object has the layout this module knows (CPython 3.7 and later: after the object head, a
  weak reference to the socket, the ``SSL *``, the context object). This is checked before any
  call into OpenSSL: the word after the ``SSL *`` must be the socket's own context object; then
  OpenSSL must agree that the ``SSL *`` belongs to that context's ``SSL_CTX`` (read from the
  context object, whose ``SSL_CTX *`` follows its head). Anything else — another layout, a build
  without these symbols — gives None, and the socket is used without read-ahead.
- A :class:`ReadAhead` holds the ``_ssl._SSLSocket`` object whose ``SSL *`` it uses, so that
  ``SSL`` is never freed while the pointer can be used (``SSLSocket.shutdown`` or ``close`` drop
  the socket's own reference).
"""

from __future__ import annotations

import ctypes
import ssl
from typing import Final

__all__ = ["ReadAhead", "enable"]

_SSL_CTRL_GET_READ_AHEAD: Final = 40
_SSL_CTRL_SET_READ_AHEAD: Final = 41
_POINTER: Final = ctypes.sizeof(ctypes.c_void_p)
# The object head (16 bytes on a usual 64-bit build; more on debug or free-threaded builds).
_HEAD: Final = object.__basicsize__


class _Lib:
    def __init__(self) -> None:
        handle = ctypes.CDLL(ssl._ssl.__file__)  # type: ignore[attr-defined]
        self.ctrl = handle.SSL_ctrl
        self.ctrl.restype = ctypes.c_long
        self.ctrl.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_long, ctypes.c_void_p]
        self.has_pending = handle.SSL_has_pending
        self.has_pending.restype = ctypes.c_int
        self.has_pending.argtypes = [ctypes.c_void_p]
        self.get_ctx = handle.SSL_get_SSL_CTX
        self.get_ctx.restype = ctypes.c_void_p
        self.get_ctx.argtypes = [ctypes.c_void_p]


def _load() -> _Lib | None:
    try:
        return _Lib()
    except (OSError, AttributeError):  # no shared _ssl, or a libssl without these symbols
        return None


_LIB: Final = _load()


class ReadAhead:
    """Read-ahead switched on for one TLS socket (see the module rules)."""

    __slots__ = ("_owner", "_ssl")

    def __init__(self, owner: object, ssl_pointer: int) -> None:
        self._owner = owner  # keeps the SSL alive
        self._ssl = ssl_pointer

    def has_pending(self) -> bool:
        """Whether OpenSSL holds bytes read from the socket that no read has returned yet: a
        decrypted record or raw bytes read ahead (SSL_has_pending)."""
        assert _LIB is not None
        return bool(_LIB.has_pending(self._ssl))


def _word(address: int) -> int | None:
    return ctypes.c_void_p.from_address(address).value


def _ssl_pointer(sock: ssl.SSLSocket) -> tuple[object, int] | None:
    """The ``_ssl._SSLSocket`` object of ``sock`` and its ``SSL *``, if the layout is known."""
    assert _LIB is not None
    obj = sock._sslobj  # type: ignore[attr-defined]
    if obj is None or type(obj).__basicsize__ < _HEAD + 3 * _POINTER:
        return None
    context = obj.context
    if _word(id(obj) + _HEAD + 2 * _POINTER) != id(context):
        return None
    if type(context).__basicsize__ < _HEAD + _POINTER:
        return None
    pointer = _word(id(obj) + _HEAD + _POINTER)
    ctx_pointer = _word(id(context) + _HEAD)
    if not pointer or not ctx_pointer or _LIB.get_ctx(pointer) != ctx_pointer:
        return None
    return obj, pointer


def enable(sock: ssl.SSLSocket) -> ReadAhead | None:
    """Switch OpenSSL's read-ahead on for ``sock`` (before its handshake). None if it could
    not be done (then nothing was changed)."""
    if _LIB is None:
        return None
    found = _ssl_pointer(sock)
    if found is None:
        return None
    owner, pointer = found
    _LIB.ctrl(pointer, _SSL_CTRL_SET_READ_AHEAD, 1, None)
    if _LIB.ctrl(pointer, _SSL_CTRL_GET_READ_AHEAD, 0, None) != 1:
        return None
    return ReadAhead(owner, pointer)
