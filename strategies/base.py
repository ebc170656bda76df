"""The one interface every query strategy implements.

Strategies see numbers only (probabilities, embeddings, masks, a generator),
never a model or the store, so each one is testable with hand-made arrays.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class Scores:
    """What the student hands a strategy, computed once per round.

    Rows are pool positions (0..n-1), the same order as `SelectionState.labeled`.
    """

    probs: np.ndarray  # (n, c) class probabilities, rows sum to 1
    embeddings: np.ndarray | None = None  # (n, d) pooled hidden states

    def __post_init__(self) -> None:
        if self.probs.ndim != 2:
            raise ValueError(f"probs must be 2-D (n, c), got shape {self.probs.shape}")
        if self.embeddings is not None and len(self.embeddings) != len(self.probs):
            raise ValueError("embeddings and probs must have the same number of rows")

    @property
    def n(self) -> int:
        return int(self.probs.shape[0])


@dataclass(frozen=True)
class SelectionState:
    """The run's state a strategy may consult: what is labeled, which round, past metrics."""

    labeled: np.ndarray  # (n,) bool: already labeled or already queued for labeling
    round: int = 0
    history: tuple[dict, ...] = field(default_factory=tuple)  # metrics of finished rounds

    @property
    def unlabeled_indices(self) -> np.ndarray:
        return np.flatnonzero(~self.labeled)


@runtime_checkable
class QueryStrategy(Protocol):
    """select() returns pool-wide indices of the k items to label next, most informative first."""

    name: str

    def select(self, scores: Scores, state: SelectionState, k: int, rng: np.random.Generator) -> np.ndarray: ...


def top_k_unlabeled(utility: np.ndarray, state: SelectionState, k: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of the k unlabeled items with the highest utility; ties broken at random.

    Random tie-breaking (rather than by position) keeps a strategy from drifting
    towards the head of the pool when many scores are equal, as on a cold start.
    """
    candidates = state.unlabeled_indices
    k = min(k, len(candidates))
    if k <= 0:
        return np.empty(0, dtype=np.int64)
    tiebreak = rng.random(len(candidates))
    order = np.lexsort((tiebreak, -utility[candidates]))
    return candidates[order[:k]].astype(np.int64)
