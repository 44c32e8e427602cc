"""The control API routes of issue 6's options as raw HTTP against a real daemon process (the
shapes of docs/control-api.md, all-or-none PATCH), credentials kept out of every answer and
of the daemon's log, and the synchronous client's new methods."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import bitsd
from bitsd import LENGTH_TO_EOF, BitsError, JobState, ProxyUsage, codes
from bitsd._enums import AuthScheme, AuthTarget
from bitsd.aio import connect
from tests.client.daemon import Daemon, http_json, running_daemon
from tests.client.test_roundtrip import body, unique_path
from tests.servers.faulty import FaultServer

pytestmark = pytest.mark.e2e  # every test here talks to a real daemon process


@pytest.fixture
def job_id(daemon: Daemon) -> Iterator[str]:
    """A new job of the shared daemon, cancelled afterwards."""
    status, job = http_json(daemon.socket, "POST", "/v1/jobs", {"display_name": "routes"})
    assert status == 201, job
    yield job["id"]
    http_json(daemon.socket, "POST", f"/v1/jobs/{job['id']}/cancel")


def call(daemon: Daemon, method: str, path: str, body: object = None) -> tuple[int, Any]:
    return http_json(daemon.socket, method, path, body)


def error_of(answer: tuple[int, Any]) -> tuple[int, str]:
    """(HTTP status, BITS name) of an error answer."""
    status, data = answer
    return status, data["error"]["name"]


def test_files_carry_ranges_and_validation(daemon: Daemon, job_id: str, dest: Path) -> None:
    """POST files with ranges (LENGTH_TO_EOF allowed) answers the added File with its ranges
    and validated false; GET lists ranges [] for a whole file."""
    files = f"/v1/jobs/{job_id}/files"
    status, added = call(
        daemon,
        "POST",
        files,
        {
            "files": [
                {
                    "remote_name": "http://127.0.0.1:9/r",
                    "local_name": str(dest / "r"),
                    "ranges": [[5, LENGTH_TO_EOF], [0, 2]],
                }
            ]
        },
    )
    assert status == 200, added
    [entry] = added["files"]
    assert (entry["ranges"], entry["validated"]) == ([[5, LENGTH_TO_EOF], [0, 2]], False)
    sha = hashlib.sha256(b"").hexdigest()
    entry_with_sum = {"remote_name": "http://127.0.0.1:9/s", "local_name": str(dest / "s")}
    status, added = call(daemon, "POST", files, {"files": [{**entry_with_sum, "sha256": sha}]})
    assert status == 200, added
    status, listed = call(daemon, "GET", files)
    assert status == 200
    assert [(f["ranges"], f["validated"]) for f in listed["files"]] == [
        ([[5, LENGTH_TO_EOF], [0, 2]], False),
        ([], False),
    ]


@pytest.mark.parametrize(
    "entries",
    [
        # a file with options goes alone; sha256 and ranges do not go together
        [{"sha256": "0" * 64}, {}],
        [{"ranges": [[0, 1]]}, {}],
        [{"sha256": "0" * 64, "ranges": [[0, 1]]}],
        # malformed fields
        [{"ranges": [[0, 1, 2]]}],
        [{"ranges": [[0, "1"]]}],
        [{"ranges": [[True, 1]]}],
        [{"ranges": {"0": 1}}],
        [{"sha256": 5}],
        [{"checksum": "0" * 64}],
    ],
)
def test_malformed_file_options_are_400_and_add_nothing(
    daemon: Daemon, job_id: str, dest: Path, entries: list[dict[str, Any]]
) -> None:
    files = [
        {"remote_name": f"http://127.0.0.1:9/{i}", "local_name": str(dest / str(i)), **e}
        for i, e in enumerate(entries)
    ]
    path = f"/v1/jobs/{job_id}/files"
    assert error_of(call(daemon, "POST", path, {"files": files})) == (400, "E_INVALIDARG")
    assert call(daemon, "GET", path) == (200, {"files": []})


def test_validation_route_errors(daemon: Daemon, job_id: str, dest: Path) -> None:
    """PUT .../validation: a file not finished is 409 E_PENDING; an unknown index, a non-number
    or a body without a boolean is 400 E_INVALIDARG."""
    local = str(dest / "v")
    call(
        daemon,
        "POST",
        f"/v1/jobs/{job_id}/files",
        {"files": [{"remote_name": "http://127.0.0.1:9/v", "local_name": local}]},
    )
    route = f"/v1/jobs/{job_id}/files/{{}}/validation"
    assert error_of(call(daemon, "PUT", route.format(0), {"valid": True})) == (409, "E_PENDING")
    for index, body_ in (("1", {"valid": True}), ("-1", {"valid": True}), ("x", {"valid": 1})):
        assert error_of(call(daemon, "PUT", route.format(index), body_)) == (400, "E_INVALIDARG")
    assert error_of(call(daemon, "PUT", route.format(0), {"valid": 1})) == (400, "E_INVALIDARG")


def test_patch_is_all_or_none_with_the_new_properties(
    daemon: Daemon, job_id: str, tmp_path: Path
) -> None:
    """A PATCH whose later field is bad, or whose fields conflict with each other or with the
    job, changes nothing; a good one sets every new property and answers the Job."""
    job = f"/v1/jobs/{job_id}"
    status, before = call(daemon, "GET", job)
    assert status == 200
    for patch, expected in [
        (
            {"display_name": "x", "maximum_download_size": 0},
            (400, "BG_E_MAX_DOWNLOAD_SIZE_INVALID_VALUE"),
        ),
        (
            {"http_method": "POST", "priority": "LOW"},
            (409, "BG_E_NOT_SUPPORTED_WITH_CUSTOM_HTTP_METHOD"),
        ),
        (
            {"http_method": "POST", "dynamic_content": True},
            (409, "BG_E_NOT_SUPPORTED_WITH_CUSTOM_HTTP_METHOD"),
        ),
        ({"description": "x", "custom_headers": "bad"}, (400, "E_INVALIDARG")),
        ({"description": "x", "security_flags": 1}, (501, "E_NOTIMPL")),
        ({"description": "x", "proxy": {"usage": "OVERRIDE"}}, (400, "E_INVALIDARG")),
        ({"description": "x", "proxy": {"usage": "SIDEWAYS"}}, (501, "E_NOTIMPL")),
        ({"description": "x", "ca_bundle": "relative.pem"}, (400, "E_INVALIDARG")),
        (
            {"description": "x", "client_certificate": {"certificate": "/nonexistent"}},
            (400, "HRESULT_FROM_WIN32(ERROR_FILE_NOT_FOUND)"),
        ),
        ({"description": "x", "transfer_policy": 2**32}, (400, "E_INVALIDARG")),
        ({"description": "x", "bandwidth_limit": True}, (400, "E_INVALIDARG")),
        (
            {"description": "x", "notify_cmd_line": {"program": "/bin/true", "parameters": "'"}},
            (400, "E_INVALIDARG"),
        ),
        ({"description": "x", "credentials": {}}, (400, "E_INVALIDARG")),
    ]:
        answer = call(daemon, "PATCH", job, patch)
        assert error_of(answer) == expected, (patch, answer)
        assert call(daemon, "GET", job)[1]["times"] == before["times"], patch
    pem = tmp_path / "c.pem"
    pem.write_text("x")
    status, after = call(
        daemon,
        "PATCH",
        job,
        {
            "maximum_download_size": 10**12,
            "custom_headers": "X-A: 1\r\n",
            "http_method": "POST",
            "priority": "FOREGROUND",
            "security_flags": 0x208,
            "proxy": {"usage": "override", "list": "p:1", "bypass": "<local>"},
            "ca_bundle": str(pem),
            "client_certificate": {"certificate": str(pem), "key": None},
            "transfer_policy": 0x80000021,
            "bandwidth_limit": 1000,
        },
    )
    assert status == 200, after
    expected_fields = {
        "maximum_download_size": 10**12,
        "custom_headers": "X-A: 1\r\n",
        "custom_headers_write_only": False,
        "http_method": "POST",
        "priority": "FOREGROUND",
        "security_flags": 0x208,
        "proxy_usage": int(ProxyUsage.OVERRIDE),
        "proxy_list": "p:1",
        "proxy_bypass": "<local>",
        "ca_bundle": str(pem),
        "client_certificate": str(pem),
        "client_key": None,
        "transfer_policy": 0x80000021,
        "bandwidth_limit": 1000,
    }
    assert {k: after[k] for k in expected_fields} == expected_fields
    # The job has a method now: a priority other than FOREGROUND alone is refused too.
    assert error_of(call(daemon, "PATCH", job, {"description": "y", "priority": 3}))[0] == 409
    assert call(daemon, "GET", job)[1]["description"] == ""


def test_write_only_headers_and_credential_routes(daemon: Daemon, job_id: str) -> None:
    """POST .../custom-headers/write-only hides the headers from the Job; PUT and DELETE
    .../credentials answer {hresult, name}, accept names in any case, and refuse unknown
    names with BITS's codes; nothing of a credential comes back."""
    job = f"/v1/jobs/{job_id}"
    secret, user = f"pw-{uuid.uuid4().hex}", f"user-{uuid.uuid4().hex}"
    call(daemon, "PATCH", job, {"custom_headers": "X-Key: hidden-value\r\n"})
    assert call(daemon, "POST", f"{job}/custom-headers/write-only") == (
        200,
        {"hresult": 0, "name": "S_OK"},
    )
    data = call(daemon, "GET", job)[1]
    assert (data["custom_headers"], data["custom_headers_write_only"]) == (None, True)
    assert "hidden-value" not in str(data)
    given = {"target": "server", "scheme": "Basic", "user_name": user, "password": secret}
    assert call(daemon, "PUT", f"{job}/credentials", given) == (200, {"hresult": 0, "name": "S_OK"})
    for answer in (call(daemon, "GET", job), call(daemon, "GET", "/v1/jobs?limit=10000")):
        assert answer[0] == 200
        assert secret not in str(answer[1])
        assert user not in str(answer[1])
    assert error_of(call(daemon, "PUT", f"{job}/credentials", {**given, "target": "nowhere"})) == (
        400,
        "BG_E_INVALID_AUTH_TARGET",
    )
    bad_scheme = call(daemon, "PUT", f"{job}/credentials", {**given, "scheme": "kerberos"})
    assert error_of(bad_scheme) == (400, "BG_E_INVALID_AUTH_SCHEME")
    assert secret not in str(bad_scheme)
    assert call(daemon, "DELETE", f"{job}/credentials/SERVER/basic") == (
        200,
        {"hresult": 0, "name": "S_OK"},
    )
    assert call(daemon, "DELETE", f"{job}/credentials/1/1") == (
        200,
        {"hresult": 1, "name": "S_FALSE"},
    )
    assert error_of(call(daemon, "DELETE", f"{job}/credentials/SERVER/x")) == (
        400,
        "BG_E_INVALID_AUTH_SCHEME",
    )


def test_replace_remote_prefix_route(daemon: Daemon, job_id: str, dest: Path) -> None:
    """POST .../replace-remote-prefix answers S_FALSE, then S_OK; a body without both strings
    is 400."""
    job = f"/v1/jobs/{job_id}"
    call(
        daemon,
        "POST",
        f"{job}/files",
        {"files": [{"remote_name": "http://127.0.0.1:9/a/x", "local_name": str(dest / "x")}]},
    )
    route = f"{job}/replace-remote-prefix"
    assert call(daemon, "POST", route, {"old": "http://127.0.0.1:9/A/", "new": "http://h/"}) == (
        200,
        {"hresult": 1, "name": "S_FALSE"},
    )
    assert call(daemon, "POST", route, {"old": "http://127.0.0.1:9/a/", "new": "http://h/"}) == (
        200,
        {"hresult": 0, "name": "S_OK"},
    )
    assert call(daemon, "GET", f"{job}/files")[1]["files"][0]["remote_name"] == "http://h/x"
    assert error_of(call(daemon, "POST", route, {"old": "x"})) == (400, "E_INVALIDARG")


async def test_credentials_are_in_no_answer_and_not_in_the_log(
    server: FaultServer, dest: Path
) -> None:
    """With a daemon logging at debug level, a job given server credentials (right and
    wrong) downloads or fails; the password and user name appear in no answer of the API and
    nowhere in the daemon's log (its stderr)."""
    secret, user = f"pw-{uuid.uuid4().hex}", f"user-{uuid.uuid4().hex}"
    path = unique_path("logged")
    server.add(path, body(5000))
    server.protect(path, (user, secret))
    with running_daemon('log_level = "debug"\n') as own:
        async with await connect(socket_path=own.socket, autostart=False) as manager:
            right = await manager.create_job("right")
            await right.set_credentials(AuthTarget.SERVER, AuthScheme.BASIC, user, secret)
            await right.add_file(server.url(path), str(dest / "right"))
            wrong = await manager.create_job("wrong")
            await wrong.set_credentials(AuthTarget.SERVER, AuthScheme.BASIC, user, secret + "x")
            await wrong.add_file(server.url(path), str(dest / "wrong"))
            for job in (right, wrong):
                await job.resume()
            assert await right.wait((JobState.TRANSFERRED,), timeout=15) is JobState.TRANSFERRED
            assert await wrong.wait((JobState.ERROR,), timeout=15) is JobState.ERROR
            answers = [
                http_json(own.socket, "GET", route)
                for job in (right, wrong)
                for route in (f"/v1/jobs/{job.id}", f"/v1/jobs/{job.id}/files")
            ]
            answers.append(http_json(own.socket, "GET", "/v1/jobs"))
            answers.append(http_json(own.socket, "GET", f"/v1/jobs/{wrong.id}/error"))
            assert (await wrong.get_error()).code == codes.http_error(401)
            await right.remove_credentials(AuthTarget.SERVER, AuthScheme.BASIC)
            for job in (right, wrong):
                await job.cancel()
            await asyncio.sleep(0.1)
        assert own.stop() == 0
        log = own.log.read_text(errors="replace")
    assert "http.request" in log, "the daemon logged at debug level"
    for status, answer in answers:
        assert status == 200
        assert secret not in str(answer)
        assert user not in str(answer)
    assert secret not in log
    assert user not in log


def test_sync_job_new_methods(daemon: Daemon, server: FaultServer, dest: Path) -> None:
    """The sync client: ranges, checksum, snapshot, write-only headers (E_ACCESSDENIED),
    credentials and proxy settings as blocking calls with the async client's results."""
    data = body(3000, seed=11)
    path = unique_path("sync-opts")
    server.add(path, data)
    with bitsd.connect(socket_path=daemon.socket, autostart=False) as manager:
        job = manager.create_job("sync options")
        job.add_file_with_ranges(server.url(path), str(dest / "r"), [(10, 20), (0, 10)])
        job.add_file(server.url(path), str(dest / "w"), sha256=hashlib.sha256(data).hexdigest())
        assert job.get_file_ranges(0) == [(10, 20), (0, 10)]
        job.set_custom_headers("X-Sync: 1\r\n")
        job.make_custom_headers_write_only()
        with pytest.raises(BitsError) as denied:
            job.get_custom_headers()
        assert denied.value.hresult == codes.E_ACCESSDENIED
        job.set_credentials(AuthTarget.PROXY, AuthScheme.NTLM, "u", "p")
        assert job.remove_credentials(AuthTarget.PROXY, AuthScheme.NTLM) == codes.S_OK
        job.set_proxy_settings(ProxyUsage.NO_PROXY)
        assert job.get_proxy_settings() == (ProxyUsage.NO_PROXY, None, None)
        job.resume()
        assert job.wait([JobState.TRANSFERRED, JobState.ERROR], 15) is JobState.TRANSFERRED
        snapshot = job.snapshot()
        assert (snapshot.state, snapshot.custom_headers_write_only) == (JobState.TRANSFERRED, True)
        job.set_validation_state(job.files()[1], True)
        assert job.get_validation_state(1) is True
        assert job.replace_remote_prefix("https://nowhere/", "http://x/") == codes.S_FALSE
        assert job.complete() == codes.S_OK
    assert (dest / "r").read_bytes() == data[10:30] + data[:10]
    assert (dest / "w").read_bytes() == data
    assert server.requests_for(path)[0].headers["x-sync"] == "1"
