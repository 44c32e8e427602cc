"""Upload-reply round trips: the latency of small upload-reply jobs through the engine against
the bitsd upload server, whose server application answers each upload with a reply.

Usage: ``python bench/upload_reply.py [--jobs 50] [--size 1000] [--reply-size 1000]``

Everything runs in one process on loopback, files on /dev/shm (tmpfs): the upload server
(``bitsd.server.Serving``, by-value notifications) and its server application (a Starlette app
served the same way) in the engine's event loop. Each job is one round trip: create, add the
file, resume, wait until TRANSFERRED (Ping, Create-Session, the fragment, the notification, the
reply's GET, Close-Session), ``get_reply_data()``, complete. Jobs run one after another.

Printed: the total, the median and the 90th percentile of a round trip. A server whose
connections keep Nagle's algorithm on shows ~40 ms per response with a body (the body waits
for the client's delayed ACK of the head): compare a checkout before and after a change with
``PYTHONPATH=<checkout>/src python bench/upload_reply.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bitsd import JobState, JobType
from bitsd.aio import Engine
from bitsd.server import NotifyType, ServerConfig, Serving, UploadServer


async def _application(request: Request) -> Response:
    """The server application: the reply is the first ``reply_size`` bytes it was told to send."""
    await request.body()
    size = int(request.query_params.get("reply", "0"))
    return Response(b"r" * size)


async def run(jobs: int, size: int, reply_size: int, folder: Path) -> list[float]:
    root, state, out = folder / "root", folder / "state", folder / "out"
    for path in (root, state, out):
        path.mkdir()
    source = out / "upload.bin"
    source.write_bytes(b"u" * size)
    app = Starlette(routes=[Route("/notify", _application, methods=["POST"])])
    times: list[float] = []
    async with Serving(app) as application:
        config = ServerConfig(
            root, notify_url=application.url("/notify"), notify_type=NotifyType.BY_VALUE
        )
        async with Serving(UploadServer(config).app) as server, Engine(state) as engine:
            for index in range(jobs):
                start = time.perf_counter()
                job = await engine.create_job(f"reply {index}", JobType.UPLOAD_REPLY)
                await job.set_reply_file_name(str(out / f"reply-{index}.bin"))
                await job.add_file(server.url(f"/up/{index}.bin?reply={reply_size}"), str(source))
                await job.resume()
                ended = await job.wait((JobState.TRANSFERRED, JobState.ERROR), 30)
                if ended is not JobState.TRANSFERRED:
                    raise RuntimeError(f"job {index} ended {ended}: {await job.get_error()}")
                if len(await job.get_reply_data()) != reply_size:
                    raise RuntimeError(f"job {index}: the reply has the wrong size")
                await job.complete()
                times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=50, help="round trips (default 50)")
    parser.add_argument("--size", type=int, default=1000, help="bytes uploaded (default 1000)")
    parser.add_argument(
        "--reply-size", type=int, default=1000, help="bytes of each reply (default 1000)"
    )
    args = parser.parse_args()
    base = "/dev/shm" if Path("/dev/shm").is_dir() else None
    with tempfile.TemporaryDirectory(prefix="bitsd-bench-", dir=base) as folder:
        times = asyncio.run(run(args.jobs, args.size, args.reply_size, Path(folder)))
    ms = sorted(t * 1000 for t in times)
    p90 = ms[min(len(ms) - 1, int(len(ms) * 0.9))]
    print(
        f"{len(ms)} upload-reply round trips: total {sum(ms) / 1000:.2f} s, "
        f"median {statistics.median(ms):.1f} ms, p90 {p90:.1f} ms"
    )


if __name__ == "__main__":
    main()
