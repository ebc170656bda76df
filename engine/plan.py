"""`quarry plan CONFIG`: what a job will ask the teacher and what it will cost, before any call.

Any teacher kind: its backend's estimate (named in its TeacherSpec, engine/teacher/registry.py;
shared arithmetic in engine/teacher/estimate.py) renders the real prompt for a sample of the pool
and counts its tokens with the teacher model's tokenizer when one is known (the local or vLLM
teacher's model, `teacher.tokenizer` for a server), else as characters / 4, and says which. Answers
are counted at the length of the longest label (in its JSON, for a server). Stricter retries of
unusable answers and retries of failed calls come on top; cache hits come off: the estimate is for
a run that pays for every call once.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .config import ConfigError, JobConfig
from .core.models import resolve_model_path
from .tasks.registry import task_kind
from .teacher.registry import spec_for

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


def load_tokenizer(model: str) -> Any:
    """The tokenizer of a model package, folder or hub name (a GGUF folder's from its first GGUF file)."""
    from transformers import AutoTokenizer  # heavy: only when a plan counts with a tokenizer

    path = Path(resolve_model_path(model))
    ggufs = sorted(p.name for p in path.glob("*.gguf")) if path.is_dir() else []
    return AutoTokenizer.from_pretrained(str(path), gguf_file=ggufs[0]) if ggufs else AutoTokenizer.from_pretrained(str(path))


def make_plan(config: JobConfig, tokenizer_loader: Callable[[str], Any] = load_tokenizer) -> Plan:
    teacher = config.teacher
    kind = task_kind(config.task)
    texts = kind.plan_texts(kind.load_data(config))
    if not texts:
        raise ConfigError("data.pool: the pool is empty: nothing to label")
    sample = random.Random(config.loop.seed).sample(texts, min(SAMPLE_SIZE, len(texts)))
    _, estimator = spec_for(teacher.kind).load_for_task(config.task.kind)
    estimate = estimator(teacher, config.task, sample=sample, shown=texts[0], load_tokenizer=tokenizer_loader)
    calls = estimate.calls_per_item
    shown = "\n".join(f"--- {m['role']} ---\n{m['content']}" for m in estimate.shown)
    return Plan(items=items_to_label(config, len(texts)), calls_per_item=calls,
                prompt_tokens_per_call=estimate.prompt_tokens_per_item / calls,
                completion_tokens_per_call=estimate.completion_tokens_per_item / calls,
                token_counter=estimate.token_counter, sample_prompt=shown,
                price_input_per_mtok=teacher.price_input_per_mtok, price_output_per_mtok=teacher.price_output_per_mtok)


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
