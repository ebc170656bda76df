"""The run's database (SQLite): the only place that writes a run's state.

Every write is a transaction, and each step of a round is committed before the next one
starts, so a run killed at any moment resumes from the last committed step. Labels are
append-only: an item's current label is its latest row, and the history stays for audit.
"""
from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

from quarry_al.engine.core.errors import QuarryError
from quarry_al.engine.teacher.base import TeacherResult, Usage

SCHEMA_VERSION = 2  # 2: review audit log, leases, reviewers and web sessions

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS items (
    pos INTEGER PRIMARY KEY,            -- pool position: row order of the strategy arrays
    item_id TEXT NOT NULL UNIQUE,
    text TEXT NOT NULL,
    gold TEXT,                           -- known label, for simulated review and accuracy only
    origin TEXT NOT NULL CHECK (origin IN ('pool', 'seed'))
);
CREATE TABLE IF NOT EXISTS rounds (
    round INTEGER PRIMARY KEY,
    phase TEXT NOT NULL CHECK (phase IN ('selected', 'labeled', 'reviewed', 'done')),
    strategy TEXT NOT NULL,
    started_at REAL NOT NULL,
    finished_at REAL,
    timings TEXT NOT NULL DEFAULT '{}',
    metrics TEXT,
    stop_reason TEXT
);
CREATE TABLE IF NOT EXISTS selections (
    round INTEGER NOT NULL REFERENCES rounds(round),
    item_id TEXT NOT NULL UNIQUE REFERENCES items(item_id),
    rank INTEGER NOT NULL,
    utility REAL,
    student_label TEXT,
    student_confidence REAL
);
CREATE TABLE IF NOT EXISTS teacher_calls (
    id INTEGER PRIMARY KEY,
    item_id TEXT NOT NULL REFERENCES items(item_id),
    round INTEGER NOT NULL,
    model TEXT NOT NULL,
    prompt_hash TEXT NOT NULL,
    label TEXT,
    confidence REAL,
    distribution TEXT,
    raw TEXT NOT NULL,
    error TEXT,
    error_message TEXT NOT NULL DEFAULT '',
    prompt_tokens INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    latency_s REAL NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    cached INTEGER NOT NULL DEFAULT 0,   -- answered from the teacher cache: paid for by an earlier call
    cost REAL NOT NULL DEFAULT 0,        -- at the configured prices; 0 when cached
    confidence_method TEXT
);
CREATE INDEX IF NOT EXISTS teacher_calls_item ON teacher_calls(item_id);
CREATE TABLE IF NOT EXISTS labels (
    id INTEGER PRIMARY KEY,
    item_id TEXT NOT NULL REFERENCES items(item_id),
    label TEXT NOT NULL,
    source TEXT NOT NULL CHECK (source IN ('seed', 'teacher', 'human')),
    confidence REAL,
    round INTEGER NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    reviewer TEXT,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS labels_item ON labels(item_id);
CREATE TABLE IF NOT EXISTS reviews (
    item_id TEXT PRIMARY KEY REFERENCES items(item_id),
    round INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'decided', 'skipped')),
    reason TEXT NOT NULL,
    teacher_label TEXT,
    teacher_confidence REAL,
    teacher_raw TEXT,
    student_label TEXT,
    student_confidence REAL,
    created_at REAL NOT NULL,
    decided_at REAL
);
CREATE INDEX IF NOT EXISTS reviews_open ON reviews(status, round, created_at);
CREATE TABLE IF NOT EXISTS review_log (  -- append-only: every human decision and correction, with what was shown
    id INTEGER PRIMARY KEY,
    item_id TEXT NOT NULL REFERENCES items(item_id),
    reviewer TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('accept', 'relabel', 'skip')),
    label TEXT,
    shown TEXT NOT NULL,
    supersedes INTEGER REFERENCES review_log(id),
    via TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS review_log_item ON review_log(item_id, reviewer);
CREATE INDEX IF NOT EXISTS review_log_reviewer ON review_log(reviewer, id);
CREATE TABLE IF NOT EXISTS leases (
    item_id TEXT NOT NULL REFERENCES items(item_id),
    reviewer TEXT NOT NULL,
    leased_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    PRIMARY KEY (item_id, reviewer)
);
CREATE TABLE IF NOT EXISTS reviewers (
    name TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    id_hash TEXT PRIMARY KEY,
    reviewer TEXT NOT NULL,
    csrf TEXT NOT NULL,
    expires_at REAL NOT NULL
);
"""

# Version 1 databases had decisions only as human label rows and review statuses: give them audit records.
_MIGRATE_1_TO_2 = """
INSERT INTO review_log (item_id, reviewer, kind, label, shown, supersedes, via, created_at)
SELECT r.item_id, COALESCE(l.reviewer, 'unknown'),
       CASE WHEN r.status = 'skipped' THEN 'skip' WHEN l.label = r.teacher_label THEN 'accept' ELSE 'relabel' END,
       CASE WHEN r.status = 'skipped' THEN NULL ELSE l.label END,
       json_object('teacher_label', r.teacher_label, 'teacher_confidence', r.teacher_confidence,
                   'student_label', r.student_label, 'student_confidence', r.student_confidence, 'reason', r.reason),
       NULL, 'migrated', COALESCE(l.created_at, r.decided_at, r.created_at)
FROM reviews r
LEFT JOIN (SELECT * FROM labels WHERE id IN (SELECT MAX(id) FROM labels WHERE source = 'human' GROUP BY item_id)) l
       ON l.item_id = r.item_id
WHERE r.status != 'pending';
"""

_ADDED_CALL_COLUMNS = {"cached": "INTEGER NOT NULL DEFAULT 0", "cost": "REAL NOT NULL DEFAULT 0",
                       "confidence_method": "TEXT"}

# The current label of each item: its latest row in the append-only labels table.
_CURRENT_LABELS = """
SELECT l.* FROM labels l
JOIN (SELECT item_id, MAX(id) AS id FROM labels GROUP BY item_id) latest ON latest.id = l.id
"""


class StoreError(QuarryError, RuntimeError):
    pass


@dataclass(frozen=True)
class Item:
    pos: int
    item_id: str
    text: str
    gold: str | None
    origin: str


@dataclass(frozen=True)
class RoundRow:
    round: int
    phase: str
    strategy: str
    timings: dict[str, float]
    metrics: dict[str, Any] | None
    stop_reason: str | None


@dataclass(frozen=True)
class LabelRow:
    item_id: str
    text: str
    label: str
    source: str
    confidence: float | None
    round: int
    reason: str
    reviewer: str | None
    gold: str | None


@dataclass(frozen=True)
class SelectionRow:
    """An item a round chose, with what the student predicted for it then."""

    item_id: str
    text: str
    gold: str | None
    round: int
    rank: int
    utility: float | None
    student_label: str | None
    student_confidence: float | None


@dataclass(frozen=True)
class TeacherCall:
    """One recorded teacher call: the answer (or typed error) as the backend gave it, and its bill."""

    id: int
    item_id: str
    round: int
    model: str
    created_at: float
    result: TeacherResult

    @property
    def error(self) -> str | None:
        return self.result.error

    @property
    def label(self) -> str | None:
        return self.result.label

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> "TeacherCall":
        result = TeacherResult(
            label=row["label"], confidence=row["confidence"],
            distribution=json.loads(row["distribution"]) if row["distribution"] else None, raw=row["raw"],
            usage=Usage(row["prompt_tokens"], row["completion_tokens"]), error=row["error"],
            error_message=row["error_message"], prompt_hash=row["prompt_hash"], latency_s=row["latency_s"],
            cached=bool(row["cached"]), cost=row["cost"], confidence_method=row["confidence_method"] or "")
        return cls(id=row["id"], item_id=row["item_id"], round=row["round"], model=row["model"],
                   created_at=row["created_at"], result=result)


@dataclass(frozen=True)
class ReviewRow:
    item_id: str
    text: str
    round: int
    status: str
    reason: str
    teacher_label: str | None
    teacher_confidence: float | None
    teacher_raw: str | None
    student_label: str | None
    student_confidence: float | None
    gold: str | None


class Store:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute("PRAGMA foreign_keys=ON")
        self._conn.executescript(_SCHEMA)
        self._add_missing_columns()
        self._migrate()

    def _migrate(self) -> None:
        """Bring an older run database up to SCHEMA_VERSION; its tables are already created above."""
        version = self._value("SELECT value FROM meta WHERE key = 'schema_version'")
        if version is None or int(version) >= SCHEMA_VERSION:
            return
        with self.transaction() as conn:
            if int(conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0]) < 2:
                conn.execute(_MIGRATE_1_TO_2.strip().rstrip(";"))
            conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),))

    def _add_missing_columns(self) -> None:
        """Databases made before a column existed get it, with its default."""
        have = {r[1] for r in self._conn.execute("PRAGMA table_info(teacher_calls)")}
        for name, declaration in _ADDED_CALL_COLUMNS.items():
            if name not in have:
                self._conn.execute(f"ALTER TABLE teacher_calls ADD COLUMN {name} {declaration}")

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- transactions -------------------------------------------------------------
    class _Transaction:
        def __init__(self, conn: sqlite3.Connection):
            self.conn = conn

        def __enter__(self) -> sqlite3.Connection:
            self.conn.execute("BEGIN IMMEDIATE")
            return self.conn

        def __exit__(self, exc_type: object, *rest: object) -> None:
            self.conn.execute("ROLLBACK" if exc_type else "COMMIT")

    def transaction(self) -> "_Transaction":
        """BEGIN IMMEDIATE: take the write lock up front, so a reviewer and the loop never interleave a write."""
        return Store._Transaction(self._conn)

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        return self._conn.execute(sql, params).fetchall()

    def _value(self, sql: str, params: Sequence[Any] = ()) -> Any:
        row = self._conn.execute(sql, params).fetchone()
        return None if row is None else row[0]

    # --- setup ----------------------------------------------------------------------
    def is_initialized(self) -> bool:
        return self._value("SELECT value FROM meta WHERE key = 'config'") is not None

    def initialize(self, config_json: str, pool: Iterable[tuple[str, str, str | None]],
                   seed: Iterable[tuple[str, str, str]]) -> None:
        """Insert the pool, the seed labels and the config snapshot in one transaction."""
        now = time.time()
        with self.transaction() as conn:
            conn.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            conn.execute("INSERT INTO meta VALUES ('config', ?)", (config_json,))
            conn.execute("INSERT INTO meta VALUES ('created_at', ?)", (str(now),))
            conn.executemany("INSERT INTO items (item_id, text, gold, origin) VALUES (?, ?, ?, 'pool')", pool)
            seed = list(seed)
            conn.executemany("INSERT INTO items (item_id, text, gold, origin) VALUES (?, ?, ?, 'seed')",
                             [(i, t, label) for i, t, label in seed])
            conn.executemany(
                "INSERT INTO labels (item_id, label, source, confidence, round, reason, created_at) "
                "VALUES (?, ?, 'seed', NULL, 0, 'seed file', ?)", [(i, label, now) for i, _, label in seed])

    def config_json(self) -> str:
        value = self._value("SELECT value FROM meta WHERE key = 'config'")
        if value is None:
            raise StoreError(f"{self.path}: not an initialized run database")
        return value

    def set_meta(self, key: str, value: str) -> None:
        with self.transaction() as conn:
            conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def meta(self, key: str) -> str | None:
        return self._value("SELECT value FROM meta WHERE key = ?", (key,))

    # --- items ----------------------------------------------------------------------
    def pool_items(self) -> list[Item]:
        return [Item(**dict(r)) for r in self._rows("SELECT * FROM items WHERE origin = 'pool' ORDER BY pos")]

    def items_by_id(self, item_ids: Sequence[str]) -> dict[str, Item]:
        found: dict[str, Item] = {}
        for start in range(0, len(item_ids), 500):
            chunk = list(item_ids[start:start + 500])
            marks = ",".join("?" * len(chunk))
            for r in self._rows(f"SELECT * FROM items WHERE item_id IN ({marks})", chunk):
                found[r["item_id"]] = Item(**dict(r))
        return found

    def requested_ids(self) -> set[str]:
        """Items already sent for labeling (selected in any round) or labeled from the seed file."""
        selected = {r[0] for r in self._rows("SELECT item_id FROM selections")}
        return selected | {r[0] for r in self._rows("SELECT item_id FROM labels")}

    def items_requested(self) -> int:
        return int(self._value("SELECT COUNT(*) FROM selections"))

    # --- rounds ---------------------------------------------------------------------
    def _round(self, row: sqlite3.Row) -> RoundRow:
        return RoundRow(round=row["round"], phase=row["phase"], strategy=row["strategy"],
                        timings=json.loads(row["timings"]),
                        metrics=json.loads(row["metrics"]) if row["metrics"] else None,
                        stop_reason=row["stop_reason"])

    def rounds(self) -> list[RoundRow]:
        return [self._round(r) for r in self._rows("SELECT * FROM rounds ORDER BY round")]

    def open_round(self) -> RoundRow | None:
        row = self._conn.execute("SELECT * FROM rounds WHERE phase != 'done' ORDER BY round LIMIT 1").fetchone()
        return None if row is None else self._round(row)

    def history(self) -> list[dict[str, Any]]:
        return [r.metrics for r in self.rounds() if r.phase == "done" and r.metrics is not None]

    def create_round(self, round_: int, strategy: str, selected: Sequence[tuple[str, float | None, str | None, float | None]],
                     timings: dict[str, float]) -> None:
        """Commit a round's selection: (item_id, utility, student_label, student_confidence), best first."""
        with self.transaction() as conn:
            conn.execute("INSERT INTO rounds (round, phase, strategy, started_at, timings) VALUES (?, 'selected', ?, ?, ?)",
                         (round_, strategy, time.time(), json.dumps(timings)))
            conn.executemany(
                "INSERT INTO selections (round, item_id, rank, utility, student_label, student_confidence) VALUES (?, ?, ?, ?, ?, ?)",
                [(round_, item_id, rank, utility, s_label, s_conf)
                 for rank, (item_id, utility, s_label, s_conf) in enumerate(selected)])

    def selection(self, round_: int) -> list[SelectionRow]:
        rows = self._rows("SELECT s.*, i.text, i.gold FROM selections s JOIN items i USING (item_id) "
                          "WHERE s.round = ? ORDER BY s.rank", (round_,))
        return [SelectionRow(**{k: r[k] for k in SelectionRow.__dataclass_fields__}) for r in rows]

    def set_phase(self, round_: int, phase: str, timings: dict[str, float] | None = None,
                  metrics: dict[str, Any] | None = None) -> None:
        with self.transaction() as conn:
            self._set_phase(conn, round_, phase, timings, metrics)

    def _set_phase(self, conn: sqlite3.Connection, round_: int, phase: str, timings: dict[str, float] | None,
                   metrics: dict[str, Any] | None = None) -> None:
        conn.execute("UPDATE rounds SET phase = ? WHERE round = ?", (phase, round_))
        if timings is not None:
            conn.execute("UPDATE rounds SET timings = ? WHERE round = ?", (json.dumps(timings), round_))
        if metrics is not None:
            conn.execute("UPDATE rounds SET metrics = ?, finished_at = ? WHERE round = ?",
                         (json.dumps(metrics), time.time(), round_))

    def set_stop_reason(self, reason: str) -> None:
        with self.transaction() as conn:
            conn.execute("UPDATE rounds SET stop_reason = ? WHERE round = (SELECT MAX(round) FROM rounds)", (reason,))
            conn.execute("INSERT OR REPLACE INTO meta VALUES ('stop_reason', ?)", (reason,))

    # --- teacher calls --------------------------------------------------------------
    def record_teacher_call(self, item_id: str, round_: int, model: str, result: TeacherResult) -> None:
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO teacher_calls (item_id, round, model, prompt_hash, label, confidence, distribution, raw, "
                "error, error_message, prompt_tokens, completion_tokens, latency_s, created_at, cached, cost, "
                "confidence_method) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (item_id, round_, model, result.prompt_hash, result.label, result.confidence,
                 json.dumps(result.distribution) if result.distribution is not None else None, result.raw,
                 result.error, result.error_message, result.usage.prompt_tokens, result.usage.completion_tokens,
                 result.latency_s, time.time(), int(result.cached), result.cost, result.confidence_method or None))

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
        row = self._conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(cached), 0), COALESCE(SUM(error IS NOT NULL), 0), "
            "COALESCE(SUM(CASE WHEN cached = 0 THEN prompt_tokens END), 0), "
            "COALESCE(SUM(CASE WHEN cached = 0 THEN completion_tokens END), 0), COALESCE(SUM(cost), 0.0) "
            f"FROM teacher_calls {where}", params).fetchone()
        keys = ("calls", "cached", "failed", "prompt_tokens", "completion_tokens", "cost")
        return dict(zip(keys, tuple(row)))

    def latest_teacher_calls(self, round_: int | None = None) -> dict[str, TeacherCall]:
        """The latest call per item (of one round, or of the run): what a resumed round reuses instead of paying again."""
        return {call.item_id: call for call in self.teacher_calls(round_)}

    # --- labels and reviews ---------------------------------------------------------
    def commit_routing(self, round_: int, accepted: Sequence[tuple[str, str, float | None, str]],
                       to_review: Sequence[dict[str, Any]], timings: dict[str, float]) -> None:
        """Accepted teacher labels and pending reviews of one round, and the phase change, atomically."""
        now = time.time()
        with self.transaction() as conn:
            conn.executemany(
                "INSERT INTO labels (item_id, label, source, confidence, round, reason, reviewer, created_at) "
                "VALUES (?, ?, 'teacher', ?, ?, ?, NULL, ?)",
                [(item_id, label, conf, round_, reason, now) for item_id, label, conf, reason in accepted])
            conn.executemany(
                "INSERT INTO reviews (item_id, round, status, reason, teacher_label, teacher_confidence, teacher_raw, "
                "student_label, student_confidence, created_at) VALUES (:item_id, :round, 'pending', :reason, "
                ":teacher_label, :teacher_confidence, :teacher_raw, :student_label, :student_confidence, :created_at)",
                [{**r, "round": round_, "created_at": now} for r in to_review])
            self._set_phase(conn, round_, "labeled", timings)

    def reviews(self, status: str | None = None, round_: int | None = None) -> list[ReviewRow]:
        sql = "SELECT r.*, i.text, i.gold FROM reviews r JOIN items i USING (item_id) WHERE 1=1"
        params: list[Any] = []
        if status is not None:
            sql += " AND r.status = ?"
            params.append(status)
        if round_ is not None:
            sql += " AND r.round = ?"
            params.append(round_)
        rows = self._rows(sql + " ORDER BY r.round, r.created_at, i.pos", params)
        return [ReviewRow(**{k: r[k] for k in ReviewRow.__dataclass_fields__}) for r in rows]

    def pending_count(self, round_: int | None = None) -> int:
        if round_ is None:
            return int(self._value("SELECT COUNT(*) FROM reviews WHERE status = 'pending'"))
        return int(self._value("SELECT COUNT(*) FROM reviews WHERE status = 'pending' AND round = ?", (round_,)))

    def current_labels(self) -> list[LabelRow]:
        rows = self._rows(f"SELECT c.*, i.text, i.gold FROM ({_CURRENT_LABELS}) c JOIN items i USING (item_id) ORDER BY i.pos")
        return [LabelRow(**{k: r[k] for k in LabelRow.__dataclass_fields__}) for r in rows]

    def label_counts(self) -> dict[str, int]:
        counts = {"seed": 0, "teacher": 0, "human": 0}
        for r in self._rows(f"SELECT source, COUNT(*) FROM ({_CURRENT_LABELS}) GROUP BY source"):
            counts[r[0]] = r[1]
        return counts

    def iter_rows(self, sql: str, params: Sequence[Any] = ()) -> Iterator[sqlite3.Row]:
        """Read-only queries for reports."""
        yield from self._conn.execute(sql, params)
