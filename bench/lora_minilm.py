"""LoRA-tuned all-MiniLM-L6-v2 against the frozen encoder + logistic regression, on real reviews.

``python -m bench.lora_minilm [--epochs N] [--rank R] [--limit N] [--threads T] [--out DIR]``

Training texts: the English platform-traffic part (VADER Amazon review sentences,
:func:`memberstream.ml.training.text_corpus.platform_traffic`), polar ones only (the
head is binary), in the corpus's order; ``--limit`` keeps the first N. The last 15%
of them validate (:func:`memberstream.ml.training.lora.validation_split`), the rest fit.
Test: the English held-out part, polar texts, never trained or tuned on.

Contenders, all fitted on the same texts and tuned on the same validation slice:

- frozen: the exported MiniLM encoder (ONNX fp32, the runtime's ``TextEncoder``) and
  a logistic regression (scikit-learn, L-BFGS) on its normalised embeddings, ``C``
  picked by validation log-loss;
- LoRA: :func:`memberstream.ml.training.lora.train_lora` (adapters on query/value and
  a binary head, the epoch picked by validation loss), scored in torch with its head;
- LoRA encoder + LR: the merged, exported LoRA encoder (ONNX fp32) with a logistic
  regression fitted as for the frozen one: what the worker would get from the tuned
  encoder and a linear head over its embedding.

Binary accuracy as in :func:`memberstream.ml.training.sentiment.figures`. Also
recorded: training time and threads, adapter size and parameter counts, the export's
agreement (ONNX fp32 vs the merged torch model, int8 vs fp32), and the ONNX texts/s of
the base and the tuned encoder. Results: ``DIR/lora.json`` and ``DIR/lora.md``.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.throughput import run_info, save_results
from memberstream.ml.encoder import METADATA_FILE, TextEncoder
from memberstream.ml.onnx_export import TorchReference, default_source_dir, throughput
from memberstream.ml.sentiment import LABELS, NEGATIVE, POSITIVE
from memberstream.ml.settings import MINILM_MODEL_DIR
from memberstream.ml.training import text_corpus as tc
from memberstream.ml.training.lora import (
    ONNX_SUBDIR,
    VALIDATION_FRACTION,
    merge_and_export,
    train_lora,
    validation_split,
)
from memberstream.ml.training.sentiment import figures

RESULTS = Path(__file__).parent / "results"
DEFAULT_LR = 2e-3
LR_CHOICE = (
    "2e-3: lowest best-epoch validation loss of 5e-4 / 1e-3 / 2e-3 (0.289 / 0.300 / 0.281) "
    "with 10 epochs on all 516 polar traffic texts"
)
C_GRID = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0)

Encode = Callable[[Sequence[str]], np.ndarray]


def echo(msg: str) -> None:
    print(msg, flush=True)


def binary_accuracy(p_positive: np.ndarray, rows: Sequence[tc.LabeledText]) -> dict[str, Any]:
    """``figures``' binary accuracy for (n,) p(positive) of polar rows."""
    probs = np.zeros((len(rows), len(LABELS)))
    probs[:, POSITIVE] = p_positive
    probs[:, NEGATIVE] = 1.0 - p_positive
    f = figures(probs, rows)
    return {"n": f["polar_n"], "binary_accuracy": round(f["binary_accuracy"], 4)}


def fit_logistic(
    x_fit: np.ndarray, y_fit: np.ndarray, x_val: np.ndarray, y_val: np.ndarray
) -> tuple[Any, dict[str, Any]]:
    """Logistic regression, ``C`` from :data:`C_GRID` by validation log-loss."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import log_loss

    scores = {}
    for c in C_GRID:
        clf = LogisticRegression(C=c, max_iter=5000).fit(x_fit, y_fit)
        scores[c] = log_loss(y_val, clf.predict_proba(x_val), labels=[0, 1])
    best = min(scores, key=lambda c: scores[c])
    clf = LogisticRegression(C=best, max_iter=5000).fit(x_fit, y_fit)
    val_acc = float((clf.predict(x_val) == y_val).mean())
    return clf, {
        "C": best,
        "val_log_loss_by_C": {str(c): round(v, 5) for c, v in scores.items()},
        "val_accuracy": round(val_acc, 4),
    }


def linear_probe(
    encode: Encode,
    fit: Sequence[tc.LabeledText],
    val: Sequence[tc.LabeledText],
    test: Sequence[tc.LabeledText],
) -> tuple[np.ndarray, dict[str, Any]]:
    """Embed, fit the logistic regression, score the test: (p(positive) on test, figures)."""
    started = time.perf_counter()
    x = {name: encode([r.text for r in rows]) for name, rows in (("fit", fit), ("val", val))}
    y_fit = np.array([r.label == POSITIVE for r in fit], dtype=int)
    y_val = np.array([r.label == POSITIVE for r in val], dtype=int)
    embed_seconds = time.perf_counter() - started
    clf, chosen = fit_logistic(x["fit"], y_fit, x["val"], y_val)
    train_seconds = time.perf_counter() - started
    p_test = clf.predict_proba(encode([r.text for r in test]))[:, 1]
    return p_test, {
        **binary_accuracy(p_test, test),
        "train_seconds": round(train_seconds, 2),
        "embed_seconds": round(embed_seconds, 2),
        "trainable_params": int(clf.coef_.size + clf.intercept_.size),
        **chosen,
    }


def mcnemar(a: np.ndarray, b: np.ndarray, rows: Sequence[tc.LabeledText]) -> dict[str, int | float]:
    """Paired comparison of two p(positive) vectors on the same polar rows (exact test)."""
    from scipy.stats import binomtest

    truth = np.array([r.label == POSITIVE for r in rows])
    a_right, b_right = (a > 0.5) == truth, (b > 0.5) == truth
    only_a, only_b = int((a_right & ~b_right).sum()), int((~a_right & b_right).sum())
    p = binomtest(min(only_a, only_b), only_a + only_b, 0.5).pvalue if only_a + only_b else 1.0
    return {"only_first_right": only_a, "only_second_right": only_b, "p_value": round(p, 4)}


def frozen_encoder(threads: int) -> tuple[Encode, str]:
    """The exported base encoder (ONNX fp32), or its torch checkpoint when not exported."""
    if (MINILM_MODEL_DIR / METADATA_FILE).is_file():
        enc = TextEncoder(MINILM_MODEL_DIR, variant="fp32", providers="cpu", threads=threads)
        return enc.encode, f"ONNX fp32 {enc.version} ({MINILM_MODEL_DIR})"
    ref = TorchReference(default_source_dir(), threads=threads)
    return ref.encode, f"torch fp32 {default_source_dir()} (no exported encoder found)"


def speed(
    model_dirs: dict[str, Path], texts: Sequence[str], threads: int, rounds: int = 3
) -> dict[str, Any]:
    """ONNX Runtime texts/s per encoder directory and variant, median of ``rounds``.

    Rounds alternate between the encoders (base fp32, tuned fp32, base int8, ...), so
    drift on a shared machine hits them alike (as bench.encoder does).
    """
    texts = list(dict.fromkeys(texts))
    encoders = {
        (name, variant): TextEncoder(d, variant=variant, providers="cpu", threads=threads)
        for variant in ("fp32", "int8")
        for name, d in model_dirs.items()
    }
    rates: dict[tuple[str, str], list[float]] = {key: [] for key in encoders}
    for _ in range(rounds):
        for key, enc in encoders.items():
            rates[key].append(throughput(enc.encode, texts))
    out: dict[str, Any] = {name: {} for name in model_dirs}
    for (name, variant), r in rates.items():
        out[name][variant] = round(statistics.median(r), 1)
        out[name][f"{variant}_per_round"] = [round(v, 1) for v in r]
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    started = time.perf_counter()
    torch.set_num_threads(args.threads)
    traffic = tc.platform_traffic((tc.VADER_AMAZON_EN,))
    rows = [r for r in traffic if r.polar]
    polar_available = len(rows)
    if args.limit:
        rows = rows[: args.limit]
    n_fit = validation_split(len(rows), VALIDATION_FRACTION)
    fit, val = rows[:n_fit], rows[n_fit:]
    test = [r for r in tc.heldout_test((tc.VADER_AMAZON_EN,)) if r.polar]
    echo(
        f"traffic (en): {len(traffic)} texts, {polar_available} polar; using {len(rows)}: "
        f"{len(fit)} fit, {len(val)} validate; held-out test: {len(test)} polar"
    )

    encode, frozen_desc = frozen_encoder(args.threads)
    echo(f"frozen baseline: {frozen_desc} + logistic regression")
    p_frozen, frozen = linear_probe(encode, fit, val, test)
    frozen["encoder"] = frozen_desc
    echo(f"  held-out binary accuracy {frozen['binary_accuracy']:.4f} (C={frozen['C']})")

    echo(f"LoRA: rank {args.rank}, {args.epochs} epochs, {args.threads} threads")
    result = train_lora(
        [r.text for r in rows],
        [r.label for r in rows],
        rank=args.rank,
        alpha=args.alpha if args.alpha is not None else 2 * args.rank,
        epochs=args.epochs,
        lr=args.lr,
        batch_size=args.batch_size,
        max_length=args.max_length,
        seed=args.seed,
        threads=args.threads,
    )
    assert result.n_train == len(fit) and result.n_val == len(val)
    p_lora = result.predict_proba([r.text for r in test])[:, 1]
    lora = {**binary_accuracy(p_lora, test), **result.summary()}
    echo(
        f"  held-out binary accuracy {lora['binary_accuracy']:.4f}; best epoch "
        f"{result.best_epoch}; {result.train_seconds / 60:.1f} min"
    )

    export_root = args.export_dir or Path(tempfile.mkdtemp(prefix="lora-minilm-"))
    try:
        agreement_texts = tc.load_eval_texts(
            n_en=args.agreement_texts // 2, n_zh=args.agreement_texts - args.agreement_texts // 2
        )
        echo(f"merging and exporting to {export_root} ({len(agreement_texts)} agreement texts)")
        report = merge_and_export(
            result,
            export_root,
            eval_texts=agreement_texts,
            threads=args.threads,
            echo=lambda m: echo(f"  export: {m}"),
        )
        onnx_dir = export_root / ONNX_SUBDIR
        export = {
            "seconds": round(report.seconds, 1),
            "model": report.metadata.model,
            "fp32_vs_torch_merged": report.fp32_vs_torch.model_dump()
            if report.fp32_vs_torch
            else None,
            "int8_vs_fp32": report.int8_vs_fp32.model_dump() if report.int8_vs_fp32 else None,
            "int8_ok": report.int8_ok,
            "agreement_texts": "load_eval_texts: "
            f"{args.agreement_texts // 2} English, "
            f"{args.agreement_texts - args.agreement_texts // 2} Chinese",
            "kept_at": str(export_root) if args.export_dir else None,
        }
        echo(f"  ONNX fp32 vs torch merged: {export['fp32_vs_torch_merged']}")

        tuned = TextEncoder(onnx_dir, variant="fp32", providers="cpu", threads=args.threads)
        echo("LoRA encoder (exported, ONNX fp32) + logistic regression")
        p_tuned_lr, tuned_lr = linear_probe(tuned.encode, fit, val, test)
        tuned_lr["encoder"] = f"ONNX fp32 {tuned.version}"
        echo(f"  held-out binary accuracy {tuned_lr['binary_accuracy']:.4f}")

        texts_per_s: dict[str, Any] | None = None
        if args.speed and (MINILM_MODEL_DIR / METADATA_FILE).is_file():
            echo("ONNX texts/s on the held-out texts: base, then tuned")
            texts = [r.text for r in test]
            texts_per_s = {
                **speed({"base": MINILM_MODEL_DIR, "lora": onnx_dir}, texts, args.threads),
                "texts": len(texts),
                "method": "onnx_export.throughput, batches of 64 after one warm-up batch; "
                "int8 one text per call, threads at a time; median of 3 alternating rounds",
            }
            echo(f"  {texts_per_s}")
    finally:
        if not args.export_dir:
            shutil.rmtree(export_root, ignore_errors=True)

    return {
        "data": {
            "train_source": f"{tc.VADER_AMAZON_EN}, platform_traffic, polar",
            "traffic_texts": len(traffic),
            "traffic_polar": polar_available,
            "used": len(rows),
            "fit": len(fit),
            "validation": len(val),
            "validation_rule": f"last {VALIDATION_FRACTION:.0%} in corpus order",
            "fit_classes": {
                "negative": sum(r.label == NEGATIVE for r in fit),
                "positive": sum(r.label == POSITIVE for r in fit),
            },
            "test_source": f"{tc.VADER_AMAZON_EN}, heldout_test, polar",
            "test": len(test),
        },
        "settings": {
            "epochs": args.epochs,
            "rank": args.rank,
            "alpha": args.alpha if args.alpha is not None else 2 * args.rank,
            "lr": args.lr,
            "lr_choice": LR_CHOICE if args.lr == DEFAULT_LR else "set on the command line",
            "batch_size": args.batch_size,
            "max_length": args.max_length,
            "seed": args.seed,
            "limit": args.limit,
            "threads": args.threads,
            "torch": torch.__version__,
        },
        "frozen": frozen,
        "lora": lora,
        "lora_encoder_lr": tuned_lr,
        "paired": {
            "lora_vs_frozen": mcnemar(p_lora, p_frozen, test),
            "lora_encoder_lr_vs_frozen": mcnemar(p_tuned_lr, p_frozen, test),
        },
        "export": export,
        "texts_per_s": texts_per_s,
        "wall_seconds": round(time.perf_counter() - started, 1),
    }


def markdown(r: dict[str, Any]) -> str:
    d, s, fz, lo, tl = r["data"], r["settings"], r["frozen"], r["lora"], r["lora_encoder_lr"]
    ex, sp = r["export"], r["texts_per_s"]
    pct = 100 * lo["trainable_params"] / lo["total_params"]
    lines = [
        "# LoRA fine-tuning of all-MiniLM-L6-v2 vs the frozen encoder (binary sentiment)",
        "",
        f"Training: English platform-traffic texts ({d['train_source']}), {d['used']} polar "
        f"of {d['traffic_texts']} ({d['fit']} fit, {d['validation']} validate: the "
        f"{d['validation_rule']}). Test: {d['test']} polar English held-out texts, never "
        f"trained or tuned on. Binary accuracy: p(positive) > p(negative) against the sign "
        f"of the human score. {s['threads']} torch/ONNX Runtime threads, torch {s['torch']}.",
        "",
        f"| model | trainable params | training | validation pick | held-out binary accuracy "
        f"(n={d['test']}) |",
        "|---|---:|---:|---|---:|",
        f"| frozen MiniLM (ONNX fp32) + logistic regression | {fz['trainable_params']:,} | "
        f"{fz['train_seconds']:.0f} s (embedding included) | C={fz['C']} | "
        f"{fz['binary_accuracy']:.3f} |",
        f"| LoRA r={s['rank']} (query, value) + linear head, torch | "
        f"{lo['trainable_params']:,} | {lo['train_seconds'] / 60:.1f} min | epoch "
        f"{lo['best_epoch']} of {s['epochs']} | {lo['binary_accuracy']:.3f} |",
        f"| LoRA encoder merged, ONNX fp32 + logistic regression | {tl['trainable_params']:,} "
        f"(+ the LoRA run) | {tl['train_seconds']:.0f} s after LoRA | C={tl['C']} | "
        f"{tl['binary_accuracy']:.3f} |",
        "",
    ]
    for key, name in (
        ("lora_vs_frozen", "LoRA + head"),
        ("lora_encoder_lr_vs_frozen", "LoRA encoder + LR"),
    ):
        p = r["paired"][key]
        lines.append(
            f"- {name} vs frozen, paired on the same texts: {p['only_first_right']} right only "
            f"with {name}, {p['only_second_right']} only frozen; exact McNemar p = "
            f"{p['p_value']:.3f}."
        )
    lines += [
        "",
        "| | |",
        "|---|---|",
        f"| LoRA settings | rank {s['rank']}, alpha {s['alpha']}, lr {s['lr']}, batch "
        f"{s['batch_size']}, max_length {s['max_length']}, {s['epochs']} epochs, seed "
        f"{s['seed']}, limit {s['limit'] or 'none'} |",
        f"| adapter | {lo['adapter_params']:,} params, {lo['adapter_bytes']:,} bytes "
        f"(adapter_model.safetensors; {lo['adapter_dir_bytes']:,} with its config) |",
        f"| trainable / total params | {lo['trainable_params']:,} / {lo['total_params']:,} "
        f"({pct:.2f}%; head {lo['head_params']:,}) |",
        f"| training time | {lo['train_seconds']:.0f} s on {lo['threads']} threads "
        f"(validation passes included, model loading not) |",
        "| validation loss per epoch | " + ", ".join(f"{v:.3f}" for v in lo["val_losses"]) + " |",
        "| validation accuracy per epoch | "
        + ", ".join(f"{v:.3f}" for v in lo["val_accuracies"])
        + " |",
        "| train loss per epoch | "
        + ", ".join(f"{v:.3f}" for v in lo["epoch_train_losses"])
        + " |",
    ]
    if ex["fp32_vs_torch_merged"]:
        a, q = ex["fp32_vs_torch_merged"], ex["int8_vs_fp32"]
        lines.append(
            f"| ONNX export ({ex['agreement_texts']}) | fp32 vs torch merged: cosine min "
            f"{a['min']:.6f}, mean {a['mean']:.6f}; int8 vs fp32: min {q['min']:.4f}, mean "
            f"{q['mean']:.4f} (int8_ok {ex['int8_ok']}); {ex['seconds']:.0f} s |"
        )
    if sp:
        lines.append(
            f"| ONNX texts/s ({sp['texts']} held-out texts, median of 3 rounds) | base fp32 "
            f"{sp['base']['fp32']:,.0f}, int8 "
            f"{sp['base']['int8']:,.0f}; LoRA fp32 {sp['lora']['fp32']:,.0f}, int8 "
            f"{sp['lora']['int8']:,.0f} |"
        )
    lines += [
        f"| wall time of the run | {r['wall_seconds'] / 60:.1f} min |",
        "",
        "The LoRA head is binary (negative/positive), trained on polar texts only, to match "
        "the metric. The epoch, C and the learning rate were picked on the validation slice "
        f"only (lr {s['lr_choice']}); the held-out figures were not used to choose anything.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--rank", type=int, default=8)
    p.add_argument("--alpha", type=int, default=None, help="LoRA alpha (default 2 x rank)")
    p.add_argument("--lr", type=float, default=DEFAULT_LR, help=f"default {LR_CHOICE}")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-length", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=int, default=0, help="use the first N polar texts (0: all)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--agreement-texts", type=int, default=1200)
    p.add_argument("--no-speed", dest="speed", action="store_false", help="skip texts/s")
    p.add_argument(
        "--export-dir", type=Path, default=None, help="keep the merged checkpoint and ONNX here"
    )
    p.add_argument("--name", default="lora", help="results file name (NAME.json, NAME.md)")
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    results = run(args)
    save_results(
        args.out, args.name, run_info("bench.lora_minilm", argv), results, markdown(results)
    )


if __name__ == "__main__":
    main()
