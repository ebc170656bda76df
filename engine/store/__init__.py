"""The run's database (SQLite). `Store` is the only writer of a run's state and holds all of its SQL:
the loop, the review queue, auth, the web app, export and report call its methods and get typed rows
(frozen dataclasses) back, never a cursor or a sqlite3.Row.

Every write is one BEGIN IMMEDIATE transaction, so the loop, reviewers and several servers on one file
serialize on the write lock, and a run killed at any moment resumes from its last committed step.

    schema.py     tables, migrations, opening a database
    rows.py       the row types every read returns
    runs.py       setup, items, rounds, teacher calls, labels (what the loop writes)
    reviews.py    pending reviews, leases, the review log, and the queue's transaction
    reviewers.py  reviewer token hashes, web sessions, the login throttle and one-time login form tokens
    pool_ledger.py the pool's side: its size and layout, selected pool items entering the ledger
    call_cache.py the teacher-call cache's own file (shared by runs, not run state)
"""
from __future__ import annotations

from .base import StoreError
from .pool_ledger import PoolLedgerMixin
from .reviewers import ReviewersMixin
from .reviews import ReviewsMixin, ReviewTransaction
from .rows import (DecisionRecord, Item, LabelRow, Lease, LoginSlot, ReviewRow, Reviewer, RoundRow,
                                         SelectionRow, Session, SettledReview, TeacherCall)
from .runs import RunsMixin
from .schema import SCHEMA_VERSION

__all__ = ["SCHEMA_VERSION", "DecisionRecord", "Item", "LabelRow", "Lease", "LoginSlot", "ReviewRow", "ReviewTransaction",
           "Reviewer", "RoundRow", "SelectionRow", "Session", "SettledReview", "Store", "StoreError", "TeacherCall"]


class Store(RunsMixin, ReviewsMixin, ReviewersMixin, PoolLedgerMixin):
    """A run database, opened (and created or migrated) at `path`; one per thread."""
