"""What the review app's routes share: the run's config, a Store per worker thread, the similar-items
index, and the JSON of an item under review (what the page shows of it)."""
from __future__ import annotations

import json
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ...config import JobConfig, config_from_dict
from ..kinds import review_kind
from ..queue import ReviewQueue
from ..similar import SimilarIndex
from ...store import ReviewRow, Store

SIMILAR_REFRESH_S = 30.0
TOP_LABELS = 3
# A local teacher's raw answer is its label log-likelihoods before calibration: numbers that rank the labels
# differently from the calibrated distribution the label came from, so the page shows that distribution instead.
_RAW_IS_SCORES = frozenset({"label_likelihood"})


class AppContext:
    """One Store per worker thread (sqlite3 connections stay on the thread that made them)."""

    def __init__(self, db_path: Path):
        self.db_path = db_path
        self._local = threading.local()
        self._similar_lock = threading.Lock()
        self._similar: tuple[Any, SimilarIndex] | None = None
        self._similar_at = 0.0
        with Store(db_path) as store:
            self.config: JobConfig = config_from_dict(json.loads(store.config_json()))
        self.labels = self.config.task.label_names
        self.review = review_kind(self.config)  # what the task kind shows and accepts

    def store(self) -> Store:
        store = getattr(self._local, "store", None)
        if store is None:
            store = self._local.store = Store(self.db_path)
        return store

    def queue(self) -> ReviewQueue:
        return ReviewQueue(self.store(), overlap=self.config.review.overlap, lease_s=self.config.review.lease_s)

    def similar(self) -> SimilarIndex:
        """Rebuilt when labels were added, at most every SIMILAR_REFRESH_S: each decision adds one, and a
        refit per item would cost more than a slightly stale list of neighbours is worth."""
        store = self.store()
        latest = store.latest_label_id()
        now = time.monotonic()
        with self._similar_lock:
            if self._similar is None or (self._similar[0] != latest and now - self._similar_at >= SIMILAR_REFRESH_S):
                rows = [(r.item_id, r.text, r.label, r.source) for r in store.current_labels()]
                self._similar, self._similar_at = (latest, SimilarIndex(rows)), now
            return self._similar[1]

    def item_json(self, item: ReviewRow, expires_at: float | None = None) -> dict[str, Any]:
        """An item as the page gets it: its text, what the teacher and the student said, and its neighbours.
        `teacher_top` is the teacher's most probable labels from its (calibrated) distribution."""
        neighbours = self.similar().nearest(item.text, k=3, exclude=item.item_id)
        call = self.store().latest_teacher_call(item.item_id)
        result = call.result if call is not None else None
        distribution = (result.distribution if result is not None else None) or {}
        top = sorted(distribution.items(), key=lambda kv: -kv[1])[:TOP_LABELS]
        raw_is_scores = result is not None and result.confidence_method in _RAW_IS_SCORES
        return {
            "item_id": item.item_id, "text": item.text, "round": item.round, "reason": item.reason,
            "teacher_label": item.teacher_label, "teacher_confidence": item.teacher_confidence,
            "teacher_top": [{"label": label, "p": p} for label, p in top],
            "teacher_raw": "" if raw_is_scores else item.teacher_raw,
            "teacher_note": result.confidence_note if result is not None else "",
            "student_label": item.student_label, "student_confidence": item.student_confidence,
            "expires_at": expires_at,
            "expires_in": None if expires_at is None else max(0.0, expires_at - time.time()),
            "similar": [asdict(n) for n in neighbours], **self.review.item_fields(item),
        }
