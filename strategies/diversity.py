"""Diversity sampling: spread the batch over the embedding space instead of piling it on one doubt.

All three work on `Scores.embeddings` (student pooled states or another configured source, one
array or `Shards`) and with nothing labeled yet, so each can also be a cold start. `backend`
chooses how distances are found (`strategies/ann.py`): `numpy` (scikit-learn, the whole candidate
set in memory), `faiss` (streamed block by block: k-means on a sample, exact or IVF search), or
`auto` (faiss from `AUTO_MIN_ROWS` pool rows when it is installed).
"""
from __future__ import annotations

import numpy as np
from sklearn.cluster import MiniBatchKMeans
from sklearn.metrics import pairwise_distances_argmin_min

from .ann import POINTS_PER_CENTRE, Plan, check_backend, kmeans, plan, seed_of
from .base import EMBEDDINGS, Scores, SelectionState, StrategyParamError, mc_passes_of, require, top_k_unlabeled
from .neighbourhood import first_per_group, k_center, knn_density, mean_cosine_density, nearest_per_cluster
from .registry import register
from .uncertainty import BALD, Entropy, LeastConfidence, Margin

_UNCERTAINTY = {cls.name: cls for cls in (LeastConfidence, Margin, Entropy, BALD)}


def fill_up(chosen: np.ndarray, candidates: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Top up a batch to k with random other candidates (empty clusters, exhausted sampling)."""
    if len(chosen) >= k:
        return chosen[:k]
    rest = np.setdiff1d(candidates, chosen)
    return np.concatenate([chosen, rng.choice(rest, size=k - len(chosen), replace=False)])


@register
class KMeansSampling:
    """Cluster the unlabeled items into k groups (k-means) and take one item per cluster.

    `pick="nearest"`: the item nearest each centre, largest clusters first (Nguyen & Smeulders 2004,
    "Active learning using pre-clustering", ICML). `pick="uncertain"`: the most uncertain item of each
    cluster by `uncertainty`, most uncertain first (Citovsky et al. 2021, "Batch Active Learning at
    Scale", NeurIPS, cluster-margin; Zhdanov 2019, "Diverse mini-batch Active Learning", arXiv:1901.05954).
    With nothing labeled and pick="nearest" it is the clustering cold start. Backend numpy: mini-batch
    k-means over all candidates (`batch_size`); faiss: Lloyd's k-means on a sample of
    `POINTS_PER_CENTRE` x k candidates, then one streamed pass assigns every candidate.
    """

    name = "kmeans"

    def __init__(self, pick: str = "nearest", uncertainty: str = "margin", batch_size: int = 4096, max_iter: int = 20,
                 backend: str = "auto"):
        if pick not in ("nearest", "uncertain"):
            raise StrategyParamError("pick", f"must be 'nearest' or 'uncertain', got {pick!r}")
        if uncertainty not in _UNCERTAINTY:
            raise StrategyParamError("uncertainty", f"must be one of {', '.join(_UNCERTAINTY)}, got {uncertainty!r}")
        self.pick, self.batch_size, self.max_iter = pick, batch_size, max_iter
        self.backend = check_backend(backend)
        self.uncertainty = _UNCERTAINTY[uncertainty]()
        self.needs = frozenset({EMBEDDINGS}) | (getattr(self.uncertainty, "needs", frozenset())
                                                if pick == "uncertain" else frozenset())
        self.mc_passes = mc_passes_of(self.uncertainty) if pick == "uncertain" else 0

    def select(self, scores: Scores, state: SelectionState, k: int, rng: np.random.Generator) -> np.ndarray:
        candidates = state.unlabeled_indices
        k = min(k, len(candidates))
        if k <= 0:
            return np.empty(0, dtype=np.int64)
        emb = require(scores, self.name, EMBEDDINGS)
        if plan(self.backend, None, len(candidates)).library == "faiss":
            return self._select_streamed(scores, state, candidates, k, rng)
        x = emb[candidates]
        model = MiniBatchKMeans(n_clusters=k, random_state=seed_of(rng), n_init=1, max_iter=self.max_iter,
                                batch_size=self.batch_size).fit(x)
        groups = model.labels_
        if self.pick == "nearest":
            sq = ((x - model.cluster_centers_[groups]) ** 2).sum(axis=1)
            firsts = first_per_group(groups, sq)
            size = np.bincount(groups, minlength=k)[groups[firsts]]
            firsts = firsts[np.argsort(-size, kind="stable")]
        else:
            utility = self.uncertainty.utility(scores.take(candidates))
            firsts = first_per_group(groups, -utility)
            firsts = firsts[np.argsort(-utility[firsts], kind="stable")]
        return fill_up(candidates[firsts], candidates, k, rng).astype(np.int64)

    def _select_streamed(self, scores: Scores, state: SelectionState, candidates: np.ndarray, k: int,
                         rng: np.random.Generator) -> np.ndarray:
        emb = scores.embeddings
        sample = np.sort(rng.choice(candidates, size=min(len(candidates), POINTS_PER_CENTRE * k), replace=False))
        centres = kmeans(emb[sample], k, seed_of(rng), self.max_iter)
        utility = self.uncertainty.utility(scores, state) if self.pick == "uncertain" else None
        rows, sizes = nearest_per_cluster(emb, centres, ~state.labeled, Plan("faiss"),
                                          key=None if utility is None else -utility)
        found = rows >= 0
        rows, sizes = rows[found], sizes[found]
        rows = rows[np.argsort(-sizes, kind="stable")] if utility is None else rows[np.argsort(-utility[rows], kind="stable")]
        return fill_up(rows, candidates, k, rng).astype(np.int64)


def min_sq_distances(x: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Squared Euclidean distance from each row of x to its nearest centre (chunked by sklearn)."""
    return pairwise_distances_argmin_min(x, centres)[1].astype(np.float64) ** 2


@register
class CoreSet:
    """Greedy k-center: repeatedly take the unlabeled item farthest from every labeled or chosen item.

    Sener & Savarese 2018, "Active Learning for Convolutional Neural Networks: A Core-Set Approach",
    ICLR (the greedy 2-approximation, labeled items as the initial centres). With nothing labeled
    the first centre is a random item. Backend numpy: k passes over the candidates, each O(n d);
    faiss: one streamed pass for the distances to the labeled items (exact, or IVF with `nprobe`:
    distances to the nearest labeled item in the probed cells), then lazy greedy steps that refresh
    only the farthest rows (`neighbourhood.k_center`): the same choices as k full passes.
    """

    name = "coreset"
    needs = frozenset({EMBEDDINGS})

    def __init__(self, backend: str = "auto", nprobe: int | None = None):
        self.backend, self.nprobe = check_backend(backend, nprobe), nprobe

    def select(self, scores: Scores, state: SelectionState, k: int, rng: np.random.Generator) -> np.ndarray:
        candidates = state.unlabeled_indices
        k = min(k, len(candidates))
        if k <= 0:
            return np.empty(0, dtype=np.int64)
        emb = require(scores, self.name, EMBEDDINGS)
        labeled = state.labeled_indices
        search = plan(self.backend, self.nprobe, len(candidates), len(labeled))
        if search.library == "faiss":
            return k_center(emb, state.labeled, ~state.labeled, k, search, rng)
        x = emb[candidates]
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
    """An uncertainty utility times representativeness ** beta.

    Representativeness is the mean cosine similarity to the whole pool (`neighbours: null`; Settles
    & Craven 2008, "An Analysis of Active Learning Strategies for Sequence Labeling Tasks", EMNLP,
    information density), exact and O(n d) as x/|x| . mean(x/|x|), streamed in two passes; or to
    the `neighbours` nearest pool items (kNN density: Zhu, Wang, Yao & Tsou 2008, "Active Learning
    with Sampling by Uncertainty and Density for Word Sense Disambiguation and Text Classification",
    COLING), searched exactly or with IVF (`backend`, `nprobe`), O(n^2 d) when exact. Either way it
    down-weights outliers that are uncertain only because they are odd.
    """

    name = "density"

    def __init__(self, uncertainty: str = "entropy", beta: float = 1.0, neighbours: int | None = None,
                 backend: str = "auto", nprobe: int | None = None):
        if uncertainty not in _UNCERTAINTY:
            raise StrategyParamError("uncertainty", f"must be one of {', '.join(_UNCERTAINTY)}, got {uncertainty!r}")
        if not beta >= 0:
            raise StrategyParamError("beta", f"must be >= 0, got {beta!r}")
        if neighbours is not None and (not isinstance(neighbours, int) or isinstance(neighbours, bool) or neighbours < 1):
            raise StrategyParamError("neighbours", f"must be a positive integer or null, got {neighbours!r}")
        self.uncertainty, self.beta, self.neighbours = _UNCERTAINTY[uncertainty](), float(beta), neighbours
        self.backend, self.nprobe = check_backend(backend, nprobe), nprobe
        self.needs = frozenset({EMBEDDINGS}) | getattr(self.uncertainty, "needs", frozenset())
        self.mc_passes = mc_passes_of(self.uncertainty)

    def density(self, scores: Scores) -> np.ndarray:
        emb = require(scores, self.name, EMBEDDINGS)
        if self.neighbours is None:
            return mean_cosine_density(emb)
        # The seed only matters to IVF's k-means; fixed, as density is a function of the pool alone.
        return knn_density(emb, self.neighbours, plan(self.backend, self.nprobe, len(emb), len(emb)), seed=0)

    def utility(self, scores: Scores, state: SelectionState | None = None) -> np.ndarray:
        return self.uncertainty.utility(scores, state) * self.density(scores) ** self.beta

    def select(self, scores: Scores, state: SelectionState, k: int, rng: np.random.Generator) -> np.ndarray:
        return top_k_unlabeled(self.utility(scores, state), state, k, rng)
