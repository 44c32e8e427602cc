"""Upload-reply: the server application (a tiny Starlette app on its own loopback port) is
notified by reference or by value when the last byte arrives; its answer is the reply, served at
BITS-Reply-URL until Close/Cancel; the final Ack is replayed without notifying again; the
application's failures reach the client with context 0x7 (REMOTE_APPLICATION)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route

from bitsd.server import Serving, make_app
from tests.server.client import INVALIDARG, SESSION_NOT_FOUND, RawClient, Reply
from tests.server.conftest import NotifyApp, Running, files_under, run_server

DATA = b"the uploaded document"


def _reply_path(upload_url: str, reply: Reply) -> str:
    """The reply URL resolved as Windows does (relative to the upload URL, then its path)."""
    value = reply.header("BITS-Reply-URL")
    assert value is not None
    return urlsplit(urljoin(upload_url, value.replace("\\", "/"))).path


async def _upload(running: Running, c: RawClient, target: str) -> tuple[str, Reply]:
    assert (await c.ping(target)).status == 200
    sid = await c.create_session(target)
    return sid, await c.fragment(target, sid, 0, DATA, len(DATA))


@pytest.mark.parametrize("notify_type", ["by-ref", "by-value"])
async def test_reply_by_reference_and_by_value(
    root: Path, notify_app: tuple[NotifyApp, Serving], notify_type: str
) -> None:
    """The application gets the upload (a file path, or the body) and the original URL; its
    reply is served at BITS-Reply-URL (GET, ranges, HEAD) until Close-Session; the upload is
    not placed at its URL (the application has it)."""
    app, app_serving = notify_app
    url = app_serving.url("/notify")
    async with (
        run_server(root, notify_url=url, notify_type=notify_type) as running,
        running.client() as c,
    ):
        sid, final = await _upload(running, c, "/r/doc.txt")
        assert final.status == 200
        assert final.received == len(DATA)
        reply_url = final.header("BITS-Reply-URL")
        assert reply_url == f".bits-replies/{sid[1:-1]}"
        assert len(app.calls) == 1
        call = app.calls[0]
        assert call.data == DATA
        assert call.headers["bits-original-request-url"] == running.url("/r/doc.txt")
        if notify_type == "by-ref":
            assert call.body == b""
            assert call.headers["bits-request-datafile-name"].startswith(str(root))
            assert call.headers["bits-response-datafile-name"].startswith(str(root))
        else:
            assert call.body == DATA
            assert "bits-request-datafile-name" not in call.headers
        expected = b"reply:" + DATA[::-1]
        path = _reply_path(running.url("/r/doc.txt"), final)
        assert path == f"/r/.bits-replies/{sid[1:-1]}"
        got = await c.request("GET", path)
        assert got.status == 200
        assert got.body == expected
        assert got.header("Content-Length") == str(len(expected))
        assert got.header("Last-Modified")
        part = await c.request("GET", path, [("Range", "bytes=2-5")])
        assert part.status == 206
        assert part.body == expected[2:6]
        assert part.header("Content-Range") == f"bytes 2-5/{len(expected)}"
        head = await c.request("HEAD", path)
        assert head.status == 200
        assert head.header("Content-Length") == str(len(expected))
        assert (await c.close_session("/r/doc.txt", sid)).status == 200
        assert (await c.request("GET", path)).status == 404
    assert files_under(root) == set()


async def test_final_ack_is_replayed_without_notifying_again(
    root: Path, notify_app: tuple[NotifyApp, Serving]
) -> None:
    """The final fragment sent again (its Ack was lost) gets the same Ack with the same
    BITS-Reply-URL, and the application is not called twice."""
    app, app_serving = notify_app
    async with (
        run_server(root, notify_url=app_serving.url("/notify")) as running,
        running.client() as c,
    ):
        sid, final = await _upload(running, c, "/doc.txt")
        again = await c.fragment("/doc.txt", sid, 0, DATA, len(DATA))
        assert again.status == 200
        assert again.header("BITS-Reply-URL") == final.header("BITS-Reply-URL")
        assert again.received == len(DATA)
    assert len(app.calls) == 1


async def test_reply_only_on_the_final_fragment(
    root: Path, notify_app: tuple[NotifyApp, Serving]
) -> None:
    """Fragments before the last carry no BITS-Reply-URL and notify nobody."""
    app, app_serving = notify_app
    async with (
        run_server(root, notify_url=app_serving.url("/notify")) as running,
        running.client() as c,
    ):
        sid = await c.create_session("/doc.txt")
        first = await c.fragment("/doc.txt", sid, 0, DATA[:5], len(DATA))
        assert first.header("BITS-Reply-URL") is None
        assert app.calls == []
        last = await c.fragment("/doc.txt", sid, 5, DATA[5:], len(DATA))
        assert last.header("BITS-Reply-URL") is not None
    assert len(app.calls) == 1


@pytest.mark.parametrize(
    ("app_status", "ack_status", "code"),
    [
        (500, 500, "0x801901F4"),
        (503, 503, "0x801901F7"),
        (403, 403, "0x80190193"),
        (404, 404, "0x80190194"),
        (401, 400, "0x80190191"),
        (302, 302, "0x8019012E"),
    ],
)
async def test_application_failure_is_context_0x7(
    root: Path,
    notify_app: tuple[NotifyApp, Serving],
    app_status: int,
    ack_status: int,
    code: str,
) -> None:
    """The application answering an error: the final Ack has its status (401 as 400), code
    BG_E_HTTP_ERROR_<status>, context 0x7, the offset, and no reply URL; once the
    application is fixed, the final fragment again notifies it and succeeds."""
    app, app_serving = notify_app
    app.status = app_status
    async with (
        run_server(root, notify_url=app_serving.url("/notify")) as running,
        running.client() as c,
    ):
        sid, final = await _upload(running, c, "/doc.txt")
        assert final.status == ack_status
        assert final.error == (code, "0x7")
        assert final.received == len(DATA)
        assert final.header("BITS-Reply-URL") is None
        app.status = 200
        again = await c.fragment("/doc.txt", sid, 0, DATA, len(DATA))
        assert again.status == 200
        assert again.header("BITS-Reply-URL") is not None
    assert len(app.calls) == 2


async def test_unreachable_application_is_502_context_0x7(root: Path) -> None:
    """An application nobody listens for: 502 (transient), context 0x7."""
    async with Serving(Starlette()) as gone:
        url = gone.url("/notify")
    async with run_server(root, notify_url=url) as running, running.client() as c:
        _, final = await _upload(running, c, "/doc.txt")
    assert final.status == 502
    assert final.error[1] == "0x7"
    assert final.error[0] is not None


async def test_slow_application_is_408_context_0x7(root: Path) -> None:
    """An application that does not answer within the notify timeout: 408 (transient) with the
    spec's code, context 0x7."""

    release = asyncio.Event()

    async def slow(request: Request) -> Response:
        await release.wait()
        return Response()

    app = Starlette(routes=[Route("/notify", slow, methods=["POST"])])
    async with (
        Serving(app) as slow_serving,
        run_server(root, notify_url=slow_serving.url("/notify"), notify_timeout=0.2) as running,
        running.client() as c,
    ):
        _, final = await _upload(running, c, "/doc.txt")
        release.set()
    assert final.status == 408
    assert final.error == ("0x80070112", "0x7")


async def test_by_reference_without_a_reply_file_is_an_empty_reply(
    root: Path, notify_app: tuple[NotifyApp, Serving]
) -> None:
    """An application that writes no reply file: the reply is empty (GetReplyFileName's rule)."""
    app, app_serving = notify_app
    app.write_reply = False
    async with (
        run_server(root, notify_url=app_serving.url("/notify")) as running,
        running.client() as c,
    ):
        _, final = await _upload(running, c, "/doc.txt")
        got = await c.request("GET", _reply_path(running.url("/doc.txt"), final))
    assert got.status == 200
    assert got.body == b""


async def test_static_response_url_is_the_reply_url(
    root: Path, notify_app: tuple[NotifyApp, Serving]
) -> None:
    """BITS-Static-Response-URL from the application becomes BITS-Reply-URL; the server serves
    nothing of its own for it."""
    app, app_serving = notify_app
    app.headers = {"BITS-Static-Response-URL": "http://example.invalid/replies/42"}
    async with (
        run_server(root, notify_url=app_serving.url("/notify")) as running,
        running.client() as c,
    ):
        sid, final = await _upload(running, c, "/doc.txt")
        assert final.header("BITS-Reply-URL") == "http://example.invalid/replies/42"
        own = await c.request("GET", f"/.bits-replies/{sid[1:-1]}")
    assert own.status == 404


async def test_copy_file_to_destination(root: Path, notify_app: tuple[NotifyApp, Serving]) -> None:
    """BITS-Copy-File-To-Destination from the application: the upload is also placed at its
    URL, on Close-Session."""
    app, app_serving = notify_app
    app.headers = {"BITS-Copy-File-To-Destination": "1"}
    async with (
        run_server(root, notify_url=app_serving.url("/notify")) as running,
        running.client() as c,
    ):
        sid, _ = await _upload(running, c, "/kept/doc.txt")
        assert not (root / "kept" / "doc.txt").exists()
        assert (await c.close_session("/kept/doc.txt", sid)).status == 200
    assert (root / "kept" / "doc.txt").read_bytes() == DATA


async def test_cancel_deletes_the_reply(root: Path, notify_app: tuple[NotifyApp, Serving]) -> None:
    """Cancel-Session after the upload: the reply is gone (404) and the session too."""
    _, app_serving = notify_app
    async with (
        run_server(root, notify_url=app_serving.url("/notify")) as running,
        running.client() as c,
    ):
        sid, final = await _upload(running, c, "/doc.txt")
        path = _reply_path(running.url("/doc.txt"), final)
        assert (await c.request("GET", path)).status == 200
        assert (await c.cancel_session("/doc.txt", sid)).status == 200
        assert (await c.request("GET", path)).status == 404
        closed = await c.close_session("/doc.txt", sid)
        assert closed.error == (SESSION_NOT_FOUND, "0x5")


async def test_reply_url_is_tied_to_its_upload_folder(
    root: Path, notify_app: tuple[NotifyApp, Serving]
) -> None:
    """The reply is served only next to its upload URL: another folder, an unknown session or a
    malformed id is 404."""
    _, app_serving = notify_app
    async with (
        run_server(root, notify_url=app_serving.url("/notify")) as running,
        running.client() as c,
    ):
        sid, _ = await _upload(running, c, "/a/doc.txt")
        guid = sid[1:-1]
        assert (await c.request("GET", f"/a/.bits-replies/{guid}")).status == 200
        assert (await c.request("GET", f"/a/.bits-replies/%7B{guid}%7D")).status == 200
        assert (await c.request("GET", f"/b/.bits-replies/{guid}")).status == 404
        unknown = "0F0E0D0C-0B0A-0908-0706-050403020100"
        assert (await c.request("GET", f"/a/.bits-replies/{unknown}")).status == 404
        assert (await c.request("GET", "/a/.bits-replies/..")).status == 404


async def test_mounted_with_a_relative_notify_url_and_the_query(tmp_path: Path) -> None:
    """Mounted at /uploads next to its own application, with a relative notify URL (resolved
    against the upload URL, as IIS does) and the upload URL's query appended to it."""
    root = tmp_path / "root"
    app = NotifyApp(headers={"BITS-Copy-File-To-Destination": "yes"})
    service = Starlette(
        routes=[
            Route("/notify", app.endpoint, methods=["POST"]),
            Mount("/uploads", app=make_app(root, notify_url="/notify")),
        ]
    )
    async with Serving(service) as serving, RawClient("127.0.0.1", serving.port) as c:
        target = "/uploads/in/doc.txt?job=7"
        sid = await c.create_session(target)
        final = await c.fragment(target, sid, 0, DATA, len(DATA))
        assert final.status == 200
        assert app.calls[0].query == "job=7"
        assert app.calls[0].headers["bits-original-request-url"] == serving.url(target)
        path = _reply_path(serving.url(target), final)
        assert path.startswith("/uploads/in/.bits-replies/")
        assert (await c.request("GET", path)).body == b"reply:" + DATA[::-1]
        assert (await c.close_session(target, sid)).status == 200
    assert (root / "in" / "doc.txt").read_bytes() == DATA


async def test_close_before_complete_in_upload_reply(
    root: Path, notify_app: tuple[NotifyApp, Serving]
) -> None:
    """Upload-reply needs the last fragment: Close-Session without it is 400 and discards."""
    app, app_serving = notify_app
    async with (
        run_server(root, notify_url=app_serving.url("/notify")) as running,
        running.client() as c,
    ):
        sid = await c.create_session("/doc.txt")
        reply = await c.close_session("/doc.txt", sid)
    assert reply.status == 400
    assert reply.error == (INVALIDARG, "0x5")
    assert app.calls == []
