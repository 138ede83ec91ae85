"""A deterministic stand-in for the text encoder, for tests of the code around it."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence

import numpy as np

DIM = 16


class WordHashEncoder:
    """A deterministic stand-in for the text encoder: each word hashes to a random unit
    vector, a text is their normalised sum. Records every call."""

    version = "word-hash@test"

    def __init__(self, delay_s: float = 0.0) -> None:
        self.calls: list[list[str]] = []
        self.delay_s = delay_s

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        self.calls.append(list(texts))
        if self.delay_s:
            time.sleep(self.delay_s)  # a slow model: blocks its thread, not the loop
        out = np.zeros((len(texts), DIM), np.float32)
        for i, text in enumerate(texts):
            for word in text.lower().split():
                seed = int.from_bytes(hashlib.sha256(word.encode()).digest()[:4], "little")
                out[i] += np.random.default_rng(seed).normal(size=DIM)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms > 0, norms, 1)

    @property
    def texts_encoded(self) -> int:
        return sum(len(c) for c in self.calls[1:])  # the first call embeds the taxonomy
