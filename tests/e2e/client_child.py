"""A client process of the bitsd daemon, driven by the end-to-end tests.

Run it by path (``python tests/e2e/client_child.py COMMAND ...``): it imports only bitsd and the
standard library, so the daemon can also run it as a job's notify command line. It finds the
daemon through ``BITSD_SOCKET`` and never starts one.

Commands:
    make NAME...                  create SUSPENDED jobs, print ``<id>`` per line, exit
    list                          print ``<id> <display name>`` of every job, exit
    download URL LOCAL [MARKER]   create a job for one file, resume it, print its id, exit; with
                                  MARKER, the job's notify command line is ``client_child.py
                                  complete <id> MARKER``
    complete JOB MARKER           complete the job, append the result's name to MARKER
    listen REPORT MODE JOB...     register a callback object for each job, print ``ready``,
                                  and serve callbacks until stdin closes

Callbacks of ``listen`` append one line per event to REPORT (O_APPEND, one write per line, so
lines of several processes interleave whole). MODE is one of:
    record         ``job_error <job> <code> <context> <remote name>`` or ``job_transferred <job>``;
                   accept.
    fail:N         ``call <method> <job> <monotonic time>``; the first N calls fail (raising,
                   then returning E_FAIL, alternately), later ones accept.
    block:RELEASE  ``enter <job>``, then wait until the file RELEASE exists, ``exit <job>``;
                   accept.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import sys
import time
from pathlib import Path

import bitsd
import bitsd.aio
from bitsd import ErrorInfo, codes
from bitsd._client import RemoteJob


def report(path: str, line: str) -> None:
    """Append one whole line to ``path``."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


class Recorder:
    """Accepts every notification, recording it."""

    def __init__(self, out: str) -> None:
        self.out = out

    async def job_error(self, job: RemoteJob, error: ErrorInfo) -> None:
        remote = error.file.remote_name if error.file else "-"
        report(self.out, f"job_error {job.id} {error.code:#x} {error.context} {remote}")

    async def job_transferred(self, job: RemoteJob) -> None:
        report(self.out, f"job_transferred {job.id}")


class Failer:
    """Fails the first ``n`` calls (shared by all its jobs), then accepts."""

    def __init__(self, out: str, n: int) -> None:
        self.out = out
        self.n = n
        self.calls = 0

    def _call(self, method: str, job: RemoteJob) -> int | None:
        report(self.out, f"call {method} {job.id} {time.monotonic():.3f}")
        self.calls += 1
        if self.calls > self.n:
            return None
        if self.calls % 2:
            raise RuntimeError("this callback fails on purpose")
        return codes.E_FAIL

    def job_error(self, job: RemoteJob, error: ErrorInfo) -> int | None:
        return self._call("job_error", job)

    def job_transferred(self, job: RemoteJob) -> int | None:
        return self._call("job_transferred", job)


class Blocker:
    """Holds every call until the release file exists."""

    def __init__(self, out: str, release: str) -> None:
        self.out = out
        self.release = Path(release)

    async def _hold(self, job: RemoteJob) -> None:
        report(self.out, f"enter {job.id}")
        while not self.release.exists():
            await asyncio.sleep(0.02)
        report(self.out, f"exit {job.id}")

    async def job_error(self, job: RemoteJob, error: ErrorInfo) -> None:
        await self._hold(job)

    async def job_transferred(self, job: RemoteJob) -> None:
        await self._hold(job)


def callback_object(out: str, mode: str) -> object:
    kind, _, arg = mode.partition(":")
    if kind == "record":
        return Recorder(out)
    if kind == "fail":
        return Failer(out, int(arg))
    if kind == "block":
        return Blocker(out, arg)
    raise SystemExit(f"unknown mode {mode!r}")


async def listen(out: str, mode: str, job_ids: list[str]) -> None:
    obj = callback_object(out, mode)
    async with await bitsd.aio.connect(autostart=False) as manager:
        for job_id in job_ids:
            job = await manager.get_job(job_id)
            await job.set_notify_interface(obj)
        print("ready", flush=True)
        # Serve callbacks until the test closes our stdin.
        await asyncio.to_thread(sys.stdin.read)


def main(argv: list[str]) -> int:
    command, args = argv[0], argv[1:]
    if command == "listen":
        asyncio.run(listen(args[0], args[1], args[2:]))
        return 0
    with bitsd.connect(autostart=False) as manager:
        if command == "make":
            for name in args:
                print(manager.create_job(name).id, flush=True)
        elif command == "list":
            for job in manager.jobs():
                print(job.id, job.get_display_name(), flush=True)
        elif command == "download":
            job = manager.create_job("download")
            job.add_file(args[0], args[1])
            if len(args) > 2:
                # argv[0] is the full path: a venv's Python finds its site-packages from it.
                line = [sys.executable, os.path.abspath(__file__), "complete", job.id, args[2]]
                job.set_notify_cmd_line(sys.executable, shlex.join(line))
            job.resume()
            print(job.id, flush=True)
        elif command == "complete":
            result = manager.get_job(args[0]).complete()
            report(args[1], codes.name_of(result))
        else:
            raise SystemExit(f"unknown command {command!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
