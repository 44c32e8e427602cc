"""The control API over a real Unix socket: every route, its errors, and a daemon that keeps
serving after each of them (daemon served in the test's event loop)."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import starlette.routing

import bitsd
from bitsd import codes
from bitsd.daemon import shapes
from bitsd.daemon.paths import Paths
from bitsd.daemon.service import Daemon
from tests.daemon.conftest import unix_session, write_config


async def call(
    api: aiohttp.ClientSession,
    method: str,
    path: str,
    body: Any = None,
    *,
    data: str | bytes | None = None,
) -> tuple[int, Any]:
    """(status, decoded JSON body) of one request."""
    async with api.request(method, path, json=body, data=data) as response:
        assert response.content_type == "application/json", await response.text()
        return response.status, await response.json()


async def still_serves(api: aiohttp.ClientSession) -> None:
    """The daemon answers a plain request."""
    assert (await call(api, "GET", "/v1/version"))[0] == 200


async def new_job(api: aiohttp.ClientSession, name: str = "job") -> dict[str, Any]:
    status, job = await call(api, "POST", "/v1/jobs", {"display_name": name})
    assert status == 201
    return dict(job)


def error_of(body: dict[str, Any]) -> tuple[int, str]:
    """(hresult, name) of an error body, checking its shape."""
    detail = body["error"]
    assert set(detail) == {"hresult", "name", "message"}
    assert detail["message"]
    return detail["hresult"], detail["name"]


async def test_version_names_the_daemon(api: aiohttp.ClientSession) -> None:
    """GET /v1/version: the package version, API 1, and the serving process's pid and uid."""
    assert await call(api, "GET", "/v1/version") == (
        200,
        {"version": bitsd.__version__, "api": 1, "pid": os.getpid(), "uid": os.geteuid()},
    )


async def test_download_through_every_verb(api: aiohttp.ClientSession, short_dir: Path) -> None:
    """Create, add files, list them, resume, wait, complete: the file appears at its final name;
    the completed job is gone (404)."""
    source = short_dir / "source.bin"
    source.write_bytes(os.urandom(100_000))
    job = await new_job(api, "copy")
    assert (job["state"], job["type"], job["priority"]) == ("SUSPENDED", "DOWNLOAD", "NORMAL")
    assert job["owner"] == os.geteuid()
    base = f"/v1/jobs/{job['id']}"
    status, added = await call(
        api,
        "POST",
        f"{base}/files",
        {"files": [{"remote_name": source.as_uri(), "local_name": str(short_dir / "copy.bin")}]},
    )
    assert status == 200
    assert [f["local_name"] for f in added["files"]] == [str(short_dir / "copy.bin")]
    assert (await call(api, "GET", f"{base}/files"))[1] == added
    status, resumed = await call(api, "POST", f"{base}/resume")
    assert (status, resumed["hresult"], resumed["name"]) == (200, 0, "S_OK")
    status, waited = await call(api, "GET", f"{base}/wait?states=TRANSFERRED,ERROR&timeout=10")
    assert waited == {"state": "TRANSFERRED", "timed_out": False}
    status, done = await call(api, "GET", base)
    assert done["progress"]["bytes_transferred"] == 100_000
    assert done["times"]["transfer_completion_time"] is not None
    status, ended = await call(api, "POST", f"{base}/complete")
    assert (status, ended["hresult"], ended["name"], ended["state"]) == (
        200,
        0,
        "S_OK",
        "ACKNOWLEDGED",
    )
    # The job as it ended, which the daemon forgets: what a client keeps for its getters.
    assert ended["job"]["id"] == job["id"]
    assert ended["job"]["state"] == "ACKNOWLEDGED"
    assert ended["job"]["progress"]["bytes_transferred"] == 100_000
    assert [(f["local_name"], f["progress"]["completed"]) for f in ended["files"]] == [
        (str(short_dir / "copy.bin"), True)
    ]
    assert ended["reply"] is None
    assert (short_dir / "copy.bin").read_bytes() == source.read_bytes()
    status, body = await call(api, "GET", base)
    assert (status, error_of(body)) == (404, (codes.BG_E_NOT_FOUND, "BG_E_NOT_FOUND"))


async def test_suspend_and_cancel(api: aiohttp.ClientSession, short_dir: Path) -> None:
    """Suspend answers S_OK and SUSPENDED; cancel answers its code and CANCELLED."""
    job = await new_job(api)
    base = f"/v1/jobs/{job['id']}"
    assert (await call(api, "POST", f"{base}/suspend"))[1]["state"] == "SUSPENDED"
    status, ended = await call(api, "POST", f"{base}/cancel")
    assert (status, ended["hresult"], ended["name"], ended["state"]) == (
        200,
        0,
        "S_OK",
        "CANCELLED",
    )
    assert (ended["job"]["state"], ended["files"], ended["reply"]) == ("CANCELLED", [], None)
    assert (await call(api, "GET", "/v1/jobs"))[1]["total"] == 0


async def test_jobs_are_listed_oldest_first_in_pages(api: aiohttp.ClientSession) -> None:
    """GET /v1/jobs pages through the jobs with offset and limit; next_offset ends with null."""
    ids = [(await new_job(api, f"j{i}"))["id"] for i in range(5)]
    seen: list[str] = []
    offset: int | None = 0
    while offset is not None:
        status, page = await call(api, "GET", f"/v1/jobs?offset={offset}&limit=2")
        assert status == 200
        assert page["total"] == 5
        seen += [job["id"] for job in page["jobs"]]
        offset = page["next_offset"]
    assert seen == ids
    assert [j["id"] for j in (await call(api, "GET", "/v1/jobs"))[1]["jobs"]] == ids


async def test_brief_view_lists_id_state_and_creation_time(api: aiohttp.ClientSession) -> None:
    """view=brief answers JobBrief objects in the same order as the full view, with the same
    ids, states and creation times."""
    ids = [(await new_job(api, f"j{i}"))["id"] for i in range(3)]
    await call(api, "POST", f"/v1/jobs/{ids[1]}/cancel")
    full = (await call(api, "GET", "/v1/jobs"))[1]["jobs"]
    status, page = await call(api, "GET", "/v1/jobs?view=brief&limit=1&offset=1")
    assert status == 200
    assert (page["total"], page["next_offset"]) == (2, None)
    assert page["jobs"] == [
        {
            "id": ids[2],
            "state": "SUSPENDED",
            "creation_time": full[1]["times"]["creation_time"],
        }
    ]


async def test_create_with_view_brief_answers_the_new_jobs_brief(
    api: aiohttp.ClientSession,
) -> None:
    """``POST /v1/jobs?view=brief`` creates the job as the full view does and answers its
    JobBrief (what a client keeps: the id); another view is refused and creates nothing."""
    status, brief = await call(api, "POST", "/v1/jobs?view=brief", {"display_name": "b"})
    assert status == 201
    full = (await call(api, "GET", f"/v1/jobs/{brief['id']}"))[1]
    assert brief == {
        "id": full["id"],
        "state": "SUSPENDED",
        "creation_time": full["times"]["creation_time"],
    }
    assert full["display_name"] == "b"
    status, body = await call(api, "POST", "/v1/jobs?view=short", {"display_name": "c"})
    assert (status, error_of(body)[1]) == (400, "E_INVALIDARG")
    assert (await call(api, "GET", "/v1/jobs"))[1]["total"] == 1


@pytest.mark.parametrize(
    "query", ["limit=0", "limit=10001", "offset=-1", "limit=two", "offset=1.5", "view=all"]
)
async def test_bad_page_parameters_are_400(api: aiohttp.ClientSession, query: str) -> None:
    """limit is 1..10000 and offset >= 0, both integers; view is full or brief."""
    status, body = await call(api, "GET", f"/v1/jobs?{query}")
    assert (status, error_of(body)[1]) == (400, "E_INVALIDARG")


async def test_patch_sets_every_property(api: aiohttp.ClientSession) -> None:
    """Every PATCH field reaches its setter; enums accept names in any case or numbers."""
    job = await new_job(api)
    patch = {
        "display_name": "renamed",
        "description": "about",
        "priority": "foreground",
        "minimum_retry_delay": 1,
        "no_progress_timeout": 120,
        "maximum_download_time": 0,
        "dynamic_content": True,
        "notify_flags": 0x1B,
        "notify_cmd_line": {"program": "/bin/true", "parameters": "true --done"},
    }
    status, patched = await call(api, "PATCH", f"/v1/jobs/{job['id']}", patch)
    assert status == 200
    assert {key: patched[key] for key in patch} == {
        **patch,
        "priority": "FOREGROUND",
        "minimum_retry_delay": 5.0,  # BITS's floor
    }
    status, patched = await call(api, "PATCH", f"/v1/jobs/{job['id']}", {"priority": 3})
    assert patched["priority"] == "LOW"


@pytest.mark.parametrize(
    ("patch", "status", "name"),
    [
        ({"description": "ok", "priority": "URGENT"}, 400, "E_INVALIDARG"),
        ({"display_name": "ok", "no_progress_timeout": -1}, 400, "E_INVALIDARG"),
        # Integers beyond every float: they answered 500 (OverflowError).
        ({"display_name": "ok", "minimum_retry_delay": 10**400}, 400, "E_INVALIDARG"),
        ({"display_name": "ok", "no_progress_timeout": 10**309}, 400, "E_INVALIDARG"),
        ({"display_name": "ok", "maximum_download_time": -(10**309)}, 400, "E_INVALIDARG"),
        # Byte counts the store cannot hold (over 2**63 - 1): they answered 500 (OverflowError)
        # after the fields before them had been applied.
        (
            {"on_demand": False, "maximum_download_size": 2**63},
            400,
            "BG_E_MAX_DOWNLOAD_SIZE_INVALID_VALUE",
        ),
        ({"display_name": "ok", "bandwidth_limit": 2**64}, 400, "E_INVALIDARG"),
        ({"display_name": "ok", "colour": "red"}, 400, "E_INVALIDARG"),
        # Flags and priorities BITS does not define: E_NOTIMPL, as SetNotifyFlags and
        # SetPriority answer them and the engine raises (they were 400 E_INVALIDARG).
        ({"display_name": "ok", "notify_flags": 0x40}, 501, "E_NOTIMPL"),
        ({"display_name": "ok", "notify_flags": -1}, 501, "E_NOTIMPL"),
        ({"display_name": "ok", "priority": 9}, 501, "E_NOTIMPL"),
        ({"display_name": "ok", "priority": -1}, 501, "E_NOTIMPL"),
        ({"display_name": "ok", "notify_flags": True}, 400, "E_INVALIDARG"),
        ({"display_name": "ok", "dynamic_content": "yes"}, 400, "E_INVALIDARG"),
        ({"display_name": "ok", "description": "x" * 1025}, 400, "BG_E_STRING_TOO_LONG"),
        ({"display_name": "ok", "notify_cmd_line": {"program": "true"}}, 400, "E_INVALIDARG"),
        ({"display_name": "ok", "notify_cmd_line": {"parameters": "x"}}, 400, "E_INVALIDARG"),
        (["display_name"], 400, "E_INVALIDARG"),
    ],
)
async def test_patch_changes_nothing_when_a_field_is_bad(
    api: aiohttp.ClientSession, patch: Any, status: int, name: str
) -> None:
    """One bad field refuses the whole PATCH: the good fields beside it are not applied."""
    job = await new_job(api, "original")
    answer, body = await call(api, "PATCH", f"/v1/jobs/{job['id']}", patch)
    assert (answer, error_of(body)[1]) == (status, name)
    after = (await call(api, "GET", f"/v1/jobs/{job['id']}"))[1]
    assert after["display_name"] == "original"
    assert after["times"] == job["times"]


async def test_patch_refused_by_the_state_changes_nothing(
    api: aiohttp.ClientSession, short_dir: Path
) -> None:
    """dynamic_content after the first Resume is 409 BG_E_READ_ONLY_PROPERTY_AFTER_RESUME, and
    the display name sent with it is not applied."""
    job = await new_job(api, "original")
    base = f"/v1/jobs/{job['id']}"
    source = short_dir / "s"
    source.write_bytes(b"x")
    files = {"files": [{"remote_name": str(source), "local_name": str(short_dir / "d")}]}
    assert (await call(api, "POST", f"{base}/files", files))[0] == 200
    assert (await call(api, "POST", f"{base}/resume"))[0] == 200
    status, body = await call(api, "PATCH", base, {"display_name": "new", "dynamic_content": True})
    assert (status, error_of(body)[1]) == (409, "BG_E_READ_ONLY_PROPERTY_AFTER_RESUME")
    assert (await call(api, "GET", base))[1]["display_name"] == "original"


@pytest.mark.parametrize(
    ("job_type", "patch", "status", "name"),
    [
        # The second setter refused what the first had applied already (the job changed).
        (
            "DOWNLOAD",
            {"on_demand": False, "dynamic_content": True},
            409,
            "BG_E_UNSUPPORTED_JOB_CONFIGURATION",
        ),
        (
            "UPLOAD",
            {"on_demand": False, "dynamic_content": True},
            400,
            "BG_E_PROPERTY_SUPPORTED_FOR_DOWNLOAD_JOBS_ONLY",
        ),
        (
            "UPLOAD",
            {"dynamic_content": False, "http_method": "PUT"},
            400,
            "BG_E_PROPERTY_SUPPORTED_FOR_DOWNLOAD_JOBS_ONLY",
        ),
        (
            "UPLOAD_REPLY",
            {"http_method": "get", "maximum_download_size": 5},
            400,
            "BG_E_PROPERTY_SUPPORTED_FOR_DOWNLOAD_JOBS_ONLY",
        ),
    ],
)
async def test_patch_refused_by_the_jobs_files_or_type_changes_nothing(
    api: aiohttp.ClientSession,
    short_dir: Path,
    job_type: str,
    patch: dict[str, Any],
    status: int,
    name: str,
) -> None:
    """Dynamic content for a download job with a file added with ranges, and a download-only
    property other than its default for an upload job, are refused before the fields that
    come first (on_demand, dynamic_content, http_method set to their defaults) are applied:
    the job is exactly as it was, modification time included."""
    source = short_dir / "s"
    source.write_bytes(b"x")
    file: dict[str, Any] = {"remote_name": "https://example.org/up", "local_name": str(source)}
    if job_type == "DOWNLOAD":
        file = {
            "remote_name": "https://example.org/r",
            "local_name": str(short_dir / "r"),
            "ranges": [[0, 10]],
        }
    job = (await call(api, "POST", "/v1/jobs", {"display_name": "j", "type": job_type}))[1]
    base = f"/v1/jobs/{job['id']}"
    assert (await call(api, "POST", f"{base}/files", {"files": [file]}))[0] == 200
    before = await call(api, "GET", base)
    answer, body = await call(api, "PATCH", base, patch)
    assert (answer, error_of(body)[1]) == (status, name)
    assert await call(api, "GET", base) == before


async def test_add_files_is_all_or_none(api: aiohttp.ClientSession, short_dir: Path) -> None:
    """A set with one bad file adds none of them."""
    job = await new_job(api)
    base = f"/v1/jobs/{job['id']}"
    files = [
        {"remote_name": "https://example.org/a", "local_name": str(short_dir / "a")},
        {"remote_name": "https://example.org/b", "local_name": "relative/b"},
    ]
    status, body = await call(api, "POST", f"{base}/files", {"files": files})
    assert (status, error_of(body)[1]) == (400, "E_INVALIDARG")
    assert await call(api, "GET", f"{base}/files") == (200, {"files": []})
    status, body = await call(api, "POST", f"{base}/files", {"files": []})
    assert status == 400


async def test_create_with_files_priority_and_resume_in_one_request(
    api: aiohttp.ClientSession, short_dir: Path
) -> None:
    """POST /v1/jobs with files, priority and resume: the new job has its files and priority,
    is queued, and transfers."""
    source = short_dir / "source.bin"
    source.write_bytes(os.urandom(10_000))
    files = [{"remote_name": source.as_uri(), "local_name": str(short_dir / "copy.bin")}]
    status, job = await call(
        api,
        "POST",
        "/v1/jobs",
        {"display_name": "one", "files": files, "priority": "high", "resume": True},
    )
    assert (status, job["priority"], job["progress"]["files_total"]) == (201, "HIGH", 1)
    assert job["state"] != "SUSPENDED"
    base = f"/v1/jobs/{job['id']}"
    status, waited = await call(api, "GET", f"{base}/wait?states=TRANSFERRED,ERROR&timeout=10")
    assert waited == {"state": "TRANSFERRED", "timed_out": False}
    status, listed = await call(api, "GET", f"{base}/files")
    assert [f["local_name"] for f in listed["files"]] == [str(short_dir / "copy.bin")]


@pytest.mark.parametrize(
    ("extra", "error"),
    [
        ({"files": [{"remote_name": "https://example.org/a", "local_name": "rel/a"}]}, 400),
        ({"files": []}, 400),
        ({"files": [{"remote_name": "https://example.org/a", "sha256": "00"}]}, 400),
        ({"priority": "urgent"}, 400),
        ({"priority": 4}, 501),  # E_NOTIMPL, as SetPriority answers it (was 400)
        ({"resume": "yes"}, 400),
        ({"resume": True}, 409),  # Resume of a job without files: BG_E_EMPTY
    ],
)
async def test_create_that_cannot_set_the_job_up_leaves_no_job(
    api: aiohttp.ClientSession, short_dir: Path, extra: dict[str, Any], error: int
) -> None:
    """A body whose files, priority or resume is refused gets the error, and no job stays."""
    status, body = await call(api, "POST", "/v1/jobs", {"display_name": "half", **extra})
    assert status == error, body
    assert error_of(body)
    assert (await call(api, "GET", "/v1/jobs"))[1]["total"] == 0


async def test_add_files_with_view_brief_answers_the_count_only(
    api: aiohttp.ClientSession, short_dir: Path
) -> None:
    """``view=brief`` adds the files as the full view does and answers only how many were
    added (a client adding thousands of files does not need them listed back); another view
    is refused before anything is added."""
    job = await new_job(api)
    base = f"/v1/jobs/{job['id']}"
    first = [{"remote_name": "https://example.org/a", "local_name": str(short_dir / "a")}]
    rest = [
        {"remote_name": f"https://example.org/{n}", "local_name": str(short_dir / n)}
        for n in ("b", "c", "d")
    ]
    assert await call(api, "POST", f"{base}/files?view=brief", {"files": first}) == (
        200,
        {"added": 1},
    )
    assert await call(api, "POST", f"{base}/files?view=brief", {"files": rest}) == (
        200,
        {"added": 3},
    )
    status, body = await call(api, "POST", f"{base}/files?view=short", {"files": rest})
    assert (status, error_of(body)[1]) == (400, "E_INVALIDARG")
    status, listed = await call(api, "GET", f"{base}/files")
    assert [f["local_name"] for f in listed["files"]] == [
        str(short_dir / n) for n in ("a", "b", "c", "d")
    ]


async def test_caller_errors_and_the_daemon_goes_on(api: aiohttp.ClientSession) -> None:
    """Each caller error gets its status and BITS code, and the daemon keeps serving."""
    job = await new_job(api)
    base = f"/v1/jobs/{job['id']}"
    unknown = "/v1/jobs/0b9c0000-0000-0000-0000-000000000000"
    cases = [
        ("GET", unknown, None, None, 404, "BG_E_NOT_FOUND"),
        ("GET", "/v1/jobs/not-a-uuid", None, None, 404, "BG_E_NOT_FOUND"),
        ("POST", f"{base}/resume", None, None, 409, "BG_E_EMPTY"),
        ("GET", f"{base}/error", None, None, 409, "BG_E_ERROR_INFORMATION_UNAVAILABLE"),
        ("POST", "/v1/jobs", None, '{"display_name": ', 400, "E_INVALIDARG"),
        ("POST", "/v1/jobs", None, "\xff", 400, "E_INVALIDARG"),
        ("POST", "/v1/jobs", [1, 2], None, 400, "E_INVALIDARG"),
        ("POST", "/v1/jobs", {"display_name": 7}, None, 400, "E_INVALIDARG"),
        ("POST", "/v1/jobs", {"display_name": "x" * 1025}, None, 400, "BG_E_STRING_TOO_LONG"),
        ("POST", "/v1/jobs", {"display_name": "u", "type": "SIDEWAYS"}, None, 400, "E_INVALIDARG"),
        ("GET", "/v1/nothing", None, None, 404, "E_NOTIMPL"),
        ("GET", "/v2/jobs", None, None, 404, "E_NOTIMPL"),
        ("DELETE", "/v1/jobs", None, None, 405, "E_NOTIMPL"),
        ("PUT", base, {}, None, 405, "E_NOTIMPL"),
    ]
    for method, path, body, data, status, name in cases:
        answer, error = await call(api, method, path, body, data=data)
        assert (answer, error_of(error)[1]) == (status, name), (method, path, error)
        await still_serves(api)


@pytest.mark.parametrize(
    ("method", "route", "data", "where"),
    [
        ("POST", "", b'{"display_name": "\\ud800"}', "display_name"),
        ("PATCH", "/{id}", b'{"description": "a\\udfffb"}', "description"),
        ("PATCH", "/{id}", b'{"custom_headers": "X-A: \\ud800\\r\\n"}', "custom_headers"),
        ("PATCH", "/{id}", b'{"ca_bundle": "/\\ud800"}', "ca_bundle"),
        ("PATCH", "/{id}", b'{"proxy": {"usage": 2, "list": "\\udc80"}}', "proxy.list"),
        ("PATCH", "/{id}", b'{"display_name": "\xed\xa0\x80"}', "display_name"),  # as bytes
        (
            "POST",
            "/{id}/files",
            b'{"files": [{"remote_name": "https://example.org/a", "local_name": "/tmp/\\ud800"}]}',
            "files[0].local_name",
        ),
        (
            "PUT",
            "/{id}/credentials",
            b'{"target": 1, "scheme": 1, "user_name": "\\ud800", "password": "p"}',
            "user_name",
        ),
        ("PUT", "/{id}/reply/file-name", b'{"path": "/tmp/\\udbff"}', "path"),
    ],
)
async def test_a_lone_surrogate_is_400_naming_where_it_is(
    api: aiohttp.ClientSession, method: str, route: str, data: bytes, where: str
) -> None:
    """A JSON string with a lone surrogate (``"\\ud800"``, or its UTF-8 bytes) is no Unicode
    text: 400 E_INVALIDARG naming where it is, and nothing changes. (It answered 500 where it
    was stored or quoted in an error, UnicodeEncodeError; credentials took it, to fail the
    transfer that sends them.)"""
    status, job = await call(
        api, "POST", "/v1/jobs", {"display_name": "unchanged", "type": "UPLOAD_REPLY"}
    )
    path = "/v1/jobs" + route.format(id=job["id"])
    status, body = await call(api, method, path, data=data)
    assert (status, error_of(body)[1]) == (400, "E_INVALIDARG"), body
    assert body["error"]["message"].startswith(f"{where} has a lone surrogate"), body
    assert (await call(api, "GET", f"/v1/jobs/{job['id']}"))[1] == job
    assert (await call(api, "GET", "/v1/jobs"))[1]["total"] == 1


@pytest.mark.parametrize("depth", [1_000, 100_000])
async def test_a_body_nested_beyond_the_decoder_is_400(
    api: aiohttp.ClientSession, depth: int
) -> None:
    """A body of ``depth`` nested lists, deeper than Python's JSON decoder goes, is malformed
    JSON: 400 E_INVALIDARG. (It answered 500: RecursionError.)"""
    job = await new_job(api)
    for method, path in (("POST", "/v1/jobs"), ("PATCH", f"/v1/jobs/{job['id']}")):
        status, body = await call(api, method, path, data="[" * depth + "]" * depth)
        assert (status, error_of(body)[1]) == (400, "E_INVALIDARG"), body
        assert "nests too deeply" in body["error"]["message"]


async def test_wrong_method_lists_every_allowed_method(api: aiohttp.ClientSession) -> None:
    """405 carries an Allow header with the methods of all routes of the path."""
    async with api.delete("/v1/jobs") as response:
        assert response.status == 405
        assert response.headers["Allow"] == "GET, HEAD, POST"


async def test_bug_is_500_logged_and_the_daemon_goes_on(
    api: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """An unexpected exception in a route answers 500 E_UNEXPECTED, is logged with its
    traceback, and the next request is served."""
    job = await new_job(api)

    async def broken(job: object) -> dict[str, Any]:
        raise RuntimeError("a bug")

    monkeypatch.setattr("bitsd.daemon.app.job_to_json", broken)
    with caplog.at_level(logging.ERROR, "bitsd.daemon"):
        status, body = await call(api, "GET", f"/v1/jobs/{job['id']}")
    assert (status, error_of(body)[1]) == (500, "E_UNEXPECTED")
    (record,) = [r for r in caplog.records if r.getMessage() == "http.bug"]
    assert record.exc_info is not None
    await still_serves(api)


async def test_wait_times_out_with_the_current_state(api: aiohttp.ClientSession) -> None:
    """A wait that runs out answers the current state and timed_out; a state already reached
    answers at once even with a zero timeout."""
    job = await new_job(api)
    base = f"/v1/jobs/{job['id']}/wait"
    started = time.monotonic()
    assert await call(api, "GET", f"{base}?states=transferred,6&timeout=0.2") == (
        200,
        {"state": "SUSPENDED", "timed_out": True},
    )
    assert time.monotonic() - started < 2
    assert await call(api, "GET", f"{base}?states=SUSPENDED&timeout=0") == (
        200,
        {"state": "SUSPENDED", "timed_out": False},
    )
    for query in ("", "states=", "states=DONE", "states=ERROR&timeout=-1", "states=3&timeout=x"):
        status, body = await call(api, "GET", f"{base}?{query}")
        assert (status, error_of(body)[1]) == (400, "E_INVALIDARG"), query


def test_wait_timeout_is_capped() -> None:
    """A longer timeout waits 60 s at most; none given waits 30 s."""
    assert shapes.wait_params({"states": "ERROR", "timeout": "3600"})[1] == 60.0
    assert shapes.wait_params({"states": "ERROR"})[1] == 30.0


async def test_stopping_daemon_answers_pending_waits(paths: Paths) -> None:
    """A wait in progress answers timed_out as soon as the daemon stops, so the stop is quick."""
    write_config(paths.config)
    async with unix_session(paths.socket) as api:
        async with Daemon(paths):
            job = await new_job(api)
            waiting = asyncio.ensure_future(
                call(api, "GET", f"/v1/jobs/{job['id']}/wait?states=ERROR&timeout=30")
            )
            await asyncio.sleep(0.2)
            started = time.monotonic()
        assert time.monotonic() - started < 2
        assert await waiting == (200, {"state": "SUSPENDED", "timed_out": True})


async def test_wait_for_a_state_reached_already_answers_without_waiting(
    api: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A wait whose job is in one of the states already is answered from the state alone:
    no waiting task is started for it."""
    job = await new_job(api)

    async def no_wait(*_: object) -> None:
        raise AssertionError("a waiting task was started")

    monkeypatch.setattr(bitsd.aio.Job, "wait", no_wait)
    status, waited = await call(api, "GET", f"/v1/jobs/{job['id']}/wait?states=SUSPENDED,ERROR")
    assert (status, waited) == (200, {"state": "SUSPENDED", "timed_out": False})


async def test_the_calls_every_job_makes_skip_the_router(
    api: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch, short_dir: Path
) -> None:
    """Create, add files, resume, wait, get and complete are dispatched without trying the
    router's routes; any other call goes through the router."""
    tried: list[str] = []
    matches = starlette.routing.Route.matches

    def noting(route: starlette.routing.Route, scope: Any) -> Any:
        tried.append(route.path)
        return matches(route, scope)

    monkeypatch.setattr(starlette.routing.Route, "matches", noting)
    source = short_dir / "hot.bin"
    source.write_bytes(b"x" * 1000)
    job = await new_job(api, "hot")
    base = f"/v1/jobs/{job['id']}"
    files = {"files": [{"remote_name": str(source), "local_name": str(short_dir / "out.bin")}]}
    assert (await call(api, "POST", f"{base}/files", files))[0] == 200
    assert (await call(api, "POST", f"{base}/resume"))[0] == 200
    status, waited = await call(api, "GET", f"{base}/wait?states=TRANSFERRED,ERROR&timeout=10")
    assert (status, waited["state"]) == (200, "TRANSFERRED")
    assert (await call(api, "GET", base))[0] == 200
    assert (await call(api, "POST", f"{base}/complete"))[0] == 200
    assert tried == []
    assert (await call(api, "GET", "/v1/version"))[0] == 200
    assert "/v1/version" in tried
