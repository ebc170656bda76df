"""Login tokens: their hash (all the run database ever keeps) and a conservative estimate of their strength.

A token a config names is checked before it is used: a short or patterned one falls to guessing in
seconds (a 4-digit one fell in 35 s to 64 parallel connections), so anything under MIN_TOKEN_BITS is
refused. The estimate is length x log2(the smallest usual alphabet that holds every character): a random
string gets about its true entropy, a human-made one gets at most it.
"""
from __future__ import annotations

import hashlib
import math
import re
import string

MIN_TOKEN_BITS = 128
HASHED_PREFIX = "sha256:"
_DIGEST = re.compile(r"^[0-9a-f]{64}$")
# From the smallest up: the first that holds every character of a token is its alphabet.
_ALPHABETS = (
    string.digits,
    string.digits + "abcdef",
    string.digits + "ABCDEF",
    string.ascii_lowercase,
    string.ascii_uppercase,
    string.ascii_lowercase + string.digits,
    string.ascii_uppercase + string.digits,
    string.ascii_letters,
    string.ascii_letters + string.digits,
    string.ascii_letters + string.digits + "-_",
    string.ascii_letters + string.digits + "+/=",
    "".join(chr(c) for c in range(32, 127)),
)


def token_hash(token: str) -> str:
    """The SHA-256 hex digest of a token (tokens are random, so a plain hash cannot be reversed)."""
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


def hashed_form(token: str) -> str:
    """`sha256:<digest>` of a token; a token already in that form is kept as it is."""
    return token.lower() if token.lower().startswith(HASHED_PREFIX) else HASHED_PREFIX + token_hash(token)


def token_bits(token: str) -> float:
    """Estimated entropy in bits. A token with few distinct characters for its length (`abababab...`)
    is rated by the characters it really uses."""
    if not token:
        return 0.0
    size = next((len(a) for a in _ALPHABETS if set(token) <= set(a)), 128)  # beyond ASCII: 128, conservatively
    distinct = len(set(token))
    if distinct < min(size, len(token)) / 2:
        size = distinct
    return len(token) * math.log2(size) if size > 1 else 0.0


def weak_token_problem(token: str) -> str | None:
    """Why a configured token (or its `sha256:` form) is refused, or None when it is acceptable."""
    if token.lower().startswith(HASHED_PREFIX):
        digest = token[len(HASHED_PREFIX):].lower()
        return None if _DIGEST.match(digest) else f"'{HASHED_PREFIX}' must be followed by 64 hex digits"
    bits = token_bits(token)
    if bits >= MIN_TOKEN_BITS:
        return None
    return (f"token too weak (about {bits:.0f} bits; at least {MIN_TOKEN_BITS} are needed): use `quarry reviewers add`, "
            f"or a random token such as python -c 'import secrets; print(secrets.token_urlsafe(32))', "
            f"or its '{HASHED_PREFIX}<hex digest>' form")
