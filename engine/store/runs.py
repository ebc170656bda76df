"""What the loop writes and reads: the run's setup, items, rounds, teacher calls and labels.

Each step of a round is committed before the next one starts, so a run killed at any moment resumes
from the last committed step. Labels are append-only: an item's current label is its latest row, and
the history stays for audit.
"""
from __future__ import annotations

import json
import sqlite3
import time
from typing import Any, Iterable, Mapping, Sequence

from .base import StoreBase, StoreError
from .rows import Item, LabelRow, RoundRow, SelectionRow, TeacherCall
from .schema import SCHEMA_VERSION
from ..teacher.base import TeacherResult

# The current label of each item: its latest row in the append-only labels table.
_CURRENT_LABELS = """
SELECT l.* FROM labels l
JOIN (SELECT item_id, MAX(id) AS id FROM labels GROUP BY item_id) latest ON latest.id = l.id
"""


class RunsMixin(StoreBase):
    # --- setup ----------------------------------------------------------------------
    def is_initialized(self) -> bool:
        return self._value("SELECT value FROM meta WHERE key = 'config'") is not None

    def initialize(self, config_json: str, pool: Iterable[tuple[str, str, str | None]],
                   seed: Iterable[tuple[str, str, str]], inputs: Mapping[str, str] | None = None) -> None:
        """Insert the pool, the seed labels and the config snapshot in one transaction; `inputs` are the
        generation items' inputs by item id (their text is the instruction, their gold the reference)."""
        inputs = inputs or {}
        now = time.time()
        with self._transaction() as conn:
            conn.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            conn.execute("INSERT INTO meta VALUES ('config', ?)", (config_json,))
            conn.execute("INSERT INTO meta VALUES ('created_at', ?)", (str(now),))
            conn.executemany("INSERT INTO items (item_id, text, gold, origin, input) VALUES (?, ?, ?, 'pool', ?)",
                             [(i, t, gold, inputs.get(i)) for i, t, gold in pool])
            seed = list(seed)
            conn.executemany("INSERT INTO items (item_id, text, gold, origin, input) VALUES (?, ?, ?, 'seed', ?)",
                             [(i, t, label, inputs.get(i)) for i, t, label in seed])
            conn.executemany(
                "INSERT INTO labels (item_id, label, source, confidence, round, reason, created_at) "
                "VALUES (?, ?, 'seed', NULL, 0, 'seed file', ?)", [(i, label, now) for i, _, label in seed])

    def config_json(self) -> str:
        value = self._value("SELECT value FROM meta WHERE key = 'config'")
        if value is None:
            raise StoreError(f"{self.path}: not an initialized run database")
        return value

    def set_meta(self, key: str, value: str) -> None:
        with self._transaction() as conn:
            conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def meta(self, key: str) -> str | None:
        return self._value("SELECT value FROM meta WHERE key = ?", (key,))

    # --- items ----------------------------------------------------------------------
    def pool_items(self) -> list[Item]:
        return [Item.from_row(r) for r in self._rows("SELECT * FROM items WHERE origin = 'pool' ORDER BY pos")]

    def items_by_id(self, item_ids: Sequence[str]) -> dict[str, Item]:
        found: dict[str, Item] = {}
        for start in range(0, len(item_ids), 500):
            chunk = list(item_ids[start:start + 500])
            marks = ",".join("?" * len(chunk))
            for r in self._rows(f"SELECT * FROM items WHERE item_id IN ({marks})", chunk):
                found[r["item_id"]] = Item.from_row(r)
        return found

    def requested_ids(self) -> set[str]:
        """Items already sent for labeling (selected in any round) or labeled from the seed file."""
        selected = {r[0] for r in self._rows("SELECT item_id FROM selections")}
        return selected | {r[0] for r in self._rows("SELECT item_id FROM labels")}

    def items_requested(self) -> int:
        return int(self._value("SELECT COUNT(*) FROM selections"))

    # --- rounds ---------------------------------------------------------------------
    def rounds(self) -> list[RoundRow]:
        return [RoundRow.from_row(r) for r in self._rows("SELECT * FROM rounds ORDER BY round")]

    def open_round(self) -> RoundRow | None:
        rows = self._rows("SELECT * FROM rounds WHERE phase != 'done' ORDER BY round LIMIT 1")
        return RoundRow.from_row(rows[0]) if rows else None

    def history(self) -> list[dict[str, Any]]:
        return [r.metrics for r in self.rounds() if r.phase == "done" and r.metrics is not None]

    def create_round(self, round_: int, strategy: str, selected: Sequence[tuple[str, float | None, str | None, float | None]],
                     timings: dict[str, float]) -> None:
        """Commit a round's selection: (item_id, utility, student_label, student_confidence), best first."""
        with self._transaction() as conn:
            conn.execute("INSERT INTO rounds (round, phase, strategy, started_at, timings) VALUES (?, 'selected', ?, ?, ?)",
                         (round_, strategy, time.time(), json.dumps(timings)))
            conn.executemany(
                "INSERT INTO selections (round, item_id, rank, utility, student_label, student_confidence) VALUES (?, ?, ?, ?, ?, ?)",
                [(round_, item_id, rank, utility, s_label, s_conf)
                 for rank, (item_id, utility, s_label, s_conf) in enumerate(selected)])

    def selection(self, round_: int) -> list[SelectionRow]:
        rows = self._rows("SELECT s.*, i.text, i.gold, i.input FROM selections s JOIN items i USING (item_id) "
                          "WHERE s.round = ? ORDER BY s.rank", (round_,))
        return [SelectionRow.from_row(r) for r in rows]

    def set_phase(self, round_: int, phase: str, timings: dict[str, float] | None = None,
                  metrics: dict[str, Any] | None = None) -> None:
        with self._transaction() as conn:
            _set_phase(conn, round_, phase, timings, metrics)

    def set_stop_reason(self, reason: str) -> None:
        with self._transaction() as conn:
            conn.execute("UPDATE rounds SET stop_reason = ? WHERE round = (SELECT MAX(round) FROM rounds)", (reason,))
            conn.execute("INSERT OR REPLACE INTO meta VALUES ('stop_reason', ?)", (reason,))

    # --- teacher calls --------------------------------------------------------------
    def record_teacher_call(self, item_id: str, round_: int, model: str, result: TeacherResult) -> None:
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO teacher_calls (item_id, round, model, prompt_hash, label, confidence, distribution, raw, "
                "error, error_message, prompt_tokens, completion_tokens, latency_s, created_at, cached, cost, "
                "confidence_method, confidence_note, text, signals) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (item_id, round_, model, result.prompt_hash, result.label, result.confidence,
                 json.dumps(result.distribution) if result.distribution is not None else None, result.raw,
                 result.error, result.error_message, result.usage.prompt_tokens, result.usage.completion_tokens,
                 result.latency_s, time.time(), int(result.cached), result.cost, result.confidence_method or None,
                 result.confidence_note, result.text,
                 json.dumps(result.signals) if result.signals is not None else None))

    def teacher_calls(self, round_: int | None = None) -> list[TeacherCall]:
        if round_ is None:
            rows = self._rows("SELECT * FROM teacher_calls ORDER BY id")
        else:
            rows = self._rows("SELECT * FROM teacher_calls WHERE round = ? ORDER BY id", (round_,))
        return [TeacherCall.from_row(r) for r in rows]

    def teacher_usage(self, round_: int | None = None) -> dict[str, Any]:
        """Calls, cache hits, failures, paid tokens and cost, of one round or (None) of the run.
        Tokens count only calls that were paid for: a cache hit's tokens were paid by an earlier call."""
        where, params = ("WHERE round = ?", (round_,)) if round_ is not None else ("", ())
        row = self._rows(
            "SELECT COUNT(*), COALESCE(SUM(cached), 0), COALESCE(SUM(error IS NOT NULL), 0), "
            "COALESCE(SUM(CASE WHEN cached = 0 THEN prompt_tokens END), 0), "
            "COALESCE(SUM(CASE WHEN cached = 0 THEN completion_tokens END), 0), COALESCE(SUM(cost), 0.0) "
            f"FROM teacher_calls {where}", params)[0]
        keys = ("calls", "cached", "failed", "prompt_tokens", "completion_tokens", "cost")
        return dict(zip(keys, tuple(row)))

    def latest_teacher_calls(self, round_: int | None = None) -> dict[str, TeacherCall]:
        """The latest call per item (of one round, or of the run): what a resumed round reuses instead of paying again."""
        return {call.item_id: call for call in self.teacher_calls(round_)}

    def latest_teacher_call(self, item_id: str) -> TeacherCall | None:
        """The item's latest call (what the review screen shows of the teacher), None if it was never asked."""
        rows = self._rows("SELECT * FROM teacher_calls WHERE item_id = ? ORDER BY id DESC LIMIT 1", (item_id,))
        return TeacherCall.from_row(rows[0]) if rows else None

    def teacher_models(self) -> dict[str, str]:
        """The model of each item's latest teacher call, without loading the answers (export's provenance)."""
        return {r[0]: r[1] for r in self._rows("SELECT item_id, model FROM teacher_calls ORDER BY id")}

    # --- labels ---------------------------------------------------------------------
    def commit_routing(self, round_: int, accepted: Sequence[tuple[str, str, float | None, str]],
                       to_review: Sequence[dict[str, Any]], timings: dict[str, float]) -> None:
        """Accepted teacher labels and pending reviews of one round, and the phase change, atomically."""
        now = time.time()
        with self._transaction() as conn:
            conn.executemany(
                "INSERT INTO labels (item_id, label, source, confidence, round, reason, reviewer, created_at) "
                "VALUES (?, ?, 'teacher', ?, ?, ?, NULL, ?)",
                [(item_id, label, conf, round_, reason, now) for item_id, label, conf, reason in accepted])
            conn.executemany(
                "INSERT INTO reviews (item_id, round, status, reason, teacher_label, teacher_confidence, teacher_raw, "
                "student_label, student_confidence, created_at, signals) VALUES (:item_id, :round, 'pending', :reason, "
                ":teacher_label, :teacher_confidence, :teacher_raw, :student_label, :student_confidence, :created_at, "
                ":signals)",
                [{**r, "round": round_, "created_at": now,
                  "signals": json.dumps(r["signals"]) if r.get("signals") is not None else None} for r in to_review])
            _set_phase(conn, round_, "labeled", timings)

    def current_labels(self) -> list[LabelRow]:
        rows = self._rows(f"SELECT c.*, i.text, i.gold, i.input FROM ({_CURRENT_LABELS}) c JOIN items i USING (item_id) "
                          "ORDER BY i.pos")
        return [LabelRow.from_row(r) for r in rows]

    def label_counts(self) -> dict[str, int]:
        counts = {"seed": 0, "teacher": 0, "human": 0}
        for r in self._rows(f"SELECT source, COUNT(*) FROM ({_CURRENT_LABELS}) GROUP BY source"):
            counts[r[0]] = r[1]
        return counts

    def selection_states(self) -> dict[str, int]:
        """Where every item sent for labeling stands now, so the parts add up to items_requested():
        its current label's source ('teacher', 'human'), else its review's status ('pending', 'skipped'),
        else 'awaiting_teacher' (selected in a round not yet labeled and routed)."""
        rows = self._rows(
            f"SELECT COALESCE(c.source, r.status, 'awaiting_teacher'), COUNT(*) FROM selections s "
            f"LEFT JOIN ({_CURRENT_LABELS}) c USING (item_id) LEFT JOIN reviews r USING (item_id) GROUP BY 1")
        return {r[0]: r[1] for r in rows}

    def label_history(self, item_id: str | None = None) -> list[LabelRow]:
        """Every label row, oldest first (of one item, or of the run): the audit trail behind current_labels."""
        where, params = ("WHERE l.item_id = ?", (item_id,)) if item_id is not None else ("", ())
        rows = self._rows(f"SELECT l.*, i.text, i.gold, i.input FROM labels l JOIN items i USING (item_id) {where} "
                          "ORDER BY l.id",
                          params)
        return [LabelRow.from_row(r) for r in rows]

    def latest_label_id(self) -> int | None:
        """Grows with every label row written: a cheap way to tell that the labels changed."""
        return self._value("SELECT MAX(id) FROM labels")


def _set_phase(conn: sqlite3.Connection, round_: int, phase: str, timings: dict[str, float] | None,
               metrics: dict[str, Any] | None = None) -> None:
    conn.execute("UPDATE rounds SET phase = ? WHERE round = ?", (phase, round_))
    if timings is not None:
        conn.execute("UPDATE rounds SET timings = ? WHERE round = ?", (json.dumps(timings), round_))
    if metrics is not None:
        conn.execute("UPDATE rounds SET metrics = ?, finished_at = ? WHERE round = ?",
                     (json.dumps(metrics), time.time(), round_))
