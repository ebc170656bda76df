"""Requests-per-minute and tokens-per-minute limits for the async teacher: token buckets.

Providers count both; going over earns 429s, and every 429 costs a backoff. A bucket refills
continuously at `per_minute / 60` per second and holds at most one second's worth (at least one
unit), so requests go out evenly spaced rather than in minute-long bursts. A request may take
more than the bucket holds (a long prompt under a small token limit): it waits for a full bucket
and leaves it in debt, which the next requests wait out. Token counts are estimated before a
request and corrected with the server's usage after it (`settle`).
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Callable


@dataclass
class TokenBucket:
    per_minute: float
    clock: Callable[[], float] = time.monotonic
    _level: float = field(init=False)
    _updated: float = field(init=False)
    _lock: asyncio.Lock | None = field(init=False, default=None)
    _lock_loop: object = field(init=False, default=None)

    def __post_init__(self) -> None:
        if self.per_minute <= 0:
            raise ValueError(f"per_minute must be positive, got {self.per_minute}")
        self._level = self.capacity
        self._updated = self.clock()

    @property
    def rate(self) -> float:
        return self.per_minute / 60.0

    @property
    def capacity(self) -> float:
        return max(1.0, self.rate)

    def _refill(self) -> None:
        now = self.clock()
        self._level = min(self.capacity, self._level + (now - self._updated) * self.rate)
        self._updated = now

    def delay_for(self, amount: float) -> float:
        """Seconds until `amount` (capped at capacity) is available; 0 when it is now."""
        self._refill()
        need = min(amount, self.capacity) - self._level
        return max(0.0, need / self.rate)

    async def acquire(self, amount: float = 1.0) -> None:
        # One waiter at a time: first come, first served, and no two take the same refill. The
        # bucket outlives an event loop (each `label` call runs its own); its lock cannot.
        loop = asyncio.get_running_loop()
        if self._lock is None or self._lock_loop is not loop:
            self._lock, self._lock_loop = asyncio.Lock(), loop
        async with self._lock:
            while (wait := self.delay_for(amount)) > 0:
                await asyncio.sleep(wait)
            self._level -= amount

    def settle(self, estimated: float, actual: float) -> None:
        """Correct an earlier `acquire(estimated)` once the real count is known."""
        self._refill()
        self._level = min(self.capacity, self._level + estimated - actual)


@dataclass
class RateLimits:
    """The limits of one teacher; a missing limit never waits."""

    requests: TokenBucket | None = None
    tokens: TokenBucket | None = None

    @classmethod
    def per_minute(cls, requests: float | None, tokens: float | None) -> "RateLimits":
        return cls(TokenBucket(requests) if requests else None, TokenBucket(tokens) if tokens else None)

    async def acquire(self, estimated_tokens: float) -> None:
        if self.requests is not None:
            await self.requests.acquire(1.0)
        if self.tokens is not None:
            await self.tokens.acquire(estimated_tokens)

    def settle(self, estimated_tokens: float, actual_tokens: float) -> None:
        if self.tokens is not None:
            self.tokens.settle(estimated_tokens, actual_tokens)
