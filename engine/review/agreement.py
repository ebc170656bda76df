"""Agreement between reviewers who decided the same items (overlap > 1), and their throughput.

Cohen's kappa for each pair of reviewers over the items both labeled (Cohen, 1960, "A coefficient of
agreement for nominal scales", Educational and Psychological Measurement 20(1)); Fleiss' kappa over the
items that every one of n raters labeled (Fleiss, 1971, "Measuring nominal scale agreement among many
raters", Psychological Bulletin 76(5)). Skips abstain: they are not a category.
"""
from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass
from itertools import combinations
from typing import Sequence

from ..core.stats import cohen_kappa, fleiss_kappa


@dataclass(frozen=True)
class ReviewerStats:
    reviewer: str
    decisions: int  # current decisions (corrections replace, not add)
    corrections: int
    agreement_with_final: float | None  # share of their labels equal to the item's final label
    mean_kappa: float | None  # mean Cohen's kappa with each other reviewer they share items with
    median_s_per_item: float | None  # median gap between consecutive decisions, pauses over 10 min left out


@dataclass(frozen=True)
class Agreement:
    reviewers: list[ReviewerStats]
    pairs: dict[tuple[str, str], tuple[int, float | None]]  # (a, b) -> (shared items, Cohen's kappa)
    fleiss: float | None
    fleiss_items: int
    fleiss_raters: int


def agreement(current: Sequence[tuple[str, str, str | None]], finals: dict[str, str | None],
              log: Sequence[tuple[str, float, int | None]]) -> Agreement:
    """current: (item, reviewer, label) of each reviewer's current decision; finals: item -> final label;
    log: (reviewer, created_at, supersedes) of every audit record, in order."""
    by_item: dict[str, dict[str, str]] = defaultdict(dict)
    for item, reviewer, label in current:
        if label is not None:
            by_item[item][reviewer] = label
    names = sorted({reviewer for _, reviewer, _ in current} | {r for r, _, _ in log})
    pairs: dict[tuple[str, str], tuple[int, float | None]] = {}
    for a, b in combinations(names, 2):
        shared = [(v[a], v[b]) for v in by_item.values() if a in v and b in v]
        if shared:
            pairs[(a, b)] = (len(shared), cohen_kappa([x for x, _ in shared], [y for _, y in shared]))
    sizes = Counter(len(v) for v in by_item.values() if len(v) >= 2)
    raters = max(sizes, key=lambda k: (sizes[k], k)) if sizes else 0
    rated = [list(v.values()) for v in by_item.values() if len(v) == raters]
    stats = []
    for name in names:
        mine = [(item, label) for item, reviewer, label in current if reviewer == name]
        judged = [(label, finals[item]) for item, label in mine if label is not None and finals.get(item) is not None]
        kappas = [k for (a, b), (_, k) in pairs.items() if name in (a, b) and k is not None]
        times = [t for r, t, _ in log if r == name]
        gaps = [b - a for a, b in zip(times, times[1:]) if 0 <= b - a <= 600]
        stats.append(ReviewerStats(
            reviewer=name, decisions=len(mine),
            corrections=sum(1 for r, _, sup in log if r == name and sup is not None),
            agreement_with_final=sum(x == y for x, y in judged) / len(judged) if judged else None,
            mean_kappa=statistics.fmean(kappas) if kappas else None,
            median_s_per_item=statistics.median(gaps) if gaps else None))
    return Agreement(reviewers=stats, pairs=pairs, fleiss=fleiss_kappa(rated) if rated else None,
                     fleiss_items=len(rated), fleiss_raters=raters)
