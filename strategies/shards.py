"""Pool embeddings read a block at a time, whether one array or several shards on disk.

A pool of millions does not fit in memory as one float32 array (10M x 384 is 15 GB; 7.7 GB in
float16), so its embeddings may come as `Shards`: row blocks in pool order (np.ndarray or
np.memmap, float16 or float32, one width). Strategies that scale read them through `blocks()`
(float32 blocks with their first pool row) and `take()` (a gather, as float32), never as one copy.
A np.memmap opened on a file is read with plain file reads, so the pages a pass went over are not
mapped into the process and do not count in its resident memory.

`merge_top_k` is the exact global merge of per-shard top-k lists, ties going to the lower pool row:
a search done shard by shard (here, or one shard per worker) finds what one over the whole pool finds.
"""
from __future__ import annotations

import mmap
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterator, Sequence

import numpy as np

BLOCK_ROWS = 65536  # rows per float32 block: 96 MB at d = 384
SPARSE_GATHER = 64  # a gather of fewer than 1/64 of a file's rows reads row by row; more, the whole file in blocks


class Shards:
    """Row blocks of one (n, d) embedding matrix, in pool order. Indexing with rows gathers float32."""

    ndim = 2
    dtype = np.dtype(np.float32)  # what reads give, whatever the shards store

    def __init__(self, parts: Sequence[np.ndarray]):
        parts = list(parts)
        if not parts or any(p.ndim != 2 or p.shape[1] != parts[0].shape[1] for p in parts):
            raise ValueError("shards must be a non-empty list of 2-D arrays of one width")
        if any(not np.issubdtype(p.dtype, np.floating) for p in parts):
            raise ValueError("shards must hold floating-point embeddings")
        self.parts = parts
        self.offsets = np.cumsum([0] + [len(p) for p in parts])

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.offsets[-1]), int(self.parts[0].shape[1])

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def __getitem__(self, rows) -> np.ndarray:
        rows = np.arange(len(self))[rows] if isinstance(rows, slice) else np.asarray(rows)
        if rows.dtype == bool:
            rows = np.flatnonzero(rows)
        out = np.empty((len(rows), self.shape[1]), dtype=np.float32)
        part_of = np.searchsorted(self.offsets, rows, side="right") - 1
        for p in np.unique(part_of):
            at = np.flatnonzero(part_of == p)
            out[at] = gather_rows(self.parts[p], rows[at] - self.offsets[p])
        return out

    def part_blocks(self, part: int, size: int = BLOCK_ROWS) -> Iterator[tuple[int, np.ndarray]]:
        """(first pool row, float32 block) over one shard: what a worker holding that shard reads."""
        array, offset = self.parts[part], int(self.offsets[part])
        yield from prefetched([(offset + start, _reader(array, start, min(start + size, len(array))))
                               for start in range(0, len(array), size)])

    def blocks(self, size: int = BLOCK_ROWS) -> Iterator[tuple[int, np.ndarray]]:
        for part in range(len(self.parts)):
            yield from self.part_blocks(part, size)


def _reader(array: np.ndarray, start: int, stop: int) -> Callable[[], np.ndarray]:
    return lambda: read_rows(array, start, stop)


def prefetched(reads: list[tuple[int, Callable[[], np.ndarray]]]) -> Iterator[tuple[int, np.ndarray]]:
    """(start, block) in order, each block read (and converted) in a thread while the one before is used:
    file reads and numpy casts release the GIL, so reading overlaps the caller's work on two cores."""
    if not reads:
        return
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(reads[0][1])
        for i, (start, _) in enumerate(reads):
            block = pending.result()
            if i + 1 < len(reads):
                pending = pool.submit(reads[i + 1][1])
            yield start, block


def _file_backed(array: np.ndarray) -> bool:
    """A memmap made by np.memmap on a file (not a view of one): readable from its file, unmapped."""
    return isinstance(array, np.memmap) and isinstance(array.base, mmap.mmap) and array.flags.c_contiguous


def read_rows(array: np.ndarray, start: int, stop: int) -> np.ndarray:
    """Rows start:stop as float32. A memmap made by np.memmap (not a view of one) is read from its file."""
    if _file_backed(array):
        row_bytes = array.shape[1] * array.dtype.itemsize
        raw = np.fromfile(array.filename, dtype=array.dtype, count=(stop - start) * array.shape[1],
                          offset=array.offset + start * row_bytes)
        return raw.reshape(stop - start, array.shape[1]).astype(np.float32)
    return np.asarray(array[start:stop], dtype=np.float32)


def gather_rows(array: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Rows (any order) of one array as float32. From a file-backed memmap they are read, never mapped:
    touching mapped pages would map their neighbours too and count them all in resident memory."""
    if not _file_backed(array):
        return np.asarray(array[rows], dtype=np.float32)
    out = np.empty((len(rows), array.shape[1]), dtype=np.float32)
    if len(rows) * SPARSE_GATHER > len(array):
        for start in range(0, len(array), BLOCK_ROWS):
            inside = np.flatnonzero((rows >= start) & (rows < start + BLOCK_ROWS))
            if len(inside):
                out[inside] = read_rows(array, start, min(start + BLOCK_ROWS, len(array)))[rows[inside] - start]
        return out
    row_bytes = array.shape[1] * array.dtype.itemsize
    with open(array.filename, "rb", buffering=0) as file:
        raw = b"".join(os.pread(file.fileno(), row_bytes, array.offset + int(r) * row_bytes) for r in rows)
    out[:] = np.frombuffer(raw, dtype=array.dtype).reshape(len(rows), array.shape[1])
    return out


def blocks(emb: np.ndarray | Shards, size: int = BLOCK_ROWS) -> Iterator[tuple[int, np.ndarray]]:
    """(first row, float32 block) over an embedding matrix, one array or shards."""
    if isinstance(emb, Shards):
        yield from emb.blocks(size)
        return
    yield from prefetched([(start, _reader(emb, start, min(start + size, len(emb))))
                           for start in range(0, len(emb), size)])


def row_norms_sq(emb: np.ndarray | Shards) -> np.ndarray:
    """Squared L2 norm of every row (float64), one block at a time."""
    out = np.empty(len(emb), dtype=np.float64)
    for start, block in blocks(emb):
        out[start:start + len(block)] = np.einsum("ij,ij->i", block, block, dtype=np.float64)
    return out


def merge_top_k(distances: Sequence[np.ndarray], rows: Sequence[np.ndarray], k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k smallest distances per query over several (q, k_i) lists with their pool rows.

    Exact: the lists are concatenated and sorted by (distance, row), so equal distances go to the
    lower pool row whatever shard they came from. Missing entries (row -1, distance inf) sort last.
    """
    d = np.concatenate([np.asarray(x, dtype=np.float64) for x in distances], axis=1)
    r = np.concatenate([np.asarray(x, dtype=np.int64) for x in rows], axis=1)
    d = np.where(r < 0, np.inf, d)
    order = np.lexsort((np.where(r < 0, np.iinfo(np.int64).max, r), d), axis=1)[:, :k]
    return np.take_along_axis(d, order, axis=1), np.take_along_axis(r, order, axis=1)


def top_k_smallest(d: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row of d, the k smallest values and their positions, sorted by (value, position).

    Of equal values at the k-th place the lowest positions are kept, so which rows a shard offers
    never depends on how the pool was cut into shards or blocks.
    """
    q, m = d.shape
    k = min(k, m)
    positions = np.argpartition(d, k - 1, axis=1)[:, :k] if k < m else np.tile(np.arange(m), (q, 1))
    values = np.take_along_axis(d, positions, axis=1)
    kth = values.max(axis=1, keepdims=True)
    # argpartition keeps an arbitrary few of the values equal to the k-th: redo the rows where it had a choice.
    ambiguous = np.flatnonzero((d == kth).sum(axis=1) != (values == kth).sum(axis=1))
    if len(ambiguous):
        rows, kth = d[ambiguous], kth[ambiguous]
        below, equal = rows < kth, rows == kth
        take = below | (equal & (np.cumsum(equal, axis=1) <= k - below.sum(axis=1, keepdims=True)))
        positions[ambiguous] = np.nonzero(take)[1].reshape(len(ambiguous), k)
        values[ambiguous] = np.take_along_axis(rows, positions[ambiguous], axis=1)
    order = np.lexsort((positions, values), axis=1)
    return np.take_along_axis(values, order, axis=1), np.take_along_axis(positions, order, axis=1)
