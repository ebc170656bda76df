"""The pool's side of the ledger: since schema 5 the pool's texts live in Parquet shards in the run folder
(engine/pool.py), and a pool item enters the items table when a round selects it. Older run databases
hold every pool item in the items table (layout "items"): their shards are written from it once, and the
rows stay where they are, readable as before.

Positions here are 0-based pool positions; items.pos is position + 1 (pool first, seed items after),
as in every version.
"""
from __future__ import annotations

import time
from typing import Iterable, Iterator, Mapping, Sequence

import numpy as np

from .base import StoreBase
from .runs import _CURRENT_LABELS
from .schema import SCHEMA_VERSION


class PoolLedgerMixin(StoreBase):
    def initialize_sharded(self, config_json: str, pool_size: int, seed: Iterable[tuple[str, str, str]],
                           inputs: Mapping[str, str] | None = None) -> None:
        """A new run whose pool is in shards: the config, the pool's size and the seed labels (with their
        generation inputs by item id), in one transaction."""
        now = time.time()
        seed, inputs = list(seed), inputs or {}
        with self._transaction() as conn:
            conn.executemany("INSERT INTO meta VALUES (?, ?)", [
                ("schema_version", str(SCHEMA_VERSION)), ("config", config_json), ("created_at", str(now)),
                ("pool_layout", "shards"), ("pool_size", str(pool_size))])
            conn.executemany("INSERT INTO items (pos, item_id, text, gold, origin, input) VALUES (?, ?, ?, ?, 'seed', ?)",
                             [(pool_size + 1 + j, i, t, label, inputs.get(i)) for j, (i, t, label) in enumerate(seed)])
            conn.executemany(
                "INSERT INTO labels (item_id, label, source, confidence, round, reason, created_at) "
                "VALUES (?, ?, 'seed', NULL, 0, 'seed file', ?)", [(i, label, now) for i, _, label in seed])

    def pool_layout(self) -> str:
        """"shards" (runs made at schema 5 or later) or "items" (older runs: every pool item is in the items table)."""
        return self._value("SELECT value FROM meta WHERE key = 'pool_layout'") or "items"

    def pool_size(self) -> int:
        size = self._value("SELECT value FROM meta WHERE key = 'pool_size'")
        return int(size) if size is not None else int(self._value("SELECT COUNT(*) FROM items WHERE origin = 'pool'"))

    def iter_pool_rows(self, chunk: int = 50_000) -> Iterator[tuple[str, str, str | None, str | None]]:
        """(item_id, text, gold, input) of a layout-"items" pool in pool order, a chunk at a time."""
        last = 0
        while True:
            rows = self._rows("SELECT pos, item_id, text, gold, input FROM items WHERE origin = 'pool' AND pos > ? "
                              "ORDER BY pos LIMIT ?", (last, chunk))
            if not rows:
                return
            yield from ((r["item_id"], r["text"], r["gold"], r["input"]) for r in rows)
            last = rows[-1]["pos"]

    def add_pool_items(self, rows: Sequence[tuple[int, str, str, str | None, str | None]]) -> None:
        """Selected pool items (position, item_id, text, gold, input) enter the ledger; already there: unchanged."""
        with self._transaction() as conn:
            conn.executemany("INSERT OR IGNORE INTO items (pos, item_id, text, gold, origin, input) "
                             "VALUES (?, ?, ?, ?, 'pool', ?)", [(pos + 1, *rest) for pos, *rest in rows])

    def requested_mask(self, pool_size: int) -> np.ndarray:
        """(n,) bool: pool positions already selected in some round or labeled."""
        mask = np.zeros(pool_size, dtype=bool)
        rows = self._rows("SELECT pos FROM items WHERE origin = 'pool' AND item_id IN "
                          "(SELECT item_id FROM selections UNION SELECT item_id FROM labels)")
        mask[np.array([r[0] - 1 for r in rows], dtype=np.int64)] = True
        return mask

    def decided_positions(self) -> list[tuple[int, str]]:
        """(pool position, current label) of every labeled pool item."""
        rows = self._rows(f"SELECT i.pos, c.label FROM ({_CURRENT_LABELS}) c JOIN items i USING (item_id) "
                          "WHERE i.origin = 'pool' ORDER BY i.pos")
        return [(r[0] - 1, r[1]) for r in rows]
