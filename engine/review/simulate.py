"""Simulated reviewers answer from gold: for benchmarks, where people are not in the loop. What they decide
is the task kind's (engine/tasks/): the gold label, or the teacher's answer when it passes the task's check
against the reference and the reference when it does not."""
from __future__ import annotations

from typing import Callable, Sequence

from ..core.errors import QuarryError
from .queue import ReviewQueue
from ..store import ReviewRow, Store
from ..tasks.base import SimulatedDecision


class ReviewError(QuarryError, ValueError):
    pass


Decide = Callable[[Sequence[ReviewRow]], Sequence[SimulatedDecision]]


def simulate_review(store: Store, decide: Decide | None = None) -> int:
    """Decide every pending item (by default with its gold label); returns how many were decided."""
    pending = store.reviews(status="pending")
    missing = [r.item_id for r in pending if r.gold is None]
    if missing:
        raise ReviewError(f"review.mode simulate needs gold labels or reference answers (data.label_field), but item "
                          f"'{missing[0]}' and {len(missing) - 1} more have none; use review.mode queue")
    decisions = decide(pending) if decide is not None else [SimulatedDecision(r.gold) for r in pending]
    queue = ReviewQueue(store)
    for review, decision in zip(pending, decisions):
        queue.decide("simulated", review.item_id, decision.answer, via="simulate", require_lease=False,
                     edit=decision.edit)
    return len(pending)
