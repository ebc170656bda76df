"""Distance computations over a whole pool, streamed: what the diversity strategies do at scale.

Each pass reads the embeddings a float32 block at a time (one array or `Shards`) and keeps O(n)
numbers, never an (n, d) copy; distances to a small set (centres, labeled items, chosen items) come
from an `ann.Index` (numpy or faiss, exact or IVF). Every function is deterministic given its seed.
"""
from __future__ import annotations

import numpy as np

from .ann import Index, Plan, seed_of
from .shards import Shards, blocks

LAZY_BATCH = 256  # rows whose stale bounds k-center refreshes at once


def first_per_group(groups: np.ndarray, key: np.ndarray) -> np.ndarray:
    """Row positions of the smallest key within each group (one per non-empty group; ties to the first)."""
    order = np.lexsort((key, groups))
    starts = np.flatnonzero(np.r_[True, groups[order][1:] != groups[order][:-1]])
    return order[starts]


def nearest_per_cluster(emb: np.ndarray | Shards, centres: np.ndarray, candidates: np.ndarray, plan: Plan,
                        key: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Assign each candidate row (a boolean mask) to its nearest centre in one pass.

    Returns, per centre, the pool row with the smallest `key` among its members (None: the squared
    distance to the centre), ties to the lower row, -1 for an empty cluster; and the cluster sizes.
    """
    index, k = Index(centres, plan), len(centres)
    best_key, best_row, sizes = np.full(k, np.inf), np.full(k, -1, dtype=np.int64), np.zeros(k, dtype=np.int64)
    for start, block in blocks(emb):
        local = np.flatnonzero(candidates[start:start + len(block)])
        if len(local) == 0:
            continue
        sq, group = index.search(block, 1)  # the whole block: cheaper than copying out its candidates
        sq, group = sq[local, 0], group[local, 0]
        value = sq if key is None else key[start + local]
        sizes += np.bincount(group, minlength=k)
        firsts = first_per_group(group, value)
        g, v = group[firsts], value[firsts]
        better = v < best_key[g]  # strict: an equal key in a later block keeps the earlier, lower row
        best_key[g[better]], best_row[g[better]] = v[better], start + local[firsts[better]]
    return best_row, sizes


def _sq_distances(x: np.ndarray, centres: np.ndarray) -> np.ndarray:
    sq = (np.einsum("ij,ij->i", x, x, dtype=np.float64)[:, None]
          + np.einsum("ij,ij->i", centres, centres, dtype=np.float64)[None, :] - 2.0 * (x @ centres.T))
    return np.maximum(sq, 0.0)


def k_center(emb: np.ndarray | Shards, labeled: np.ndarray, candidates: np.ndarray, k: int, plan: Plan,
             rng: np.random.Generator) -> np.ndarray:
    """Greedy k-center over the candidate rows, labeled rows as the first centres; k pool rows in order.

    One pass finds each row's (squared) distance to its nearest labeled row: exact, or an upper
    bound with IVF search. The greedy steps are lazy: a row's bound is refreshed against the centres
    chosen since its last refresh only when it is among the farthest, and a row is taken once it is
    the farthest with a fresh bound. As bounds only fall, that row is the one a full update of every
    row at every step would take: the same choices, in O(n) per step instead of O(n d).
    """
    n, d = emb.shape
    centres = np.empty((k, d), dtype=np.float32)
    chosen: list[int] = []
    bound = np.empty(n, dtype=np.float64)
    if labeled.any():
        index = Index(emb[np.flatnonzero(labeled)], plan, seed_of(rng))
        for start, block in blocks(emb):
            bound[start:start + len(block)] = index.search(block, 1)[0][:, 0]
    else:  # the first centre is a random candidate (the draw numpy's CoreSet makes)
        pool = np.flatnonzero(candidates)
        chosen.append(int(pool[rng.integers(len(pool))]))
        centres[0] = emb[[chosen[0]]][0]
        for start, block in blocks(emb):
            bound[start:start + len(block)] = _sq_distances(block, centres[:1])[:, 0]
    bound[~candidates] = -1.0
    bound[chosen] = -1.0
    fresh = np.full(n, len(chosen), dtype=np.int32)  # how many centres each row's bound accounts for
    while len(chosen) < k:
        m = len(chosen)
        best = int(np.argmax(bound))
        if bound[best] < 0:
            break  # no candidate left
        if fresh[best] == m:
            chosen.append(best)
            centres[m] = emb[[best]][0]
            bound[best] = -1.0
            continue
        top = np.argpartition(bound, n - LAZY_BATCH)[n - LAZY_BATCH:] if n > LAZY_BATCH else np.arange(n)
        stale = np.union1d(top[(fresh[top] < m) & (bound[top] >= 0)], [best])
        bound[stale] = np.minimum(bound[stale], _sq_distances(emb[stale], centres[:m]).min(axis=1))
        fresh[stale] = m
    return np.asarray(chosen, dtype=np.int64)


def _inverse_norms(block: np.ndarray) -> np.ndarray:
    """1 / |row| (float32 sums: 7 digits are plenty for a scale factor, and twice as fast as float64)."""
    return 1.0 / np.maximum(np.sqrt(np.einsum("ij,ij->i", block, block).astype(np.float64)), 1e-12)


def mean_cosine_density(emb: np.ndarray | Shards) -> np.ndarray:
    """Mean cosine similarity of each row to all n rows (clipped at 0), exactly, in two passes:
    x/|x| . mean(x/|x|), no n x n matrix."""
    total = np.zeros(emb.shape[1], dtype=np.float64)
    for _, block in blocks(emb):
        total += block.T @ _inverse_norms(block).astype(np.float32)
    mean_unit = (total / len(emb)).astype(np.float32)
    out = np.empty(len(emb), dtype=np.float64)
    for start, block in blocks(emb):
        out[start:start + len(block)] = np.clip((block @ mean_unit) * _inverse_norms(block), 0.0, None)
    return out


def knn_density(emb: np.ndarray | Shards, neighbours: int, plan: Plan, seed: int) -> np.ndarray:
    """Mean cosine similarity (clipped at 0) of each row to its `neighbours` nearest other rows.

    The index holds every row as a float32 unit vector (n x d x 4 bytes): for pools up to a few
    million rows. A row's own entry is dropped from its neighbours (so is the last one if IVF missed it).
    """
    unit = np.empty(emb.shape, dtype=np.float32)
    for start, block in blocks(emb):
        unit[start:start + len(block)] = block * _inverse_norms(block).astype(np.float32)[:, None]
    index = Index(unit, plan, seed, metric="ip")
    out = np.empty(len(emb), dtype=np.float64)
    for start in range(0, len(unit), 65536):
        queries = unit[start:start + 65536]
        sims, rows = index.search(queries, neighbours + 1)
        own = rows == np.arange(start, start + len(queries))[:, None]
        keep = np.argsort(own, axis=1, kind="stable")[:, :min(neighbours, sims.shape[1] - 1)]
        near = np.take_along_axis(sims, keep, axis=1)
        near = np.where(np.take_along_axis(rows, keep, axis=1) < 0, 0.0, near)  # IVF found too few
        out[start:start + len(queries)] = np.clip(near, 0.0, None).mean(axis=1) if near.shape[1] else 0.0
    return out
