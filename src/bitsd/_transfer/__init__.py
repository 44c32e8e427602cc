"""Transports: moving one file's bytes, with failures classified at this boundary.

``RawHttpTransport`` (bitsd's own HTTP/1.1 client: splice for http://, large-buffer TLS for
https://) serves the downloads it can serve exactly like ``HttpTransport`` (aiohttp), which
serves the rest of http:// and https://; ``LocalTransport`` serves absolute paths and file://
URLs; ``upload`` speaks the BITS upload protocol. ``classify`` is the only module that decides
transient vs fatal.
"""

from __future__ import annotations

from bitsd._transfer.base import FileRequest, Sink, Transport

__all__ = ["FileRequest", "Sink", "Transport"]
