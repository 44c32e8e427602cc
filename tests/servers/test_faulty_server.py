"""Tests of the fault-injecting loopback HTTP server, with aiohttp as a real client."""

from __future__ import annotations

import asyncio
import email.utils
import random
import threading
import time
import urllib.request
from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.servers.faulty import Fault, FaultServer

BODY = random.Random(1234).randbytes(300_000)
"""A body spanning several 64 KiB chunks."""


@pytest.fixture
async def server() -> AsyncIterator[FaultServer]:
    """A started server, serving ``BODY`` at ``/file``."""
    async with FaultServer() as srv:
        srv.add("/file", BODY)
        yield srv


@pytest.fixture
async def session(server: FaultServer) -> AsyncIterator[aiohttp.ClientSession]:
    """An aiohttp session, closed before the server stops."""
    async with aiohttp.ClientSession() as client:
        yield client


async def read_until_error(response: aiohttp.ClientResponse) -> tuple[bytes, Exception | None]:
    """Read the body chunk by chunk; return what arrived and the error that ended it."""
    received = bytearray()
    try:
        while chunk := await response.content.read(16 * 1024):
            received += chunk
    except (aiohttp.ClientError, TimeoutError) as exc:
        return bytes(received), exc
    return bytes(received), None


async def test_full_get_with_validators(
    server: FaultServer, session: aiohttp.ClientSession
) -> None:
    """A plain GET returns the whole body with ETag, Last-Modified and Accept-Ranges."""
    async with session.get(server.url("/file")) as resp:
        assert resp.status == 200
        assert await resp.read() == BODY
        assert resp.headers["Content-Length"] == str(len(BODY))
        assert resp.headers["Accept-Ranges"] == "bytes"
        etag = resp.headers["ETag"]
        assert etag.startswith('"')
        assert etag.endswith('"')
        assert email.utils.parsedate_to_datetime(resp.headers["Last-Modified"]) is not None


async def test_ranged_get(server: FaultServer, session: aiohttp.ClientSession) -> None:
    """``bytes=a-b`` and ``bytes=a-`` give 206 with the right Content-Range and bytes."""
    async with session.get(server.url("/file"), headers={"Range": "bytes=1000-70999"}) as resp:
        assert resp.status == 206
        assert resp.headers["Content-Range"] == f"bytes 1000-70999/{len(BODY)}"
        assert resp.headers["Content-Length"] == "70000"
        assert await resp.read() == BODY[1000:71000]
    async with session.get(server.url("/file"), headers={"Range": "bytes=250000-"}) as resp:
        assert resp.status == 206
        assert resp.headers["Content-Range"] == f"bytes 250000-{len(BODY) - 1}/{len(BODY)}"
        assert await resp.read() == BODY[250000:]
    # A last-byte-pos past the end is clamped.
    async with session.get(server.url("/file"), headers={"Range": "bytes=299990-999999"}) as resp:
        assert resp.status == 206
        assert resp.headers["Content-Range"] == f"bytes 299990-299999/{len(BODY)}"
        assert await resp.read() == BODY[299990:]


async def test_suffix_range(server: FaultServer, session: aiohttp.ClientSession) -> None:
    """``bytes=-n`` returns the last n bytes."""
    async with session.get(server.url("/file"), headers={"Range": "bytes=-500"}) as resp:
        assert resp.status == 206
        total = len(BODY)
        assert resp.headers["Content-Range"] == f"bytes {total - 500}-{total - 1}/{total}"
        assert await resp.read() == BODY[-500:]


async def test_range_beyond_end_is_416(server: FaultServer, session: aiohttp.ClientSession) -> None:
    """A range starting at or past the end is unsatisfiable: 416 with ``bytes */total``."""
    for spec in (f"bytes={len(BODY)}-", f"bytes={len(BODY) + 10}-{len(BODY) + 20}", "bytes=-0"):
        async with session.get(server.url("/file"), headers={"Range": spec}) as resp:
            assert resp.status == 416
            assert resp.headers["Content-Range"] == f"bytes */{len(BODY)}"
            assert await resp.read() == b""


async def test_if_range_etag_and_date(server: FaultServer, session: aiohttp.ClientSession) -> None:
    """If-Range with the current ETag or Last-Modified gives 206; after ``change``, 200."""
    async with session.head(server.url("/file")) as resp:
        etag, last_modified = resp.headers["ETag"], resp.headers["Last-Modified"]
    for validator in (etag, last_modified):
        headers = {"Range": "bytes=100-", "If-Range": validator}
        async with session.get(server.url("/file"), headers=headers) as resp:
            assert resp.status == 206
            assert await resp.read() == BODY[100:]

    new_body = b"new content " * 1000
    server.change("/file", new_body)
    async with session.head(server.url("/file")) as resp:
        assert resp.headers["ETag"] != etag
        new_date = email.utils.parsedate_to_datetime(resp.headers["Last-Modified"])
        old_date = email.utils.parsedate_to_datetime(last_modified)
        assert (new_date - old_date).total_seconds() >= 1
    for validator in (etag, last_modified):
        headers = {"Range": "bytes=100-", "If-Range": validator}
        async with session.get(server.url("/file"), headers=headers) as resp:
            assert resp.status == 200
            assert "Content-Range" not in resp.headers
            assert await resp.read() == new_body


async def test_weak_etag_never_matches_if_range(
    server: FaultServer, session: aiohttp.ClientSession
) -> None:
    """A weak ETag sent back in If-Range never matches (strong comparison): 200."""
    server.add("/weak", BODY, weak_etag=True)
    async with session.head(server.url("/weak")) as resp:
        etag = resp.headers["ETag"]
        assert etag.startswith('W/"')
    headers = {"Range": "bytes=10-", "If-Range": etag}
    async with session.get(server.url("/weak"), headers=headers) as resp:
        assert resp.status == 200
        assert await resp.read() == BODY


async def test_head(server: FaultServer, session: aiohttp.ClientSession) -> None:
    """HEAD gives the headers (Content-Length included) and no body."""
    async with session.head(server.url("/file")) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Length"] == str(len(BODY))
        assert await resp.read() == b""
    assert server.requests_for("/file")[-1].bytes_sent == 0


async def test_unknown_path_and_method(server: FaultServer, session: aiohttp.ClientSession) -> None:
    """A path that was never added answers 404; methods other than GET/HEAD get 405."""
    async with session.get(server.url("/missing")) as resp:
        assert resp.status == 404
    async with session.post(server.url("/file"), data=b"x") as resp:
        assert resp.status == 405
        assert resp.headers["Allow"] == "GET, HEAD"
    assert [(r.method, r.status) for r in server.requests] == [("GET", 404), ("POST", 405)]


async def test_drop_after_cuts_the_connection(
    server: FaultServer, session: aiohttp.ClientSession
) -> None:
    """``drop_after`` announces the full length, sends fewer bytes and closes the socket."""
    server.set_fault("/file", Fault(drop_after=100_000))
    async with session.get(server.url("/file")) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Length"] == str(len(BODY))
        received, error = await read_until_error(resp)
    assert isinstance(error, aiohttp.ClientPayloadError | aiohttp.ServerDisconnectedError)
    assert received == BODY[:100_000]
    assert server.requests_for("/file")[-1].bytes_sent == 100_000

    # Resume like BITS does: the rest, conditional on the validator.
    server.clear_fault("/file")
    headers = {"Range": f"bytes={len(received)}-", "If-Range": resp.headers["ETag"]}
    async with session.get(server.url("/file"), headers=headers) as resp:
        assert resp.status == 206
        assert received + await resp.read() == BODY


async def test_drop_after_on_a_range(server: FaultServer, session: aiohttp.ClientSession) -> None:
    """``drop_after`` counts the bytes of this response's body, also for a 206."""
    server.set_fault("/file", Fault(drop_after=10))
    async with session.get(server.url("/file"), headers={"Range": "bytes=1000-"}) as resp:
        assert resp.status == 206
        received, error = await read_until_error(resp)
    assert error is not None
    assert received == BODY[1000:1010]


async def test_ignore_range(server: FaultServer, session: aiohttp.ClientSession) -> None:
    """``ignore_range`` answers a ranged request with 200 and the whole body."""
    server.set_fault("/file", Fault(ignore_range=True))
    async with session.get(server.url("/file"), headers={"Range": "bytes=10-20"}) as resp:
        assert resp.status == 200
        assert "Content-Range" not in resp.headers
        assert await resp.read() == BODY


async def test_no_content_length(server: FaultServer, session: aiohttp.ClientSession) -> None:
    """``no_content_length`` streams chunked without Content-Length, even for ranges."""
    server.set_fault("/file", Fault(no_content_length=True))
    for headers in ({}, {"Range": "bytes=10-20"}):
        async with session.get(server.url("/file"), headers=headers) as resp:
            assert resp.status == 200
            assert "Content-Length" not in resp.headers
            assert resp.headers["Transfer-Encoding"] == "chunked"
            assert await resp.read() == BODY


async def test_status_with_retry_after(server: FaultServer, session: aiohttp.ClientSession) -> None:
    """A ``status`` fault answers that status (here 503) with its Retry-After, forever."""
    server.set_fault("/file", Fault(status=503, retry_after="7"))
    for _ in range(2):
        async with session.get(server.url("/file")) as resp:
            assert resp.status == 503
            assert resp.headers["Retry-After"] == "7"
            assert await resp.read()
    # Faults apply to paths that have no content too.
    server.set_fault("/nothing", Fault(status=500))
    async with session.get(server.url("/nothing")) as resp:
        assert resp.status == 500


async def test_times_applies_the_fault_n_times(
    server: FaultServer, session: aiohttp.ClientSession
) -> None:
    """``times=1`` affects the next request of the path only."""
    server.set_fault("/file", Fault(status=404, times=1))
    async with session.get(server.url("/file")) as resp:
        assert resp.status == 404
    async with session.get(server.url("/file")) as resp:
        assert resp.status == 200
        assert await resp.read() == BODY


async def test_stall_before_headers(server: FaultServer, session: aiohttp.ClientSession) -> None:
    """``stall_before_headers`` delays the response: a shorter client timeout fires."""
    server.set_fault("/file", Fault(stall_before_headers=0.5, times=1))
    started = time.monotonic()
    with pytest.raises(asyncio.TimeoutError):
        async with session.get(server.url("/file"), timeout=aiohttp.ClientTimeout(total=0.15)):
            pass
    assert time.monotonic() - started < 0.45
    async with session.get(server.url("/file")) as resp:
        assert await resp.read() == BODY


async def test_stall_after(server: FaultServer, session: aiohttp.ClientSession) -> None:
    """``stall_after`` sends headers and some bytes, then pauses: a read timeout fires."""
    server.set_fault("/file", Fault(stall_after=1000, stall_seconds=0.5))
    timeout = aiohttp.ClientTimeout(sock_read=0.15)
    async with session.get(server.url("/file"), timeout=timeout) as resp:
        assert resp.status == 200
        received, error = await read_until_error(resp)
    assert isinstance(error, TimeoutError)
    assert received == BODY[:1000]


async def test_rate_throttles(server: FaultServer, session: aiohttp.ClientSession) -> None:
    """``rate`` slows the body down to about that many bytes per second."""
    server.add("/slow", BODY[:25_000])
    server.set_fault("/slow", Fault(rate=100_000))  # expect ~0.25 s
    started = time.monotonic()
    async with session.get(server.url("/slow")) as resp:
        assert await resp.read() == BODY[:25_000]
    assert time.monotonic() - started >= 0.12


async def test_no_validators(server: FaultServer, session: aiohttp.ClientSession) -> None:
    """``no_validators`` hides ETag and Last-Modified, so If-Range cannot match."""
    async with session.head(server.url("/file")) as resp:
        etag = resp.headers["ETag"]
    server.set_fault("/file", Fault(no_validators=True))
    headers = {"Range": "bytes=5-", "If-Range": etag}
    async with session.get(server.url("/file"), headers=headers) as resp:
        assert "ETag" not in resp.headers
        assert "Last-Modified" not in resp.headers
        assert resp.status == 200
        assert await resp.read() == BODY


async def test_request_log(server: FaultServer, session: aiohttp.ClientSession) -> None:
    """The log records method, path, Range/If-Range as received, status and body bytes."""
    server.add("/other", b"x")
    async with session.get(server.url("/file"), headers={"Range": "bytes=0-99"}) as resp:
        await resp.read()
    headers = {"Range": "bytes=10-", "If-Range": '"stale"', "X-Test": "yes"}
    async with session.get(server.url("/file"), headers=headers) as resp:
        await resp.read()
    async with session.get(server.url("/other")) as resp:
        await resp.read()

    assert [(r.method, r.path) for r in server.requests] == [
        ("GET", "/file"),
        ("GET", "/file"),
        ("GET", "/other"),
    ]
    first, second = server.requests_for("/file")
    assert (first.range, first.if_range, first.status, first.bytes_sent) == (
        "bytes=0-99",
        None,
        206,
        100,
    )
    assert (second.range, second.if_range, second.status, second.bytes_sent) == (
        "bytes=10-",
        '"stale"',
        200,
        len(BODY),
    )
    assert second.headers["x-test"] == "yes"
    assert second.headers["range"] == "bytes=10-"


async def test_stop_is_prompt_with_a_stalled_response() -> None:
    """Leaving the server context aborts a stalled response instead of waiting for it."""
    async with aiohttp.ClientSession() as client:
        async with FaultServer() as srv:
            srv.add("/file", BODY)
            srv.set_fault("/file", Fault(stall_after=10, stall_seconds=30))
            resp = await client.get(srv.url("/file"))
            assert await resp.content.readexactly(10) == BODY[:10]
            started = time.monotonic()
        assert time.monotonic() - started < 1.0
        async with resp:
            received, error = await read_until_error(resp)
        assert received == b""
        assert isinstance(error, aiohttp.ClientPayloadError)
        assert srv.requests[0].bytes_sent == 10


def test_in_thread_serves_blocking_clients() -> None:
    """``in_thread`` runs the server in its own loop; plain urllib can use it."""
    with FaultServer.in_thread() as srv:
        srv.add("/t", b"hello from a thread")
        with urllib.request.urlopen(srv.url("/t"), timeout=5) as resp:  # noqa: S310
            assert resp.status == 200
            assert resp.read() == b"hello from a thread"
        request = urllib.request.Request(srv.url("/t"), headers={"Range": "bytes=6-"})  # noqa: S310
        with urllib.request.urlopen(request, timeout=5) as resp:  # noqa: S310
            assert resp.status == 206
            assert resp.read() == b"from a thread"
        srv.set_fault("/t", Fault(status=503, retry_after="1"))
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(srv.url("/t"), timeout=5)  # noqa: S310
        assert info.value.code == 503
        assert info.value.headers["Retry-After"] == "1"
        info.value.close()
        assert [r.status for r in srv.requests_for("/t")] == [200, 206, 503]
    assert not any(thread.name == "FaultServer" for thread in threading.enumerate())
