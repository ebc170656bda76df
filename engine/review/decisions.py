"""Decisions made outside Quarry, imported from a JSON Lines file: {"id": ..., "label": ...} or
{"id": ..., "skip": true}; for a generation task {"id": ..., "answer": ..., "how": "edit" | "rewrite"}
("how" is optional: a changed answer counts as an edit)."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from ..core.errors import QuarryError
from .queue import Conflict, ReviewQueue


class DecisionError(QuarryError, ValueError):
    pass


@dataclass(frozen=True)
class ImportSummary:
    decided: int
    skipped: int
    not_pending: list[str]


Check = Callable[[Any], "str | None"]  # why a decided value is not acceptable (None: it is)


def import_decisions(queue: ReviewQueue, path: str | Path, label_names: Sequence[str], reviewer: str,
                     check: Check | None = None, key: str = "label") -> ImportSummary:
    """Check the whole file first, then apply: a bad line rejects the file before anything changes.
    `key` is the decided value's field ("label", or "answer" for a generation task) and `check` its test
    (default: one of `label_names`)."""
    path = Path(path)
    allowed = set(label_names)
    check = check or (lambda value: None if value in allowed else f"label {value!r} is not one of {sorted(allowed)}")
    parsed: list[tuple[str, str | None, str | None]] = []
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
            parsed.append((str(row["id"]), None, None))
            continue
        problem = check(row.get(key))
        if problem:
            raise DecisionError(f"{where}: {problem}")
        how = row.get("how", "edit" if key == "answer" else None)
        if how not in ((None,) if key == "label" else ("edit", "rewrite")):
            raise DecisionError(f"{where}: how: {how!r} must be edit or rewrite")
        parsed.append((str(row["id"]), row[key], how))
    known = queue.store.items_by_id([item_id for item_id, _, _ in parsed])
    unknown = [item_id for item_id, _, _ in parsed if item_id not in known]
    if unknown:
        raise DecisionError(f"{path}: unknown item id {unknown[0]!r}" + (f" and {len(unknown) - 1} more" if len(unknown) > 1 else ""))
    decided = skipped = 0
    not_pending = []
    for item_id, label, how in parsed:
        try:
            queue.decide(reviewer, item_id, label, via="import", require_lease=False, edit=how)
        except Conflict:
            not_pending.append(item_id)
            continue
        if label is None:
            skipped += 1
        else:
            decided += 1
    return ImportSummary(decided=decided, skipped=skipped, not_pending=not_pending)
