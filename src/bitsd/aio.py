"""The asyncio API of bitsd: the in-process :class:`Engine` and its :class:`Job` handles."""

from __future__ import annotations

from bitsd._engine import Engine
from bitsd._job import Job

__all__ = ["Engine", "Job"]
