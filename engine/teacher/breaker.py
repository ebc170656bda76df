"""A circuit breaker around a labeling pass: a dead teacher server stops the round instead of filling the
review queue with items nobody could label.

Failures in transport (timeout, connection, server, rate_limit, bad_response: after the transport's own
retries) are counted as results arrive. When `teacher.stop_after_failures` fresh calls in a row failed so,
or every fresh call of a pass failed so, the teacher's preflight is run again as a probe: if it fails too,
the server is gone and `TeacherUnavailable` stops the round (its calls so far are recorded, nothing is
routed, `quarry run` resumes once the server is back); if it passes, the failures belong to those items,
the count starts again, and they take the usual path (asked again, then a person).
"""
from __future__ import annotations

from typing import Callable, Sequence

from ..core.errors import TeacherUnavailable
from ..task import TaskConfig
from .base import TRANSIENT_ERRORS, OnResult, Teacher, TeacherItem, TeacherResult
from .options import TeacherOptions
from .preflight import preflight_teacher
from .registry import spec_for

_KEPT = ("the round stopped before routing; the calls made so far are kept, and `quarry run` asks the rest "
         "once the server is back")


class _Streak:
    """Fresh calls failed in transport in a row, and what to do when there are too many."""

    def __init__(self, limit: int, probe: Callable[[], object] | None):
        self.limit, self.probe, self.count = limit, probe, 0

    def check(self, last: TeacherResult, how: str) -> None:
        """Probe the teacher: raise when it is down too, else start counting again."""
        cause = f"{how} ({last.error}: {last.error_message})"
        if self.probe is None:  # a kind without a preflight: failures in a row are all we know
            raise TeacherUnavailable(f"teacher unavailable: {cause}; {_KEPT}")
        try:
            self.probe()
        except TeacherUnavailable as down:
            raise TeacherUnavailable(f"{down}; {cause}; {_KEPT}") from None
        self.count = 0


def label_or_stop(teacher: Teacher, items: Sequence[TeacherItem], on_result: OnResult, options: TeacherOptions,
                  task: TaskConfig) -> list[TeacherResult]:
    """`teacher.label(items, on_result)`, stopped with TeacherUnavailable when the server is gone (see the
    module docstring). Each result reaches `on_result` (the store) before it is counted, so the call that
    trips the breaker is recorded too."""
    has_probe = spec_for(options.kind).preflight is not None
    streak = _Streak(options.stop_after_failures, (lambda: preflight_teacher(options, task)) if has_probe else None)

    def watch(position: int, result: TeacherResult) -> None:
        on_result(position, result)
        if result.cached:
            return
        streak.count = streak.count + 1 if result.error in TRANSIENT_ERRORS else 0
        if streak.count >= streak.limit:
            streak.check(result, f"{streak.count} teacher calls in a row failed")

    results = teacher.label(items, on_result=watch)
    fresh = [r for r in results if not r.cached]
    if fresh and streak.count and all(r.error in TRANSIENT_ERRORS for r in fresh):
        streak.check(fresh[-1], f"all {len(fresh)} teacher calls of the pass failed")
    return results
