"""``memberstream score`` and ``memberstream summarize``: the worker's text models on files."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING

import click

from memberstream.cli.commands.context import settings_from
from memberstream.errors import InputError, ModelError

if TYPE_CHECKING:
    from memberstream.config import Settings
    from memberstream.ml.inference import InferenceStage

_IN = click.Path(exists=True, dir_okay=False, path_type=Path, allow_dash=True)
_OUT = click.Path(dir_okay=False, path_type=Path, allow_dash=True)


def _stage(settings: Settings) -> InferenceStage:
    """The worker's inference stage; an unusable model is a ModelError via the CLI's
    error mapping (``cli.commands.context.explain``)."""
    from memberstream.ml.inference import stage_from_settings

    if not settings.inference.enabled:
        raise ModelError("inference.enabled is false: there is no text model to run")
    stage = stage_from_settings(settings)
    assert stage is not None
    return stage


def _lines(path: Path) -> list[bytes]:
    if str(path) == "-":
        return sys.stdin.buffer.read().splitlines()
    return path.read_bytes().splitlines()


@contextlib.contextmanager
def _output(path: Path | None) -> Iterator[IO[bytes]]:
    """stdout, or ``path`` written through a temporary file renamed into place at the end."""
    if path is None or str(path) == "-":
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@click.command(
    short_help="Score texts from a JSONL file: language, sentiment, top categories.",
    help="""Score texts with the worker's inference stage (encoder, category scoring,
    sentiment head): INPUT has one JSON object per line, {"id": ..., "text": ...}
    (other fields are ignored; "-" reads stdin).

    Writes one JSON object per input line, in order: id, language (en, zh or
    other), sentiment (probabilities of negative, neutral, positive), the top
    taxonomy categories with their probabilities, and model_version. A bad line
    stops the run with its line number; --output is written only when all lines
    were scored.
    """,
)
@click.option("--input", "input_path", type=_IN, required=True, help="JSONL file (or -)")
@click.option("--output", "output_path", type=_OUT, help="JSONL file [default: stdout]")
@click.option("--top", type=click.IntRange(1, 50), default=3, show_default=True,
              help="categories per text")  # fmt: skip
@click.pass_context
def score(ctx: click.Context, input_path: Path, output_path: Path | None, top: int) -> None:
    from memberstream.core.text_batch import (
        InputLineError,
        TextToScore,
        read_jsonl,
        score_texts,
        write_jsonl,
    )

    lines = _lines(input_path)
    try:
        records = list(read_jsonl(lines, TextToScore))
    except InputLineError as exc:
        raise InputError(f"{input_path}: {exc}") from exc
    stage = _stage(settings_from(ctx))
    try:
        with (
            click.progressbar(length=len(records), label="scoring", file=sys.stderr) as bar,
            _output(output_path) as out,
        ):
            n = write_jsonl(score_texts(stage, records, top=top, on_chunk=bar.update), out)
    finally:
        stage.close()
    click.echo(f"scored {n} texts with {stage.model_version}", err=True)


@click.command(
    short_help="Summarize product reviews from a JSONL file.",
    help="""Summarize reviews per product with the summarizer the product agent runs.

    INPUT has one review per line: {"product_id": ..., "review_id": ..., "text": ...,
    "rating": 1-5 (optional), "language": "en"/"zh" (optional)}. A rating that is
    absent is inferred from the text's sentiment; a review id repeated for a product
    counts once. Writes one JSON object per product (in order of first appearance):
    product_id, summary (the text), pros and cons (text, aspect, review_ids),
    language, review_ids, sentiment counts and model_version. Like the worker, a
    product's summary is made from its most recent summary.max_reviews reviews
    (the last ones in the file).
    """,
)
@click.option("--input", "input_path", type=_IN, required=True, help="JSONL file (or -)")
@click.option("--output", "output_path", type=_OUT, help="JSONL file [default: stdout]")
@click.pass_context
def summarize(ctx: click.Context, input_path: Path, output_path: Path | None) -> None:
    from memberstream.core.summaries import build_summarizer
    from memberstream.core.text_batch import (
        InputLineError,
        ReviewToSummarize,
        group_reviews,
        read_jsonl,
        summarize_products,
        write_jsonl,
    )

    lines = _lines(input_path)
    try:
        products = group_reviews(read_jsonl(lines, ReviewToSummarize))
    except InputLineError as exc:
        raise InputError(f"{input_path}: {exc}") from exc
    settings = settings_from(ctx)
    stage = _stage(settings)
    if not settings.summary.enabled:
        raise click.UsageError("summary.enabled is false in the settings")
    summarizer = build_summarizer(settings, stage)
    assert summarizer is not None
    try:
        with (
            click.progressbar(length=len(products), label="summarizing", file=sys.stderr) as bar,
            _output(output_path) as out,
        ):
            records = summarize_products(
                summarizer,
                products,
                max_reviews=settings.summary.max_reviews,
                on_product=bar.update,
            )
            n = write_jsonl(records, out)
    finally:
        stage.close()
    click.echo(f"summarized {n} products with {summarizer.version}", err=True)
