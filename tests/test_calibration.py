"""Calibration on hand-made reviewed items: the curve, the chosen threshold, the bound, the AUROCs,
and that the vectorised acceptance rule is the Router's rule."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from quarry_al.engine.calibration import (NOTHING_ACCEPTED, ReviewedItem, accepts, auroc, choose_threshold, precision_curve,
                                signal_aurocs, wilson_lower)
from quarry_al.engine.config import RoutingConfig
from quarry_al.engine.routing import Router, StudentPrediction
from quarry_al.engine.teacher.base import TeacherResult


def item(conf: float, right: bool, student: str | None = None, s_conf: float | None = None, weight: float = 1.0):
    return ReviewedItem("a", conf, "a" if right else "b", student, s_conf, weight)


class TestWilson:
    def test_known_value(self):
        # 95% two-sided (z=1.96) Wilson interval of 8/10 is [0.490, 0.943].
        assert wilson_lower(8, 10, z=1.96) == pytest.approx(0.4902, abs=1e-4)

    def test_below_point_estimate_and_tightens_with_n(self):
        assert wilson_lower(9, 10) < 0.9
        assert wilson_lower(90, 100) > wilson_lower(9, 10)
        assert wilson_lower(900, 1000) > wilson_lower(90, 100)

    def test_empty(self):
        assert wilson_lower(0, 0) == 0.0

    def test_interval_known_value(self):
        from quarry_al.engine.core.stats import wilson_interval

        assert wilson_interval(8, 10) == pytest.approx((0.4902, 0.9433), abs=1e-4)
        assert wilson_interval(0, 0) == (0.0, 1.0)


class TestCurve:
    def test_points_per_distinct_confidence(self):
        items = [item(0.9, True), item(0.9, True), item(0.7, True), item(0.5, False)]
        curve = precision_curve(items)
        assert [p.threshold for p in curve] == [0.5, 0.7, 0.9, NOTHING_ACCEPTED]
        assert [p.accepted for p in curve] == [4, 3, 2, 0]
        assert [p.accepted_share for p in curve] == [1.0, 0.75, 0.5, 0.0]
        assert curve[0].precision == 0.75 and curve[1].precision == 1.0
        assert curve[-1].precision is None
        assert all(p.precision_lower < p.precision for p in curve[:-1])

    def test_weights_count_audited_items_many_times(self):
        # One audited wrong item at weight 10 outweighs the confident right one.
        curve = precision_curve([item(0.95, False, weight=10), item(0.9, True), item(0.3, True)])
        at_09 = next(p for p in curve if p.threshold == 0.9)
        assert at_09.precision == pytest.approx(1 / 11)
        assert at_09.accepted_share == pytest.approx(11 / 12)

    def test_effective_sample_size_makes_weighted_bound_wider(self):
        plain = precision_curve([item(0.9, True)] * 20)[0]
        weighted = precision_curve([item(0.9, True, weight=10)] * 2)[0]
        assert plain.precision == weighted.precision == 1.0
        assert weighted.precision_lower < plain.precision_lower


class TestChooseThreshold:
    def test_lowest_threshold_meeting_target(self):
        items = [item(0.99, True)] * 60 + [item(0.8, True)] * 30 + [item(0.6, False)] * 10
        cal = choose_threshold(items, target_precision=0.9)
        assert cal.threshold == 0.8  # at 0.6 precision is 0.9 but its lower bound is not
        assert cal.precision == 1.0 and cal.precision_lower >= 0.9
        assert cal.accepted_share == pytest.approx(0.9)
        assert cal.reviewed == 100

    def test_uses_the_bound_not_the_point_estimate(self):
        items = [item(0.9, True)] * 3  # precision 1.0, but 3 items prove little
        assert choose_threshold(items, 0.9).threshold == NOTHING_ACCEPTED
        assert choose_threshold(items * 20, 0.9).threshold == 0.9

    def test_nothing_meets_target_accepts_nothing(self):
        cal = choose_threshold([item(0.9, False)] * 50, 0.5)
        assert cal.threshold > 1 and cal.accepted_share == 0.0

    def test_required_mode_only_counts_agreeing_items(self):
        agree = [item(0.7, True, "a", 0.9)] * 40
        disagree = [item(0.95, False, "b", 0.9)] * 40
        assert choose_threshold(agree + disagree, 0.9, mode="ignore").threshold == NOTHING_ACCEPTED
        assert choose_threshold(agree + disagree, 0.9, mode="required").threshold == 0.7


def test_vectorised_rule_is_the_routers_rule():
    rng = np.random.default_rng(0)
    conf = rng.uniform(0, 1, 200).round(2)
    agree = rng.uniform(0, 1, 200) < 0.5
    for mode, threshold, agreement in itertools.product(("ignore", "required", "sufficient"), (0.3, 0.55, 0.8),
                                                        (0.4, 0.6)):
        router = Router(RoutingConfig(confidence_threshold=threshold, student_agreement=mode,
                                      agreement_threshold=agreement))
        expected = [router.route(TeacherResult("a", float(c)), StudentPrediction("a" if g else "b", 0.5)).route == "accept"
                    for c, g in zip(conf, agree)]
        assert accepts(conf, agree, threshold, mode, agreement).tolist() == expected


class TestAuroc:
    def test_matches_pair_counting(self):
        rng = np.random.default_rng(1)
        scores = rng.integers(0, 5, 60).astype(float)  # many ties
        positive = rng.uniform(0, 1, 60) < 0.5
        pairs = [(p, n) for p in scores[positive] for n in scores[~positive]]
        expected = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in pairs) / len(pairs)
        assert auroc(scores, positive) == pytest.approx(expected)

    def test_perfect_inverse_and_undefined(self):
        assert auroc([0.1, 0.2, 0.8, 0.9], [False, False, True, True]) == 1.0
        assert auroc([0.1, 0.2, 0.8, 0.9], [True, True, False, False]) == 0.0
        assert auroc([0.1, 0.2], [True, True]) is None

    def test_signals(self):
        # The teacher's confidence says nothing here; the student's agreement says everything.
        items = [item(0.9, True, "a", 0.8), item(0.9, False, "b", 0.8), item(0.6, True, "a", 0.6),
                 item(0.6, False, "b", 0.7), item(0.7, True), item(0.7, False)]
        aurocs = signal_aurocs(items)
        assert aurocs["teacher"] == 0.5
        assert aurocs["student"] == 1.0
        assert aurocs["teacher+student"] == 1.0
        assert not math.isnan(aurocs["teacher"])


def test_reliability_bins_count_weigh_and_bound_each_bin():
    from quarry_al.engine.calibration import reliability_bins

    items = ([item(0.05, False)] * 4 + [item(0.15, True)] + [item(0.95, True)] * 9 + [item(1.0, False)]
             + [item(0.92, True, weight=5)])
    bins = reliability_bins(items, bins=10)
    assert [(b.low, b.count) for b in bins] == [(0.0, 4), (0.1, 1), (pytest.approx(0.9), 11)]  # empty bins left out
    assert bins[0].accuracy == 0.0 and bins[1].accuracy == 1.0
    top = bins[-1]
    assert top.accuracy == pytest.approx((9 + 5) / (9 + 1 + 5))  # 1.0 falls in the last bin; weight 5 counts 5 times
    assert top.confidence == pytest.approx((0.95 * 9 + 1.0 + 0.92) / 11)
    low, high = top.interval
    assert low < top.accuracy < high
    # The interval is as wide as the effective sample size says, not the weighted count.
    unweighted = reliability_bins([item(0.95, True)] * 14 + [item(0.95, False)], bins=10)[0]
    assert high - low > unweighted.interval[1] - unweighted.interval[0]
    assert reliability_bins([]) == []
