"""What an item will cost a teacher, before any call: the arithmetic each backend's `estimate` shares.

A backend's estimate (named in its TeacherSpec, engine/teacher/registry.py) is called as
`estimate(options, task, sample=TEXTS, shown=TEXT, load_tokenizer=LOADER)` and returns an `Estimate`:
calls per item and their prompt and answer tokens (mean over `sample`), how those were counted, and
the prompt of `shown`. engine/plan.py (`quarry plan`) multiplies it out. Tokens are counted with the
model's tokenizer when one is known, through its chat template when it has one; else as
characters / 4, and the estimate says which.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

from ..core.errors import ConfigError

Messages = list[dict[str, str]]
Count = Callable[[Messages], int]
TokenizerLoader = Callable[[str], Any]  # a model name -> its tokenizer (engine/plan.py loads it with transformers)


@dataclass(frozen=True)
class Estimate:
    calls_per_item: int
    prompt_tokens_per_item: float  # all of an item's calls together, mean over the sample
    completion_tokens_per_item: float
    token_counter: str  # how tokens were counted
    shown: Messages  # the prompt of the text shown as the sample


def counter(tokenizer: Any | None) -> Count:
    """Tokens of a chat request: through the model's chat template when it has one; characters / 4 without a tokenizer."""
    if tokenizer is None:
        return lambda messages: round(sum(len(m["content"]) for m in messages) / 4)
    if getattr(tokenizer, "chat_template", None):
        return lambda messages: len(tokenizer(
            tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True),
            add_special_tokens=False)["input_ids"])
    return lambda messages: len(tokenizer("\n".join(m["content"] for m in messages))["input_ids"])


def token_counter(model: str | None, key: str, load: TokenizerLoader, missing: str) -> tuple[Count, str]:
    """(count, how it counts): with the tokenizer of `model`, or characters / 4 when there is no `model`
    (`missing` says why); a tokenizer that will not load is a one-line ConfigError naming `key`."""
    if not model:
        return counter(None), f"characters / 4 ({missing})"
    try:
        tokenizer = load(model)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{key}: cannot load the tokenizer of {model!r}: {' '.join(str(exc).split())[:200]}") from None
    return counter(tokenizer), f"tokenizer of {model}"


def answer_tokens(count: Count, answer: str) -> int:
    """Tokens of an assistant answer: the message's count less that of an empty one (its chat-template frame)."""
    return max(1, count([{"role": "assistant", "content": answer}]) - count([{"role": "assistant", "content": ""}]))


def mean_prompt_tokens(count: Count, render: Callable[[str], Messages], sample: Sequence[str]) -> float:
    return sum(count(render(text)) for text in sample) / len(sample)
