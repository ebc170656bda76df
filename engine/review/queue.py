"""The review queue shared by every way of deciding (terminal, web app, imported batches, simulation).

An item is leased to one reviewer at a time for `lease_s` seconds, so two people never decide it
unknowingly; with overlap n it is leased to at most n distinct reviewers and completes when n of them
have decided. Each decision is an append-only row of `review_log` holding what the reviewer was shown;
a correction is a new row that supersedes the old one. When an item completes, its label (the majority
of the reviewers' labels, skips abstaining, ties to the earliest) becomes a new human row of `labels`.
This module is the policy; the store (engine/store/reviews.py) holds the SQL and runs each lease and each
decision with its settling as one BEGIN IMMEDIATE transaction, so concurrent servers and processes
serialize on it.
"""
from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from typing import Callable, Sequence

from ..store import DecisionRecord, Lease, ReviewRow, ReviewTransaction, Store

__all__ = ["Conflict", "DecisionRecord", "Lease", "Outcome", "ReviewQueue", "final_label"]

_SHOWN_FIELDS = ("teacher_label", "teacher_confidence", "student_label", "student_confidence", "reason")
# How a person changed a generation task's answer: in place, or rejected and written anew (None: a relabel).
EDIT_KINDS = frozenset({None, "edit", "rewrite"})


class Conflict(Exception):
    """A decision that cannot be taken as asked (someone else holds the item, it is complete, ...)."""


@dataclass(frozen=True)
class Outcome:
    record: DecisionRecord
    complete: bool  # the item has all the decisions it needs
    final_label: str | None  # the item's human label once complete (None: skipped)


def final_label(votes: Sequence[tuple[int, str | None]]) -> str | None:
    """Majority of (log id, label) votes; skips abstain and ties go to the label chosen first."""
    labels = [(i, label) for i, label in sorted(votes) if label is not None]
    if not labels:
        return None
    counts = Counter(label for _, label in labels)
    best = max(counts.values())
    return next(label for _, label in labels if counts[label] == best)


class ReviewQueue:
    def __init__(self, store: Store, overlap: int = 1, lease_s: float = 300.0,
                 clock: Callable[[], float] = time.time):
        if overlap < 1:
            raise ValueError("review.overlap: must be at least 1")
        self.store, self.overlap, self.lease_s, self.clock = store, overlap, lease_s, clock

    # --- reading --------------------------------------------------------------------
    def item(self, item_id: str) -> ReviewRow | None:
        return self.store.review(item_id)

    def current_decisions(self, item_id: str | None = None) -> list[DecisionRecord]:
        return self.store.current_decisions(item_id)

    def log(self) -> list[DecisionRecord]:
        return self.store.review_log()

    def previous_decision(self, reviewer: str, before: int | None = None) -> DecisionRecord | None:
        """The reviewer's latest current decision (older than log id `before`): what undo brings back."""
        return self.store.previous_decision(reviewer, before)

    # --- leasing --------------------------------------------------------------------
    def lease(self, reviewer: str, exclude: Sequence[str] = (), max_held: int = 2) -> Lease | None:
        """The reviewer's oldest live lease outside `exclude`, else a new one on the next open item.

        `max_held` > 1 lets a client prefetch the next item while the current one is on screen.
        """
        now = self.clock()
        skip = list(exclude)
        with self.store.review_transaction() as tx:
            held = tx.held_lease(reviewer, now, skip)
            if held is None:
                if tx.live_leases(reviewer, now) >= max_held:
                    return None
                held = tx.next_open_item(reviewer, now, self.overlap, skip)
                if held is None:
                    return None
            expires = now + self.lease_s
            tx.put_lease(held, reviewer, now, expires)
            item = tx.review(held)
        assert item is not None
        return Lease(item=item, reviewer=reviewer, expires_at=expires)

    def renew(self, reviewer: str, item_ids: Sequence[str]) -> dict[str, float | None]:
        """Extend the reviewer's leases on these items (a page that is still open); per item the new
        expiry, or None when the lease is gone: released, decided, or (expired) taken by someone else."""
        now = self.clock()
        renewed: dict[str, float | None] = {}
        with self.store.review_transaction() as tx:
            for item_id in item_ids:
                review, own = tx.review(item_id), tx.lease_expiry(item_id, reviewer)
                lost = review is None or review.status != "pending" or own is None
                if not lost and own < now:  # expired: still ours only while nobody else filled the slots
                    taken = len(tx.current_decisions(item_id)) + len(tx.other_holders(item_id, reviewer, now))
                    lost = taken >= self.overlap
                if lost:
                    renewed[item_id] = None
                    continue
                tx.put_lease(item_id, reviewer, now, now + self.lease_s)
                renewed[item_id] = now + self.lease_s
        return renewed

    def release(self, reviewer: str, item_id: str, expires_at: float | None = None) -> None:
        """Give an item back; with `expires_at`, only that very lease (not one renewed since)."""
        self.store.release_lease(reviewer, item_id, expires_at)

    # --- deciding -------------------------------------------------------------------
    def decide(self, reviewer: str, item_id: str, label: str | None, via: str,
               require_lease: bool = True, edit: str | None = None) -> Outcome:
        """Record a first decision on an open item; raises Conflict instead of overwriting anyone.

        With `require_lease` the reviewer must hold a lease on the item; an expired one still counts
        while nobody else has taken the item over. Imports and simulation decide without one, but
        never on an item someone else holds. `edit` ("edit" or "rewrite") says how a person who changed
        a generation task's answer went about it; a changed classification label is a relabel.
        """
        now = self.clock()
        with self.store.review_transaction() as tx:
            review = tx.review(item_id)
            if review is None:
                raise Conflict(f"item {item_id!r} is not in the review queue")
            current = tx.current_decisions(item_id)
            if any(r.reviewer == reviewer for r in current):
                raise Conflict(f"item {item_id!r}: you already decided it; correct it instead")
            if review.status != "pending" or len(current) >= self.overlap:
                raise Conflict(f"item {item_id!r} was already decided by {', '.join(r.reviewer for r in current) or 'someone'}")
            others = tx.other_holders(item_id, reviewer, now)
            own = tx.lease_expiry(item_id, reviewer)
            if require_lease and own is None:
                raise Conflict(f"item {item_id!r} is not leased to you")
            own_live = own is not None and own >= now
            if not own_live and len(current) + len(others) >= self.overlap:
                raise Conflict(f"item {item_id!r} is now leased to {', '.join(others)}"
                               + (" (your lease expired)" if own is not None else ""))
            record = self._append(tx, review, reviewer, label, via, supersedes=None, now=now, edit=edit)
            tx.drop_lease(item_id, reviewer)
            return self._settle(tx, review, [*current, record], now)

    def correct(self, reviewer: str, item_id: str, label: str, via: str, edit: str | None = None) -> Outcome:
        """Replace the reviewer's own earlier decision with a new record; the old one stays in the log."""
        now = self.clock()
        with self.store.review_transaction() as tx:
            review = tx.review(item_id)
            current = tx.current_decisions(item_id)
            mine = [r for r in current if r.reviewer == reviewer]
            if review is None or not mine:
                raise Conflict(f"item {item_id!r}: you have no decision on it to correct")
            record = self._append(tx, review, reviewer, label, via, supersedes=mine[0].id, now=now, edit=edit)
            return self._settle(tx, review, [r for r in current if r.reviewer != reviewer] + [record], now)

    def _append(self, tx: ReviewTransaction, review: ReviewRow, reviewer: str, label: str | None, via: str,
                supersedes: int | None, now: float, edit: str | None = None) -> DecisionRecord:
        if edit not in EDIT_KINDS:
            raise ValueError(f"edit must be one of {sorted(k for k in EDIT_KINDS if k)}, not {edit!r}")
        kind = "skip" if label is None else "accept" if label == review.teacher_label else edit or "relabel"
        shown = {k: getattr(review, k) for k in _SHOWN_FIELDS}
        return tx.append_decision(review.item_id, reviewer, kind, label, shown, supersedes, via, now)

    def _settle(self, tx: ReviewTransaction, review: ReviewRow, current: list[DecisionRecord],
                now: float) -> Outcome:
        """Complete the item once it has enough decisions; a changed outcome appends a new label row.
        Runs inside the decision's transaction: a Conflict here takes the decision back too."""
        record = max(current, key=lambda r: r.id)
        if len(current) < self.overlap:
            return Outcome(record=record, complete=False, final_label=None)
        label = final_label([(r.id, r.label) for r in current])
        existing = tx.latest_label(review.item_id)
        if label is None and existing is not None and existing.source == "human":
            raise Conflict(f"item {review.item_id!r} already has a human label; choose a label, not a skip")
        tx.settle(review.item_id, "skipped" if label is None else "decided", now)
        if label is not None and (existing is None or existing.label != label or existing.source != "human"):
            voters = sorted({r.reviewer for r in current if r.label == label})
            reason = (f"{record.via} review ({record.kind})" if len(current) == 1
                      else f"{len(voters)} of {len(current)} reviewers chose it")
            tx.add_human_label(review.item_id, label, review.round, reason, "+".join(voters), now)
        return Outcome(record=record, complete=True, final_label=label)
