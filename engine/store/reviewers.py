"""Reviewer tokens and web sessions. The store keeps hashes only: the caller (engine/review/auth.py)
makes the tokens and hashes them, so a leaked database logs nobody in."""
from __future__ import annotations

from .base import StoreBase
from .rows import Reviewer, Session


class ReviewersMixin(StoreBase):
    def set_reviewer_token(self, name: str, token_hash: str, now: float) -> None:
        """Create the reviewer or replace their token; their open sessions end with the old token."""
        with self._transaction() as conn:
            conn.execute("INSERT INTO reviewers (name, token_hash, created_at) VALUES (?, ?, ?) "
                         "ON CONFLICT (name) DO UPDATE SET token_hash = excluded.token_hash, "
                         "created_at = excluded.created_at", (name, token_hash, now))
            conn.execute("DELETE FROM sessions WHERE reviewer = ?", (name,))

    def reviewers(self) -> list[Reviewer]:
        """Reviewers with a token in this database, by name (those named in the config are not here)."""
        return [Reviewer.from_row(r) for r in self._rows("SELECT * FROM reviewers ORDER BY name")]

    def reviewer_with_token(self, token_hash: str) -> str | None:
        return self._value("SELECT name FROM reviewers WHERE token_hash = ?", (token_hash,))

    def add_session(self, id_hash: str, reviewer: str, csrf: str, expires_at: float, now: float) -> None:
        """Open a session (the cookie's value hashed), dropping the ones that expired before `now`."""
        with self._transaction() as conn:
            conn.execute("DELETE FROM sessions WHERE expires_at < ?", (now,))
            conn.execute("INSERT INTO sessions (id_hash, reviewer, csrf, expires_at) VALUES (?, ?, ?, ?)",
                         (id_hash, reviewer, csrf, expires_at))

    def session(self, id_hash: str, now: float) -> Session | None:
        """The session with this hash, unless it expired before `now`."""
        rows = self._rows("SELECT reviewer, csrf FROM sessions WHERE id_hash = ? AND expires_at >= ?", (id_hash, now))
        return Session.from_row(rows[0]) if rows else None

    def delete_session(self, id_hash: str) -> None:
        with self._transaction() as conn:
            conn.execute("DELETE FROM sessions WHERE id_hash = ?", (id_hash,))
