"""The run's labels as an instruction-tuning dataset, each record with its provenance."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator, Literal

from .task import TaskConfig
from .store import LabelRow, ReviewRow, Store

Format = Literal["chat", "alpaca", "jsonl"]
FORMATS: tuple[str, ...] = ("chat", "alpaca", "jsonl")


def provenance(row: LabelRow, teacher_model: str | None) -> dict[str, Any]:
    return {"id": row.item_id, "source": row.source, "confidence": row.confidence, "round": row.round,
            "reason": row.reason, "reviewer": row.reviewer,
            "teacher_model": teacher_model if row.source == "teacher" else None}


def teacher_said(row: LabelRow, review: ReviewRow | None) -> dict[str, Any]:
    """The teacher's label and confidence beside the final one: on a person's decision, what they were shown."""
    if row.source == "teacher":
        return {"teacher_label": row.label, "teacher_confidence": row.confidence}
    if review is not None:
        return {"teacher_label": review.teacher_label, "teacher_confidence": review.teacher_confidence}
    return {"teacher_label": None, "teacher_confidence": None}


def records(store: Store, task: TaskConfig, fmt: Format) -> Iterator[dict[str, Any]]:
    models = store.teacher_models()
    reviews = {r.item_id: r for r in store.reviews()} if fmt == "jsonl" else {}
    for row in store.current_labels():
        origin = provenance(row, models.get(row.item_id))
        if fmt == "chat":
            yield {"messages": [{"role": "system", "content": task.instruction},
                                {"role": "user", "content": row.text},
                                {"role": "assistant", "content": row.label}],
                   "provenance": origin}
        elif fmt == "alpaca":
            yield {"instruction": task.instruction, "input": row.text, "output": row.label, "provenance": origin}
        elif fmt == "jsonl":
            yield {"text": row.text, "label": row.label, **origin, **teacher_said(row, reviews.get(row.item_id))}
        else:
            raise ValueError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")


def export(store: Store, task: TaskConfig, fmt: Format, out: str | Path) -> int:
    """Write atomically; returns the number of records."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    count = 0
    with tmp.open("w", encoding="utf-8") as handle:
        for record in records(store, task, fmt):
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            count += 1
    tmp.replace(out)
    return count
