"""What a finished round records in metrics.jsonl: the evaluation, who labeled what, how right the
teacher was where gold is known, what the teacher cost, and seconds per phase."""
from __future__ import annotations

from typing import Any

from .store import Store


def share(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def round_metrics(store: Store, round_: int, evaluation: dict[str, float], timings: dict[str, float]) -> dict[str, Any]:
    """The round's metrics from the store (so a resumed run records exactly what an uninterrupted one would)."""
    counts = store.label_counts()
    labels = store.current_labels()
    calls = store.teacher_calls()
    gold = {row.item_id: row.gold for row in labels}
    gold.update({r.item_id: r.gold for r in store.reviews()})
    judged = [c for c in calls if c.label is not None and gold.get(c.item_id) is not None]
    teacher_labels = [r for r in labels if r.source == "teacher" and r.gold is not None]
    with_gold = [r for r in labels if r.gold is not None]
    return {
        **_who_labeled(store, round_, counts, len(calls)),
        "teacher_accuracy_vs_gold": share(sum(c.label == gold[c.item_id] for c in judged), len(judged)),
        "accepted_accuracy_vs_gold": share(sum(r.label == r.gold for r in teacher_labels), len(teacher_labels)),
        "dataset_accuracy_vs_gold": share(sum(r.label == r.gold for r in with_gold), len(with_gold)),
        **_shares_and_costs(store, round_, counts),
        "eval_accuracy": evaluation["accuracy"],
        "eval_macro_f1": evaluation["macro_f1"],
        "eval_recall": evaluation.get("recall"),  # per class, where the evaluation set has it
        **_seconds(timings),
    }


def generation_round_metrics(store: Store, round_: int, eval_nll: float, timings: dict[str, float]) -> dict[str, Any]:
    """A generation round's metrics: who wrote the answers, how often people kept the teacher's answer as it
    was (`teacher_acceptance_rate`, over reviewed items the teacher answered), the student's mean NLL of the
    eval references, what the teacher cost, and seconds per phase."""
    counts = store.label_counts()
    reviewed = [r for r in store.settled_reviews() if r.status == "decided" and r.teacher_label is not None]
    return {
        **_who_labeled(store, round_, counts, len(store.teacher_calls())),
        "teacher_acceptance_rate": share(sum(r.human_label == r.teacher_label for r in reviewed), len(reviewed)),
        **_shares_and_costs(store, round_, counts),
        "eval_nll": eval_nll,
        **_seconds(timings),
    }


def _who_labeled(store: Store, round_: int, counts: dict[str, int], calls: int) -> dict[str, Any]:
    return {
        "round": round_,
        "labeled_total": sum(counts.values()),
        "labeled_by_seed": counts["seed"],
        "labeled_by_teacher": counts["teacher"],
        "labeled_by_human": counts["human"],
        "pending_review": store.pending_count(),
        "teacher_calls": calls,
        "teacher_failed": sum(1 for c in store.latest_teacher_calls().values() if c.error is not None),
    }


def _shares_and_costs(store: Store, round_: int, counts: dict[str, int]) -> dict[str, Any]:
    """The human share of the labels, and what the teacher cost: the run's paid calls so far and the round's."""
    return {
        "human_share": share(counts["human"], counts["human"] + counts["teacher"]),
        **{f"teacher_{key}": value for key, value in store.teacher_usage().items() if key not in ("calls", "failed")},
        **{f"round_teacher_{key}": value for key, value in store.teacher_usage(round_).items()},
    }


def _seconds(timings: dict[str, float]) -> dict[str, float]:
    return {f"seconds_{key.removesuffix('_s')}": round(value, 3) for key, value in timings.items()}
