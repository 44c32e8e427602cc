"""The control API under attack, against a real daemon process on its Unix socket: requests
generated from the daemon's own OpenAPI document (schemathesis: valid and invalid ones), and
clients that send garbage or stall. No answer is a 5xx, the daemon never dies, and one client
cannot block the others.

The fuzzing is bounded (examples per operation, a time budget) and deterministic; with
``BITSD_LONG=1`` it runs more examples from a random seed (printed; ``BITSD_SEED`` replays).
"""

from __future__ import annotations

import contextlib
import random
import select
import socket
import time
import urllib.parse
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
import urllib3
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from requests.adapters import HTTPAdapter
from schemathesis import GenerationMode
from schemathesis.core.result import Ok

from tests.client.daemon import http_json, short_tmp
from tests.reliability.conftest import Held
from tests.reliability.procs import LONG, KillableDaemon

pytestmark = pytest.mark.e2e

EXAMPLES = 200 if LONG else 15  # per operation and generation mode
BUDGET = 600.0 if LONG else 40.0  # seconds for the whole fuzzing run
# Nothing the fuzzed daemon does may leave this machine: every HTTP(S) request goes to a
# proxy on a port where nothing listens (jobs are never resumed on purpose, this is a net).
NO_NETWORK = {
    "http_proxy": "http://127.0.0.1:9",
    "https_proxy": "http://127.0.0.1:9",
    "HTTP_PROXY": "http://127.0.0.1:9",
    "HTTPS_PROXY": "http://127.0.0.1:9",
    "no_proxy": "",
    "NO_PROXY": "",
}


class _UnixConnection(urllib3.connection.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("bitsd", timeout=timeout)
        self._unix_path = path

    def _new_conn(self) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._unix_path)
        return sock


class _UnixPool(urllib3.HTTPConnectionPool):
    def __init__(self, path: str) -> None:
        super().__init__("bitsd")
        self._unix_path = path

    def _new_conn(self) -> _UnixConnection:
        return _UnixConnection(self._unix_path, 10.0)


class UnixAdapter(HTTPAdapter):
    """requests over a Unix socket: every URL goes to the daemon's socket."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self._pool = _UnixPool(str(path))

    def get_connection_with_tls_context(self, *args: Any, **kwargs: Any) -> _UnixPool:
        return self._pool

    def close(self) -> None:
        self._pool.close()
        super().close()


@pytest.fixture(scope="module")
def daemon() -> Iterator[KillableDaemon]:
    """A daemon process for this module, with no way out to the network."""
    with short_tmp() as root:
        d = KillableDaemon(root, "max_jobs_per_user = 0\n", env=NO_NETWORK)
        d.start()
        try:
            yield d
        finally:
            if d.proc is not None and d.proc.poll() is None:
                d.stop()


class Victim:
    """A real job (SUSPENDED, one file into a scratch folder) that fuzzed requests are pointed
    at half of the time, so bodies and parameters are checked past the job lookup. It is made
    again when a fuzzed cancel or complete ended it."""

    def __init__(self, daemon: KillableDaemon) -> None:
        self._daemon = daemon
        self.scratch = daemon.root / "scratch"
        self.scratch.mkdir(exist_ok=True)
        self.id = ""
        self.made = 0

    def current(self) -> str:
        if self.id and http_json(self._daemon.socket, "GET", f"/v1/jobs/{self.id}")[0] == 200:
            return self.id
        status, job = http_json(self._daemon.socket, "POST", "/v1/jobs", {"display_name": "v"})
        assert status == 201, job
        self.id = job["id"]
        self.made += 1
        files = {"files": [{"remote_name": "http://127.0.0.1:9/f", "local_name": self._local()}]}
        assert http_json(self._daemon.socket, "POST", f"/v1/jobs/{self.id}/files", files)[0] == 200
        return self.id

    def _local(self, name: object = "f") -> str:
        base = Path(str(name)).name or "f"
        return str(self.scratch / base)

    def tame(self, case: Any) -> bool:
        """Make ``case`` safe to run on the victim: local names into the scratch folder, no
        notify command line, a short wait. False for operations never run on it (resume: a
        running victim would transfer)."""
        if case.path.endswith("/resume"):
            return False
        case.path_parameters["id"] = self.current()
        body = case.body
        if case.path.endswith("/files") and case.method.upper() == "POST":
            files = body.get("files") if isinstance(body, dict) else None
            for item in files if isinstance(files, list) else []:
                if isinstance(item, dict) and "local_name" in item:
                    item["local_name"] = self._local(item["local_name"])
        if isinstance(body, dict):
            body.pop("notify_cmd_line", None)
        if case.path.endswith("/wait") and isinstance(case.query, dict):
            case.query["timeout"] = 0.1
        return True


def _is_error_shape(body: object) -> bool:
    error = body.get("error") if isinstance(body, dict) else None
    return isinstance(error, dict) and {"hresult", "name", "message"} <= error.keys()


def test_fuzzed_requests_never_get_a_5xx(daemon: KillableDaemon, seed: int, held: Held) -> None:
    """Every operation of GET /v1/openapi.json, with requests schemathesis generates from it
    (valid and invalid), at random ids and at a real job: no answer is a 5xx other than the
    documented 501 E_NOTIMPL (a feature bitsd does not have), every non-2xx has the documented
    error body, and afterwards the daemon still serves and logged no bug."""
    status, document = http_json(daemon.socket, "GET", "/v1/openapi.json")
    assert status == 200
    schema = schemathesis.openapi.from_dict(document)
    session = requests.Session()
    session.trust_env = False
    session.mount("http://", UnixAdapter(daemon.socket))
    victim = Victim(daemon)
    statuses: Counter[int] = Counter()
    operations: set[str] = set()
    unsendable = 0
    deadline = time.monotonic() + BUDGET
    failures: list[str] = []

    def run(case: Any, on_victim: bool) -> None:
        nonlocal unsendable
        if time.monotonic() > deadline:
            return
        if on_victim and "id" in (case.path_parameters or {}) and not victim.tame(case):
            return
        try:
            response = case.call(session=session, base_url="http://bitsd", timeout=15)
        except (requests.exceptions.InvalidURL, requests.exceptions.InvalidHeader, ValueError):
            unsendable += 1  # a request no client library would send
            return
        statuses[response.status_code] += 1
        operations.add(f"{case.method.upper()} {case.path}")
        where = f"{case.method.upper()} {case.formatted_path} -> {response.status_code}"
        if response.status_code < 400:
            return
        try:
            body = response.json()
        except ValueError:
            body = None
        if not _is_error_shape(body):
            failures.append(f"{where}: not an error body: {response.text[:300]}")
        elif response.status_code >= 500 and (response.status_code, body["error"]["name"]) != (
            501,
            "E_NOTIMPL",
        ):
            failures.append(f"{where}: {response.text[:300]}")

    modes = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result  # the document itself is valid
        operation = result.ok()
        if operation.path == "/v1/events":  # the WebSocket: tested by the event-stream tests
            continue
        for mode in modes:
            strategy = operation.as_strategy(generation_mode=mode)

            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                database=None,
                derandomize=not LONG,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            @given(case=strategy, on_victim=st.booleans())
            def check(case: Any, on_victim: bool) -> None:
                run(case, on_victim)

            if LONG:
                check = hypothesis_seed(seed)(check)
            with contextlib.suppress(Unsatisfiable):  # no invalid form (e.g. no parameters)
                check()
    session.close()
    assert not failures, "\n".join(failures[:20])
    assert http_json(daemon.socket, "GET", "/v1/version")[0] == 200
    assert daemon.proc is not None
    assert daemon.proc.poll() is None
    log = daemon.log_text()
    for bad in ("event=http.bug", "Traceback", "unexpected failure"):
        assert bad not in log, log[-3000:]
    total = sum(statuses.values())
    held(
        "control API",
        f"fuzzed from its OpenAPI document with schemathesis ({total} requests over "
        f"{len(operations)} operations, valid and invalid, half at a real job; "
        f"{'random seed' if LONG else 'deterministic'}): no 500, no 5xx but the documented "
        f"501 E_NOTIMPL (statuses "
        f"{dict(sorted(statuses.items()))}), every error with the documented body, the daemon "
        "kept serving and logged no bug",
        total,
    )


ODD_NUMBERS = ["\u00b9", "\u0663", "\uff11", "1\u0301", "-0", "+1", "1_0", " 1", "9" * 5000]


def test_odd_numbers_in_paths_and_queries_are_caller_errors(
    daemon: KillableDaemon, held: Held
) -> None:
    """Numbers spelled with superscript, Arabic-Indic or full-width digits, signs, underscores,
    spaces or 5,000 digits, where the API reads an integer (auth target and scheme, wait
    states, a file index, paging): a 4xx with the error body, never a 500. (The long fuzzing
    run found ``DELETE .../credentials/\u00b9/1`` answering 500: ``str.isdigit`` accepts
    digits ``int`` refuses.)"""
    job = Victim(daemon).current()
    answers: Counter[int] = Counter()
    for odd in ODD_NUMBERS:
        text = urllib.parse.quote(odd)
        for method, path in (
            ("DELETE", f"/v1/jobs/{job}/credentials/{text}/1"),
            ("DELETE", f"/v1/jobs/{job}/credentials/1/{text}"),
            ("GET", f"/v1/jobs/{job}/wait?states={text}&timeout=0"),
            ("PUT", f"/v1/jobs/{job}/files/{text}/validation"),
            ("GET", f"/v1/jobs?limit={text}"),
            ("GET", f"/v1/jobs?offset={text}"),
        ):
            status, body = http_json(daemon.socket, method, path, {"valid": True})
            assert status < 500, (method, path, body)
            assert status < 300 or _is_error_shape(body), (method, path, body)
            answers[status] += 1
    assert "event=http.bug" not in daemon.log_text()
    held(
        "control API",
        f"integers spelled oddly ({len(ODD_NUMBERS)} forms: superscript, Arabic-Indic and "
        "full-width digits, a combining mark, signs, underscores, a space, 5,000 digits) in "
        f"6 places the API reads one: no 500 (statuses {dict(sorted(answers.items()))}); "
        "the long fuzzing run found one that answered 500, fixed",
        sum(answers.values()),
    )


# -- garbage and stalled clients ---------------------------------------------------------------


def _open(daemon: KillableDaemon) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(5)
    sock.connect(str(daemon.socket))
    return sock


def _timed_requests(daemon: KillableDaemon, count: int) -> float:
    """The slowest of ``count`` normal requests (new connections), in seconds."""
    slowest = 0.0
    for i in range(count):
        began = time.monotonic()
        path = "/v1/version" if i % 2 else "/v1/jobs?limit=5"
        status, _ = http_json(daemon.socket, "GET", path, timeout=5)
        assert status == 200
        slowest = max(slowest, time.monotonic() - began)
    return slowest


STALLS = {
    "half a request head": b"GET /v1/version HTTP/1.1\r\nHost: bi",
    "a head announcing a body that never comes": (
        b"POST /v1/jobs HTTP/1.1\r\nHost: bitsd\r\nContent-Type: application/json\r\n"
        b"Content-Length: 1000\r\n\r\n{"
    ),
    "nothing at all": b"",
}


@pytest.mark.parametrize("stall", list(STALLS), ids=list(STALLS))
def test_stalled_clients_do_not_block_others(
    stall: str, daemon: KillableDaemon, held: Held
) -> None:
    """While 20 connections each send only part of a request and stall, a normal client's
    requests still succeed quickly (each well under a second)."""
    stalled = [_open(daemon) for _ in range(20)]
    try:
        for sock in stalled:
            sock.sendall(STALLS[stall])
        slowest = _timed_requests(daemon, 20)
        assert slowest < 1.0, slowest
    finally:
        for sock in stalled:
            sock.close()
    held(
        "control API",
        f"slowloris: 20 connections sent {stall} and stalled; 20 requests of a normal client "
        f"still succeeded, the slowest in {slowest * 1000:.0f} ms",
        20,
    )


_WAITING = b"(nothing yet)"


def _first_bytes(socks: list[socket.socket], wait: float) -> list[bytes]:
    """What each socket received first within ``wait`` seconds (b"" if it was closed,
    ``_WAITING`` if nothing came)."""
    firsts = dict.fromkeys(socks, _WAITING)
    deadline = time.monotonic() + wait
    pending = list(socks)
    while pending and (left := deadline - time.monotonic()) > 0:
        readable, _, _ = select.select(pending, [], [], left)
        for sock in readable:
            try:
                firsts[sock] = sock.recv(64)
            except OSError:
                firsts[sock] = b""
            pending.remove(sock)
    return [firsts[sock] for sock in socks]


def test_garbage_is_refused_and_does_not_block_others(
    daemon: KillableDaemon, seed: int, held: Held
) -> None:
    """Connections that send random bytes, a 100 KB request line, or a header of 100 KB are
    answered with a 4xx or closed; meanwhile and afterwards a normal client is served
    quickly, and the daemon logs no bug."""
    rng = random.Random(seed)
    garbage = [rng.randbytes(rng.randint(1, 4096)) for _ in range(20)]
    garbage += [
        b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\n\r\n",
        b"GET /v1/version HTTP/1.1\r\nX: " + b"b" * 100_000 + b"\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(32),  # a TLS hello
        b"GET /v1/version HTTP/9.9\r\nHost: bitsd\r\n\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",  # HTTP/2 preface
    ]
    answers: Counter[str] = Counter()
    socks = []
    for data in garbage:
        sock = _open(daemon)
        with contextlib.suppress(OSError):
            sock.sendall(data)
        socks.append(sock)
    try:
        slowest = _timed_requests(daemon, 20)
        firsts = _first_bytes(socks, 1.0)
        for first in firsts:
            status = first.split(b" ")[1].decode() if first.startswith(b"HTTP/1.1 ") else ""
            answers[status or ("still reading" if first is _WAITING else "closed")] += 1
            assert not status.startswith("5"), first
    finally:
        for sock in socks:
            sock.close()
    slowest = max(slowest, _timed_requests(daemon, 5))
    assert slowest < 1.0
    bugs = [line for line in daemon.log_text().splitlines() if "event=http.bug" in line]
    assert not bugs, bugs
    held(
        "control API",
        f"garbage: {len(garbage)} connections sent random bytes, a 100 KB request line, a "
        f"100 KB header, a TLS hello, HTTP/9.9, an HTTP/2 preface (answers: "
        f"{dict(sorted(answers.items()))}); no 5xx, a normal client served meanwhile "
        f"(slowest {slowest * 1000:.0f} ms)",
        len(garbage),
    )


def test_daemon_stops_promptly_with_stalled_connections(held: Held) -> None:
    """SIGTERM with stalled connections open: the daemon exits 0 within its stop time; a
    connection that stalled in its head is closed, one that stalled in its body is answered
    503 with the API's error body (RPC_S_SERVER_UNAVAILABLE), not 500."""
    with short_tmp() as root:
        daemon = KillableDaemon(root, env=NO_NETWORK)
        daemon.start()
        heads = [_open(daemon) for _ in range(10)]
        bodies = [_open(daemon) for _ in range(10)]
        for sock in heads:
            sock.sendall(STALLS["half a request head"])
        for sock in bodies:
            sock.sendall(STALLS["a head announcing a body that never comes"])
        began = time.monotonic()
        assert daemon.stop() == 0
        took = time.monotonic() - began
        answers = _first_bytes(heads + bodies, 3.0)
        for sock in heads + bodies:
            sock.close()
    assert answers[:10] == [b""] * 10
    for answer in answers[10:]:
        assert answer.startswith(b"HTTP/1.1 503 "), answer
    assert "Traceback" not in daemon.log_text()
    held(
        "control API",
        f"SIGTERM with 20 stalled connections open: exit status 0 in {took:.1f} s; those "
        "stalled in their head closed, those stalled in their body answered 503 "
        "RPC_S_SERVER_UNAVAILABLE in the API's error form (was: a text 500 and a traceback)",
    )
