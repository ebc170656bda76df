"""The record every job's data handling works with: one validated row of a pool, seed or eval source."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Record:
    item_id: str
    text: str
    label: str | None  # the gold label, when the file has one (generation: the reference answer)
    where: str  # "path:line", or "path:row N" for parquet files, datasets and JSON arrays
    input: str | None = None  # generation: the instruction's input (text is the instruction)
