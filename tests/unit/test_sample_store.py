"""The sample store (Parquet shards + commit records) and the collector's batch logic,
without Kafka.

Expected rows, paths and offsets are written by hand here; the shards are read back
with pyarrow directly where the store's own reader is what is being checked.
"""

from __future__ import annotations

import os
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import SecretStr

from memberstream.config import Settings
from memberstream.config.learning import CollectorSettings, LearningSettings
from memberstream.core.collector import SampleCollector
from memberstream.domain.samples import Sample
from memberstream.ml.training.sample_store import SCHEMA, Collected, SampleStore
from memberstream.schemas.codec import encode
from memberstream.schemas.events import ClickEvent, ReviewEvent
from memberstream.schemas.outputs import ModelUpdate

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
T1 = datetime(2024, 3, 2, 23, 30, tzinfo=UTC)


def sample(sample_id: str, kind: str = "sentiment", at: datetime = T0, **kw: object) -> Sample:
    event_id = str(kw.pop("event_id", sample_id.split(":", 1)[1]))
    fields: dict[str, object] = {
        "label": "positive",
        "label_source": "stars",
        "member": "m_" + "0" * 24,
        "text": f"text of {sample_id}",
        "language": "en",
        "product_id": "p1",
        "source_event_ids": (event_id,),
        "details": {"rating": 5},
        "masked": {},
        **kw,
    }
    return Sample(
        sample_id=sample_id,
        event_id=event_id,
        kind=kind,  # type: ignore[arg-type]
        event_time=at,
        **fields,  # type: ignore[arg-type]
    )


def collected(s: Sample, offset: int, partition: int = 0, topic: str = "reviews") -> Collected:
    return Collected(s, topic, partition, offset)


def shard_paths(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.glob("kind=*/date=*/*.parquet"))


# --- store ------------------------------------------------------------------------------


def test_two_flushes_read_back_as_written(tmp_path: Path) -> None:
    """Rows round-trip (ids, labels, UTC event times, source offsets) and files are
    partitioned kind=<k>/date=<YYYY-MM-DD>."""
    store = SampleStore(tmp_path)
    first = [
        collected(sample("sentiment:r1", at=T0, label="negative"), offset=3),
        collected(sample("interest:o1:0", kind="interest", at=T1, event_id="b1"), 7, 1),
    ]
    second = [collected(sample("sentiment:r2", at=T1, text=None), offset=4, partition=2)]
    rec1 = store.write(first, {("reviews", 0): 4, ("reviews", 1): 8})
    rec2 = store.write(second, {("reviews", 2): 5})

    d0, d1 = "date=2024-03-01", "date=2024-03-02"
    assert shard_paths(tmp_path) == sorted(
        [
            f"kind=interest/{d1}/{rec1.flush_id}-0.parquet",
            f"kind=sentiment/{d0}/{rec1.flush_id}-1.parquet",
            f"kind=sentiment/{d1}/{rec2.flush_id}-0.parquet",
        ]
    )
    assert sorted(p.name for p in (tmp_path / "_flushes").iterdir()) == sorted(
        [f"{rec1.flush_id}.json", f"{rec2.flush_id}.json"]
    )
    record = orjson.loads((tmp_path / "_flushes" / f"{rec1.flush_id}.json").read_bytes())
    assert record["offsets"] == {"reviews": {"0": 4, "1": 8}}
    assert record["counts"] == {"sentiment": 1, "interest": 1}

    rows = {r["sample_id"]: r for r in store.rows()}
    assert set(rows) == {"sentiment:r1", "interest:o1:0", "sentiment:r2"}
    r1 = rows["sentiment:r1"]
    assert (r1["event_id"], r1["kind"], r1["label"], r1["label_source"]) == (
        "r1",
        "sentiment",
        "negative",
        "stars",
    )
    assert r1["event_time"] == T0 and r1["event_time"].utcoffset() == timedelta(0)
    assert (r1["source_topic"], r1["source_partition"], r1["source_offset"]) == ("reviews", 0, 3)
    assert r1["text"] == "text of sentiment:r1"
    assert r1["source_event_ids"] == ["r1"]
    assert orjson.loads(r1["details"]) == {"rating": 5}
    i1 = rows["interest:o1:0"]
    assert (i1["event_id"], i1["kind"], i1["event_time"]) == ("b1", "interest", T1)
    assert (i1["source_partition"], i1["source_offset"]) == (1, 7)
    r2 = rows["sentiment:r2"]
    assert r2["text"] is None and (r2["source_partition"], r2["source_offset"]) == (2, 4)

    assert store.read("interest")["sample_id"].to_pylist() == ["interest:o1:0"]
    assert sorted(store.read("sentiment")["sample_id"].to_pylist()) == [
        "sentiment:r1",
        "sentiment:r2",
    ]
    # the shard itself, read with pyarrow alone
    raw = pq.read_table(tmp_path / f"kind=interest/{d1}/{rec1.flush_id}-0.parquet")
    assert raw["sample_id"].to_pylist() == ["interest:o1:0"]
    assert raw.schema.field("event_time").type == pa.timestamp("us", tz="UTC")


def test_empty_store_reads_empty(tmp_path: Path) -> None:
    store = SampleStore(tmp_path / "none")
    assert store.offsets() == {}
    assert store.read().num_rows == 0
    assert store.read().schema == SCHEMA
    assert store.dedupe_keys(10) == []


def test_offsets_are_the_max_per_partition_over_commit_records(tmp_path: Path) -> None:
    store = SampleStore(tmp_path)
    store.write([collected(sample("sentiment:a"), 1)], {("t", 0): 10, ("t", 1): 5})
    store.write([collected(sample("sentiment:b"), 2)], {("t", 0): 20, ("u", 0): 3})
    store.write([collected(sample("sentiment:c"), 3)], {("t", 1): 2})  # lower: max wins
    assert store.offsets() == {("t", 0): 20, ("t", 1): 5, ("u", 0): 3}


def _orphan(root: Path) -> tuple[Path, Path, Path]:
    """A flush cut short: a shard file no commit record names, plus temp files."""
    orphan = root / "kind=sentiment/date=2024-03-01/9999999999999-dead-000001-0.parquet"
    orphan.parent.mkdir(parents=True, exist_ok=True)
    table = pa.table({name: [None] for name in SCHEMA.names}, schema=SCHEMA).set_column(
        0, "sample_id", pa.array(["sentiment:orphan"])
    )
    pq.write_table(table, orphan)
    tmp_shard = orphan.with_name(".x.parquet.abcd1234.tmp")
    tmp_shard.write_bytes(b"partial")
    tmp_record = root / "_flushes" / ".x.json.abcd1234.tmp"
    tmp_record.parent.mkdir(parents=True, exist_ok=True)
    tmp_record.write_bytes(b"{")
    return orphan, tmp_shard, tmp_record


def test_a_shard_without_commit_record_is_never_read_and_recover_removes_it(
    tmp_path: Path,
) -> None:
    store = SampleStore(tmp_path)
    kept = store.write([collected(sample("sentiment:kept"), 1)], {("t", 0): 2})
    orphan, tmp_shard, tmp_record = _orphan(tmp_path)

    assert store.read()["sample_id"].to_pylist() == ["sentiment:kept"]
    assert store.dedupe_keys(10) == ["kept\x1fsentiment:kept"]
    assert store.offsets() == {("t", 0): 2}

    removed = store.recover(orphan_age_s=0)
    assert sorted(removed) == sorted([orphan, tmp_shard, tmp_record])
    assert not orphan.exists() and not tmp_shard.exists() and not tmp_record.exists()
    assert [p.relative_to(tmp_path).as_posix() for p in store.files()] == list(kept.files)
    assert all((tmp_path / f).exists() for f in kept.files)
    assert store.read()["sample_id"].to_pylist() == ["sentiment:kept"]


def test_recover_keeps_a_fresh_orphan_but_removes_an_old_one(tmp_path: Path) -> None:
    """A fresh orphan may be another writer's flush in progress: kept (temp files go)."""
    store = SampleStore(tmp_path)
    store.write([collected(sample("sentiment:kept"), 1)], {("t", 0): 2})
    orphan, _, _ = _orphan(tmp_path)
    removed = store.recover()
    assert orphan.exists() and orphan not in removed
    two_hours_ago = time.time() - 7200
    os.utime(orphan, (two_hours_ago, two_hours_ago))
    assert store.recover() == [orphan]
    assert not orphan.exists()
    assert store.read()["sample_id"].to_pylist() == ["sentiment:kept"]


def test_dedupe_keys_newest_flush_first_up_to_the_limit(tmp_path: Path) -> None:
    store = SampleStore(tmp_path)
    store.write([collected(sample("sentiment:a"), 1), collected(sample("sentiment:b"), 2)], {})
    store.write([collected(sample("sentiment:c"), 3)], {})
    store.write([collected(sample("sentiment:d"), 4)], {})
    assert store.dedupe_keys(10) == [  # newest first, rows within a file too
        "d\x1fsentiment:d",
        "c\x1fsentiment:c",
        "b\x1fsentiment:b",
        "a\x1fsentiment:a",
    ]
    assert store.dedupe_keys(2) == ["d\x1fsentiment:d", "c\x1fsentiment:c"]
    assert store.dedupe_keys(1) == ["d\x1fsentiment:d"]


# --- collector --------------------------------------------------------------------------


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def make_settings(tmp_path: Path, **collector: float) -> Settings:
    return Settings(
        learning=LearningSettings(
            samples_dir=tmp_path / "samples",
            member_key=SecretStr("unit-key"),
            collector=CollectorSettings(**collector),  # type: ignore[arg-type]
        )
    )


def make_collector(
    tmp_path: Path, clock: FakeClock | None = None, **collector: float
) -> tuple[SampleCollector, Settings]:
    settings = make_settings(tmp_path, **collector)
    store = SampleStore(settings.learning.samples_dir)
    c = SampleCollector(settings, store, b"unit-key", clock=clock or FakeClock())
    return c, settings


def review_bytes(event_id: str, rating: int = 4, text: str = "Works well.") -> bytes:
    return encode(
        ReviewEvent(
            event_id=event_id,
            member_id="member-1",
            occurred_at=T0,
            product_id="p1",
            rating=rating,
            title="Title",
            text=text,
        )
    )


def search_bytes(event_id: str) -> bytes:
    return encode(
        ClickEvent(
            event_id=event_id, member_id="member-1", occurred_at=T0, action="search", query="q"
        )
    )


def test_duplicate_event_gives_one_sample(tmp_path: Path) -> None:
    c, s = make_collector(tmp_path)
    reviews = s.topics.reviews
    c.add(reviews, 0, 5, review_bytes("r1"))
    c.add(reviews, 0, 9, review_bytes("r1"))  # redelivered at another offset
    assert [x.sample.sample_id for x in c.buffer] == ["sentiment:r1"]
    assert (c.buffer[0].partition, c.buffer[0].offset) == (0, 5)
    assert c.stats.duplicates == 1
    assert c.stats.samples["sentiment"] == 1
    assert c.stats.records == 2


def test_a_new_collector_skips_duplicates_of_samples_already_stored(tmp_path: Path) -> None:
    """Warm from the store: a duplicate of an event written by an earlier run is dropped."""
    first, s = make_collector(tmp_path)
    reviews = s.topics.reviews
    first.add(reviews, 0, 0, review_bytes("r1"))
    first.flush()

    second, _ = make_collector(tmp_path)
    second.add(reviews, 1, 0, review_bytes("r1"))
    second.add(reviews, 1, 1, review_bytes("r2"))
    assert [x.sample.sample_id for x in second.buffer] == ["sentiment:r2"]
    assert second.stats.duplicates == 1
    second.flush()
    ids = SampleStore(s.learning.samples_dir).read()["sample_id"].to_pylist()
    assert sorted(ids) == ["sentiment:r1", "sentiment:r2"]


def test_warm_dedupe_memory_evicts_the_oldest_stored_keys_first(tmp_path: Path) -> None:
    """With a bounded memory the newest stored samples are the ones worth remembering."""
    first, s = make_collector(tmp_path, dedupe_ids=2)
    reviews = s.topics.reviews
    first.add(reviews, 0, 0, review_bytes("old"))
    first.flush()
    first.add(reviews, 0, 1, review_bytes("new"))
    first.flush()

    second, _ = make_collector(tmp_path, dedupe_ids=2)
    second.add(reviews, 0, 2, review_bytes("fresh"))  # evicts one remembered key
    second.add(reviews, 0, 3, review_bytes("new"))  # the newest stored: still remembered
    assert [x.sample.sample_id for x in second.buffer] == ["sentiment:fresh"]


def test_undecodable_and_wrong_type_records_are_counted_and_skipped(tmp_path: Path) -> None:
    c, s = make_collector(tmp_path)
    t = s.topics
    wrong_type = orjson.loads(review_bytes("r-bad"))
    wrong_type["rating"] = "5"
    c.add(t.reviews, 0, 0, b"\xff\xfe{not json")
    c.add(t.reviews, 0, 1, orjson.dumps(wrong_type))
    c.add(t.reviews, 0, 2, None)
    c.add(t.member_anomalies, 0, 0, b"{broken")
    assert c.buffer == []
    assert c.stats.skipped == {"decode": 2, "validation": 1, "bad AnomalyFlag": 1}
    assert c.stats.records == 4
    # consumed all the same: the flush lets their offsets be committed
    offsets, record = c.flush()
    assert record is None
    assert offsets == {(t.reviews, 0): 3, (t.member_anomalies, 0): 1}


def test_should_flush_at_flush_samples(tmp_path: Path) -> None:
    c, s = make_collector(tmp_path, flush_samples=3, flush_interval_s=3600)
    for i in range(2):
        c.add(s.topics.reviews, 0, i, review_bytes(f"r{i}"))
    assert not c.should_flush()
    c.add(s.topics.reviews, 0, 2, review_bytes("r2"))
    assert c.should_flush()


def test_should_flush_after_flush_interval(tmp_path: Path) -> None:
    """The interval runs from the oldest buffered sample, not from records without any."""
    clock = FakeClock(1000.0)
    c, s = make_collector(tmp_path, clock, flush_samples=100, flush_interval_s=5.0)
    c.add(s.topics.clicks, 0, 0, search_bytes("s1"))  # no sample
    clock.now += 60
    assert not c.should_flush()
    c.add(s.topics.reviews, 0, 0, review_bytes("r1"))  # the oldest sample: t=1060
    clock.now += 4.9
    c.add(s.topics.reviews, 0, 1, review_bytes("r2"))
    assert not c.should_flush()
    clock.now += 0.1
    assert c.should_flush()
    c.flush()
    assert not c.should_flush()


def test_full_at_max_buffered_samples(tmp_path: Path) -> None:
    c, s = make_collector(tmp_path, flush_samples=100, max_buffered_samples=3)
    for i in range(3):
        assert not c.full
        c.add(s.topics.reviews, 0, i, review_bytes(f"r{i}"))
    assert c.full
    c.flush()
    assert not c.full


def test_flush_with_empty_buffer_returns_offsets_and_writes_no_commit_record(
    tmp_path: Path,
) -> None:
    c, s = make_collector(tmp_path)
    c.add(s.topics.clicks, 2, 40, search_bytes("s1"))
    c.add(s.topics.clicks, 2, 41, search_bytes("s2"))
    offsets, record = c.flush()
    assert record is None
    assert offsets == {(s.topics.clicks, 2): 42}
    flushes = s.learning.samples_dir / "_flushes"
    assert not flushes.exists() or list(flushes.iterdir()) == []
    assert c.stats.flushes == 0
    assert c.flush() == ({}, None)  # nothing pending any more


def test_flush_returns_offset_after_the_last_record_per_partition(tmp_path: Path) -> None:
    """What the flush returns is what may be committed: offset + 1 of the last record
    read per partition, for records with and without samples; the commit record says
    the same."""
    c, s = make_collector(tmp_path)
    t = s.topics
    c.add(t.reviews, 0, 10, review_bytes("r10"))
    c.add(t.reviews, 0, 11, review_bytes("r11"))
    c.add(t.reviews, 1, 3, review_bytes("r3"))
    c.add(t.clicks, 2, 99, search_bytes("s99"))
    offsets, record = c.flush()
    want = {(t.reviews, 0): 12, (t.reviews, 1): 4, (t.clicks, 2): 100}
    assert offsets == want
    assert record is not None and record.offsets == want
    store = SampleStore(s.learning.samples_dir)
    assert store.offsets() == want
    rows = sorted((r["sample_id"], r["source_partition"], r["source_offset"]) for r in store.rows())
    assert rows == [("sentiment:r10", 0, 10), ("sentiment:r11", 0, 11), ("sentiment:r3", 1, 3)]
    assert c.buffer == [] and c.stats.flushes == 1
    # the next flush covers only what came after
    c.add(t.reviews, 0, 12, review_bytes("r12"))
    offsets, _ = c.flush()
    assert offsets == {(t.reviews, 0): 13}
    assert store.offsets()[(t.reviews, 0)] == 13


def test_samples_carry_the_announced_model_version(tmp_path: Path) -> None:
    c, s = make_collector(tmp_path)
    update = ModelUpdate(
        output_id="u1",
        task="sentiment",
        version="sentiment@abc123",
        previous_version=None,
        action="promote",
        location="/registry/sentiment/abc123",
        files={},
        encoder_version="enc@1",
        announced_at=T0,
    )
    c.add(s.topics.model_updates, 0, 0, encode(update))
    c.add(s.topics.reviews, 0, 0, review_bytes("r1"))
    assert c.buffer[0].sample.model_version == "sentiment@abc123"


def test_stored_rows_hold_no_raw_member_id_or_contact_data(tmp_path: Path) -> None:
    c, s = make_collector(tmp_path)
    c.add(s.topics.reviews, 0, 0, review_bytes("r1", text="mail jane@example.org, 555-123-4567"))
    c.flush()
    (row,) = SampleStore(s.learning.samples_dir).rows()
    assert row["text"] == "Title\nmail <EMAIL>, <PHONE>"
    assert re.fullmatch(r"m_[0-9a-f]{24}", row["member"])
    assert orjson.loads(row["masked"]) == {"email": 1, "phone": 1}
