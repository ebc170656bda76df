"""The `task:` section of a job: what the data set is about (its labels and the instruction that goes
into every exported record). Every room that renders or checks a task reads it from here."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LabelSpec(_Strict):
    name: str
    description: str = ""


class TaskConfig(_Strict):
    kind: Literal["classification"] = "classification"
    labels: list[LabelSpec]
    instruction: str = Field(description="The instruction that goes into every exported record")
    description: str = ""  # what the texts are, for the teacher's prompt

    @field_validator("labels", mode="before")
    @classmethod
    def _labels_from_strings(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{"name": v} if isinstance(v, str) else v for v in value]
        return value

    @field_validator("labels")
    @classmethod
    def _labels_distinct(cls, value: list[LabelSpec]) -> list[LabelSpec]:
        names = [label.name for label in value]
        if len(names) < 2:
            raise ValueError("a classification task needs at least two labels")
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"duplicate labels: {duplicates}")
        return value

    @property
    def label_names(self) -> list[str]:
        return [label.name for label in self.labels]
