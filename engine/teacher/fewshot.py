"""Few-shot examples per item: similar labeled texts, with label diversity, under a prompt-token cap.

Pure functions on arrays. Examples come in two parts:
- fixed: for each label, the labeled text nearest that label's centroid (its most typical
  example); the same for every item, so it sits at the front of the few-shot block and stays
  inside the prompt prefix servers cache;
- per item: maximal marginal relevance (Carbonell & Goldstein 1998, "The use of MMR,
  diversity-based reranking for reordering documents and producing summaries", SIGIR), where
  an example whose label is already shown counts as fully redundant, so different labels come
  before a second example of one label unless it is much more similar.
Token counts are estimated at 4 characters a token (the selection runs before any teacher or
tokenizer is chosen); the estimate is for a cap, not a bill.
"""
from __future__ import annotations

import math
import re
from collections import Counter
from typing import Sequence

import numpy as np

from .base import Example

_WORD = re.compile(r"\w+", re.UNICODE)
CHARS_PER_TOKEN = 4


def estimate_tokens(example: Example) -> int:
    """Tokens an example adds to the prompt ('Text: ...' and 'Answer: ...' lines)."""
    return math.ceil((len(example.text) + len(example.label) + 20) / CHARS_PER_TOKEN)


def normalize(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms == 0, 1.0, norms)


def tfidf(texts: Sequence[str], max_terms: int = 2048) -> np.ndarray:
    """L2-normalised TF-IDF rows (smoothed idf, as scikit-learn's default) over the `max_terms` words found in
    most texts (dense, so bounded): the fallback when no student embeddings exist yet (round 0)."""
    docs = [Counter(w.lower() for w in _WORD.findall(t)) for t in texts]
    df = Counter(word for doc in docs for word in doc)
    kept = sorted(df, key=lambda w: (-df[w], w))[:max_terms]
    vocab = {w: k for k, w in enumerate(kept)}
    matrix = np.zeros((len(texts), len(vocab)), dtype=np.float32)
    for row, doc in enumerate(docs):
        for word, count in doc.items():
            if word in vocab:
                matrix[row, vocab[word]] = count
    idf = np.log((1 + len(texts)) / (1 + np.array([df[w] for w in kept], dtype=np.float32))) + 1
    return normalize(matrix * idf)


def fixed_examples(embeddings: np.ndarray, labels: Sequence[str], label_order: Sequence[str],
                   per_label: int) -> list[int]:
    """Indices of the `per_label` most typical candidates of each label (nearest its centroid), labels in task order."""
    if per_label <= 0:
        return []
    emb = normalize(np.asarray(embeddings, dtype=float))
    labels_arr = np.asarray(labels)
    chosen: list[int] = []
    for label in label_order:
        members = np.flatnonzero(labels_arr == label)
        if len(members) == 0:
            continue
        centroid = emb[members].mean(axis=0)
        closeness = emb[members] @ centroid
        order = np.lexsort((members, -closeness))  # ties: the earlier candidate
        chosen.extend(int(members[i]) for i in order[:per_label])
    return chosen


def mmr(query: np.ndarray, embeddings: np.ndarray, labels: Sequence[str], k: int, relevance_weight: float = 0.5,
        exclude: Sequence[int] = ()) -> list[int]:
    """Up to k candidate indices for one query, most relevant first, by label-aware MMR:
    score = w * sim(query, c) - (1 - w) * max over chosen s of (1 if same label else sim(c, s))."""
    emb = normalize(np.asarray(embeddings, dtype=float))
    q = normalize(np.asarray(query, dtype=float)[None, :])[0]
    relevance = emb @ q
    available = np.ones(len(emb), dtype=bool)
    available[list(exclude)] = False
    labels_arr = np.asarray(labels)
    chosen: list[int] = []
    redundancy = np.zeros(len(emb))
    while len(chosen) < k and available.any():
        score = relevance_weight * relevance - (1 - relevance_weight) * redundancy
        score[~available] = -np.inf
        best = int(np.argmax(score))
        chosen.append(best)
        available[best] = False
        same = np.where(labels_arr == labels_arr[best], 1.0, emb @ emb[best])
        redundancy = np.maximum(redundancy, same)
    return chosen


def within_budget(fixed: Sequence[Example], picked: Sequence[Example], max_tokens: int) -> list[Example]:
    """Fixed examples first, then the per-item ones, dropping the least relevant until the block fits;
    the most relevant example ends up last, next to the item."""
    kept_fixed: list[Example] = []
    used = 0
    for example in fixed:
        cost = estimate_tokens(example)
        if used + cost <= max_tokens:
            kept_fixed.append(example)
            used += cost
    kept: list[Example] = []
    for example in picked:  # most relevant first
        cost = estimate_tokens(example)
        if used + cost <= max_tokens:
            kept.append(example)
            used += cost
    return kept_fixed + kept[::-1]


def choose_examples(item_embeddings: np.ndarray, candidate_embeddings: np.ndarray, candidates: Sequence[Example],
                    label_order: Sequence[str], k: int, per_label_fixed: int = 0, max_tokens: int = 512,
                    relevance_weight: float = 0.5, item_texts: Sequence[str] | None = None) -> list[tuple[Example, ...]]:
    """The few-shot block of each item: fixed examples, then k by label-aware MMR, under `max_tokens`.

    A candidate with the item's own text is never its example (a relabeled item would see its answer).
    """
    if not candidates or (k <= 0 and per_label_fixed <= 0):
        return [() for _ in range(len(item_embeddings))]
    labels = [c.label for c in candidates]
    fixed_idx = fixed_examples(candidate_embeddings, labels, label_order, per_label_fixed)
    fixed = [candidates[i] for i in fixed_idx]
    blocks = []
    for row, query in enumerate(item_embeddings):
        own = [] if item_texts is None else [i for i, c in enumerate(candidates) if c.text == item_texts[row]]
        picked = mmr(query, candidate_embeddings, labels, k, relevance_weight, exclude=[*fixed_idx, *own])
        shown_fixed = [e for e in fixed if item_texts is None or e.text != item_texts[row]]
        blocks.append(tuple(within_budget(shown_fixed, [candidates[i] for i in picked], max_tokens)))
    return blocks
