"""The clients have the engine's surface: same method names, parameters and return types, so
code moves between in-process and daemon by changing one line. No daemon needed here."""

from __future__ import annotations

import inspect
import time
from pathlib import Path

import pytest

import bitsd
import bitsd.aio
from bitsd import BitsError, codes
from bitsd._client import DAEMON_UNAVAILABLE, RemoteJob, result_hresult
from bitsd._sync import Job as SyncJob
from bitsd._sync import Manager as SyncManager
from bitsd.aio import Engine, Job, Manager

MANAGER_VERBS = ["create_job", "get_job", "jobs", "close"]
# The job verbs that control API v1 (docs/control-api.md) carries. bitsd.aio.Job has more
# (HTTP options, ranges, validation...); the API has no routes for them yet.
CONTRACT_JOB_METHODS = [
    "add_file",
    "add_file_set",
    "files",
    "resume",
    "suspend",
    "cancel",
    "complete",
    "wait",
    "get_state",
    "get_type",
    "get_progress",
    "get_times",
    "get_error",
    "get_error_count",
    "get_owner",
    *(
        f"{verb}_{prop}"
        for prop in (
            "priority",
            "display_name",
            "description",
            "minimum_retry_delay",
            "no_progress_timeout",
            "maximum_download_time",
            "dynamic_content",
            "notify_flags",
            "notify_interface",
            "notify_cmd_line",
        )
        for verb in ("set", "get")
    ),
]


def public_methods(cls: type) -> list[str]:
    """Names of the public callables defined on ``cls``."""
    return sorted(n for n, v in vars(cls).items() if not n.startswith("_") and callable(v))


def shape(fn: object, *, drop_async: bool = False) -> tuple[object, ...]:
    """Parameters (name, kind, default, annotation) and return annotation of ``fn``, with the
    classes of the two sides named alike."""
    sig = inspect.signature(fn)  # type: ignore[arg-type]

    def same(text: object) -> object:
        for name in ("RemoteJob", "SyncJob", "Job", "Manager", "Engine"):
            text = str(text).replace(name, "JOB" if "Job" in name else "MANAGER")
        return text

    params = tuple((p.name, p.kind, p.default, same(p.annotation)) for p in sig.parameters.values())
    return (params, same(sig.return_annotation))


def test_remote_job_has_the_contract_methods_with_the_engine_signatures() -> None:
    """RemoteJob's public methods are the job verbs of control API v1, each a coroutine with
    the same signature as bitsd.aio.Job's method of that name."""
    assert public_methods(RemoteJob) == sorted(CONTRACT_JOB_METHODS)
    for name in CONTRACT_JOB_METHODS:
        assert inspect.iscoroutinefunction(getattr(RemoteJob, name)), name
        assert shape(getattr(RemoteJob, name)) == shape(getattr(Job, name)), name


def test_sync_job_has_the_remote_job_methods_as_blocking_calls() -> None:
    """The sync client's Job has RemoteJob's methods, plain functions with the same
    signatures."""
    assert public_methods(SyncJob) == public_methods(RemoteJob)
    for name in public_methods(RemoteJob):
        assert not inspect.iscoroutinefunction(getattr(SyncJob, name)), name
        assert shape(getattr(SyncJob, name)) == shape(getattr(Job, name)), name


def test_managers_have_the_engine_verbs() -> None:
    """bitsd.aio.Manager has Engine's create_job, get_job, jobs and close with the same
    signatures (coroutines); bitsd.Manager has them as blocking calls."""
    for name in MANAGER_VERBS:
        engine_verb = getattr(Engine, name)
        assert inspect.iscoroutinefunction(getattr(Manager, name)), name
        assert shape(getattr(Manager, name)) == shape(engine_verb), name
        assert not inspect.iscoroutinefunction(getattr(SyncManager, name)), name
        assert shape(getattr(SyncManager, name)) == shape(engine_verb), name


def test_public_names() -> None:
    """bitsd.connect / bitsd.Manager are the sync client, bitsd.aio.connect /
    bitsd.aio.Manager the async one; both connects take the same keyword arguments."""
    assert bitsd.Manager is SyncManager
    assert bitsd.aio.Manager is Manager
    assert inspect.iscoroutinefunction(bitsd.aio.connect)
    assert not inspect.iscoroutinefunction(bitsd.connect)
    assert inspect.signature(bitsd.connect).parameters.keys() == {
        "socket_path",
        "autostart",
        "timeout",
    }
    assert shape(bitsd.connect)[0] == shape(bitsd.aio.connect)[0]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, 0),
        (True, 0),
        (False, 0),
        ("text", 0),
        (codes.S_OK, 0),
        (codes.S_FALSE, 0),
        (codes.BG_S_PARTIAL_COMPLETE, 0),
        (codes.E_FAIL, 0x80004005),
        (-2147467259, 0x80004005),  # E_FAIL in its signed form
        (codes.BG_E_HTTP_ERROR_404, 0x80190194),
        (-(2**40), codes.E_FAIL),  # no HRESULT at all: a failure all the same
    ],
)
def test_result_hresult(value: object, expected: int) -> None:
    """A callback's return value becomes the result HRESULT sent to the daemon as the engine
    reads it: success codes and non-ints accept (0), failures go unsigned."""
    assert result_hresult(value) == expected


async def test_no_daemon_and_no_autostart_is_daemon_unavailable(tmp_path: Path) -> None:
    """connect(autostart=False) with nobody on the socket raises BitsError with
    HRESULT_FROM_WIN32(RPC_S_SERVER_UNAVAILABLE) once the timeout passes."""
    started = time.monotonic()
    with pytest.raises(BitsError) as info:
        await bitsd.aio.connect(socket_path=tmp_path / "none.sock", autostart=False, timeout=0.3)
    assert info.value.hresult == DAEMON_UNAVAILABLE == 0x800706BA
    assert "unreachable" in info.value.message
    assert str(tmp_path / "none.sock") in info.value.message
    assert 0.2 <= time.monotonic() - started < 3


def test_sync_connect_failure_leaves_no_thread(tmp_path: Path) -> None:
    """bitsd.connect that fails raises the same BitsError and stops its private loop thread."""
    import threading

    before = {t.ident for t in threading.enumerate()}
    with pytest.raises(BitsError) as info:
        bitsd.connect(socket_path=tmp_path / "none.sock", autostart=False, timeout=0.1)
    assert info.value.hresult == DAEMON_UNAVAILABLE
    left = [t for t in threading.enumerate() if t.ident not in before and t.is_alive()]
    assert [t.name for t in left if t.name == "bitsd-client-loop"] == []
