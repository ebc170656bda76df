"""`quarry review`: decide pending items one by one at the terminal, leased from the shared queue."""
from __future__ import annotations

import textwrap
from typing import Callable, Sequence

from .queue import Conflict, ReviewQueue


def _fmt(confidence: float | None) -> str:
    return "unknown" if confidence is None else f"{confidence:.2f}"


def review_in_terminal(queue: ReviewQueue, label_names: Sequence[str], reviewer: str,
                       ask: Callable[[str], str] = input, say: Callable[[str], None] = print,
                       limit: int | None = None) -> dict[str, int]:
    """Accept the teacher's label (a / Enter), pick another by number, skip (s), undo (u), or quit (q)."""
    counts = {"accepted": 0, "corrected": 0, "skipped": 0, "revised": 0}
    total = queue.store.pending_count()
    menu = "  ".join(f"[{i}] {name}" for i, name in enumerate(label_names, start=1))
    number = 0
    while limit is None or number < limit:
        lease = queue.lease(reviewer, max_held=1)
        if lease is None:
            say("nothing to review" if number == 0 else "no more items to review")
            break
        number += 1
        review = lease.item
        say(f"\n--- item {number}/{total}  id={review.item_id}  round {review.round} ---")
        say(textwrap.fill(review.text, width=100))
        say(f"teacher: {review.teacher_label or '(none)'} (confidence {_fmt(review.teacher_confidence)})   "
            f"student: {review.student_label or '(none)'} (confidence {_fmt(review.student_confidence)})")
        say(f"why here: {review.reason}")
        say(menu)
        while True:
            try:
                answer = ask("a=accept teacher, 1-9=label, s=skip, u=undo, q=quit > ").strip().lower()
            except EOFError:
                answer = "q"
            if answer == "q":
                queue.release(reviewer, review.item_id)
                return counts
            if answer == "u":
                if _revise_previous(queue, label_names, reviewer, ask, say):
                    counts["revised"] += 1
                say(f"back to item {review.item_id}")
                continue
            if answer in ("a", "") and review.teacher_label:
                label, kind = review.teacher_label, "accepted"
            elif answer.isdigit() and 1 <= int(answer) <= len(label_names):
                label = label_names[int(answer) - 1]
                kind = "accepted" if label == review.teacher_label else "corrected"
            elif answer == "s":
                label, kind = None, "skipped"
            else:
                say("?")
                continue
            try:
                queue.decide(reviewer, review.item_id, label, via="terminal")
                counts[kind] += 1
            except Conflict as exc:
                say(f"not recorded: {exc}; moving on")
            break
    return counts


def _revise_previous(queue: ReviewQueue, label_names: Sequence[str], reviewer: str,
                     ask: Callable[[str], str], say: Callable[[str], None]) -> bool:
    """Undo = correct your latest decision with a new record; the old one stays in the audit log."""
    previous = queue.previous_decision(reviewer)
    item = None if previous is None else queue.item(previous.item_id)
    if previous is None or item is None:
        say("nothing to undo")
        return False
    say(f"\n--- correcting item {item.item_id}: you chose {previous.label or '(skip)'} ---")
    say(textwrap.fill(item.text, width=100))
    answer = ask("new label: a=teacher's, 1-9=label, anything else keeps it > ").strip().lower()
    if answer in ("a", "") and item.teacher_label:
        label = item.teacher_label
    elif answer.isdigit() and 1 <= int(answer) <= len(label_names):
        label = label_names[int(answer) - 1]
    else:
        say("kept")
        return False
    try:
        queue.correct(reviewer, item.item_id, label, via="terminal")
    except Conflict as exc:
        say(f"not recorded: {exc}")
        return False
    return True
