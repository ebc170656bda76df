"""Both executors through the whole loop, on the demo (configs/demo.yaml, shortened), with the real local
teacher and student; the Ray executor starts Ray on this machine with 2 CPUs (`executor.num_cpus=2`).

- parity: the Ray executor selects the same items as the local one, round by round (>= 95% shared);
- a driver killed with SIGKILL in the middle of a round under the Ray executor resumes with nothing lost
  and no teacher call paid twice;
- a run folder made before the pool moved to Parquet shards (schema 4: the pool in the store's `items`)
  keeps working: it is migrated on open and the run goes on.
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

from quarry_al.engine.config import load_config
from quarry_al.engine.pool import PoolShards
from quarry_al.engine.store import Store

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "configs" / "demo.yaml"
FAST = ["loop.initial_labels=10", "loop.batch_size=10", "loop.rounds=2", "loop.label_budget=null",
        "student.min_steps=60", "student.max_steps=60"]
RAY = ["executor.kind=ray", "executor.num_cpus=2", "executor.actors=2", "executor.batch_size=64"]

# Each test runs the demo once or twice (a module fixture the others share): minutes each on 2 busy cores.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(2400)]


def start(run_dir: Path, settings: list[str]) -> subprocess.Popen:
    args = [sys.executable, "-m", "engine", "run", str(DEMO), "--run-dir", str(run_dir), "--no-progress"]
    for pair in FAST + settings:
        args += ["--set", pair]
    return subprocess.Popen(args, cwd=REPO, env={**os.environ, "HF_HUB_OFFLINE": "1"},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(process: subprocess.Popen) -> str:
    _, err = process.communicate(timeout=1200)
    assert process.returncode == 0, err[-3000:]
    return err


def query(run_dir: Path, sql: str, args=()) -> list:
    with sqlite3.connect(run_dir / "quarry.db", timeout=1) as conn:
        return conn.execute(sql, args).fetchall()


def selections(run_dir: Path) -> dict[int, set[str]]:
    out: dict[int, set[str]] = {}
    for round_, item_id in query(run_dir, "SELECT round, item_id FROM selections"):
        out.setdefault(round_, set()).add(item_id)
    return out


def labels_of(run_dir: Path) -> dict[str, tuple[str, str]]:
    return {i: (label, source) for i, label, source in query(run_dir, "SELECT item_id, label, source FROM labels ORDER BY id")}


def teacher_calls_in_round(run_dir: Path, round_: int) -> int:
    try:
        return query(run_dir, "SELECT COUNT(*) FROM teacher_calls WHERE round = ?", (round_,))[0][0]
    except sqlite3.OperationalError:  # no database or no tables yet
        return 0


@pytest.fixture(scope="module")
def local_run(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("local") / "run"
    finish(start(run_dir, []))
    return run_dir


@pytest.fixture(scope="module")
def ray_run(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("ray") / "run"
    finish(start(run_dir, RAY))
    return run_dir


def test_the_ray_executor_selects_what_the_local_one_selects(local_run, ray_run):
    local, ray = selections(local_run), selections(ray_run)
    assert sorted(local) == sorted(ray) == [0, 1, 2]
    shared = {r: len(local[r] & ray[r]) / len(local[r]) for r in local}
    print(f"\nshared selected ids per round (ray vs local): {shared}")
    assert all(fraction >= 0.95 for fraction in shared.values()), shared
    assert (ray_run / "pool" / "meta.json").is_file() and (ray_run / "scores" / "round-001" / "meta.json").is_file()
    assert not list(ray_run.glob("scores/*.npz"))  # classification scores are shards now, with either executor


def test_a_driver_killed_mid_round_resumes_under_ray_with_nothing_lost(ray_run, tmp_path):
    run_dir = tmp_path / "killed"
    process = start(run_dir, RAY + ["teacher.cache=false"])  # no cache: the kill must land between paid calls
    deadline = time.time() + 900
    while teacher_calls_in_round(run_dir, 1) < 3:
        assert process.poll() is None, process.stderr.read()[-3000:]
        assert time.time() < deadline, "round 1 never started labeling"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert teacher_calls_in_round(run_dir, 1) < 10, "the kill came too late to be in the middle of the round"
    err = finish(start(run_dir, RAY + ["teacher.cache=false"]))
    assert "resuming" in err
    assert labels_of(run_dir) == labels_of(ray_run)
    per_item = dict(query(run_dir, "SELECT item_id, COUNT(*) FROM teacher_calls GROUP BY item_id"))
    assert max(per_item.values()) == 1, "a teacher call was paid twice"
    assert set(per_item) == {i for _, i in query(ray_run, "SELECT round, item_id FROM selections")}


def test_a_run_folder_from_before_the_pool_shards_is_migrated_and_goes_on(tmp_path):
    """Made the way runs were before schema 5: every pool item a row of `items` (Store.initialize still
    writes that layout), the database at version 4, round 0 selected; then `quarry run` resumes it."""
    run_dir = tmp_path / "old"
    run_dir.mkdir()
    config = load_config(DEMO, FAST + ["loop.rounds=1"])
    pool = [json.loads(line) for line in (REPO / "configs" / "demo_data" / "pool.jsonl").read_text().splitlines()]
    with Store(run_dir / "quarry.db") as store:
        store.initialize(json.dumps(config.model_dump(mode="json")), [(r["id"], r["text"], r["label"]) for r in pool], [])
        store.create_round(0, "random", [(r["id"], None, None, None) for r in pool[:10]], {})
        store.set_meta("schema_version", "4")
    process = start(run_dir, ["loop.rounds=1"])
    err = finish(process)
    assert "resuming" in err
    with Store(run_dir / "quarry.db") as store:
        assert store.meta("schema_version") == "5" and store.pool_layout() == "items" and store.pool_size() == 300
        assert [r.phase for r in store.rounds()] == ["done", "done"]
        chosen = selections(run_dir)
        assert chosen[0] == {r["id"] for r in pool[:10]} and len(chosen[1]) == 10 and not chosen[0] & chosen[1]
    shards = json.loads((run_dir / "pool" / "meta.json").read_text())
    assert shards["rows"] == 300
    assert [row.item_id for row in PoolShards(run_dir / "pool").rows()] == [r["id"] for r in pool]
