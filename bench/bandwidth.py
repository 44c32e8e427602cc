"""Bandwidth limit accuracy: one background job under a service-wide limit, measured over a
window of steady transfer.

Usage: ``python bench/bandwidth.py [--limit-mb 20] [--seconds 20] [--kind service|job|priority]``

nginx (``apt-get install nginx-light``) serves a sparse file from /dev/shm on loopback; the
in-process engine (real clock, courtesy off: loopback is never the monitored link) downloads it
into /dev/shm with the limit set as ``bandwidth_limit`` (service-wide), ``priority_limits``
(the job's level) or the job's own ``set_bandwidth_limit``. The script samples the job's
progress every 0.25 s, skips the first second (connection set-up and the bucket's initial
burst), and prints the rate over the next ``--seconds`` seconds, its deviation from the limit
(target ±5 %), and the slowest and fastest one-second rates. MB = 10^6 bytes.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bitsd import JobState, Priority
from bitsd.aio import Engine

NGINX_CONF = """
daemon off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    sendfile on;
    server {{
        listen 127.0.0.1:{port};
        root {root};
        location / {{ }}
    }}
}}
"""
WARM_UP = 1.0
SAMPLE = 0.25


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def measure(
    url: str, out: Path, state: Path, limit: float, kind: str, seconds: float
) -> None:
    settings: dict[str, Any] = {"background_courtesy": False}
    if kind == "service":
        settings["bandwidth_limit"] = limit
    elif kind == "priority":
        settings["priority_limits"] = {Priority.NORMAL: limit}
    async with Engine(state, **settings) as engine:
        job = await engine.create_job("bandwidth bench")
        if kind == "job":
            await job.set_bandwidth_limit(int(limit))
        await job.add_file(url, str(out / "file.bin"))
        await job.resume()
        await job.wait(JobState.TRANSFERRING, timeout=10)
        start = time.monotonic()
        samples: list[tuple[float, int]] = []
        while time.monotonic() - start < WARM_UP + seconds + SAMPLE:
            samples.append((time.monotonic(), (await job.get_progress()).bytes_transferred))
            await asyncio.sleep(SAMPLE)
        state_now = await job.get_state()
        await job.cancel()
    if state_now not in (JobState.TRANSFERRING, JobState.CONNECTING):
        sys.exit(f"the job left TRANSFERRING ({state_now}): the file is too small for the run")
    t0, b0 = next((t, b) for t, b in samples if t - start >= WARM_UP)
    t1, b1 = next((t, b) for t, b in samples if t - t0 >= seconds)
    rate = (b1 - b0) / (t1 - t0)
    per_second = []
    window = [(t, b) for t, b in samples if t0 <= t <= t1]
    for i, (t, b) in enumerate(window):
        later = next(((u, c) for u, c in window[i:] if u - t >= 1.0), None)
        if later is not None:
            per_second.append((later[1] - b) / (later[0] - t))
    deviation = (rate - limit) / limit * 100
    print(f"limit ({kind}): {limit / 1e6:.2f} MB/s over {t1 - t0:.2f} s of steady transfer")
    print(f"measured: {rate / 1e6:.3f} MB/s ({b1 - b0:,} bytes)")
    print(f"deviation: {deviation:+.2f} % (target within ±5 %)")
    print(
        f"one-second rates: min {min(per_second) / 1e6:.3f} MB/s, "
        f"max {max(per_second) / 1e6:.3f} MB/s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--limit-mb", type=float, default=20.0, help="limit in MB/s (10^6)")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--kind", choices=["service", "job", "priority"], default="service")
    args = parser.parse_args()
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.path.exists(nginx):
        sys.exit("nginx is missing: apt-get install nginx-light")
    limit = args.limit_mb * 1e6
    tmp = Path(tempfile.mkdtemp(prefix="bitsd-bw-", dir="/dev/shm"))
    tmp.chmod(0o755)  # nginx workers run as another user
    root, out, state = tmp / "www", tmp / "out", tmp / "state"
    root.mkdir()
    out.mkdir()
    size = int(limit * (args.seconds + WARM_UP) * 1.5) + 64 * 1024 * 1024
    with open(root / "file.bin", "wb") as f:
        f.truncate(size)  # sparse: costs no memory until read
    port = free_port()
    (tmp / "nginx.conf").write_text(NGINX_CONF.format(tmp=tmp, port=port, root=root))
    server = subprocess.Popen([nginx, "-c", str(tmp / "nginx.conf"), "-p", str(tmp)])
    try:
        time.sleep(0.5)
        url = f"http://127.0.0.1:{port}/file.bin"
        asyncio.run(measure(url, out, state, limit, args.kind, args.seconds))
    finally:
        server.send_signal(signal.SIGQUIT)
        server.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
