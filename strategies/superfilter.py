"""Superfiltering: IFD from a small scorer model keeps the top fraction, then k-means spreads the batch.

Li et al. 2024, "Superfiltering: Weak-to-Strong Data Filtering for Fast Instruction-Tuning", ACL: a
small model's IFD ranks pairs nearly as a large model's does (GPT-2 filtering data for LLaMA 2), so
the cheap causal student can score the pool. Their diverse variant adds a diversity step on top of
the IFD filter; here it is k-means on the student's embeddings, one pair per cluster (the pair
nearest each centre, Nguyen & Smeulders 2004, "Active learning using pre-clustering", ICML).
"""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from .base import EMBEDDINGS, IFD, Scores, SelectionState, StrategyParamError, require
from .diversity import KMeansSampling
from .ifd import check_flag, eligible, ifd_utility
from .registry import register


@register
class Superfilter:
    """Keep the `fraction` of unlabeled pairs with the highest IFD below 1 (at least k of them), then take
    the pair nearest each of k k-means centres among those, largest clusters first.

    `exclude_flagged`: pairs of IFD >= 1 (or without an IFD) are never kept (the paper drops IFD > 1),
    so fewer than k may come back; otherwise they rank after every unflagged pair.
    """

    name = "superfilter"
    needs = frozenset({IFD, EMBEDDINGS})

    def __init__(self, fraction: float = 0.1, exclude_flagged: bool = False, batch_size: int = 4096,
                 max_iter: int = 20):
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction <= 1:
            raise StrategyParamError("fraction", f"must be a number in (0, 1], got {fraction!r}")
        self.fraction, self.exclude_flagged = float(fraction), check_flag(exclude_flagged)
        self.kmeans = KMeansSampling(pick="nearest", batch_size=batch_size, max_iter=max_iter)

    def select(self, scores: Scores, state: SelectionState, k: int, rng: np.random.Generator) -> np.ndarray:
        require(scores, self.name, EMBEDDINGS)
        allowed = eligible(scores, state, self.name, self.exclude_flagged)
        candidates = allowed.unlabeled_indices
        keep = min(len(candidates), max(k, math.ceil(self.fraction * len(candidates))))
        if keep <= 0 or k <= 0:
            return np.empty(0, dtype=np.int64)
        utility = ifd_utility(require(scores, self.name, IFD))[candidates]
        order = np.lexsort((rng.random(len(candidates)), -utility))  # ties at random
        filtered = np.ones_like(state.labeled)
        filtered[candidates[order[:keep]]] = False
        return self.kmeans.select(scores, replace(state, labeled=filtered), k, rng)
