"""A process that runs an engine on one job of many files, several at once, to be killed by
tests.

Usage: ``python -m tests.e2e.many_child STATE_DIR BASE_URL DEST COUNT``: files
``BASE_URL/f{i}`` to ``DEST/f{i}``. Prints ``job <id>`` and then ``progress <files transferred>``
lines on stdout, flushed, until the job is TRANSFERRED (``transferred``).
"""

from __future__ import annotations

import asyncio
import sys

from bitsd import JobState
from bitsd.aio import Engine

FILE_CONCURRENCY = 8


async def main(state_dir: str, base_url: str, dest: str, count: str) -> None:
    async with Engine(
        state_dir, file_concurrency=FILE_CONCURRENCY, checkpoint_bytes=64 * 1024
    ) as engine:
        job = await engine.create_job("many")
        await job.add_file_set([(f"{base_url}/f{i}", f"{dest}/f{i}") for i in range(int(count))])
        await job.resume()
        print(f"job {job.id}", flush=True)
        while await job.get_state() is not JobState.TRANSFERRED:
            print(f"progress {(await job.get_progress()).files_transferred}", flush=True)
            await asyncio.sleep(0.02)
        print("transferred", flush=True)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
