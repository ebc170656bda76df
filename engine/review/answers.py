"""Reviewing written answers (task.kind generation) at the terminal, and the diff a person's change makes.

Keys: a / Enter accepts the teacher's answer; e edits it (starting from the teacher's text); r rejects it
and writes a new one (starting empty); s skips; u corrects your previous decision; q quits. Editing uses
$VISUAL or $EDITOR on a temporary file when one is set, else reads lines at the prompt until a line
with a single "." (the last line may be left out of an answer by ending it there).
"""
from __future__ import annotations

import difflib
import os
import shlex
import subprocess
import tempfile
import textwrap
from pathlib import Path
from typing import Callable

from .queue import Conflict, ReviewQueue
from ..store import ReviewRow

Edit = Callable[[str], str | None]  # the starting text -> the person's text (None: cancelled)


def answer_diff(teacher: str | None, person: str | None) -> str:
    """A unified diff from the teacher's answer to the person's, line by line ("" when they are equal)."""
    if teacher == person:
        return ""
    lines = difflib.unified_diff((teacher or "").splitlines(), (person or "").splitlines(), "teacher", "reviewer",
                                 lineterm="", n=2)
    return "\n".join(lines)


def editor_edit(start: str) -> str | None:
    """Edit in $VISUAL / $EDITOR; None when neither is set or the editor failed."""
    editor = os.environ.get("VISUAL") or os.environ.get("EDITOR")
    if not editor:
        return None
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False, encoding="utf-8") as handle:
        handle.write(start)
    try:
        if subprocess.run([*shlex.split(editor), handle.name]).returncode != 0:
            return None
        return Path(handle.name).read_text(encoding="utf-8").strip()
    finally:
        os.unlink(handle.name)


def line_edit(ask: Callable[[str], str], say: Callable[[str], None]) -> Edit:
    """An editor on the prompt: the starting text is shown, the new text read line by line until "."."""
    def edit(start: str) -> str | None:
        if start:
            say("current answer:\n" + start)
        say('type the answer; a line with a single "." ends it (an empty answer cancels)')
        lines = []
        while True:
            try:
                line = ask("| ")
            except EOFError:
                break
            if line.strip() == ".":
                break
            lines.append(line)
        return "\n".join(lines).strip() or None
    return edit


def _show(review: ReviewRow, say: Callable[[str], None]) -> None:
    say(f"instruction: {textwrap.fill(review.text, width=100, subsequent_indent='  ')}")
    if review.input:
        say(f"input: {textwrap.fill(review.input, width=100, subsequent_indent='  ')}")
    if review.gold:
        say(f"reference: {review.gold}")
    confidence = "unknown" if review.teacher_confidence is None else f"{review.teacher_confidence:.2f}"
    say(f"teacher's answer (confidence {confidence}):\n{review.teacher_label or '(none: the teacher failed)'}")
    say(f"why here: {review.reason}")


def _decision(answer: str, review: ReviewRow, edit: Edit, say: Callable[[str], None]) -> tuple[str, str | None] | None:
    """(the answer decided, how it was changed) for a key, None when there is nothing to record."""
    if answer in ("a", "") and review.teacher_label:
        return review.teacher_label, None
    if answer in ("e", "r"):
        text = edit((review.teacher_label or "") if answer == "e" else "")
        if not text:
            say("cancelled")
            return None
        if text != review.teacher_label:
            say(answer_diff(review.teacher_label, text))
        return text, "edit" if answer == "e" else "rewrite"
    return None


def review_answers_in_terminal(queue: ReviewQueue, reviewer: str, ask: Callable[[str], str] = input,
                               say: Callable[[str], None] = print, limit: int | None = None,
                               edit: Edit | None = None) -> dict[str, int]:
    """Accept, edit, rewrite or skip the teacher's answers one by one; returns the counts."""
    prompt_edit = line_edit(ask, say)
    edit_with = edit or (lambda start: editor_edit(start) or prompt_edit(start))
    counts = {"accepted": 0, "edited": 0, "rewritten": 0, "skipped": 0, "revised": 0}
    total, number = queue.store.pending_count(), 0
    while limit is None or number < limit:
        lease = queue.lease(reviewer, max_held=1)
        if lease is None:
            say("nothing to review" if number == 0 else "no more items to review")
            break
        number += 1
        review = lease.item
        say(f"\n--- item {number}/{total}  id={review.item_id}  round {review.round} ---")
        _show(review, say)
        while True:
            try:
                key = ask("a=accept, e=edit, r=rewrite, s=skip, u=undo, q=quit > ").strip().lower()
            except EOFError:
                key = "q"
            if key == "q":
                queue.release(reviewer, review.item_id)
                return counts
            if key == "u":
                counts["revised"] += _revise_previous(queue, reviewer, ask, say, edit_with)
                say(f"back to item {review.item_id}")
                continue
            if key == "s":
                decided, how = None, None
            else:
                chosen = _decision(key, review, edit_with, say)
                if chosen is None:
                    if key not in ("e", "r"):
                        say("?")
                    continue
                decided, how = chosen
            try:
                queue.decide(reviewer, review.item_id, decided, via="terminal", edit=how)
                counts[{None: "accepted", "edit": "edited", "rewrite": "rewritten"}[how] if decided else "skipped"] += 1
            except Conflict as exc:
                say(f"not recorded: {exc}; moving on")
            break
    return counts


def _revise_previous(queue: ReviewQueue, reviewer: str, ask: Callable[[str], str], say: Callable[[str], None],
                     edit: Edit) -> int:
    """Undo = correct your latest decision with a new record; the old one stays in the audit log."""
    previous = queue.previous_decision(reviewer)
    item = None if previous is None else queue.item(previous.item_id)
    if previous is None or item is None:
        say("nothing to undo")
        return 0
    say(f"\n--- correcting item {item.item_id}: your answer was ---\n{previous.label or '(skip)'}")
    diff = answer_diff(item.teacher_label, previous.label) if previous.label else ""
    if diff:
        say(diff)
    key = ask("a=teacher's answer, e=edit yours, r=rewrite, anything else keeps it > ").strip().lower()
    if key == "e":
        text, how = edit(previous.label or item.teacher_label or ""), "edit"
    elif key in ("a", "", "r"):
        chosen = _decision(key, item, edit, say)
        text, how = chosen if chosen is not None else (None, None)
    else:
        text, how = None, None
    if not text:
        say("kept")
        return 0
    try:
        queue.correct(reviewer, item.item_id, text, via="terminal", edit=how if text != item.teacher_label else None)
    except Conflict as exc:
        say(f"not recorded: {exc}")
        return 0
    return 1
