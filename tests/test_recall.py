"""Per-class recall: computed with accuracy and macro-F1, recorded in metrics.jsonl, shown by status and report."""
from __future__ import annotations

import json

import pytest

from quarry_al.engine.core.stats import classification_metrics
from quarry_al.engine.report import recall_lines, status_text, write_report
from quarry_al.engine.run_folder import RunFolder
from quarry_al.engine.store import Store


def test_recall_is_per_class_and_leaves_out_classes_gold_lacks():
    gold = ["a", "a", "a", "b", "c", "c"]
    predicted = ["a", "a", "b", "b", "a", "c"]
    metrics = classification_metrics(gold, predicted, ["a", "b", "c", "d"])
    assert metrics["recall"] == pytest.approx({"a": 2 / 3, "b": 1.0, "c": 0.5})  # no 'd' in gold: no recall
    assert metrics["accuracy"] == pytest.approx(4 / 6)


def test_a_rare_class_the_student_misses_shows_low_recall_beside_high_accuracy():
    gold = ["common"] * 95 + ["rare"] * 5
    metrics = classification_metrics(gold, ["common"] * 100, ["common", "rare"])
    assert metrics["accuracy"] == 0.95 and metrics["recall"]["rare"] == 0.0
    assert metrics["macro_f1"] < 0.5  # what accuracy hides


def _run_with_history(tmp_path, recalls: list[dict[str, float]]) -> Store:
    store = Store(tmp_path / "quarry.db")
    store.initialize(json.dumps({"name": "recall", "task": {"labels": ["a", "b"]}}), [("i0", "t", "a")], [])
    for round_, recall in enumerate(recalls):
        store.create_round(round_, "random", [] if round_ else [("i0", None, None, None)], {})
        store.set_phase(round_, "done", {}, {"round": round_, "labeled_total": 20 * (round_ + 1), "eval_accuracy": 0.8,
                                             "eval_macro_f1": 0.7, "eval_recall": recall, "labeled_by_human": 0})
    return store


def test_status_names_the_weakest_class_first(tmp_path):
    store = _run_with_history(tmp_path, [{"a": 0.9, "b": 0.1}, {"a": 0.95, "b": 0.4}])
    assert recall_lines(store.history()) == ["recall per class (round 1, lowest first): b 0.40, a 0.95"]
    assert "recall per class (round 1, lowest first): b 0.40, a 0.95" in status_text(store)
    assert recall_lines([]) == [] and recall_lines([{"round": 0}]) == []  # runs from before recall was measured


def test_report_draws_recall_per_class(tmp_path):
    store = _run_with_history(tmp_path, [{"a": 0.9, "b": 0.1}, {"a": 0.95, "b": 0.4}])
    page = write_report(store, RunFolder(tmp_path)).read_text()
    assert "Recall per class" in page and "recall.png" in page
    assert (tmp_path / "recall.png").stat().st_size > 10_000
