"""Review batches for the tools a team already uses: Label Studio JSON tasks and Argilla records.

Export writes the pending items with the teacher's (and the student's) label as a scored prediction or
suggestion; import reads the same file back after people annotated it in that tool and feeds each
annotation into the shared queue as one reviewer's decision (so overlap and agreement work too).
The whole file is checked before anything is applied: a bad record rejects it, naming file and record.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, Sequence

from ..core.errors import QuarryError
from .queue import Conflict, ReviewQueue
from ..store import ReviewRow

Format = Literal["label-studio", "argilla"]
QUESTION = "label"  # Label Studio: the <Choices name=...>; Argilla: the label question's name
FIELD = "text"  # Label Studio: data key and <Text name=...>; Argilla: the text field's name


class BatchError(QuarryError, ValueError):
    pass


@dataclass(frozen=True)
class BatchDecision:
    item_id: str
    reviewer: str
    label: str | None  # None: discarded / cancelled, a skip; generation: the answer text


@dataclass(frozen=True)
class Shape:
    """What a task kind's batch looks like: the question people answer, how an item is written for each tool,
    how a Label Studio result is read back, which values are acceptable, and the tool's setup."""

    question: str  # Label Studio's control name; Argilla's question name
    label_studio_task: Callable[[ReviewRow], dict[str, Any]]
    argilla_record: Callable[[ReviewRow], dict[str, Any]]
    result_value: Callable[[dict[str, Any]], Any]  # one Label Studio result entry -> its value (None: not one)
    check: Callable[[Any], str | None]  # why a value is not acceptable
    setup_hint: Callable[[Format], str]
    edit: str | None = None  # how a changed value is recorded (generation: "edit")


@dataclass
class ImportResult:
    decided: int = 0
    skipped: int = 0
    conflicts: list[str] = field(default_factory=list)


def _shown(review: ReviewRow) -> dict[str, Any]:
    return {"quarry_id": review.item_id, "round": review.round, "reason": review.reason,
            "teacher_raw": review.teacher_raw or ""}


def label_studio_task(review: ReviewRow) -> dict[str, Any]:
    predictions = []
    for source, label, score in (("teacher", review.teacher_label, review.teacher_confidence),
                                 ("student", review.student_label, review.student_confidence)):
        if label is not None:
            predictions.append({"model_version": f"quarry-{source}", "score": score, "result": [
                {"from_name": QUESTION, "to_name": FIELD, "type": "choices", "value": {"choices": [label]}}]})
    return {"data": {FIELD: review.text, **_shown(review)}, "predictions": predictions}


def argilla_record(review: ReviewRow) -> dict[str, Any]:
    """The shape of Argilla 2's `Record.to_dict()`; the student's label goes in metadata (one suggestion per question)."""
    suggestions = {}
    if review.teacher_label is not None:
        suggestions[QUESTION] = {"value": review.teacher_label, "score": review.teacher_confidence,
                                 "agent": "quarry-teacher"}
    return {"id": review.item_id, "fields": {FIELD: review.text},
            "metadata": {**_shown(review), "student_label": review.student_label,
                         "student_confidence": review.student_confidence},
            "suggestions": suggestions, "responses": {}, "vectors": {}, "status": "pending"}


def _choice(result: dict[str, Any]) -> Any:
    choices = result.get("value", {}).get("choices") if isinstance(result.get("value"), dict) else None
    return choices[0] if isinstance(choices, list) and len(choices) == 1 else None


def label_shape(label_names: Sequence[str]) -> Shape:
    """A classification batch: the labels as single choices, the teacher's (and the student's) label scored."""
    allowed = set(label_names)
    return Shape(QUESTION, label_studio_task, argilla_record, _choice,
                 lambda value: None if value in allowed else f"label {value!r} is not one of {sorted(allowed)}",
                 lambda fmt: setup_hint(fmt, label_names))


def setup_hint(fmt: Format, label_names: Sequence[str]) -> str:
    """How to set up the project in the other tool so that the exported file fits it."""
    if fmt == "label-studio":
        from xml.sax.saxutils import quoteattr

        choices = "".join(f"<Choice value={quoteattr(name)}/>" for name in label_names)
        return (f'Label Studio labeling config: <View><Text name="{FIELD}" value="${FIELD}"/>'
                f'<Choices name="{QUESTION}" toName="{FIELD}" choice="single">{choices}</Choices></View>')
    return (f'Argilla settings: rg.Settings(fields=[rg.TextField(name="{FIELD}")], questions=[rg.LabelQuestion('
            f'name="{QUESTION}", labels={list(label_names)!r})]); log the records with dataset.records.log(records)')


def export_batch(queue: ReviewQueue, path: str | Path, fmt: Format, shape: Shape | None = None) -> int:
    pending = queue.store.reviews(status="pending")
    make = (shape.label_studio_task if fmt == "label-studio" else shape.argilla_record) if shape else (
        label_studio_task if fmt == "label-studio" else argilla_record)
    Path(path).write_text(json.dumps([make(r) for r in pending], indent=1, ensure_ascii=False), encoding="utf-8")
    return len(pending)


def _records(path: Path) -> list[Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise BatchError(f"{path}: not UTF-8 text") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        # Argilla's exports can also be JSON Lines.
        try:
            return [json.loads(line) for line in text.splitlines() if line.strip()]
        except json.JSONDecodeError:
            raise BatchError(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg})") from None
    if not isinstance(data, list):
        raise BatchError(f"{path}: expected a JSON list of records")
    return data


def detect_format(records: Sequence[Any]) -> Format | None:
    first = next((r for r in records if isinstance(r, dict)), {})
    return "label-studio" if "data" in first else "argilla" if "fields" in first or "responses" in first else None


def _label_studio(record: dict[str, Any], where: str, default_reviewer: str,
                  shape: Shape) -> tuple[str, list[BatchDecision]]:
    data = record.get("data")
    if not isinstance(data, dict) or not isinstance(data.get("quarry_id"), str):
        raise BatchError(f"{where}: no data.quarry_id (export the batch with `quarry review --export-batch`)")
    item_id = data["quarry_id"]
    decisions = []
    for number, annotation in enumerate(record.get("annotations") or [], start=1):
        if not isinstance(annotation, dict):
            raise BatchError(f"{where} (id {item_id}): annotation {number} is not an object")
        who = annotation.get("completed_by")
        if isinstance(who, dict):
            who = who.get("email") or who.get("id")
        reviewer = f"label-studio:{who}" if who is not None else default_reviewer
        if annotation.get("was_cancelled"):
            decisions.append(BatchDecision(item_id, reviewer, None))
            continue
        values = [shape.result_value(r) for r in annotation.get("result") or []
                  if isinstance(r, dict) and r.get("from_name") == shape.question]
        if len(values) != 1 or values[0] is None:
            raise BatchError(f"{where} (id {item_id}): annotation {number} needs exactly one "
                             f"{'choice' if shape.question == QUESTION else 'answer'} in the '{shape.question}' control")
        decisions.append(BatchDecision(item_id, reviewer, values[0]))
    return item_id, decisions


def _argilla(record: dict[str, Any], where: str, default_reviewer: str, shape: Shape) -> tuple[str, list[BatchDecision]]:
    item_id = record.get("id") or (record.get("metadata") or {}).get("quarry_id")
    if not isinstance(item_id, str):
        raise BatchError(f"{where}: no record id (export the batch with `quarry review --export-batch`)")
    responses = record.get("responses") or {}
    question = shape.question
    if isinstance(responses, dict):  # Argilla 2: {question: [{"value", "user_id", "status"?}]}
        answers = responses.get(question) or []
    elif isinstance(responses, list):  # Argilla 1: [{"values": {question: {"value"}}, "user_id", "status"}]
        answers = [{**r, "value": ((r.get("values") or {}).get(question) or {}).get("value")}
                   for r in responses if isinstance(r, dict)]
    else:
        raise BatchError(f"{where} (id {item_id}): 'responses' must be an object or a list")
    decisions = []
    for number, answer in enumerate(answers, start=1):
        if not isinstance(answer, dict):
            raise BatchError(f"{where} (id {item_id}): response {number} is not an object")
        status = answer.get("status", "submitted")
        if status == "draft":
            continue
        who = answer.get("user_id")
        reviewer = f"argilla:{who}" if who is not None else default_reviewer
        if status == "discarded":
            decisions.append(BatchDecision(item_id, reviewer, None))
        elif not isinstance(answer.get("value"), str):
            raise BatchError(f"{where} (id {item_id}): response {number} has no '{question}' value")
        else:
            decisions.append(BatchDecision(item_id, reviewer, answer["value"]))
    return item_id, decisions


def read_batch(path: str | Path, label_names: Sequence[str], fmt: Format | None = None,
               default_reviewer: str = "batch", shape: Shape | None = None) -> list[BatchDecision]:
    """Every annotated decision in the file; raises BatchError at the first bad record. `shape` is the task
    kind's (default: a classification batch over `label_names`)."""
    path = Path(path)
    shape = shape or label_shape(label_names)
    records = _records(path)
    fmt = fmt or detect_format(records)
    if fmt is None:
        raise BatchError(f"{path}: neither Label Studio tasks ('data') nor Argilla records ('fields'); give --format")
    parse = _label_studio if fmt == "label-studio" else _argilla
    decisions: list[BatchDecision] = []
    for number, record in enumerate(records, start=1):
        where = f"{path}: record {number}"
        if not isinstance(record, dict):
            raise BatchError(f"{where}: not an object")
        item_id, found = parse(record, where, default_reviewer, shape)
        for d in found:
            problem = None if d.label is None else shape.check(d.label)
            if problem:
                raise BatchError(f"{where} (id {item_id}): {problem}")
        decisions.extend(found)
    return decisions


def import_batch(queue: ReviewQueue, path: str | Path, label_names: Sequence[str], fmt: Format | None = None,
                 default_reviewer: str = "batch", shape: Shape | None = None) -> ImportResult:
    decisions = read_batch(path, label_names, fmt, default_reviewer, shape)
    edit = shape.edit if shape is not None else None
    known = queue.store.items_by_id(sorted({d.item_id for d in decisions}))
    unknown = sorted({d.item_id for d in decisions} - set(known))
    if unknown:
        raise BatchError(f"{path}: unknown item id {unknown[0]!r}"
                         + (f" and {len(unknown) - 1} more" if len(unknown) > 1 else ""))
    result = ImportResult()
    for d in decisions:
        try:
            queue.decide(d.reviewer, d.item_id, d.label, via=f"import:{Path(path).name}", require_lease=False,
                         edit=edit if d.label is not None else None)
        except Conflict as exc:
            result.conflicts.append(str(exc))
            continue
        if d.label is None:
            result.skipped += 1
        else:
            result.decided += 1
    return result
