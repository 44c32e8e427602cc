"""``?files=rows`` of Cancel and Complete over a real Unix socket: the answer lists the ended
job's files as FileRows, the same values as the File objects the answer has without it (the
daemon served in the test's event loop, files from a loopback HTTP server)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import jsonschema
import pytest

from bitsd import codes
from bitsd._wire import files_from_rows
from bitsd.daemon import openapi
from tests.daemon.test_api import call, error_of, new_job
from tests.servers.faulty import FaultServer

A = os.urandom(30_000)
B = os.urandom(20_000)


@pytest.fixture
async def server() -> AsyncIterator[FaultServer]:
    """A loopback HTTP server with /a and /b; 404 for every other path."""
    async with FaultServer() as s:
        s.add("/a", A)
        s.add("/b", B)
        yield s


async def add(api: aiohttp.ClientSession, base: str, *files: dict[str, Any]) -> None:
    status, body = await call(api, "POST", f"{base}/files", {"files": list(files)})
    assert status == 200, body


async def finished(api: aiohttp.ClientSession, base: str) -> str:
    """Resume the job and wait until it is TRANSFERRED or in ERROR: that state."""
    assert (await call(api, "POST", f"{base}/resume"))[0] == 200
    status, waited = await call(api, "GET", f"{base}/wait?states=TRANSFERRED,ERROR&timeout=10")
    assert (status, waited["timed_out"]) == (200, False)
    return str(waited["state"])


async def listed(api: aiohttp.ClientSession, base: str) -> list[dict[str, Any]]:
    status, body = await call(api, "GET", f"{base}/files")
    assert status == 200
    return list(body["files"])


def assert_end_result(ended: dict[str, Any]) -> None:
    """``ended`` is an EndResult of the OpenAPI document."""
    schema = {
        "$ref": "#/components/schemas/EndResult",
        "components": openapi.DOCUMENT["components"],
    }
    jsonschema.Draft202012Validator(schema).validate(ended)


def assert_ended(ended: dict[str, Any], hresult: int, state: str) -> None:
    """The answer's fields but the files, as without ``files=rows``; an EndResult."""
    assert_end_result(ended)
    assert set(ended) == {"hresult", "name", "state", "job", "file_rows", "reply"}
    assert (ended["hresult"], ended["name"], ended["state"]) == (
        hresult,
        codes.name_of(hresult),
        state,
    )
    assert (ended["job"]["state"], ended["reply"]) == (state, None)
    # The columns, by name: the contract of every client, bitsd's or not.
    assert ended["file_rows"]["fields"] == [
        "remote_name",
        "local_name",
        "temporary_name",
        "bytes_total",
        "bytes_transferred",
        "completed",
        "ranges",
        "validated",
        "filled_ranges",
    ]


async def test_complete_with_rows_lists_a_transferred_jobs_files(
    api: aiohttp.ClientSession, server: FaultServer, short_dir: Path
) -> None:
    """``complete?files=rows`` of a TRANSFERRED job: S_OK, ACKNOWLEDGED, and one row per file,
    its values in the order of ``fields``, which rebuild the files as the job listed them (a
    validated file, a file added with ranges)."""
    job = await new_job(api, "rows")
    base = f"/v1/jobs/{job['id']}"
    a, b = str(short_dir / "a"), str(short_dir / "b")
    await add(api, base, {"remote_name": server.url("/a"), "local_name": a})
    ranges = [[100, 50], [0, 10]]
    await add(api, base, {"remote_name": server.url("/b"), "local_name": b, "ranges": ranges})
    assert await finished(api, base) == "TRANSFERRED"
    status, _ = await call(api, "PUT", f"{base}/files/0/validation", {"valid": True})
    assert status == 200
    before = await listed(api, base)
    status, ended = await call(api, "POST", f"{base}/complete?files=rows")
    assert status == 200
    assert_ended(ended, codes.S_OK, "ACKNOWLEDGED")
    temporary = [f["temporary_name"] for f in before]
    assert ended["file_rows"]["rows"] == [
        [server.url("/a"), a, temporary[0], 30_000, 30_000, True, [], True, [[0, 30_000]]],
        [server.url("/b"), b, temporary[1], 60, 60, True, ranges, False, None],
    ]
    assert files_from_rows(ended["file_rows"]) == before
    assert (short_dir / "a").read_bytes() == A
    assert (short_dir / "b").read_bytes() == B[100:150] + B[:10]


async def test_complete_with_rows_lists_a_partly_transferred_jobs_files(
    api: aiohttp.ClientSession, server: FaultServer, short_dir: Path
) -> None:
    """``complete?files=rows`` of a job in ERROR with one file of two transferred:
    BG_S_PARTIAL_COMPLETE, and the rows of both files, the one never fetched of unknown size."""
    job = await new_job(api, "partial")
    base = f"/v1/jobs/{job['id']}"
    a, m = str(short_dir / "a"), str(short_dir / "m")
    await add(
        api,
        base,
        {"remote_name": server.url("/a"), "local_name": a},
        {"remote_name": server.url("/missing"), "local_name": m},
    )
    assert await finished(api, base) == "ERROR"
    before = await listed(api, base)
    status, ended = await call(api, "POST", f"{base}/complete?files=rows")
    assert status == 200
    assert_ended(ended, codes.BG_S_PARTIAL_COMPLETE, "ACKNOWLEDGED")
    temporary = [f["temporary_name"] for f in before]
    assert ended["file_rows"]["rows"] == [
        [server.url("/a"), a, temporary[0], 30_000, 30_000, True, [], False, [[0, 30_000]]],
        [server.url("/missing"), m, temporary[1], codes.SIZE_UNKNOWN, 0, False, [], False, []],
    ]
    assert files_from_rows(ended["file_rows"]) == before
    assert (short_dir / "a").read_bytes() == A
    assert not (short_dir / "m").exists()


async def test_cancel_with_rows_lists_the_cancelled_jobs_files(
    api: aiohttp.ClientSession, server: FaultServer, short_dir: Path
) -> None:
    """``cancel?files=rows``: S_OK, CANCELLED, and the rows of the files as they were; the
    same job's answer without it (``files=objects``) has them as File objects."""
    job = await new_job(api, "cancelled")
    base = f"/v1/jobs/{job['id']}"
    a, b = str(short_dir / "a"), str(short_dir / "b")
    await add(api, base, {"remote_name": server.url("/a"), "local_name": a})
    await add(api, base, {"remote_name": server.url("/b"), "local_name": b, "ranges": [[0, 5]]})
    before = await listed(api, base)
    status, ended = await call(api, "POST", f"{base}/cancel?files=rows")
    assert status == 200
    assert_ended(ended, codes.S_OK, "CANCELLED")
    temporary = [f["temporary_name"] for f in before]
    unknown = codes.SIZE_UNKNOWN
    assert ended["file_rows"]["rows"] == [
        [server.url("/a"), a, temporary[0], unknown, 0, False, [], False, []],
        [server.url("/b"), b, temporary[1], unknown, 0, False, [[0, 5]], False, None],
    ]
    assert files_from_rows(ended["file_rows"]) == before
    # The object form, asked by name, is the answer without the parameter.
    other = await new_job(api, "objects")
    other_base = f"/v1/jobs/{other['id']}"
    await add(api, other_base, {"remote_name": server.url("/a"), "local_name": a})
    before = await listed(api, other_base)
    status, ended = await call(api, "POST", f"{other_base}/cancel?files=objects")
    assert status == 200
    assert set(ended) == {"hresult", "name", "state", "job", "files", "reply"}
    assert ended["files"] == before
    assert_end_result(ended)


@pytest.mark.parametrize("verb", ["complete", "cancel"])
@pytest.mark.parametrize("value", ["row", "", "ROWS", "objects,rows"])
async def test_another_files_value_is_400_and_ends_nothing(
    api: aiohttp.ClientSession, verb: str, value: str
) -> None:
    """``files`` is objects or rows: another value is 400 E_INVALIDARG, in the error shape of
    every bad query, and the job is not ended."""
    job = await new_job(api, "bad")
    base = f"/v1/jobs/{job['id']}"
    status, body = await call(api, "POST", f"{base}/{verb}?files={value}")
    assert (status, error_of(body)) == (400, (codes.E_INVALIDARG, "E_INVALIDARG"))
    assert "files" in body["error"]["message"]
    status, still = await call(api, "GET", base)
    assert (status, still["state"]) == (200, "SUSPENDED")
