"""What the review dashboard shows, computed from the run database alone."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Sequence

from .agreement import Agreement, agreement
from .queue import ReviewQueue

THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95)


@dataclass(frozen=True)
class ThresholdRow:
    threshold: float
    reviewed: int  # reviewed items whose teacher confidence reaches the threshold
    precision: float | None  # share of them where the reviewers kept the teacher's label
    configured: bool


@dataclass(frozen=True)
class Dashboard:
    name: str
    rounds_done: int
    phase: str | None
    stop_reason: str | None
    pool: int
    requested: int
    labels_by_source: dict[str, int]
    pending: int
    leased: int
    decided: int
    skipped: int
    threshold: float
    thresholds: list[ThresholdRow]
    agreement: Agreement
    decisions_last_hour: int
    rounds: list[tuple[int, str, int | None, float | None]]  # round, phase, labeled total, eval accuracy


def teacher_precision(reviewed: Sequence[tuple[float | None, str | None, str]], thresholds: Sequence[float],
                      configured: float) -> list[ThresholdRow]:
    """reviewed: (teacher confidence, teacher label, human label); what auto-accepting at each threshold would have got right."""
    rows = []
    for t in sorted({*thresholds, configured}):
        above = [(tl, hl) for conf, tl, hl in reviewed if conf is not None and tl is not None and conf >= t - 1e-9]
        rows.append(ThresholdRow(threshold=t, reviewed=len(above),
                                 precision=sum(tl == hl for tl, hl in above) / len(above) if above else None,
                                 configured=t == configured))
    return rows


def build_dashboard(queue: ReviewQueue, name: str, threshold: float) -> Dashboard:
    store = queue.store
    rounds = store.rounds()
    open_round = store.open_round()
    now = time.time()
    statuses = store.review_counts()
    leased = store.leased_count(now)
    settled = store.settled_reviews()
    reviewed = [(r.teacher_confidence, r.teacher_label, r.human_label) for r in settled
                if r.status == "decided" and r.human_label is not None]
    current = queue.current_decisions()
    finals = {r.item_id: r.human_label for r in settled}
    log = queue.log()
    return Dashboard(
        name=name, rounds_done=sum(r.phase == "done" for r in rounds),
        phase=None if open_round is None else f"round {open_round.round}: {open_round.phase}",
        stop_reason=store.meta("stop_reason"), pool=len(store.pool_items()), requested=store.items_requested(),
        labels_by_source=store.label_counts(), pending=statuses.get("pending", 0), leased=leased,
        decided=statuses.get("decided", 0), skipped=statuses.get("skipped", 0), threshold=threshold,
        thresholds=teacher_precision(reviewed, THRESHOLDS, threshold),
        agreement=agreement([(r.item_id, r.reviewer, r.label) for r in current], finals,
                            [(r.reviewer, r.created_at, r.supersedes) for r in log]),
        decisions_last_hour=sum(r.created_at >= now - 3600 for r in log),
        rounds=[(r.round, r.phase, (r.metrics or {}).get("labeled_total"), (r.metrics or {}).get("eval_accuracy"))
                for r in rounds])
