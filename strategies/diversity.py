"""Diversity sampling: spread the batch over the embedding space instead of piling it on one doubt.

All three work on `Scores.embeddings` (student pooled states or another configured source) and
with nothing labeled yet, so each can also be a cold start.
"""
from __future__ import annotations

import numpy as np
from sklearn.cluster import MiniBatchKMeans
from sklearn.metrics import pairwise_distances_argmin_min

from .base import EMBEDDINGS, Scores, SelectionState, StrategyParamError, mc_passes_of, require, top_k_unlabeled
from .uncertainty import BALD, Entropy, LeastConfidence, Margin
from .registry import register

_UNCERTAINTY = {cls.name: cls for cls in (LeastConfidence, Margin, Entropy, BALD)}


def seed_of(rng: np.random.Generator) -> int:
    """A library seed drawn from the run's generator, so sklearn's randomness replays too."""
    return int(rng.integers(2**31 - 1))


def first_per_group(groups: np.ndarray, key: np.ndarray) -> np.ndarray:
    """Row positions of the smallest key within each group (one per non-empty group)."""
    order = np.lexsort((key, groups))
    starts = np.flatnonzero(np.r_[True, groups[order][1:] != groups[order][:-1]])
    return order[starts]


def fill_up(chosen: np.ndarray, candidates: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Top up a batch to k with random other candidates (empty clusters, exhausted sampling)."""
    if len(chosen) >= k:
        return chosen[:k]
    rest = np.setdiff1d(candidates, chosen)
    return np.concatenate([chosen, rng.choice(rest, size=k - len(chosen), replace=False)])


@register
class KMeansSampling:
    """Cluster the unlabeled items into k groups (mini-batch k-means) and take one item per cluster.

    `pick="nearest"`: the item nearest each centre, largest clusters first (Nguyen & Smeulders 2004,
    "Active learning using pre-clustering", ICML). `pick="uncertain"`: the most uncertain item of each
    cluster by `uncertainty`, most uncertain first (Citovsky et al. 2021, "Batch Active Learning at
    Scale", NeurIPS, cluster-margin; Zhdanov 2019, "Diverse mini-batch Active Learning", arXiv:1901.05954).
    With nothing labeled and pick="nearest" it is the clustering cold start.
    """

    name = "kmeans"

    def __init__(self, pick: str = "nearest", uncertainty: str = "margin", batch_size: int = 4096, max_iter: int = 20):
        if pick not in ("nearest", "uncertain"):
            raise StrategyParamError("pick", f"must be 'nearest' or 'uncertain', got {pick!r}")
        if uncertainty not in _UNCERTAINTY:
            raise StrategyParamError("uncertainty", f"must be one of {', '.join(_UNCERTAINTY)}, got {uncertainty!r}")
        self.pick, self.batch_size, self.max_iter = pick, batch_size, max_iter
        self.uncertainty = _UNCERTAINTY[uncertainty]()
        self.needs = frozenset({EMBEDDINGS}) | (getattr(self.uncertainty, "needs", frozenset())
                                                if pick == "uncertain" else frozenset())
        self.mc_passes = mc_passes_of(self.uncertainty) if pick == "uncertain" else 0

    def select(self, scores: Scores, state: SelectionState, k: int, rng: np.random.Generator) -> np.ndarray:
        candidates = state.unlabeled_indices
        k = min(k, len(candidates))
        if k <= 0:
            return np.empty(0, dtype=np.int64)
        x = require(scores, self.name, EMBEDDINGS)[candidates]
        kmeans = MiniBatchKMeans(n_clusters=k, random_state=seed_of(rng), n_init=1, max_iter=self.max_iter,
                                 batch_size=self.batch_size).fit(x)
        groups = kmeans.labels_
        if self.pick == "nearest":
            sq = ((x - kmeans.cluster_centers_[groups]) ** 2).sum(axis=1)
            firsts = first_per_group(groups, sq)
            size = np.bincount(groups, minlength=k)[groups[firsts]]
            firsts = firsts[np.argsort(-size, kind="stable")]
        else:
            utility = self.uncertainty.utility(scores.take(candidates))
            firsts = first_per_group(groups, -utility)
            firsts = firsts[np.argsort(-utility[firsts], kind="stable")]
        return fill_up(candidates[firsts], candidates, k, rng).astype(np.int64)


def min_sq_distances(x: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Squared Euclidean distance from each row of x to its nearest centre (chunked by sklearn)."""
    return pairwise_distances_argmin_min(x, centres)[1].astype(np.float64) ** 2


@register
class CoreSet:
    """Greedy k-center: repeatedly take the unlabeled item farthest from every labeled or chosen item.

    Sener & Savarese 2018, "Active Learning for Convolutional Neural Networks: A Core-Set Approach",
    ICLR (the greedy 2-approximation, labeled items as the initial centres). With nothing labeled
    the first centre is a random item. k passes over the candidates, each O(n d).
    """

    name = "coreset"
    needs = frozenset({EMBEDDINGS})

    def select(self, scores: Scores, state: SelectionState, k: int, rng: np.random.Generator) -> np.ndarray:
        candidates = state.unlabeled_indices
        k = min(k, len(candidates))
        if k <= 0:
            return np.empty(0, dtype=np.int64)
        emb = require(scores, self.name, EMBEDDINGS)
        x = emb[candidates]
        labeled = state.labeled_indices
        if len(labeled):
            nearest = min_sq_distances(x, emb[labeled])
        else:
            nearest = np.full(len(x), np.finfo(np.float64).max)
            nearest[rng.integers(len(x))] = np.inf  # the random first centre
        norms = np.einsum("ij,ij->i", x, x, dtype=np.float64)
        chosen = np.empty(k, dtype=np.int64)
        for step in range(k):
            i = int(np.argmax(nearest))
            chosen[step] = i
            sq = norms + norms[i] - 2.0 * (x @ x[i]).astype(np.float64)
            np.minimum(nearest, np.maximum(sq, 0.0), out=nearest)
            nearest[chosen[:step + 1]] = -1.0
        return candidates[chosen].astype(np.int64)


@register
class InformationDensity:
    """An uncertainty utility times representativeness: (mean cosine similarity to the pool) ** beta.

    Settles & Craven 2008, "An Analysis of Active Learning Strategies for Sequence Labeling Tasks",
    EMNLP (information density). Down-weights outliers that are uncertain only because they are odd.
    The mean cosine similarity to all n items is x/|x| . mean(x/|x|): exact and O(n d), no n x n matrix.
    """

    name = "density"

    def __init__(self, uncertainty: str = "entropy", beta: float = 1.0):
        if uncertainty not in _UNCERTAINTY:
            raise StrategyParamError("uncertainty", f"must be one of {', '.join(_UNCERTAINTY)}, got {uncertainty!r}")
        if not beta >= 0:
            raise StrategyParamError("beta", f"must be >= 0, got {beta!r}")
        self.uncertainty, self.beta = _UNCERTAINTY[uncertainty](), float(beta)
        self.needs = frozenset({EMBEDDINGS}) | getattr(self.uncertainty, "needs", frozenset())
        self.mc_passes = mc_passes_of(self.uncertainty)

    def density(self, scores: Scores) -> np.ndarray:
        emb = require(scores, self.name, EMBEDDINGS)
        inverse_norm = 1.0 / np.maximum(np.sqrt(np.einsum("ij,ij->i", emb, emb, dtype=np.float64)), 1e-12)
        # The mean of the unit rows without a normalised copy; vectors in the pool's dtype, so no upcast copy either.
        mean_unit = (emb.T @ inverse_norm.astype(emb.dtype)) / len(emb)
        return np.clip((emb @ mean_unit.astype(emb.dtype)) * inverse_norm, 0.0, None)

    def utility(self, scores: Scores, state: SelectionState | None = None) -> np.ndarray:
        return self.uncertainty.utility(scores, state) * self.density(scores) ** self.beta

    def select(self, scores: Scores, state: SelectionState, k: int, rng: np.random.Generator) -> np.ndarray:
        return top_k_unlabeled(self.utility(scores, state), state, k, rng)

