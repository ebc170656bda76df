"""The review queue's tables: pending reviews, leases, the append-only review log, and settled outcomes.

Who may decide what (leases, overlap, majority) is policy and lives in engine/review/queue.py; this
module gives it reads, and the small primitives a lease or a decision needs inside ONE BEGIN IMMEDIATE
transaction (`review_transaction`), so a decision and its settling commit together and concurrent
servers serialize on the write lock.
"""
from __future__ import annotations

import json
import sqlite3
from contextlib import contextmanager
from typing import Any, Iterator, Sequence

from .base import StoreBase
from .rows import DecisionRecord, LabelRow, ReviewRow, SettledReview

_REVIEW = "SELECT r.*, i.text, i.gold, i.input FROM reviews r JOIN items i USING (item_id)"

# Each reviewer's current decision per item: their latest log row for it.
_CURRENT = "SELECT * FROM review_log WHERE id IN (SELECT MAX(id) FROM review_log GROUP BY item_id, reviewer)"


def _review(conn: sqlite3.Connection, item_id: str) -> ReviewRow | None:
    row = conn.execute(f"{_REVIEW} WHERE r.item_id = ?", (item_id,)).fetchone()
    return None if row is None else ReviewRow.from_row(row)


class ReviewTransaction:
    """The queue's reads and writes inside one open transaction; use only within `review_transaction()`."""

    def __init__(self, conn: sqlite3.Connection):
        self._conn = conn

    def review(self, item_id: str) -> ReviewRow | None:
        return _review(self._conn, item_id)

    def current_decisions(self, item_id: str) -> list[DecisionRecord]:
        """Each reviewer's latest decision on the item, oldest first."""
        rows = self._conn.execute("SELECT * FROM review_log WHERE id IN (SELECT MAX(id) FROM review_log "
                                  "WHERE item_id = ? GROUP BY reviewer) ORDER BY id", (item_id,)).fetchall()
        return [DecisionRecord.from_row(r) for r in rows]

    # --- leases ---------------------------------------------------------------------
    def held_lease(self, reviewer: str, now: float, exclude: Sequence[str] = ()) -> str | None:
        """The item of the reviewer's oldest live lease on a pending item outside `exclude`."""
        marks = ",".join("?" * len(exclude)) or "''"
        row = self._conn.execute(
            f"SELECT x.item_id FROM leases x JOIN reviews r USING (item_id) WHERE x.reviewer = ? "
            f"AND x.expires_at >= ? AND r.status = 'pending' AND x.item_id NOT IN ({marks}) "
            f"ORDER BY x.leased_at LIMIT 1", [reviewer, now, *exclude]).fetchone()
        return None if row is None else row[0]

    def live_leases(self, reviewer: str, now: float) -> int:
        """How many pending items the reviewer holds a live lease on."""
        return int(self._conn.execute(
            "SELECT COUNT(*) FROM leases x JOIN reviews r USING (item_id) WHERE x.reviewer = ? "
            "AND x.expires_at >= ? AND r.status = 'pending'", (reviewer, now)).fetchone()[0])

    def next_open_item(self, reviewer: str, now: float, overlap: int, exclude: Sequence[str] = ()) -> str | None:
        """The first pending item, in routing order, outside `exclude`, that the reviewer has not decided and
        whose decisions plus other reviewers' live leases are fewer than `overlap`."""
        marks = ",".join("?" * len(exclude)) or "''"
        row = self._conn.execute(
            f"SELECT r.item_id FROM reviews r WHERE r.status = 'pending' "
            f"AND r.item_id NOT IN ({marks}) "
            f"AND NOT EXISTS (SELECT 1 FROM review_log l WHERE l.item_id = r.item_id AND l.reviewer = ?) "
            f"AND (SELECT COUNT(DISTINCT reviewer) FROM review_log l WHERE l.item_id = r.item_id) "
            f"  + (SELECT COUNT(*) FROM leases x WHERE x.item_id = r.item_id AND x.reviewer != ? "
            f"     AND x.expires_at >= ?) < ? "
            f"ORDER BY r.round, r.created_at, r.rowid LIMIT 1",  # routing order; the index serves it
            [*exclude, reviewer, reviewer, now, overlap]).fetchone()
        return None if row is None else row[0]

    def put_lease(self, item_id: str, reviewer: str, now: float, expires_at: float) -> None:
        """Lease the item to the reviewer, or renew their lease on it (its leased_at stays)."""
        self._conn.execute("INSERT INTO leases (item_id, reviewer, leased_at, expires_at) VALUES (?, ?, ?, ?) "
                           "ON CONFLICT (item_id, reviewer) DO UPDATE SET expires_at = excluded.expires_at",
                           (item_id, reviewer, now, expires_at))

    def lease_expiry(self, item_id: str, reviewer: str) -> float | None:
        """When the reviewer's lease on the item expires (also if it already has); None: no lease."""
        row = self._conn.execute("SELECT expires_at FROM leases WHERE item_id = ? AND reviewer = ?",
                                 (item_id, reviewer)).fetchone()
        return None if row is None else row[0]

    def other_holders(self, item_id: str, reviewer: str, now: float) -> list[str]:
        """The other reviewers with a live lease on the item."""
        return [r[0] for r in self._conn.execute(
            "SELECT reviewer FROM leases WHERE item_id = ? AND reviewer != ? AND expires_at >= ?",
            (item_id, reviewer, now))]

    def drop_lease(self, item_id: str, reviewer: str) -> None:
        self._conn.execute("DELETE FROM leases WHERE item_id = ? AND reviewer = ?", (item_id, reviewer))

    # --- decisions ------------------------------------------------------------------
    def append_decision(self, item_id: str, reviewer: str, kind: str, label: str | None, shown: dict[str, Any],
                        supersedes: int | None, via: str, now: float) -> DecisionRecord:
        """A new review_log row; the log is append-only, a correction supersedes, never overwrites."""
        cursor = self._conn.execute(
            "INSERT INTO review_log (item_id, reviewer, kind, label, shown, supersedes, via, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (item_id, reviewer, kind, label, json.dumps(shown), supersedes, via, now))
        return DecisionRecord(id=int(cursor.lastrowid), item_id=item_id, reviewer=reviewer, kind=kind,
                              label=label, shown=shown, supersedes=supersedes, via=via, created_at=now)

    def latest_label(self, item_id: str) -> LabelRow | None:
        """The item's current label row (any source), None if it has none."""
        row = self._conn.execute("SELECT l.*, i.text, i.gold, i.input FROM labels l JOIN items i USING (item_id) "
                                 "WHERE l.item_id = ? ORDER BY l.id DESC LIMIT 1", (item_id,)).fetchone()
        return None if row is None else LabelRow.from_row(row)

    def settle(self, item_id: str, status: str, now: float) -> None:
        """Mark the review decided or skipped and give back every lease on it."""
        self._conn.execute("UPDATE reviews SET status = ?, decided_at = ? WHERE item_id = ?", (status, now, item_id))
        self._conn.execute("DELETE FROM leases WHERE item_id = ?", (item_id,))

    def add_human_label(self, item_id: str, label: str, round_: int, reason: str, reviewer: str, now: float) -> None:
        self._conn.execute(
            "INSERT INTO labels (item_id, label, source, confidence, round, reason, reviewer, created_at) "
            "VALUES (?, ?, 'human', NULL, ?, ?, ?, ?)", (item_id, label, round_, reason, reviewer, now))


class ReviewsMixin(StoreBase):
    @contextmanager
    def review_transaction(self) -> Iterator[ReviewTransaction]:
        """One BEGIN IMMEDIATE transaction for a lease or a decision: committed when the block ends,
        rolled back when it raises (a refused decision leaves nothing behind)."""
        with self._transaction() as conn:
            yield ReviewTransaction(conn)

    # --- pending and settled reviews ------------------------------------------------
    def reviews(self, status: str | None = None, round_: int | None = None) -> list[ReviewRow]:
        sql = f"{_REVIEW} WHERE 1=1"
        params: list[Any] = []
        if status is not None:
            sql += " AND r.status = ?"
            params.append(status)
        if round_ is not None:
            sql += " AND r.round = ?"
            params.append(round_)
        rows = self._rows(sql + " ORDER BY r.round, r.created_at, i.pos", params)
        return [ReviewRow.from_row(r) for r in rows]

    def review(self, item_id: str) -> ReviewRow | None:
        return _review(self._conn, item_id)

    def pending_count(self, round_: int | None = None) -> int:
        if round_ is None:
            return int(self._value("SELECT COUNT(*) FROM reviews WHERE status = 'pending'"))
        return int(self._value("SELECT COUNT(*) FROM reviews WHERE status = 'pending' AND round = ?", (round_,)))

    def review_counts(self) -> dict[str, int]:
        """Reviews per status (pending, decided, skipped); a status with none is absent."""
        return {r[0]: r[1] for r in self._rows("SELECT status, COUNT(*) FROM reviews GROUP BY status")}

    def leased_count(self, now: float) -> int:
        """Pending items someone holds a live lease on."""
        return int(self._value("SELECT COUNT(DISTINCT x.item_id) FROM leases x JOIN reviews r USING (item_id) "
                               "WHERE x.expires_at >= ? AND r.status = 'pending'", (now,)))

    def settled_reviews(self) -> list[SettledReview]:
        """Decided and skipped reviews with what the teacher said and the item's latest human label."""
        rows = self._rows(
            "SELECT r.item_id, r.status, r.teacher_label, r.teacher_confidence, "
            "(SELECT label FROM labels WHERE item_id = r.item_id AND source = 'human' ORDER BY id DESC LIMIT 1) "
            "AS human_label FROM reviews r WHERE r.status != 'pending' ORDER BY r.round, r.created_at, r.rowid")
        return [SettledReview.from_row(r) for r in rows]

    # --- the review log -------------------------------------------------------------
    def review_log(self) -> list[DecisionRecord]:
        """Every decision and correction ever taken, oldest first."""
        return [DecisionRecord.from_row(r) for r in self._rows("SELECT * FROM review_log ORDER BY id")]

    def current_decisions(self, item_id: str | None = None) -> list[DecisionRecord]:
        """Each reviewer's latest decision per item (of one item, or of all), oldest first."""
        sql, params = f"SELECT * FROM ({_CURRENT})", ()
        if item_id is not None:
            sql, params = sql + " WHERE item_id = ?", (item_id,)
        return [DecisionRecord.from_row(r) for r in self._rows(sql + " ORDER BY id", params)]

    def previous_decision(self, reviewer: str, before: int | None = None) -> DecisionRecord | None:
        """The reviewer's latest current decision (older than log id `before`): what undo brings back."""
        sql = f"SELECT * FROM ({_CURRENT}) WHERE reviewer = ?"
        params: list[Any] = [reviewer]
        if before is not None:
            sql += " AND id < ?"
            params.append(before)
        rows = self._rows(sql + " ORDER BY id DESC LIMIT 1", params)
        return DecisionRecord.from_row(rows[0]) if rows else None

    # --- leases outside a decision --------------------------------------------------
    def release_lease(self, reviewer: str, item_id: str, expires_at: float | None = None) -> None:
        """Give an item back; with `expires_at`, only that very lease (not one renewed since)."""
        with self._transaction() as conn:
            conn.execute("DELETE FROM leases WHERE item_id = ? AND reviewer = ? AND (? IS NULL OR expires_at = ?)",
                         (item_id, reviewer, expires_at, expires_at))
