"""A persistent cache of teacher calls, shared by every run on the machine, and the wrapper that
puts it (and the price of each call) in front of any teacher backend.

The key is the call's `prompt_hash`: model, rendered prompt(s), sampling parameters and
confidence method. A rerun of a job, a resumed run or a new run folder over the same items
asks the cache first and pays nothing twice; only answers that came back with a label are
stored, so an error (a timeout, an unparsable answer) is always asked again.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import threading
import time
from pathlib import Path
from typing import Any, Sequence

from ..store.call_cache import CallCacheFile
from .base import OnResult, Teacher, TeacherItem, TeacherResult, Usage, call_cost
from .prompts import template_source

# Bump when what a backend answers for the same key changes (a new scoring rule): old entries stop matching.
CACHE_VERSION = 1


def default_cache_path() -> Path:
    """$QUARRY_TEACHER_CACHE, else ~/.cache/quarry/teacher-cache.db (the tests point the variable at a temp file)."""
    override = os.environ.get("QUARRY_TEACHER_CACHE")
    return Path(override) if override else Path.home() / ".cache" / "quarry" / "teacher-cache.db"


class TeacherCache:
    """SQLite file of {key: result}; safe across threads (one lock) and processes (WAL, busy timeout)."""

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path).expanduser() if path else default_cache_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._file = CallCacheFile(self.path)

    def get(self, key: str) -> TeacherResult | None:
        with self._lock:
            text = self._file.get(key)
        return None if text is None else _from_json(text)

    def put(self, key: str, model: str, result: TeacherResult) -> bool:
        """Store an answered result; an error or a missing answer is never stored (False)."""
        if not result.ok:
            return False
        with self._lock:
            self._file.put(key, model, _to_json(result), time.time())
        return True

    def __len__(self) -> int:
        with self._lock:
            return self._file.count()

    def close(self) -> None:
        with self._lock:
            self._file.close()


def _to_json(result: TeacherResult) -> str:
    fields = dataclasses.asdict(result)
    for transient in ("cached", "cost", "latency_s"):  # facts of one call, not of the answer
        fields.pop(transient)
    return json.dumps(fields)


def _from_json(text: str) -> TeacherResult:
    """A stored result; entries written before a field existed take its default (e.g. confidence_note)."""
    fields: dict[str, Any] = json.loads(text)
    fields["usage"] = Usage(**fields["usage"])
    return TeacherResult(**fields)


def fallback_key(teacher: Any, item: TeacherItem) -> str:
    """Key for a teacher without `cache_key`: everything that shapes its prompt and answer, that is
    its config (less the keys its options model lists in `not_in_cache_key`: how to pay, wait or run),
    its task, its template's text, the item's few-shot examples and its text."""
    config = getattr(teacher, "config", None)
    task = getattr(teacher, "task", None)
    neutral = set(getattr(config, "not_in_cache_key", ()))
    settings = config.model_dump(mode="json", exclude=neutral) if config is not None else {}
    parts = [str(CACHE_VERSION), teacher.model_id, json.dumps(settings, sort_keys=True),
             json.dumps(task.model_dump(mode="json") if task is not None else None, sort_keys=True),
             template_source(settings.get("prompt", "")) or "",
             json.dumps([[e.text, e.label] for e in item.examples]), item.text]
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:32]


class CachingTeacher:
    """A Teacher in front of another: answers what the cache knows, asks the backend the rest, stores
    what comes back labeled, and prices every call at the configured rates (0 for a cache hit)."""

    def __init__(self, inner: Teacher, cache: TeacherCache | None, price_input_per_mtok: float = 0.0,
                 price_output_per_mtok: float = 0.0, confidence_method: str = ""):
        self.inner = inner
        self.cache = cache
        self.prices = (price_input_per_mtok, price_output_per_mtok)
        self.confidence_method = confidence_method  # for results whose backend does not name its method
        self.model_id = inner.model_id

    def key(self, item: TeacherItem) -> str:
        own = getattr(self.inner, "cache_key", None)
        return own(item) if own is not None else fallback_key(self.inner, item)

    def label(self, items: Sequence[TeacherItem], on_result: OnResult | None = None) -> list[TeacherResult]:
        items = list(items)
        results: list[TeacherResult | None] = [None] * len(items)
        keys = [self.key(item) for item in items] if self.cache is not None else [""] * len(items)
        # A hit keeps the prompt_hash its backend gave it, so a call row looks the same either way.
        misses: list[int] = []
        for position, key in enumerate(keys):
            hit = self.cache.get(key) if self.cache is not None else None
            if hit is None:
                misses.append(position)
                continue
            results[position] = dataclasses.replace(hit, cached=True, cost=0.0, latency_s=0.0)
            if on_result is not None:
                on_result(position, results[position])

        def fresh(index: int, result: TeacherResult) -> None:
            position = misses[index]
            result = dataclasses.replace(result, cost=call_cost(result.usage, *self.prices),
                                         confidence_method=result.confidence_method or self.confidence_method)
            if self.cache is not None:
                self.cache.put(keys[position], self.model_id, result)
            results[position] = result
            if on_result is not None:
                on_result(position, result)

        if misses:
            answered = self.inner.label([items[p] for p in misses], on_result=fresh)
            for index, result in enumerate(answered):  # a backend that never called on_result
                if results[misses[index]] is None:
                    fresh(index, result)
        return [r for r in results if r is not None]

    def close(self) -> None:
        self.inner.close()
        if self.cache is not None:
            self.cache.close()
