"""The shipped instruction set (configs/instructions_data): reproducible from tests/instruction_data.py,
readable as references, pool and eval disjoint, and every answer right, recomputed here from the question."""
from __future__ import annotations

import operator
import re

from instruction_data import FOLDER, build, render

from quarry_al.engine.instructions import read_instruction_records

FACTORS = {("kilometres", "metres"): 1000, ("kilograms", "grams"): 1000, ("hours", "minutes"): 60,
           ("minutes", "seconds"): 60, ("metres", "centimetres"): 100, ("litres", "millilitres"): 1000,
           ("days", "hours"): 24, ("feet", "inches"): 12, ("weeks", "days"): 7}


def expected_answer(instruction: str, given: str) -> str | None:
    """The answer worked out from the question alone; None for capitals (facts, not arithmetic)."""
    if match := re.fullmatch(r"(?:What is|Calculate) (-?\d+) ([-+*]) (-?\d+)[?.].*", instruction):
        a, op, b = match.groups()
        return str({"+": operator.add, "-": operator.sub, "*": operator.mul}[op](int(a), int(b)))
    if match := re.fullmatch(r"Convert (-?\d+) degrees Celsius to Fahrenheit\.", instruction):
        return f"{int(match.group(1)) * 9 // 5 + 32} degrees Fahrenheit"
    if match := (re.fullmatch(r"Convert (\d+) (\w+) to (\w+)\.", instruction)
                 or re.fullmatch(r"How many (\w+) are in (\d+) (\w+)\?", instruction)):
        amount, source, target = (match.groups() if instruction.startswith("Convert")
                                  else (match.group(2), match.group(3), match.group(1)))
        return f"{int(amount) * FACTORS[(source, target)]} {target}"
    edits = {"Reverse the letters of the given word.": given[::-1], "Write the given word in upper case.": given.upper(),
             "How many letters does the given word have?": str(len(given)),
             "What is the first letter of the given word?": given[:1]}
    return edits.get(instruction)


def test_files_are_what_the_script_writes():
    pool, evaluation = build()
    assert (FOLDER / "pool.jsonl").read_text(encoding="utf-8") == render(pool)
    assert (FOLDER / "eval.jsonl").read_text(encoding="utf-8") == render(evaluation)


def test_readable_as_references_and_disjoint():
    pool = read_instruction_records(str(FOLDER / "pool.jsonl"), require_output=True)
    evaluation = read_instruction_records(str(FOLDER / "eval.jsonl"), require_output=True)
    assert len(pool) == 160 and len(evaluation) == 40
    assert not {(r.instruction, r.input) for r in pool} & {(r.instruction, r.input) for r in evaluation}


def test_every_answer_is_right():
    checked = 0
    for name in ("pool.jsonl", "eval.jsonl"):
        for record in read_instruction_records(str(FOLDER / name), require_output=True):
            answer = expected_answer(record.instruction, record.input)
            if answer is None:
                assert re.fullmatch(r"(What is the capital of|Name the capital city of) [\w ]+[?.]", record.instruction)
                continue
            assert record.output == answer, record
            checked += 1
    assert checked > 120  # everything but the capitals
