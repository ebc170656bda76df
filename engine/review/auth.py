"""Reviewer tokens and web sessions, kept in the run database as SHA-256 hashes only.

Tokens are 256-bit random strings (or ones a config names), so a plain hash is enough: nobody can
guess their way back from it, and a leaked database does not log anyone in.
"""
from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from typing import Mapping

from ..core.errors import QuarryError
from ..store import Session, Store

SESSION_S = 12 * 3600
_NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")


class AuthError(QuarryError, ValueError):
    pass


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def add_reviewer(store: Store, name: str) -> str:
    """Create (or replace) a reviewer's token; the token is returned once and only its hash is stored."""
    if not _NAME.match(name):
        raise AuthError(f"reviewer name {name!r}: use 1-64 letters, digits, '_', '.', '@' or '-'")
    token = secrets.token_urlsafe(32)
    store.set_reviewer_token(name, token_hash(token), time.time())
    return token


def reviewer_names(store: Store) -> list[str]:
    return [r.name for r in store.reviewers()]


def authenticate(store: Store, token: str, configured: Mapping[str, str]) -> str | None:
    """The reviewer a token belongs to: from the database, or from the config's review.reviewers
    (a token, or `sha256:` and its hex digest, which keeps the token itself out of the config)."""
    if not token:
        return None
    digest = token_hash(token)
    for name, known in configured.items():
        expected = known.removeprefix("sha256:") if known.startswith("sha256:") else token_hash(known)
        if hmac.compare_digest(expected, digest):
            return name
    return store.reviewer_with_token(digest)


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
