"""From a URL path to a file under the upload root, and nowhere else.

Rules:
- The request target is split on ``/`` before percent-decoding, then each segment is decoded
  (UTF-8). A segment that is empty, ``.`` or ``..``, or that decodes to something holding
  ``/``, ``\\``, NUL or a control character, refuses the whole path (:class:`InvalidPath`):
  no traversal, plain or encoded, ever reaches the file system. A segment over 255 bytes is
  refused too.
- The segments of a mount point (the ASGI ``root_path``) are dropped: ``/uploads/a/b.bin``
  under a mount at ``/uploads`` is ``root/a/b.bin``.
- Names starting with ``.bits-`` (any case) belong to the server (its session folder, its reply
  URLs): an upload there is refused (:class:`ForbiddenPath`).
- The folders of a destination are walked from the root with ``O_NOFOLLOW``, one ``openat`` at a
  time. A symlink is followed only if it resolves inside the root; one that leads outside
  refuses the path (:class:`ForbiddenPath`). A file where a folder should be, or a folder where
  the file should be, is a conflict.
- A finished upload is placed with one atomic step relative to its folder's descriptor:
  ``rename`` when overwriting is allowed, else ``link`` (which fails if the name exists), so the
  file appears whole or not at all, and an existing file is never replaced unless allowed.
  Across file systems the data is first copied to a hidden temporary file in the destination
  folder. Missing folders are created only then.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Final
from urllib.parse import unquote_to_bytes, urlsplit

__all__ = [
    "RESERVED_PREFIX",
    "DestinationExists",
    "ForbiddenPath",
    "InvalidPath",
    "PathConflict",
    "PathError",
    "Root",
    "route_segments",
]

# Names the server keeps for itself, at any depth.
RESERVED_PREFIX: Final = ".bits-"
_NAME_MAX: Final = 255
_OPEN_DIR: Final = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


class PathError(Exception):
    """A destination that cannot be used; the subclass says why."""


class InvalidPath(PathError):  # noqa: N818 - the name reads as the condition it signals
    """The URL path is malformed, traverses, or names a folder (400)."""


class ForbiddenPath(PathError):  # noqa: N818
    """The path is the server's own, or leads outside the root (403)."""


class PathConflict(PathError):  # noqa: N818
    """Something already on disk is in the way (409)."""


class DestinationExists(PathConflict):
    """The file exists and overwriting is not allowed (409)."""


def route_segments(raw_path: bytes, root_path: str = "") -> tuple[str, ...]:
    """The decoded path segments of a request target, without the mount point's.

    Args:
        raw_path: the target as sent (``scope["raw_path"]``), origin-form or absolute-form.
        root_path: the ASGI mount point (decoded), whose segments are dropped.

    Raises:
        InvalidPath: see the module's rules.
    """
    raw = raw_path.split(b"?", 1)[0]
    if not raw.startswith(b"/"):
        try:
            parts = urlsplit(raw.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            raise InvalidPath("the request target is not a path") from None
        if parts.scheme.lower() not in ("http", "https") or not parts.path.startswith("/"):
            raise InvalidPath("the request target is not a path")
        raw = parts.path.encode("ascii")
    segments = tuple(_decode_segment(part) for part in raw.split(b"/")[1:])
    mount = [part for part in root_path.split("/") if part]
    if mount and list(segments[: len(mount)]) == mount:
        segments = segments[len(mount) :]
    return segments


def _decode_segment(raw: bytes) -> str:
    try:
        text = unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidPath("a path segment is not UTF-8") from None
    if text in ("", ".", ".."):
        raise InvalidPath(f"the path has an empty, '.' or '..' segment ({text!r})")
    if any(ch in "/\\" or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in text):
        raise InvalidPath(f"a path segment holds a separator or a control character: {text!r}")
    if len(text.encode("utf-8")) > _NAME_MAX:
        raise InvalidPath("a path segment is longer than 255 bytes")
    return text


def check_destination(segments: tuple[str, ...]) -> None:
    """Refuse destinations that are no file name or that the server keeps for itself.

    Raises:
        InvalidPath: no segments (the root itself).
        ForbiddenPath: a ``.bits-`` name.
    """
    if not segments:
        raise InvalidPath("the destination is the root folder")
    for segment in segments:
        if segment.lower().startswith(RESERVED_PREFIX):
            raise ForbiddenPath(f"{segment!r} is reserved for the server")


class Root:
    """The upload root: where destinations are checked and finished uploads placed.

    Args:
        path: the root folder (it must exist).
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(os.path.realpath(path))

    def inspect(self, segments: tuple[str, ...], *, overwrite: bool) -> None:
        """Check a destination before an upload starts (nothing is created).

        Raises:
            PathError: see the module's rules.
        """
        check_destination(segments)
        with self._folder(segments[:-1], create=False) as fd:
            if fd is not None:
                self._check_name(fd, segments[-1], overwrite=overwrite)

    def place(self, source: Path, segments: tuple[str, ...], *, overwrite: bool) -> Path:
        """Move the finished upload ``source`` to its destination in one atomic step, creating
        missing folders; blocking (fsyncs).

        Returns:
            the destination path.

        Raises:
            PathError: see the module's rules.
            FileNotFoundError: ``source`` is gone.
            OSError: the file system failed.
        """
        check_destination(segments)
        name = segments[-1]
        with open(source, "rb") as f:
            os.fsync(f.fileno())
        with self._folder(segments[:-1], create=True) as fd:
            if fd is None:  # pragma: no cover - create=True always yields a descriptor
                raise PathConflict(f"the folder of {name!r} cannot be created")
            self._check_name(fd, name, overwrite=overwrite)
            try:
                self._move(fd, str(source), name, overwrite=overwrite)
            except OSError as exc:
                if exc.errno != errno.EXDEV:
                    raise
                self._copy_in(fd, source, name, overwrite=overwrite)
            os.fsync(fd)
        return self.path.joinpath(*segments)

    # -- helpers ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def _folder(self, segments: tuple[str, ...], *, create: bool) -> Iterator[int | None]:
        """A descriptor of the folder ``segments`` under the root (None: it does not exist and
        ``create`` is off), reached without following symlinks that leave the root."""
        fd = os.open(self.path, _OPEN_DIR)
        try:
            walked = self.path
            for segment in segments:
                walked = walked / segment
                child = self._open_child(fd, segment, walked, create=create)
                if child is None:
                    os.close(fd)
                    fd = -1
                    yield None
                    return
                os.close(fd)
                fd = child
            yield fd
        finally:
            if fd >= 0:
                os.close(fd)

    def _open_child(self, fd: int, segment: str, walked: Path, *, create: bool) -> int | None:
        for _ in range(2):
            try:
                return os.open(segment, _OPEN_DIR | os.O_NOFOLLOW, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    return None
                with contextlib.suppress(FileExistsError):
                    os.mkdir(segment, dir_fd=fd)
            except OSError as exc:
                # O_NOFOLLOW | O_DIRECTORY on a symlink: ENOTDIR on Linux, ELOOP elsewhere.
                if exc.errno not in (errno.ENOTDIR, errno.ELOOP):
                    raise
                st = os.stat(segment, dir_fd=fd, follow_symlinks=False)
                if not stat.S_ISLNK(st.st_mode):
                    raise PathConflict(f"{walked} is not a folder") from None
                return self._open_symlink(fd, segment, walked)
        raise PathConflict(f"{walked} cannot be created")

    def _open_symlink(self, fd: int, segment: str, walked: Path) -> int:
        target = Path(os.path.realpath(walked))
        if target != self.path and self.path not in target.parents:
            raise ForbiddenPath(f"{walked} is a symlink that leads outside the root")
        try:
            return os.open(segment, _OPEN_DIR, dir_fd=fd)
        except FileNotFoundError:
            raise PathConflict(f"{walked} is a dangling symlink") from None
        except NotADirectoryError:
            raise PathConflict(f"{walked} is not a folder") from None

    @staticmethod
    def _check_name(fd: int, name: str, *, overwrite: bool) -> None:
        try:
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            raise InvalidPath(f"{name!r} is a folder")
        if not overwrite:
            raise DestinationExists(f"{name!r} exists")
        if not (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)):
            raise PathConflict(f"{name!r} is not a regular file")

    @staticmethod
    def _move(
        fd: int, source: str, name: str, *, overwrite: bool, src_fd: int | None = None
    ) -> None:
        if overwrite:
            os.rename(source, name, src_dir_fd=src_fd, dst_dir_fd=fd)
            return
        try:
            os.link(source, name, src_dir_fd=src_fd, dst_dir_fd=fd, follow_symlinks=False)
        except FileExistsError:
            raise DestinationExists(f"{name!r} exists") from None
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EMLINK):
                raise
            # No hard links here: check, then rename (a race with another writer remains).
            try:
                os.stat(name, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                os.rename(source, name, src_dir_fd=src_fd, dst_dir_fd=fd)
                return
            raise DestinationExists(f"{name!r} exists") from None
        os.unlink(source, dir_fd=src_fd)

    def _copy_in(self, fd: int, source: Path, name: str, *, overwrite: bool) -> None:
        temp = f".{name[:200]}.bits-{uuid.uuid4().hex}.part"
        out = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666, dir_fd=fd)
        try:
            with open(source, "rb") as src, open(out, "wb", closefd=False) as dst:
                shutil.copyfileobj(src, dst, 1024 * 1024)
                dst.flush()
                os.fsync(out)
            self._move(fd, temp, name, overwrite=overwrite, src_fd=fd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp, dir_fd=fd)
            raise
        finally:
            os.close(out)
        source.unlink()
