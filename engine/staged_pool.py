"""A job's pool records, validated once and kept in Parquet shards on disk, never as one list in memory.

Reading a pool of millions into Python objects costs about 1.1 GB per million rows; staged, the pool
costs what one shard costs, whatever its size. A staged pool is a read-only Sequence[Record]: len, an
index or a slice, and iteration shard by shard. The eval split and max_pool pick rows by position
(`subset`), which keeps the shards and only narrows the view. The folder is temporary (TMPDIR) and is
removed when the last view of it is gone.
"""
from __future__ import annotations

import shutil
import tempfile
import weakref
from bisect import bisect_right
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .records import Record

STAGE_ROWS = 100_000
GROUP_ROWS = 8_192
_COLUMNS = ("item_id", "text", "label", "input", "where")
_SCHEMA = pa.schema([(name, pa.string()) for name in _COLUMNS])


class _Folder:
    """The temporary folder of staged shards; deleted with the last StagedPool that reads it."""

    def __init__(self) -> None:
        self.path = Path(tempfile.mkdtemp(prefix="quarry-pool-"))
        self._cleanup = weakref.finalize(self, shutil.rmtree, self.path, True)


def stage_records(records: Iterable[Record], shard_rows: int = STAGE_ROWS) -> StagedPool:
    """Write records to a fresh temporary folder as they come: `shard_rows` per shard, a row group of
    GROUP_ROWS at a time, so only one row group's records are ever held."""
    folder, sizes, batch = _Folder(), [], []
    writer: pq.ParquetWriter | None = None

    def flush() -> None:
        nonlocal writer
        if writer is None:
            writer = pq.ParquetWriter(folder.path / f"stage-{len(sizes):05d}.parquet", _SCHEMA)
            sizes.append(0)
        writer.write_table(pa.table({name: [getattr(r, name) for r in batch] for name in _COLUMNS}, schema=_SCHEMA))
        sizes[-1] += len(batch)
        batch.clear()
        if sizes[-1] >= shard_rows:
            writer.close()
            writer = None

    for record in records:
        batch.append(record)
        if len(batch) == min(GROUP_ROWS, shard_rows):
            flush()
    if batch:
        flush()
    if writer is not None:
        writer.close()
    return StagedPool(folder, sizes)


class StagedPool(Sequence[Record]):
    """Staged records in file order, or the rows at `keep` (ascending stage positions) of them."""

    def __init__(self, folder: _Folder, sizes: list[int], keep: np.ndarray | None = None):
        self._folder, self._sizes = folder, sizes
        self._offsets = np.cumsum([0, *sizes]).tolist()
        self._keep = keep

    def __len__(self) -> int:
        return int(self._offsets[-1]) if self._keep is None else len(self._keep)

    def _positions(self, index: int | slice) -> list[int]:
        picked = range(len(self))[index]
        rows = [picked] if isinstance(picked, int) else list(picked)
        return rows if self._keep is None else [int(self._keep[i]) for i in rows]

    def __getitem__(self, index):  # type: ignore[override]
        rows = self._read(self._positions(index))
        return rows[0] if isinstance(index, int) else rows

    def __iter__(self) -> Iterator[Record]:
        for shard, path in enumerate(self._files()):
            table = pq.read_table(path)
            rows = self._kept_in(shard)
            yield from _records(table if rows is None else table.take(pa.array(rows)))

    def __eq__(self, other: object) -> bool:
        """Equal to any sequence of the same records in the same order (a list of them too)."""
        if not isinstance(other, Sequence) or isinstance(other, (str, bytes)):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other))

    __hash__ = None  # type: ignore[assignment]  # equal by content, like a list

    def column(self, name: str) -> Iterator[str | None]:
        """One field of every row, in order, reading only that column."""
        for shard, path in enumerate(self._files()):
            values = pq.read_table(path, columns=[name]).column(name).to_numpy(zero_copy_only=False)
            rows = self._kept_in(shard)
            yield from (values if rows is None else values[rows])

    def subset(self, positions: Sequence[int] | np.ndarray) -> StagedPool:
        """The rows at these positions of this view, in view order (positions are sorted first)."""
        chosen = np.sort(np.asarray(positions, dtype=np.int64))
        keep = chosen if self._keep is None else self._keep[chosen]
        return StagedPool(self._folder, self._sizes, keep)

    def _kept_in(self, shard: int) -> np.ndarray | None:
        """The rows of this view within one shard, as shard-local indices (None: all of them)."""
        if self._keep is None:
            return None
        lo, hi = np.searchsorted(self._keep, [self._offsets[shard], self._offsets[shard + 1]])
        return self._keep[lo:hi] - self._offsets[shard]

    def _files(self) -> list[Path]:
        return [self._folder.path / f"stage-{i:05d}.parquet" for i in range(len(self._sizes))]

    def _read(self, positions: list[int]) -> list[Record]:
        by_shard: dict[int, list[int]] = {}
        for p in positions:
            by_shard.setdefault(bisect_right(self._offsets, p) - 1, []).append(p)
        found: dict[int, Record] = {}
        for shard, wanted in by_shard.items():
            table = pq.read_table(self._files()[shard]).take(pa.array([p - self._offsets[shard] for p in wanted]))
            found.update(zip(wanted, _records(table)))
        return [found[p] for p in positions]


def _records(table: pa.Table) -> Iterator[Record]:
    columns = [table.column(name).to_pylist() for name in _COLUMNS]
    for item_id, text, label, input_text, where in zip(*columns):
        yield Record(item_id, text, label, where, input_text)
