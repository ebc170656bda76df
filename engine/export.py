"""The run's labels as a fine-tuning dataset, each record with its provenance.

Every format is written from the task kind's view of a labeled item as one exchange (engine/tasks/,
`Turns`: system, user, answer; Alpaca's instruction and input), so classification and generation
jobs export alike, in shapes TRL's SFT and DPO trainers read as they are (tests/test_export_trl.py):

- `chat`: {"messages": [system?, user, assistant]} (conversational);
- `sharegpt`: {"conversations": [{"from", "value"}...]}, with the ChatML role names TRL's conversion keeps;
- `alpaca`: {"instruction", "input", "output"} and the same as {"prompt", "completion"} in Stanford Alpaca's
  prompt template (what an Alpaca trainer builds, and what TRL reads as prompt-completion);
- `dpo`: {"prompt", "chosen", "rejected"} for every item whose answer a person changed: chosen is the
  person's answer, rejected the teacher's (an edited or rewritten answer; a corrected label);
- `jsonl`: the kind's flat fields with the provenance beside them.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator, Literal

from .config import JobConfig
from .store import LabelRow, ReviewRow, Store
from .tasks.base import Turns
from .tasks.registry import task_kind

Format = Literal["chat", "sharegpt", "alpaca", "dpo", "jsonl"]
FORMATS: tuple[str, ...] = ("chat", "sharegpt", "alpaca", "dpo", "jsonl")

# Stanford Alpaca's training prompts (github.com/tatsu-lab/stanford_alpaca, train.py PROMPT_DICT).
ALPACA_PROMPT = ("Below is an instruction that describes a task, paired with an input that provides further context. "
                 "Write a response that appropriately completes the request.\n\n"
                 "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n")
ALPACA_PROMPT_NO_INPUT = ("Below is an instruction that describes a task. Write a response that appropriately "
                          "completes the request.\n\n### Instruction:\n{instruction}\n\n### Response:\n")


def provenance(row: LabelRow, teacher_model: str | None) -> dict[str, Any]:
    return {"id": row.item_id, "source": row.source, "confidence": row.confidence, "round": row.round,
            "reason": row.reason, "reviewer": row.reviewer,
            "teacher_model": teacher_model if row.source == "teacher" else None}


def teacher_said(row: LabelRow, review: ReviewRow | None) -> dict[str, Any]:
    """The teacher's label and confidence beside the final one: on a person's decision, what they were shown."""
    if row.source == "teacher":
        return {"teacher_label": row.label, "teacher_confidence": row.confidence}
    if review is not None:
        return {"teacher_label": review.teacher_label, "teacher_confidence": review.teacher_confidence}
    return {"teacher_label": None, "teacher_confidence": None}


def prompt_messages(turns: Turns) -> list[dict[str, str]]:
    system = [{"role": "system", "content": turns.system}] if turns.system else []
    return system + [{"role": "user", "content": turns.user}]


def format_record(turns: Turns, fmt: str) -> dict[str, Any]:
    """One exchange in an SFT format (chat, sharegpt, alpaca)."""
    if fmt == "chat":
        return {"messages": prompt_messages(turns) + [{"role": "assistant", "content": turns.answer}]}
    if fmt == "sharegpt":
        return {"conversations": [{"from": m["role"], "value": m["content"]} for m in prompt_messages(turns)]
                + [{"from": "assistant", "value": turns.answer}]}
    if fmt == "alpaca":
        template = ALPACA_PROMPT if turns.input else ALPACA_PROMPT_NO_INPUT
        return {"instruction": turns.instruction, "input": turns.input, "output": turns.answer,
                "prompt": template.format(instruction=turns.instruction, input=turns.input),
                "completion": turns.answer}
    raise ValueError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")


def preference_pairs(store: Store) -> dict[str, str]:
    """The teacher's answer of every item whose current label is a person's different one: what was rejected."""
    return {r.item_id: r.teacher_label for r in store.settled_reviews()
            if r.teacher_label is not None and r.human_label is not None and r.human_label != r.teacher_label}


def records(store: Store, config: JobConfig, fmt: Format) -> Iterator[dict[str, Any]]:
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    kind = task_kind(config.task)
    models = store.teacher_models()
    rejected = preference_pairs(store) if fmt == "dpo" else {}
    reviews = {r.item_id: r for r in store.reviews()} if fmt == "jsonl" else {}
    for row in store.current_labels():
        origin = provenance(row, models.get(row.item_id))
        if fmt == "jsonl":
            yield {**kind.flat_record(row), **origin, **teacher_said(row, reviews.get(row.item_id))}
            continue
        turns = kind.turns(config, row)
        if fmt == "dpo":
            if row.source == "human" and row.item_id in rejected:
                yield {"prompt": prompt_messages(turns), "chosen": [{"role": "assistant", "content": turns.answer}],
                       "rejected": [{"role": "assistant", "content": rejected[row.item_id]}], "provenance": origin}
            continue
        yield {**format_record(turns, fmt), "provenance": origin}


def export(store: Store, config: JobConfig, fmt: Format, out: str | Path) -> int:
    """Write atomically; returns the number of records."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    count = 0
    with tmp.open("w", encoding="utf-8") as handle:
        for record in records(store, config, fmt):
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            count += 1
    tmp.replace(out)
    return count
