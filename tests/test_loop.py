"""The whole loop, end to end, on the demo data with the real local teacher and student.

Includes the resume test: a run killed with SIGKILL in the middle of a round's labeling,
then resumed, ends with the same labels as an uninterrupted run and pays no teacher call twice.
"""
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "configs" / "demo.yaml"
# Small and fast: 10 initial labels, 2 rounds of 10, short training.
FAST = ["loop.initial_labels=10", "loop.batch_size=10", "loop.rounds=2", "loop.label_budget=null",
        "student.min_steps=60", "student.max_steps=60"]

pytestmark = pytest.mark.slow


def quarry(*args: str, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "engine", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=900, **kwargs)


def start(run_dir: Path) -> subprocess.Popen:
    # No teacher cache: the kill must land in the middle of a round's paid calls, and cache hits
    # (from the uninterrupted run of the same session) would finish the round at once.
    args = [sys.executable, "-m", "engine", "run", str(DEMO), "--run-dir", str(run_dir), "--no-progress",
            "--set", "teacher.cache=false"]
    for pair in FAST:
        args += ["--set", pair]
    return subprocess.Popen(args, cwd=REPO, env={**os.environ, "HF_HUB_OFFLINE": "1"},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def labels_of(run_dir: Path) -> dict[str, tuple[str, str]]:
    with sqlite3.connect(run_dir / "quarry.db") as conn:
        rows = conn.execute("SELECT item_id, label, source FROM labels ORDER BY id").fetchall()
    return {item_id: (label, source) for item_id, label, source in rows}


def calls_per_item(run_dir: Path) -> dict[str, int]:
    with sqlite3.connect(run_dir / "quarry.db") as conn:
        return dict(conn.execute("SELECT item_id, COUNT(*) FROM teacher_calls GROUP BY item_id").fetchall())


def teacher_calls_in_round(run_dir: Path, round_: int) -> int:
    try:
        with sqlite3.connect(run_dir / "quarry.db", timeout=1) as conn:
            return conn.execute("SELECT COUNT(*) FROM teacher_calls WHERE round = ?", (round_,)).fetchone()[0]
    except sqlite3.OperationalError:  # the database or its tables do not exist yet
        return 0


OUTPUT: dict[str, str] = {}  # the uninterrupted run's stdout and stderr


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("whole")
    process = start(run_dir)
    OUTPUT["stdout"], OUTPUT["stderr"] = process.communicate(timeout=900)
    assert process.returncode == 0, OUTPUT["stderr"]
    return run_dir


def test_the_end_of_a_run_says_where_it_is_and_what_next(uninterrupted):
    out = OUTPUT["stdout"]
    assert (out + OUTPUT["stderr"]).count("max rounds reached") == 1
    assert out.startswith(f"stopped: max rounds reached (2)\nrun folder: {uninterrupted}\n")
    assert "(simulated from gold: review.mode simulate)" in out and "exported labels vs gold: " in out
    for command in (f"quarry status {uninterrupted}", f"quarry export {uninterrupted} --format chat",
                    f"quarry report {uninterrupted}"):
        assert command in out


def test_run_produces_rounds_metrics_and_adapters(uninterrupted):
    metrics = [json.loads(line) for line in (uninterrupted / "metrics.jsonl").read_text().splitlines()]
    assert [m["round"] for m in metrics] == [0, 1, 2]
    for m in metrics:
        for key in ("labeled_total", "labeled_by_teacher", "labeled_by_human", "pending_review", "eval_accuracy",
                    "eval_macro_f1", "teacher_accuracy_vs_gold", "human_share", "seconds_scoring",
                    "seconds_selecting", "seconds_labeling", "seconds_training"):
            assert key in m, key
        assert m["labeled_by_teacher"] + m["labeled_by_human"] == m["labeled_total"]
        assert 0.0 <= m["eval_accuracy"] <= 1.0
    assert [m["labeled_total"] for m in metrics] == [10, 20, 30]
    assert sorted(p.name for p in (uninterrupted / "adapters").iterdir()) == ["round-000", "round-001", "round-002"]
    # With 5 labels, chance is 0.2: thirty labels must teach the student something.
    assert metrics[-1]["eval_accuracy"] > 0.3


def test_status_and_exports(uninterrupted, tmp_path):
    status = quarry("status", str(uninterrupted))
    assert status.returncode == 0, status.stderr
    assert "max rounds reached" in status.stdout and "teacher" in status.stdout
    assert "human 30 (simulated from gold: review.mode simulate)" in status.stdout  # the demo accepts nothing yet
    assert "routing now: accepts no teacher label until reviewed teacher labels show precision >= 0.97" in status.stdout
    labels = labels_of(uninterrupted)
    for fmt in ("chat", "alpaca", "jsonl"):
        out = tmp_path / f"{fmt}.jsonl"
        result = quarry("export", str(uninterrupted), "--format", fmt, "--out", str(out))
        assert result.returncode == 0, result.stderr
        records = [json.loads(line) for line in out.read_text().splitlines()]
        assert len(records) == len(labels) == 30
        first = records[0]
        if fmt == "chat":
            assert [m["role"] for m in first["messages"]] == ["system", "user", "assistant"]
            assert first["messages"][2]["content"] == labels[first["provenance"]["id"]][0]
        elif fmt == "alpaca":
            assert set(first) == {"instruction", "input", "output", "prompt", "completion", "provenance"}
        else:
            assert {"id", "text", "label", "source", "confidence", "round", "teacher_label",
                    "teacher_confidence"} <= set(first)
            assert first["source"] in ("teacher", "human") and first["teacher_label"] is not None


def test_killed_run_resumes_without_losing_or_repaying(uninterrupted, tmp_path):
    run_dir = tmp_path / "killed"
    process = start(run_dir)
    deadline = time.time() + 600
    while teacher_calls_in_round(run_dir, 1) < 3:
        assert process.poll() is None, process.stderr.read()
        assert time.time() < deadline, "round 1 never started labeling"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    calls_at_kill = teacher_calls_in_round(run_dir, 1)
    assert calls_at_kill < 10, "the kill came too late to be in the middle of the round"

    resumed = start(run_dir)
    _, err = resumed.communicate(timeout=900)
    assert resumed.returncode == 0, err
    assert "resuming" in err
    assert labels_of(run_dir) == labels_of(uninterrupted)
    per_item = calls_per_item(run_dir)
    assert max(per_item.values()) == 1, "a teacher call was paid twice"
    assert per_item.keys() == calls_per_item(uninterrupted).keys()


def test_queue_mode_waits_for_people_then_continues(tmp_path):
    run_dir = tmp_path / "queued"
    base = ["run", str(DEMO), "--run-dir", str(run_dir), "--no-progress", "--set", "review.mode=queue",
            "--set", "routing.confidence_threshold=0.99", "--set", "student.min_steps=10", "--set", "student.max_steps=10",
            "--set", "loop.initial_labels=8", "--set", "loop.batch_size=5"]
    first = quarry(*base, "--set", "loop.rounds=0")
    assert first.returncode == 0, first.stderr
    with sqlite3.connect(run_dir / "quarry.db") as conn:
        pending = [r[0] for r in conn.execute("SELECT item_id FROM reviews WHERE status = 'pending'")]
        gold = dict(conn.execute("SELECT item_id, gold FROM items"))
    assert pending, "a 0.99 threshold must send some items to people"
    assert f"pending {len(pending)}" in quarry("status", str(run_dir)).stdout.replace("pending reviews", "pending")

    decisions = tmp_path / "decisions.jsonl"
    decisions.write_text("".join(json.dumps({"id": i, "label": gold[i]}) + "\n" for i in pending))
    imported = quarry("review", str(run_dir), "--decisions", str(decisions), "--reviewer", "expert")
    assert imported.returncode == 0 and f"decided {len(pending)}" in imported.stdout, imported.stderr

    second = quarry(*base, "--set", "loop.rounds=1")  # a changed loop section extends the same run
    assert second.returncode == 0, second.stderr
    labels = labels_of(run_dir)
    assert all(labels[i] == (gold[i], "human") for i in pending)
    with sqlite3.connect(run_dir / "quarry.db") as conn:
        assert conn.execute("SELECT COUNT(*) FROM rounds WHERE phase = 'done'").fetchone()[0] == 2
        assert {r[0] for r in conn.execute("SELECT DISTINCT reviewer FROM labels WHERE source = 'human'")} == {"expert"}


def test_bad_config_fails_before_any_work(tmp_path):
    result = quarry("run", str(DEMO), "--run-dir", str(tmp_path / "never"), "--set", "student.lora.rnak=4")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "student.lora.rnak: unknown key" in result.stderr
    assert not (tmp_path / "never").exists()
