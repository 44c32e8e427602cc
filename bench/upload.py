"""Upload throughput: a 1 GiB file to the bitsd upload server over the BITS upload protocol,
against ``curl -T`` (one plain HTTP PUT) of the same file to nginx on the same machine.

Usage: ``python bench/upload.py [--size-mib 1024] [--fragment-mib 8] [--rounds 3]``

Everything lives on /dev/shm (tmpfs), so the disk is not measured. The upload server runs as
its own process (``python -m bitsd.server``, log level warning); nginx runs from a generated
config with ``dav_methods PUT`` (``apt-get install nginx-light`` if missing). Each round
uploads with each tool in turn, checks the size of the stored file, and deletes it.

The BITS side is measured with the client :func:`uploader` returns: for now a simple client
written here against the protocol (Ping, Create-Session, fragments sent with ``sendfile``, always
continuing from ``BITS-Received-Content-Range``, Close-Session). When the engine's upload client
exists, it replaces that client by changing the one ``return`` line in :func:`uploader` (any
``async (url, path) -> None`` that uploads ``path`` to ``url`` and returns once the file is at
its destination will do).

Printed per tool: the median wall time (Create-Session to Close-Session for BITS, curl's whole
run for PUT), the throughput (MB = 10^6 bytes, MiB = 2^20), and the median CPU seconds of the
server process; then the ratio of BITS to PUT.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

MIB = 1024 * 1024
PROTOCOL = "{7df0354d-249b-430f-820d-3d2a9bef4931}"

NGINX_CONF = """
daemon off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/nginx-body;
    client_max_body_size 0;
    server {{
        listen 127.0.0.1:{port};
        root {root};
        location / {{
            dav_methods PUT;
            create_full_put_path on;
            dav_access user:rw group:r all:r;
        }}
    }}
}}
"""

Uploader = Callable[[str, Path], Coroutine[Any, Any, None]]


class SimpleBitsClient:
    """A minimal BITS upload client: one connection, fragments of ``fragment_size`` bytes."""

    def __init__(self, fragment_size: int) -> None:
        self.fragment_size = fragment_size

    async def upload(self, url: str, path: Path) -> None:
        parts = urlsplit(url)
        target = parts.path or "/"
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port or 80)
        host = parts.netloc

        async def packet(
            kind: str, headers: list[tuple[str, str]], body: tuple[int, int] | None
        ) -> tuple[int, dict[str, str]]:
            length = 0 if body is None else body[1]
            head = [f"BITS_POST {target} HTTP/1.1", f"Host: {host}", f"BITS-Packet-Type: {kind}"]
            head += [f"{k}: {v}" for k, v in headers]
            head.append(f"Content-Length: {length}")
            writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
            if body is not None and length:
                await writer.drain()
                await asyncio.get_running_loop().sendfile(writer.transport, f, body[0], length)
            await writer.drain()
            raw = await reader.readuntil(b"\r\n\r\n")
            lines = raw.decode("latin-1").split("\r\n")
            status = int(lines[0].split()[1])
            answer: dict[str, str] = {}
            for line in lines[1:]:
                if line:
                    k, _, v = line.partition(":")
                    answer[k.strip().lower()] = v.strip()
            if int(answer.get("content-length", "0")):
                await reader.readexactly(int(answer["content-length"]))
            return status, answer

        f = await asyncio.to_thread(open, path, "rb")
        try:
            total = os.fstat(f.fileno()).st_size
            status, _ = await packet("Ping", [], None)
            status, answer = await packet(
                "Create-Session", [("BITS-Supported-Protocols", PROTOCOL)], None
            )
            if status != 200:
                raise RuntimeError(f"Create-Session: {status} {answer}")
            sid = answer["bits-session-id"]
            offset = 0
            while offset < total or total == 0:
                length = min(self.fragment_size, total - offset)
                last = offset + length - 1
                status, answer = await packet(
                    "Fragment",
                    [("BITS-Session-Id", sid), ("Content-Range", f"bytes {offset}-{last}/{total}")],
                    (offset, length),
                )
                if status not in (200, 416):
                    raise RuntimeError(f"Fragment: {status} {answer}")
                offset = int(answer["bits-received-content-range"])
                if total == 0:
                    break
            status, answer = await packet("Close-Session", [("BITS-Session-Id", sid)], None)
            if status != 200:
                raise RuntimeError(f"Close-Session: {status} {answer}")
        finally:
            f.close()
            writer.close()
            await writer.wait_closed()


def uploader(fragment_size: int) -> Uploader:
    """The BITS uploader measured (see the module's docstring)."""
    # The one line to change when the engine's upload client exists:
    return SimpleBitsClient(fragment_size).upload


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_listening(port: int, proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"{what} is not listening")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and its reaped children (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = sum(int(v) for v in fields[11:15])
    return ticks / os.sysconf("SC_CLK_TCK")


def make_source(path: Path, size_mib: int) -> None:
    with open(path, "wb") as f:
        block = os.urandom(MIB)
        for i in range(size_mib):
            f.write(i.to_bytes(8, "big") + block[8:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--fragment-mib", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    upload = uploader(args.fragment_mib * MIB)
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.path.exists(nginx):
        sys.exit("nginx is missing: apt-get install nginx-light")
    tmp = Path(tempfile.mkdtemp(prefix="bitsd-bench-upload-", dir="/dev/shm"))
    tmp.chmod(0o755)
    source = tmp / "source.bin"
    bits_root, put_root = tmp / "bits", tmp / "www"
    for folder in (bits_root, put_root, tmp / "nginx-body"):
        folder.mkdir()
        folder.chmod(0o777)  # nginx workers run as another user
    make_source(source, args.size_mib)
    size = source.stat().st_size
    bits_port, put_port = free_port(), free_port()
    (tmp / "nginx.conf").write_text(NGINX_CONF.format(tmp=tmp, port=put_port, root=put_root))
    procs = {
        "bitsd": subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bitsd.server",
                "--root",
                str(bits_root),
                "--port",
                str(bits_port),
                "--log-level",
                "warning",
                "--max-fragment-size",
                "64M",
            ],
        ),
        "nginx": subprocess.Popen([nginx, "-c", str(tmp / "nginx.conf"), "-p", str(tmp)]),
    }
    results: dict[str, list[tuple[float, float]]] = {"bits": [], "put": []}
    try:
        wait_listening(bits_port, procs["bitsd"], "bitsd upload-server")
        wait_listening(put_port, procs["nginx"], "nginx")
        nginx_worker = int(
            subprocess.run(
                ["pgrep", "-P", str(procs["nginx"].pid)],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.split()[0]
        )
        for _ in range(args.rounds):
            # BITS upload to the bitsd upload server
            target = bits_root / "file.bin"
            cpu = cpu_seconds(procs["bitsd"].pid)
            start = time.perf_counter()
            asyncio.run(upload(f"http://127.0.0.1:{bits_port}/file.bin", source))
            wall = time.perf_counter() - start
            results["bits"].append((wall, cpu_seconds(procs["bitsd"].pid) - cpu))
            if target.stat().st_size != size:
                raise RuntimeError("the BITS upload stored a file of the wrong size")
            target.unlink()
            shutil.rmtree(bits_root / ".bits-sessions", ignore_errors=True)
            # plain PUT with curl to nginx
            target = put_root / "file.bin"
            cpu = cpu_seconds(nginx_worker)
            start = time.perf_counter()
            subprocess.run(
                [
                    "curl",
                    "-sS",
                    "-f",
                    "-o",
                    "/dev/null",
                    "-T",
                    str(source),
                    f"http://127.0.0.1:{put_port}/file.bin",
                ],
                check=True,
            )
            wall = time.perf_counter() - start
            results["put"].append((wall, cpu_seconds(nginx_worker) - cpu))
            if target.stat().st_size != size:
                raise RuntimeError("the PUT stored a file of the wrong size")
            target.unlink()
    finally:
        procs["bitsd"].send_signal(signal.SIGTERM)
        procs["nginx"].send_signal(signal.SIGQUIT)
        for proc in procs.values():
            proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    print(
        f"one {args.size_mib} MiB file uploaded on loopback (tmpfs), {args.rounds} rounds, "
        f"medians; BITS fragments of {args.fragment_mib} MiB"
    )
    print(f"{'upload':34} {'wall s':>7} {'MB/s':>8} {'MiB/s':>8} {'server CPU s':>13}")
    labels = {
        "bits": "BITS_POST -> bitsd upload-server",
        "put": "curl -T (PUT) -> nginx dav",
    }
    medians = {}
    for name, runs in results.items():
        wall = statistics.median(r[0] for r in runs)
        cpu = statistics.median(r[1] for r in runs)
        medians[name] = wall
        print(
            f"{labels[name]:34} {wall:7.2f} {size / wall / 1e6:8.0f} {size / wall / MIB:8.0f} "
            f"{cpu:13.2f}"
        )
    print(f"BITS / PUT throughput: {medians['put'] / medians['bits']:.2f}x")


if __name__ == "__main__":
    main()
