"""Fixtures of the upload server tests: the real app (``bitsd.server``) on uvicorn (h11) on
loopback, a fake clock, and a tiny server application for upload-reply."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bitsd._clock import FakeClock
from bitsd.server import ServerConfig, Serving, UploadServer
from tests.server.client import RawClient


@dataclass
class Running:
    """An upload server that is serving."""

    server: UploadServer
    serving: Serving

    @property
    def root(self) -> Path:
        return self.server.root.path

    @property
    def sessions(self) -> Path:
        return self.server.store.dir

    def url(self, path: str) -> str:
        return self.serving.url(path)

    def client(self) -> RawClient:
        """A new raw connection (use with ``async with``)."""
        return RawClient("127.0.0.1", self.serving.port)


@contextlib.asynccontextmanager
async def run_server(
    root: Path, *, clock: FakeClock | None = None, **settings: Any
) -> AsyncIterator[Running]:
    """Serve an upload server for ``root`` on a free loopback port."""
    server = UploadServer(ServerConfig(root, **settings), clock=clock or FakeClock())
    async with Serving(server.app) as serving:
        yield Running(server, serving)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "root"
    path.mkdir()
    return path


@pytest.fixture
async def running(root: Path, clock: FakeClock) -> AsyncIterator[Running]:
    """A plain upload server (no server application) on a fake clock."""
    async with run_server(root, clock=clock) as r:
        yield r


@dataclass
class NotifyCall:
    """One notification the application received."""

    headers: dict[str, str]
    query: str
    body: bytes
    data: bytes  # the upload, read from the request file (by-ref) or the body (by-value)


@dataclass
class NotifyApp:
    """A server application: answers ``status`` with ``headers``; its reply is ``b"reply:" +``
    the upload reversed, written to the response file (by reference) or as the body."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    calls: list[NotifyCall] = field(default_factory=list)
    write_reply: bool = True

    async def endpoint(self, request: Request) -> Response:
        body = await request.body()
        request_file = request.headers.get("bits-request-datafile-name")
        data = await asyncio.to_thread(Path(request_file).read_bytes) if request_file else body
        self.calls.append(NotifyCall(dict(request.headers), request.url.query, body, data))
        reply = b"reply:" + data[::-1]
        if self.status != 200:
            return Response(b"application error", status_code=self.status)
        response_file = request.headers.get("bits-response-datafile-name")
        if response_file:
            if self.write_reply:
                await asyncio.to_thread(Path(response_file).write_bytes, reply)
            return Response(status_code=200, headers=self.headers)
        return Response(reply, status_code=200, headers=self.headers)

    def starlette(self) -> Starlette:
        return Starlette(routes=[Route("/notify", self.endpoint, methods=["POST"])])


@pytest.fixture
async def notify_app() -> AsyncIterator[tuple[NotifyApp, Serving]]:
    """The server application, serving on its own loopback port."""
    app = NotifyApp()
    async with Serving(app.starlette()) as serving:
        yield app, serving


def make_file(path: Path, size: int, seed: int = 0) -> Path:
    """A file of ``size`` pseudo-random bytes whose every MiB differs, written in 1 MiB pieces."""
    block = hashlib.sha256(str(seed).encode()).digest() * (1024 * 1024 // 32)
    with open(path, "wb") as f:
        written = 0
        index = 0
        while written < size:
            piece = index.to_bytes(8, "big") + block[8:]
            n = min(len(piece), size - written)
            f.write(piece[:n])
            written += n
            index += 1
    return path


def digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1024 * 1024):
            h.update(chunk)
    return h.hexdigest()


def files_under(path: Path) -> set[str]:
    """Every file and folder under ``path``, relative, sessions excluded."""
    out = set()
    for dirpath, dirnames, filenames in os.walk(path):
        dirnames[:] = [d for d in dirnames if d != ".bits-sessions"]
        for name in dirnames + filenames:
            out.add(os.path.relpath(os.path.join(dirpath, name), path))
    return out
