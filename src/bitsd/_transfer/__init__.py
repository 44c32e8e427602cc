"""Transports: moving one file's bytes, with failures classified at this boundary.

``HttpTransport`` serves http:// and https://; ``LocalTransport`` serves absolute paths and
file:// URLs. ``classify`` is the only module that decides transient vs fatal.
"""

from __future__ import annotations

from bitsd._transfer.base import FileRequest, Sink, Transport

__all__ = ["FileRequest", "Sink", "Transport"]
