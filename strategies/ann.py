"""Search and clustering back ends for the strategies that measure distances: numpy or faiss.

`numpy` (with scikit-learn) is always there and exact. `faiss` (the optional `ray` extra:
`pip install 'quarry-al[ray]'`) is imported here and only when a strategy uses it: k-means on a
sample (Johnson, Douze & Jegou 2019, "Billion-scale similarity search with GPUs", IEEE Trans. Big
Data), exact flat search, or an IVF index (an inverted file over k-means cells; `nprobe` cells are
searched, so distances found are those to the nearest item in the searched cells: upper bounds of the
exact ones). `auto` takes faiss when it is installed and the pool has `AUTO_MIN_ROWS` rows or more,
and IVF search (`AUTO_NPROBE`) when exact search would compare more than `EXACT_PAIRS` pairs.

Seeds: faiss gets an integer drawn from the strategy's numpy Generator, so a run replays.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Any

import numpy as np

from .base import StrategyError, StrategyParamError
from .shards import top_k_smallest

BACKENDS = ("numpy", "faiss", "auto")
AUTO_MIN_ROWS = 50_000  # below this, numpy is as fast and needs nothing more
EXACT_PAIRS = 2e8  # (pool rows) x (searched rows) above which `auto` searches an IVF index: ~2 s of flat search
AUTO_NPROBE = 1
NUMPY_MATRIX = 2**22  # entries of one numpy distance matrix (queries x base rows, float64: 32 MB)
POINTS_PER_CENTRE = 256  # k-means trains on this many sampled points per centre (faiss's own default cap)


def seed_of(rng: np.random.Generator) -> int:
    """A library seed drawn from the run's generator, so sklearn's and faiss's randomness replay too."""
    return int(rng.integers(2**31 - 1))


def faiss_installed() -> bool:
    return importlib.util.find_spec("faiss") is not None


def faiss() -> Any:
    """The faiss module, imported on first use."""
    try:
        import faiss as module
    except ImportError as exc:
        raise StrategyError(f"strategy backend 'faiss': faiss is not installed ({exc}); "
                            "pip install 'quarry-al[ray]' (or faiss-cpu), or set backend: numpy") from None
    return module


def check_backend(backend: Any, nprobe: Any = None) -> str:
    """A strategy's `backend` and `nprobe` params, checked when it is built."""
    if backend not in BACKENDS:
        raise StrategyParamError("backend", f"must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if nprobe is not None and (not isinstance(nprobe, int) or isinstance(nprobe, bool) or nprobe < 1):
        raise StrategyParamError("nprobe", f"must be a positive integer or null, got {nprobe!r}")
    if nprobe is not None and backend == "numpy":
        raise StrategyParamError("nprobe", "IVF search needs backend faiss or auto; numpy searches exactly")
    return backend


@dataclass(frozen=True)
class Plan:
    """How one selection searches: the library, and IVF cells to probe (None: exact)."""

    library: str  # "numpy" or "faiss"
    nprobe: int | None = None


def plan(backend: str, nprobe: int | None, rows: int, searched: int = 0) -> Plan:
    """The search for `rows` pool rows against `searched` rows, as `backend` and `nprobe` ask."""
    if backend == "numpy" or (backend == "auto" and (rows < AUTO_MIN_ROWS or not faiss_installed())):
        return Plan("numpy")
    if nprobe is None and backend == "auto" and rows * searched > EXACT_PAIRS:
        nprobe = AUTO_NPROBE
    return Plan("faiss", nprobe)


def kmeans(sample: np.ndarray, k: int, seed: int, iterations: int) -> np.ndarray:
    """(k, d) float32 centres of faiss k-means over all of `sample` (the caller draws it).

    Seeded with k-means++ (Arthur & Vassilvitskii 2007, "k-means++: The Advantages of Careful
    Seeding", SODA), as scikit-learn's k-means is: faiss's own random start often leaves two
    centres in one cluster and one across two, which Lloyd's iterations do not repair.
    """
    module = faiss()
    sample = np.ascontiguousarray(sample, dtype=np.float32)
    model = module.Kmeans(sample.shape[1], k, niter=iterations, seed=seed, verbose=False,
                          max_points_per_centroid=max(1, -(-len(sample) // k)), min_points_per_centroid=1)
    model.train(sample, init_centroids=kmeans_plus_plus(sample, k, np.random.default_rng(seed)))
    return model.centroids


def kmeans_plus_plus(x: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k rows of x drawn by D^2 sampling: each next centre with probability proportional to its
    squared distance from the nearest centre drawn so far. O(k n d)."""
    norms = np.einsum("ij,ij->i", x, x, dtype=np.float64)
    chosen = [int(rng.integers(len(x)))]
    nearest = np.maximum(norms + norms[chosen[0]] - 2.0 * (x @ x[chosen[0]]), 0.0)
    for _ in range(1, k):
        total = nearest.sum()
        chosen.append(int(rng.choice(len(x), p=nearest / total)) if total > 0 else int(rng.integers(len(x))))
        np.minimum(nearest, np.maximum(norms + norms[chosen[-1]] - 2.0 * (x @ x[chosen[-1]]), 0.0), out=nearest)
    return np.ascontiguousarray(x[chosen])


class Index:
    """Nearest rows of a fixed base set (centres, labeled items) for query blocks: exact or IVF.

    L2 (squared distances) or inner product (`metric="ip"`, similarities, largest first).
    """

    def __init__(self, base: np.ndarray, plan: Plan, seed: int = 0, metric: str = "l2"):
        self.plan, self.metric, self.size = plan, metric, len(base)
        self.base = np.ascontiguousarray(base, dtype=np.float32)
        if plan.library == "faiss":
            module = faiss()
            d = self.base.shape[1]
            metric_type = module.METRIC_L2 if metric == "l2" else module.METRIC_INNER_PRODUCT
            cells = max(1, int(round(np.sqrt(len(base))))) if plan.nprobe else 0
            if cells > 1:
                quantizer = module.IndexFlatL2(d) if metric == "l2" else module.IndexFlatIP(d)
                self.index = module.IndexIVFFlat(quantizer, d, cells, metric_type)
                self.index.cp.seed, self.index.cp.min_points_per_centroid = seed, 1
                self.index.train(self.base)
                self.index.nprobe = min(plan.nprobe, cells)
                self.quantizer = quantizer  # faiss does not own it from Python: keep it alive
            else:
                self.index = module.IndexFlatL2(d) if metric == "l2" else module.IndexFlatIP(d)
            self.index.add(self.base)
        else:
            self.base_norms = np.einsum("ij,ij->i", self.base, self.base, dtype=np.float64)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(q, k) distances (L2: squared, ascending; ip: similarities, descending) and base rows."""
        k = min(k, self.size)
        if self.plan.library == "faiss":
            d, i = self.index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
            return d.astype(np.float64), i.astype(np.int64)
        rows = max(1, NUMPY_MATRIX // max(self.size, 1))
        found = [self._numpy_search(queries[start:start + rows], k) for start in range(0, len(queries), rows)]
        return np.concatenate([f[0] for f in found]), np.concatenate([f[1] for f in found])

    def _numpy_search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        dots = (queries @ self.base.T).astype(np.float64)
        if self.metric == "ip":
            d, i = top_k_smallest(-dots, k)
            return -d, i
        q_norms = np.einsum("ij,ij->i", queries, queries, dtype=np.float64)
        return top_k_smallest(np.maximum(q_norms[:, None] + self.base_norms[None, :] - 2.0 * dots, 0.0), k)
