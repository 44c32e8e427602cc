"""The asyncio API of bitsd: the in-process :class:`Engine` and its :class:`Job` handles, and
:func:`connect`, which returns a :class:`Manager` of the user's daemon with the same verbs."""

from __future__ import annotations

from bitsd._client import Manager, connect
from bitsd._engine import Engine
from bitsd._job import Job

__all__ = ["Engine", "Job", "Manager", "connect"]
