"""Dashboard figures from a real run database: progress, threshold precision on reviewed items, agreement."""
import json

import pytest

from quarry_al.engine.config import config_from_dict
from quarry_al.engine.review.dashboard import build_dashboard, teacher_precision
from quarry_al.engine.review.queue import ReviewQueue
from quarry_al.engine.store import Store
from reviewdb import make_review_db


def test_teacher_precision_per_threshold():
    reviewed = [(0.95, "a", "a"), (0.85, "a", "b"), (0.6, "b", "b"), (None, None, "a"), (0.55, "a", "c")]
    rows = {r.threshold: r for r in teacher_precision(reviewed, (0.5, 0.9), configured=0.8)}
    assert (rows[0.8].reviewed, rows[0.8].precision, rows[0.8].configured) == (2, 0.5, True)
    assert (rows[0.9].reviewed, rows[0.9].precision) == (1, 1.0)
    assert (rows[0.5].reviewed, rows[0.5].precision) == (4, 0.5)


def test_dashboard_counts_and_agreement_with_overlap(tmp_path):
    # Items i0006, i0007, i0008: teacher labels billing, shipping, technical; confidences 0.9, 0.3, 0.4
    with Store(make_review_db(tmp_path / "quarry.db", pending=4)) as store:
        queue = ReviewQueue(store, overlap=2)
        votes = {"i0006": ("billing", "billing"), "i0007": ("shipping", "technical"), "i0008": ("billing", "billing")}
        for item, (a, b) in votes.items():
            queue.decide("ana", item, a, via="t", require_lease=False)
            queue.decide("bo", item, b, via="t", require_lease=False)
        queue.lease("cy", max_held=1)
        d = build_dashboard(queue, config_from_dict(json.loads(store.config_json())), threshold=0.35)
        assert (d.pending, d.leased, d.decided, d.skipped) == (1, 1, 3, 0)
        assert d.labels_by_source == {"seed": 0, "teacher": 6, "human": 3}
        configured = next(r for r in d.thresholds if r.configured)
        # At 0.35 and above: i0006 (0.9, teacher's label kept) and i0008 (0.4, both chose another).
        assert (configured.threshold, configured.reviewed, configured.precision) == (0.35, 2, 0.5)
        assert next(r for r in d.thresholds if r.threshold == 0.5).precision == 1.0
        assert d.agreement.pairs[("ana", "bo")][0] == 3
        assert d.agreement.fleiss_items == 3 and d.agreement.fleiss_raters == 2
        stats = {r.reviewer: r for r in d.agreement.reviewers}
        assert stats["ana"].agreement_with_final == 1.0 and stats["bo"].agreement_with_final == pytest.approx(2 / 3)
        assert d.decisions_last_hour == 6
        assert d.rounds == [(0, "labeled", None, None)]


def test_dashboard_counts_agree_with_each_other(tmp_path):
    """The counts that sat side by side and disagreed ("labeled 35" beside 61 labels by source): the rounds
    table showed what each finished round trained on, the labels table what exists now. Now the labels
    table has its total, every item sent for labeling is in exactly one state, and the rounds column says
    what it counts."""
    config = {"name": "counts", "task": {"labels": ["billing", "shipping"], "instruction": "Route."},
              "data": {"pool": "p.jsonl", "eval": "e.jsonl"}, "loop": {"initial_labels": 16, "batch_size": 2,
                                                                       "rounds": 3}}
    with Store(tmp_path / "quarry.db") as store:
        store.initialize(json.dumps(config), [(f"i{n:02d}", f"text {n}", None) for n in range(30)],
                         [("s0", "seed text", "billing")])
        store.create_round(0, "random", [(f"i{n:02d}", None, None, None) for n in range(16)], {})
        store.commit_routing(0, accepted=[(f"i{n:02d}", "billing", 0.9, "sure") for n in range(6)], timings={},
                             to_review=[{"item_id": f"i{n:02d}", "reason": "unsure", "teacher_label": "billing",
                                         "teacher_confidence": 0.4, "teacher_raw": "", "student_label": None,
                                         "student_confidence": None} for n in range(6, 16)])
        store.set_phase(0, "done", {}, {"labeled_total": 7, "eval_accuracy": 0.5})  # trained on seed + 6 accepted
        store.create_round(1, "entropy", [("i16", None, "billing", 0.5), ("i17", None, "billing", 0.5)], {})
        queue = ReviewQueue(store)
        for item, label in (("i06", "billing"), ("i07", "shipping"), ("i08", None)):
            queue.decide("ana", item, label, via="t", require_lease=False)
        d = build_dashboard(queue, config_from_dict(config))
    assert d.rounds[0][2] == 7 and d.labels_now == 9 == sum(d.labels_by_source.values())
    assert d.requested_states == {"teacher": 6, "human": 2, "skipped": 1, "pending": 7, "awaiting_teacher": 2}
    assert sum(d.requested_states.values()) == d.requested == 18
    assert d.planned == 22  # 16 + 3 rounds of 2
    assert d.reviewed_share == pytest.approx(3 / 10) and d.requested_share == pytest.approx(18 / 22)


def test_similar_items_rank_by_tfidf_cosine_and_leave_out_the_item_itself():
    from quarry_al.engine.review.similar import SimilarIndex

    index = SimilarIndex([("a", "refund for a double charge on my card", "billing", "human"),
                          ("b", "parcel lost in transit, tracking stuck", "shipping", "teacher"),
                          ("c", "charged twice, please refund the charge", "billing", "teacher"),
                          ("q", "I was charged twice and want a refund", "billing", "teacher")])
    found = index.nearest("I was charged twice and want a refund", k=2, exclude="q")
    assert [n.item_id for n in found] == ["c", "a"] and found[0].score > found[1].score > 0
    assert SimilarIndex([]).nearest("anything") == []
    assert index.nearest("zebra xylophone") == []  # nothing shares a word: no neighbours, not random ones
