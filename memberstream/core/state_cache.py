"""Decoded states kept between batches, valid only while the store holds their bytes.

Decoding a member's state is a large share of the work per event when each
batch touches a member once. The cache keeps the decoded state with the bytes it
was last written (or read) as and serves it only while the store still returns
those very bytes; anything that changed the store behind the cache (a
rebalance, a restore from the changelog) makes the entry miss instead of serving
a stale state. A state that failed half-way through an event is dropped.

The bound is on the stored bytes of the entries: a member with a long history
(hundreds of event ids and orders) takes several times the memory of a new one,
so a count would not bound memory. Decoded, a state takes about four to five
times its stored size (each event id and order becomes objects of its own).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, TypeVar

S = TypeVar("S")


class StateCache(Generic[S]):
    """Least recently used decoded states by key, each with its stored bytes, at most
    ``capacity_bytes`` of stored bytes in all."""

    def __init__(self, capacity_bytes: int) -> None:
        self.capacity_bytes = capacity_bytes
        self._entries: OrderedDict[bytes | None, tuple[bytes, S]] = OrderedDict()
        self.stored_bytes = 0
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: bytes | None, stored: bytes) -> S | None:
        """The state cached for ``key`` if it was cached as ``stored``, else None."""
        entry = self._entries.get(key)
        if entry is None or entry[0] != stored:
            self.misses += 1
            return None
        self.hits += 1
        self._entries.move_to_end(key)
        return entry[1]

    def put(self, key: bytes | None, stored: bytes, state: S) -> None:
        if len(stored) > self.capacity_bytes:
            self.drop(key)
            return
        self.drop(key)
        self._entries[key] = (stored, state)
        self.stored_bytes += len(stored)
        while self.stored_bytes > self.capacity_bytes:
            _, (old, _) = self._entries.popitem(last=False)
            self.stored_bytes -= len(old)

    def drop(self, key: bytes | None) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self.stored_bytes -= len(entry[0])
