"""Where each encoder's cosine thresholds come from: measured on development data.

``python -m bench.calibrate_encoder [--model-dir DIR ...]``

For each encoder directory (default: every known one that is present):

- zero-shot temperature: the softmax temperature over cosine similarity to the
  embedded category descriptions that minimises the negative log-likelihood of the
  true category of 800 synthetic catalog titles (seed 5), and the top-1 accuracy;
- review-duplicate similarity: the cosine distribution of copy-paste ring pairs
  (the injector's lightly edited promotional copies), of review-bombing pairs (all
  different texts on one product) and of distinct genuine synthetic reviews of one
  product; the threshold goes under the lowest copy pair and above the bombing pairs.

The values chosen are recorded in the encoder's manifest
(:mod:`memberstream.ml.encoder_catalog`); this script shows the evidence. Results
go to ``bench/results/encoder_calibration.json`` and ``.md``. Development data
only: the synthetic generator and injector, never the held-out sets.
"""

from __future__ import annotations

import argparse
import json
import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from memberstream.datasets.anomaly_texts import bomb_texts, promo_copies
from memberstream.datasets.synthetic import SyntheticWorkload, WorkloadConfig, build_catalog
from memberstream.domain.taxonomy import Taxonomy
from memberstream.ml.encoder import TextEncoder
from memberstream.ml.settings import DEFAULT_MODEL_DIR, MINILM_MODEL_DIR, MODELS_HOME
from memberstream.schemas.events import ReviewEvent

RESULTS = Path(__file__).parent / "results"
TEMPERATURES = (0.01, 0.015, 0.02, 0.03, 0.04, 0.05, 0.07, 0.1)


def zero_shot(enc: TextEncoder) -> dict[str, Any]:
    tax = Taxonomy.load()
    catalog = [p for p in build_catalog(WorkloadConfig(seed=5)) if p.category in tax.ids]
    truth = np.array([tax.ids.index(p.category) for p in catalog])
    sims = enc.encode([p.title for p in catalog]) @ enc.encode(tax.descriptions()).T
    nll = {}
    for t in TEMPERATURES:
        z = sims / t
        z -= z.max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        nll[t] = float(-logp[np.arange(len(truth)), truth].mean())
    best = min(nll, key=nll.__getitem__)
    return {
        "titles": len(catalog),
        "top1": float((sims.argmax(axis=1) == truth).mean()),
        "nll_by_temperature": nll,
        "best_temperature": best,
    }


def _pairs(x: np.ndarray) -> list[float]:
    s = x @ x.T
    return [float(v) for v in s[np.triu_indices(len(x), 1)]]


def duplicates(enc: TextEncoder) -> dict[str, Any]:
    rng = random.Random(7)
    copies: list[float] = []
    bombs: list[float] = []
    for lang, noun in (("en", "headphones"), ("zh", "耳机")):
        for _ in range(30):
            copies += _pairs(enc.encode(promo_copies(rng, lang, noun, 4)))
            bombs += _pairs(enc.encode(bomb_texts(rng, lang, noun, 4)))
    by_product: dict[str, list[str]] = {}
    config = WorkloadConfig(seed=11, members=1500, days=60, review_rate=0.6)
    for e in SyntheticWorkload(config).events(kinds=["review"]):
        if isinstance(e, ReviewEvent) and len(e.text) >= 40:
            by_product.setdefault(e.product_id, []).append(e.text)
    genuine: list[float] = []
    for texts in list(by_product.values())[:300]:
        distinct = list(dict.fromkeys(texts))[:8]
        if len(distinct) >= 2:
            genuine += _pairs(enc.encode(distinct))

    def stats(v: list[float]) -> dict[str, float]:
        a = np.array(v)
        return {
            "n": len(v),
            "min": float(a.min()),
            "p1": float(np.percentile(a, 1)),
            "p50": float(np.percentile(a, 50)),
            "p99": float(np.percentile(a, 99)),
            "max": float(a.max()),
        }

    return {"copy_pairs": stats(copies), "bombing_pairs": stats(bombs), "genuine": stats(genuine)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, action="append")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    dirs = args.model_dir or [
        p
        for p in (DEFAULT_MODEL_DIR, MINILM_MODEL_DIR, MODELS_HOME / "bge-small-zh-v1.5")
        if (p / "encoder.json").is_file()
    ]
    rows: dict[str, Any] = {}
    for d in dirs:
        enc = TextEncoder(d)
        rows[enc.metadata.model] = {
            "version": enc.version,
            "manifest_calibration": enc.metadata.calibration.model_dump(exclude_none=True),
            "zero_shot": zero_shot(enc),
            "review_duplicate": duplicates(enc),
        }
        print(f"{enc.metadata.model}: done")
    result = {
        "benchmark": "encoder_calibration",
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "encoders": rows,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "encoder_calibration.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# Encoder calibration (development data)",
        "",
        "`python -m bench.calibrate_encoder`. Zero-shot: 800 synthetic catalog titles; "
        "duplicates: 60 promo-copy rings and 60 bombing campaigns (4 texts each, English and "
        "Chinese) from the injector, and distinct genuine synthetic reviews of one product.",
        "",
        "| encoder | zero-shot top-1 | best T | manifest T | copy pairs min | bombing max "
        "| genuine p99 | manifest dup threshold |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in rows.items():
        z, d, m = r["zero_shot"], r["review_duplicate"], r["manifest_calibration"]
        lines.append(
            f"| {name} | {z['top1']:.3f} | {z['best_temperature']} "
            f"| {m.get('zero_shot_temperature', '-')} | {d['copy_pairs']['min']:.3f} "
            f"| {d['bombing_pairs']['max']:.3f} | {d['genuine']['p99']:.3f} "
            f"| {m.get('review_duplicate_similarity', '-')} |"
        )
    (args.out / "encoder_calibration.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
