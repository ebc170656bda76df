"""Dashboard figures from a real run database: progress, threshold precision on reviewed items, agreement."""
import pytest

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
        d = build_dashboard(queue, "demo", threshold=0.35)
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
