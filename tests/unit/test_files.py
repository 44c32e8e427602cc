"""Unit tests for a download's local files (bitsd._files): names, validation, the temporary
file, the rename on Complete and quiet deletion."""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import bitsd
import bitsd._files
from bitsd import codes
from bitsd._errors import InvalidArgumentError
from bitsd._files import (
    TEMP_SUFFIX,
    check_local_name,
    delete_quietly,
    folder_memory_backed,
    folders_of,
    memory_backed,
    open_temp,
    rename_into_place,
    temp_name_for,
    temp_size,
)

JOB_A = "0123456789abcdef0123456789abcdef"
JOB_B = "fedcba9876543210fedcba9876543210"


# --- temp_name_for ------------------------------------------------------------------------------


def test_temp_name_is_in_the_same_folder(tmp_path: Path) -> None:
    """The temporary file sits next to the final file (same file system, atomic rename)."""
    local = str(tmp_path / "sub" / "file.bin")
    assert str(tmp_path / "sub") == os.path.dirname(temp_name_for(local, JOB_A, 0))


def test_temp_name_is_hidden_and_marked(tmp_path: Path) -> None:
    """The temporary name starts with a dot, names the file and ends with TEMP_SUFFIX."""
    name = os.path.basename(temp_name_for(str(tmp_path / "file.bin"), JOB_A, 0))
    assert name.startswith(".")
    assert "file.bin" in name
    assert name.endswith(TEMP_SUFFIX)


def test_temp_name_is_unique_per_job_and_index(tmp_path: Path) -> None:
    """Two jobs, or two files of one job, never share a temporary name for the same file."""
    local = str(tmp_path / "file.bin")
    names = {temp_name_for(local, job, index) for job in (JOB_A, JOB_B) for index in range(3)}
    assert len(names) == 6
    assert local not in names


def test_temp_name_differs_for_jobs_with_a_common_id_prefix(tmp_path: Path) -> None:
    """Two jobs whose ids share their first characters still get different temporary names
    for the same local file (ids are uuid4 strings; only the whole id is unique)."""
    local = str(tmp_path / "file.bin")
    first = "1b4e28ba-2fa1-4dd2-883f-0016d3cca427"
    second = "1b4e28ba-9c3e-4a01-b5e2-7f00aa113399"
    assert temp_name_for(local, first, 0) != temp_name_for(local, second, 0)


@pytest.mark.parametrize("stem", ["a" * 251, "é" * 125, "名" * 83])
def test_temp_name_fits_in_name_max_for_the_longest_local_names(tmp_path: Path, stem: str) -> None:
    """Even for a local name at NAME_MAX (255 bytes), the temporary name fits in 255 bytes."""
    local = str(tmp_path / f"{stem}.bin")
    assert len(os.path.basename(local).encode()) <= 255
    name = os.path.basename(temp_name_for(local, "1b4e28ba-2fa1-4dd2-883f-0016d3cca427", 199))
    assert len(name.encode()) <= 255
    assert name.endswith(TEMP_SUFFIX)


def test_temp_name_is_stable(tmp_path: Path) -> None:
    """The same (local name, job, index) always gives the same temporary name (resume)."""
    local = str(tmp_path / "file.bin")
    assert temp_name_for(local, JOB_A, 2) == temp_name_for(local, JOB_A, 2)


# --- check_local_name ---------------------------------------------------------------------------


def test_valid_local_name_is_returned_normalised(tmp_path: Path) -> None:
    """An absolute name in an existing folder is accepted and normalised."""
    messy = f"{tmp_path}/./sub/../file.bin"
    (tmp_path / "sub").mkdir()
    assert str(tmp_path / "file.bin") == check_local_name(messy)


def test_existing_file_is_accepted(tmp_path: Path) -> None:
    """A name that already exists as a file is accepted (Complete replaces it)."""
    target = tmp_path / "file.bin"
    target.write_bytes(b"old")
    assert str(target) == check_local_name(str(target))


@pytest.mark.parametrize("name", ["", "file.bin", "sub/file.bin", "./file.bin", "../file.bin"])
def test_empty_or_relative_local_name_is_invalid_argument(name: str) -> None:
    """An empty or relative local name raises InvalidArgumentError (E_INVALIDARG)."""
    with pytest.raises(bitsd.InvalidArgumentError) as info:
        check_local_name(name)
    assert info.value.hresult == codes.E_INVALIDARG


def test_nul_in_local_name_is_invalid_argument(tmp_path: Path) -> None:
    """A local name containing NUL raises InvalidArgumentError."""
    with pytest.raises(bitsd.InvalidArgumentError):
        check_local_name(f"{tmp_path}/a\x00b")


def test_missing_folder_is_path_not_found(tmp_path: Path) -> None:
    """A name in a folder that does not exist raises BitsError with
    HRESULT_FROM_WIN32(ERROR_PATH_NOT_FOUND) = 0x80070003."""
    with pytest.raises(bitsd.BitsError) as info:
        check_local_name(str(tmp_path / "missing" / "file.bin"))
    assert codes.HRESULT_FROM_WIN32(3) == info.value.hresult
    assert info.value.hresult == 0x80070003
    assert not isinstance(info.value, bitsd.InvalidArgumentError)


def test_good_folders_are_checked_once_per_call(tmp_path: Path) -> None:
    """With good_folders, a folder that passed is not checked again (a file set in one
    folder), a name that is a folder is still refused, and a bad folder is never added."""
    good: dict[str, bool] = {}
    (tmp_path / "folder").mkdir()
    assert check_local_name(str(tmp_path / "a"), good) == str(tmp_path / "a")
    assert good == {str(tmp_path): False}  # it has a subfolder
    with pytest.raises(bitsd.InvalidArgumentError):
        check_local_name(str(tmp_path / "folder"), good)
    with pytest.raises(bitsd.BitsError):
        check_local_name(str(tmp_path / "missing" / "b"), good)
    (tmp_path / "a").write_bytes(b"")
    with pytest.raises(bitsd.BitsError):
        check_local_name(str(tmp_path / "a" / "b"), good)  # a file where the folder goes
    assert good == {str(tmp_path): False}
    good[str(tmp_path / "missing")] = False  # what the caller vouches for is taken as checked
    assert check_local_name(str(tmp_path / "missing" / "b"), good)


@pytest.fixture
def memory_folder() -> Iterator[Path]:
    """A new folder on tmpfs (/dev/shm), a file system that counts subfolders in a folder's
    link count."""
    if not os.path.isdir("/dev/shm") or not folder_memory_backed("/dev/shm"):
        pytest.skip("no tmpfs at /dev/shm")
    folder = Path(tempfile.mkdtemp(dir="/dev/shm"))
    yield folder
    shutil.rmtree(folder)


def test_a_folder_without_subfolders_is_told_by_its_link_count(memory_folder: Path) -> None:
    """A folder is known to have no subfolder from its link count where the file system
    counts them (tmpfs here): its names are then not looked up one by one; once it has one,
    every name is, and the subfolder's own name is refused."""
    good: dict[str, bool] = {}
    names = [str(memory_folder / f"f{i}") for i in range(3)]
    assert [check_local_name(n, good) for n in names] == names
    assert good == {str(memory_folder): True}
    (memory_folder / "sub").mkdir()
    good.clear()
    assert check_local_name(names[0], good) == names[0]
    assert good == {str(memory_folder): False}
    with pytest.raises(bitsd.InvalidArgumentError):
        check_local_name(str(memory_folder / "sub"), good)
    (memory_folder / "sub").rmdir()
    assert check_local_name(str(memory_folder / "sub"), {}) == str(memory_folder / "sub")


def test_a_write_only_folder_is_accepted(memory_folder: Path) -> None:
    """A folder its owner may write and search but not read (a drop folder) takes files: its
    link count is read without reading it. Root reads any folder, so as root the check runs
    in a child process as ``nobody`` (65534), the folder's owner."""
    drop = memory_folder / "drop"
    drop.mkdir(mode=0o300)
    if os.geteuid() != 0:
        assert check_local_name(str(drop / "a"), {}) == str(drop / "a")
        return
    memory_folder.chmod(0o711)
    os.chown(drop, 65534, 65534)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 2
        try:
            os.setgid(65534)
            os.setuid(65534)
            code = 0 if check_local_name(str(drop / "a"), {}) == str(drop / "a") else 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_existing_folder_name_is_invalid_argument(tmp_path: Path) -> None:
    """A local name that is an existing folder raises InvalidArgumentError."""
    (tmp_path / "folder").mkdir()
    with pytest.raises(bitsd.InvalidArgumentError) as info:
        check_local_name(str(tmp_path / "folder"))
    assert info.value.hresult == codes.E_INVALIDARG


def test_name_ending_in_separator_is_invalid_argument(tmp_path: Path) -> None:
    """A local name ending with a path separator names a folder: InvalidArgumentError."""
    with pytest.raises(bitsd.InvalidArgumentError):
        check_local_name(f"{tmp_path}{os.sep}")


def test_unwritable_folder_is_access_denied(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A name in a folder the user cannot write raises BitsError with E_ACCESSDENIED."""
    folder = tmp_path / "ro"
    folder.mkdir()
    real_access = os.access

    def access(path: str, mode: int) -> bool:
        # Root may write anywhere; pretend this one folder is read-only for everyone.
        return False if os.fspath(path) == str(folder) else real_access(path, mode)

    monkeypatch.setattr(os, "access", access)
    with pytest.raises(bitsd.BitsError) as info:
        check_local_name(str(folder / "file.bin"))
    assert info.value.hresult == codes.E_ACCESSDENIED


# --- open_temp ----------------------------------------------------------------------------------


def _write_through(fd: int, data: bytes) -> None:
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def test_open_temp_creates_an_empty_file(tmp_path: Path) -> None:
    """A new temporary file is created empty and the descriptor is positioned at 0."""
    temp = tmp_path / ".file.tmp"
    fd, offset = open_temp(str(temp), keep=0)
    try:
        assert offset == os.lseek(fd, 0, os.SEEK_CUR) == 0
    finally:
        os.close(fd)
    assert temp.stat().st_size == 0


@pytest.mark.parametrize("keep", [0, None])
def test_open_temp_keep_zero_empties_and_none_keeps(tmp_path: Path, keep: int | None) -> None:
    """keep=0 (a transfer from the start) empties a file that holds bytes; None (an on-demand
    file) keeps them; both are positioned at 0."""
    temp = tmp_path / ".file.tmp"
    temp.write_bytes(b"old bytes")
    fd, offset = open_temp(str(temp), keep=keep)
    assert offset == os.lseek(fd, 0, os.SEEK_CUR) == 0
    _write_through(fd, b"new")
    assert temp.read_bytes() == (b"new" if keep == 0 else b"new bytes")


def test_open_temp_truncates_to_keep(tmp_path: Path) -> None:
    """The file is cut to its first ``keep`` bytes and writing continues at ``keep``."""
    temp = tmp_path / ".file.tmp"
    temp.write_bytes(b"0123456789")
    fd, offset = open_temp(str(temp), keep=4)
    assert offset == os.lseek(fd, 0, os.SEEK_CUR) == 4
    _write_through(fd, b"XY")
    assert temp.read_bytes() == b"0123XY"


def test_open_temp_keep_equal_to_size_keeps_everything(tmp_path: Path) -> None:
    """keep equal to the file size keeps every byte and appends after them."""
    temp = tmp_path / ".file.tmp"
    temp.write_bytes(b"abc")
    fd, offset = open_temp(str(temp), keep=3)
    assert offset == 3
    _write_through(fd, b"d")
    assert temp.read_bytes() == b"abcd"


def test_open_temp_restarts_when_file_is_shorter_than_keep(tmp_path: Path) -> None:
    """A file shorter than the checkpoint is damaged: it is emptied and writing starts at 0."""
    temp = tmp_path / ".file.tmp"
    temp.write_bytes(b"abc")
    fd, offset = open_temp(str(temp), keep=10)
    assert offset == os.lseek(fd, 0, os.SEEK_CUR) == 0
    _write_through(fd, b"new")
    assert temp.read_bytes() == b"new"


def test_open_temp_missing_file_with_keep_starts_at_zero(tmp_path: Path) -> None:
    """A checkpoint whose temporary file is gone restarts from 0 on a new file."""
    temp = tmp_path / ".file.tmp"
    fd, offset = open_temp(str(temp), keep=100)
    assert offset == os.lseek(fd, 0, os.SEEK_CUR) == 0
    os.close(fd)
    assert temp_size(str(temp)) == 0


def test_open_temp_refuses_a_planted_symlink(tmp_path: Path) -> None:
    """A symlink planted at the temporary name is not followed (OSError ELOOP); its target
    is left alone."""
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    temp = tmp_path / ".file.tmp"
    temp.symlink_to(victim)
    with pytest.raises(OSError, match="symbolic links") as info:
        open_temp(str(temp), keep=0)
    assert info.value.errno == errno.ELOOP
    assert victim.read_bytes() == b"precious"


def test_open_temp_refuses_a_dangling_symlink(tmp_path: Path) -> None:
    """A dangling symlink at the temporary name is not followed to create its target."""
    target = tmp_path / "created-through-link"
    temp = tmp_path / ".file.tmp"
    temp.symlink_to(target)
    with pytest.raises(OSError, match="symbolic links") as info:
        open_temp(str(temp), keep=0)
    assert info.value.errno == errno.ELOOP
    assert not target.exists()


# --- temp_size, rename_into_place, delete_quietly -----------------------------------------------


def test_temp_size(tmp_path: Path) -> None:
    """temp_size is the file's size, or None when it does not exist."""
    temp = tmp_path / ".file.tmp"
    assert temp_size(str(temp)) is None
    temp.write_bytes(b"12345")
    assert temp_size(str(temp)) == 5


def test_rename_into_place_moves_the_file(tmp_path: Path) -> None:
    """rename_into_place moves the temporary file to the final name."""
    temp, final = tmp_path / ".file.tmp", tmp_path / "file.bin"
    temp.write_bytes(b"payload")
    rename_into_place(str(temp), str(final))
    assert (temp.exists(), final.read_bytes()) == (False, b"payload")


def test_rename_into_place_replaces_an_existing_file(tmp_path: Path) -> None:
    """An existing file at the final name is replaced, as BITS does (MoveFileEx REPLACE)."""
    temp, final = tmp_path / ".file.tmp", tmp_path / "file.bin"
    temp.write_bytes(b"new")
    final.write_bytes(b"old contents")
    rename_into_place(str(temp), str(final))
    assert (temp.exists(), final.read_bytes()) == (False, b"new")


def test_rename_into_place_missing_temp_raises(tmp_path: Path) -> None:
    """A missing temporary file is an OSError (the caller classifies it)."""
    with pytest.raises(FileNotFoundError):
        rename_into_place(str(tmp_path / ".gone.tmp"), str(tmp_path / "file.bin"))


def test_delete_quietly_removes_a_file(tmp_path: Path) -> None:
    """delete_quietly deletes an existing file and reports success."""
    path = tmp_path / "x"
    path.write_bytes(b"x")
    assert delete_quietly(str(path)) is True
    assert not path.exists()


def test_delete_quietly_missing_file_is_success(tmp_path: Path) -> None:
    """Deleting a file that does not exist is a success, not an error."""
    assert delete_quietly(str(tmp_path / "missing")) is True


def test_delete_quietly_reports_failure_without_raising(tmp_path: Path) -> None:
    """A path that exists but cannot be unlinked (a folder) gives False, never an exception."""
    folder = tmp_path / "folder"
    folder.mkdir()
    assert delete_quietly(str(folder)) is False
    assert folder.is_dir()


# --- memory_backed ------------------------------------------------------------------------------


def _mount_types() -> dict[str, str]:
    """Mount point -> file system type, from /proc/self/mounts."""
    with open("/proc/self/mounts") as mounts:
        return {fields[1]: fields[2] for fields in (line.split() for line in mounts)}


@pytest.mark.skipif(
    _mount_types().get("/dev/shm") != "tmpfs", reason="needs /dev/shm mounted as tmpfs"
)
def test_memory_backed_knows_tmpfs_from_a_disk(tmp_path: Path) -> None:
    """statfs's type decides: a file on /dev/shm (tmpfs) is memory-backed; one on the file
    system of the root folder is so only if that one is tmpfs or ramfs too."""
    fd = os.open(f"/dev/shm/bitsd-test-{os.getpid()}", os.O_CREAT | os.O_WRONLY, 0o600)
    try:
        assert memory_backed(fd) is True
    finally:
        os.close(fd)
        os.unlink(f"/dev/shm/bitsd-test-{os.getpid()}")
    root = os.open("/", os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert memory_backed(root) is (_mount_types().get("/") in ("tmpfs", "ramfs"))
    finally:
        os.close(root)


def test_memory_backed_is_false_for_what_it_cannot_tell() -> None:
    r, w = os.pipe()
    os.close(r)
    os.close(w)
    assert memory_backed(w) is False  # a closed descriptor: fstatfs fails


@pytest.mark.skipif(
    _mount_types().get("/dev/shm") != "tmpfs", reason="needs /dev/shm mounted as tmpfs"
)
def test_a_folder_is_memory_backed_as_its_file_system_is(tmp_path: Path) -> None:
    assert folder_memory_backed("/dev/shm") is True
    assert folder_memory_backed("/") is (_mount_types().get("/") in ("tmpfs", "ramfs"))
    assert folder_memory_backed(str(tmp_path / "missing")) is False  # cannot be told


def test_folders_of_names_each_folder_once_in_order() -> None:
    pairs = [("/a/.x.tmp", "/a/x"), ("/b/.y.tmp", "/b/y"), ("/a/.z.tmp", "/a/z"), (".w", "w")]
    assert folders_of(pairs) == ["/a", "/b", "."]


_NAME_PART = st.lists(
    st.sampled_from(["a", "é", "\u2100", "😀", ".", "..", "-", " ", "x" * 40]), max_size=8
).map("".join)


@settings(deadline=None)
@given(parts=st.lists(_NAME_PART, min_size=1, max_size=4), slashes=st.sampled_from(["/", "//"]))
def test_names_are_cut_and_joined_as_os_path_would(parts: list[str], slashes: str) -> None:
    """``check_local_name``'s normal form, folder and length check, and ``temp_name_for``, are
    those of ``os.path`` (normpath, dirname, split and join), found with string operations."""
    local = "/" + slashes.join(parts)
    if not parts[-1] or local.endswith("/"):
        return
    normal = os.path.normpath(local)
    fast = os.path.normpath(local) if "//" in local or "/." in local else local
    assert fast == normal
    assert bitsd._files._folder_of(normal) == os.path.dirname(normal)
    folder, name = os.path.split(normal)
    job = "12345678-aaaa-bbbb-cccc-1234567890ab"
    visible = bitsd._files._cut(name, bitsd._files._VISIBLE_NAME_BYTES)
    expected = os.path.join(folder, f".{visible}.{job.replace('-', '')}-7{TEMP_SUFFIX}")
    assert temp_name_for(normal, job, 7) == expected
    head, tail = os.path.split(normal.encode())
    too_long = (
        len(tail) > 255
        or max(
            len(head) + 1 + len(tail),
            len(head) + 1 + min(len(tail), 180) + bitsd._files._TEMP_NAME_EXTRA,
        )
        >= 4096
    )
    try:
        bitsd._files._check_name_length(normal)
    except InvalidArgumentError:
        assert too_long
    else:
        assert not too_long
