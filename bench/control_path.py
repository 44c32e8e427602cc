"""The control path of issue 3: jobs created per second through the synchronous client,
``jobs()`` latency with 10,000 jobs present, and the daemon's RSS with 10,000 queued jobs.

Usage::

    python bench/control_path.py [--jobs 10000] [--listings 5] [--state-on tmpfs|disk]

A real daemon (``python -m bitsd.daemon``) runs on a private state folder, on tmpfs by default
(``--state-on disk`` puts it under /var/tmp, where sqlite's fsyncs reach the disk). One client
process creates the jobs one after the other, each with ``create_job`` + ``add_file`` +
``resume`` (three requests over the control socket, three sqlite transactions): the rate is
jobs per second of that loop. The files point at a loopback port that accepts connections and
never answers, so the 4 jobs the scheduler starts wait in CONNECTING and the others stay
QUEUED. Then ``jobs()`` (every page) is timed ``--listings`` times, and the daemon's VmRSS and
VmHWM are read. Aims (issue 3): >= 1,000 jobs/s, jobs() under 300 ms, RSS under 150 MB.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from suite import DAEMON_CONFIG, Daemon


def silent_port() -> tuple[socket.socket, int]:
    """A listening socket that is never accepted from: connections open and stay unanswered."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    return sock, int(sock.getsockname()[1])


def run(jobs: int, listings: int, state_on: str) -> dict[str, float]:
    base = "/dev/shm" if state_on == "tmpfs" else "/var/tmp"
    with tempfile.TemporaryDirectory(prefix="bitsd-control-", dir=base) as tmp:
        root = Path(tmp)
        (root / "dest").mkdir()
        listener, port = silent_port()
        daemon = Daemon(root, DAEMON_CONFIG)
        daemon.start()
        try:
            m = daemon.manager
            assert m is not None
            rss_empty = daemon.status_kb("VmRSS") / 1024
            url = f"http://127.0.0.1:{port}/file"
            start = time.perf_counter()
            for i in range(jobs):
                job = m.create_job(f"control {i}")
                job.add_file(url, str(root / "dest" / f"f{i}"))
                job.resume()
            create_s = time.perf_counter() - start
            times = []
            for _ in range(listings):
                t0 = time.perf_counter()
                listed = m.jobs()
                times.append(time.perf_counter() - t0)
            assert len(listed) == jobs, len(listed)
            result = {
                "jobs": float(jobs),
                "jobs_per_s": jobs / create_s,
                "jobs_list_ms": statistics.median(times) * 1000,
                "jobs_list_min_ms": min(times) * 1000,
                "rss_empty_mb": rss_empty,
                "rss_mb": daemon.status_kb("VmRSS") / 1024,
                "hwm_mb": daemon.status_kb("VmHWM") / 1024,
            }
        finally:
            daemon.stop()
            listener.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--listings", type=int, default=5)
    parser.add_argument("--state-on", choices=("tmpfs", "disk"), default="tmpfs")
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON here")
    args = parser.parse_args()
    result = run(args.jobs, args.listings, args.state_on)
    print(f"state on {args.state_on}, {args.jobs} jobs")
    print(f"create + add_file + resume: {result['jobs_per_s']:8.0f} jobs/s   (aim >= 1000)")
    print(
        f"jobs() of {args.jobs}:        {result['jobs_list_ms']:8.0f} ms median, "
        f"{result['jobs_list_min_ms']:.0f} ms best   (aim < 300)"
    )
    print(
        f"daemon RSS:                 {result['rss_mb']:8.0f} MB with the jobs "
        f"({result['rss_empty_mb']:.0f} MB empty, peak {result['hwm_mb']:.0f})   (aim < 150)"
    )
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"state_on": args.state_on, **result}, indent=2))


if __name__ == "__main__":
    main()
