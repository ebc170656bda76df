"""Reviewer tokens, web sessions and login throttling, kept in the run database as SHA-256 hashes only.

Tokens are 256-bit random strings (or ones a config names, of at least 128 bits: engine/core/tokens.py),
so a plain hash is enough: nobody can guess their way back from it, and a leaked database does not log
anyone in. Guessing online is held back too: every login form carries a one-time token, and each attempt
first reserves a slot under per-client and overall limits (`review.login_attempts`,
`review.login_attempts_total` per `review.login_window_s`) in the database, so parallel connections and
several server processes share one count.
"""
from __future__ import annotations

import hmac
import re
import secrets
import time
from typing import Mapping

from ..core.errors import QuarryError
from ..core.tokens import HASHED_PREFIX, token_hash
from ..store import LoginSlot, Session, Store

SESSION_S = 12 * 3600
LOGIN_NONCE_S = 900  # a login form is good for this long
LOGIN_NONCES_KEPT = 10_000  # outstanding login forms; a flood of GET /login drops the oldest, not the database
_NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")

__all__ = ["AuthError", "add_reviewer", "authenticate", "close_session", "find_session", "issue_login_nonce",
           "open_session", "remove_reviewer", "reserve_login", "reviewer_names", "take_login_nonce", "token_hash"]


class AuthError(QuarryError, ValueError):
    pass


def add_reviewer(store: Store, name: str) -> str:
    """Create (or replace) a reviewer's token; the token is returned once and only its hash is stored."""
    if not _NAME.match(name):
        raise AuthError(f"reviewer name {name!r}: use 1-64 letters, digits, '_', '.', '@' or '-'")
    token = secrets.token_urlsafe(32)
    store.set_reviewer_token(name, token_hash(token), time.time())
    return token


def remove_reviewer(store: Store, name: str, configured: Mapping[str, str]) -> int:
    """Delete a reviewer's token and end their sessions; returns how many sessions ended. One named in
    the config's review.reviewers has their sessions ended, but can log in again until the config stops
    naming them: that is an error saying so."""
    sessions = store.end_sessions(name)
    if store.remove_reviewer(name):
        return sessions
    if name in configured:
        raise AuthError(f"reviewer {name!r}: {sessions} sessions ended, but the config's review.reviewers lists "
                        f"them, so they can log in again: remove them there")
    raise AuthError(f"no reviewer {name!r} in {store.path} (see `quarry reviewers list`)")


def reviewer_names(store: Store) -> list[str]:
    return [r.name for r in store.reviewers()]


def authenticate(store: Store, token: str, configured: Mapping[str, str]) -> str | None:
    """The reviewer a token belongs to: from the database, or from the config's review.reviewers
    (a token, or `sha256:` and its hex digest, which keeps the token itself out of the config)."""
    if not token:
        return None
    digest = token_hash(token).encode()
    found = None
    for name, known in configured.items():
        expected = known[len(HASHED_PREFIX):].lower() if known.lower().startswith(HASHED_PREFIX) else token_hash(known)
        if hmac.compare_digest(expected.encode(), digest) and found is None:
            found = name
    return found or store.reviewer_with_token(digest.decode())


def reserve_login(store: Store, client: str, per_client: int, total: int, window_s: float,
                  now: float | None = None) -> LoginSlot:
    """A slot to check one login token, or how long to wait (the caller answers 429 with Retry-After)."""
    now = time.time() if now is None else now
    return store.reserve_login_attempt(client, now, window_s, per_client, total)


def issue_login_nonce(store: Store, now: float | None = None) -> str:
    """A one-time token for one login form (its hash is stored; the form and a cookie carry it)."""
    now = time.time() if now is None else now
    nonce = secrets.token_urlsafe(24)
    store.add_login_nonce(token_hash(nonce), now + LOGIN_NONCE_S, now, LOGIN_NONCES_KEPT)
    return nonce


def take_login_nonce(store: Store, nonce: str, now: float | None = None) -> bool:
    """True once for an issued, unexpired login form token; never again."""
    return bool(nonce) and store.take_login_nonce(token_hash(nonce), time.time() if now is None else now)


def open_session(store: Store, reviewer: str, now: float | None = None) -> tuple[str, Session]:
    """A new session id (the cookie's value) and its CSRF token."""
    now = time.time() if now is None else now
    session_id, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    store.add_session(token_hash(session_id), reviewer, csrf, now + SESSION_S, now)
    return session_id, Session(reviewer=reviewer, csrf=csrf)


def find_session(store: Store, session_id: str | None, now: float | None = None) -> Session | None:
    if not session_id:
        return None
    now = time.time() if now is None else now
    return store.session(token_hash(session_id), now)


def close_session(store: Store, session_id: str) -> None:
    store.delete_session(token_hash(session_id))
