"""The run database's tables, and the migrations that bring an older run database up to date.

Schema changes are migrations keyed on meta.schema_version, so a run made by an older Quarry opens and
keeps working; a fresh database gets every table here and its version when the run is initialized.
"""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from ..core.tokens import hashed_form

# 2: review audit log, leases, reviewers and web sessions; 3: the config snapshot keeps reviewer tokens hashed;
# 4: generation tasks (answer text and signals, edits and rewrites in the review log); 5: the pool in Parquet
# shards in the run folder (engine/pool.py), a pool item entering `items` when a round selects it
SCHEMA_VERSION = 5

# The review log's kinds: accept (the teacher's answer), relabel (another label), edit (the teacher's answer,
# changed), rewrite (the teacher's answer rejected, a new one written), skip. Version 4 added edit and rewrite.
_REVIEW_LOG = """CREATE TABLE IF NOT EXISTS {name} (  -- append-only: every human decision and correction, with what was shown
    id INTEGER PRIMARY KEY,
    item_id TEXT NOT NULL REFERENCES items(item_id),
    reviewer TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('accept', 'relabel', 'edit', 'rewrite', 'skip')),
    label TEXT,                          -- the decided label; generation: the person's answer text
    shown TEXT NOT NULL,
    supersedes INTEGER REFERENCES {name}(id),
    via TEXT NOT NULL,
    created_at REAL NOT NULL
);"""
_REVIEW_LOG_INDEXES = """CREATE INDEX IF NOT EXISTS review_log_item ON review_log(item_id, reviewer);
CREATE INDEX IF NOT EXISTS review_log_reviewer ON review_log(reviewer, id);"""

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS items (
    pos INTEGER PRIMARY KEY,            -- pool position: row order of the strategy arrays
    item_id TEXT NOT NULL UNIQUE,
    text TEXT NOT NULL,
    gold TEXT,                           -- known label (generation: the reference answer), for simulated review
    origin TEXT NOT NULL CHECK (origin IN ('pool', 'seed')),
    input TEXT                           -- generation: the instruction's input (text is the instruction)
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
    confidence_method TEXT,
    confidence_note TEXT NOT NULL DEFAULT '',  -- what qualifies the confidence (no logprobs, the text was cut...)
    text TEXT,                           -- generation: the answer the teacher wrote (label stays NULL)
    signals TEXT                         -- generation: JSON {signal: value} the teacher measured with it
);
CREATE INDEX IF NOT EXISTS teacher_calls_item ON teacher_calls(item_id);
CREATE TABLE IF NOT EXISTS labels (
    id INTEGER PRIMARY KEY,
    item_id TEXT NOT NULL REFERENCES items(item_id),
    label TEXT NOT NULL,                 -- a class name; generation: the accepted answer text
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
    decided_at REAL,
    signals TEXT                         -- generation: JSON {signal: value} of every confidence signal measured
);
CREATE INDEX IF NOT EXISTS reviews_open ON reviews(status, round, created_at);
{review_log}
{review_log_indexes}
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
CREATE TABLE IF NOT EXISTS login_attempts (  -- the login throttle: attempts being checked, and failed ones
    id INTEGER PRIMARY KEY,
    client TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS login_attempts_client ON login_attempts(client, at);
CREATE TABLE IF NOT EXISTS login_nonces (  -- one-time login form tokens, hashed
    nonce_hash TEXT PRIMARY KEY,
    expires_at REAL NOT NULL
);
""".replace("{review_log}", _REVIEW_LOG.format(name="review_log")).replace("{review_log_indexes}", _REVIEW_LOG_INDEXES)

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

# Columns added after their table first shipped: databases made before get them, with their default.
_ADDED_COLUMNS = {
    "teacher_calls": {"cached": "INTEGER NOT NULL DEFAULT 0", "cost": "REAL NOT NULL DEFAULT 0",
                      "confidence_method": "TEXT", "confidence_note": "TEXT NOT NULL DEFAULT ''",
                      "text": "TEXT", "signals": "TEXT"},
    "items": {"input": "TEXT"},
    "reviews": {"signals": "TEXT"},
}


def _migrate_pool_layout(conn: sqlite3.Connection) -> None:
    """Before version 5 every pool item was a row of `items`: say so, so the run writes its pool shards
    from those rows (engine/loop.py) and keeps reading them as before."""
    conn.execute("INSERT OR REPLACE INTO meta VALUES ('pool_layout', 'items')")


class Transaction:
    """BEGIN IMMEDIATE: take the write lock up front, so a reviewer and the loop never interleave a write,
    and a read-then-write (a lease, a decision, a migration) sees no other writer between the two."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self.conn.execute("ROLLBACK" if exc_type else "COMMIT")


def connect(path: Path) -> sqlite3.Connection:
    """Open (creating if needed) a run database in autocommit mode, with its tables up to date.

    Writes then take their own BEGIN IMMEDIATE; WAL lets readers go on while one process writes.
    """
    conn = sqlite3.connect(path, timeout=30.0, isolation_level=None)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.executescript(SCHEMA)
    _add_missing_columns(conn)
    _migrate(conn)
    return conn


def _add_missing_columns(conn: sqlite3.Connection) -> None:
    """Databases made before a column existed get it, with its default."""
    for table, columns in _ADDED_COLUMNS.items():
        have = {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}
        for name, declaration in columns.items():
            if name not in have:
                conn.execute(f"ALTER TABLE {table} ADD COLUMN {name} {declaration}")


def _rebuild_review_log(conn: sqlite3.Connection) -> None:
    """Version 4: the review log's kind check gains edit and rewrite. SQLite cannot alter a CHECK, so the
    table is copied into a new one that refers to itself, which the rename then makes `review_log`."""
    conn.execute(_REVIEW_LOG.format(name="review_log_v4"))
    conn.execute("INSERT INTO review_log_v4 SELECT id, item_id, reviewer, kind, label, shown, supersedes, via, "
                 "created_at FROM review_log ORDER BY id")
    conn.execute("DROP TABLE review_log")
    conn.execute("ALTER TABLE review_log_v4 RENAME TO review_log")
    for statement in _REVIEW_LOG_INDEXES.split(";"):
        if statement.strip():
            conn.execute(statement)


def _hash_config_tokens(conn: sqlite3.Connection) -> None:
    """Version 2 kept review.reviewers' tokens as written in the config snapshot: keep their hashes instead."""
    row = conn.execute("SELECT value FROM meta WHERE key = 'config'").fetchone()
    config = json.loads(row[0]) if row is not None else None
    reviewers = (config.get("review") or {}).get("reviewers") if isinstance(config, dict) else None
    if isinstance(reviewers, dict) and reviewers:
        config["review"]["reviewers"] = {name: hashed_form(str(token)) for name, token in reviewers.items()}
        conn.execute("UPDATE meta SET value = ? WHERE key = 'config'", (json.dumps(config),))


def _version(conn: sqlite3.Connection) -> int | None:
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    return None if row is None else int(row[0])


def _migrate(conn: sqlite3.Connection) -> None:
    """Bring an older run database up to SCHEMA_VERSION; its new tables were already created by SCHEMA.

    Not initialized yet (no version) or current: nothing to do. The version is read again under the
    write lock, so two processes opening the same old file migrate it once.
    """
    version = _version(conn)
    if version is None or version >= SCHEMA_VERSION:
        return
    with Transaction(conn):
        version = _version(conn)
        if version is not None and version < 2:
            conn.execute(_MIGRATE_1_TO_2.strip().rstrip(";"))
        if version is not None and version < 3:
            _hash_config_tokens(conn)
        if version is not None and version < 4:
            _rebuild_review_log(conn)
        if version is not None and version < 5:
            _migrate_pool_layout(conn)
        conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),))
