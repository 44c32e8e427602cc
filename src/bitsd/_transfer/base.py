"""The transport interface: how the engine asks for one file and receives its bytes.

Rules:
- A transport moves the bytes of one file, from ``request.offset`` to the end, into a
  :class:`Sink`. It returns when the whole file is in the sink and raises
  :class:`~bitsd._errors.TransferError` (already classified) for anything else.
- The sink owns the temporary file and the progress: a transport never touches either directly,
  except through ``sink.fd`` for zero-copy paths, always followed by ``sink.advance``.
- Before the first byte of a response the transport calls ``sink.begin`` with what it learned:
  the size, the validator of the remote version, and whether the bytes restart from zero (the
  remote file changed, or dynamic content).
- A sink that also has ``redirected`` (:class:`RedirectSink`) is told when the job's redirect
  policy changes the file's remote name (ALLOW_REPORT: the final URL; DISALLOW: the URL
  redirected to). Sinks without it keep the remote name.
"""

from __future__ import annotations

import dataclasses
from typing import Protocol, runtime_checkable

__all__ = ["FileRequest", "HttpOptions", "RedirectSink", "Sink", "Transport"]


@dataclasses.dataclass(frozen=True, slots=True)
class HttpOptions:
    """A job's HTTP options, as the transport applies them to every request of the job.

    Attributes:
        headers: custom header (name, value) pairs, sent with every request.
        method: the HTTP verb; a verb other than GET downloads the whole body from zero.
        security_flags: BG_SSL_* and redirect policy bits (SetSecurityFlags).
        ca_bundle, client_certificate, client_key: PEM files (None: system trust, no client
            certificate).
        proxy_usage, proxy_list, proxy_bypass: SetProxySettings.
        credentials: (target, scheme, user name, password) tuples (SetCredentials).
    """

    headers: tuple[tuple[str, str], ...] = ()
    method: str = "GET"
    security_flags: int = 0
    ca_bundle: str | None = None
    client_certificate: str | None = None
    client_key: str | None = None
    proxy_usage: int = 0
    proxy_list: str | None = None
    proxy_bypass: str | None = None
    credentials: tuple[tuple[int, int, str, str], ...] = dataclasses.field(default=(), repr=False)


@dataclasses.dataclass(frozen=True, slots=True)
class FileRequest:
    """One file to fetch.

    Attributes:
        url: the remote name.
        offset: bytes already safely in the temporary file.
        bytes_total: the size learned earlier, or None.
        validator: the remote version those bytes belong to, or None.
        dynamic: the job's dynamic-content property: no Range, restart from zero on every try.
        ranges: for a file added with ranges, the (offset, length) ranges of the remote file
            whose concatenation is the local file; ``offset`` then counts local bytes.
        options: the job's HTTP options.
    """

    url: str
    offset: int
    bytes_total: int | None
    validator: str | None
    dynamic: bool = False
    ranges: tuple[tuple[int, int], ...] | None = None
    options: HttpOptions = dataclasses.field(default_factory=HttpOptions)


class Sink(Protocol):
    """Where a transport puts bytes (the engine's view of one file's temporary file)."""

    @property
    def offset(self) -> int:
        """Bytes in the temporary file now."""
        ...

    @property
    def local_name(self) -> str:
        """The file's final local name (for error messages)."""
        ...

    @property
    def fd(self) -> int:
        """The temporary file's descriptor, positioned at :attr:`offset`."""
        ...

    async def begin(self, *, bytes_total: int | None, validator: str | None, restart: bool) -> None:
        """Accept a response: record size and validator; cut the file to zero if ``restart``."""
        ...

    async def write(self, data: bytes) -> None:
        """Append ``data`` to the file and count it as progress."""
        ...

    async def advance(self, count: int) -> None:
        """Count ``count`` bytes that the transport wrote through :attr:`fd` itself."""
        ...


@runtime_checkable
class RedirectSink(Protocol):
    """The optional part of a :class:`Sink` that hears about redirects (SetSecurityFlags'
    BG_HTTP_REDIRECT_POLICY_ALLOW_REPORT and _DISALLOW)."""

    async def redirected(self, url: str) -> None:
        """The file's remote name is now ``url``; later requests for the file may use it.
        Called again with the same URL for each request that is redirected the same way."""
        ...


class Transport(Protocol):
    """Fetches files of one kind of URL."""

    async def fetch(self, request: FileRequest, sink: Sink) -> None:
        """Move the file's bytes from ``request.offset`` to the end into ``sink``.

        Raises:
            TransferError: the classified failure.
        """
        ...
