"""Queue-mode review on a real run database: terminal answers, imported decisions, and their errors."""
import json

import pytest

from quarry_al.engine.export import export
from quarry_al.engine.config import config_from_dict
from quarry_al.engine.review import DecisionError, import_decisions, review_in_terminal, simulate_review
from quarry_al.engine.review.queue import ReviewQueue
from quarry_al.engine.review.simulate import ReviewError
from quarry_al.engine.store import Store

LABELS = ["billing", "shipping", "technical"]


@pytest.fixture
def store(tmp_path) -> Store:
    store = Store(tmp_path / "quarry.db")
    store.initialize("{}", [(f"i{n}", f"text {n}", LABELS[n % 3]) for n in range(6)], [])
    store.create_round(0, "random", [(f"i{n}", None, None, None) for n in range(4)], {})
    store.commit_routing(
        0, accepted=[("i0", "billing", 0.95, "teacher confidence 0.95 >= 0.80")],
        to_review=[{"item_id": f"i{n}", "reason": "teacher confidence 0.40 < 0.80", "teacher_label": "shipping",
                    "teacher_confidence": 0.4, "teacher_raw": "{}", "student_label": None,
                    "student_confidence": None} for n in (1, 2, 3)],
        timings={})
    yield store
    store.close()


def answers(*replies):
    it = iter(replies)
    return lambda prompt: next(it)


def test_terminal_accept_correct_skip(store):
    shown = []
    counts = review_in_terminal(ReviewQueue(store), LABELS, "ana", ask=answers("a", "x", "3", "s"), say=shown.append)
    assert counts == {"accepted": 1, "corrected": 1, "skipped": 1, "revised": 0}
    labels = {r.item_id: (r.label, r.source, r.reviewer) for r in store.current_labels()}
    assert labels["i1"] == ("shipping", "human", "ana")
    assert labels["i2"] == ("technical", "human", "ana")
    assert "i3" not in labels and store.pending_count() == 0
    assert any("text 1" in line for line in shown) and "?" in shown  # the bad answer 'x' was asked again


def test_terminal_undo_corrects_the_previous_decision_with_a_new_record(store):
    shown = []
    counts = review_in_terminal(ReviewQueue(store), LABELS, "ana", ask=answers("a", "u", "3", "s", "q"),
                                say=shown.append)
    assert counts["revised"] == 1 and counts["accepted"] == 1 and counts["skipped"] == 1
    log = ReviewQueue(store).log()
    assert [(r.item_id, r.label, r.supersedes) for r in log] == [("i1", "shipping", None), ("i1", "technical", log[0].id),
                                                                 ("i2", None, None)]
    assert {r.item_id: r.label for r in store.current_labels()}["i1"] == "technical"
    assert any("you chose shipping" in line for line in shown)


def test_terminal_quit_keeps_the_rest_pending(store):
    review_in_terminal(ReviewQueue(store), LABELS, "ana", ask=answers("1", "q"), say=lambda s: None)
    assert store.pending_count() == 2
    assert ReviewQueue(store).lease("bo").item.item_id == "i2"  # quitting released the item shown


def test_import_decisions(store, tmp_path):
    path = tmp_path / "decisions.jsonl"
    path.write_text('{"id": "i1", "label": "billing"}\n\n{"id": "i2", "skip": true}\n{"id": "i0", "label": "billing"}\n')
    summary = import_decisions(ReviewQueue(store), path, LABELS, reviewer="team")
    assert (summary.decided, summary.skipped, summary.not_pending) == (1, 1, ["i0"])
    assert store.pending_count() == 1


@pytest.mark.parametrize("content, message", [
    ('{"id": "i1", "label": "refund"}\n', r"decisions\.jsonl:1: label 'refund' is not one of"),
    ('{"id": "i1", "label": "billing"}\nnot json\n', r"decisions\.jsonl:2: not valid JSON"),
    ('{"label": "billing"}\n', r"decisions\.jsonl:1: expected an object with an 'id'"),
    ('{"id": "zzz", "label": "billing"}\n', r"unknown item id 'zzz'"),
])
def test_bad_decision_files_change_nothing(store, tmp_path, content, message):
    path = tmp_path / "decisions.jsonl"
    path.write_text(content)
    with pytest.raises(DecisionError, match=message):
        import_decisions(ReviewQueue(store), path, LABELS, reviewer="team")
    assert store.pending_count() == 3


def test_simulated_review_uses_gold_and_refuses_without_it(store, tmp_path):
    assert simulate_review(store) == 3
    assert {r.item_id: r.label for r in store.current_labels()}["i1"] == LABELS[1]
    empty = Store(tmp_path / "nogold.db")
    empty.initialize("{}", [("x", "text", None)], [])
    empty.create_round(0, "random", [("x", None, None, None)], {})
    empty.commit_routing(0, [], [{"item_id": "x", "reason": "r", "teacher_label": None, "teacher_confidence": None,
                                  "teacher_raw": "", "student_label": None, "student_confidence": None}], {})
    with pytest.raises(ReviewError, match="needs gold labels"):
        simulate_review(empty)


def test_flat_export_carries_each_label_source(store, tmp_path):
    simulate_review(store)
    config = config_from_dict({"name": "t", "task": {"labels": LABELS, "instruction": "Route the message."},
                               "data": {"pool": "pool.jsonl", "eval": "eval.jsonl"}})
    out = tmp_path / "flat.jsonl"
    assert export(store, config, "jsonl", out) == 4
    rows = {r["id"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert rows["i0"]["source"] == "teacher" and rows["i0"]["confidence"] == 0.95
    assert rows["i1"]["source"] == "human" and rows["i1"]["reviewer"] == "simulated"
