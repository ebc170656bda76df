"""Calibrated routing against a real run database: routing rounds by hand (the loop's routing step without
a model), deciding reviews from gold, and checking the threshold each round records and uses."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest

from quarry_al.engine.calibration import NOTHING_ACCEPTED
from quarry_al.engine.config import RoutingConfig
from quarry_al.engine.report import write_report
from quarry_al.engine.run_folder import RunFolder
from quarry_al.engine.review import simulate_review
from quarry_al.engine.routing import Router, StudentPrediction, audited
from quarry_al.engine.store import Store
from quarry_al.engine.teacher.base import TeacherResult
from quarry_al.engine.threshold import reviewed_items, routing_for_round, routing_metrics


def make_store(tmp_path, n: int, seed: int = 0) -> tuple[Store, dict[str, float]]:
    """A pool of n items with gold 'a'; each has a teacher confidence drawn uniformly."""
    store = Store(tmp_path / "quarry.db")
    store.initialize(json.dumps({"name": "calib", "routing": {"target_precision": 0.9, "audit_rate": 0.3}}), [(f"i{k}", f"text {k}", "a") for k in range(n)], [])
    rng = np.random.default_rng(seed)
    return store, {f"i{k}": float(c) for k, c in enumerate(rng.uniform(0.3, 1.0, n).round(3))}


def route_round(store: Store, round_: int, ids: list[str], confidence: dict[str, float], config: RoutingConfig,
                right_above: float, wrong_above: float = 2.0) -> float:
    """The teacher answers 'a' (right) at confidence >= right_above, unless >= wrong_above; otherwise 'b'."""
    store.create_round(round_, "random", [(i, None, None, None) for i in ids], {})
    routing = routing_for_round(store, config, round_)
    router = Router(routing.config)
    accepted, to_review = [], []
    for item_id in ids:
        conf = confidence[item_id]
        label = "a" if right_above <= conf < wrong_above else "b"
        result = TeacherResult(label, conf)
        store.record_teacher_call(item_id, round_, "m", result)
        decision = router.route(result, None, item_id)
        if decision.route == "accept":
            accepted.append((item_id, label, conf, decision.reason))
        else:
            to_review.append({"item_id": item_id, "reason": decision.reason, "teacher_label": label,
                              "teacher_confidence": conf, "teacher_raw": "", "student_label": None,
                              "student_confidence": None})
    store.commit_routing(round_, accepted, to_review, {})
    simulate_review(store)
    return routing.config.confidence_threshold


def test_fixed_threshold_until_enough_reviews_then_adapts(tmp_path):
    store, conf = make_store(tmp_path, 400)
    config = RoutingConfig(confidence_threshold=0.95, target_precision=0.9, min_reviewed=40, audit_rate=0.3)
    ids = list(conf)
    thresholds = [route_round(store, r, ids[r * 80:(r + 1) * 80], conf, config, right_above=0.6) for r in range(5)]
    assert thresholds[0] == NOTHING_ACCEPTED  # nothing reviewed yet: nothing accepted
    # The teacher is always right at >= 0.6: the threshold falls to near 0.6 (a little below, as far as
    # the few wrong labels it then lets in keep the bound at the target) and stays there.
    assert all(0.55 <= t <= 0.7 for t in thresholds[2:]), thresholds
    metrics = routing_metrics(store, 4)
    assert metrics["routing_threshold"] == thresholds[4]
    assert metrics["calibrated_precision_lower"] >= 0.9 and metrics["calibrated_precision"] > 0.95
    assert routing_metrics(store, 0)["calibrated_precision"] is None


def test_threshold_rises_when_audits_find_confident_mistakes(tmp_path):
    store, conf = make_store(tmp_path, 400, seed=1)
    config = RoutingConfig(confidence_threshold=0.6, target_precision=0.9, min_reviewed=40, audit_rate=0.3)
    ids = list(conf)
    # Right at >= 0.5 while everything is reviewed; then the teacher drifts: wrong at >= 0.8 too, where
    # labels are accepted by then, so only audits of accepted labels can show it.
    thresholds = [route_round(store, r, ids[r * 50:(r + 1) * 50], conf, config, right_above=0.5,
                              wrong_above=2.0 if r == 0 else 0.8) for r in range(8)]
    assert thresholds[0] == NOTHING_ACCEPTED
    assert thresholds[1] <= 0.6  # round 0 showed a sure teacher
    assert thresholds[-1] == NOTHING_ACCEPTED  # the audits found the confident mistakes; no threshold keeps them out
    # With `sufficient` agreement, a student that agrees must not let labels in past the calibration either.
    lenient = config.model_copy(update={"student_agreement": "sufficient", "agreement_threshold": 0.3})
    routing = routing_for_round(store, lenient, 4)
    assert routing.config.confidence_threshold == NOTHING_ACCEPTED
    decision = Router(routing.config).route(TeacherResult("a", 0.99), StudentPrediction("a", 0.99), "x")
    assert decision.route == "human", decision


def test_audited_items_weigh_one_over_the_rate(tmp_path):
    store, conf = make_store(tmp_path, 200, seed=2)
    config = RoutingConfig(confidence_threshold=0.7, audit_rate=0.25)
    route_round(store, 0, list(conf), conf, config, right_above=0.0)
    items = reviewed_items(store, config)
    above = [i for i in items if i.teacher_confidence >= 0.7]
    below = [i for i in items if i.teacher_confidence < 0.7]
    assert above and below
    assert all(i.weight == 4.0 for i in above) and all(i.weight == 1.0 for i in below)
    # Every item below the threshold is reviewed; above it, exactly the audit sample.
    assert len(below) == sum(c < 0.7 for c in conf.values())
    assert len(above) == sum(c >= 0.7 and audited(i, 0.25) for i, c in conf.items())


def test_audit_reason_and_determinism():
    router = Router(RoutingConfig(audit_rate=0.5))
    ids = [f"x{k}" for k in range(200)]
    decisions = [router.route(TeacherResult("a", 0.99), StudentPrediction("a", 0.9), i) for i in ids]
    sent = [d for d in decisions if d.route == "human"]
    assert 70 < len(sent) < 130
    assert sent[0].reason == "audit sample (50% of accepted labels are checked): teacher confidence 0.99 >= 0.80"
    assert decisions == [router.route(TeacherResult("a", 0.99), StudentPrediction("a", 0.9), i) for i in ids]
    assert Router(RoutingConfig()).route(TeacherResult("a", 0.99), None, "x1").route == "accept"


@pytest.mark.parametrize("rate", [0.0, 1.0])
def test_audit_extremes(rate):
    decision = Router(RoutingConfig(audit_rate=rate)).route(TeacherResult("a", 0.99), None, "x1")
    assert decision.route == ("accept" if rate == 0 else "human")


def test_report_has_the_reliability_diagram_the_rule_and_the_aurocs(tmp_path):
    store, conf = make_store(tmp_path, 240, seed=3)
    config = RoutingConfig(confidence_threshold=0.8, target_precision=0.9, min_reviewed=40, audit_rate=0.3)
    ids = list(conf)
    thresholds = [route_round(store, r, ids[r * 80:(r + 1) * 80], conf, config, right_above=0.6) for r in range(3)]
    page = write_report(store, RunFolder(tmp_path)).read_text()
    assert (tmp_path / "calibration.png").stat().st_size > 10000
    assert "<h2>Teacher calibration</h2>" in page and "calibration.png" in page
    items = reviewed_items(store, config)
    audits = sum(1 for i in items if i.weight != 1.0)
    assert audits > 0 and f"{len(items)} teacher labels a person reviewed ({audits} of them audits" in page
    # Confidence separates right (>= 0.6) from wrong perfectly here; there is no student.
    assert "<td style='text-align:left'>teacher confidence</td><td>1.000</td>" in page
    assert "0.5 is a coin toss, 1.0 separates them perfectly" in page
    found = re.search(r"routing now: accepts teacher labels at confidence &gt;= ([0-9.]+); their precision ([0-9.]+) "
                      r"\(Wilson 95% lower bound ([0-9.]+)\) on (\d+) reviewed or audited items; target 0.9", page)
    assert found, page
    assert float(found[1]) == pytest.approx(thresholds[2], abs=5e-4) and float(found[3]) >= 0.9
