"""Text encoder speed and agreement on the CPU: torch fp32 vs ONNX Runtime fp32 and int8.

``python -m bench.encoder [--texts N] [--rounds R] [--batch B] [--threads T] [--model-dir D]``

The texts are ``load_eval_texts`` (real review texts, half English, half Chinese).
Three contenders encode the same texts in the same batches of B with max_length 64,
mean pooling and L2 normalisation:

- torch fp32: :class:`memberstream.ml.onnx_export.TorchReference`, the checkpoint
  the ONNX model was exported from;
- ORT fp32 / ORT int8: :class:`memberstream.ml.encoder.TextEncoder` with that
  variant on the CPU provider.

Speed is texts/s from ``onnx_export.throughput`` (one call per batch after one warm-up
batch), measured in alternating rounds (torch fp32, ORT fp32, ORT int8, torch fp32,
...) so that drift on a noisy machine hits all alike; ratios come from this one run.
Agreement is the cosine per text: ORT fp32 vs torch fp32, int8 vs ORT fp32 (and int8
vs torch), overall and for English and Chinese separately. Batch independence: each
ORT variant, as ``TextEncoder`` runs it, must give bit-identical embeddings for a text
encoded alone and inside a batch of B; the model itself is also run on one padded batch
of B against each text alone (dynamic int8 is not batch-independent there, which is
why the int8 export is marked ``per_text``: one text per call). Results go to
``DIR/encoder.json`` and ``DIR/encoder.md``. If the model directory is missing it is
exported first (``export_encoder``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np

from memberstream.ml.encoder import (
    CUDA,
    METADATA_FILE,
    EncoderMetadata,
    TextEncoder,
    choose_providers,
)
from memberstream.ml.onnx_export import (
    TorchReference,
    agreement,
    default_source_dir,
    export_encoder,
    int8_ok,
    throughput,
)
from memberstream.ml.settings import INT8_MEAN_COSINE, INT8_MIN_COSINE, MINILM_MODEL_DIR
from memberstream.ml.training.text_corpus import english_review_snippets, load_eval_texts

ROOT = Path(__file__).resolve().parent.parent
VARIANTS = ("torch fp32", "ORT fp32", "ORT int8")
SPEED_RATIO = 3.0
SPEED_GOAL = f"int8 >= {SPEED_RATIO:g}x torch fp32"
AGREEMENT_GOAL = (
    f"int8 agreement: cosine >= {INT8_MIN_COSINE} for every text and >= {INT8_MEAN_COSINE} mean"
)
INDEPENDENCE_GOAL = "int8 batch-independent: a text alone and in a batch, bit for bit"
# What each variant's agreement is measured against (the table's "vs reference").
REFERENCE = {"ORT fp32": "torch fp32", "ORT int8": "ORT fp32"}

Encode = Callable[[Sequence[str]], np.ndarray]


def echo(msg: str) -> None:
    print(msg, flush=True)


# --- measuring ---------------------------------------------------------------------------------


def embed(encode: Encode, texts: Sequence[str], batch: int) -> np.ndarray:
    """All embeddings, computed in the same batches the speed runs use."""
    return np.concatenate([encode(texts[i : i + batch]) for i in range(0, len(texts), batch)])


def agreements(a: np.ndarray, b: np.ndarray, english: np.ndarray) -> dict[str, Any]:
    """Per-text cosine summary overall, for English and for Chinese texts."""
    out = {"all": agreement(a, b).model_dump()}
    for name, rows in (("english", english), ("chinese", ~english)):
        if rows.any():
            out[name] = agreement(a[rows], b[rows]).model_dump()
    return out


def calls(enc: TextEncoder, batch: int, threads: int) -> str:
    """How ``enc`` calls ONNX Runtime (a per-text variant runs ``threads`` texts at once)."""
    info = enc.metadata.variants.get(enc.variant)
    if info is not None and info.per_text:
        return f"one text per call, {threads} at a time"
    return f"batches of {batch}"


def batch_independence(enc: TextEncoder, texts: Sequence[str]) -> dict[str, Any]:
    """Is a text's embedding the same alone as in a batch: through ``enc``, and in the model.

    The model check runs one padded batch straight through the session (``_run``), the
    way a batched call would, whatever the variant's recorded call mode.
    """
    together = enc.encode(texts)
    alone = np.concatenate([enc.encode([t]) for t in texts])
    encodings = enc._tokenizer.encode_batch(list(texts))
    model_batch = enc._run(encodings)
    model_alone = np.concatenate([enc._run([e]) for e in encodings])
    return {
        "encoder": bool(np.array_equal(together, alone)),
        "model_one_batch": bool(np.array_equal(model_batch, model_alone)),
        "model_one_batch_max_abs_diff": float(np.abs(model_batch - model_alone).max()),
        "texts": len(texts),
    }


def gpu_status() -> dict[str, Any]:
    import onnxruntime as ort

    providers = choose_providers("auto")
    usable = providers[0] == CUDA
    try:
        import torch

        torch_cuda = bool(torch.cuda.is_available())
    except Exception:  # torch is only for the reference; its CUDA state is informational
        torch_cuda = False
    return {
        "status": "CUDA usable (this benchmark measures the CPU only)"
        if usable
        else "no GPU available to this run",
        "choose_providers_auto": providers,
        "onnxruntime_available_providers": ort.get_available_providers(),
        "torch_cuda_available": torch_cuda,
    }


def summarize_rates(rates: dict[str, list[float]]) -> dict[str, Any]:
    base = rates["torch fp32"]
    out: dict[str, Any] = {}
    base_median = statistics.median(base)
    for name in VARIANTS:
        r = rates[name]
        out[name] = {
            "per_round": [round(v, 1) for v in r],
            "median": round(statistics.median(r), 1),
            "min": round(min(r), 1),
            "max": round(max(r), 1),
            "x_torch_fp32_of_medians": round(statistics.median(r) / base_median, 3),
            "x_torch_fp32_per_round": [round(v / b, 3) for v, b in zip(r, base, strict=True)],
        }
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    n_en = args.texts // 2
    texts = load_eval_texts(n_en=n_en, n_zh=args.texts - n_en)
    texts = list(dict.fromkeys(texts))  # distinct: the encoder's dedupe must not help it
    english_set = set(english_review_snippets())
    english = np.array([t in english_set for t in texts])
    echo(f"{len(texts)} texts ({int(english.sum())} English, {int((~english).sum())} Chinese)")

    gpu = gpu_status()
    echo(f"GPU: {gpu['status']} (choose_providers('auto') -> {gpu['choose_providers_auto']})")

    model_dir: Path = args.model_dir.expanduser()
    exported_now = False
    source = None
    if (model_dir / METADATA_FILE).is_file():
        recorded = EncoderMetadata.read(model_dir).source
        if recorded and Path(recorded).is_dir():
            source = Path(recorded)
    source = source or default_source_dir()
    echo(f"loading torch reference from {source}")
    ref = TorchReference(source, max_length=args.max_length, threads=args.threads)
    if not (model_dir / METADATA_FILE).is_file():
        echo(f"{model_dir} has no exported encoder: exporting it first (takes a minute) ...")
        report = export_encoder(
            source,
            model_dir,
            texts,
            max_length=args.max_length,
            threads=args.threads,
            reference=ref,
            echo=lambda m: echo(f"  export: {m}"),
        )
        echo(f"  exported in {report.seconds:.0f} s")
        exported_now = True

    encoders = {
        f"ORT {v}": TextEncoder(
            model_dir,
            variant=v,
            max_length=args.max_length,
            batch_size=args.batch,
            providers="cpu",
            threads=args.threads,
        )
        for v in ("fp32", "int8")
    }
    encode: dict[str, Encode] = {
        "torch fp32": lambda b: ref.encode(b, args.batch),
        **{name: enc.encode for name, enc in encoders.items()},
    }

    echo("agreement: embedding every text once with each variant ...")
    emb = {name: embed(encode[name], texts, args.batch) for name in VARIANTS}
    agree = {
        "ORT fp32 vs torch fp32": agreements(emb["ORT fp32"], emb["torch fp32"], english),
        "ORT int8 vs ORT fp32": agreements(emb["ORT int8"], emb["ORT fp32"], english),
        "ORT int8 vs torch fp32": agreements(emb["ORT int8"], emb["torch fp32"], english),
    }

    echo(f"batch independence: {args.batch} texts alone and in one batch ...")
    independent = {
        name: batch_independence(enc, texts[: args.batch]) for name, enc in encoders.items()
    }

    rates: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for rnd in range(1, args.rounds + 1):
        for name in VARIANTS:
            rate = throughput(encode[name], texts, args.batch)
            rates[name].append(rate)
            echo(f"round {rnd} {name:>10}: {rate:8,.1f} texts/s")

    speed = summarize_rates(rates)
    int8_vs_fp32 = agreement(emb["ORT int8"], emb["ORT fp32"])
    ratio = speed["ORT int8"]["x_torch_fp32_of_medians"]
    int8_independent = independent["ORT int8"]["encoder"]
    goals = {
        SPEED_GOAL: {"value": ratio, "met": ratio >= SPEED_RATIO},
        AGREEMENT_GOAL: {
            "value": {"min": int8_vs_fp32.min, "mean": int8_vs_fp32.mean},
            "met": int8_ok(int8_vs_fp32),
        },
        INDEPENDENCE_GOAL: {"value": int8_independent, "met": int8_independent},
    }
    below = int(
        (np.sum(emb["ORT int8"] * emb["ORT fp32"], axis=1) < INT8_MIN_COSINE).sum()
    )  # both are L2-normalised
    return {
        "machine": machine_info(args),
        "gpu": gpu,
        "model": {
            "dir": str(model_dir),
            "source": str(source),
            "exported_by_this_run": exported_now,
            "versions": {name: enc.version for name, enc in encoders.items()},
            "recorded_int8_ok": encoders["ORT int8"].metadata.int8_agrees(),
        },
        "texts": {"n": len(texts), "english": int(english.sum()), "chinese": int((~english).sum())},
        "calls": {"torch fp32": f"batches of {args.batch}"}
        | {name: calls(enc, args.batch, args.threads) for name, enc in encoders.items()},
        "speed_texts_per_s": speed,
        "batch_independent": independent,
        "agreement": agree,
        "int8_texts_below_min_cosine": below,
        "goals": goals,
    }


def machine_info(args: argparse.Namespace) -> dict[str, Any]:
    def ver(pkg: str) -> str | None:
        try:
            return version(pkg)
        except PackageNotFoundError:
            return None

    cpu = platform.processor() or None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "cpu": cpu,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": ver("torch"),
        "transformers": ver("transformers"),
        "onnxruntime": ver("onnxruntime") or ver("onnxruntime-gpu"),
        "tokenizers": ver("tokenizers"),
        "texts": args.texts,
        "rounds": args.rounds,
        "batch": args.batch,
        "threads": args.threads,
        "max_length": args.max_length,
    }


# --- results -----------------------------------------------------------------------------------


REPRODUCE = (
    "Reproduce: `python -m bench.encoder --texts {texts} --rounds {rounds} --batch {batch} "
    "--threads {threads}`"
)


def markdown(doc: dict[str, Any]) -> str:
    info, speed, agree = doc["machine"], doc["speed_texts_per_s"], doc["agreement"]
    vs = {"ORT fp32": agree["ORT fp32 vs torch fp32"], "ORT int8": agree["ORT int8 vs ORT fp32"]}
    rows = [
        "| variant | calls | median texts/s | min | max | x torch fp32 | "
        "cosine min / mean vs reference | batch-independent |",
        "|---|---|---:|---:|---:|---:|---|---|",
    ]
    independent = doc["batch_independent"]
    for name in VARIANTS:
        s = speed[name]
        if name in vs:
            a = vs[name]["all"]
            cos = f"{a['min']:.4f} / {a['mean']:.4f} vs {REFERENCE[name]}"
        else:
            cos = "(reference)"
        indep = (
            "-" if name not in independent else "yes" if independent[name]["encoder"] else "**no**"
        )
        rows.append(
            f"| {name} | {doc['calls'][name]} | {s['median']:,.1f} | {s['min']:,.1f} | "
            f"{s['max']:,.1f} | {s['x_torch_fp32_of_medians']:.2f} | {cos} | {indep} |"
        )
    lang_rows = [
        "| cosine per text | all min / mean | English min / mean | Chinese min / mean |",
        "|---|---|---|---|",
    ]
    for key, a in agree.items():
        cells = [f"{a[p]['min']:.4f} / {a[p]['mean']:.4f}" for p in ("all", "english", "chinese")]
        lang_rows.append(f"| {key} | {' | '.join(cells)} |")
    goal_rows = ["| goal | this run | |", "|---|---|---|"]
    for goal, g in doc["goals"].items():
        v = g["value"]
        if isinstance(v, bool):
            value = "yes" if v else "no"
        elif isinstance(v, float):
            value = f"{v:.2f}x"
        else:
            value = f"min {v['min']:.4f}, mean {v['mean']:.4f}"
        goal_rows.append(f"| {goal} | {value} | {'met' if g['met'] else '**not met**'} |")
    per_round = ", ".join(f"{v:.2f}" for v in speed["ORT int8"]["x_torch_fp32_per_round"])
    gpu = doc["gpu"]
    return "\n".join(
        [
            "# Text encoder on the CPU: torch fp32 vs ONNX Runtime fp32 and int8",
            "",
            f"{doc['texts']['n']:,} review texts ({doc['texts']['english']} English, "
            f"{doc['texts']['chinese']} Chinese), {info['rounds']} alternating rounds, "
            f"batch {info['batch']}, max_length {info['max_length']}, {info['threads']} threads, "
            f"{info['cpu_count']} CPUs ({info['cpu']}), Python {info['python']}, torch "
            f"{info['torch']}, onnxruntime {info['onnxruntime']}, {info['when']}.",
            f"Model: `{doc['model']['versions']['ORT fp32']}` (fp32), "
            f"`{doc['model']['versions']['ORT int8']}` (int8). All three mean-pool and "
            "L2-normalise; texts/s is one `encode` call per batch after one warm-up batch "
            "(a per-text variant runs each text of the batch as its own ONNX Runtime call).",
            "",
            *rows,
            "",
            f"int8 / torch fp32 per round: {per_round}.",
            "",
            *independence_lines(independent),
            "",
            *lang_rows,
            "",
            *goal_rows,
            "",
            f"int8 texts below cosine {INT8_MIN_COSINE} vs ORT fp32: "
            f"{doc['int8_texts_below_min_cosine']} of {doc['texts']['n']}. The export's recorded "
            "int8 agreement "
            + ("meets" if doc["model"]["recorded_int8_ok"] else "does not meet")
            + " the thresholds, so `TextEncoder(variant='auto')` picks "
            + ("int8" if doc["model"]["recorded_int8_ok"] else "fp32")
            + " on the CPU.",
            "",
            f"GPU: {gpu['status']} (`choose_providers('auto')` returned "
            f"`{gpu['choose_providers_auto']}`; onnxruntime providers: "
            f"{', '.join(gpu['onnxruntime_available_providers'])}; torch CUDA: "
            f"{gpu['torch_cuda_available']}).",
            "",
            REPRODUCE.format(**info),
            "",
        ]
    )


def independence_lines(independent: dict[str, dict[str, Any]]) -> list[str]:
    lines = []
    for name, r in independent.items():
        model = (
            "bit-identical"
            if r["model_one_batch"]
            else f"differ by up to {r['model_one_batch_max_abs_diff']:.4f}"
        )
        lines.append(
            f"{name}: batch-independent {'yes' if r['encoder'] else 'no'} as `TextEncoder` runs "
            f"it ({r['texts']} texts alone vs in one call); the model itself, {r['texts']} texts "
            f"in one padded batch vs alone: {model}."
        )
    return lines


# --- command line ------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.encoder",
        description="Texts/s and agreement of the text encoder on the CPU: torch fp32 vs "
        "ONNX Runtime fp32 and int8, in alternating rounds.",
    )
    parser.add_argument(
        "--texts", type=int, default=1200, help="texts, half English half Chinese (%(default)s)"
    )
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (%(default)s)")
    parser.add_argument("--batch", type=int, default=64, help="texts per call (%(default)s)")
    parser.add_argument(
        "--threads", type=int, default=2, help="torch and ONNX Runtime threads (%(default)s)"
    )
    parser.add_argument("--max-length", type=int, default=64, help="tokens per text (64)")
    parser.add_argument(
        "--model-dir",
        type=Path,
        default=MINILM_MODEL_DIR,
        help="exported encoder directory, exported first if missing (%(default)s)",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results", help="results dir")
    args = parser.parse_args(argv)
    if args.texts < 2 or args.rounds < 1 or args.batch < 1 or args.threads < 1:
        parser.error("need --texts >= 2, --rounds >= 1, --batch >= 1 and --threads >= 1")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    started = time.perf_counter()
    doc = run(args)
    doc["machine"]["seconds"] = round(time.perf_counter() - started, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "encoder.json").write_text(json.dumps(doc, indent=2) + "\n")
    (args.out / "encoder.md").write_text(markdown(doc))
    print(markdown(doc))
    print(f"wrote {args.out / 'encoder.json'} and {args.out / 'encoder.md'}", file=sys.stderr)


if __name__ == "__main__":
    main()
