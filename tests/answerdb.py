"""Small hand-made run databases of a generation task (written answers) for the review and export tests,
built with the real Store API (no model needed)."""
from __future__ import annotations

import json
from pathlib import Path

from quarry_al.engine.store import Store

# (instruction, input, reference, the teacher's answer)
ITEMS = [
    ("What is the capital of France?", "", "Paris", "The capital of France is Paris."),
    ("Reverse the letters of the given word.", "harbor", "robrah", "robhar"),
    ("Convert 2 hours to minutes.", "", "120 minutes", "120 minutes"),
    ("What is 7 + 5?", "", "12", "13"),
    ("Uppercase the given word.", "lemon", "LEMON", "Lemon"),
    ("Name the largest planet.", "", "Jupiter", "<b>Saturn</b><script>document.title='pwned'</script>"),
    ("What is the capital of Peru?", "", "Lima", "Lima"),
    ("How many letters does the given word have?", "kitten", "6", "six"),
]
CONFIG = {"name": "answers-test", "task": {"kind": "generation", "system_prompt": "Answer briefly.",
                                           "check": {"kind": "contains"}},
          "data": {"pool": "pool.jsonl", "eval": "eval.jsonl"}, "review": {"mode": "queue"},
          "routing": {"confidence_threshold": 0.8}}


def signals(n: int) -> dict[str, float]:
    """The signals of item n; its confidence is its judge's, (grade - 1) / 4 = (n % 5) / 4."""
    return {"judge": 1.0 + n % 5, "student_nll": 0.2 * n, "length": float(len(ITEMS[n][3].split()))}


def make_answer_db(path: Path, accepted: int = 2) -> Path:
    """A generation run: the first `accepted` items' answers accepted by routing, the rest pending review."""
    with Store(path) as store:
        store.initialize(json.dumps(CONFIG), [(f"a{n}", instr, ref) for n, (instr, _, ref, _) in enumerate(ITEMS)], [],
                         inputs={f"a{n}": inp for n, (_, inp, _, _) in enumerate(ITEMS)})
        store.create_round(0, "random", [(f"a{n}", None, None, None) for n in range(len(ITEMS))], {})
        store.commit_routing(
            0, accepted=[(f"a{n}", ITEMS[n][3], 0.9, "teacher confidence 0.90 >= 0.80") for n in range(accepted)],
            to_review=[{"item_id": f"a{n}", "reason": "teacher confidence 0.50 < 0.80", "teacher_label": ITEMS[n][3],
                        "teacher_confidence": (n % 5) / 4, "teacher_raw": ITEMS[n][3], "student_label": None,
                        "student_confidence": None, "signals": signals(n)} for n in range(accepted, len(ITEMS))],
            timings={})
    return path
