"""Running a loopback test server in a thread of its own, for code under test that runs
elsewhere (another process, or blocking code that calls ``asyncio.run`` itself).

Rules:
- The server is any object with ``async start()`` and ``async stop()``; it runs in a daemon
  thread with its own event loop, started before the ``with`` body and stopped after it.
- Its attributes may be set from the test's thread between requests (plain assignments).
- A server that fails to start, or a thread that does not stop in time, fails the test.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from typing import Final, Protocol, TypeVar

__all__ = ["START_TIMEOUT", "STOP_TIMEOUT", "AsyncServer", "serve_in_thread"]

# Seconds a server may take to start, and to stop.
START_TIMEOUT: Final = 10.0
STOP_TIMEOUT: Final = 5.0


class AsyncServer(Protocol):
    """What :func:`serve_in_thread` runs."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


S = TypeVar("S", bound=AsyncServer)


@contextlib.contextmanager
def serve_in_thread(server: S, name: str) -> Iterator[S]:
    """Serve ``server`` in a daemon thread named ``name``; yields it once it is started."""
    ready = threading.Event()
    errors: list[BaseException] = []
    handle: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []

    async def main() -> None:
        stop = asyncio.Event()
        await server.start()
        try:
            handle.append((asyncio.get_running_loop(), stop))
            ready.set()
            await stop.wait()
        finally:
            await server.stop()

    def run() -> None:
        try:
            asyncio.run(main())
        except BaseException as exc:
            errors.append(exc)
        finally:
            ready.set()

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    if not ready.wait(START_TIMEOUT):
        raise RuntimeError(f"{name} thread did not start in time")
    if errors or not handle:
        thread.join(STOP_TIMEOUT)
        raise RuntimeError(f"{name} thread failed to start") from (errors[0] if errors else None)
    loop, stop = handle[0]
    try:
        yield server
    finally:
        with contextlib.suppress(RuntimeError):  # loop already closed
            loop.call_soon_threadsafe(stop.set)
        thread.join(STOP_TIMEOUT + 2)
    # Only reached when the with-block itself did not raise.
    if thread.is_alive():
        raise RuntimeError(f"{name} thread did not stop in time")
    if errors:
        raise RuntimeError(f"{name} thread failed") from errors[0]
