"""The store's connection and its transactions, shared by the mixins that make up `Store`."""
from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any, Sequence, TypeVar

from quarry_al.engine.core.errors import QuarryError
from quarry_al.engine.store.schema import connect


_S = TypeVar("_S", bound="StoreBase")


class StoreError(QuarryError, RuntimeError):
    pass


class _Transaction:
    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self.conn.execute("ROLLBACK" if exc_type else "COMMIT")


class StoreBase:
    """One connection per Store (sqlite3 connections stay on the thread that made them)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = connect(self.path)

    def close(self) -> None:
        self._conn.close()

    def __enter__(self: _S) -> _S:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _transaction(self) -> _Transaction:
        """BEGIN IMMEDIATE: take the write lock up front, so a reviewer and the loop never interleave a write,
        and a read-then-write (a lease, a decision) sees no other writer between its read and its write."""
        return _Transaction(self._conn)

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        return self._conn.execute(sql, params).fetchall()

    def _value(self, sql: str, params: Sequence[Any] = ()) -> Any:
        row = self._conn.execute(sql, params).fetchone()
        return None if row is None else row[0]
