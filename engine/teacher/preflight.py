"""One real check of the teacher before any work, and again when calls keep failing mid-run.

Each backend kind may name a `preflight` in its TeacherSpec (engine/teacher/registry.py): a function of
(options, task) that returns a `Preflight` or raises TeacherUnavailable with one line naming the URL or
model and the error. The OpenAI-compatible one makes a tiny real request (engine/teacher/openai_preflight.py);
the built-in local ones check, cheaply, that the model can be found here. The request a preflight pays for
is not one of the run's teacher calls (it labels no item), so it is only logged with its cost.

The checks live with their backends (local.py, vllm_offline.py, openai_preflight.py), imported only when used.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .base import Usage, call_cost
from .options import TeacherOptions
from .registry import spec_for


@dataclass(frozen=True)
class Preflight:
    """What a check found: where it looked, what answered, and the tokens its request used (if any)."""

    target: str  # e.g. "http://127.0.0.1:8000/v1 (model smollm2)"
    detail: str
    seconds: float = 0.0
    usage: Usage = field(default_factory=Usage)
    requested: bool = False  # a request went out (worth a log line, with its cost); a local check is silent


def preflight_teacher(options: TeacherOptions, task) -> Preflight | None:
    """Run the kind's check (None when the kind has none); raises TeacherUnavailable when it fails."""
    check = spec_for(options.kind).load_preflight()
    return None if check is None else check(options, task)


def describe(report: Preflight, options: TeacherOptions) -> str:
    """The log line of a passed check, with what its request cost at the configured prices."""
    cost = call_cost(report.usage, options.price_input_per_mtok, options.price_output_per_mtok)
    tokens = report.usage.prompt_tokens + report.usage.completion_tokens
    paid = (f", {report.usage.prompt_tokens}+{report.usage.completion_tokens} tokens, cost {cost:.6f} "
            "(not one of the run's teacher calls)") if tokens else ""
    return f"teacher check: {report.target} {report.detail} in {report.seconds:.2f} s{paid}"
