"""`quarry plan CONFIG`: what a job will ask the teacher and what it will cost, before any call.

The estimate renders the real prompt for a sample of the pool and counts its tokens with the
teacher model's tokenizer when one is known (the local teacher's model, or `teacher.tokenizer`
for a server), else as characters / 4, and says which. Answers are counted at the length of the
longest label's JSON. Stricter retries of unusable answers and retries of failed calls come on
top; cache hits come off: the estimate is for a run that pays for every call once.
"""
from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from quarry_al.engine.core.models import resolve_model_path
from quarry_al.engine.config import ConfigError, JobConfig, LocalTeacherConfig, OpenAITeacherConfig
from quarry_al.engine.data import load_job_data

SAMPLE_SIZE = 200


@dataclass(frozen=True)
class Plan:
    items: int  # items the job will send to the teacher
    calls_per_item: int
    prompt_tokens_per_call: float  # mean over the sample of pool texts
    completion_tokens_per_call: float
    token_counter: str  # how tokens were counted
    sample_prompt: str
    price_input_per_mtok: float
    price_output_per_mtok: float

    @property
    def calls(self) -> int:
        return self.items * self.calls_per_item

    @property
    def prompt_tokens(self) -> int:
        return round(self.calls * self.prompt_tokens_per_call)

    @property
    def completion_tokens(self) -> int:
        return round(self.calls * self.completion_tokens_per_call)

    @property
    def cost(self) -> float:
        return (self.prompt_tokens * self.price_input_per_mtok + self.completion_tokens * self.price_output_per_mtok) / 1e6


def items_to_label(config: JobConfig, pool_size: int) -> int:
    """Round 0's initial labels plus every query round's batch, within the label budget and the pool."""
    wanted = config.loop.initial_labels + config.loop.rounds * config.loop.batch_size
    if config.loop.label_budget is not None:
        wanted = min(wanted, config.loop.label_budget)
    return min(wanted, pool_size)


def _load_tokenizer(model: str) -> Any:
    from transformers import AutoTokenizer

    path = Path(resolve_model_path(model))
    ggufs = sorted(p.name for p in path.glob("*.gguf")) if path.is_dir() else []
    return AutoTokenizer.from_pretrained(str(path), gguf_file=ggufs[0]) if ggufs else AutoTokenizer.from_pretrained(str(path))


def _counter(tokenizer: Any | None) -> Callable[[list[dict[str, str]]], int]:
    """Tokens of a chat request: through the model's chat template when it has one."""
    if tokenizer is None:
        return lambda messages: round(sum(len(m["content"]) for m in messages) / 4)
    if getattr(tokenizer, "chat_template", None):
        return lambda messages: len(tokenizer(
            tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True),
            add_special_tokens=False)["input_ids"])
    return lambda messages: len(tokenizer("\n".join(m["content"] for m in messages))["input_ids"])


def _answer_tokens(count: Callable[[list[dict[str, str]]], int], answer: str) -> int:
    return max(1, count([{"role": "assistant", "content": answer}]) - count([{"role": "assistant", "content": ""}]))


def make_plan(config: JobConfig, tokenizer_loader: Callable[[str], Any] = _load_tokenizer) -> Plan:
    from quarry_al.engine.teacher.prompts import load_template, render_messages

    teacher = config.teacher
    data = load_job_data(config.data, config.task.label_names)
    texts = [r.text for r in data.pool]
    if not texts:
        raise ConfigError("data.pool: the pool is empty: nothing to label")
    sample = random.Random(config.loop.seed).sample(texts, min(SAMPLE_SIZE, len(texts)))
    template = load_template(teacher.prompt)
    longest = max(config.task.label_names, key=len)

    if isinstance(teacher, LocalTeacherConfig):
        model = teacher.model
        render = lambda text: render_messages(template, config.task, text, output="label")  # noqa: E731
    else:
        from quarry_al.engine.teacher.openai_compat import label_messages

        model = teacher.tokenizer
        render = lambda text: label_messages(template, config.task, text, teacher.confidence)  # noqa: E731
    try:
        tokenizer = tokenizer_loader(model) if model else None
    except (OSError, ValueError) as exc:
        key = "teacher.model" if isinstance(teacher, LocalTeacherConfig) else "teacher.tokenizer"
        raise ConfigError(f"{key}: cannot load the tokenizer of {model!r}: {' '.join(str(exc).split())[:200]}") from None
    count = _counter(tokenizer)
    how = f"tokenizer of {model}" if tokenizer is not None else "characters / 4 (no tokenizer known: set teacher.tokenizer)"
    prompt = sum(count(render(text)) for text in sample) / len(sample)

    if isinstance(teacher, LocalTeacherConfig):
        # The local teacher scores every label after the prompt: one forward pass, no answer tokens.
        calls, prompt_total, completion_total = 1, prompt, 0.0
    else:
        calls, prompt_total, completion_total = _per_item(teacher, count, longest, prompt)
    first = render(texts[0])
    shown = "\n".join(f"--- {m['role']} ---\n{m['content']}" for m in first)
    return Plan(items=items_to_label(config, len(texts)), calls_per_item=calls,
                prompt_tokens_per_call=prompt_total / calls, completion_tokens_per_call=completion_total / calls, token_counter=how, sample_prompt=shown,
                price_input_per_mtok=teacher.price_input_per_mtok, price_output_per_mtok=teacher.price_output_per_mtok)


def _per_item(teacher: OpenAITeacherConfig, count: Callable, longest: str, prompt: float) -> tuple[int, float, float]:
    """(calls, prompt tokens, answer tokens) per item under a confidence method."""
    answer = {"label": longest, "confidence": 100} if teacher.confidence == "verbalized" else {"label": longest}
    tokens = float(min(teacher.max_tokens, _answer_tokens(count, json.dumps(answer))))
    if teacher.confidence == "self_consistency":
        return teacher.samples, teacher.samples * prompt, teacher.samples * tokens
    if teacher.confidence == "p_true":
        from quarry_al.engine.teacher.prompts import load_template

        # The label (prompt, answer), then the check (prompt + answer + question, a one-token answer).
        question = count([{"role": "user", "content": load_template("verify.j2").render(label=longest).strip()}])
        return 2, prompt + (prompt + tokens + question), tokens + 1
    return 1, prompt, tokens


def plan_text(plan: Plan) -> str:
    rows = [
        ("items to label", f"{plan.items}"),
        ("calls per item", f"{plan.calls_per_item}"),
        ("calls", f"{plan.calls}"),
        ("prompt tokens per call (mean)", f"{plan.prompt_tokens_per_call:.1f}"),
        ("completion tokens per call", f"{plan.completion_tokens_per_call:.1f}"),
        ("prompt tokens", f"{plan.prompt_tokens}"),
        ("completion tokens", f"{plan.completion_tokens}"),
        ("cost", f"{plan.cost:.4f} (at {plan.price_input_per_mtok:g} / {plan.price_output_per_mtok:g} per 1M "
                 "input / output tokens)"),
        ("tokens counted with", plan.token_counter),
    ]
    width = max(len(name) for name, _ in rows)
    table = "\n".join(f"{name.ljust(width)}  {value}" for name, value in rows)
    return (f"sample prompt (first pool item):\n{plan.sample_prompt}\n\n{table}\n"
            "not counted: stricter retries of unusable answers, retries of failed calls, cache hits (which are free)")
