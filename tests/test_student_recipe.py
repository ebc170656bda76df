"""The student's learning rate follows its kind and method unless the config sets it, and a recipe measured not
to work is warned about before the run (in `quarry plan` and at the start of `quarry run`)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from quarry_al.engine.config import StudentConfig, load_config
from quarry_al.engine.student_config import DEFAULT_LEARNING_RATES, recipe_warnings

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("given, rate", [({}, 1e-3), ({"method": "full"}, 1e-4), ({"kind": "causal"}, 5e-4),
                                         ({"kind": "causal", "method": "full"}, 5e-5),
                                         ({"method": "full", "learning_rate": 2e-5}, 2e-5)])
def test_the_learning_rate_follows_kind_and_method_unless_set(given, rate):
    student = StudentConfig(**given)
    assert student.learning_rate == rate
    assert DEFAULT_LEARNING_RATES[(student.kind, student.method)] == (rate if "learning_rate" not in given else 1e-4)


def test_the_default_survives_a_round_trip_through_the_run_snapshot():
    """A resumed run reads its stored config back: the rate it ran with stays, whatever the method's default."""
    stored = StudentConfig(method="full").model_dump(mode="json")
    assert StudentConfig(**{**stored, "method": "lora"}).learning_rate == 1e-4


def test_recipes_that_do_not_work_are_warned_about():
    assert recipe_warnings(StudentConfig()) == [] and recipe_warnings(StudentConfig(method="full")) == []
    (full,) = recipe_warnings(StudentConfig(method="full", learning_rate=1e-3))
    assert full.startswith("student.learning_rate 0.001 with student.method full") and "default for full is 0.0001" in full
    (lora,) = recipe_warnings(StudentConfig(learning_rate=2e-5, max_steps=200))
    assert "student.method lora" in lora and "max_steps 200" in lora and "default for lora is 0.001" in lora


def test_plan_prints_the_warning(tmp_path):
    config = load_config(REPO / "configs" / "demo.yaml", ["student.method=full", "student.learning_rate=0.001"])
    assert config.student.learning_rate == 1e-3
    result = subprocess.run([sys.executable, "-m", "engine", "plan", "configs/demo.yaml", "--set", "student.method=full",
                             "--set", "student.learning_rate=0.001"], cwd=REPO, capture_output=True, text=True,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "warning: student.learning_rate 0.001 with student.method full" in result.stdout
