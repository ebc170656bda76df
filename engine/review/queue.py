"""The review queue shared by every way of deciding (terminal, web app, imported batches, simulation).

An item is leased to one reviewer at a time for `lease_s` seconds, so two people never decide it
unknowingly; with overlap n it is leased to at most n distinct reviewers and completes when n of them
have decided. Each decision is an append-only row of `review_log` holding what the reviewer was shown;
a correction is a new row that supersedes the old one. When an item completes, its label (the majority
of the reviewers' labels, skips abstaining, ties to the earliest) becomes a new human row of `labels`.
Every write runs in one BEGIN IMMEDIATE transaction, so concurrent servers and processes serialize on it.
"""
from __future__ import annotations

import json
import sqlite3
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from quarry_al.engine.store import ReviewRow, Store

_SHOWN_FIELDS = ("teacher_label", "teacher_confidence", "student_label", "student_confidence", "reason")

# The reviewer's current decision per item: their latest log row for it.
_CURRENT = "SELECT * FROM review_log WHERE id IN (SELECT MAX(id) FROM review_log GROUP BY item_id, reviewer)"


class Conflict(Exception):
    """A decision that cannot be taken as asked (someone else holds the item, it is complete, ...)."""


@dataclass(frozen=True)
class Lease:
    item: ReviewRow
    reviewer: str
    expires_at: float


@dataclass(frozen=True)
class DecisionRecord:
    id: int
    item_id: str
    reviewer: str
    kind: str  # accept (the teacher's label) | relabel | skip
    label: str | None
    shown: dict[str, Any]
    supersedes: int | None
    via: str
    created_at: float

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> "DecisionRecord":
        return cls(**{**{k: row[k] for k in cls.__dataclass_fields__}, "shown": json.loads(row["shown"])})


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
    def _review(self, conn: sqlite3.Connection, item_id: str) -> ReviewRow | None:
        row = conn.execute("SELECT r.*, i.text, i.gold FROM reviews r JOIN items i USING (item_id) "
                           "WHERE r.item_id = ?", (item_id,)).fetchone()
        return None if row is None else ReviewRow(**{k: row[k] for k in ReviewRow.__dataclass_fields__})

    def item(self, item_id: str) -> ReviewRow | None:
        rows = list(self.store.iter_rows("SELECT r.*, i.text, i.gold FROM reviews r JOIN items i USING (item_id) "
                                         "WHERE r.item_id = ?", (item_id,)))
        return ReviewRow(**{k: rows[0][k] for k in ReviewRow.__dataclass_fields__}) if rows else None

    def current_decisions(self, item_id: str | None = None) -> list[DecisionRecord]:
        sql, params = f"SELECT * FROM ({_CURRENT})", ()
        if item_id is not None:
            sql, params = sql + " WHERE item_id = ?", (item_id,)
        return [DecisionRecord.from_row(r) for r in self.store.iter_rows(sql + " ORDER BY id", params)]

    def log(self) -> list[DecisionRecord]:
        return [DecisionRecord.from_row(r) for r in self.store.iter_rows("SELECT * FROM review_log ORDER BY id")]

    def previous_decision(self, reviewer: str, before: int | None = None) -> DecisionRecord | None:
        """The reviewer's latest current decision (older than log id `before`): what undo brings back."""
        sql = f"SELECT * FROM ({_CURRENT}) WHERE reviewer = ?"
        params: list[Any] = [reviewer]
        if before is not None:
            sql += " AND id < ?"
            params.append(before)
        rows = list(self.store.iter_rows(sql + " ORDER BY id DESC LIMIT 1", params))
        return DecisionRecord.from_row(rows[0]) if rows else None

    # --- leasing --------------------------------------------------------------------
    def lease(self, reviewer: str, exclude: Sequence[str] = (), max_held: int = 2) -> Lease | None:
        """The reviewer's oldest live lease outside `exclude`, else a new one on the next open item.

        `max_held` > 1 lets a client prefetch the next item while the current one is on screen.
        """
        now = self.clock()
        with self.store.transaction() as conn:
            skip = list(exclude)
            marks = ",".join("?" * len(skip)) or "''"
            held = conn.execute(
                f"SELECT x.item_id FROM leases x JOIN reviews r USING (item_id) WHERE x.reviewer = ? "
                f"AND x.expires_at >= ? AND r.status = 'pending' AND x.item_id NOT IN ({marks}) "
                f"ORDER BY x.leased_at LIMIT 1", [reviewer, now, *skip]).fetchone()
            if held is None:
                live = conn.execute("SELECT COUNT(*) FROM leases x JOIN reviews r USING (item_id) WHERE x.reviewer = ? "
                                    "AND x.expires_at >= ? AND r.status = 'pending'", (reviewer, now)).fetchone()[0]
                if live >= max_held:
                    return None
                held = conn.execute(
                    f"SELECT r.item_id FROM reviews r WHERE r.status = 'pending' "
                    f"AND r.item_id NOT IN ({marks}) "
                    f"AND NOT EXISTS (SELECT 1 FROM review_log l WHERE l.item_id = r.item_id AND l.reviewer = ?) "
                    f"AND (SELECT COUNT(DISTINCT reviewer) FROM review_log l WHERE l.item_id = r.item_id) "
                    f"  + (SELECT COUNT(*) FROM leases x WHERE x.item_id = r.item_id AND x.reviewer != ? "
                    f"     AND x.expires_at >= ?) < ? "
                    f"ORDER BY r.round, r.created_at, r.rowid LIMIT 1",  # routing order; the index serves it
                    [*skip, reviewer, reviewer, now, self.overlap]).fetchone()
                if held is None:
                    return None
            expires = now + self.lease_s
            conn.execute("INSERT INTO leases (item_id, reviewer, leased_at, expires_at) VALUES (?, ?, ?, ?) "
                         "ON CONFLICT (item_id, reviewer) DO UPDATE SET expires_at = excluded.expires_at",
                         (held[0], reviewer, now, expires))
            item = self._review(conn, held[0])
        assert item is not None
        return Lease(item=item, reviewer=reviewer, expires_at=expires)

    def release(self, reviewer: str, item_id: str, expires_at: float | None = None) -> None:
        """Give an item back; with `expires_at`, only that very lease (not one renewed since)."""
        with self.store.transaction() as conn:
            conn.execute("DELETE FROM leases WHERE item_id = ? AND reviewer = ? AND (? IS NULL OR expires_at = ?)",
                         (item_id, reviewer, expires_at, expires_at))

    # --- deciding -------------------------------------------------------------------
    def decide(self, reviewer: str, item_id: str, label: str | None, via: str,
               require_lease: bool = True) -> Outcome:
        """Record a first decision on an open item; raises Conflict instead of overwriting anyone.

        With `require_lease` the reviewer must hold a lease on the item; an expired one still counts
        while nobody else has taken the item over. Imports and simulation decide without one, but
        never on an item someone else holds.
        """
        now = self.clock()
        with self.store.transaction() as conn:
            review = self._review(conn, item_id)
            if review is None:
                raise Conflict(f"item {item_id!r} is not in the review queue")
            current = self._current(conn, item_id)
            if any(r.reviewer == reviewer for r in current):
                raise Conflict(f"item {item_id!r}: you already decided it; correct it instead")
            if review.status != "pending" or len(current) >= self.overlap:
                raise Conflict(f"item {item_id!r} was already decided by {', '.join(r.reviewer for r in current) or 'someone'}")
            others = [r[0] for r in conn.execute(
                "SELECT reviewer FROM leases WHERE item_id = ? AND reviewer != ? AND expires_at >= ?",
                (item_id, reviewer, now))]
            own = conn.execute("SELECT expires_at FROM leases WHERE item_id = ? AND reviewer = ?",
                               (item_id, reviewer)).fetchone()
            if require_lease and own is None:
                raise Conflict(f"item {item_id!r} is not leased to you")
            own_live = own is not None and own[0] >= now
            if not own_live and len(current) + len(others) >= self.overlap:
                raise Conflict(f"item {item_id!r} is now leased to {', '.join(others)}"
                               + (" (your lease expired)" if own is not None else ""))
            record = self._insert(conn, review, reviewer, label, via, supersedes=None, now=now)
            conn.execute("DELETE FROM leases WHERE item_id = ? AND reviewer = ?", (item_id, reviewer))
            return self._settle(conn, review, [*current, record], now)

    def correct(self, reviewer: str, item_id: str, label: str, via: str) -> Outcome:
        """Replace the reviewer's own earlier decision with a new record; the old one stays in the log."""
        now = self.clock()
        with self.store.transaction() as conn:
            review = self._review(conn, item_id)
            current = self._current(conn, item_id)
            mine = [r for r in current if r.reviewer == reviewer]
            if review is None or not mine:
                raise Conflict(f"item {item_id!r}: you have no decision on it to correct")
            record = self._insert(conn, review, reviewer, label, via, supersedes=mine[0].id, now=now)
            return self._settle(conn, review, [r for r in current if r.reviewer != reviewer] + [record], now)

    def _current(self, conn: sqlite3.Connection, item_id: str) -> list[DecisionRecord]:
        rows = conn.execute("SELECT * FROM review_log WHERE id IN (SELECT MAX(id) FROM review_log WHERE item_id = ? "
                            "GROUP BY reviewer) ORDER BY id", (item_id,)).fetchall()
        return [DecisionRecord.from_row(r) for r in rows]

    def _insert(self, conn: sqlite3.Connection, review: ReviewRow, reviewer: str, label: str | None, via: str,
                supersedes: int | None, now: float) -> DecisionRecord:
        kind = "skip" if label is None else "accept" if label == review.teacher_label else "relabel"
        shown = {k: getattr(review, k) for k in _SHOWN_FIELDS}
        cursor = conn.execute(
            "INSERT INTO review_log (item_id, reviewer, kind, label, shown, supersedes, via, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (review.item_id, reviewer, kind, label, json.dumps(shown), supersedes, via, now))
        return DecisionRecord(id=int(cursor.lastrowid), item_id=review.item_id, reviewer=reviewer, kind=kind,
                              label=label, shown=shown, supersedes=supersedes, via=via, created_at=now)

    def _settle(self, conn: sqlite3.Connection, review: ReviewRow, current: list[DecisionRecord],
                now: float) -> Outcome:
        """Complete the item once it has enough decisions; a changed outcome appends a new label row."""
        record = max(current, key=lambda r: r.id)
        if len(current) < self.overlap:
            return Outcome(record=record, complete=False, final_label=None)
        label = final_label([(r.id, r.label) for r in current])
        existing = conn.execute("SELECT label, source FROM labels WHERE item_id = ? ORDER BY id DESC LIMIT 1",
                                (review.item_id,)).fetchone()
        if label is None and existing is not None and existing["source"] == "human":
            raise Conflict(f"item {review.item_id!r} already has a human label; choose a label, not a skip")
        conn.execute("UPDATE reviews SET status = ?, decided_at = ? WHERE item_id = ?",
                     ("skipped" if label is None else "decided", now, review.item_id))
        conn.execute("DELETE FROM leases WHERE item_id = ?", (review.item_id,))
        if label is not None and (existing is None or existing["label"] != label or existing["source"] != "human"):
            voters = sorted({r.reviewer for r in current if r.label == label})
            reason = (f"{record.via} review ({record.kind})" if len(current) == 1
                      else f"{len(voters)} of {len(current)} reviewers chose it")
            conn.execute(
                "INSERT INTO labels (item_id, label, source, confidence, round, reason, reviewer, created_at) "
                "VALUES (?, ?, 'human', NULL, ?, ?, ?, ?)",
                (review.item_id, label, review.round, reason, "+".join(voters), now))
        return Outcome(record=record, complete=True, final_label=label)
