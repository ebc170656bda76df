"""Candidate subsampling: let any strategy look at a few thousand unlabeled items instead of the whole pool.

Any strategy takes the params `subsample` (how many unlabeled candidates), `subsample_method`
(`random`, or `seals`: the nearest unlabeled neighbours of the labeled items, Coleman et al. 2022,
"Similarity Search for Efficient Active Learning and Search of Rare Concepts", AAAI) and
`subsample_neighbours` (neighbours per labeled item for seals). The inner strategy then runs on the
candidates plus the labeled items (core-set and CAL measure distances to those), so a quadratic
strategy costs what it costs on `subsample` items, whatever the pool size.

SEALS searches from at most ceil(subsample / subsample_neighbours) labeled items (a random choice when
there are more), so its exact (brute-force) neighbour search costs about subsample / neighbours * n * d;
the paper keeps an approximate index instead, worth it when the same pool is queried for many rounds.
"""
from __future__ import annotations

import numpy as np

from .base import EMBEDDINGS, QueryStrategy, Scores, SelectionState, StrategyParamError, mc_passes_of, needs_of, require

METHODS = ("random", "seals")


def nearest_unlabeled(emb: np.ndarray, labeled: np.ndarray, queries: np.ndarray, neighbours: int,
                      chunk: int = 65536) -> np.ndarray:
    """Pool rows of the `neighbours` nearest unlabeled items of each query row (exact Euclidean).

    Chunked matmuls in the pool's dtype over the whole pool with labeled rows masked, so no copy of
    the unlabeled part of a large pool is made; a running top-n per query merges the chunks.
    """
    q = emb[queries]
    best_d = np.full((len(q), 0), np.inf, dtype=np.float64)
    best_i = np.zeros((len(q), 0), dtype=np.int64)
    for start in range(0, len(emb), chunk):
        block = emb[start:start + chunk]
        # |x - q|^2 = |x|^2 - 2 q.x + |q|^2; the last term is the same for every x of a query: left out.
        d = np.einsum("ij,ij->i", block, block)[None, :] - 2.0 * (q @ block.T)
        d[:, labeled[start:start + chunk]] = np.inf
        take = min(neighbours, d.shape[1])
        part = np.argpartition(d, take - 1, axis=1)[:, :take]
        best_d = np.concatenate([best_d, np.take_along_axis(d, part, axis=1)], axis=1)
        best_i = np.concatenate([best_i, part + start], axis=1)
        if best_d.shape[1] > neighbours:
            keep = np.argpartition(best_d, neighbours - 1, axis=1)[:, :neighbours]
            best_d, best_i = np.take_along_axis(best_d, keep, axis=1), np.take_along_axis(best_i, keep, axis=1)
    return best_i[np.isfinite(best_d)]


class Subsampled:
    def __init__(self, inner: QueryStrategy, size: int, method: str = "random", neighbours: int = 100):
        if not isinstance(size, int) or size < 1:
            raise StrategyParamError("subsample", f"must be a positive integer, got {size!r}")
        if method not in METHODS:
            raise StrategyParamError("subsample_method", f"must be one of {', '.join(METHODS)}, got {method!r}")
        if not isinstance(neighbours, int) or neighbours < 1:
            raise StrategyParamError("subsample_neighbours", f"must be a positive integer, got {neighbours!r}")
        self.inner, self.size, self.method, self.neighbours = inner, size, method, neighbours
        self.name = inner.name
        self.needs = needs_of(inner) | ({EMBEDDINGS} if method == "seals" else frozenset())
        self.mc_passes = mc_passes_of(inner)

    def candidates(self, scores: Scores, state: SelectionState, rng: np.random.Generator) -> np.ndarray:
        """`size` unlabeled pool indices, sorted; all of them when there are no more."""
        unlabeled = state.unlabeled_indices
        if len(unlabeled) <= self.size:
            return unlabeled
        labeled = state.labeled_indices
        if self.method == "random" or len(labeled) == 0:
            return np.sort(rng.choice(unlabeled, size=self.size, replace=False))
        emb = require(scores, f"{self.name} (seals subsampling)", EMBEDDINGS)
        queries = -(-self.size // self.neighbours)
        if len(labeled) > queries:
            labeled = rng.choice(labeled, size=queries, replace=False)
        found = np.unique(nearest_unlabeled(emb, state.labeled, labeled, self.neighbours))
        if len(found) >= self.size:
            return np.sort(rng.choice(found, size=self.size, replace=False))
        rest = np.setdiff1d(unlabeled, found, assume_unique=True)
        return np.sort(np.concatenate([found, rng.choice(rest, size=self.size - len(found), replace=False)]))

    def select(self, scores: Scores, state: SelectionState, k: int, rng: np.random.Generator) -> np.ndarray:
        rows = np.concatenate([self.candidates(scores, state, rng), state.labeled_indices])
        chosen = self.inner.select(scores.take(rows), state.take(rows), k, rng)
        return rows[chosen].astype(np.int64)
