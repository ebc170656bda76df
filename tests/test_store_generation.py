"""The store's schema 3 (generation tasks) on real SQLite files: a version-2 run database (made with version 2's
tables, verbatim below) migrates in place, keeps every row and audit record, and then takes written answers,
their signals and the edit / rewrite decisions."""
import json
import sqlite3

import pytest

from quarry_al.engine.review.queue import ReviewQueue
from quarry_al.engine.store import SCHEMA_VERSION, Store
from quarry_al.engine.teacher import TeacherResult

# Version 2's tables that version 3 changed (the others are the same in both), as version 2 created them.
SCHEMA_V2 = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE items (pos INTEGER PRIMARY KEY, item_id TEXT NOT NULL UNIQUE, text TEXT NOT NULL, gold TEXT,
    origin TEXT NOT NULL CHECK (origin IN ('pool', 'seed')));
CREATE TABLE teacher_calls (id INTEGER PRIMARY KEY, item_id TEXT NOT NULL REFERENCES items(item_id),
    round INTEGER NOT NULL, model TEXT NOT NULL, prompt_hash TEXT NOT NULL, label TEXT, confidence REAL,
    distribution TEXT, raw TEXT NOT NULL, error TEXT, error_message TEXT NOT NULL DEFAULT '',
    prompt_tokens INTEGER NOT NULL DEFAULT 0, completion_tokens INTEGER NOT NULL DEFAULT 0,
    latency_s REAL NOT NULL DEFAULT 0, created_at REAL NOT NULL, cached INTEGER NOT NULL DEFAULT 0,
    cost REAL NOT NULL DEFAULT 0, confidence_method TEXT);
CREATE TABLE reviews (item_id TEXT PRIMARY KEY REFERENCES items(item_id), round INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'decided', 'skipped')), reason TEXT NOT NULL,
    teacher_label TEXT, teacher_confidence REAL, teacher_raw TEXT, student_label TEXT, student_confidence REAL,
    created_at REAL NOT NULL, decided_at REAL);
CREATE TABLE review_log (id INTEGER PRIMARY KEY, item_id TEXT NOT NULL REFERENCES items(item_id),
    reviewer TEXT NOT NULL, kind TEXT NOT NULL CHECK (kind IN ('accept', 'relabel', 'skip')), label TEXT,
    shown TEXT NOT NULL, supersedes INTEGER REFERENCES review_log(id), via TEXT NOT NULL, created_at REAL NOT NULL);
INSERT INTO meta VALUES ('schema_version', '2'), ('config', '{"name": "old"}');
INSERT INTO items (item_id, text, gold, origin) VALUES ('x', 'an old text', 'a', 'pool'), ('y', 'another', 'b', 'pool');
INSERT INTO teacher_calls (item_id, round, model, prompt_hash, label, confidence, raw, created_at)
    VALUES ('x', 0, 'm', 'h', 'a', 0.4, '{}', 1.0);
INSERT INTO reviews VALUES ('x', 0, 'decided', 'low', 'a', 0.4, '{}', NULL, NULL, 1.0, 2.0);
INSERT INTO review_log VALUES (1, 'x', 'ana', 'relabel', 'b', '{}', NULL, 'web', 2.0),
                              (2, 'x', 'ana', 'accept', 'a', '{}', 1, 'web', 3.0);
"""


@pytest.fixture
def old_db(tmp_path):
    path = tmp_path / "quarry.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(SCHEMA_V2)
    return path


def test_a_version_2_database_migrates_and_keeps_its_rows(old_db):
    with Store(old_db) as store:
        assert store.meta("schema_version") == str(SCHEMA_VERSION) == "5"
        assert store.pool_layout() == "items" and store.pool_size() == 2  # schema 5: its pool stays in `items`
        assert [(r.id, r.kind, r.label, r.supersedes) for r in store.review_log()] == [
            (1, "relabel", "b", None), (2, "accept", "a", 1)]
        assert [i.input for i in store.pool_items()] == [None, None]
        call = store.teacher_calls()[0]
        assert call.label == "a" and call.result.text is None and call.result.signals is None
    with sqlite3.connect(old_db) as conn:
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        assert {r[1] for r in conn.execute("PRAGMA index_list(review_log)")} >= {"review_log_item", "review_log_reviewer"}
        sql = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'review_log'").fetchone()[0]
        assert "'edit', 'rewrite'" in sql and 'REFERENCES "review_log"(id)' in sql  # refers to itself, renamed
    with Store(old_db) as store:  # opening again migrates nothing twice
        assert len(store.review_log()) == 2


def test_answers_signals_and_edits_are_stored(tmp_path):
    with Store(tmp_path / "quarry.db") as store:
        store.initialize(json.dumps({"name": "g"}), [("g1", "Reverse the word.", "robrah"), ("g2", "Say hi.", "hi")],
                         [], inputs={"g1": "harbor"})
        assert [(i.text, i.input, i.gold) for i in store.pool_items()] == [
            ("Reverse the word.", "harbor", "robrah"), ("Say hi.", None, "hi")]
        store.create_round(0, "random", [("g1", None, None, None), ("g2", None, None, None)], {})
        result = TeacherResult(label=None, confidence=None, text="robhar", raw="robhar", signals={"judge": 2.5})
        store.record_teacher_call("g1", 0, "local:m", result)
        stored = store.latest_teacher_calls()["g1"].result
        assert (stored.text, stored.signals, stored.answer, stored.ok) == ("robhar", {"judge": 2.5}, "robhar", True)
        assert store.selection(0)[0].input == "harbor"
        store.commit_routing(0, [("g2", "hi there", 0.95, "judge")], [
            {"item_id": "g1", "reason": "low", "teacher_label": "robhar", "teacher_confidence": 0.4, "teacher_raw": "",
             "student_label": None, "student_confidence": None, "signals": {"judge": 2.5, "length": 1.0}}], {})
        review = store.review("g1")
        assert (review.input, review.gold, review.signals) == ("harbor", "robrah", {"judge": 2.5, "length": 1.0})
        ReviewQueue(store).decide("ana", "g1", "robrah", via="test", require_lease=False, edit="rewrite")
        assert store.review_log()[0].kind == "rewrite"
        assert {(r.item_id, r.label, r.input) for r in store.current_labels()} == {
            ("g1", "robrah", "harbor"), ("g2", "hi there", None)}
