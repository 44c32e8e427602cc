"""uvicorn as bitsd's servers run it (the daemon and the upload server).

Rules:
- The owner of the process handles signals: the server installs no handlers of its own.
- :meth:`Server.request_exit` stops the server at once instead of at uvicorn's next 0.1 s tick.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

import uvicorn

__all__ = ["Server"]


class Server(uvicorn.Server):
    """uvicorn without signal handlers, whose main loop wakes at once on :meth:`request_exit`."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._exit_requested = asyncio.Event()

    def request_exit(self) -> None:
        """Stop serving as soon as the main loop notices (at once)."""
        self.should_exit = True
        self._exit_requested.set()

    async def main_loop(self) -> None:
        counter = 0
        while not await self.on_tick(counter):
            counter = (counter + 1) % 864_000
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._exit_requested.wait(), 0.1)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield
