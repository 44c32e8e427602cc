"""Local files of a download: names, validation, the temporary file, rename on Complete.

Rules:
- Bytes go to a temporary file in the destination folder (same file system, so the rename on
  Complete is atomic); the final name appears only on Complete. The temporary name is hidden
  (leading dot) and names the job, so two jobs never share one.
- The temporary file is opened with O_NOFOLLOW: a symlink planted at its name is never followed.
- Complete replaces an existing file at the final name, as BITS does (MoveFileEx with
  REPLACE_EXISTING); docs/design-choices.md says so.
- Data is flushed (fsync) before the offset that covers it is stored: a checkpoint never claims
  bytes that a crash could lose. A flush also checks that the temporary file still has a name:
  bytes written to a file deleted under us (its folder removed during the job) are lost, so
  they never count as progress.
- A file on a memory-backed file system (tmpfs, ramfs: ``memory_backed``), where fsync has no
  device to wait for, may be flushed on the event loop instead of in a worker thread: the
  thread hop would cost far more than the flush.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import os
from collections.abc import Sequence

from bitsd import codes
from bitsd._errors import BitsError, InvalidArgumentError
from bitsd._text import check_text

__all__ = [
    "TEMP_SUFFIX",
    "check_local_name",
    "delete_quietly",
    "flush_temp",
    "folder_memory_backed",
    "folders_of",
    "memory_backed",
    "name_with_suffix",
    "open_temp",
    "rename_all_into_place",
    "rename_into_place",
    "temp_name_for",
    "temp_size",
]

TEMP_SUFFIX = ".bitsd-tmp"
# Bytes of the local name kept in its temporary name (255 - dot, id, index and suffix).
_VISIBLE_NAME_BYTES = 180
# Bytes. Linux's NAME_MAX (one name in a folder: ext4, xfs, btrfs, tmpfs) and PATH_MAX (a whole
# path, with its terminating NUL).
_NAME_MAX = 255
_PATH_MAX = 4096
# Bytes a temporary name adds to the visible part of the local name: the two dots, the job id's
# 32 hex digits, "-", an index of up to 10 digits and the suffix (temp_name_for).
_TEMP_NAME_EXTRA = 2 + 32 + 1 + 10 + len(TEMP_SUFFIX)


def name_with_suffix(path: str, suffix: str) -> str:
    """``path`` with ``suffix`` added to its name, the name cut first (on a character boundary)
    so that the result stays within NAME_MAX."""
    folder, name = os.path.split(path)
    return os.path.join(folder, _cut(name, _NAME_MAX - len(suffix.encode())) + suffix)


def _cut(name: str, size: int) -> str:
    """``name`` cut to at most ``size`` bytes of UTF-8, on a character boundary."""
    return name.encode()[:size].decode(errors="ignore")


def temp_name_for(local_name: str, job_id: str, index: int) -> str:
    """The temporary file of ``local_name`` (a normalised absolute name: ``check_local_name``)
    for file ``index`` of job ``job_id``."""
    # The folder with its last "/" (os.path.split and join, at a fraction of the cost: a job
    # of thousands of files names them all at add_file_set).
    name = local_name[local_name.rfind("/") + 1 :]
    folder = local_name[: len(local_name) - len(name)]
    # The whole job id makes the name unique per (job, index); the visible part is cut so the
    # name stays under NAME_MAX (255 bytes) whatever the local name's length (a name of at
    # most a quarter of that many characters is that short in UTF-8 whatever they are).
    visible = name if len(name) * 4 <= _VISIBLE_NAME_BYTES else _cut(name, _VISIBLE_NAME_BYTES)
    return f"{folder}.{visible}.{job_id.replace('-', '')}-{index}{TEMP_SUFFIX}"


def check_local_name(local_name: str, good_folders: dict[str, bool] | None = None) -> str:
    """Validate a download's local name and return it normalised. ``good_folders``, when
    given, holds folders that passed these checks already in the same call (a file set in one
    folder checks it once), each with whether it had no subfolder (``_has_no_subfolder``: then
    no name in it is looked up to see whether it is one), and gains this name's.

    Raises:
        InvalidArgumentError: empty, relative, containing NUL or text that is not UTF-8 (a
            lone surrogate: ``bitsd._text``), a folder, or a name with no file; with hresult
            HRESULT_FROM_WIN32(ERROR_FILENAME_EXCED_RANGE), a name longer than NAME_MAX or
            one whose path, or its temporary file's, would reach PATH_MAX (no file could be
            made there: the transfer or Complete would fail).
        BitsError: the folder does not exist (HRESULT_FROM_WIN32(ERROR_PATH_NOT_FOUND)) or is
            not writable (E_ACCESSDENIED).
    """
    if not local_name or "\x00" in local_name:
        raise InvalidArgumentError(f"invalid local name {local_name!r}")
    check_text("local name", local_name)
    if not os.path.isabs(local_name):
        raise InvalidArgumentError(f"the local name must be an absolute path: {local_name!r}")
    if local_name.endswith(os.sep):
        raise InvalidArgumentError(f"the local name names a folder: {local_name!r}")
    # A name with no "//" and no segment that starts with "." is normal already.
    normalised = (
        os.path.normpath(local_name) if "//" in local_name or "/." in local_name else local_name
    )
    _check_name_length(normalised)
    folder = _folder_of(normalised)
    leaf = good_folders.get(folder) if good_folders is not None else None
    known = leaf is not None
    if leaf is None:
        leaf = _has_no_subfolder(folder)
    if not leaf and os.path.isdir(normalised):
        raise InvalidArgumentError(f"the local name is an existing folder: {normalised}")
    if not known and not os.access(folder, os.W_OK | os.X_OK):
        raise BitsError(f"the local folder {folder} is not writable", hresult=codes.E_ACCESSDENIED)
    if good_folders is not None:
        good_folders[folder] = leaf
    return normalised


def _has_no_subfolder(folder: str) -> bool:
    """Whether ``folder`` has no subfolder, as its link count tells on the file systems that
    count a folder's subfolders in it (``_COUNTING_FILE_SYSTEMS``: 2 = none); False where that
    cannot be told. GNU find's leaf optimisation, for the same reason: a job of thousands of
    files in one new folder costs one look at the folder, not one per name.

    Raises:
        BitsError: ``folder`` does not exist or is no folder
            (HRESULT_FROM_WIN32(ERROR_PATH_NOT_FOUND)).
    """
    try:
        # O_PATH: the folder's own permissions do not matter (a write-only drop folder).
        fd = os.open(folder, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        raise BitsError(
            f"the local folder {folder} does not exist",
            hresult=codes.hresult_from_errno(errno.ENOTDIR),
        ) from None
    try:
        return os.fstat(fd).st_nlink == 2 and _file_system(fd) in _COUNTING_FILE_SYSTEMS
    finally:
        os.close(fd)


def _folder_of(normalised: str) -> str:
    """``os.path.dirname`` of a normalised absolute name, by string operations (the two leading
    slashes POSIX lets a name keep go to os.path)."""
    if normalised.startswith("//"):
        return os.path.dirname(normalised)
    return normalised[: normalised.rfind("/")] or "/"


def _check_name_length(normalised: str) -> None:
    """Refuse a normalised local name the kernel would refuse (ENAMETOOLONG): one whose last
    name is over NAME_MAX bytes, or whose path or temporary file's path reaches PATH_MAX."""
    whole = normalised.encode()
    cut = whole.rfind(b"/")
    name = len(whole) - cut - 1
    # The bytes of os.path.split's head: "/" for the root's names, "//" for those of "//".
    folder = max(cut, 2 if whole.startswith(b"//") else 1)
    temp_path = folder + 1 + min(name, _VISIBLE_NAME_BYTES) + _TEMP_NAME_EXTRA
    if name > _NAME_MAX or max(folder + 1 + name, temp_path) >= _PATH_MAX:
        raise InvalidArgumentError(
            f"the local name is too long for a file name: {normalised!r}",
            hresult=codes.hresult_from_errno(errno.ENAMETOOLONG),
        )


def open_temp(temp_name: str, keep: int | None) -> tuple[int, int]:
    """Open the temporary file for writing, cut to its first ``keep`` bytes; with ``keep``
    None (an on-demand file, written at any offset), nothing is cut.

    Returns:
        A file descriptor and the offset it is positioned at: ``keep``, or 0 when the file
        holds fewer bytes (it was damaged: it is emptied) or ``keep`` is None.

    Raises:
        OSError: the file cannot be opened (classified by the caller's boundary).
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    if keep == 0:  # a new transfer: one system call
        return os.open(temp_name, flags | os.O_TRUNC, 0o666), 0
    fd = os.open(temp_name, flags, 0o666)
    if keep is None:
        return fd, 0
    try:
        size = os.fstat(fd).st_size
        if size < keep:
            # Fewer bytes than the checkpoint says: the file was damaged; start again.
            keep = 0
        if size != keep:
            os.ftruncate(fd, keep)
        if keep:
            os.lseek(fd, keep, os.SEEK_SET)  # a file opened anew is at 0
    except BaseException:
        os.close(fd)
        raise
    return fd, keep


def flush_temp(fd: int) -> None:
    """Make the temporary file's data durable (fsync) and check it still has a name.

    Raises:
        FileNotFoundError: the file was deleted (or its folder removed) while it was open.
        OSError: the flush failed.
    """
    os.fsync(fd)
    if os.fstat(fd).st_nlink == 0:
        raise FileNotFoundError(errno.ENOENT, "the temporary file was deleted during the transfer")


# statfs(2) f_type of the file systems that keep files in memory only (linux/magic.h).
_MEMORY_FILE_SYSTEMS = frozenset({0x01021994, 0x858458F6})  # TMPFS_MAGIC, RAMFS_MAGIC


def _load_fstatfs() -> object | None:
    """libc's fstatfs through ctypes, or None where it cannot be had."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fstatfs = libc.fstatfs
    except (OSError, AttributeError):
        return None
    fstatfs.argtypes = [ctypes.c_int, ctypes.c_void_p]
    fstatfs.restype = ctypes.c_int
    return fstatfs


_fstatfs = _load_fstatfs()


# statfs(2) f_type of the file systems whose folders count their subfolders in their link count
# (2 + one per subfolder; linux/magic.h): ext2/3/4, XFS, F2FS, tmpfs, ramfs. Others (btrfs: 1,
# network and FUSE file systems: what the server says) are not trusted with it.
_COUNTING_FILE_SYSTEMS = frozenset({0xEF53, 0x58465342, 0xF2F52010, *_MEMORY_FILE_SYSTEMS})


def _file_system(fd: int) -> int | None:
    """The statfs(2) f_type of the file system of the open file ``fd``; None when it cannot
    be told (no fstatfs)."""
    if _fstatfs is None:
        return None
    # struct statfs begins with f_type, a C long (__fsword_t) on Linux; 256 bytes hold the
    # whole structure (120 on 64-bit systems).
    buffer = ctypes.create_string_buffer(256)
    if _fstatfs(fd, buffer) != 0:  # type: ignore[operator]
        return None
    return ctypes.c_long.from_buffer(buffer).value & 0xFFFFFFFF


def memory_backed(fd: int) -> bool:
    """Whether the open file ``fd`` lives on a memory-backed file system (tmpfs, ramfs), where
    fsync returns at once. False when that cannot be told (no fstatfs)."""
    return _file_system(fd) in _MEMORY_FILE_SYSTEMS


def folder_memory_backed(folder: str) -> bool:
    """Whether ``folder`` is on a memory-backed file system (``memory_backed``); False when it
    cannot be opened or told."""
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        return memory_backed(fd)
    finally:
        os.close(fd)


def folders_of(pairs: Sequence[tuple[str, str]]) -> list[str]:
    """The folders of the final names of (temporary, final) ``pairs``, each once, in order."""
    return list(dict.fromkeys(os.path.dirname(local) or "." for _, local in pairs))


def temp_size(temp_name: str) -> int | None:
    """Size of the temporary file, or None if it does not exist."""
    try:
        return os.lstat(temp_name).st_size
    except FileNotFoundError:
        return None


def rename_all_into_place(pairs: list[tuple[str, str]]) -> tuple[int, OSError | None]:
    """Move finished temporary files to their final names, in order, then make the renames
    durable with one fsync per folder (not one per file).

    Returns:
        How many pairs were renamed, and the error that stopped the next one (or None). The
        renames done stay done, and are made durable, also when one fails.
    """
    done = 0
    failure: OSError | None = None
    for temp_name, local_name in pairs:
        try:
            os.replace(temp_name, local_name)
        except OSError as exc:
            failure = exc
            break
        done += 1
    for folder in folders_of(pairs[:done]):
        with contextlib.suppress(OSError):
            dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
    return done, failure


def rename_into_place(temp_name: str, local_name: str) -> None:
    """Atomically move a finished temporary file to its final name and make the rename durable."""
    os.replace(temp_name, local_name)
    with contextlib.suppress(OSError):
        dir_fd = os.open(os.path.dirname(local_name) or ".", os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def delete_quietly(path: str) -> bool:
    """Delete ``path`` if it exists. Returns False only if it exists and could not be deleted."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return True
