"""Review batches of written answers (task.kind generation) for Label Studio and Argilla: the instruction,
its input and the reference as fields, the teacher's answer as an editable text prediction / suggestion;
what comes back is each person's answer (an edit when it differs from the teacher's)."""
from __future__ import annotations

from typing import Any

from .batch import Format, Shape
from ..store import ReviewRow

QUESTION = "answer"  # Label Studio: the <TextArea name=...>; Argilla: the text question's name
FIELDS = ("instruction", "input", "reference")


def _data(review: ReviewRow) -> dict[str, Any]:
    return {"instruction": review.text, "input": review.input or "", "reference": review.gold or ""}


def _shown(review: ReviewRow) -> dict[str, Any]:
    return {"quarry_id": review.item_id, "round": review.round, "reason": review.reason,
            "teacher_raw": review.teacher_raw or ""}


def label_studio_task(review: ReviewRow) -> dict[str, Any]:
    predictions = []
    if review.teacher_label is not None:
        predictions.append({"model_version": "quarry-teacher", "score": review.teacher_confidence, "result": [
            {"from_name": QUESTION, "to_name": "instruction", "type": "textarea",
             "value": {"text": [review.teacher_label]}}]})
    return {"data": {**_data(review), **_shown(review)}, "predictions": predictions}


def argilla_record(review: ReviewRow) -> dict[str, Any]:
    suggestions = {} if review.teacher_label is None else {QUESTION: {
        "value": review.teacher_label, "score": review.teacher_confidence, "agent": "quarry-teacher"}}
    return {"id": review.item_id, "fields": _data(review), "metadata": {**_shown(review), "signals": review.signals},
            "suggestions": suggestions, "responses": {}, "vectors": {}, "status": "pending"}


def textarea_value(result: dict[str, Any]) -> str | None:
    """A Label Studio TextArea result's text (its lines joined), None when it has none."""
    value = result.get("value")
    texts = value.get("text") if isinstance(value, dict) else None
    if isinstance(texts, str):
        texts = [texts]
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        return None
    return "\n".join(texts).strip() or None


def setup_hint(fmt: Format) -> str:
    if fmt == "label-studio":
        return ('Label Studio labeling config: <View><Header value="Instruction"/><Text name="instruction" '
                'value="$instruction"/><Text name="input" value="$input"/><Header value="Reference"/>'
                f'<Text name="reference" value="$reference"/><TextArea name="{QUESTION}" toName="instruction" '
                'editable="true" maxSubmissions="1" rows="8"/></View>')
    return (f'Argilla settings: rg.Settings(fields=[rg.TextField(name=n) for n in {list(FIELDS)!r}], '
            f'questions=[rg.TextQuestion(name="{QUESTION}")]); log the records with dataset.records.log(records)')


def answer_shape(check: Any) -> Shape:
    """The generation batch; `check` is the kind's test of an answer (engine/tasks/generation.py)."""
    return Shape(QUESTION, label_studio_task, argilla_record, textarea_value, check, setup_hint, edit="edit")
