"""A pseudo-terminal's master side for the tests that run ``bitsd`` on a terminal (the
monitor's full-screen view, the hidden password prompt)."""

from __future__ import annotations

import os
import select
import time

__all__ = ["SCREEN_TIMEOUT", "Screen"]

# Seconds to wait for something to appear on the screen.
SCREEN_TIMEOUT = 20.0


class Screen:
    """The master side of a pseudo-terminal; collects everything the program writes."""

    def __init__(self, master: int) -> None:
        self.master = master
        self.data = b""

    def read_until(self, text: bytes, start: int = 0, timeout: float = SCREEN_TIMEOUT) -> int:
        """Read until ``text`` appears at or after offset ``start``; its offset."""
        deadline = time.monotonic() + timeout
        while (found := self.data.find(text, start)) < 0:
            left = deadline - time.monotonic()
            assert left > 0, f"{text!r} not on the screen: {self.data[-3000:]!r}"
            ready, _, _ = select.select([self.master], [], [], min(left, 0.2))
            if ready:
                try:
                    self.data += os.read(self.master, 65536)
                except OSError:  # EIO: the program closed the terminal
                    time.sleep(0.05)
        return found

    def drain(self) -> None:
        """Read what is left without blocking (so the program never blocks on a full pty)."""
        while select.select([self.master], [], [], 0)[0]:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:
                return
            if not chunk:
                return
            self.data += chunk
