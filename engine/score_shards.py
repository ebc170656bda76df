"""A round's pool scores as files that selection maps instead of loads.

    scores/round-NNN/probs.npy            (n, c) float32 class probabilities (n x c is small: 160 MB at 10M x 4)
    scores/round-NNN/emb-SSSSS.f16        raw (rows, d) float16 embeddings, one file per pool shard
                                          (.f32, float32, when the pool's n x d fits IN_MEMORY_VALUES)
    scores/round-NNN/mc_probs.npy         (T, n, c) float32 MC-dropout passes, when a strategy asked for them
    scores/round-NNN/meta.json            n, d, shard sizes, T: written last (the folder is moved into place whole)

Writes arrive as (first pool position, arrays) batches in any order (Ray returns them as they finish);
each lands at its rows. Reading gives `Scores` whose embeddings are a float32 array for a small pool
and `strategies.Shards` of memory-mapped float16 files for a large one (never a float32 copy). A small
pool's embeddings are kept as float32, so its selections are those of the single-file layout before.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np

from ..strategies.base import Scores
from ..strategies.shards import Shards

IN_MEMORY_VALUES = 1 << 25  # embeddings up to 32M values (128 MB as float32) are handed over as one array


class ScoreWriter:
    """Fills one round's score files in `folder` (a temporary folder the run folder moves into place)."""

    def __init__(self, folder: Path, sizes: Sequence[int], classes: int, mc_passes: int = 0):
        self.folder, self.sizes, self.classes, self.mc_passes = Path(folder), list(sizes), classes, mc_passes
        self.offsets = np.cumsum([0] + self.sizes)
        self.n = int(self.offsets[-1])
        self.folder.mkdir(parents=True, exist_ok=True)
        self.probs = np.lib.format.open_memmap(self.folder / "probs.npy", mode="w+", dtype=np.float32, shape=(self.n, classes))
        self.mc = (np.lib.format.open_memmap(self.folder / "mc_probs.npy", mode="w+", dtype=np.float32,
                                             shape=(mc_passes, self.n, classes)) if mc_passes else None)
        self.dim: int | None = None
        self._emb: dict[int, np.memmap] = {}
        self.covered = np.zeros(self.n, dtype=bool)  # a retried batch may arrive twice: it writes the same values

    def _embedding_file(self, shard: int, dim: int) -> np.memmap:
        if self.dim is None:
            self.dim = dim
        if shard not in self._emb:
            dtype = _embedding_dtype(self.n, dim)
            self._emb[shard] = np.memmap(_embedding_path(self.folder, shard, dtype), dtype=dtype, mode="w+",
                                         shape=(self.sizes[shard], dim))
        return self._emb[shard]

    def write(self, positions: np.ndarray, outputs: dict[str, np.ndarray]) -> None:
        """One batch's outputs (probs (m, c), embeddings (m, d), mc_probs (m, T, c)) at its pool positions."""
        positions = np.asarray(positions, dtype=np.int64)
        if "probs" in outputs:
            self.probs[positions] = outputs["probs"]
        if self.mc is not None and "mc_probs" in outputs:
            self.mc[:, positions] = np.asarray(outputs["mc_probs"]).transpose(1, 0, 2)
        embeddings = outputs.get("embeddings")
        if embeddings is not None and len(embeddings):
            shard_of = np.searchsorted(self.offsets, positions, side="right") - 1
            for shard in np.unique(shard_of):
                at = np.flatnonzero(shard_of == shard)
                target = self._embedding_file(int(shard), embeddings.shape[1])
                target[positions[at] - int(self.offsets[shard])] = embeddings[at]
        self.covered[positions] = True

    def finish(self) -> None:
        if not self.covered.all():
            raise RuntimeError(f"scores cover {int(self.covered.sum())} of {self.n} pool rows")
        self.probs.flush()
        if self.mc is not None:
            self.mc.flush()
        for array in self._emb.values():
            array.flush()
        (self.folder / "meta.json").write_text(json.dumps({"n": self.n, "dim": self.dim, "sizes": self.sizes,
                                                          "classes": self.classes, "mc_passes": self.mc_passes}))
        del self.probs, self.mc
        self._emb.clear()


def _embedding_dtype(n: int, dim: int) -> np.dtype:
    return np.dtype(np.float32 if n * dim <= IN_MEMORY_VALUES else np.float16)


def _embedding_path(folder: Path, shard: int, dtype: np.dtype) -> Path:
    return folder / f"emb-{shard:05d}.{'f32' if dtype == np.float32 else 'f16'}"


def complete(folder: Path) -> bool:
    return (folder / "meta.json").is_file()


def read_embeddings(folder: Path) -> np.ndarray | Shards | None:
    meta = json.loads((folder / "meta.json").read_text())
    if meta["dim"] is None:
        return None
    dtype = _embedding_dtype(meta["n"], meta["dim"])
    parts = [np.memmap(_embedding_path(folder, s, dtype), dtype=dtype, mode="r", shape=(rows, meta["dim"]))
             for s, rows in enumerate(meta["sizes"])]
    if meta["n"] * meta["dim"] <= IN_MEMORY_VALUES:
        return np.concatenate([np.asarray(p, dtype=np.float32) for p in parts])
    return Shards(parts)


def read_scores(folder: Path, mc_passes: int = 0) -> Scores | None:
    """The saved scores; None when they lack the `mc_passes` MC-dropout passes asked for."""
    meta = json.loads((folder / "meta.json").read_text())
    if mc_passes and meta["mc_passes"] != mc_passes:
        return None
    mc = np.load(folder / "mc_probs.npy") if mc_passes else None
    return Scores(probs=np.load(folder / "probs.npy"), embeddings=read_embeddings(folder), mc_probs=mc)


def read_probs(folder: Path) -> np.ndarray:
    return np.load(folder / "probs.npy")
