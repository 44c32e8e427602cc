"""How long an engine takes to start when its store holds N jobs (default 10,000).

Usage: ``python bench/engine_restart.py [--jobs N] [--files-per-job K]``

Creates N suspended jobs with K files each in a fresh state folder (timed: jobs created per
second through the engine API), closes the engine, then opens it again and reports the start-up
time, the time of ``jobs()`` and the process's peak RSS. Prints one line per figure.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import tempfile
import time
from pathlib import Path

from bitsd.aio import Engine


async def run(jobs: int, files_per_job: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        state, dest = Path(tmp) / "state", Path(tmp) / "dest"
        dest.mkdir()
        t0 = time.perf_counter()
        # No MaxJobsPerUser / MaxFilesPerJob: BITS's defaults (60, 200) would refuse this load.
        async with Engine(state, max_jobs_per_user=0, max_files_per_job=0) as engine:
            for i in range(jobs):
                job = await engine.create_job(f"job {i}")
                await job.add_file_set(
                    [
                        (f"http://127.0.0.1:9/{i}/{k}", str(dest / f"{i}-{k}"))
                        for k in range(files_per_job)
                    ]
                )
        created = time.perf_counter() - t0
        print(
            f"created {jobs} jobs x {files_per_job} files in {created:.2f} s "
            f"({jobs / created:.0f} jobs/s)"
        )
        t1 = time.perf_counter()
        engine = Engine(state, max_jobs_per_user=0, max_files_per_job=0)
        await engine.__aenter__()
        started = time.perf_counter() - t1
        t2 = time.perf_counter()
        listed = await engine.jobs()
        listing = time.perf_counter() - t2
        await engine.close()
        assert len(listed) == jobs
        print(f"restart with {jobs} jobs: {started * 1000:.0f} ms")
        print(f"jobs() of {jobs}: {listing * 1000:.1f} ms")
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"peak RSS: {rss:.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--files-per-job", type=int, default=1)
    args = parser.parse_args()
    asyncio.run(run(args.jobs, args.files_per_job))


if __name__ == "__main__":
    main()
