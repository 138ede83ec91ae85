"""Review sentiment: per-language softmax heads over the embedding and the text itself.

The head maps a review (its text, and the encoder's unit embedding of that text) to
probabilities of ``negative``, ``neutral`` and ``positive``. It is trained on real
labeled English and Chinese reviews (:mod:`memberstream.ml.training.sentiment`).

Why the text as well as the embedding: on real reviews a linear probe of the
multilingual encoder's embedding tops out around 0.80 (Chinese) / 0.84 (English)
binary accuracy, and words the encoder smooths over ("退货", "not worth", "真香")
carry much of the verdict. So each language's logits add up:

- the embedding times that language's weights (the two languages share the
  encoder's space; the weights are fitted jointly, see the trainer);
- hashed n-grams of the text: English word unigrams and bigrams, Chinese
  character 1-3-grams (no segmenter needed), each language in its own half of the
  table, hashed with :func:`zlib.crc32` so any Python computes the same buckets;
- for English, four lexicon features from the VADER sentiment lexicon
  (vaderSentiment 3.3.2, MIT, C.J. Hutto), stored inside the head: a lexicon
  score with negation and "but" handling, the positive and negative shares, and
  the share of words the lexicon knows.

A text's language is ``zh`` when the project's language detector says Chinese, else ``en``
(English weights also serve texts in other languages).

The head is no longer a pure graph of the embedding, so the ONNX copy of the
earlier embedding-only head is gone: the head is one file, ``sentiment_head.npz``,
read with numpy alone, written byte for byte deterministically (fixed zip
timestamps, fixed array order), and its version is ``sentiment@`` plus the first
12 hex digits of that file's sha256. A model directory that still holds the old
pair (``sentiment_head.onnx`` + an npz recording its sha256) loads as an
embedding-only head with the old version string.

Each row is computed on its own (embedding part with
:func:`memberstream.domain.vectors.rowwise_dot`, n-gram part row by row), so a
review's probabilities are bit-identical whatever batch it arrived in.
"""

from __future__ import annotations

import hashlib
import io
import math
import re
import unicodedata
import zipfile
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from memberstream.domain.language import detect_language
from memberstream.domain.vectors import rowwise_dot, softmax

LABELS: tuple[str, ...] = ("negative", "neutral", "positive")
NEGATIVE, NEUTRAL, POSITIVE = range(3)
LANGUAGES: tuple[str, ...] = ("en", "zh")
EN, ZH = range(2)
WEIGHTS_FILE = "sentiment_head.npz"
LEGACY_ONNX_FILE = "sentiment_head.onnx"
SENTIMENT_FILE = WEIGHTS_FILE
FORMAT = "memberstream-sentiment-2"
DEFAULT_BUCKETS = 1 << 18
"""Rows of the n-gram table; English uses the first half, Chinese the second."""
LEXICON_FEATURES = 4
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
_RETRAIN = "retrain it with `memberstream models train-sentiment`"

# English tokens: words (with an inner apostrophe: "don't") and ! / ?.
_EN_TOKEN = re.compile(r"[^\W_]+(?:'[^\W_]+)*|[!?]")
_SPACE = re.compile(r"\s+")
_NEGATION_WORDS = (
    "not no never none nobody nothing neither nor nowhere cannot without hardly barely "
    "rarely seldom isn't aren't wasn't weren't don't doesn't didn't won't wouldn't can't "
    "couldn't shouldn't hasn't haven't hadn't ain't isnt arent wasnt werent dont doesnt "
    "didnt wont wouldnt cant couldnt shouldnt hasnt havent hadnt aint"
)
_NEGATIONS = frozenset(_NEGATION_WORDS.split())
_CONTRAST = frozenset({"but", "however", "although", "though", "yet"})
_NEGATION_WINDOW = 3
_NEGATION_FACTOR = -0.74  # VADER's
_BEFORE_CONTRAST, _AFTER_CONTRAST = 0.5, 1.5  # VADER's "but" rule
_EXCLAMATION, _MAX_EXCLAMATIONS = 0.292, 4  # VADER's punctuation emphasis
_COMPOUND_ALPHA = 15.0  # VADER's normalisation s / sqrt(s^2 + alpha)


def label_for_rating(rating: int) -> int:
    """The weak label of a star rating: 1-2 negative, 3 neutral, 4-5 positive."""
    if not 1 <= rating <= 5:
        raise ValueError(f"rating must be 1..5, got {rating}")
    if rating <= 2:
        return NEGATIVE
    return NEUTRAL if rating == 3 else POSITIVE


def polarity(probs: np.ndarray) -> float:
    """p(positive) - p(negative) of one row of probabilities, in [-1, 1]."""
    p = np.asarray(probs, dtype=np.float64)
    if p.shape != (len(LABELS),):
        raise ValueError(f"polarity needs one row of {len(LABELS)} probabilities, got {p.shape}")
    return float(np.clip(p[POSITIVE] - p[NEGATIVE], -1.0, 1.0))


# --- text features -----------------------------------------------------------------------


def language_of(text: str) -> int:
    """``ZH`` for Chinese, else ``EN`` (the head's two languages), by the project's one
    language detector (:func:`memberstream.domain.language.detect_language`)."""
    return ZH if detect_language(text) == "zh" else EN


def normalize_text(text: str) -> str:
    """NFKC (full-width to half-width), lower case, one space between words."""
    text = unicodedata.normalize("NFKC", text).lower().replace("\u2019", "'")
    return _SPACE.sub(" ", text).strip()


def english_tokens(text: str) -> list[str]:
    return _EN_TOKEN.findall(normalize_text(text))


def _grams(units: Sequence[str], low: int, high: int, sep: str) -> set[str]:
    out: set[str] = set()
    for n in range(low, high + 1):
        out.update(sep.join(units[i : i + n]) for i in range(len(units) - n + 1))
    return out


def ngram_features(
    text: str,
    buckets: int = DEFAULT_BUCKETS,
    en_ngrams: tuple[int, int] = (1, 2),
    zh_ngrams: tuple[int, int] = (1, 3),
) -> tuple[np.ndarray, np.ndarray]:
    """The text's hashed n-grams: sorted distinct bucket indices and their values.

    Binary presence, L2-normalised. English: word n-grams in ``[0, buckets/2)``;
    Chinese: character n-grams (spaces included) in ``[buckets/2, buckets)``.
    """
    half = buckets // 2
    if language_of(text) == ZH:
        grams = _grams(list(normalize_text(text)), *zh_ngrams, sep="")
        offset = half
    else:
        grams = _grams(english_tokens(text), *en_ngrams, sep=" ")
        offset = 0
    if not grams:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)
    idx = np.unique(
        np.fromiter((offset + zlib_crc32(g) % half for g in grams), np.int64, len(grams))
    )
    return idx, np.full(len(idx), 1.0 / math.sqrt(len(idx)))


def zlib_crc32(gram: str) -> int:
    """The bucket hash: CRC-32 of the UTF-8 n-gram (stable across Python versions)."""
    return zlib.crc32(gram.encode("utf-8"))


def lexicon_features(text: str, lexicon: Mapping[str, float]) -> np.ndarray:
    """Four lexicon features of an English text, VADER-style, float64 (4,).

    Each known word's valence (-4..+4), flipped and damped after a negation in the
    three words before it; words before the last "but"/"however" count half, words
    after it 1.5 times. Returns [s / sqrt(s^2 + 15) of the sum s with "!" emphasis,
    positive share, negative share, share of words in the lexicon].
    """
    toks = english_tokens(text)
    if not toks:
        return np.zeros(LEXICON_FEATURES)
    contrast = max((i for i, t in enumerate(toks) if t in _CONTRAST), default=-1)
    total = pos = neg = 0.0
    known = 0
    for i, tok in enumerate(toks):
        value = lexicon.get(tok)
        if value is None:
            continue
        known += 1
        if any(w in _NEGATIONS for w in toks[max(0, i - _NEGATION_WINDOW) : i]):
            value *= _NEGATION_FACTOR
        if contrast >= 0:
            value *= _BEFORE_CONTRAST if i < contrast else _AFTER_CONTRAST
        total += value
        pos += max(value, 0.0)
        neg += max(-value, 0.0)
    emphasis = min(text.count("!"), _MAX_EXCLAMATIONS) * _EXCLAMATION
    total += math.copysign(emphasis, total) if total else 0.0
    compound = total / math.sqrt(total * total + _COMPOUND_ALPHA)
    return np.array([compound, pos / (1 + pos + neg), neg / (1 + pos + neg), known / len(toks)])


# --- the head ----------------------------------------------------------------------------


class SentimentHead:
    """``softmax(x @ W[l] + f_lex @ U[l] + ngrams @ V + b[l])`` for a text of language ``l``.

    ``weights`` (L, dim, 3) or (dim, 3) for all languages; ``bias`` (L, 3) or (3,).
    Without ``ngram_weights`` / ``lexicon`` the head is a plain linear head over
    the embedding (texts are still required, to keep one call signature).
    """

    def __init__(
        self,
        weights: np.ndarray,
        bias: np.ndarray,
        version: str = "sentiment@in-memory",
        *,
        ngram_weights: np.ndarray | None = None,
        lexicon_weights: np.ndarray | None = None,
        lexicon: Mapping[str, float] | None = None,
        en_ngrams: tuple[int, int] = (1, 2),
        zh_ngrams: tuple[int, int] = (1, 3),
    ) -> None:
        k, n_lang = len(LABELS), len(LANGUAGES)
        w = np.asarray(weights, dtype=np.float32)
        b = np.asarray(bias, dtype=np.float32)
        if w.ndim == 2:
            w = np.broadcast_to(w, (n_lang, *w.shape)).copy()
        if b.ndim == 1:
            b = np.broadcast_to(b, (n_lang, *b.shape)).copy()
        if w.ndim != 3 or w.shape[0] != n_lang or w.shape[2] != k or b.shape != (n_lang, k):
            raise ValueError(
                f"sentiment head needs W ({n_lang}, dim, {k}) or (dim, {k}) and b "
                f"({n_lang}, {k}) or ({k},), got {w.shape}, {b.shape}"
            )
        v = None if ngram_weights is None else np.asarray(ngram_weights, dtype=np.float32)
        if v is not None and (v.ndim != 2 or v.shape[1] != k or v.shape[0] < 2):
            raise ValueError(f"n-gram weights must be (buckets, {k}), got {v.shape}")
        u = np.zeros((n_lang, LEXICON_FEATURES, k), dtype=np.float32)
        if lexicon_weights is not None:
            u = np.asarray(lexicon_weights, dtype=np.float32)
            if u.shape != (n_lang, LEXICON_FEATURES, k):
                raise ValueError(
                    f"lexicon weights must be ({n_lang}, {LEXICON_FEATURES}, {k}), got {u.shape}"
                )
        for name, arr in (("W", w), ("b", b), ("U", u), ("V", v)):
            if arr is not None and not np.all(np.isfinite(arr)):
                raise ValueError(f"sentiment head weights must be finite ({name})")
        self.weights, self.bias, self.lexicon_weights, self.ngram_weights = w, b, u, v
        # Rounded to float32 as the file stores them, so a saved head predicts the same.
        self.lexicon: dict[str, float] = {
            w: float(np.float32(v)) for w, v in (lexicon or {}).items()
        }
        self.en_ngrams: tuple[int, int] = (int(en_ngrams[0]), int(en_ngrams[1]))
        self.zh_ngrams: tuple[int, int] = (int(zh_ngrams[0]), int(zh_ngrams[1]))
        self.version = version
        self._w64 = w.astype(np.float64)
        self._b64 = b.astype(np.float64)
        self._u64 = u.astype(np.float64)
        self._v64 = None if v is None else v.astype(np.float64)

    @property
    def dim(self) -> int:
        return int(self.weights.shape[1])

    @property
    def buckets(self) -> int:
        return 0 if self.ngram_weights is None else int(self.ngram_weights.shape[0])

    def text_logits(self, text: str, language: int) -> np.ndarray:
        """The part of a text's logits that comes from its words (n-grams, lexicon)."""
        out = np.zeros(len(LABELS))
        if self._v64 is not None:
            idx, val = ngram_features(text, self.buckets, self.en_ngrams, self.zh_ngrams)
            if len(idx):
                out += np.einsum("j,jk->k", val, self._v64[idx], optimize=False)
        if self.lexicon and language == EN:
            feats = lexicon_features(text, self.lexicon)
            out += np.einsum("f,fk->k", feats, self._u64[language], optimize=False)
        return out

    def logits(self, embeddings: np.ndarray, texts: Sequence[str]) -> np.ndarray:
        x = np.asarray(embeddings, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(
                f"sentiment head expects embeddings of shape (n, {self.dim}), got {x.shape}"
            )
        if isinstance(texts, str) or len(texts) != x.shape[0]:
            raise ValueError(
                f"sentiment head needs one text per embedding row: {x.shape[0]} rows, "
                f"{'a str' if isinstance(texts, str) else len(texts)} texts"
            )
        langs = np.array([language_of(t) for t in texts], dtype=np.int64)
        out = np.zeros((x.shape[0], len(LABELS)))
        for lang in range(len(LANGUAGES)):
            rows = np.flatnonzero(langs == lang)
            if len(rows):
                out[rows] = rowwise_dot(x[rows], self._w64[lang].T) + self._b64[lang]
        for i, text in enumerate(texts):
            out[i] += self.text_logits(text, int(langs[i]))
        return out

    def predict_proba(self, embeddings: np.ndarray, texts: Sequence[str]) -> np.ndarray:
        """Probabilities (n, 3) in label order, float64; each row independent of the batch.

        ``embeddings`` (n, dim) are the encoder's rows for ``texts`` (n strings).
        """
        return softmax(self.logits(embeddings, texts))

    def arrays(self) -> dict[str, np.ndarray]:
        """Everything the file holds, in file order."""
        words = sorted(self.lexicon)
        return {
            "format": np.array(FORMAT),
            "labels": np.array(LABELS),
            "languages": np.array(LANGUAGES),
            "W": self.weights,
            "b": self.bias,
            "U": self.lexicon_weights,
            "V": (
                self.ngram_weights
                if self.ngram_weights is not None
                else np.zeros((0, len(LABELS)), dtype=np.float32)
            ),
            "en_ngrams": np.array(self.en_ngrams, dtype=np.int64),
            "zh_ngrams": np.array(self.zh_ngrams, dtype=np.int64),
            "lexicon_words": np.array(words, dtype=str) if words else np.zeros(0, dtype="<U1"),
            "lexicon_values": np.array([self.lexicon[w] for w in words], dtype=np.float32),
        }

    def file_bytes(self) -> bytes:
        """The bytes of ``sentiment_head.npz``: the same weights give the same bytes."""
        return _npz_bytes(**self.arrays())

    def content_version(self) -> str:
        """The version the head will have once saved: ``sentiment@`` + sha256[:12] of its file."""
        return f"sentiment@{hashlib.sha256(self.file_bytes()).hexdigest()[:12]}"

    def save(self, model_dir: str | Path) -> Path:
        """Write ``sentiment_head.npz`` into ``model_dir`` (and drop a stale ONNX head)."""
        directory = Path(model_dir)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / WEIGHTS_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(self.file_bytes())
        tmp.replace(path)
        (directory / LEGACY_ONNX_FILE).unlink(missing_ok=True)
        return path


def _npz_bytes(**arrays: np.ndarray | str) -> bytes:
    """``np.savez`` with fixed zip timestamps, so the same arrays give the same bytes."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, value in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.asarray(value), allow_pickle=False)
            archive.writestr(zipfile.ZipInfo(f"{name}.npy", _ZIP_TIME), buf.getvalue())
    return out.getvalue()


def load_sentiment_head(
    model_dir: str | Path, expected_dim: int | None = None
) -> SentimentHead | None:
    """The head saved in ``model_dir``, or None when it has none.

    The version is ``sentiment@`` and the first 12 hex digits of the npz's sha256
    (of the ONNX graph's, for an old embedding-only head). With ``expected_dim``
    (the encoder's), a head trained on another encoder is refused.
    """
    directory = Path(model_dir)
    npz, onnx = directory / WEIGHTS_FILE, directory / LEGACY_ONNX_FILE
    if not npz.is_file():
        if onnx.is_file():
            raise ValueError(f"sentiment head {onnx}: {npz.name} is missing beside it; {_RETRAIN}")
        return None
    raw = npz.read_bytes()
    try:
        with np.load(io.BytesIO(raw), allow_pickle=False) as z:
            arrays = {name: z[name] for name in z.files}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise ValueError(f"sentiment head {npz}: cannot load ({exc}); {_RETRAIN}") from None
    try:
        if "onnx_sha256" in arrays:
            head = _legacy_head(arrays, onnx, npz)
        else:
            head = _head_from_arrays(arrays, f"sentiment@{hashlib.sha256(raw).hexdigest()[:12]}")
    except KeyError as exc:
        raise ValueError(f"sentiment head {npz}: no array {exc}; {_RETRAIN}") from None
    if expected_dim is not None and head.dim != expected_dim:
        raise ValueError(
            f"sentiment head {npz} takes {head.dim}-d embeddings but the encoder gives "
            f"{expected_dim}-d: it was trained on another encoder; {_RETRAIN}"
        )
    return head


def _head_from_arrays(a: dict[str, np.ndarray], version: str) -> SentimentHead:
    if str(a["format"]) != FORMAT:
        raise ValueError(f"sentiment head format {a['format']!s}, expected {FORMAT}; {_RETRAIN}")
    if tuple(a["labels"].tolist()) != LABELS or tuple(a["languages"].tolist()) != LANGUAGES:
        raise ValueError(f"sentiment head labels/languages differ from {LABELS}/{LANGUAGES}")
    words = a["lexicon_words"].tolist()
    lexicon = dict(zip(words, a["lexicon_values"].astype(np.float64).tolist(), strict=True))
    v = a["V"]
    en, zh = a["en_ngrams"].tolist(), a["zh_ngrams"].tolist()
    return SentimentHead(
        a["W"],
        a["b"],
        version=version,
        ngram_weights=v if v.shape[0] else None,
        lexicon_weights=a["U"],
        lexicon=lexicon,
        en_ngrams=(int(en[0]), int(en[1])),
        zh_ngrams=(int(zh[0]), int(zh[1])),
    )


def _legacy_head(a: dict[str, np.ndarray], onnx: Path, npz: Path) -> SentimentHead:
    """An embedding-only head written by the earlier code (ONNX graph + npz)."""
    if not onnx.is_file():
        raise ValueError(f"sentiment head {npz}: {onnx.name} is missing beside it; {_RETRAIN}")
    digest = hashlib.sha256(onnx.read_bytes()).hexdigest()
    if str(a["onnx_sha256"]) != digest:
        raise ValueError(f"sentiment head {npz} was not written with {onnx.name}; {_RETRAIN}")
    return SentimentHead(a["W"], a["b"], version=f"sentiment@{digest[:12]}")
