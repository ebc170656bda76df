"""What `quarry status` and the end of `quarry run` say about a run's data: who labeled, whether review was
simulated, the precision routing delivers as people measured it (or that nobody did), the labels against
gold, and the next commands. A real run database, routed with the real Router and reviewed by hand."""
from __future__ import annotations

import json

import pytest

from quarry_al.engine.config import RoutingConfig
from quarry_al.engine.quality import data_quality
from quarry_al.engine.report import run_summary, status_text
from quarry_al.engine.review import simulate_review
from quarry_al.engine.routing import Router
from quarry_al.engine.store import Store
from quarry_al.engine.teacher.base import TeacherResult
from quarry_al.engine.threshold import routing_for_round

# The teacher is sure and wrong on i0-i2, sure and right on i3, unsure (and right) on the rest.
ANSWERS = {**{f"i{k}": ("b", 0.9) for k in range(3)}, "i3": ("a", 0.9), **{f"i{k}": ("a", 0.3) for k in range(4, 10)}}


def make_run(tmp_path, routing: dict, review_mode: str = "simulate") -> Store:
    store = Store(tmp_path / "quarry.db")
    store.initialize(json.dumps({"name": "q", "task": {"labels": ["a", "b"], "instruction": "Pick."},
                                 "routing": routing, "review": {"mode": review_mode}}),
                     [(i, f"text {i}", "a") for i in ANSWERS], [])
    store.create_round(0, "random", [(i, None, None, None) for i in ANSWERS], {})
    rule = routing_for_round(store, RoutingConfig.model_validate(routing), 0).config
    accepted, to_review = [], []
    for item_id, (label, conf) in ANSWERS.items():
        result = TeacherResult(label, conf)
        store.record_teacher_call(item_id, 0, "m", result)
        decision = Router(rule).route(result, None, item_id)
        if decision.route == "accept":
            accepted.append((item_id, label, conf, decision.reason))
        else:
            to_review.append({"item_id": item_id, "reason": decision.reason, "teacher_label": label,
                              "teacher_confidence": conf, "teacher_raw": "", "student_label": None,
                              "student_confidence": None})
    store.commit_routing(0, accepted, to_review, {})
    if review_mode == "simulate":
        simulate_review(store)
    return store


def test_a_fixed_threshold_without_audits_is_reported_as_unmeasured(tmp_path):
    store = make_run(tmp_path, {"confidence_threshold": 0.5})
    quality = data_quality(store)
    assert quality.counts == {"seed": 0, "teacher": 4, "human": 6} and quality.human_share == 0.6
    assert quality.simulated and quality.accepted_precision is None
    assert (quality.accepted_vs_gold.right, quality.accepted_vs_gold.total) == (1, 4)
    assert (quality.exported_vs_gold.right, quality.exported_vs_gold.total) == (7, 10)
    text = status_text(store)
    assert "labels: teacher 4, human 6 (simulated from gold: review.mode simulate), seed 0; human share 60%; " \
           "pending reviews 0" in text
    assert ("routing now: accepts teacher labels at confidence >= 0.500; their precision is unmeasured: no person has "
            "checked a label this rule accepts (set routing.audit_rate, or routing.target_precision)") in text
    assert "reviewed teacher labels: people kept 6 of 6 (1.000)" in text
    assert "accepted teacher labels vs gold: 1 of 4 right (0.250)" in text
    assert "exported labels vs gold: 7 of 10 right (0.700)" in text


def test_audits_measure_the_precision_of_what_the_rule_accepts(tmp_path):
    store = make_run(tmp_path, {"confidence_threshold": 0.5, "audit_rate": 1.0})  # every accepted label is audited
    point = data_quality(store).accepted_precision
    assert point is not None and point.accepted == 4 and point.precision == pytest.approx(0.25)
    assert "their precision 0.250 (Wilson 95% lower bound" in status_text(store)


def test_a_target_accepts_nothing_until_reviews_show_it(tmp_path):
    store = make_run(tmp_path, {"confidence_threshold": 0.5, "target_precision": 0.95})
    quality = data_quality(store)
    assert quality.accepts_nothing and quality.counts["teacher"] == 0
    assert quality.exported_vs_gold.right == quality.exported_vs_gold.total == 10
    assert ("routing now: accepts no teacher label until reviewed teacher labels show precision >= 0.95 "
            "(routing.target_precision); every label comes from a person") in status_text(store)


def test_run_summary_says_where_the_run_is_and_what_to_do_next(tmp_path):
    store = make_run(tmp_path, {"confidence_threshold": 0.5}, review_mode="queue")
    summary = run_summary(store, "runs/my run", "max rounds reached", "quarry run job.yaml --set loop.rounds=3")
    lines = summary.splitlines()
    assert lines[:2] == ["stopped: max rounds reached", "run folder: runs/my run"]
    assert summary.count("max rounds reached") == 1
    assert "human 0, seed 0" in summary and "simulated" not in summary and "pending reviews 6" in summary
    commands = [line.split("#")[0].strip() for line in lines[lines.index("next:") + 1:]]
    assert commands == ["quarry review 'runs/my run'", "quarry serve 'runs/my run'",
                        "quarry run job.yaml --set loop.rounds=3", "quarry status 'runs/my run'",
                        "quarry export 'runs/my run' --format chat --out 'runs/my run/dataset.jsonl'",
                        "quarry report 'runs/my run'"]
    assert "decide the 6 pending items" in summary and "runs/my run/report.html" in summary
    finished = run_summary(make_run(tmp_path / "done", {"confidence_threshold": 0.5}), "runs/done", "label budget spent",
                           "quarry run job.yaml")
    assert "quarry review" not in finished and "quarry serve" not in finished and "quarry export runs/done" in finished
