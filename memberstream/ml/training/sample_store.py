"""Labeled samples on disk: Parquet shards, written atomically, with the offsets they cover.

Layout::

    <root>/
      kind=sentiment/date=2026-11-30/<flush>-0.parquet     one file per (kind, event date)
      kind=interest/date=2026-11-29/<flush>-1.parquet
      _flushes/<flush>.json                                 the flush's commit record

A flush (what the collector buffered since the last one) is written in two steps:
every shard file to a temporary name, fsynced and renamed into place; then the
commit record, which lists the files and, per source partition, the offset after
the last record the flush covers. A flush exists once its commit record does: a file
no record names is the remainder of a flush cut short and is never read (and is
removed by :meth:`SampleStore.recover` once it is old enough not to be another
writer's flush in progress). The collector starts each partition at the later of the
group's committed offset and the offset the commit records reach, so a kill at any
point — before the files, between them, before or after the commit record, before
the Kafka commit — neither loses a sample nor writes one twice.
"""

from __future__ import annotations

import logging
import os
import secrets
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from memberstream.domain.samples import Sample

log = logging.getLogger(__name__)

FLUSHES = "_flushes"
ORPHAN_AGE_S = 3600.0
"""A shard file no commit record names is removed once it is this old."""

SCHEMA = pa.schema(
    [
        ("sample_id", pa.string()),
        ("event_id", pa.string()),
        ("kind", pa.string()),
        ("label", pa.string()),
        ("label_source", pa.string()),
        ("event_time", pa.timestamp("us", tz="UTC")),
        ("member", pa.string()),
        ("text", pa.string()),
        ("language", pa.string()),
        ("product_id", pa.string()),
        ("source_event_ids", pa.list_(pa.string())),
        ("model_version", pa.string()),
        ("details", pa.string()),
        ("masked", pa.string()),
        ("source_topic", pa.string()),
        ("source_partition", pa.int32()),
        ("source_offset", pa.int64()),
    ]
)

TopicPartition = tuple[str, int]


@dataclass(frozen=True)
class Collected:
    """A sample and the Kafka record it came from."""

    sample: Sample
    topic: str
    partition: int
    offset: int


@dataclass(frozen=True)
class FlushRecord:
    flush_id: str
    files: tuple[str, ...]
    offsets: dict[TopicPartition, int]
    counts: dict[str, int]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes | None = None, table: pa.Table | None = None) -> None:
    """Write ``data`` or ``table`` (Parquet) to ``path``: temp file, fsync, rename, fsync dir."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    with open(tmp, "wb") as f:
        if table is not None:
            pq.write_table(table, f, compression="zstd")
        else:
            f.write(data or b"")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _table(rows: Sequence[Collected]) -> pa.Table:
    cols: dict[str, list[Any]] = {name: [] for name in SCHEMA.names}
    for c in rows:
        s = c.sample
        cols["sample_id"].append(s.sample_id)
        cols["event_id"].append(s.event_id)
        cols["kind"].append(s.kind)
        cols["label"].append(s.label)
        cols["label_source"].append(s.label_source)
        cols["event_time"].append(s.event_time)
        cols["member"].append(s.member)
        cols["text"].append(s.text)
        cols["language"].append(s.language)
        cols["product_id"].append(s.product_id)
        cols["source_event_ids"].append(list(s.source_event_ids))
        cols["model_version"].append(s.model_version)
        cols["details"].append(s.details_json())
        cols["masked"].append(orjson.dumps(s.masked, option=orjson.OPT_SORT_KEYS).decode())
        cols["source_topic"].append(c.topic)
        cols["source_partition"].append(c.partition)
        cols["source_offset"].append(c.offset)
    return pa.table(cols, schema=SCHEMA)


class SampleStore:
    """The shards under ``root``; one writer per partition set (one collector group)."""

    def __init__(self, root: Path, writer: str | None = None) -> None:
        self.root = Path(root)
        self.writer = writer or secrets.token_hex(4)
        self._seq = 0

    @property
    def flushes_dir(self) -> Path:
        return self.root / FLUSHES

    def flush_records(self) -> list[FlushRecord]:
        """Every committed flush, oldest first."""
        out = []
        if not self.flushes_dir.is_dir():
            return out
        for path in sorted(self.flushes_dir.glob("*.json")):
            try:
                raw = orjson.loads(path.read_bytes())
            except (OSError, orjson.JSONDecodeError) as exc:  # cannot happen after a rename
                log.warning("samples: unreadable commit record %s (%s); ignored", path, exc)
                continue
            offsets = {
                (topic, int(p)): int(o)
                for topic, parts in raw["offsets"].items()
                for p, o in parts.items()
            }
            out.append(FlushRecord(raw["flush_id"], tuple(raw["files"]), offsets, raw["counts"]))
        return out

    def offsets(self) -> dict[TopicPartition, int]:
        """Per source partition, the offset after the last record a committed flush covers."""
        reached: dict[TopicPartition, int] = {}
        for record in self.flush_records():
            for tp, offset in record.offsets.items():
                reached[tp] = max(offset, reached.get(tp, 0))
        return reached

    def recover(self, orphan_age_s: float = ORPHAN_AGE_S) -> list[Path]:
        """Remove old temporary files and old shard files no commit record names (a
        younger one may be another writer's flush in progress); the removed."""
        named = {f for r in self.flush_records() for f in r.files}
        now = time.time()
        removed = []
        for path in self.root.glob("kind=*/date=*/*"):
            rel = path.relative_to(self.root).as_posix()
            stale = now - path.stat().st_mtime >= orphan_age_s
            if stale and (path.name.endswith(".tmp") or rel not in named):
                path.unlink(missing_ok=True)
                removed.append(path)
        for path in self.flushes_dir.glob(".*.tmp") if self.flushes_dir.is_dir() else ():
            if now - path.stat().st_mtime >= orphan_age_s:
                path.unlink(missing_ok=True)
                removed.append(path)
        if removed:
            log.info("samples: removed %d files of flushes cut short", len(removed))
        return removed

    def _next_flush_id(self) -> str:
        self._seq += 1
        return f"{time.time_ns() // 1_000_000:013d}-{self.writer}-{self._seq:06d}"

    def write(
        self,
        rows: Sequence[Collected],
        offsets: Mapping[TopicPartition, int],
        on_file: Callable[[Path], None] | None = None,
    ) -> FlushRecord:
        """Write one flush: the shard files, then the commit record (see the module doc).
        ``on_file`` is called after each shard file is in place (the crash tests' hook)."""
        flush_id = self._next_flush_id()
        groups: dict[tuple[str, str], list[Collected]] = defaultdict(list)
        for c in rows:
            groups[(c.sample.kind, c.sample.event_date)].append(c)
        files = []
        for n, ((kind, date), group) in enumerate(sorted(groups.items())):
            rel = f"kind={kind}/date={date}/{flush_id}-{n}.parquet"
            write_atomic(self.root / rel, table=_table(group))
            files.append(rel)
            if on_file is not None:
                on_file(self.root / rel)
        by_topic: dict[str, dict[str, int]] = defaultdict(dict)
        for (topic, partition), offset in sorted(offsets.items()):
            by_topic[topic][str(partition)] = offset
        counts: dict[str, int] = defaultdict(int)
        for c in rows:
            counts[c.sample.kind] += 1
        record = {
            "flush_id": flush_id,
            "writer": self.writer,
            "files": files,
            "offsets": by_topic,
            "counts": dict(counts),
            "written_at": datetime.now(UTC).isoformat(),
        }
        write_atomic(self.flushes_dir / f"{flush_id}.json", orjson.dumps(record))
        return FlushRecord(flush_id, tuple(files), dict(offsets), dict(counts))

    def files(self, kind: str | None = None) -> list[Path]:
        """The shard files of committed flushes (of ``kind``), oldest flush first."""
        out = []
        for record in self.flush_records():
            for rel in record.files:
                if kind is None or rel.startswith(f"kind={kind}/"):
                    out.append(self.root / rel)
        return out

    def read(self, kind: str | None = None, columns: Iterable[str] | None = None) -> pa.Table:
        """Every committed sample (of ``kind``), in flush order."""
        paths = self.files(kind)
        cols = list(columns) if columns is not None else None
        if not paths:
            schema = SCHEMA if cols is None else pa.schema([SCHEMA.field(c) for c in cols])
            return schema.empty_table()
        return pa.concat_tables(pq.read_table(p, columns=cols, schema=SCHEMA) for p in paths)

    def rows(self, kind: str | None = None) -> list[dict[str, Any]]:
        return self.read(kind).to_pylist()

    def dedupe_keys(self, limit: int) -> list[str]:
        """The dedupe keys of the newest ``limit`` samples (to warm the collector's memory)."""
        keys: list[str] = []
        for path in reversed(self.files()):
            t = pq.read_table(path, columns=["event_id", "sample_id"])
            pairs = zip(t["event_id"].to_pylist(), t["sample_id"].to_pylist(), strict=True)
            keys.extend(reversed([f"{e}\x1f{s}" for e, s in pairs]))
            if len(keys) >= limit:
                break
        return keys[:limit]
