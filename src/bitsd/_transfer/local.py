"""Copies from local paths and file:// URLs (BITS copies from SMB paths the same way).

Rules:
- The source's version is its size and modification time; if either changed since the bytes we
  hold were copied, the file restarts from zero (bits-inventory §5.3).
- Bytes move with ``copy_file_range`` (no copy through user space) in chunks, each in a worker
  thread, so a big copy neither blocks the event loop nor escapes cancellation for long.
"""

from __future__ import annotations

import asyncio
import errno
import os
import urllib.parse
import urllib.request

from bitsd._transfer import classify
from bitsd._transfer.base import FileRequest, Sink

__all__ = ["LocalTransport", "source_path"]

# Errors of a copy step that belong to the destination (the temporary file), not the source.
_DESTINATION_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS})


def source_path(url: str) -> str:
    """The path of a local source: an absolute path, or a ``file://`` URL (host empty or
    localhost)."""
    if url.lower().startswith("file:"):
        parsed = urllib.parse.urlsplit(url)
        return urllib.request.url2pathname(parsed.path)
    return url


class LocalTransport:
    """Fetches absolute paths and file:// URLs.

    Args:
        chunk_size: bytes per copy step.
    """

    def __init__(self, *, chunk_size: int) -> None:
        self.retune(chunk_size=chunk_size)

    def retune(self, *, chunk_size: int) -> None:
        """Use a new step size (the engine's settings were reconfigured) from the next copy."""
        self._chunk = max(chunk_size, 1024 * 1024)

    async def fetch(self, request: FileRequest, sink: Sink) -> None:
        path = source_path(request.url)
        try:
            src = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise classify.from_source_os_error(exc, url=request.url) from exc
        try:
            st = os.fstat(src)
            size = st.st_size
            validator = f"{size}:{st.st_mtime_ns}"
            restart = request.offset > 0 and request.validator != validator
            await sink.begin(bytes_total=size, validator=validator, restart=restart)
            while sink.offset < size:
                count = min(self._chunk, size - sink.offset)
                try:
                    copied = await asyncio.to_thread(_copy, src, sink.fd, count, sink.offset)
                except OSError as exc:
                    if exc.errno in _DESTINATION_ERRNOS:
                        raise classify.from_local_os_error(exc, local_name=sink.local_name) from exc
                    raise classify.from_source_os_error(exc, url=request.url) from exc
                if copied == 0:
                    # The source shrank under us: start again on the next try.
                    raise classify.from_source_os_error(
                        OSError(5, "the source file shrank during the copy"), url=request.url
                    )
                await sink.advance(copied)
        finally:
            os.close(src)


def _copy(src: int, dst: int, count: int, offset: int) -> int:
    """Copy up to ``count`` bytes from ``src`` at ``offset`` to ``dst`` at its position."""
    try:
        return os.copy_file_range(src, dst, count, offset)
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
            raise
    data = os.pread(src, count, offset)
    view = memoryview(data)
    while view:
        written = os.write(dst, view)
        view = view[written:]
    return len(data)
