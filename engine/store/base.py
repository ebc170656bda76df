"""The store's connection and its transactions, shared by the mixins that make up `Store`."""
from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any, Sequence, TypeVar

from ..core.errors import QuarryError
from .schema import Transaction, connect

_S = TypeVar("_S", bound="StoreBase")


class StoreError(QuarryError, RuntimeError):
    pass


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

    def _transaction(self) -> Transaction:
        """Every write of the store runs in one of these (see schema.Transaction)."""
        return Transaction(self._conn)

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        return self._conn.execute(sql, params).fetchall()

    def _value(self, sql: str, params: Sequence[Any] = ()) -> Any:
        row = self._conn.execute(sql, params).fetchone()
        return None if row is None else row[0]
