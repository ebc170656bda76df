"""Classification: the teacher picks one of the task's labels; the student is a classifier (an encoder with
a head, or a causal LM scoring each label as its answer); evaluation is accuracy and macro-F1.

Round 0's scores: an encoder's fresh head knows nothing, so they are uniform; a causal LM student
(`student.kind: causal`) already has opinions, so its label probabilities are real ones from round 0.
"""
from __future__ import annotations

import time
from typing import Any, Sequence

import numpy as np

from ..config import JobConfig
from ..core.stats import classification_metrics
from ..data import JobData, load_job_data
from ..examples import with_examples
from ..metrics import round_metrics
from ..stopping import stop_set_indices, stop_set_metrics
from ..store import LabelRow, ReviewRow, SelectionRow
from ..students import CausalClassifier, Student
from ..teacher import TeacherItem, TeacherResult
from ..threshold import routing_metrics
from .base import Routable, SimulatedDecision, Turns
from .classification_scores import classification_scores, decided_label_indices
from ...strategies import QueryStrategy, Scores


class ClassificationTask:
    name = "classification"

    # --- data ----------------------------------------------------------------------------
    def load_data(self, config: JobConfig) -> JobData:
        return load_job_data(config.data, config.task.label_names)

    def plan_texts(self, data: JobData) -> list[str]:
        return [r.text for r in data.pool]

    # --- the loop ------------------------------------------------------------------------
    def new_student(self, config: JobConfig) -> Any:
        if config.student.kind == "causal":
            return CausalClassifier(config.student, config.task.label_names)
        return Student(config.student, config.task.label_names)

    def pool_scores(self, ctx: Any, round_: int, strategy: QueryStrategy) -> Scores:
        return classification_scores(ctx, round_, strategy)

    def predictions(self, ctx: Any, round_: int, scores: Scores,
                    rows: Sequence[int]) -> list[tuple[str | None, float | None]]:
        """The student's label and its probability; none in round 0 unless the student is a causal LM."""
        if round_ == 0 and ctx.config.student.kind != "causal":
            return [(None, None)] * len(rows)
        predicted = scores.probs.argmax(axis=1)
        return [(ctx.labels[predicted[i]], float(scores.probs[i, predicted[i]])) for i in rows]

    def label_indices(self, ctx: Any) -> np.ndarray:
        return decided_label_indices(ctx)

    def teacher_items(self, ctx: Any, round_: int, rows: Sequence[SelectionRow]) -> list[TeacherItem]:
        """The round's items, with few-shot examples when the config asks for them."""

        def embed(texts: list[str]) -> np.ndarray:
            return ctx.models.trained_student(round_).score(texts, progress=False).embeddings

        items = [TeacherItem(row.item_id, row.text) for row in rows]
        return with_examples(ctx.config.teacher.few_shot, items, ctx.store.current_labels(), ctx.labels,
                             ctx.folder.load_pool_embeddings(round_), ctx.pool_texts, embed if round_ > 0 else None)

    def routable(self, ctx: Any, round_: int, rows: Sequence[SelectionRow],
                 results: Sequence[TeacherResult]) -> list[Routable]:
        return [Routable(row, result) for row, result in zip(rows, results)]

    def simulated_decisions(self, config: JobConfig, reviews: Sequence[ReviewRow]) -> list[SimulatedDecision]:
        return [SimulatedDecision(review.gold) for review in reviews]

    def train_and_evaluate(self, ctx: Any, round_: int, student: Any, labels: Sequence[LabelRow],
                           timings: dict[str, float]) -> dict[str, Any]:
        store, config = ctx.store, ctx.config
        started = time.perf_counter()
        stats = student.fit([r.text for r in labels], [r.label for r in labels], seed=config.student.seed + round_,
                            progress=ctx.progress)
        ctx.folder.save_adapter(round_, student.save)
        timings["training_s"] = time.perf_counter() - started
        started = time.perf_counter()
        predicted = student.predict([r.text for r in ctx.eval_records], progress=ctx.progress)
        evaluation = classification_metrics([r.label for r in ctx.eval_records], predicted, ctx.labels)
        timings["evaluating_s"] = time.perf_counter() - started
        metrics = round_metrics(store, round_, evaluation, timings)
        metrics.update(train_steps=stats.steps, train_loss=stats.final_loss, **routing_metrics(store, round_))
        if config.loop.stopping.uses_stop_set:
            metrics.update(stop_set_round(ctx, round_, student))
        return metrics

    def summary(self, metrics: dict[str, Any]) -> str:
        """The round's line in the log, after its label counts."""
        return f"eval accuracy {metrics['eval_accuracy']:.3f}, macro-F1 {metrics['eval_macro_f1']:.3f}"

    # --- review, export ----------------------------------------------------------------------
    def check_answer(self, config: JobConfig, answer: Any) -> str | None:
        labels = config.task.label_names
        return None if answer in labels else f"label {answer!r} is not one of {labels}"

    def turns(self, config: JobConfig, row: LabelRow) -> Turns:
        instruction = config.task.instruction
        return Turns(system=instruction, instruction=instruction, input=row.text, user=row.text, answer=row.label)

    def flat_record(self, row: LabelRow) -> dict[str, Any]:
        return {"text": row.text, "label": row.label}


def stop_set_round(ctx: Any, round_: int, student: Any) -> dict[str, float | None]:
    """Score the fixed stop set; its predictions are kept per round for the next round's kappa."""
    loop = ctx.config.loop
    rows = stop_set_indices(len(ctx.pool), loop.stopping.stop_set_size, loop.seed)
    probs = student.score([row.text for row in ctx.pool.rows_at(rows)], progress=ctx.progress, desc="stop set").probs
    ctx.folder.save_stop_set(round_, probs.argmax(axis=1))
    before = ctx.folder.load_stop_set(round_ - 1)
    if before is not None and len(before) != len(probs):  # stop_set_size changed on resume: a different set
        before = None
    return stop_set_metrics(probs, before)
