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


def test_remote_job_has_exactly_the_engine_job_methods_with_their_signatures() -> None:
    """RemoteJob's public methods are exactly bitsd.aio.Job's (every verb has a route), each a
    coroutine with the same signature: parameters, defaults, annotations and return."""
    assert public_methods(RemoteJob) == public_methods(Job)
    for name in public_methods(Job):
        assert inspect.iscoroutinefunction(getattr(RemoteJob, name)), name
        assert shape(getattr(RemoteJob, name)) == shape(getattr(Job, name)), name


def test_sync_job_has_exactly_the_engine_job_methods_as_blocking_calls() -> None:
    """The sync client's Job has exactly bitsd.aio.Job's methods, plain functions with the
    same signatures."""
    assert public_methods(SyncJob) == public_methods(Job)
    for name in public_methods(Job):
        assert not inspect.iscoroutinefunction(getattr(SyncJob, name)), name
        assert shape(getattr(SyncJob, name)) == shape(getattr(Job, name)), name


def test_the_issue_6_methods_are_part_of_the_surface() -> None:
    """The surface compared above holds the HTTP options, ranges, validation and snapshot
    verbs (so a Job that lost them could not make the comparison pass trivially)."""
    assert {
        "add_file_with_ranges",
        "get_file_ranges",
        "replace_remote_prefix",
        "set_validation_state",
        "get_validation_state",
        "snapshot",
        "set_custom_headers",
        "make_custom_headers_write_only",
        "set_credentials",
        "remove_credentials",
        "set_proxy_settings",
        "set_client_certificate",
        "remove_client_certificate",
        "set_transfer_policy",
        "set_bandwidth_limit",
    } <= set(public_methods(Job))


def test_the_on_demand_methods_are_part_of_the_surface() -> None:
    """The IBackgroundCopyFile6 verbs and the on-demand property are on bitsd.aio.Job, so the
    comparisons above pin them on both clients."""
    assert {
        "set_on_demand",
        "get_on_demand",
        "request_file_ranges",
        "get_filled_file_ranges",
        "update_download_position",
    } <= set(public_methods(Job))


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
