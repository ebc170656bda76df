"""Random sampling: the baseline every other strategy has to beat, and the cold start of round 0."""
from __future__ import annotations

import numpy as np

from .base import Scores, SelectionState
from .registry import register


@register
class RandomSampling:
    """Uniform over the unlabeled items, from the generator passed in (so a run replays exactly).

    Passive learning as an active-learning baseline: Lewis & Gale 1994, "A sequential algorithm
    for training text classifiers", SIGIR; Settles 2009, "Active Learning Literature Survey",
    Computer Sciences Technical Report 1648, University of Wisconsin-Madison.
    """

    name = "random"

    def select(self, scores: Scores, state: SelectionState, k: int, rng: np.random.Generator) -> np.ndarray:
        candidates = state.unlabeled_indices
        k = min(k, len(candidates))
        if k <= 0:
            return np.empty(0, dtype=np.int64)
        return rng.choice(candidates, size=k, replace=False).astype(np.int64)
