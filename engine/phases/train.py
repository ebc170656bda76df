"""Train: a fresh student on every label so far, kept as the round's adapter, evaluated (by the task
kind), and the round's metrics committed with the phase change."""
from __future__ import annotations

from .context import RunContext


def train_round(ctx: RunContext, round_: int, timings: dict[str, float]) -> None:
    store = ctx.store
    metrics = ctx.kind.train_and_evaluate(ctx, round_, ctx.models.fresh_student(), store.current_labels(), timings)
    store.set_phase(round_, "done", timings, metrics)
    ctx.folder.write_metrics(store.history())
    ctx.log(f"round {round_}: {metrics['labeled_total']} labels (teacher {metrics['labeled_by_teacher']}, "
            f"human {metrics['labeled_by_human']}), {ctx.kind.summary(metrics)}")
