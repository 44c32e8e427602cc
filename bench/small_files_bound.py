"""The small-file bound of scenario 3: the least a Python asyncio process spends per file.

Usage::

    python bench/small_files_bound.py [--files 5000] [--size-kib 16] [--connections 8] [--rounds 3]

nginx serves ``--files`` files of ``--size-kib`` KiB from tmpfs (as in bench/suite.py). Each
round, alternating, fetches all of them with:

- ``aria2c -j16`` (the suite's peer for scenario 3) and ``wget -i`` (one keep-alive connection);
- ``python+h11`` and ``python+httptools``: ``--connections`` asyncio tasks over kept-alive
  sockets, each file one GET whose response head is parsed by that library and whose body is
  written to a new file, fsynced, closed and renamed: what bitsd must do per file at the
  least, with no job, no store, no progress and no notification.
- ``python+httptools+store``: the same, and each finished file's row (name, size, completed)
  written to a sqlite store as bitsd's is set up (WAL, ``synchronous=FULL``), the files that
  finish together committed in one transaction of at most ``--connections`` rows: the least a
  service that survives a crash keeps per file.

- ``python+httptools+store+job``: the same, plus the least a job service does around the
  transfer: the files handed over as JSON (encoded and decoded, as a client and the control
  API would), each URL split and each local name checked (one stat, its folder once), every
  file's row inserted in one transaction before the transfer; each file kept under its
  temporary name until Complete renames them all, syncs the folder and deletes the rows in
  one transaction.

The Python rows are the bound bitsd's design can approach on this machine: bitsd's own figure
for scenario 3 adds the engine's bookkeeping to them (and a second process, the client). Prints
median wall and CPU seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from pathlib import Path

import h11
import httptools

sys.path.insert(0, str(Path(__file__).parent))

from suite import Nginx, have

_READ = 256 * 1024


async def _h11_get(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str, path: str
) -> bytes:
    conn = h11.Connection(h11.CLIENT)
    writer.write(conn.send(h11.Request(method="GET", target=path, headers=[("Host", host)])) or b"")
    body = bytearray()
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(await reader.read(_READ))
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            return bytes(body)
        elif isinstance(event, h11.ConnectionClosed):
            raise ConnectionError("closed")


class _Response:
    """httptools callbacks: the body, and whether the message ended."""

    def __init__(self) -> None:
        self.body = bytearray()
        self.done = False

    def on_body(self, data: bytes) -> None:
        self.body += data

    def on_message_complete(self) -> None:
        self.done = True


async def _httptools_get(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str, path: str
) -> bytes:
    writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    response = _Response()
    parser = httptools.HttpResponseParser(response)
    while not response.done:
        data = await reader.read(_READ)
        if not data:
            raise ConnectionError("closed")
        parser.feed_data(data)
    return bytes(response.body)


Getter = Callable[[asyncio.StreamReader, asyncio.StreamWriter, str, str], Awaitable[bytes]]
Run = Callable[[Path], tuple[float, float]]


class _Rows:
    """A sqlite store set up as bitsd's; the rows of files that finish in the same turn of the
    event loop are committed together."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("CREATE TABLE files (name TEXT PRIMARY KEY, size INTEGER, completed INT)")
        self.pending: list[tuple[str, int, int]] = []

    def add(self, name: str, size: int) -> None:
        if not self.pending:
            asyncio.get_running_loop().call_soon(self.commit)
        self.pending.append((name, size, 1))

    def commit(self) -> None:
        rows, self.pending = self.pending, []
        self.db.execute("BEGIN")
        self.db.executemany("INSERT OR REPLACE INTO files VALUES (?, ?, ?)", rows)
        self.db.execute("COMMIT")


def _add_job(rows: _Rows, port: int, paths: list[str], out: Path) -> None:
    """What adding the files to a job costs at least: JSON both ways, each URL split and each
    local name checked, one transaction of rows."""
    pairs = [(f"http://127.0.0.1:{port}{p}", str(out / p.rsplit("/", 1)[1])) for p in paths]
    received = json.loads(json.dumps({"files": pairs}))["files"]
    folders: set[str] = set()
    checked = []
    for url, local in received:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(url)
        folder = os.path.dirname(local)
        if folder not in folders:
            if not os.path.isdir(folder):
                raise ValueError(local)
            folders.add(folder)
        if os.path.isdir(local):
            raise ValueError(local)
        checked.append((local, 0, 0))
    rows.db.execute("BEGIN")
    rows.db.executemany("INSERT INTO files VALUES (?, ?, ?)", checked)
    rows.db.execute("COMMIT")


def _complete_job(rows: _Rows, out: Path, paths: list[str]) -> None:
    """What Complete costs at least: every temporary file renamed, the folder synced, the
    rows deleted in one transaction."""
    for p in paths:
        name = p.rsplit("/", 1)[1]
        os.rename(out / f".{name}.part", out / name)
    folder = os.open(out, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)
    rows.db.execute("BEGIN")
    rows.db.execute("DELETE FROM files")
    rows.db.execute("COMMIT")


async def _fetch_all(
    get: Getter,
    port: int,
    paths: list[str],
    out: Path,
    connections: int,
    store: bool,
    job: bool = False,
) -> None:
    queue = list(reversed(paths))
    host = f"127.0.0.1:{port}"
    rows = _Rows(out / ".store.sqlite") if store or job else None
    if job:
        assert rows is not None
        _add_job(rows, port, paths, out)

    async def worker() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while queue:
                path = queue.pop()
                body = await get(reader, writer, host, path)
                name = out / path.rsplit("/", 1)[1]
                temp = name.with_name(f".{name.name}.part")
                fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                try:
                    os.write(fd, body)
                    os.fsync(fd)
                finally:
                    os.close(fd)
                if not job:
                    os.rename(temp, name)
                if rows is not None:
                    rows.add(str(name), len(body))
        finally:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(connections)))
    if rows is not None:
        if rows.pending:
            rows.commit()
        if job:
            _complete_job(rows, out, paths)
        rows.db.close()


def _python(
    get: Getter,
    port: int,
    paths: list[str],
    connections: int,
    *,
    store: bool = False,
    job: bool = False,
) -> Run:
    def run(out: Path) -> tuple[float, float]:
        cpu0 = time.process_time()
        start = time.perf_counter()
        asyncio.run(_fetch_all(get, port, paths, out, connections, store, job))
        return time.perf_counter() - start, time.process_time() - cpu0

    return run


def _peer(argv: list[str]) -> Run:
    def run(out: Path) -> tuple[float, float]:
        before = os.times()
        start = time.perf_counter()
        subprocess.run(argv, cwd=out, check=True)
        wall = time.perf_counter() - start
        after = os.times()
        cpu = after.children_user - before.children_user
        cpu += after.children_system - before.children_system
        return wall, cpu

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=5000)
    parser.add_argument("--size-kib", type=int, default=16)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bitsd-bound-", dir="/dev/shm") as tmp_name:
        tmp = Path(tmp_name)
        tmp.chmod(0o755)
        www = tmp / "www"
        (www / "small").mkdir(parents=True)
        for i in range(args.files):
            (www / "small" / f"f{i}").write_bytes(os.urandom(args.size_kib * 1024))
        nginx = Nginx(tmp, www)
        try:
            paths = [f"/small/f{i}" for i in range(args.files)]
            listing = tmp / "list.txt"
            listing.write_text("".join(nginx.url(p.lstrip("/")) + "\n" for p in paths))
            runs: dict[str, Run] = {
                "python+h11": _python(_h11_get, nginx.port, paths, args.connections),
                "python+httptools": _python(_httptools_get, nginx.port, paths, args.connections),
                "python+httptools+store": _python(
                    _httptools_get, nginx.port, paths, args.connections, store=True
                ),
                "python+httptools+store+job": _python(
                    _httptools_get, nginx.port, paths, args.connections, job=True
                ),
            }
            if have("aria2c"):
                runs["aria2c -j16"] = _peer(
                    ["aria2c", "-q", "-j16", "--file-allocation=none", "-i", str(listing)]
                )
            if have("wget"):
                runs["wget"] = _peer(["wget", "-q", "-i", str(listing)])
            results: dict[str, list[tuple[float, float]]] = {name: [] for name in runs}
            for _ in range(args.rounds):
                for name, run in runs.items():
                    out = tmp / "out"
                    out.mkdir()
                    results[name].append(run(out))
                    shutil.rmtree(out)
        finally:
            nginx.stop()
    print(f"{args.files} files x {args.size_kib} KiB, {args.rounds} rounds, medians")
    print(f"{'tool':<28}{'wall s':>8}{'CPU s':>8}{'us/file':>9}")
    for name, samples in results.items():
        wall = statistics.median(s[0] for s in samples)
        cpu = statistics.median(s[1] for s in samples)
        print(f"{name:<28}{wall:>8.2f}{cpu:>8.2f}{cpu / args.files * 1e6:>9.0f}")


if __name__ == "__main__":
    main()
