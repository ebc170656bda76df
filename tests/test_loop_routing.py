"""The loop's label-route-review steps with calibration and few-shot, on the demo data and a real store.

Two stand-ins keep this fast and its numbers known: `ScriptedTeacher` (a teacher whose confidence
and correctness are fixed functions of the item, so the right threshold is known), and the
student's pool scores written by hand into the run's scores cache (no training). Everything else,
selection, the store, routing, calibration, simulated review, few-shot selection, is the real code.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from quarry_al.engine.calibration import NOTHING_ACCEPTED
from quarry_al.engine.config import JobConfig
from quarry_al.engine.data import load_job_data
from quarry_al.engine.loop import initialize_or_check
from quarry_al.engine.phases import RunContext, label_round, review_round, select_round
from quarry_al.engine.run_folder import RunFolder
from quarry_al.engine.store import Store
from quarry_al.strategies import Scores
from quarry_al.engine.teacher.base import TeacherResult

REPO = Path(__file__).resolve().parents[1]
DEMO_DATA = REPO / "configs" / "demo_data"


class ScriptedTeacher:
    """Confidence is a fixed draw from the item id; the gold label when confidence >= 0.6, else a wrong one."""

    model_id = "scripted"

    def __init__(self, gold: dict[str, str], labels: list[str]):
        self.gold, self.labels, self.seen = gold, labels, []

    def label(self, items, on_result=None):
        results = []
        for position, item in enumerate(items):
            self.seen.append(item)
            conf = 0.3 + 0.7 * int(hashlib.sha256(item.item_id.encode()).hexdigest()[:6], 16) / 0xFFFFFF
            gold = self.gold[item.item_id]
            label = gold if conf >= 0.6 else next(l for l in self.labels if l != gold)
            result = TeacherResult(label, conf, prompt_hash=item.item_id)
            results.append(result)
            if on_result:
                on_result(position, result)
        return results

    def close(self):
        pass


def make_run(tmp_path: Path, routing: dict, few_shot: dict) -> tuple[RunContext, ScriptedTeacher]:
    raw = {"name": "t", "task": {"labels": ["billing", "shipping", "technical", "account", "feedback"],
                                 "instruction": "Classify."},
           "data": {"pool": str(DEMO_DATA / "pool.jsonl"), "eval": str(DEMO_DATA / "eval.jsonl")},
           "teacher": {"kind": "local", "few_shot": few_shot}, "routing": routing,
           "loop": {"initial_labels": 40, "batch_size": 40}}
    config = JobConfig.model_validate(raw)
    data = load_job_data(config.data, config.task.label_names)
    store = Store(tmp_path / "quarry.db")
    initialize_or_check(store, config, data, lambda m: None)
    run = RunContext(config, RunFolder(tmp_path), store, data.eval, progress=False, log=lambda m: None)
    teacher = ScriptedTeacher({i.item_id: i.gold for i in store.pool_items()}, config.task.label_names)
    run.models.teacher = teacher
    return run, teacher


def run_round(run: RunContext, round_: int) -> None:
    if round_ > 0:  # the student's scores, by hand: uniform probabilities, one-hot-ish embeddings of the gold label
        labels = run.labels
        gold = [i.gold for i in run.store.pool_items()]
        emb = np.array([[1.0 if l == g else 0.1 for l in labels] for g in gold])
        run.folder.save_scores(round_, Scores(probs=np.full((len(gold), len(labels)), 1 / len(labels)), embeddings=emb))
    assert select_round(run, round_) is None
    label_round(run, round_, {})
    review_round(run, round_, {})
    run.store.set_phase(round_, "done", {}, {"round": round_})


def test_threshold_adapts_round_by_round(tmp_path):
    run, _ = make_run(tmp_path, {"confidence_threshold": 0.95, "target_precision": 0.9, "min_reviewed": 30,
                                 "audit_rate": 0.3}, {})
    for round_ in range(4):
        run_round(run, round_)
    meta = [json.loads(run.store.meta(f"routing.round-{r:03d}")) for r in range(4)]
    thresholds = [m["confidence_threshold"] for m in meta]
    assert thresholds[0] == NOTHING_ACCEPTED  # nothing reviewed yet: nothing accepted
    assert all(0.5 <= t < 0.7 for t in thresholds[2:]), thresholds  # right at >= 0.6
    teacher_labels = [r for r in run.store.current_labels() if r.source == "teacher"]
    accepted_late = [r for r in teacher_labels if r.round >= 2]
    assert accepted_late and sum(r.label == r.gold for r in accepted_late) / len(accepted_late) >= 0.9


def test_few_shot_examples_reach_the_teacher(tmp_path):
    run, teacher = make_run(tmp_path, {"confidence_threshold": 0.99}, {"k": 2, "per_label": 1})
    run_round(run, 0)
    assert all(item.examples == () for item in teacher.seen)  # nothing labeled before round 0
    teacher.seen.clear()
    run_round(run, 1)
    human = {r.text: r.label for r in run.store.current_labels() if r.source == "human"}
    assert teacher.seen and all(len(item.examples) >= 3 for item in teacher.seen)
    for item in teacher.seen:
        assert all(human[e.text] == e.label for e in item.examples)  # reviewed labels only
        # The hand-made embeddings put each item next to texts of its own gold label: the nearest is last.
        gold = next(i.gold for i in run.store.pool_items() if i.item_id == item.item_id)
        assert item.examples[-1].label == gold
    fixed = teacher.seen[0].examples[:len(set(human.values()))]
    assert all(item.examples[:len(fixed)] == fixed for item in teacher.seen)  # the shared part comes first
