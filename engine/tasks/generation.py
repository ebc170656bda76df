"""Generation (instruction -> answer data): each pool item is an instruction with its input and, where the
file has one, an `output` (a reference answer, or a candidate answer to be filtered); the teacher writes
the answer (engine/teacher/*_writer.py), the student is a causal LM with LoRA trained on the answers
(engine/students/causal.py), people accept, edit or rewrite what the teacher wrote.

- confidence: the signal `routing.signal` names, out of every signal measured (engine/tasks/signals.py):
  the teacher's own (judge, self_consistency), the student's NLL of the answer, its length;
- "correct", for routing calibration and AUROC: the person accepted the teacher's answer unedited;
- simulated review: accept the teacher's answer when it passes `task.check` against the reference,
  else rewrite it as the reference (engine/tasks/checks.py);
- evaluation: `eval_nll`, the student's mean response-token NLL on the eval references (lower is better).
"""
from __future__ import annotations

import time
from dataclasses import replace
from typing import Any, Iterator, Sequence

import numpy as np

from ..config import DataConfig, JobConfig
from ..data import JobData, Record, load_job_data
from ..instructions import iter_instruction_records
from ..metrics import generation_round_metrics, share
from ..store import LabelRow, ReviewRow, SelectionRow, Store
from ..students import CausalStudent, Pair
from ..teacher import TeacherItem, TeacherResult
from ..teacher.answers import user_turn
from ..threshold import routing_metrics
from .base import Routable, SimulatedDecision, Turns
from .checks import AnswerCheck
from .generation_scores import generation_scores
from .signals import confidence, words
from ...strategies import QueryStrategy, Scores

MAX_ANSWER_CHARS = 20_000  # a person's answer: longer is a paste gone wrong, not an answer


def read_instructions(data: DataConfig, source: str, require_label: bool, skipped: list[str]) -> Iterator[Record]:
    """A generation job's rows: instruction (data.text_field), input (data.input_field) and, where given, the
    reference (data.label_field), as the records every job's data handling works with."""
    rows = iter_instruction_records(source, id_field=data.id_field, instruction_field=data.text_field,
                                    input_field=data.input_field, output_field=data.label_field,
                                    require_output=require_label, on_bad_row=data.on_bad_row, skipped=skipped)
    return (Record(r.item_id, r.instruction, r.output, r.where, r.input) for r in rows)


def _pair(text: str, input_text: str | None, output: str | None) -> Pair:
    return Pair(text, input_text or "", output)


class GenerationTask:
    name = "generation"

    # --- data ----------------------------------------------------------------------------
    def load_data(self, config: JobConfig) -> JobData:
        return load_job_data(config.data, [], read=read_instructions)

    def plan_texts(self, data: JobData) -> list[str]:
        return [user_turn(r.text, r.input or "") for r in data.pool]

    # --- the loop ------------------------------------------------------------------------
    def new_student(self, config: JobConfig) -> Any:
        return CausalStudent(config.student)

    def pool_scores(self, ctx: Any, round_: int, strategy: QueryStrategy) -> Scores:
        return generation_scores(ctx, round_, strategy)

    def predictions(self, ctx: Any, round_: int, scores: Scores,
                    rows: Sequence[int]) -> list[tuple[str | None, float | None]]:
        return [(None, None)] * len(rows)  # no label to predict: the student's view of an answer is its NLL

    def label_indices(self, ctx: Any) -> np.ndarray:
        """0 (the one column of a generation task's probs) where an item has its answer, -1 where not yet."""
        decided = {row.item_id for row in ctx.store.current_labels()}
        return np.array([0 if item_id in decided else -1 for item_id in ctx.pool_ids], dtype=np.int64)

    def teacher_items(self, ctx: Any, round_: int, rows: Sequence[SelectionRow]) -> list[TeacherItem]:
        return [TeacherItem(row.item_id, row.text, input=row.input or "") for row in rows]

    def routable(self, ctx: Any, round_: int, rows: Sequence[SelectionRow],
                 results: Sequence[TeacherResult]) -> list[Routable]:
        """Every answer's signals (the teacher's, the student's NLL of it, its length) and, as its confidence,
        the one `routing.signal` names; an answer without that signal gets none (and goes to a person)."""
        answered = [i for i, r in enumerate(results) if r.ok]
        nll = np.zeros(0)
        if answered:
            student = ctx.models.student_for(round_)
            nll = student.response_nll([_pair(rows[i].text, rows[i].input, results[i].text) for i in answered])
        signal, routable = ctx.config.routing.signal, []
        student_nll = dict(zip(answered, nll.tolist()))
        for i, (row, result) in enumerate(zip(rows, results)):
            if i not in student_nll:
                routable.append(Routable(row, result, None))
                continue
            signals = {**(result.signals or {}), "student_nll": student_nll[i], "length": float(words(result.text or ""))}
            value = signals.get(signal)
            routed = replace(result, confidence=None if value is None else confidence(signal, value))
            routable.append(Routable(row, routed, signals))
        return routable

    def simulated_decisions(self, config: JobConfig, reviews: Sequence[ReviewRow]) -> list[SimulatedDecision]:
        check = AnswerCheck(config.task.check)
        answered = [r for r in reviews if r.teacher_label is not None]
        passed = dict(zip([r.item_id for r in answered],
                          check.passes([r.teacher_label for r in answered], [r.gold for r in answered])))
        return [SimulatedDecision(r.teacher_label) if passed.get(r.item_id) else SimulatedDecision(r.gold, "rewrite")
                for r in reviews]

    def train_and_evaluate(self, ctx: Any, round_: int, student: Any, labels: Sequence[LabelRow],
                           timings: dict[str, float]) -> dict[str, Any]:
        store, config = ctx.store, ctx.config
        started = time.perf_counter()
        stats = student.fit([_pair(r.text, r.input, r.label) for r in labels], seed=config.student.seed + round_,
                            progress=ctx.progress)
        ctx.folder.save_adapter(round_, student.save)
        timings["training_s"] = time.perf_counter() - started
        started = time.perf_counter()
        references = [_pair(r.text, r.input, r.label) for r in ctx.eval_records]
        eval_nll = float(np.mean(student.response_nll(references, progress=ctx.progress)))
        timings["evaluating_s"] = time.perf_counter() - started
        metrics = generation_round_metrics(store, round_, eval_nll, timings)
        metrics.update(teacher_pass_rates(store, AnswerCheck(config.task.check)))
        metrics.update(train_steps=stats.steps, train_loss=stats.final_loss, **routing_metrics(store, round_))
        return metrics

    def summary(self, metrics: dict[str, Any]) -> str:
        return f"eval NLL {metrics['eval_nll']:.3f}"

    # --- review, export ----------------------------------------------------------------------
    def check_answer(self, config: JobConfig, answer: Any) -> str | None:
        if not isinstance(answer, str) or not answer.strip():
            return "an answer must be a non-empty string"
        if len(answer) > MAX_ANSWER_CHARS:
            return f"an answer may have at most {MAX_ANSWER_CHARS} characters, this one has {len(answer)}"
        return None

    def turns(self, config: JobConfig, row: LabelRow) -> Turns:
        return Turns(system=config.task.system_prompt, instruction=row.text, input=row.input or "",
                     user=user_turn(row.text, row.input or ""), answer=row.label)

    def flat_record(self, row: LabelRow) -> dict[str, Any]:
        return {"instruction": row.text, "input": row.input or "", "output": row.label}


def teacher_pass_rates(store: Store, check: AnswerCheck) -> dict[str, float | None]:
    """Where references are known: the share of the teacher's answers that pass the task's check
    (`teacher_pass_rate`), and of those routing accepted without a person (`accepted_pass_rate`)."""
    gold = {item.item_id: item.gold for item in store.pool_items() if item.gold}
    calls = [c for c in store.latest_teacher_calls().values() if c.result.ok and c.item_id in gold]
    accepted = {r.item_id for r in store.current_labels() if r.source == "teacher"}
    passed = check.passes([c.result.text or "" for c in calls], [gold[c.item_id] for c in calls])
    kept = [p for c, p in zip(calls, passed) if c.item_id in accepted]
    return {"teacher_pass_rate": share(sum(passed), len(passed)), "accepted_pass_rate": share(sum(kept), len(kept))}
