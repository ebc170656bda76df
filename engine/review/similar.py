"""Already-labeled items that look like the one under review, by TF-IDF cosine (no stored embeddings needed)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer


@dataclass(frozen=True)
class Neighbour:
    item_id: str
    text: str
    label: str
    source: str
    score: float


class SimilarIndex:
    """Built once per set of labels; rebuilding costs milliseconds for thousands of texts."""

    def __init__(self, rows: Sequence[tuple[str, str, str, str]]):
        self.rows = list(rows)  # (item_id, text, label, source)
        self._vectorizer = TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), min_df=1)
        self._matrix = self._vectorizer.fit_transform([r[1] for r in self.rows]) if self.rows else None

    def nearest(self, text: str, k: int = 3, exclude: str | None = None) -> list[Neighbour]:
        if self._matrix is None:
            return []
        scores = (self._matrix @ self._vectorizer.transform([text]).T).toarray().ravel()
        found = []
        for index in np.argsort(-scores, kind="stable"):
            if scores[index] <= 0 or len(found) == k:
                break
            item_id, row_text, label, source = self.rows[index]
            if item_id != exclude:
                found.append(Neighbour(item_id, row_text, label, source, float(scores[index])))
        return found
