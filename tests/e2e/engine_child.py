"""A process that runs an engine on one download and reports progress, to be killed by tests.

Usage: ``python -m tests.e2e.engine_child STATE_DIR URL LOCAL``. Prints ``job <id>`` and then
``progress <bytes>`` lines on stdout, flushed, until the job is TRANSFERRED (``transferred``).
"""

from __future__ import annotations

import asyncio
import sys

from bitsd import JobState
from bitsd.aio import Engine

CHECKPOINT_BYTES = 256 * 1024


async def main(state_dir: str, url: str, local: str) -> None:
    async with Engine(
        state_dir, checkpoint_bytes=CHECKPOINT_BYTES, checkpoint_seconds=0.2, chunk_size=64 * 1024
    ) as engine:
        job = await engine.create_job("child")
        await job.add_file(url, local)
        await job.resume()
        print(f"job {job.id}", flush=True)
        while await job.get_state() is not JobState.TRANSFERRED:
            print(f"progress {(await job.get_progress()).bytes_transferred}", flush=True)
            await asyncio.sleep(0.05)
        print("transferred", flush=True)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
