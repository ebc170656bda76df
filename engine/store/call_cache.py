"""The SQLite file behind the teacher-call cache (engine/teacher/cache.py): not run state, one file
shared by every run on the machine, but its SQL lives here with the rest of the project's."""
from __future__ import annotations

import sqlite3
from pathlib import Path


class CallCacheFile:
    """{key: result JSON}; one connection usable from any thread (the caller serializes them), WAL and a
    busy timeout for other processes."""

    def __init__(self, path: Path):
        self._conn = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("CREATE TABLE IF NOT EXISTS calls (key TEXT PRIMARY KEY, model TEXT NOT NULL, "
                           "result TEXT NOT NULL, created_at REAL NOT NULL)")

    def get(self, key: str) -> str | None:
        row = self._conn.execute("SELECT result FROM calls WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def put(self, key: str, model: str, result_json: str, now: float) -> None:
        self._conn.execute("INSERT OR REPLACE INTO calls VALUES (?, ?, ?, ?)", (key, model, result_json, now))

    def count(self) -> int:
        return int(self._conn.execute("SELECT COUNT(*) FROM calls").fetchone()[0])

    def close(self) -> None:
        self._conn.close()
