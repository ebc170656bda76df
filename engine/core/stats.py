"""Statistics shared by the strategies, the loop's metrics, stopping, routing and review agreement."""
from __future__ import annotations

import math
from collections import Counter
from typing import Any, Sequence

import numpy as np


def entropy(probs: np.ndarray, axis: int = -1) -> np.ndarray:
    """Shannon entropy in nats with 0 log 0 = 0."""
    return -(probs * np.log(np.where(probs > 0, probs, 1.0))).sum(axis=axis)


def classification_metrics(gold: Sequence[str], predicted: Sequence[str], label_names: Sequence[str]) -> dict[str, Any]:
    """Accuracy, macro-F1 over the task's labels (a label absent from gold and predictions is left out), and
    each label's recall where gold has it: rare classes are where active learning pays off or fails."""
    if len(gold) != len(predicted):
        raise ValueError("gold and predicted differ in length")
    if not gold:
        return {"accuracy": float("nan"), "macro_f1": float("nan"), "recall": {}}
    gold_a, pred_a = np.asarray(gold), np.asarray(predicted)
    f1s, recall = [], {}
    for label in label_names:
        tp = int(np.sum((pred_a == label) & (gold_a == label)))
        fp = int(np.sum((pred_a == label) & (gold_a != label)))
        fn = int(np.sum((pred_a != label) & (gold_a == label)))
        if tp + fn:
            recall[label] = tp / (tp + fn)
        if tp + fp + fn == 0:
            continue
        f1s.append(2 * tp / (2 * tp + fp + fn))
    return {"accuracy": float(np.mean(gold_a == pred_a)), "macro_f1": float(np.mean(f1s)), "recall": recall}


def cohen_kappa(a: Sequence[str], b: Sequence[str]) -> float | None:
    """Agreement of two raters beyond chance (Cohen, 1960, "A coefficient of agreement for nominal scales",
    Educational and Psychological Measurement 20(1)). None when undefined: no items, or both raters used
    one and the same category throughout."""
    if len(a) != len(b):
        raise ValueError("cohen_kappa: the two raters need the same number of items")
    n = len(a)
    if n == 0:
        return None
    observed = sum(x == y for x, y in zip(a, b)) / n
    ca, cb = Counter(a), Counter(b)
    expected = sum(ca[k] * cb[k] for k in ca) / (n * n)
    if expected == 1.0:
        return None
    return (observed - expected) / (1.0 - expected)


def fleiss_kappa(ratings: Sequence[Sequence[str]]) -> float | None:
    """Agreement of n raters per item (Fleiss, 1971, "Measuring nominal scale agreement among many raters",
    Psychological Bulletin 76(5)). Each element: the labels the same number (>= 2) of raters gave one item."""
    if not ratings:
        return None
    n = len(ratings[0])
    if n < 2 or any(len(r) != n for r in ratings):
        raise ValueError("fleiss_kappa: every item needs the same number (>= 2) of ratings")
    totals: Counter[str] = Counter()
    agreement = 0.0
    for item in ratings:
        counts = Counter(item)
        totals.update(counts)
        agreement += (sum(c * c for c in counts.values()) - n) / (n * (n - 1))
    p_bar = agreement / len(ratings)
    total = len(ratings) * n
    p_e = sum((c / total) ** 2 for c in totals.values())
    if p_e == 1.0:
        return None
    return (p_bar - p_e) / (1.0 - p_e)


def wilson_interval(successes: float, n: float, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a proportion (successes and n may be fractional); (0, 1) when n is 0.
    z = 1.96: a two-sided 95% interval; each end alone is a one-sided 97.5% bound."""
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    z2 = z * z
    centre = p + z2 / (2 * n)
    margin = z * math.sqrt(max(p * (1 - p) / n + z2 / (4 * n * n), 0.0))
    return max(0.0, (centre - margin) / (1 + z2 / n)), min(1.0, (centre + margin) / (1 + z2 / n))


def wilson_lower(successes: float, n: float, z: float = 1.645) -> float:
    """Lower end of the Wilson score interval of a proportion (successes and n may be fractional);
    z = 1.645: a one-sided 95% lower bound."""
    return wilson_interval(successes, n, z)[0] if n > 0 else 0.0


def auroc(scores: Sequence[float], positive: Sequence[bool]) -> float | None:
    """Area under the ROC curve (Mann-Whitney U with midranks for ties); None without both classes."""
    s = np.asarray(scores, dtype=float)
    y = np.asarray(positive, dtype=bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s), dtype=float)
    sorted_s = s[order]
    start = 0
    while start < len(s):
        end = start
        while end + 1 < len(s) and sorted_s[end + 1] == sorted_s[start]:
            end += 1
        ranks[order[start:end + 1]] = (start + end) / 2 + 1
        start = end + 1
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
