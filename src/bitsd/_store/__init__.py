"""Persistence behind one small interface.

Rules:
- A store saves and returns records verbatim; it makes no decisions.
- Each call is one transaction: a job and the files given with it are saved together or not at
  all, so a crash never leaves half a state change.
- ``SqliteStore`` is the real one (WAL); ``MemoryStore`` is for tests. One contract test suite
  (tests/unit/test_store_contract.py) runs against both.
"""

from __future__ import annotations

from bitsd._store.base import Snapshot, Store
from bitsd._store.memory import MemoryStore
from bitsd._store.sqlite import SCHEMA_VERSION, SqliteStore

__all__ = ["SCHEMA_VERSION", "MemoryStore", "Snapshot", "SqliteStore", "Store"]
