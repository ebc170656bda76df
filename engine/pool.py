"""The pool as Parquet shards in the run folder: read a shard, a column or a few rows at a time, never whole.

    pool/shard-NNNNN.parquet   columns pos (pool position), item_id, text, gold, input (generation: the
                               instruction's input); `shard_rows` rows each
    pool/meta.json             rows, shard sizes, a fingerprint of the texts (keys frozen-embedding caches)

The ledger of what was selected, labeled and reviewed stays in the store (SQLite); a pool item enters it
when a round selects it (`PoolShards.rows_at` gives its id, text and gold). Positions are 0-based here;
the store's items.pos is position + 1, as it has always been.
"""
from __future__ import annotations

import hashlib
import json
from bisect import bisect_right
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .core.files import atomic_write, write_text

SHARD_ROWS = 100_000
_SCHEMA = pa.schema([("pos", pa.int64()), ("item_id", pa.string()), ("text", pa.string()), ("gold", pa.string()),
                     ("input", pa.string())])
PoolTuple = tuple[str, str, "str | None", "str | None"]  # (item_id, text, gold, input)


@dataclass(frozen=True)
class PoolRow:
    pos: int
    item_id: str
    text: str
    gold: str | None
    input: str | None = None


def write_pool(folder: Path, rows: Iterable[PoolTuple], shard_rows: int = SHARD_ROWS) -> "PoolShards":
    """Stream (item_id, text, gold, input) rows into shards; meta.json is written last, so a pool without it is
    incomplete and is written again."""
    folder.mkdir(parents=True, exist_ok=True)
    digest, sizes, batch = hashlib.sha256(), [], []

    def flush() -> None:
        start = sum(sizes)
        table = pa.table({"pos": np.arange(start, start + len(batch), dtype=np.int64),
                          "item_id": [r[0] for r in batch], "text": [r[1] for r in batch],
                          "gold": [r[2] for r in batch], "input": [r[3] for r in batch]}, schema=_SCHEMA)
        atomic_write(folder / f"shard-{len(sizes):05d}.parquet",
                     lambda tmp: pq.write_table(table, tmp, row_group_size=8192))
        sizes.append(len(batch))
        batch.clear()

    for row in rows:
        digest.update(row[1].encode() + b"\x00")
        batch.append(row)
        if len(batch) == shard_rows:
            flush()
    if batch or not sizes:
        flush()
    write_text(folder / "meta.json", json.dumps({"rows": sum(sizes), "shards": sizes, "fingerprint": digest.hexdigest()}))
    return PoolShards(folder)


def read_range(path: str, start: int, stop: int, column: str = "text") -> list:
    """Rows [start, stop) of one shard's column, reading only the row groups that hold them."""
    shard = pq.ParquetFile(path)
    groups, first, row = [], None, 0
    for g in range(shard.num_row_groups):
        size = shard.metadata.row_group(g).num_rows
        if row < stop and row + size > start:
            groups.append(g)
            first = row if first is None else first
        row += size
    if not groups:
        return []
    values = shard.read_row_groups(groups, columns=[column]).column(column)
    return values.slice(start - first, stop - start).to_pylist()


class PoolShards:
    """Read access to a written pool; holds only its metadata."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        meta = json.loads((self.folder / "meta.json").read_text())
        self.sizes: list[int] = meta["shards"]
        self.fingerprint: str = meta["fingerprint"]
        self.offsets = np.cumsum([0] + self.sizes).tolist()

    @staticmethod
    def exists(folder: Path) -> bool:
        return (Path(folder) / "meta.json").is_file()

    def __len__(self) -> int:
        return int(self.offsets[-1])

    @property
    def files(self) -> list[Path]:
        return [self.folder / f"shard-{i:05d}.parquet" for i in range(len(self.sizes))]

    def column(self, shard: int, name: str) -> list:
        return pq.read_table(self.files[shard], columns=[name]).column(name).to_pylist()

    def texts(self, shard: int) -> list[str]:
        return self.column(shard, "text")

    def iter_texts(self) -> Iterator[tuple[int, list[str]]]:
        """(first position, texts) per shard, in pool order."""
        for shard in range(len(self.sizes)):
            yield self.offsets[shard], self.texts(shard)

    def chunks(self, rows: int) -> list[tuple[str, int, int]]:
        """The pool as (shard file, first row, last row + 1) ranges of at most `rows` rows, in pool order:
        units of work a worker reads itself (read_range) from storage it shares with the driver."""
        return [(str(path), start, min(start + rows, size))
                for path, size in zip(self.files, self.sizes) for start in range(0, size, rows)]

    def first_position(self, path: str) -> int:
        return int(self.offsets[[str(f) for f in self.files].index(path)])

    def rows_at(self, positions: Sequence[int]) -> list[PoolRow]:
        """The rows at these pool positions, in the order asked; each shard touched is read once."""
        positions = [int(p) for p in positions]
        found: dict[int, PoolRow] = {}
        by_shard: dict[int, list[int]] = {}
        for p in positions:
            if not 0 <= p < len(self):
                raise IndexError(f"pool position {p} outside 0..{len(self) - 1}")
            by_shard.setdefault(bisect_right(self.offsets, p) - 1, []).append(p)
        for shard, wanted in by_shard.items():
            table = pq.read_table(self.files[shard]).take(pa.array([p - self.offsets[shard] for p in wanted]))
            for row in table.to_pylist():
                found[row["pos"]] = PoolRow(row["pos"], row["item_id"], row["text"], row["gold"], row.get("input"))
        return [found[p] for p in positions]

    def rows(self) -> list[PoolRow]:
        """Every row, in pool order: for the task kinds that score a small pool whole (generation)."""
        return [PoolRow(r["pos"], r["item_id"], r["text"], r["gold"], r.get("input"))
                for shard in self.files for r in pq.read_table(shard).to_pylist()]


class PoolColumn(Sequence):
    """One column of the pool as a read-only sequence, read from the shards on first use (for code that
    wants `ctx.pool_texts[i]` or a list of a small pool); the executors stream shards instead."""

    def __init__(self, pool: PoolShards, name: str):
        self.pool, self.name = pool, name
        self._values: list | None = None

    def _all(self) -> list:
        if self._values is None:
            self._values = [v for shard in range(len(self.pool.sizes)) for v in self.pool.column(shard, self.name)]
        return self._values

    def __len__(self) -> int:
        return len(self.pool)

    def __getitem__(self, index):  # type: ignore[override]
        return self._all()[index]

    def __iter__(self):
        return iter(self._all())
