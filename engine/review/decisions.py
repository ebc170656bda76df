"""Decisions made outside Quarry, imported from a JSON Lines file: {"id": ..., "label": ...} or {"id": ..., "skip": true}."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ..core.errors import QuarryError
from .queue import Conflict, ReviewQueue


class DecisionError(QuarryError, ValueError):
    pass


@dataclass(frozen=True)
class ImportSummary:
    decided: int
    skipped: int
    not_pending: list[str]


def import_decisions(queue: ReviewQueue, path: str | Path, label_names: Sequence[str], reviewer: str) -> ImportSummary:
    """Check the whole file first, then apply: a bad line rejects the file before anything changes."""
    path = Path(path)
    allowed = set(label_names)
    parsed: list[tuple[str, str | None]] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DecisionError(f"{where}: not valid JSON ({exc.msg})") from None
        if not isinstance(row, dict) or "id" not in row:
            raise DecisionError(f"{where}: expected an object with an 'id'")
        if row.get("skip") is True:
            parsed.append((str(row["id"]), None))
            continue
        label = row.get("label")
        if label not in allowed:
            raise DecisionError(f"{where}: label {label!r} is not one of {sorted(allowed)}")
        parsed.append((str(row["id"]), label))
    known = queue.store.items_by_id([item_id for item_id, _ in parsed])
    unknown = [item_id for item_id, _ in parsed if item_id not in known]
    if unknown:
        raise DecisionError(f"{path}: unknown item id {unknown[0]!r}" + (f" and {len(unknown) - 1} more" if len(unknown) > 1 else ""))
    decided = skipped = 0
    not_pending = []
    for item_id, label in parsed:
        try:
            queue.decide(reviewer, item_id, label, via="import", require_lease=False)
        except Conflict:
            not_pending.append(item_id)
            continue
        if label is None:
            skipped += 1
        else:
            decided += 1
    return ImportSummary(decided=decided, skipped=skipped, not_pending=not_pending)
