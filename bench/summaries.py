"""Review summaries: ROUGE on the packaged reference set, faithfulness, and cost.

``python -m bench.summaries [--rounds 1] [--events 30000] [--no-kafka]``

- ROUGE-1/2/L F1 of the extractive summaries of the packaged reference set
  (24 products, English and Chinese, two human-written references each; see
  ``memberstream/data/review_summaries/README.md``), best reference per metric,
  next to two yardsticks: the two human references scored against each other
  (the ceiling), and a lead baseline (the first sentences of the reviews, cut
  to the summary's length).
- Faithfulness: every pro and con must be a sentence of a review it cites.
- Sentiment on real held-out reviews is ``bench.sentiment``; ROUGE on real Amazon
  reviews with human summaries is ``bench.summaries_copycat``.
- Cost: seconds to summarize 1,000 reviews on this machine (CPU; a cold
  sentence cache, then warm), and the worker's events/s with summaries on vs
  off on a review-heavy synthetic stream, side by side through Kafka.

Results: ``DIR/summaries.json`` and ``DIR/summaries.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.throughput import run_info, save_results
from memberstream.config import Settings
from memberstream.core.summaries import CachedEncoder, build_summarizer
from memberstream.datasets.synthetic import SyntheticWorkload, WorkloadConfig
from memberstream.domain.language import is_cjk
from memberstream.domain.summaries.rouge import METRICS, rouge_all
from memberstream.domain.summaries.summarizer import ReviewText, Summary
from memberstream.ml.inference import stage_from_settings
from memberstream.ml.training.reference_set import load_reference_set
from memberstream.ml.training.text_corpus import load_eval_texts


def lead_baseline(reviews: list[ReviewText], words: int) -> str:
    """The reviews' opening text, in order, cut to about ``words`` tokens (characters for
    Chinese): what a summary has to beat by choosing."""
    text = " ".join(r.text.replace("\n", " ") for r in reviews)
    if is_cjk(text):
        return text[: max(words, 1)]
    return " ".join(text.split()[:words])


def unfaithful(summary: Summary, reviews: list[ReviewText]) -> list[str]:
    """Pros and cons that are not a sentence of a review they cite."""
    texts = {r.review_id: r.text for r in reviews}
    bad = []
    for point in (*summary.pros, *summary.cons):
        cited = [texts.get(rid, "") for rid in point.review_ids]
        if not point.review_ids or not any(point.text in t for t in cited):
            bad.append(point.text)
        if any(rid not in texts for rid in point.review_ids):
            bad.append(f"cites unknown review: {point.review_ids}")
    return bad


def rouge_eval(settings: Settings) -> dict[str, Any]:
    stage = stage_from_settings(settings)
    summarizer = build_summarizer(settings, stage)
    assert summarizer is not None, "summaries need the text model"
    rows = []
    for product in load_reference_set():
        reviews = [
            ReviewText(r.review_id, r.rating, r.text, product.language) for r in product.reviews
        ]
        summary = summarizer.summarize(reviews)
        refs = list(product.references)
        size = len(summary.text) if product.language == "zh" else len(summary.text.split())
        rows.append(
            {
                "product_id": product.product_id,
                "language": product.language,
                "summary": summary.text,
                "pros": [p.text for p in summary.pros],
                "cons": [p.text for p in summary.cons],
                "rouge": {m: s.f1 for m, s in rouge_all(summary.text, refs).items()},
                "lead": {m: s.f1 for m, s in rouge_all(lead_baseline(reviews, size), refs).items()},
                "human": {m: s.f1 for m, s in rouge_all(refs[0], refs[1:]).items()},
                "unfaithful": unfaithful(summary, reviews),
            }
        )
    return {"version": summarizer.version, "products": rows}


def mean_by(rows: list[dict], key: str, language: str | None) -> dict[str, float]:
    chosen = [r for r in rows if language is None or r["language"] == language]
    return {m: statistics.fmean(r[key][m] for r in chosen) for m in METRICS}


def real_reviews(n_reviews: int) -> list[ReviewText]:
    """Distinct real review texts (half English, half Chinese; see text_corpus), so the
    cold-cache figure embeds every sentence. Their ratings do not change the cost."""
    texts = load_eval_texts(n_en=n_reviews // 2, n_zh=n_reviews - n_reviews // 2)
    return [ReviewText(f"real-{i:05d}", 1 + i % 5, t) for i, t in enumerate(texts)]


def summary_cost(settings: Settings, n_reviews: int = 1000) -> dict[str, Any]:
    """Seconds to summarize ``n_reviews`` real reviews, 20 per product, cold and warm
    sentence cache."""
    stage = stage_from_settings(settings)
    reviews = real_reviews(n_reviews)
    groups = [reviews[i : i + 20] for i in range(0, len(reviews), 20)]
    summarizer = build_summarizer(settings, stage)
    assert summarizer is not None
    started = time.perf_counter()
    for g in groups:
        summarizer.summarize(g)
    cold = time.perf_counter() - started
    started = time.perf_counter()
    for g in groups:
        summarizer.summarize(g)
    warm = time.perf_counter() - started
    return {
        "reviews": len(reviews),
        "products": len(groups),
        "cold_s": cold,
        "warm_s": warm,
        "cold_s_per_1000": cold * 1000 / len(reviews),
        "warm_s_per_1000": warm * 1000 / len(reviews),
        "device": "CPU",
        "encoder": getattr(stage.encoder, "version", "?") if stage else "-",
        "cache": isinstance(getattr(summarizer, "encoder", None), CachedEncoder),
    }


async def worker_rates(args: argparse.Namespace) -> dict[str, Any]:
    from bench.throughput import events_through, fresh_namespace, run_id, slope_rate
    from memberstream.streams.kafka_io import wait_for_kafka
    from memberstream.streams.worker_process import WorkerProcess

    await wait_for_kafka(Settings(kafka_bootstrap_servers=args.bootstrap))
    config = WorkloadConfig(seed=13, members=3000, days=90, review_rate=0.6)
    everything = list(SyntheticWorkload(config).events())
    # review-heavy: every review and order, then the first clicks to make up the count
    others = [e for e in everything if e.type != "click"]
    clicks = max(args.events - len(others), 0)
    keep = {id(e) for e in [e for e in everything if e.type == "click"][:clicks]}
    events = [e for e in everything if e.type != "click" or id(e) in keep]
    reviews = sum(1 for e in events if e.type == "review")
    rounds = []
    with tempfile.TemporaryDirectory(prefix="bench-summaries-") as tmp:
        for r in range(1, args.rounds + 1):
            rates = {}
            for mode in ("on", "off"):
                async with fresh_namespace(args.bootstrap, args.partitions, Path(tmp)) as ns:
                    ns.summary.enabled = mode == "on"
                    log = Path(tmp) / f"worker-{mode}-{run_id(ns)}.log"
                    samples = await events_through(
                        ns, events, WorkerProcess(ns, log).start, args.timeout
                    )
                    rates[mode] = slope_rate(samples, len(events))
                print(f"round {r} summaries {mode}: {rates[mode]:7.0f} events/s")
            rounds.append(rates)
    on = statistics.median(x["on"] for x in rounds)
    off = statistics.median(x["off"] for x in rounds)
    return {
        "events": len(events),
        "reviews": reviews,
        "rounds": rounds,
        "on": on,
        "off": off,
        "cost": 1 - on / off,
    }


def markdown(info: dict[str, Any], result: dict[str, Any]) -> str:
    rouge = result["rouge"]
    lines = [
        "# Review summaries",
        "",
        f"Recorded {info['recorded_at']} on {info['machine']}. Command: `{info['command']}`.",
        "",
        f"## ROUGE F1 on the reference set ({len(rouge['products'])} products; "
        f"summarizer `{rouge['version']}`)",
        "",
        "| set | summarizer R-1 / R-2 / R-L | lead baseline | human vs human |",
        "|---|---|---|---|",
    ]
    for name, lang in (("English", "en"), ("Chinese", "zh"), ("all", None)):
        cells = [
            " / ".join(f"{v:.3f}" for v in mean_by(rouge["products"], key, lang).values())
            for key in ("rouge", "lead", "human")
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    bad = sum(len(p["unfaithful"]) for p in rouge["products"])
    lines += [
        "",
        f"Faithfulness: {bad} pros/cons not found verbatim in a review they cite.",
        "",
    ]
    cost = result["cost"]
    lines += [
        "",
        "## Cost",
        "",
        f"- summarizing {cost['reviews']:,} distinct real reviews ({cost['products']} products "
        f"x 20) on the CPU: {cost['cold_s_per_1000']:.1f} s per 1,000 reviews with a cold "
        "sentence cache, "
        f"{cost['warm_s_per_1000']:.1f} s warm. GPU: {result['gpu']}.",
    ]
    worker = result.get("worker")
    if worker:
        lines.append(
            f"- worker on {worker['events']:,} events ({worker['reviews']:,} reviews): "
            f"{worker['on']:,.0f} events/s with summaries, {worker['off']:,.0f} without "
            f"(cost {worker['cost']:.1%})."
        )
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--events", type=int, default=30_000)
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--partitions", type=int, default=4)
    p.add_argument("--timeout", type=float, default=900.0)
    p.add_argument("--bootstrap", default=Settings().kafka_bootstrap_servers)
    p.add_argument("--no-kafka", action="store_true", help="skip the worker on/off comparison")
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    settings = Settings(kafka_bootstrap_servers=args.bootstrap)
    result: dict[str, Any] = {"gpu": "none available to this run"}
    print("ROUGE on the reference set ...")
    result["rouge"] = rouge_eval(settings)
    print("summarization cost ...")
    result["cost"] = summary_cost(settings)
    if not args.no_kafka:
        result["worker"] = asyncio.run(worker_rates(args))
    info = run_info("bench.summaries", argv)
    md = markdown(info, result)
    print(md)
    save_results(args.out, "summaries", info, result, md)


if __name__ == "__main__":
    main()
