"""Candidate subsampling: let any strategy look at a few thousand unlabeled items instead of the whole pool.

Any strategy takes the params `subsample` (how many unlabeled candidates), `subsample_method`
(`random`, or `seals`: the nearest unlabeled neighbours of the labeled items, Coleman et al. 2022,
"Similarity Search for Efficient Active Learning and Search of Rare Concepts", AAAI) and
`subsample_neighbours` (neighbours per labeled item for seals). The inner strategy then runs on the
candidates plus the labeled items (core-set and CAL measure distances to those), so a quadratic
strategy costs what it costs on `subsample` items, whatever the pool size.

SEALS searches from at most ceil(subsample / subsample_neighbours) labeled items (a random choice when
there are more). Exact search (the default) costs about subsample / neighbours * n * d, shard by shard:
each shard (of `Shards`, or the one array) gives its top neighbours of every query and `merge_top_k`
merges them exactly, so shards give what one array gives. `subsample_nprobe` searches an IVF index
instead (faiss, one per shard, over cells trained on a sample of the pool; approximate): the paper's
setting, where an index kept across rounds pays; built afresh each round it costs a pass like exact search.
"""
from __future__ import annotations

from typing import Any, Iterator

import numpy as np

from .ann import faiss, kmeans, seed_of
from .base import EMBEDDINGS, QueryStrategy, Scores, SelectionState, StrategyParamError, mc_passes_of, needs_of, require
from .shards import Shards, blocks, merge_top_k, top_k_smallest

METHODS = ("random", "seals")
IVF_MAX_CELLS = 256  # cells of the SEALS IVF index: assigning n rows to them is n x cells x d
POINTS_PER_CELL = 64  # k-means sample per cell


def shard_nearest(shard_blocks: Iterator[tuple[int, np.ndarray]], queries: np.ndarray, excluded: np.ndarray,
                  neighbours: int) -> tuple[np.ndarray, np.ndarray]:
    """(q, neighbours) squared distances (less each query's own norm) and pool rows of the nearest
    rows not `excluded`, over the blocks of one shard; inf and -1 where the shard has too few."""
    best_d = np.full((len(queries), neighbours), np.inf)
    best_r = np.full((len(queries), neighbours), -1, dtype=np.int64)
    for start, block in shard_blocks:
        # |x - q|^2 = |x|^2 - 2 q.x + |q|^2; the last term is the same for every x of a query: left out.
        d = np.einsum("ij,ij->i", block, block)[None, :] - 2.0 * (queries @ block.T)
        allowed = ~excluded[start:start + len(block)]
        if np.isinf(best_d[:, -1]).any():  # some query still has free places: take the block's best
            d[:, ~allowed] = np.inf
            found_d, found = top_k_smallest(d, neighbours)
            best_d, best_r = merge_top_k([best_d, found_d], [best_r, np.where(np.isfinite(found_d), found + start, -1)],
                                         neighbours)
            continue
        # Only what beats a query's k-th distance so far can enter; a tie loses to the earlier, lower row.
        query, column = np.nonzero((d < best_d[:, -1:].astype(np.float32)) & allowed)
        best_d, best_r = merge_ragged(best_d, best_r, query, d[query, column], column + start)
    return best_d, best_r


def merge_ragged(best_d: np.ndarray, best_r: np.ndarray, query: np.ndarray, d: np.ndarray,
                 rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each query's full (q, k) best list merged with new (query, distance, row) entries, exactly:
    sorted by (query, distance, row), the first k of each query kept."""
    if len(query) == 0:
        return best_d, best_r
    q, k = best_d.shape
    all_q = np.concatenate([np.repeat(np.arange(q), k), query])
    all_d = np.concatenate([best_d.ravel(), d.astype(np.float64)])
    all_r = np.concatenate([best_r.ravel(), rows.astype(np.int64)])
    order = np.lexsort((all_r, all_d, all_q))
    rank = np.arange(len(order)) - np.searchsorted(all_q[order], np.arange(q))[all_q[order]]
    keep = order[rank < k]
    return all_d[keep].reshape(q, k), all_r[keep].reshape(q, k)


def shard_nearest_ivf(shard_blocks: Iterator[tuple[int, np.ndarray]], queries: np.ndarray, excluded: np.ndarray,
                      neighbours: int, quantizer: Any, nprobe: int) -> tuple[np.ndarray, np.ndarray]:
    """As `shard_nearest`, from an IVF index over the shard's rows (cells: `quantizer`'s centres)."""
    module = faiss()
    index = module.IndexIVFFlat(quantizer, quantizer.d, quantizer.ntotal)
    index.nprobe = min(nprobe, quantizer.ntotal)
    for start, block in shard_blocks:
        keep = np.flatnonzero(~excluded[start:start + len(block)])
        index.add_with_ids(np.ascontiguousarray(block[keep]), (start + keep).astype(np.int64))
    d, rows = index.search(queries, neighbours)
    return d.astype(np.float64) - np.einsum("ij,ij->i", queries, queries, dtype=np.float64)[:, None], rows


def nearest_unlabeled(emb: np.ndarray | Shards, labeled: np.ndarray, queries: np.ndarray, neighbours: int,
                      nprobe: int | None = None, seed: int = 0) -> np.ndarray:
    """Pool rows of the `neighbours` nearest unlabeled items of each query row (Euclidean), exact
    unless `nprobe`: per-shard top lists, merged exactly. No copy of the unlabeled part of the pool."""
    q = np.ascontiguousarray(emb[queries], dtype=np.float32)
    shards = [emb.part_blocks(p) for p in range(len(emb.parts))] if isinstance(emb, Shards) else [blocks(emb)]
    if nprobe is None:
        found = [shard_nearest(part, q, labeled, neighbours) for part in shards]
    else:
        module, n = faiss(), len(emb)
        cells = max(1, min(IVF_MAX_CELLS, int(np.sqrt(n))))
        sample_rng = np.random.default_rng(seed)
        sample = np.sort(sample_rng.choice(n, size=min(n, POINTS_PER_CELL * cells), replace=False))
        quantizer = module.IndexFlatL2(q.shape[1])
        quantizer.add(kmeans(emb[sample], cells, seed, iterations=10))
        found = [shard_nearest_ivf(part, q, labeled, neighbours, quantizer, nprobe) for part in shards]
    best_d, best_r = merge_top_k([f[0] for f in found], [f[1] for f in found], neighbours)
    return best_r[np.isfinite(best_d) & (best_r >= 0)]


class Subsampled:
    def __init__(self, inner: QueryStrategy, size: int, method: str = "random", neighbours: int = 100,
                 nprobe: int | None = None):
        if not isinstance(size, int) or size < 1:
            raise StrategyParamError("subsample", f"must be a positive integer, got {size!r}")
        if method not in METHODS:
            raise StrategyParamError("subsample_method", f"must be one of {', '.join(METHODS)}, got {method!r}")
        if not isinstance(neighbours, int) or neighbours < 1:
            raise StrategyParamError("subsample_neighbours", f"must be a positive integer, got {neighbours!r}")
        if nprobe is not None and (method != "seals" or not isinstance(nprobe, int) or nprobe < 1):
            raise StrategyParamError("subsample_nprobe", f"must be a positive integer with subsample_method seals, "
                                                         f"got {nprobe!r}")
        self.inner, self.size, self.method, self.neighbours, self.nprobe = inner, size, method, neighbours, nprobe
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
        seed = seed_of(rng) if self.nprobe else 0
        found = np.unique(nearest_unlabeled(emb, state.labeled, labeled, self.neighbours, self.nprobe, seed))
        if len(found) >= self.size:
            return np.sort(rng.choice(found, size=self.size, replace=False))
        rest = np.setdiff1d(unlabeled, found, assume_unique=True)
        return np.sort(np.concatenate([found, rng.choice(rest, size=self.size - len(found), replace=False)]))

    def select(self, scores: Scores, state: SelectionState, k: int, rng: np.random.Generator) -> np.ndarray:
        rows = np.concatenate([self.candidates(scores, state, rng), state.labeled_indices])
        chosen = self.inner.select(scores.take(rows), state.take(rows), k, rng)
        return rows[chosen].astype(np.int64)
