"""A model's answer read as a label of the task: the one parser every generating backend uses.

Lenient only where it is harmless: surrounding whitespace and code fences are dropped, a label that
matches one of the set except for letter case is taken as that label, and so is an answer that is a
label and nothing else (what vLLM's guided/structured `choice` gives). Anything else is a typed error
("unparsable" or "out_of_set") with a message that names the problem, for the stricter retry and the
reviewer.
"""
from __future__ import annotations

import json
import re
from typing import Any, Sequence

from .base import ErrorKind

# The "label" member of a JSON object and its string value (group 1, still JSON-escaped).
LABEL_VALUE = re.compile(r'"label"\s*:\s*"((?:[^"\\]|\\.)*)"', re.DOTALL)
_FENCE = re.compile(r"^```[A-Za-z0-9_-]*\s*\n?(.*?)\n?\s*```$", re.DOTALL)

Parsed = tuple[str | None, ErrorKind | None, str]  # (label, error, message)


def label_schema(labels: Sequence[str]) -> dict[str, Any]:
    """The JSON schema of an answer: {"label": one of the labels}."""
    return {
        "type": "object",
        "properties": {"label": {"type": "string", "enum": list(labels)}},
        "required": ["label"],
        "additionalProperties": False,
    }


def parse_answer(content: str | None) -> tuple[dict[str, Any] | None, str]:
    """(the JSON object, problem) of an answer; surrounding whitespace and code fences are dropped."""
    if content is None:
        return None, "empty answer"
    text = content.strip()
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced.group(1).strip()
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, f"answer is not JSON: {exc}"
    if not isinstance(data, dict):
        return None, "answer is not a JSON object"
    return data, ""


def parse_label(content: str | None, labels: Sequence[str], bare: bool = True) -> Parsed:
    """(label, error, message) from the model's answer: a JSON object with a "label", or (unless `bare`
    is False: an answer that must carry more than the label) a label and nothing else."""
    data, problem = parse_answer(content)
    if data is None:
        label = bare_label(content, labels) if bare else None
        return (label, None, "") if label is not None else (None, "unparsable", problem)
    return label_of(data, labels)


def parse_bare(content: str | None, labels: Sequence[str]) -> Parsed:
    """(label, error, message) of an answer that should be a label and nothing else."""
    if not content or not content.strip():
        return None, "unparsable", "empty answer"
    return label_of({"label": content.strip()}, labels)


def bare_label(content: str | None, labels: Sequence[str]) -> str | None:
    """The label an answer is, with nothing else: unambiguous, so taken; None otherwise."""
    return parse_bare(content, labels)[0]


def label_of(data: dict[str, Any], labels: Sequence[str]) -> Parsed:
    """The "label" member of a parsed answer, matched to the label set."""
    if "label" not in data:
        return None, "unparsable", "answer has no \"label\" member"
    value = data["label"]
    if not isinstance(value, str):
        return None, "unparsable", f"\"label\" is not a string: {value!r}"
    stripped = value.strip()
    if stripped in labels:
        return stripped, None, ""
    folded = [label for label in labels if label.casefold() == stripped.casefold()]
    if len(folded) == 1:
        return folded[0], None, ""
    return None, "out_of_set", f"label {value!r} is not one of {list(labels)}"
