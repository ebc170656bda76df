"""Reviewer tokens, web sessions and the login throttle. The store keeps hashes only: the caller
(engine/review/auth.py) makes the tokens and hashes them, so a leaked database logs nobody in.

The throttle lives here, in the database, so it holds across concurrent requests (each reservation is one
BEGIN IMMEDIATE transaction) and across server processes over the same run."""
from __future__ import annotations

from .base import StoreBase
from .rows import LoginSlot, Reviewer, Session


class ReviewersMixin(StoreBase):
    def set_reviewer_token(self, name: str, token_hash: str, now: float) -> None:
        """Create the reviewer or replace their token; their open sessions end with the old token."""
        with self._transaction() as conn:
            conn.execute("INSERT INTO reviewers (name, token_hash, created_at) VALUES (?, ?, ?) "
                         "ON CONFLICT (name) DO UPDATE SET token_hash = excluded.token_hash, "
                         "created_at = excluded.created_at", (name, token_hash, now))
            conn.execute("DELETE FROM sessions WHERE reviewer = ?", (name,))

    def remove_reviewer(self, name: str) -> bool:
        """Delete the reviewer's token and end their sessions; False if they had no token here."""
        with self._transaction() as conn:
            removed = conn.execute("DELETE FROM reviewers WHERE name = ?", (name,)).rowcount
            conn.execute("DELETE FROM sessions WHERE reviewer = ?", (name,))
        return bool(removed)

    def end_sessions(self, reviewer: str) -> int:
        with self._transaction() as conn:
            return conn.execute("DELETE FROM sessions WHERE reviewer = ?", (reviewer,)).rowcount

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

    # --- the login throttle and the one-time login form tokens ------------------------
    def reserve_login_attempt(self, client: str, now: float, window_s: float, per_client: int,
                              total: int) -> LoginSlot:
        """Count the attempts of the last `window_s` (failed, or still being checked) of this client and of
        everyone; under both limits, reserve one for this attempt, in the same transaction."""
        since = now - window_s
        with self._transaction() as conn:
            conn.execute("DELETE FROM login_attempts WHERE at < ?", (since,))
            mine = conn.execute("SELECT COUNT(*), MIN(at) FROM login_attempts WHERE client = ?", (client,)).fetchone()
            everyone = conn.execute("SELECT COUNT(*), MIN(at) FROM login_attempts").fetchone()
            for (count, oldest), limit in ((mine, per_client), (everyone, total)):
                if count >= limit:
                    return LoginSlot(None, min(window_s, max(1.0, oldest + window_s - now)))  # `now` may predate the lock
            cursor = conn.execute("INSERT INTO login_attempts (client, at) VALUES (?, ?)", (client, now))
            return LoginSlot(int(cursor.lastrowid))

    def forget_login_attempt(self, attempt: int) -> None:
        """A successful login does not count against anyone."""
        with self._transaction() as conn:
            conn.execute("DELETE FROM login_attempts WHERE id = ?", (attempt,))

    def add_login_nonce(self, nonce_hash: str, expires_at: float, now: float, keep: int) -> None:
        """A new one-time login form token; expired ones go, and at most `keep` stay outstanding (oldest go first)."""
        with self._transaction() as conn:
            conn.execute("DELETE FROM login_nonces WHERE expires_at < ?", (now,))
            conn.execute("DELETE FROM login_nonces WHERE nonce_hash IN (SELECT nonce_hash FROM login_nonces "
                         "ORDER BY expires_at DESC LIMIT -1 OFFSET ?)", (keep - 1,))
            conn.execute("INSERT OR REPLACE INTO login_nonces VALUES (?, ?)", (nonce_hash, expires_at))

    def take_login_nonce(self, nonce_hash: str, now: float) -> bool:
        """Use up a login form token: True once, if it was issued and has not expired."""
        with self._transaction() as conn:
            return conn.execute("DELETE FROM login_nonces WHERE nonce_hash = ? AND expires_at >= ?",
                                (nonce_hash, now)).rowcount == 1
