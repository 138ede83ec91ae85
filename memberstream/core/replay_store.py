"""A replay's durable state: member and product state, the plan, how far it got, and
which source events it covered, in one SQLite file.

One batch is one transaction: the state the batch wrote and the source offsets it
consumed are committed together (:meth:`ReplayStore.commit`), after the batch's
outputs were acknowledged by the broker. A replay killed at any point resumes from
the last committed batch: the interrupted batch is processed again into the same
outputs (same ids), never applied to state twice.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson

_SCHEMA = """
CREATE TABLE IF NOT EXISTS state (kind TEXT, key BLOB, value BLOB, PRIMARY KEY (kind, key));
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value BLOB);
CREATE TABLE IF NOT EXISTS next_offset (topic TEXT, partition INTEGER, offset INTEGER,
                                        PRIMARY KEY (topic, partition));
CREATE TABLE IF NOT EXISTS event (event_id TEXT PRIMARY KEY);
"""


class ReplayStore:
    """The SQLite file behind one replay namespace."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.db = sqlite3.connect(path, isolation_level=None)  # transactions by hand
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(_SCHEMA)
        self._in_tx = False

    def close(self) -> None:
        if self._in_tx:
            self.db.execute("ROLLBACK")
            self._in_tx = False
        self.db.close()

    def _begin(self) -> None:
        if not self._in_tx:
            self.db.execute("BEGIN")
            self._in_tx = True

    # -- state (a StateStore per kind) -------------------------------------------------

    def states(self, kind: str) -> KindStore:
        return KindStore(self, kind)

    def get(self, kind: str, key: bytes | None) -> bytes | None:
        row = self.db.execute(
            "SELECT value FROM state WHERE kind=? AND key=?", (kind, key or b"")
        ).fetchone()
        return None if row is None else bytes(row[0])

    def put(self, kind: str, key: bytes | None, value: bytes) -> None:
        self._begin()
        self.db.execute(
            "INSERT OR REPLACE INTO state (kind, key, value) VALUES (?, ?, ?)",
            (kind, key or b"", value),
        )

    def count(self, kind: str) -> int:
        return int(
            self.db.execute("SELECT COUNT(*) FROM state WHERE kind=?", (kind,)).fetchone()[0]
        )

    # -- plan and progress -------------------------------------------------------------

    def meta(self, name: str) -> Any:
        row = self.db.execute("SELECT value FROM meta WHERE name=?", (name,)).fetchone()
        return None if row is None else orjson.loads(row[0])

    def set_meta(self, name: str, value: Any) -> None:
        """Written at once (its own transaction unless a batch is open)."""
        self.db.execute(
            "INSERT OR REPLACE INTO meta (name, value) VALUES (?, ?)", (name, orjson.dumps(value))
        )

    def next_offsets(self) -> dict[tuple[str, int], int]:
        rows = self.db.execute("SELECT topic, partition, offset FROM next_offset")
        return {(t, p): o for t, p, o in rows}

    def commit(self, next_offsets: dict[tuple[str, int], int], event_ids: Iterable[str]) -> None:
        """Commit the open batch: its state writes, where the replay goes on from, and the
        source events it covered."""
        self._begin()
        self.db.executemany(
            "INSERT OR REPLACE INTO next_offset (topic, partition, offset) VALUES (?, ?, ?)",
            [(t, p, o) for (t, p), o in next_offsets.items()],
        )
        self.db.executemany(
            "INSERT OR IGNORE INTO event (event_id) VALUES (?)", [(e,) for e in event_ids]
        )
        self.db.execute("COMMIT")
        self._in_tx = False

    def event_ids(self) -> set[str]:
        return {row[0] for row in self.db.execute("SELECT event_id FROM event")}


class KindStore:
    """One kind of state (``members``, ``products``) as a
    :class:`~memberstream.core.batching.StateStore`."""

    def __init__(self, store: ReplayStore, kind: str) -> None:
        self.store = store
        self.kind = kind

    def get(self, key: bytes | None, event: object = None) -> bytes | None:
        return self.store.get(self.kind, key)

    def put(self, key: bytes | None, value: bytes, event: object = None) -> None:
        self.store.put(self.kind, key, value)
