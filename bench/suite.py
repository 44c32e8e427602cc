"""The benchmark suite of issue 7: bitsd through its daemon against curl, wget and aria2c.

Usage::

    python bench/suite.py [--scenarios 1,2,3,4,5,6] [--rounds 3] [--size-mib 1024]
                          [--job-kib 4096] [--out bench/results]

Every scenario serves files from nginx on loopback (a config generated into a temporary folder;
files on /dev/shm so the disk is not measured) and runs bitsd and its peers alternately, round
after round, in the same run. bitsd runs as a real daemon (``python -m bitsd.daemon``) driven
through the synchronous client: a run is the time from ``create_job`` to the last ``complete()``.
For each tool the suite prints the median wall time, the median CPU seconds (bitsd: the daemon
and its child process, the splice helper, + the client process; peers: their process tree) and
the peak RSS (bitsd: the VmHWM of the daemon plus its helper, reset before each run), then
bitsd's ratio to each peer. Results go to ``<out>/results.json`` and, if
matplotlib is installed, ``<out>/ratios.png``.

Scenarios: 1 one file over HTTP, with the splice bound beside the peers (bench/splice_bound.py:
a raw socket whose body is spliced into the file, the least a Python process can spend); 2 one
file over HTTPS (self-signed, made here with openssl); 3 one job of 5,000 files of 16 KiB; 4 200
jobs of 4 MiB at once; 5 a 4 GiB download with the daemon's RSS sampled every 100 ms; 6 resume
cost: a download interrupted at 50 % by SIGKILL of the daemon, then restarted (bytes bitsd
fetches twice: received minus checkpointed, from its temporary file and its store; bytes lost in
the kernel's buffers; nginx's own count; seconds from restart to bytes).

nginx, curl, wget and aria2c come from the system (``apt-get install nginx-light curl wget
aria2``); a missing peer is skipped with a note.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import bitsd
from bitsd import JobState

# Internals read to measure scenario 6 from bitsd's side: the store of a killed daemon, and the
# checkpoint interval the daemon runs with (the default).
from bitsd._engine import STORE_FILE_NAME
from bitsd._policy import DEFAULT_CHECKPOINT_BYTES
from bitsd._store import SqliteStore

NGINX_CONF = """
daemon off;
worker_processes 2;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    log_format bench '$request_uri $status $body_bytes_sent "$http_range"';
    access_log {tmp}/access.log bench;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 100000;
    server {{
        listen 127.0.0.1:{port};
        root {root};
    }}
    server {{
        listen 127.0.0.1:{tls_port} ssl;
        ssl_certificate {tmp}/cert.pem;
        ssl_certificate_key {tmp}/key.pem;
        root {root};
    }}
}}
"""
CLK_TCK = os.sysconf("SC_CLK_TCK")
# The daemon's config file. No MaxJobsPerUser / MaxFilesPerJob: BITS's defaults (60, 200)
# refuse scenarios 3 and 4. Everything else is the default a user gets.
DAEMON_CONFIG = "default_minimum_retry_delay = 5\nmax_jobs_per_user = 0\nmax_files_per_job = 0\n"


@dataclass
class Sample:
    wall: float
    cpu: float
    rss_mb: float
    extra: dict[str, float] = field(default_factory=dict)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_file(path: Path, size: int) -> None:
    block = os.urandom(1 << 20)
    with open(path, "wb") as f:
        left = size
        while left > 0:
            f.write(block[: min(left, len(block))])
            left -= len(block)


class Nginx:
    """nginx on loopback serving ``root`` over HTTP and HTTPS."""

    def __init__(self, tmp: Path, root: Path) -> None:
        self.tmp, self.root = tmp, root
        self.port, self.tls_port = free_port(), free_port()
        subprocess.run(
            [
                "openssl",
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=127.0.0.1",
                "-addext",
                "subjectAltName=IP:127.0.0.1",
                "-keyout",
                str(tmp / "key.pem"),
                "-out",
                str(tmp / "cert.pem"),
            ],
            check=True,
            capture_output=True,
        )
        conf = tmp / "nginx.conf"
        conf.write_text(
            NGINX_CONF.format(tmp=tmp, root=root, port=self.port, tls_port=self.tls_port)
        )
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        self.proc = subprocess.Popen([nginx, "-c", str(conf), "-p", str(tmp)])
        for _ in range(100):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port)):
                return
            time.sleep(0.05)
        raise RuntimeError("nginx did not start")

    def url(self, name: str, tls: bool = False) -> str:
        if tls:
            return f"https://127.0.0.1:{self.tls_port}/{name}"
        return f"http://127.0.0.1:{self.port}/{name}"

    def log_lines(self) -> list[str]:
        return (self.tmp / "access.log").read_text().splitlines()

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGQUIT)
        self.proc.wait()


class Daemon:
    """A bitsd daemon process on a private state folder."""

    def __init__(self, tmp: Path, config: str = DAEMON_CONFIG) -> None:
        self.state = tmp / "state"
        self.env = dict(
            os.environ,
            BITSD_STATE_DIR=str(self.state),
            BITSD_SOCKET=str(tmp / "bitsd.sock"),
            BITSD_CONFIG=str(tmp / "config.toml"),
        )
        (tmp / "config.toml").write_text(config)
        self.proc: subprocess.Popen[bytes] | None = None
        self.manager: bitsd.Manager | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bitsd.daemon"], env=self.env, stderr=subprocess.DEVNULL
        )
        self.manager = bitsd.connect(
            socket_path=self.env["BITSD_SOCKET"], autostart=False, timeout=20
        )

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.manager is not None:
            with contextlib.suppress(Exception):
                self.manager.close()
            self.manager = None
        if self.proc is not None:
            helpers = self._pids()[1:]
            self.proc.send_signal(sig)
            self.proc.wait(30)
            self.proc = None
            # The splice helper dies with the daemon (PR_SET_PDEATHSIG), a moment later: wait
            # for it, so that what the files hold is final when scenario 6 reads them.
            deadline = time.monotonic() + 10
            while any(_running(pid) for pid in helpers):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the daemon's children {helpers} outlived it")
                time.sleep(0.005)

    def _proc_file(self, name: str) -> str:
        assert self.proc is not None
        return Path(f"/proc/{self.proc.pid}/{name}").read_text()

    def _pids(self) -> list[int]:
        """The daemon and its live child processes (the splice helper)."""
        assert self.proc is not None
        pid = self.proc.pid
        children = self._proc_file(f"task/{pid}/children").split()
        return [pid, *(int(child) for child in children)]

    def cpu(self) -> float:
        """CPU seconds of the daemon and its child processes (the splice helper; children
        that ended and were reaped count through the daemon's cutime and cstime)."""
        assert self.proc is not None
        ticks = 0
        for pid in self._pids():
            with contextlib.suppress(OSError):
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                ticks += int(fields[11]) + int(fields[12])
                if pid == self.proc.pid:
                    ticks += int(fields[13]) + int(fields[14])
        return ticks / CLK_TCK

    def status_kb(self, key: str) -> int:
        """A size field of /proc/PID/status (VmRSS, VmHWM), summed over the daemon and its
        child processes."""
        total = 0
        for pid in self._pids():
            with contextlib.suppress(OSError):
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith(key + ":"):
                        total += int(line.split()[1])
        return total

    def held(self, job_id: str) -> tuple[int, int]:
        """For the (only) file of a job, while the daemon is down: the bytes its temporary file
        holds and the offset of its last checkpoint, from the daemon's store."""
        assert self.proc is None, "the daemon must be down"
        store = SqliteStore(self.state / STORE_FILE_NAME)
        try:
            (record,) = store.load().files[job_id]
        finally:
            store.close()
        return os.path.getsize(record.temp_name), record.bytes_transferred

    def reset_peak(self) -> None:
        for pid in self._pids():
            with contextlib.suppress(OSError):
                Path(f"/proc/{pid}/clear_refs").write_text("5")


def _running(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, dead and not reaped yet, does not)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status and "\nState:\tX" not in status


def self_cpu() -> float:
    t = os.times()
    return t.user + t.system


def run_bitsd(
    daemon: Daemon,
    jobs: list[list[tuple[str, str]]],
    *,
    priority: bitsd.Priority = bitsd.Priority.FOREGROUND,
    ca: str | None = None,
    calls: bool = False,
) -> Sample:
    """Create one job per file list, started, wait for TRANSFERRED, complete all.

    A job is created with its files and priority and resumed in one request
    (``create_job(files=, priority=, resume=True)``), unless it needs a CA bundle (a setter
    of its own) or ``calls`` asks for BITS's sequence of calls: create every job, set it up
    and add its files, then resume them all."""
    m = daemon.manager
    assert m is not None
    daemon.reset_peak()
    cpu0, self0 = daemon.cpu(), self_cpu()
    start = time.perf_counter()
    handles = []
    for i, files in enumerate(jobs):
        if not calls and ca is None:
            handles.append(m.create_job(f"bench {i}", files=files, priority=priority, resume=True))
            continue
        job = m.create_job(f"bench {i}")
        if priority is not bitsd.Priority.NORMAL:  # NORMAL is every job's default
            job.set_priority(priority)
        if ca is not None:
            job.set_ca_bundle(ca)
        job.add_file_set(files)
        handles.append(job)
    for job in handles:
        job.resume()  # a job that runs already stays as it is
    for job in handles:
        state = job.wait([JobState.TRANSFERRED, JobState.ERROR], timeout=3600)
        if state is not JobState.TRANSFERRED:
            err = job.get_error()
            raise RuntimeError(
                f"bitsd job failed: {bitsd.codes.name_of(err.code)} {err.description}"
            )
        job.complete()
    wall = time.perf_counter() - start
    cpu = daemon.cpu() - cpu0 + self_cpu() - self0
    return Sample(wall, cpu, daemon.status_kb("VmHWM") / 1024)


def run_peer(argv: list[str], cwd: Path) -> Sample:
    start = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    errors = proc.stderr.read()
    proc.stderr.close()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{argv[0]} failed: {errors[-500:]!r}")
    return Sample(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024)


@contextlib.contextmanager
def fresh(folder: Path) -> Iterator[Path]:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    yield folder


def have(tool: str) -> bool:
    return shutil.which(tool) is not None


class Suite:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="bitsd-suite-", dir="/dev/shm"))
        self.tmp.chmod(0o755)  # nginx workers run as another user
        self.www = self.tmp / "www"
        self.www.mkdir()
        self.out = self.tmp / "out"
        self.nginx = Nginx(self.tmp, self.www)
        self.daemon = Daemon(self.tmp)
        self.daemon.start()
        self.results: dict[str, dict[str, list[Sample]]] = {}

    def close(self) -> None:
        self.daemon.stop()
        self.nginx.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def record(self, scenario: str, tool: str, sample: Sample) -> None:
        self.results.setdefault(scenario, {}).setdefault(tool, []).append(sample)

    def alternate(self, scenario: str, runs: dict[str, Callable[[Path], Sample]]) -> None:
        for _ in range(self.args.rounds):
            for tool, run in runs.items():
                with fresh(self.out) as out:
                    self.record(scenario, tool, run(out))

    # -- scenarios ---------------------------------------------------------------------------

    def one_file(self, scenario: str, tls: bool) -> None:
        size = self.args.size_mib << 20
        name = "big.bin"
        if not (self.www / name).exists():
            make_file(self.www / name, size)
        url = self.nginx.url(name, tls)
        ca = str(self.tmp / "cert.pem")
        runs: dict[str, Callable[[Path], Sample]] = {
            "bitsd": lambda out: run_bitsd(
                self.daemon, [[(url, str(out / name))]], ca=ca if tls else None
            ),
        }
        if have("curl"):
            runs["curl"] = lambda out: run_peer(
                ["curl", "-sS", "--cacert", ca, "-o", str(out / name), url], out
            )
        if have("wget"):
            runs["wget"] = lambda out: run_peer(
                ["wget", "-q", f"--ca-certificate={ca}", "-O", str(out / name), url], out
            )
        if not tls:
            # The floor for any Python client: a raw GET whose body is spliced into the file.
            bound = str(Path(__file__).parent / "splice_bound.py")
            runs["splice bound"] = lambda out: run_peer(
                [sys.executable, bound, url, str(out / name)], out
            )
        if have("aria2c"):
            runs["aria2c"] = lambda out: run_peer(
                [
                    "aria2c",
                    "-q",
                    "-x1",
                    f"--ca-certificate={ca}",
                    "--file-allocation=none",
                    "-d",
                    str(out),
                    "-o",
                    name,
                    url,
                ],
                out,
            )
        self.alternate(scenario, runs)

    def many_small(self) -> None:
        folder = self.www / "small"
        if not folder.exists():
            folder.mkdir()
            for i in range(5000):
                (folder / f"f{i}").write_bytes(os.urandom(16 * 1024))
        urls = [self.nginx.url(f"small/f{i}") for i in range(5000)]
        listing = self.tmp / "list.txt"
        listing.write_text("\n".join(urls) + "\n")
        runs: dict[str, Callable[[Path], Sample]] = {
            "bitsd": lambda out: run_bitsd(
                self.daemon, [[(u, str(out / u.rsplit("/", 1)[1])) for u in urls]]
            ),
        }
        if have("aria2c"):
            runs["aria2c -j16"] = lambda out: run_peer(
                [
                    "aria2c",
                    "-q",
                    "-j16",
                    "--file-allocation=none",
                    "-d",
                    str(out),
                    "-i",
                    str(listing),
                ],
                out,
            )
        if have("wget"):
            runs["wget"] = lambda out: run_peer(["wget", "-q", "-i", str(listing)], out)
        self.alternate("3: 5,000 x 16 KiB, one job", runs)

    def many_jobs(self) -> None:
        kib = self.args.job_kib
        folder = self.www / f"mid{kib}"
        if not folder.exists():
            folder.mkdir()
            for i in range(200):
                make_file(folder / f"m{i}", kib << 10)
        urls = [self.nginx.url(f"mid{kib}/m{i}") for i in range(200)]
        listing = self.tmp / "mid.txt"
        listing.write_text("\n".join(urls) + "\n")
        runs: dict[str, Callable[[Path], Sample]] = {
            "bitsd": lambda out: run_bitsd(
                self.daemon,
                [[(u, str(out / u.rsplit("/", 1)[1]))] for u in urls],
                priority=bitsd.Priority.NORMAL,
            ),
            # The same jobs set up with BITS's calls: create, add files, then resume each.
            "bitsd (calls)": lambda out: run_bitsd(
                self.daemon,
                [[(u, str(out / u.rsplit("/", 1)[1]))] for u in urls],
                priority=bitsd.Priority.NORMAL,
                calls=True,
            ),
        }
        if have("aria2c"):
            # bitsd runs 4 background jobs at once: the same number of connections.
            runs["aria2c -j4"] = lambda out: run_peer(
                [
                    "aria2c",
                    "-q",
                    "-j4",
                    "--file-allocation=none",
                    "-d",
                    str(out),
                    "-i",
                    str(listing),
                ],
                out,
            )
        size = f"{kib >> 10} MiB" if kib % 1024 == 0 else f"{kib} KiB"
        self.alternate(f"4: 200 jobs x {size} at once", runs)

    def flat_memory(self) -> None:
        name = "huge.bin"
        if not (self.www / name).exists():
            make_file(self.www / name, 4 << 30)
        rss: list[float] = []
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                with contextlib.suppress(OSError, AssertionError):
                    rss.append(self.daemon.status_kb("VmRSS") / 1024)
                time.sleep(0.1)

        with fresh(self.out) as out:
            sampler = threading.Thread(target=sample)
            sampler.start()
            try:
                result = run_bitsd(self.daemon, [[(self.nginx.url(name), str(out / name))]])
            finally:
                done.set()
                sampler.join()
        result.extra = {
            "rss_start_mb": rss[0],
            "rss_max_mb": max(rss),
            "rss_growth_mb": max(rss) - rss[0],
            "samples": float(len(rss)),
        }
        self.record("5: 4 GiB, daemon RSS every 100 ms", "bitsd", result)

    def resume_cost(self) -> None:
        """Scenario 6. What a SIGKILL costs, counted on both sides of the socket:

        - ``refetched_by_bitsd_mib``: bytes bitsd received before it died (its temporary file,
          which the restart cuts back) minus the offset it had checkpointed (read from its
          store while it is down). These it fetches again; the checkpoint interval bounds them.
        - ``in_kernel_buffers_mib``: bytes nginx sent before the kill that bitsd never read
          (they sat in the socket buffers and the pipe when the process died).
        - ``nginx_sent_twice_mib``: nginx's own count (its access log), the sum of the two.
        - ``restart_to_bytes_s``: from starting the daemon again to progress past the
          checkpoint.
        """
        size = self.args.size_mib << 20
        name = "big.bin"
        if not (self.www / name).exists():
            make_file(self.www / name, size)
        url = self.nginx.url(name)
        mib = float(1 << 20)
        for _ in range(self.args.rounds):
            before = len(self.nginx.log_lines())
            with fresh(self.out) as out:
                m = self.daemon.manager
                assert m is not None
                job = m.create_job("resume cost")
                job.set_priority(bitsd.Priority.FOREGROUND)
                job.add_file(url, str(out / name))
                job.resume()
                while job.get_progress().bytes_transferred < size // 2:
                    time.sleep(0.005)
                self.daemon.stop(signal.SIGKILL)
                received, checkpointed = self.daemon.held(job.id)
                if checkpointed >= size:
                    raise RuntimeError(
                        "the download was whole before the kill: the daemon answered no "
                        "progress request while it ran"
                    )
                restart = time.perf_counter()
                self.daemon.start()
                m = self.daemon.manager
                assert m is not None
                job = m.get_job(job.id)
                while job.get_progress().bytes_transferred <= checkpointed:
                    time.sleep(0.002)
                to_bytes = time.perf_counter() - restart
                job.wait([JobState.TRANSFERRED], timeout=600)
                job.complete()
            lines = [ln for ln in self.nginx.log_lines()[before:] if ln.startswith(f"/{name} ")]
            sent = [int(ln.split()[2]) for ln in lines]
            self.record(
                "6: resume after SIGKILL at 50 %",
                "bitsd",
                Sample(
                    to_bytes,
                    0.0,
                    0.0,
                    {
                        "checkpoint_interval_mib": DEFAULT_CHECKPOINT_BYTES / mib,
                        "refetched_by_bitsd_mib": (received - checkpointed) / mib,
                        "in_kernel_buffers_mib": (sent[0] - received) / mib,
                        "nginx_sent_twice_mib": (sum(sent) - size) / mib,
                        "restart_to_bytes_s": to_bytes,
                    },
                ),
            )

    def run(self) -> None:
        wanted = {int(s) for s in self.args.scenarios.split(",")}
        if 1 in wanted:
            self.one_file(f"1: one {self.args.size_mib} MiB file, HTTP", tls=False)
        if 2 in wanted:
            self.one_file(f"2: one {self.args.size_mib} MiB file, HTTPS", tls=True)
        if 3 in wanted:
            self.many_small()
        if 4 in wanted:
            self.many_jobs()
        if 5 in wanted:
            self.flat_memory()
        if 6 in wanted:
            self.resume_cost()


def summarise(results: dict[str, dict[str, list[Sample]]]) -> dict[str, object]:
    summary: dict[str, object] = {}
    for scenario, tools in results.items():
        med = {
            tool: {
                "wall_s": statistics.median(s.wall for s in samples),
                "cpu_s": statistics.median(s.cpu for s in samples),
                "peak_rss_mb": max(s.rss_mb for s in samples),
                "runs": [asdict(s) for s in samples],
            }
            for tool, samples in tools.items()
        }
        ratios: dict[str, dict[str, object]] = {}
        for variant in [tool for tool in med if tool.startswith("bitsd")]:
            for tool, m in med.items():
                if not tool.startswith("bitsd") and m["wall_s"]:
                    # "aria2c -j4", or "bitsd (calls) / aria2c -j4" for a variant of bitsd
                    key = tool if variant == "bitsd" else f"{variant} / {tool}"
                    ratios[key] = {
                        "wall": med[variant]["wall_s"] / m["wall_s"],  # type: ignore[operator]
                        "cpu": med[variant]["cpu_s"] / m["cpu_s"] if m["cpu_s"] else None,  # type: ignore[operator]
                    }
        summary[scenario] = {"tools": med, "bitsd_ratio": ratios}
    return summary


def print_summary(summary: dict[str, object]) -> None:
    for scenario, data in summary.items():
        assert isinstance(data, dict)
        print(f"\n== {scenario}")
        print(f"{'tool':16} {'wall s':>9} {'CPU s':>9} {'peak RSS MB':>12}")
        for tool, m in data["tools"].items():
            print(f"{tool:16} {m['wall_s']:9.2f} {m['cpu_s']:9.2f} {m['peak_rss_mb']:12.0f}")
            for run in m["runs"]:
                if run["extra"]:
                    print("    " + ", ".join(f"{k}={v:.2f}" for k, v in run["extra"].items()))
        for tool, r in data["bitsd_ratio"].items():
            cpu = f", CPU {r['cpu']:.2f}x" if r["cpu"] is not None else ""
            name = tool if tool.startswith("bitsd") else f"bitsd / {tool}"
            print(f"{name}: wall {r['wall']:.2f}x{cpu}")


def chart(summary: dict[str, object], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(matplotlib is not installed: no chart; pip install matplotlib)")
        return
    labels, values = [], []
    for scenario, data in summary.items():
        assert isinstance(data, dict)
        for tool, r in data["bitsd_ratio"].items():
            labels.append(f"{scenario.split(':')[0]} vs {tool}")
            values.append(r["wall"])
    if not values:
        return
    fig, ax = plt.subplots(figsize=(max(6, len(values) * 0.9), 4))
    ax.bar(labels, values, color=["#2a7" if v <= 1 else "#c44" for v in values])
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_ylabel("bitsd wall time / peer wall time")
    ax.set_title("bitsd against its peers (lower is better)")
    plt.setp(ax.get_xticklabels(), rotation=30, ha="right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"chart: {path}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scenarios", default="1,2,3,4,5,6")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--size-mib", type=int, default=1024)
    # Scenario 4's file size; a small one (16) shows the per-job cost without the bytes.
    parser.add_argument("--job-kib", type=int, default=4096)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    suite = Suite(args)
    try:
        suite.run()
    finally:
        suite.close()
    summary = summarise(suite.results)
    print_summary(summary)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(summary, indent=2))
    print(f"\nresults: {args.out / 'results.json'}")
    chart(summary, args.out / "ratios.png")


if __name__ == "__main__":
    main()
