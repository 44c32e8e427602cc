"""``python -m bitsd URL... -d DIR``: download files through an in-process engine.

The first command of the README: a front end to the engine in this process, with no daemon (the
``bitsd`` command line goes through the daemon). It creates one job with every URL, resumes it,
prints progress, Completes it on success and reports the BITS error otherwise. Jobs persist in
``--state-dir``, so an interrupted run continues where it stopped when started again with the
same arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import urllib.parse
from pathlib import Path

from bitsd import JobState, codes
from bitsd.aio import Engine, Job

_DONE = (JobState.TRANSFERRED, JobState.ERROR)


def _default_state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state")
    return Path(os.environ.get("BITSD_STATE_DIR") or Path(base) / "bitsd")


def _local_name(url: str, folder: Path) -> str:
    name = os.path.basename(urllib.parse.urlsplit(url).path) or "index.html"
    return str(folder / name)


async def _find_job(engine: Engine, name: str) -> Job | None:
    for job in await engine.jobs():
        if await job.get_display_name() == name:
            return job
    return None


async def _run(urls: list[str], folder: Path, state_dir: Path, retry_delay: float) -> int:
    async with Engine(state_dir) as engine:
        name = "bitsd-get " + " ".join(urls)
        job = await _find_job(engine, name)
        if job is None:
            job = await engine.create_job(name)
            await job.add_file_set([(u, _local_name(u, folder)) for u in urls])
            await job.set_minimum_retry_delay(retry_delay)
        await job.resume()
        print(f"job {job.id}", file=sys.stderr)
        while True:
            try:
                state = await job.wait(_DONE, timeout=0.5)
            except TimeoutError:
                state = await job.get_state()
            progress = await job.get_progress()
            total = "?" if progress.bytes_total == codes.SIZE_UNKNOWN else progress.bytes_total
            print(
                f"\r{state!s:<16} {progress.bytes_transferred}/{total} bytes, "
                f"{progress.files_transferred}/{progress.files_total} files",
                end="",
                file=sys.stderr,
                flush=True,
            )
            if state is JobState.TRANSIENT_ERROR:
                err = await job.get_error()
                print(
                    f"\n  transient: {codes.name_of(err.code)}: {err.description} (retrying)",
                    file=sys.stderr,
                )
            if state in _DONE:
                break
        print(file=sys.stderr)
        if state is JobState.ERROR:
            err = await job.get_error()
            where = f" ({err.file.remote_name})" if err.file else ""
            print(
                f"{codes.name_of(err.code)} (0x{err.code:08X}) in {err.context}{where}: "
                f"{err.description}",
                file=sys.stderr,
            )
            return 1
        result = await job.complete()
        for f in await job.files():
            print(f.local_name)
        return 0 if result == codes.S_OK else 1


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m bitsd``."""
    parser = argparse.ArgumentParser(prog="python -m bitsd", description=__doc__)
    parser.add_argument("urls", nargs="+", metavar="URL", help="http(s):// or file:// URLs")
    parser.add_argument(
        "-d",
        "--dir",
        type=Path,
        default=Path.cwd(),
        help="destination folder (default: the current folder)",
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=_default_state_dir(),
        help="where jobs persist (default: $BITSD_STATE_DIR or ~/.local/state/bitsd)",
    )
    parser.add_argument(
        "--retry-delay",
        type=float,
        default=5.0,
        help="seconds between retries of transient errors (default 5)",
    )
    args = parser.parse_args(argv)
    folder: Path = args.dir.resolve()
    try:
        return asyncio.run(_run(args.urls, folder, args.state_dir, args.retry_delay))
    except KeyboardInterrupt:
        print(
            "\ninterrupted; the job stays queued: run the same command again to continue",
            file=sys.stderr,
        )
        return 130
    except Exception as exc:  # a BitsError from add_file etc.
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
