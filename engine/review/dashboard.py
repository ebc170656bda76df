"""What the review dashboard shows, computed from the run database alone."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Sequence

from ..config import JobConfig
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
    planned: int  # items the job will send for labeling if it runs to its last round (budget and pool allowing)
    requested_states: dict[str, int]  # where the requested items stand now; the values add up to `requested`
    labels_by_source: dict[str, int]  # current labels now (seed ones included); the values add up to `labels_now`
    pending: int
    leased: int
    decided: int
    skipped: int
    threshold: float
    thresholds: list[ThresholdRow]
    agreement: Agreement
    decisions_last_hour: int
    rounds: list[tuple[int, str, int | None, float | None]]  # round, phase, labels trained on, eval accuracy

    @property
    def labels_now(self) -> int:
        return sum(self.labels_by_source.values())

    @property
    def requested_share(self) -> float:
        return min(1.0, self.requested / self.planned) if self.planned else 1.0

    @property
    def reviewed_share(self) -> float:
        total = self.pending + self.decided + self.skipped
        return (self.decided + self.skipped) / total if total else 1.0


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


def planned_requests(config: JobConfig, pool: int) -> int:
    """Items the job sends for labeling over all its rounds, within its label budget and its pool."""
    loop = config.loop
    planned = loop.initial_labels + loop.rounds * loop.batch_size
    return min(planned, loop.label_budget or planned, pool)


def build_dashboard(queue: ReviewQueue, config: JobConfig, threshold: float | None = None) -> Dashboard:
    """The dashboard's figures, all read now. The rounds' "labels trained on" are what each finished
    round trained with; the labels table counts every label now, so it runs ahead of the last round."""
    store = queue.store
    threshold = config.routing.confidence_threshold if threshold is None else threshold
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
    pool = store.pool_size()
    return Dashboard(
        name=config.name, rounds_done=sum(r.phase == "done" for r in rounds),
        phase=None if open_round is None else f"round {open_round.round}: {open_round.phase}",
        stop_reason=store.meta("stop_reason"), pool=pool, requested=store.items_requested(),
        planned=planned_requests(config, pool), requested_states=store.selection_states(),
        labels_by_source=store.label_counts(), pending=statuses.get("pending", 0), leased=leased,
        decided=statuses.get("decided", 0), skipped=statuses.get("skipped", 0), threshold=threshold,
        thresholds=teacher_precision(reviewed, THRESHOLDS, threshold),
        agreement=agreement([(r.item_id, r.reviewer, r.label) for r in current], finals,
                            [(r.reviewer, r.created_at, r.supersedes) for r in log]),
        decisions_last_hour=sum(r.created_at >= now - 3600 for r in log),
        rounds=[(r.round, r.phase, (r.metrics or {}).get("labeled_total"), (r.metrics or {}).get("eval_accuracy"))
                for r in rounds])
