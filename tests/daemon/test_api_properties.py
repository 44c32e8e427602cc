"""Property tests of the control API (Hypothesis), over a real Unix socket: generated bodies,
query strings and path parameters sent to every route that takes input, at jobs in each setup
that changes what a route may refuse.

Bodies are JSON objects of the route's fields (and unknown and repeated ones) whose values are
near-valid or anything JSON allows: wrong types, huge integers, NaN and Infinity written as raw
JSON, nested values, unicode with lone surrogates (escaped, or as bytes that are not UTF-8),
over-long strings; or raw bytes, truncated JSON, or JSON that is not an object.

The properties: every answer is JSON with a status under 500 within a few seconds, and every
error has the API's shape; a refused request leaves the job exactly as it was (its Job object,
its files and, for an upload-reply job, its reply), and a refused create leaves no job.

Nothing leaves the machine: HTTP(S) goes to a proxy on a port where nothing listens, local
names are in the test's folder, and the only program a job may run is /bin/true.

Values are mostly valid, so that requests get past the checks to the setters, where a refusal
can leave a job half-changed. Each property runs 100 examples (about a second, derandomized);
``BITSD_LONG=1`` runs 3,000 from Hypothesis's seed (``--hypothesis-seed=N`` to choose one). The
long run found every bug the regression tests of test_api.py and tests/client name (lone
surrogates, bodies nested too deep, seconds and byte counts beyond what floats and the store
hold, PATCH conflicts a later setter refused).
"""

from __future__ import annotations

import asyncio
import io
import json
import math
import os
import tempfile
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yarl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bitsd import codes
from tests.daemon.test_api import error_of

LONG = os.environ.get("BITSD_LONG") == "1"
EXAMPLES = 3000 if LONG else 100
PROPERTY = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=not LONG,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,  # one daemon for all examples; each makes its jobs
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
# Seconds an answer may take: the routes answer at once (a wait is tamed to 0.1 s).
ANSWER_TIMEOUT = 10.0
# Where the test's folder goes in generated text (substituted when the request is sent).
DIR = "@DIR@"
# A readable file (what ca_bundle and client_certificate check).
READABLE = os.path.abspath(__file__)


# -- JSON text ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Raw:
    """A JSON token written as it is: numbers Python would not write (``1e400``, ``-0``,
    4,300 digits) and what JSON does not have (``NaN``, ``Infinity``, ``tRue``)."""

    text: str


@dataclass(frozen=True)
class Long:
    """A JSON string: ``count`` times ``char`` between ``before`` and ``after`` (a failing
    example shows it short)."""

    char: str
    count: int
    before: str = ""
    after: str = ""


@dataclass(frozen=True)
class Deep:
    """``leaf`` inside ``depth`` nested lists."""

    depth: int
    leaf: str


@dataclass(frozen=True)
class Obj:
    """A JSON object as its pairs, in order: a field may come twice."""

    pairs: tuple[tuple[str, Any], ...]


def render(value: object, ascii_only: bool) -> str:
    """``value`` as JSON text; strings with non-ASCII characters are escaped (``\\ud800``) or
    written as they are (a lone surrogate then becomes bytes that are not UTF-8)."""
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, Long):
        text = value.before + value.char * value.count + value.after
        return json.dumps(text, ensure_ascii=ascii_only)
    if isinstance(value, Deep):
        return "[" * value.depth + value.leaf + "]" * value.depth
    if isinstance(value, Obj):
        inner = ", ".join(
            f"{render(k, ascii_only)}: {render(v, ascii_only)}" for k, v in value.pairs
        )
        return "{" + inner + "}"
    if isinstance(value, list):
        return "[" + ", ".join(render(v, ascii_only) for v in value) + "]"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=ascii_only)
    return json.dumps(value)  # None, bools, ints (short enough), floats (NaN, Infinity too)


@dataclass(frozen=True)
class Body:
    """A request body: ``value`` as JSON text in ``encoding``, its first ``keep`` fraction
    (truncated JSON) if given; or ``value`` itself when it is bytes."""

    value: object
    ascii_only: bool = True
    encoding: str = "utf-8"
    keep: float | None = None

    def data(self) -> bytes:
        if isinstance(self.value, bytes):
            return self.value
        data = render(self.value, self.ascii_only).encode(self.encoding, "surrogatepass")
        return data if self.keep is None else data[: int(len(data) * self.keep)]


_RAW_NUMBERS = [
    "NaN",
    "Infinity",
    "-Infinity",
    "1e400",
    "-1e400",
    "1e-400",
    "-0",
    "-0.0",
    "1E2",
    "1.0",
    "0.5",
    "1" + "0" * 30,
    "-1" + "0" * 30,
    "1" + "0" * 400,
    str(2**63 - 1),
    str(2**63),
    str(2**64 - 1),  # SIZE_UNKNOWN, LENGTH_TO_EOF
    str(2**64),
    str(-(2**63) - 1),
    str(2**32 - 1),
    str(2**32),
    "tRue",
    "nul",
    "01",
    "+1",
]
_STRINGS = [
    "",
    " ",
    "\x00",
    "\r\n",
    "\ud800",
    "\udfff",
    "a\udc80b",
    "\U0001f600",
    "\u0131",
    "\ufb00",
    "\u00b9",
    "\u0663",
    "1",
    "-1",
    "foreground",
    " LOW ",
    "OVERRIDE",
    "basic",
    "server",
    "TRANSFERRED",
    "http://127.0.0.1:9/x",
    DIR + "/source",
    DIR + "/\ud800",
]
_SURROGATES = st.characters(codec=None, categories=["Cs"])
# Text that never names an absolute path outside the test's folder (nothing may write there).
TEXT = st.one_of(
    st.sampled_from(_STRINGS),
    st.text(st.one_of(st.characters(), _SURROGATES), max_size=30),
).filter(lambda s: not s.lstrip().startswith("/"))
# Strings over the limits (1,024, 16,383, 65,535 characters) and Python's 4,300 digits.
LONG_STRINGS = st.builds(
    Long,
    st.sampled_from(["a", "9", "\u00e9", "\ud800"]),
    st.sampled_from([1025, 4301, 16_384, 40_000, 65_536]),
)
HUGE = st.builds(Raw, st.sampled_from([4300, 4301, 10_000]).map(lambda n: "9" * n))
INTS = st.one_of(
    st.integers(-5, 70),
    st.integers(),
    st.integers(-(2**200), 2**200),
    st.sampled_from([2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**63 - 1, 2**63, 2**64 - 1, 2**64]),
)
LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    INTS,
    st.floats(),
    TEXT,
    LONG_STRINGS,
    HUGE,
    st.sampled_from(_RAW_NUMBERS).map(Raw),
)


def _objects(values: st.SearchStrategy[Any]) -> st.SearchStrategy[Obj]:
    return st.lists(st.tuples(TEXT, values), max_size=4).map(lambda p: Obj(tuple(p)))


ANY = st.recursive(
    LEAVES,
    lambda children: st.one_of(st.lists(children, max_size=4), _objects(children)),
    max_leaves=12,
)
DEEP = st.builds(
    Deep,
    st.sampled_from([50, 500, 900, 950, 980, 990, 995, 999, 1000, 1100, 100_000]),
    st.sampled_from(["", "1", '"a"']),
)


def mostly(valid: st.SearchStrategy[Any], *odd: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``valid`` three times in four, else one of ``odd``: a request whose other fields are
    valid reaches the setters, where refusals can leave a job half-changed. (Not
    ``one_of(valid, valid, valid, ...)``: it drops repeated branches.)"""
    if not odd:
        return valid
    other = st.one_of(*odd)
    return st.integers(0, 3).flatmap(lambda i: other if i == 3 else valid)


def fields(plausible: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[Obj]:
    """An object of the route's fields, each mostly ``plausible`` (valid, or near it), else
    anything; now and then with an unknown or repeated field."""
    names = sorted(plausible)
    extra = st.tuples(st.one_of(TEXT, *[st.just(name) for name in names]), ANY)
    if not names:
        return st.lists(extra, max_size=2).map(lambda pairs: Obj(tuple(pairs)))
    pair = st.sampled_from(names).flatmap(
        lambda name: st.tuples(st.just(name), mostly(plausible[name], ANY, DEEP))
    )
    return st.builds(
        lambda pairs, extras: Obj(tuple(pairs + extras)),
        st.lists(pair, max_size=len(names), unique_by=lambda p: p[0]),
        st.one_of(st.just([]), st.just([]), st.lists(extra, max_size=1)),
    )


def body_of(objects: st.SearchStrategy[Obj]) -> st.SearchStrategy[Body]:
    """A request body: mostly one of ``objects``, else any JSON, truncated JSON, UTF-16, or
    bytes."""
    value = mostly(objects, ANY, DEEP)
    return mostly(
        st.builds(Body, value, st.booleans()),
        st.builds(Body, value, st.booleans(), keep=st.floats(0, 1)),
        st.builds(Body, value, encoding=st.sampled_from(["utf-16", "utf-32", "utf-16-be"])),
        st.builds(
            Body,
            st.one_of(
                st.binary(max_size=40),
                st.sampled_from(
                    [b"", b"\xef\xbb\xbf{}", b"\xff\xfe{\x00}\x00", b'{"a": "\xed\xa0\x80"}']
                ),
            ),
        ),
    )


# -- valid and near-valid values of each field ---------------------------------------------

# Integers at the bounds the engine and its store have: 32 and 64 bits, signed and not.
BOUNDS = st.sampled_from(
    [-1, 0, 1, 2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**63 - 1, 2**63, 2**64 - 1, 2**64, 10**30]
)
NAMES = st.sampled_from(["a", "b", "c d", "\u00e9", "sub/x", "", ".", "a\x00b", "\ud800"])
LOCAL = mostly(st.sampled_from(["a", "b", "\u00e9"]).map(lambda n: f"{DIR}/{n}"), NAMES, TEXT)
REMOTE = mostly(
    st.sampled_from(["http://127.0.0.1:9/a", "https://127.0.0.1:9/b", f"{DIR}/source"]),
    st.sampled_from(
        [
            f"file://{DIR}/source",
            "ftp://127.0.0.1:9/x",
            "http://",
            "http://[::1",
            "http://127.0.0.1:99999/x",
            "http://127.0.0.1:9/\ud800",
            "http://\u00e9.invalid/x",
        ]
    ),
    st.just(Long("a", 2200, before="http://127.0.0.1:9/")),
    TEXT,
)
SECONDS = mostly(
    st.one_of(st.integers(0, 10**7), st.floats(0, 1e9)),
    st.sampled_from([-1, 10**30, 10**308, 10**309, 2**1024, 1e308, 1.7976931348623157e308]),
)
RANGE = mostly(
    st.tuples(st.integers(0, 100), st.integers(1, 100)).map(list),
    st.lists(st.one_of(BOUNDS, INTS), min_size=2, max_size=2),
    st.lists(ANY, max_size=3),
)
RANGES = st.lists(RANGE, max_size=3)
FILE = fields(
    {
        "remote_name": REMOTE,
        "local_name": LOCAL,
        "sha256": st.sampled_from(["0" * 64, "A" * 64, "0" * 63, "g" * 64]),
        "ranges": RANGES,
    }
)
FILES = st.lists(FILE, max_size=3)
PRIORITY = mostly(
    st.sampled_from(["FOREGROUND", "high", "Normal", "low", 0, 1, 2, 3]),
    st.sampled_from([" low", "urgent", 4, -1, 1.0, True]),
    INTS,
)
PROGRAM = mostly(
    st.sampled_from([None, "/bin/true"]),
    st.sampled_from(["true", "/bin/true\x00x", ""]),
    st.just(Long("a", 300, before="/")),
)
SECURITY_FLAGS = st.sampled_from([0, 1, 2, 4, 8, 0x10, 0x100, 0x200, 0x400, 0x800, 0xF00])
PATCH = fields(
    {
        "display_name": mostly(st.text(max_size=20), TEXT, st.just(Long("a", 1025))),
        "description": mostly(st.text(max_size=20), TEXT, st.just(Long("a", 1025))),
        "priority": PRIORITY,
        "minimum_retry_delay": SECONDS,
        "no_progress_timeout": SECONDS,
        "maximum_download_time": SECONDS,
        "dynamic_content": st.booleans(),
        "on_demand": st.booleans(),
        "notify_flags": mostly(st.integers(0, 0x3F), st.integers(-2, 0x41), BOUNDS),
        "notify_cmd_line": fields(
            {
                "program": PROGRAM,
                "parameters": mostly(
                    st.sampled_from([None, "a b"]),
                    st.just("'unclosed"),
                    st.just(Long("x", 5000)),
                ),
            }
        ),
        "maximum_download_size": mostly(
            st.one_of(st.none(), st.integers(1, 2**63 - 1)), BOUNDS, INTS
        ),
        "custom_headers": mostly(
            st.sampled_from([None, "", "X-A: b\r\n"]),
            st.sampled_from(["X-A: b", "Bad Header\r\n", "X: \x00\r\n"]),
            st.just(Long("a", 16_383, before="X: ", after="\r\n")),
        ),
        "http_method": mostly(
            st.sampled_from([None, "GET", "PUT", "POST", "get"]),
            st.sampled_from(["BAD METHOD", "", "M\r\n"]),
        ),
        "security_flags": mostly(SECURITY_FLAGS, BOUNDS, INTS),
        "proxy": mostly(
            st.one_of(
                st.builds(
                    lambda usage: Obj((("usage", usage),)),
                    st.sampled_from(["PRECONFIG", "no_proxy", "AUTODETECT", 0, 1, 3]),
                ),
                st.just(Obj((("usage", "OVERRIDE"), ("list", "http://127.0.0.1:9")))),
            ),
            fields(
                {
                    "usage": st.one_of(st.sampled_from(["OVERRIDE", "x"]), BOUNDS, INTS),
                    "list": st.one_of(
                        st.sampled_from([None, "http://127.0.0.1:9", "", "\ud800"]), LONG_STRINGS
                    ),
                    "bypass": st.sampled_from([None, "localhost", "<local>", ""]),
                }
            ),
        ),
        "ca_bundle": mostly(
            st.sampled_from([None, READABLE]),
            st.sampled_from(["/nonexistent/ca.pem", "ca.pem", ""]),
        ),
        "client_certificate": mostly(
            st.sampled_from([None, Obj((("certificate", READABLE),))]),
            fields(
                {
                    "certificate": st.sampled_from([READABLE, "/nonexistent/c.pem", "c.pem"]),
                    "key": st.sampled_from([None, READABLE, "/nonexistent/k.pem"]),
                }
            ),
        ),
        "transfer_policy": mostly(st.integers(0, 2**32 - 1), BOUNDS, INTS),
        "bandwidth_limit": mostly(st.one_of(st.none(), st.integers(1, 2**63 - 1)), BOUNDS, INTS),
    }
)
NEW_JOB = fields(
    {
        "display_name": mostly(st.text(max_size=20), TEXT, st.just(Long("a", 1025))),
        "type": mostly(
            st.sampled_from(["DOWNLOAD", "upload", "Upload_Reply", 0, 1, 2]),
            st.sampled_from(["x", 3, -1]),
            INTS,
        ),
        "files": FILES,
        "priority": PRIORITY,
        "resume": st.booleans(),
    }
)
TARGET = mostly(
    st.sampled_from(["SERVER", "proxy", 1, 2]), st.sampled_from(["\u00b9", "x"]), BOUNDS
)
SCHEME = mostly(
    st.sampled_from(["BASIC", "digest", "NTLM", "negotiate", 1, 4]),
    st.sampled_from(["passport", 5, 0]),
    BOUNDS,
)
ROUTE_BODIES: dict[str, st.SearchStrategy[Obj]] = {
    "files": fields({"files": FILES}),
    "validation": fields({"valid": st.booleans()}),
    "requested-ranges": fields({"ranges": RANGES}),
    "download-position": fields({"offset": mostly(st.integers(0, 10**6), BOUNDS, INTS)}),
    "replace-remote-prefix": fields(
        {
            "old": st.sampled_from(["http://127.0.0.1:9", "http", "", "/", DIR]),
            "new": mostly(
                st.sampled_from(["https://127.0.0.1:9", f"{DIR}/"]),
                st.sampled_from(["ftp://", "http://[::1"]),
                TEXT,
            ),
        }
    ),
    "credentials": fields(
        {
            "target": TARGET,
            "scheme": SCHEME,
            "user_name": mostly(st.sampled_from([None, "u"]), TEXT, st.just(Long("u", 301))),
            "password": mostly(st.sampled_from([None, "p"]), TEXT, st.just(Long("p", 65_536))),
        }
    ),
    "reply/file-name": fields({"path": mostly(st.none(), LOCAL)}),
    "custom-headers/write-only": fields({}),
}
ROUTES = {
    "files": ("POST", "files"),
    "validation": ("PUT", "files/{index}/validation"),
    "requested-ranges": ("POST", "files/{index}/requested-ranges"),
    "download-position": ("PUT", "files/{index}/download-position"),
    "replace-remote-prefix": ("POST", "replace-remote-prefix"),
    "credentials": ("PUT", "credentials"),
    "reply/file-name": ("PUT", "reply/file-name"),
    "custom-headers/write-only": ("POST", "custom-headers/write-only"),
}
# Numbers spelled every way, for path and query parameters.
PARAM = st.one_of(
    st.integers(-3, 3).map(str),
    st.sampled_from(
        ["", " 1", "1 ", "+1", "-0", "1_0", "0x1", "1.5", "1e3", "\u00b9", "\u0663", "\uff11"]
    ),
    st.sampled_from(["9" * 20, "9" * 4300, "9" * 5000, "nan", "inf", "-inf", "%", "%ff", "%00"]),
    st.text(max_size=12),
)
STATES = st.lists(
    st.one_of(
        st.sampled_from(["TRANSFERRED", "error", "SUSPENDED", "7", "\u0663", "", " ", "DONE"]),
        PARAM,
    ),
    max_size=3,
).map(",".join)


# -- the jobs requests are sent to -------------------------------------------------------------

KINDS = [
    "empty",
    "download",
    "ranged",
    "transferred",
    "on_demand",
    "custom_method",
    "dynamic",
    "write_only",
    "upload",
    "reply",
]


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every HTTP(S) request of a job goes to a proxy on a port where nothing listens."""
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")


@pytest.fixture
def fuzz(api: aiohttp.ClientSession, short_dir: Path, no_network: None) -> Fuzz:
    """The test's client with helpers to set jobs up and send generated requests."""
    return Fuzz(api, short_dir)


class Fuzz:
    """Sends requests and checks the answers' shape; sets jobs up in a folder of their own per
    example."""

    def __init__(self, api: aiohttp.ClientSession, root: Path) -> None:
        self.api = api
        self.root = root
        self.dir = root

    @property
    def source(self) -> str:
        return str(self.dir / "source")

    async def begin(self) -> None:
        """Start an example: no job (those of the example before are cancelled, so examples do
        not add up to the jobs-per-user limit), and a new folder with a source file."""
        for job_id in await self.job_ids():
            await self.ok("POST", f"/v1/jobs/{job_id}/cancel")
        self.dir = Path(tempfile.mkdtemp(dir=self.root))
        (self.dir / "source").write_bytes(b"source bytes")

    def fill(self, text: str) -> str:
        return text.replace(DIR, str(self.dir))

    async def send(
        self, method: str, path: str, body: Body | bytes | None = None
    ) -> tuple[int, Any]:
        """(status, JSON body) of one request whose path (with its query) is sent as it is;
        checks the answer's shape: JSON, an error in the API's error form, under 500 but for
        501 E_NOTIMPL (a feature bitsd or the job does not have, as documented)."""
        url = yarl.URL("http://bitsd" + path, encoded=True)
        data = body.data() if isinstance(body, Body) else body
        if data is not None:
            data = self.fill(data.decode("latin-1")).encode("latin-1")
        async with asyncio.timeout(ANSWER_TIMEOUT):
            # (A file object: aiohttp warns that large bytes would block the loop.)
            payload = None if data is None else io.BytesIO(data)
            async with self.api.request(method, url, data=payload) as response:
                text = await response.read()
                status = response.status
                content_type = response.content_type
        where = f"{method} {path:.300} {body!r:.300} -> {status} {text!r:.600}"
        assert content_type == "application/json", where
        answer = json.loads(text)
        if status >= 400:
            hresult, name = error_of(answer)
            assert name == codes.name_of(hresult), where
            assert status < 500 or (status, name) == (501, "E_NOTIMPL"), where
        return status, answer

    async def ok(self, method: str, path: str, body: object = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        status, answer = await self.send(method, path, data)
        assert status < 300, (method, path, answer)
        return answer

    async def make(self, kind: str) -> dict[str, Any]:
        """A new job of ``kind`` (one of KINDS), alone, in a new folder."""
        await self.begin()
        job_type = {"upload": "UPLOAD", "reply": "UPLOAD_REPLY"}.get(kind, "DOWNLOAD")
        job = await self.ok("POST", "/v1/jobs", {"display_name": kind, "type": job_type})
        base = f"/v1/jobs/{job['id']}"
        http = {"remote_name": "http://127.0.0.1:9/a", "local_name": str(self.dir / "a")}
        if kind in ("on_demand", "custom_method", "dynamic", "write_only"):
            patch = {
                "on_demand": {"on_demand": True},
                "custom_method": {"http_method": "PUT"},
                "dynamic": {"dynamic_content": True},
                "write_only": {"custom_headers": "X-A: b\r\n"},
            }[kind]
            await self.ok("PATCH", base, patch)
        if kind == "write_only":
            await self.ok("POST", f"{base}/custom-headers/write-only")
        files: list[dict[str, Any]] = []
        if kind == "download":
            files = [http, {"remote_name": self.source, "local_name": str(self.dir / "b")}]
        elif kind == "ranged":
            files = [{**http, "ranges": [[0, 5], [10, 5]]}]
        elif kind in ("on_demand", "custom_method", "dynamic", "write_only"):
            files = [http]
        elif kind in ("upload", "reply"):
            files = [{"remote_name": "http://127.0.0.1:9/up", "local_name": self.source}]
        elif kind == "transferred":
            files = [{"remote_name": self.source, "local_name": str(self.dir / "t")}]
        if files:
            await self.ok("POST", f"{base}/files", {"files": files})
        if kind == "transferred":
            await self.ok("POST", f"{base}/resume")
            waited = await self.ok("GET", f"{base}/wait?states=TRANSFERRED,ERROR&timeout=10")
            assert waited["state"] == "TRANSFERRED", waited
        return dict(await self.ok("GET", base))

    async def seen(self, job: dict[str, Any]) -> list[Any]:
        """What the API shows of ``job``: the Job, its files, its reply (upload-reply jobs)."""
        base = f"/v1/jobs/{job['id']}"
        shown = [await self.ok("GET", base), await self.ok("GET", f"{base}/files")]
        if job["type"] == "UPLOAD_REPLY":
            shown.append(await self.ok("GET", f"{base}/reply"))
        return shown

    async def job_ids(self) -> list[str]:
        page = await self.ok("GET", "/v1/jobs?view=brief&limit=10000")
        return [brief["id"] for brief in page["jobs"]]


def _quote(text: str) -> str:
    """``text`` for a URL: percent-encoded unless it already holds a ``%`` (sent as it is)."""
    return urllib.parse.quote(
        text.encode("utf-8", "surrogatepass"), safe="%" if "%" in text else ""
    )


def _query(params: list[tuple[str, str]]) -> str:
    return "&".join(f"{_quote(k)}={_quote(v)}" for k, v in params)


def _short_wait(query: str) -> str:
    """``query`` with a timeout that cannot make the example wait long, as the daemon reads
    it (the last one counts): one missing, or a number over 0.1 s, is made 0.1 s (the default
    and the cap of long ones are test_api's to check)."""
    timeouts = [
        v for k, v in urllib.parse.parse_qsl(query, keep_blank_values=True) if k == "timeout"
    ]
    try:
        long = not timeouts or (math.isfinite(seconds := float(timeouts[-1])) and seconds > 0.1)
    except ValueError:
        long = False
    return f"{query}&timeout=0.1" if long else query


# -- the properties ----------------------------------------------------------------------------


@PROPERTY
@given(kind=st.sampled_from(KINDS), body=body_of(PATCH))
async def test_patch_answers_and_a_refused_patch_changes_nothing(
    fuzz: Fuzz, kind: str, body: Body
) -> None:
    """PATCH /v1/jobs/{id} with any body at a job of any kind: a JSON answer under 500; a
    refused PATCH leaves the job as it was; an accepted one answers the job as GET shows it."""
    job = await fuzz.make(kind)
    before = await fuzz.seen(job)
    status, answer = await fuzz.send("PATCH", f"/v1/jobs/{job['id']}", body)
    after = await fuzz.seen(job)
    if status >= 400:
        assert after == before, (body, answer)
    else:
        assert answer == after[0]


@PROPERTY
@given(
    body=body_of(NEW_JOB),
    view=st.one_of(st.none(), st.sampled_from(["brief", "full", "Brief", ""]), PARAM),
)
async def test_create_answers_and_a_refused_create_leaves_no_job(
    fuzz: Fuzz, body: Body, view: str | None
) -> None:
    """POST /v1/jobs with any body and view: a JSON answer under 500; a refused create leaves
    no job behind (its files, priority and resume are all or nothing)."""
    await fuzz.begin()
    query = "" if view is None else "?" + _query([("view", view)])
    status, answer = await fuzz.send("POST", f"/v1/jobs{query}", body)
    ids = await fuzz.job_ids()
    if status >= 400:
        assert ids == [], (body, answer)
    else:
        assert ids == [answer["id"]]


@PROPERTY
@given(
    kind=st.sampled_from(KINDS),
    route_and_body=st.sampled_from(sorted(ROUTES)).flatmap(
        lambda route: st.tuples(st.just(route), body_of(ROUTE_BODIES[route]))
    ),
    index=mostly(st.just("0"), st.just("1"), PARAM),
    view=st.one_of(st.none(), st.sampled_from(["brief", "full", "x"])),
)
async def test_job_routes_answer_and_a_refusal_changes_nothing(
    fuzz: Fuzz, kind: str, route_and_body: tuple[str, Body], index: str, view: str | None
) -> None:
    """Every other route of a job that takes a body (files, validation, requested ranges,
    download position, remote prefix, credentials, reply file name, write-only headers), with
    any body and file index, at a job of any kind: a JSON answer under 500, and a refused
    request leaves the job, its files and its reply as they were."""
    route, body = route_and_body
    method, tail = ROUTES[route]
    job = await fuzz.make(kind)
    before = await fuzz.seen(job)
    path = f"/v1/jobs/{job['id']}/" + tail.replace("{index}", _quote(index))
    if view is not None and route == "files":
        path += "?" + _query([("view", view)])
    status, answer = await fuzz.send(method, path, body)
    if status >= 400:
        assert await fuzz.seen(job) == before, (route, body, answer)


@PROPERTY
@given(
    listing=st.lists(
        st.tuples(st.sampled_from(["offset", "limit", "view", "x"]), PARAM), max_size=4
    ),
    waiting=st.lists(
        st.tuples(
            st.sampled_from(["states", "timeout", "x"]),
            st.one_of(STATES, PARAM),
        ),
        max_size=4,
    ),
    kind=st.sampled_from(["empty", "transferred"]),
)
async def test_query_parameters_answer(
    fuzz: Fuzz, listing: list[tuple[str, str]], waiting: list[tuple[str, str]], kind: str
) -> None:
    """GET /v1/jobs?offset=&limit=&view= and GET .../wait?states=&timeout= with any values
    (repeated, empty, odd numbers, percent-escapes): a JSON answer under 500, in time."""
    job = await fuzz.make(kind)
    await fuzz.send("GET", "/v1/jobs?" + _query(listing))
    await fuzz.send("GET", f"/v1/jobs/{job['id']}/wait?" + _short_wait(_query(waiting)))


ROUTE_TEMPLATES = [
    ("GET", "/v1/jobs/{id}"),
    ("PATCH", "/v1/jobs/{id}"),
    ("GET", "/v1/jobs/{id}/files"),
    ("POST", "/v1/jobs/{id}/files"),
    ("GET", "/v1/jobs/{id}/error"),
    ("GET", "/v1/jobs/{id}/reply"),
    ("PUT", "/v1/jobs/{id}/files/{index}/validation"),
    ("DELETE", "/v1/jobs/{id}/credentials/{target}/{scheme}"),
    ("POST", "/v1/jobs/{id}/suspend"),
]


@PROPERTY
@given(
    template=st.sampled_from(ROUTE_TEMPLATES),
    job_id=st.one_of(
        st.sampled_from(["{id}", "{ID}", "{{id}}", "{id} ", "{id}0", "{hex}"]),
        st.text(max_size=40),
    ),
    index=PARAM,
    target=st.one_of(TARGET.map(str), PARAM),
    scheme=st.one_of(SCHEME.map(str), PARAM),
)
async def test_path_parameters_answer(
    fuzz: Fuzz, template: tuple[str, str], job_id: str, index: str, target: str, scheme: str
) -> None:
    """Job ids, file indexes, authentication targets and schemes spelled any way (upper case,
    braces, no dashes, unicode, odd numbers): a JSON answer under 500."""
    job = await fuzz.make("download")
    real = job["id"]
    spelled = (
        job_id.replace("{ID}", real.upper())
        .replace("{id}", real)
        .replace("{hex}", real.replace("-", ""))
    )
    method, path = template
    path = (
        path.replace("{id}", _quote(spelled))
        .replace("{index}", _quote(index))
        .replace("{target}", _quote(target))
        .replace("{scheme}", _quote(scheme))
    )
    await fuzz.send(method, path, b'{"valid": true}' if method == "PUT" else None)


def test_rendered_bodies_are_what_they_say() -> None:
    """The renderer writes repeated fields, raw tokens and escaped lone surrogates."""
    body = Obj((("a", Raw("NaN")), ("a", ["\ud800", 10**30])))
    assert render(body, True) == '{"a": NaN, "a": ["\\ud800", 1000000000000000000000000000000]}'
    assert render("\u00e9", False).encode() == '"\u00e9"'.encode()
