"""Label: the teacher answers every selected item (failed calls are asked again), then routing
accepts what it may and queues the rest for people; calls are committed one by one as they
arrive, the routing outcome and the phase change together."""
from __future__ import annotations

import time

from .context import RunContext
from ..routing import Router, StudentPrediction
from ..teacher import TeacherResult
from ..teacher.base import TRANSIENT_ERRORS
from ..teacher.breaker import label_or_stop
from ..threshold import routing_for_round


def label_round(ctx: RunContext, round_: int, timings: dict[str, float]) -> None:
    """Ask the teacher about every selected item without a usable recorded answer, then route all of them."""
    started = time.perf_counter()
    ask_teacher(ctx, round_)
    timings["labeling_s"] = timings.get("labeling_s", 0.0) + time.perf_counter() - started
    route(ctx, round_, timings)


def ask_teacher(ctx: RunContext, round_: int) -> None:
    """Items without a call, or whose latest call failed in transport (on resume too), are asked; those
    failing again get `teacher.failed_passes` more passes, then go to a human like any failure. A teacher
    that stops answering altogether stops the round here (engine/teacher/breaker.py), before routing."""
    store = ctx.store
    selection = store.selection(round_)
    for attempt in range(1 + ctx.config.teacher.failed_passes):
        done = store.latest_teacher_calls(round_)
        todo = [row for row in selection if row.item_id not in done or done[row.item_id].error in TRANSIENT_ERRORS]
        if not todo:
            return
        if attempt:
            ctx.log(f"round {round_}: asking the teacher again about {len(todo)} items whose calls failed")
        teacher = ctx.models.get_teacher()

        def record(position: int, result: TeacherResult) -> None:
            store.record_teacher_call(todo[position].item_id, round_, teacher.model_id, result)

        label_or_stop(teacher, ctx.kind.teacher_items(ctx, round_, todo), record, ctx.config.teacher, ctx.config.task)


def route(ctx: RunContext, round_: int, timings: dict[str, float]) -> None:
    """Accept or queue every item of the round by its latest call; committed with the phase change."""
    store = ctx.store
    done = store.latest_teacher_calls(round_)
    routing = routing_for_round(store, ctx.config.routing, round_)
    target = ctx.config.routing.target_precision
    if routing.calibration is not None:
        blind = "" if routing.config.audit_rate > 0 else " (audit_rate is 0: labels above the threshold are unchecked)"
        threshold = routing.config.confidence_threshold
        chosen = (f"{threshold:.3f}" if threshold <= 1 else
                  f"none (no threshold shows precision >= {target:g} yet: all to review)")
        ctx.log(f"round {round_}: calibrated threshold {chosen} from {routing.calibration.reviewed} reviewed items{blind}")
    elif target is not None:
        ctx.log(f"round {round_}: all to review until {ctx.config.routing.min_reviewed} reviewed teacher labels "
                f"can show precision >= {target:g} (routing.target_precision)")
    router = Router(routing.config)
    accepted, to_review = [], []
    rows = store.selection(round_)
    for item in ctx.kind.routable(ctx, round_, rows, [done[row.item_id].result for row in rows]):
        row, result = item.row, item.result
        student = None if row.student_label is None else StudentPrediction(row.student_label, row.student_confidence)
        decision = router.route(result, student, row.item_id)
        if decision.route == "accept":
            accepted.append((row.item_id, result.answer, result.confidence, decision.reason))
        else:
            to_review.append({"item_id": row.item_id, "reason": decision.reason, "teacher_label": result.answer,
                              "teacher_confidence": result.confidence, "teacher_raw": result.raw,
                              "student_label": row.student_label, "student_confidence": row.student_confidence,
                              "signals": item.signals})
    store.commit_routing(round_, accepted, to_review, timings)
    ctx.log(f"round {round_}: teacher accepted {len(accepted)}, sent {len(to_review)} to review")
