"""Contrastive active learning (CAL): items the student sees differently from their labeled neighbours.

Margatina, Vernikos, Barrault & Aletras 2021, "Active Learning by Acquiring Contrastive Examples",
EMNLP. Utility of an unlabeled x: mean over its `neighbours` nearest labeled items l (Euclidean, in
embedding space) of KL(p(.|l) || p(.|x)). Close in features yet far in predictions marks a decision
boundary the embeddings alone do not show. The paper compares against the model's predictions for
the neighbours (`neighbour_probs="model"`); `"gold"` uses their decided labels instead (one-hot,
smoothed by `smoothing`), which needs `SelectionState.labels`.

The neighbours are searched block by block over the pool (one array or `Shards`) with an
`ann.Index` over the labeled rows: `backend` numpy or faiss, exact, or IVF with `nprobe` (the
nearest labeled rows in the probed cells).
"""
from __future__ import annotations

import numpy as np

from .ann import Index, check_backend, plan
from .base import EMBEDDINGS, Scores, SelectionState, StrategyParamError, require, top_k_unlabeled
from .registry import register
from .shards import blocks


@register
class CAL:
    name = "cal"
    needs = frozenset({EMBEDDINGS})

    def __init__(self, neighbours: int = 10, neighbour_probs: str = "model", smoothing: float = 0.1,
                 backend: str = "auto", nprobe: int | None = None):
        if not isinstance(neighbours, int) or neighbours < 1:
            raise StrategyParamError("neighbours", f"must be a positive integer, got {neighbours!r}")
        if neighbour_probs not in ("model", "gold"):
            raise StrategyParamError("neighbour_probs", f"must be 'model' or 'gold', got {neighbour_probs!r}")
        if not 0 <= smoothing < 1:
            raise StrategyParamError("smoothing", f"must be in [0, 1), got {smoothing!r}")
        self.neighbours, self.neighbour_probs, self.smoothing = neighbours, neighbour_probs, float(smoothing)
        self.backend, self.nprobe = check_backend(backend, nprobe), nprobe

    def _reference(self, scores: Scores, state: SelectionState) -> tuple[np.ndarray, np.ndarray]:
        """Labeled rows to compare with and their class distributions."""
        if self.neighbour_probs == "model":
            rows = state.labeled_indices
            return rows, scores.probs[rows].astype(np.float64)
        if state.labels is None:
            raise ValueError("strategy 'cal' with neighbour_probs 'gold' needs the decided labels (SelectionState.labels)")
        rows = np.flatnonzero(state.labels >= 0)
        c = scores.probs.shape[1]
        dist = np.full((len(rows), c), self.smoothing / c)
        dist[np.arange(len(rows)), state.labels[rows]] += 1.0 - self.smoothing
        return rows, dist

    def utility(self, scores: Scores, state: SelectionState) -> np.ndarray:
        """KL to the labeled neighbours for unlabeled items; 0 for labeled ones and when nothing is labeled."""
        utility = np.zeros(scores.n)
        rows, reference = self._reference(scores, state)
        unlabeled = state.unlabeled_indices
        if len(rows) == 0 or len(unlabeled) == 0:
            return utility
        emb = require(scores, self.name, EMBEDDINGS)
        # The seed only shapes IVF's cells; fixed, so the utility stays a function of the scores.
        index = Index(emb[rows], plan(self.backend, self.nprobe, len(unlabeled), len(rows)), seed=0)
        for start, block in blocks(emb):
            local = np.flatnonzero(~state.labeled[start:start + len(block)])
            if len(local) == 0:
                continue
            near = index.search(block, self.neighbours)[1][local]  # the whole block: no copy of its candidates
            q = np.clip(scores.probs[start + local].astype(np.float64), 1e-12, None)[:, None, :]  # (b, 1, c)
            p = reference[np.maximum(near, 0)]  # (b, K, c); -1 = IVF found fewer than K: not counted
            kl = (p * (np.log(np.clip(p, 1e-12, None)) - np.log(q))).sum(axis=-1)
            found = near >= 0
            utility[start + local] = (kl * found).sum(axis=1) / np.maximum(found.sum(axis=1), 1)
        return utility

    def select(self, scores: Scores, state: SelectionState, k: int, rng: np.random.Generator) -> np.ndarray:
        return top_k_unlabeled(self.utility(scores, state), state, k, rng)
