"""Simulated reviewers answer from the gold labels: for benchmarks, where people are not in the loop."""
from __future__ import annotations

from ..core.errors import QuarryError
from .queue import ReviewQueue
from ..store import Store


class ReviewError(QuarryError, ValueError):
    pass


def simulate_review(store: Store) -> int:
    """Decide every pending item with its gold label; returns how many were decided."""
    pending = store.reviews(status="pending")
    missing = [r.item_id for r in pending if r.gold is None]
    if missing:
        raise ReviewError(f"review.mode simulate needs gold labels (data.label_field), but item '{missing[0]}' "
                          f"and {len(missing) - 1} more have none; use review.mode queue")
    queue = ReviewQueue(store)
    for review in pending:
        queue.decide("simulated", review.item_id, review.gold, via="simulate", require_lease=False)
    return len(pending)
