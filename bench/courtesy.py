"""Background courtesy: a background bitsd job yields to a competing curl download.

Usage (as root): ``python bench/courtesy.py [--link-mbit 200] [--before 8] [--during 15]
[--after 15]``

Courtesy reads an interface's byte counters, and the loopback interface never counts, so the
bench builds a real link: a veth pair between this network namespace and a namespace of its
own (``bitsd-bench``), addresses 10.203.0.1/30 (here) and 10.203.0.2/30 (there), nothing else
routed. The server side's egress is shaped with ``tc tbf`` to ``--link-mbit`` so the link,
not the CPU, is the bottleneck. nginx (``apt-get install nginx-light``) runs in the namespace
and serves sparse files from /dev/shm.

The in-process engine (real clock, ``courtesy_interface`` = the veth end) downloads a large
file with a NORMAL job. After ``--before`` seconds, curl downloads another file over the same
link for ``--during`` seconds; the run goes on for ``--after`` seconds. The script prints
bitsd's rate each second, the phase averages, and curl's average rate. Everything it created
(namespace, veth, files) is removed at the end. MB = 10^6 bytes.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bitsd import JobState
from bitsd.aio import Engine

NS = "bitsd-bench"
HOST_IF, NS_IF = "bitsd-h0", "bitsd-n0"
HOST_IP, NS_IP = "10.203.0.1", "10.203.0.2"
PORT = 8080
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
        listen {ip}:{port};
        root {root};
        location / {{ }}
    }}
}}
"""


def sh(*argv: str, check: bool = True) -> None:
    subprocess.run(argv, check=check, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def shape(mbit: int) -> None:
    sh("ip", "netns", "exec", NS, "tc", "qdisc", "del", "dev", NS_IF, "root", check=False)
    sh(
        "ip",
        "netns",
        "exec",
        NS,
        "tc",
        "qdisc",
        "add",
        "dev",
        NS_IF,
        "root",
        "tbf",
        "rate",
        f"{mbit}mbit",
        "burst",
        "256kb",
        "latency",
        "50ms",
    )


def remove_link() -> None:
    sh("ip", "link", "del", HOST_IF, check=False)
    sh("ip", "netns", "del", NS, check=False)


async def curl(url: str, seconds: float) -> tuple[float, float]:
    """Download ``url`` with curl for at most ``seconds``: (bytes, seconds taken)."""
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        "curl",
        "-s",
        "-o",
        "/dev/null",
        "--max-time",
        str(seconds),
        "-w",
        "%{size_download}",
        url,
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await proc.communicate()
    return float(out or b"0"), time.monotonic() - started


async def run(
    url: str, curl_url: str, state: Path, out: Path, before: float, during: float, after: float
) -> None:
    async with Engine(state, background_courtesy=True, courtesy_interface=HOST_IF) as engine:
        job = await engine.create_job("courtesy bench")
        await job.add_file(url, str(out / "big.bin"))
        await job.resume()
        await job.wait(JobState.TRANSFERRING, timeout=10)
        start = time.monotonic()
        rates: list[tuple[float, float, str]] = []
        last = (await job.get_progress()).bytes_transferred
        competitor: asyncio.Task[tuple[float, float]] | None = None
        while (now := time.monotonic() - start) < before + during + after:
            if competitor is None and now >= before:
                competitor = asyncio.create_task(curl(curl_url, during))
            await asyncio.sleep(1.0)
            done = (await job.get_progress()).bytes_transferred
            phase = "before" if now < before else "during" if now < before + during else "after"
            rates.append((time.monotonic() - start, done - last, phase))
            last = done
            limit = engine._bandwidth.background_rate
            print(
                f"t={rates[-1][0]:5.1f} s  {phase:6}  bitsd {rates[-1][1] / 1e6:7.3f} MB/s  "
                f"courtesy limit {'none' if limit is None else f'{limit / 1e6:.3f} MB/s'}",
                flush=True,
            )
        await job.cancel()
    for phase in ("before", "during", "after"):
        values = [b for _, b, p in rates if p == phase]
        print(f"bitsd {phase:6}: mean {sum(values) / len(values) / 1e6:7.3f} MB/s", end="")
        print(f"  (last second {values[-1] / 1e6:.3f} MB/s)")
    if competitor is not None:
        got, seconds = await competitor
        print(f"curl  during: mean {got / seconds / 1e6:7.3f} MB/s over {seconds:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--link-mbit", type=int, default=200)
    parser.add_argument("--before", type=float, default=8.0)
    parser.add_argument("--during", type=float, default=15.0)
    parser.add_argument("--after", type=float, default=15.0)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root: the bench creates a network namespace and a veth pair")
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    for tool in (nginx, "ip", "tc", "curl"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is missing")
    remove_link()  # leftovers of an interrupted run
    tmp = Path(tempfile.mkdtemp(prefix="bitsd-courtesy-", dir="/dev/shm"))
    tmp.chmod(0o755)
    root, out, state = tmp / "www", tmp / "out", tmp / "state"
    root.mkdir()
    out.mkdir()
    link_bytes = args.link_mbit * 1e6 / 8
    seconds = args.before + args.during + args.after
    for name in ("big.bin", "other.bin"):
        with open(root / name, "wb") as f:
            f.truncate(int(link_bytes * seconds * 2))
    server = None
    try:
        sh("ip", "netns", "add", NS)
        sh("ip", "link", "add", HOST_IF, "type", "veth", "peer", "name", NS_IF)
        sh("ip", "link", "set", NS_IF, "netns", NS)
        sh("ip", "addr", "add", f"{HOST_IP}/30", "dev", HOST_IF)
        sh("ip", "link", "set", HOST_IF, "up")
        for cmd in (
            ("ip", "addr", "add", f"{NS_IP}/30", "dev", NS_IF),
            ("ip", "link", "set", NS_IF, "up"),
            ("ip", "link", "set", "lo", "up"),
        ):
            sh("ip", "netns", "exec", NS, *cmd)
        shape(args.link_mbit)
        conf = NGINX_CONF.format(tmp=tmp, ip=NS_IP, port=PORT, root=root)
        (tmp / "nginx.conf").write_text(conf)
        server = subprocess.Popen(
            ["ip", "netns", "exec", NS, nginx, "-c", str(tmp / "nginx.conf"), "-p", str(tmp)]
        )
        time.sleep(0.5)
        print(
            f"link: veth {HOST_IF} <-> {NS}/{NS_IF}, shaped to {args.link_mbit} Mbit/s "
            f"({link_bytes / 1e6:.1f} MB/s)"
        )
        asyncio.run(
            run(
                f"http://{NS_IP}:{PORT}/big.bin",
                f"http://{NS_IP}:{PORT}/other.bin",
                state,
                out,
                args.before,
                args.during,
                args.after,
            )
        )
    finally:
        if server is not None:
            server.send_signal(signal.SIGQUIT)
            server.wait()
        remove_link()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
