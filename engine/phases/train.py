"""Train: a fresh student on every label so far, kept as the round's adapter, evaluated, and the
round's metrics committed with the phase change."""
from __future__ import annotations

import time

from ..core.stats import classification_metrics
from ..metrics import round_metrics
from .context import RunContext
from ..students import Student
from ..stopping import stop_set_indices, stop_set_metrics
from ..threshold import routing_metrics


def train_round(ctx: RunContext, round_: int, timings: dict[str, float]) -> None:
    store, config = ctx.store, ctx.config
    labels = store.current_labels()
    student = ctx.models.fresh_student()
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
    store.set_phase(round_, "done", timings, metrics)
    ctx.folder.write_metrics(store.history())
    ctx.log(f"round {round_}: {metrics['labeled_total']} labels (teacher {metrics['labeled_by_teacher']}, "
            f"human {metrics['labeled_by_human']}), eval accuracy {metrics['eval_accuracy']:.3f}, "
            f"macro-F1 {metrics['eval_macro_f1']:.3f}")


def stop_set_round(ctx: RunContext, round_: int, student: Student) -> dict[str, float | None]:
    """Score the fixed stop set; its predictions are kept per round for the next round's kappa."""
    loop = ctx.config.loop
    rows = stop_set_indices(len(ctx.pool), loop.stopping.stop_set_size, loop.seed)
    probs = student.score([row.text for row in ctx.pool.rows_at(rows)], progress=ctx.progress, desc="stop set").probs
    ctx.folder.save_stop_set(round_, probs.argmax(axis=1))
    before = ctx.folder.load_stop_set(round_ - 1)
    if before is not None and len(before) != len(probs):  # stop_set_size changed on resume: a different set
        before = None
    return stop_set_metrics(probs, before)
