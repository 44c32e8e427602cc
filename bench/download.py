"""One-file download: bitsd (``python -m bitsd``, the in-process engine) against curl, wget and
aria2c, all fetching the same file from nginx on loopback, alternating, in the same run.

Usage: ``python bench/download.py [--size-mib N] [--rounds R]``

Files live on /dev/shm (tmpfs) so the disk is not measured. nginx runs from a config generated
into a temporary folder (install it with ``apt-get install nginx-light`` if missing). For each
tool the script prints the median wall time, the median CPU seconds (user + system of the whole
process tree) and the peak RSS, and bitsd's ratio to each peer. The bitsd figures include Python
start-up and the job's sqlite transactions, as a user would pay them.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

NGINX_CONF = """
daemon off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    server {{
        listen 127.0.0.1:{port};
        root {root};
        location / {{ }}
    }}
}}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def measure(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, float, float]:
    """Run ``argv``; return (wall seconds, CPU seconds, peak RSS in MB) of its process tree."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    assert proc.stderr is not None
    errors = proc.stderr.read()
    proc.stderr.close()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[0]} exited with {proc.returncode}: {errors[-2000:]!r}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.path.exists(nginx):
        sys.exit("nginx is missing: apt-get install nginx-light")
    tmp = Path(tempfile.mkdtemp(prefix="bitsd-bench-", dir="/dev/shm"))
    tmp.chmod(0o755)  # nginx workers run as another user
    root, out, state = tmp / "www", tmp / "out", tmp / "state"
    root.mkdir()
    out.mkdir()
    with open(root / "file.bin", "wb") as f:
        chunk = os.urandom(1024 * 1024)
        for _ in range(args.size_mib):
            f.write(chunk)
    port = free_port()
    (tmp / "nginx.conf").write_text(NGINX_CONF.format(tmp=tmp, port=port, root=root))
    server = subprocess.Popen([nginx, "-c", str(tmp / "nginx.conf"), "-p", str(tmp)])
    time.sleep(0.5)
    url = f"http://127.0.0.1:{port}/file.bin"
    target = out / "file.bin"
    tools: dict[str, list[str]] = {
        "bitsd": [sys.executable, "-m", "bitsd", url, "-d", str(out), "--state-dir", str(state)],
        "curl": ["curl", "-sS", "-o", str(target), url],
        "wget": ["wget", "-q", "-O", str(target), url],
        "aria2c": [
            "aria2c",
            "-q",
            "-x1",
            "-d",
            str(out),
            "-o",
            "file.bin",
            "--allow-overwrite=true",
            "--file-allocation=none",
            url,
        ],
    }
    tools = {k: v for k, v in tools.items() if shutil.which(v[0]) or k == "bitsd"}
    results: dict[str, list[tuple[float, float, float]]] = {k: [] for k in tools}
    try:
        for _ in range(args.rounds):
            for name, argv in tools.items():
                target.unlink(missing_ok=True)
                shutil.rmtree(state, ignore_errors=True)
                results[name].append(measure(argv))
                if target.stat().st_size != args.size_mib * 1024 * 1024:
                    raise RuntimeError(f"{name} produced a file of the wrong size")
    finally:
        server.send_signal(signal.SIGQUIT)
        server.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    print(
        f"one {args.size_mib} MiB file over plain HTTP from nginx on loopback, "
        f"{args.rounds} rounds, medians"
    )
    print(f"{'tool':8} {'wall s':>8} {'CPU s':>8} {'peak RSS MB':>12}")
    med = {
        k: tuple(statistics.median(r[i] for r in v) for i in range(3)) for k, v in results.items()
    }
    for name, (wall, cpu, rss) in med.items():
        print(f"{name:8} {wall:8.2f} {cpu:8.2f} {rss:12.0f}")
    for name in med:
        if name != "bitsd":
            print(
                f"bitsd / {name}: wall {med['bitsd'][0] / med[name][0]:.2f}x, "
                f"CPU {med['bitsd'][1] / med[name][1]:.2f}x"
            )


if __name__ == "__main__":
    main()
