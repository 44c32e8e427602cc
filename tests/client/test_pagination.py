"""jobs() follows the daemon's pages: every live job once, oldest first."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bitsd.aio import Manager, connect
from tests.client.conftest import SHARED_CONFIG
from tests.client.daemon import http_json, running_daemon

pytestmark = pytest.mark.e2e  # every test here talks to a real daemon process


@pytest.fixture
async def lone_manager() -> AsyncIterator[Manager]:
    """A client of a daemon of its own, with no jobs but the test's (and no job limit)."""
    with running_daemon(SHARED_CONFIG) as daemon:
        async with await connect(socket_path=daemon.socket, autostart=False) as m:
            yield m


async def test_jobs_follows_pages_beyond_the_default_page(lone_manager: Manager) -> None:
    """With 1,001 jobs (one more than a default page of 1,000), jobs() returns all of them,
    each once, in the order the daemon lists them (oldest first)."""
    sem = asyncio.Semaphore(32)

    async def create(i: int) -> str:
        async with sem:
            return (await lone_manager.create_job(f"page {i}")).id

    created = await asyncio.gather(*(create(i) for i in range(1001)))
    listed = [j.id for j in await lone_manager.jobs()]
    assert sorted(listed) == sorted(created)
    status, first = http_json(lone_manager.socket_path, "GET", "/v1/jobs?offset=0&limit=1000")
    assert status == 200
    assert first["total"] == 1001
    assert first["next_offset"] == 1000
    assert listed[:1000] == [j["id"] for j in first["jobs"]]


async def test_small_pages_give_the_same_list_as_one_page(lone_manager: Manager) -> None:
    """Pages of 7 give exactly the one-page list (order kept, no job twice or missing), and a
    job cancelled in between is no longer listed."""
    created = [(await lone_manager.create_job(f"small {i}")).id for i in range(30)]
    whole = [j.id for j in await lone_manager.jobs()]
    assert whole == created
    lone_manager._page_size = 7
    assert [j.id for j in await lone_manager.jobs()] == created
    await (await lone_manager.get_job(created[3])).cancel()
    assert [j.id for j in await lone_manager.jobs()] == created[:3] + created[4:]


async def test_jobs_that_end_between_pages_do_not_hide_others(
    lone_manager: Manager, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Jobs of the first page that end before the second page is asked for move the later
    jobs forward; jobs() steps back by as many and still lists every live job once."""
    created = [(await lone_manager.create_job(f"shift {i}")).id for i in range(20)]
    lone_manager._page_size = 5
    request = lone_manager._request
    pages = 0

    async def request_then_cancel(method: str, path: str, **kwargs: Any) -> Any:
        nonlocal pages
        answer = await request(method, path, **kwargs)
        if path == "/v1/jobs":
            pages += 1
            if pages == 1:
                for job_id in created[:3]:
                    status, _ = http_json(
                        lone_manager.socket_path, "POST", f"/v1/jobs/{job_id}/cancel"
                    )
                    assert status == 200
        return answer

    monkeypatch.setattr(lone_manager, "_request", request_then_cancel)
    listed = [j.id for j in await lone_manager.jobs()]
    assert listed[:5] == created[:5], "the first page was read before the cancels"
    assert listed[5:] == created[5:]
