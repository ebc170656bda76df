"""Few-shot examples for a round's teacher items, from the run's labels and embeddings.

Embeddings: the student's pooled embeddings of the pool (from the round's scores), with the
few texts it lacks (seed items) embedded by `embed`; TF-IDF when the config asks for it, or
before the student exists (round 0).
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from .store import LabelRow
from .teacher.base import Example, TeacherItem
from .teacher.fewshot import choose_examples, tfidf
from .teacher.options import FewShotConfig

Embed = Callable[[list[str]], np.ndarray]


def _student_embeddings(texts: list[str], pool: Any, pool_texts: Sequence[str],
                        embed: Embed | None) -> np.ndarray | None:
    if pool is None:
        return None
    row_of = {text: row for row, text in enumerate(pool_texts)}
    missing = sorted({t for t in texts if t not in row_of})
    if missing and embed is None:
        return None
    extra = embed(missing) if missing else np.zeros((0, pool.shape[1]))
    extra_row = {text: row for row, text in enumerate(missing)}
    known = np.asarray(pool[np.array([row_of.get(t, 0) for t in texts], dtype=np.int64)])  # one gather (Shards too)
    return np.stack([known[j] if t in row_of else extra[extra_row[t]] for j, t in enumerate(texts)])


def with_examples(config: FewShotConfig, items: list[TeacherItem], labels: Sequence[LabelRow],
                  label_order: Sequence[str], pool_embeddings: np.ndarray | None, pool_texts: Sequence[str],
                  embed: Embed | None = None) -> list[TeacherItem]:
    """`items` with their few-shot blocks (unchanged when few-shot is off or nothing is labeled yet)."""
    candidates = [Example(r.text, r.label) for r in labels if config.source == "all" or r.source != "teacher"]
    if not candidates or (config.k == 0 and config.per_label == 0):
        return items
    texts = [c.text for c in candidates] + [i.text for i in items]
    vectors = _student_embeddings(texts, pool_embeddings, pool_texts, embed) if config.embeddings == "student" else None
    if vectors is None:
        vectors = tfidf(texts)
    blocks = choose_examples(vectors[len(candidates):], vectors[:len(candidates)], candidates, label_order,
                             config.k, config.per_label, config.max_tokens, config.relevance_weight,
                             item_texts=[i.text for i in items])
    return [TeacherItem(i.item_id, i.text, block) for i, block in zip(items, blocks)]
