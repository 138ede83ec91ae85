"""How far apart are paraphrases and genuine reviews of one product? Sets review_duplicate's
``promo_similarity`` from real text.

``python -m bench.paraphrase_rings [--model-dir DIR] [--data DIR] [--out bench/results]``

Data: the copycat development set (``../shared/data/copycat-amazon-dev``): 28 products,
8 genuine Amazon reviews each, and 3 summaries written independently by three people
"as if it were a review itself" from the same 8 reviews. The three summaries stand in
for a ring of three accounts told to praise the same points in their own words (a
harder case than spinning one promotional text, whose copies keep its phrasing); the
genuine reviews are the benign side: 3 (or 4) of a product's 8 reviews drawn at random,
as if they had arrived in one window from reviewers who did not buy on the platform.

A group of reviews is a cluster at threshold t when one of them (the centre) has at
least two others at cosine >= t: what review_duplicate needs for ``min_members`` 3.
Cosines are computed as the detector computes them (normalised, float16 quantized,
summed in float64). The threshold is chosen by a rule fixed before looking: the lowest
t (step 0.05) at which a benign burst of 3 forms a cluster at most 1% of the time.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from bench.summaries_copycat import DEFAULT_DATA, DEFAULT_MODEL_DIR, ROOT, load_copycat
from bench.throughput import run_info, save_results
from memberstream.domain.anomaly.product_detectors import quantize

THRESHOLDS = (0.55, 0.6, 0.65, 0.7, 0.75, 0.8)
BENIGN_CLUSTER_MAX = 0.01
DRAWS = 50
SEED = 7


def is_cluster(vectors: np.ndarray, t: float) -> bool:
    """One row has at least two others at cosine >= t."""
    c = vectors.astype(np.float64) @ vectors.astype(np.float64).T
    np.fill_diagonal(c, -1.0)
    return bool(((c >= t).sum(axis=1) >= 2).any())


def quantized(matrix: np.ndarray) -> np.ndarray:
    rows = [quantize(v) for v in matrix]
    if any(r is None for r in rows):
        raise ValueError("a text without an embedding")
    return np.stack(rows)  # type: ignore[arg-type]


def measure(products: list[dict[str, Any]], encoder: Any) -> dict[str, Any]:
    rng = np.random.default_rng(SEED)
    reviews = [quantized(encoder.encode(p["reviews"])) for p in products]
    rings = [quantized(encoder.encode(p["refs"])) for p in products]
    rows = []
    for t in THRESHOLDS:
        burst = {
            size: float(
                np.mean(
                    [
                        is_cluster(r[rng.choice(len(r), size, replace=False)], t)
                        for r in reviews
                        for _ in range(DRAWS)
                    ]
                )
            )
            for size in (3, 4)
        }
        rows.append(
            {
                "threshold": t,
                "ring_recall": float(np.mean([is_cluster(s, t) for s in rings])),
                "benign_burst3": burst[3],
                "benign_burst4": burst[4],
                "benign_all8": float(np.mean([is_cluster(r, t) for r in reviews])),
            }
        )
    chosen = next((r["threshold"] for r in rows if r["benign_burst3"] <= BENIGN_CLUSTER_MAX), None)
    return {"products": len(products), "draws": DRAWS, "rows": rows, "chosen": chosen}


def markdown(info: dict[str, Any], result: dict[str, Any]) -> str:
    lines = [
        "# Paraphrase rings against genuine reviews of one product",
        "",
        f"Recorded {info['recorded_at']} on {info['machine']}. Command: `{info['command']}`.",
        "",
        f"{result['products']} products of the copycat development set; a ring is the three "
        "human summaries of a product, a benign burst 3 (or 4) of its 8 genuine reviews "
        f"drawn at random ({result['draws']} draws per product). Cluster: a centre with two "
        "others at cosine >= t (review_duplicate with min_members 3).",
        "",
        "| t | rings found | benign burst of 3 | of 4 | all 8 reviews |",
        "|---:|---:|---:|---:|---:|",
        *(
            f"| {r['threshold']:.2f} | {r['ring_recall']:.2f} | {r['benign_burst3']:.3f} | "
            f"{r['benign_burst4']:.3f} | {r['benign_all8']:.2f} |"
            for r in result["rows"]
        ),
        "",
        f"Chosen by the rule (benign burst of 3 a cluster at most {BENIGN_CLUSTER_MAX:.0%} of "
        f"the time): t = {result['chosen']}. Independent paraphrases and genuine reviews of "
        "one product overlap in this space: cosine alone finds at most a minority of such "
        "rings at a tolerable benign rate, so the detector also requires that every member "
        "of the cluster is a non-buyer giving a top rating.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model-dir", type=Path, default=DEFAULT_MODEL_DIR)
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = p.parse_args(argv)
    from memberstream.ml.encoder import TextEncoder

    result = measure(load_copycat(args.data), TextEncoder(args.model_dir))
    info = run_info("bench.paraphrase_rings", argv)
    md = markdown(info, result)
    print(md)
    save_results(args.out, "paraphrase_rings", info, result, md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
