"""Small hand-made run databases for the review tests, built with the real Store API (no model needed)."""
from __future__ import annotations

import json
from pathlib import Path

from quarry_al.engine.store import Store

LABELS = ["billing", "shipping", "technical"]


def _reason(confidence: float) -> str:
    if confidence >= 0.8:
        return f"the student disagrees (teacher confidence {confidence:.2f})"
    return f"teacher confidence {confidence:.2f} < 0.80"


def make_review_db(path: Path, pending: int, texts: dict[int, str] | None = None, labeled: int = 6,
                   review: dict | None = None, descriptions: dict[str, str] | None = None) -> Path:
    """A run with `labeled` teacher-accepted items and `pending` items waiting for review, all in round 0
    (`descriptions`: label descriptions for the task)."""
    texts = texts or {}
    total = labeled + pending
    labels = [{"name": n, "description": descriptions[n]} if descriptions and n in descriptions else n for n in LABELS]
    with Store(path) as store:
        config = {"name": "review-test", "task": {"labels": labels, "instruction": "Route the message."},
                  "data": {"pool": "pool.jsonl", "eval": "eval.jsonl"},
                  "routing": {"confidence_threshold": 0.8}, "review": {"mode": "queue", **(review or {})}}
        store.initialize(json.dumps(config),
                         [(f"i{n:04d}", texts.get(n, f"message {n} about {LABELS[n % 3]} things"), LABELS[n % 3])
                          for n in range(total)], [])
        store.create_round(0, "random", [(f"i{n:04d}", None, LABELS[(n + 1) % 3], 0.5) for n in range(total)], {})
        store.commit_routing(
            0, accepted=[(f"i{n:04d}", LABELS[n % 3], 0.95, "teacher confidence 0.95 >= 0.80") for n in range(labeled)],
            to_review=[{"item_id": f"i{n:04d}", "reason": _reason(0.3 + (n % 7) / 10),
                        "teacher_label": LABELS[n % 3], "teacher_confidence": 0.3 + (n % 7) / 10,
                        "teacher_raw": f'{{"label": "{LABELS[n % 3]}", "why": "raw answer {n}"}}',
                        "student_label": LABELS[(n + 1) % 3], "student_confidence": 0.5}
                       for n in range(labeled, total)],
            timings={})
    return path
