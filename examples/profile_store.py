"""A downstream consumer: member profiles into SQLite, and "members like this one".

``python -m examples.profile_store --db profiles.sqlite sync`` reads the compacted
``member.profiles`` topic from the beginning to its current end and keeps the latest
profile per member (the newest ``as_of`` wins, so reading the topic again, or out of
order, changes nothing). ``python -m examples.profile_store --db profiles.sqlite
similar MEMBER [--k 5]`` ranks the members whose taste vectors are closest (cosine).

Taste vectors are embeddings: they compare only when the same encoder made them. The
encoder is the first part of a profile's ``model_version`` (``use-multilingual-v3@…``);
members whose taste came from another encoder are left out of a ranking and counted,
never compared. Settings (the bootstrap servers, topic names) are memberstream's own:
``MEMBERSTREAM_*`` variables or ``--config``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson

SCHEMA = """
CREATE TABLE IF NOT EXISTS profiles (
    member_id TEXT PRIMARY KEY,
    as_of TEXT NOT NULL,
    encoder TEXT,
    taste BLOB,
    profile TEXT NOT NULL
)
"""


def encoder_of(model_version: str | None) -> str | None:
    """The encoder part of a profile's model_version (what the taste vector depends on)."""
    return None if not model_version else model_version.split("+", 1)[0]


@dataclass(frozen=True)
class Neighbour:
    member_id: str
    similarity: float


@dataclass(frozen=True)
class Ranking:
    neighbours: list[Neighbour]
    other_encoder: int
    """Members left out because another encoder made their taste vector."""


class ProfileStore:
    def __init__(self, path: Path | str) -> None:
        self.db = sqlite3.connect(str(path))
        self.db.execute(SCHEMA)

    def upsert(self, profile: dict[str, Any]) -> bool:
        """Keep ``profile`` if it is newer than the stored one (the same profile read
        again changes nothing); whether it was kept."""
        taste = profile.get("taste_f16")
        blob = None if taste is None else base64.b64decode(taste, validate=True)
        cur = self.db.execute(
            """INSERT INTO profiles (member_id, as_of, encoder, taste, profile)
               VALUES (?, ?, ?, ?, ?)
               ON CONFLICT(member_id) DO UPDATE SET
                 as_of = excluded.as_of, encoder = excluded.encoder,
                 taste = excluded.taste, profile = excluded.profile
               WHERE excluded.as_of > profiles.as_of""",
            (
                profile["member_id"],
                profile["as_of"],
                encoder_of(profile.get("model_version")),
                blob,
                orjson.dumps(profile).decode(),
            ),
        )
        self.db.commit()
        return cur.rowcount > 0

    def load(self, profiles: Iterable[dict[str, Any]]) -> int:
        return sum(self.upsert(p) for p in profiles)

    def get(self, member_id: str) -> dict[str, Any] | None:
        row = self.db.execute(
            "SELECT profile FROM profiles WHERE member_id = ?", (member_id,)
        ).fetchone()
        return None if row is None else orjson.loads(row[0])

    def similar(self, member_id: str, k: int = 5) -> Ranking:
        """The ``k`` members most similar in taste, among those of the same encoder."""
        row = self.db.execute(
            "SELECT encoder, taste FROM profiles WHERE member_id = ?", (member_id,)
        ).fetchone()
        if row is None:
            raise KeyError(f"no profile for member {member_id!r}")
        encoder, taste = row
        if taste is None:
            raise ValueError(f"member {member_id!r} has no taste vector yet")
        me = _unit(taste)
        ids, rows, other = [], [], 0
        others = self.db.execute(
            "SELECT member_id, encoder, taste FROM profiles "
            "WHERE member_id != ? AND taste IS NOT NULL",
            (member_id,),
        )
        for mid, enc, blob in others:
            if enc != encoder:
                other += 1
                continue
            ids.append(mid)
            rows.append(_unit(blob))
        if not rows:
            return Ranking([], other)
        sims = np.stack(rows) @ me
        order = np.argsort(-sims, kind="stable")[:k]
        return Ranking([Neighbour(ids[i], float(sims[i])) for i in order], other)


def _unit(blob: bytes) -> np.ndarray:
    v = np.frombuffer(blob, dtype="<f2").astype(np.float64)
    n = np.linalg.norm(v)
    return v / n if n > 0 else v


async def _profiles(settings: Any) -> list[dict[str, Any]]:
    from memberstream.streams.kafka_io import iter_topic

    out = []
    async for _key, value, _p, _o in iter_topic(
        settings, settings.topics.member_profiles, idle_timeout_s=2.0, to_end=True
    ):
        if value is not None:  # a tombstone deletes nothing here: profiles are never deleted
            out.append(orjson.loads(value))
    return out


def sync(store: ProfileStore, settings: Any) -> tuple[int, int]:
    """Read member.profiles to its current end; (records read, profiles kept)."""
    profiles = asyncio.run(_profiles(settings))
    return len(profiles), store.load(profiles)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", type=Path, default=Path("profiles.sqlite"))
    parser.add_argument("--config", type=Path, help="memberstream settings file")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("sync", help="read member.profiles into the store")
    near = sub.add_parser("similar", help="members most similar in taste to MEMBER")
    near.add_argument("member")
    near.add_argument("--k", type=int, default=5)
    args = parser.parse_args(argv)
    store = ProfileStore(args.db)
    if args.command == "sync":
        from memberstream.config import load_settings

        read, kept = sync(store, load_settings(args.config))
        print(f"read {read:,} profile records, kept {kept:,} as the latest of their member")
        return
    ranking = store.similar(args.member, args.k)
    for n in ranking.neighbours:
        print(f"{n.similarity:.4f}  {n.member_id}")
    if ranking.other_encoder:
        print(f"({ranking.other_encoder} members left out: another encoder made their taste)")


if __name__ == "__main__":
    main()
