"""The shipped instruction set, configs/instructions_data/{pool,eval}.jsonl: small tasks with checkable
answers (unit conversions, arithmetic, word edits, capitals), written by this script, deterministically.

    python tests/instruction_data.py      # rewrites both files; tests/test_instruction_data.py checks them
"""
from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Callable

FOLDER = Path(__file__).resolve().parents[1] / "configs" / "instructions_data"
SEED, POOL_SIZE, EVAL_SIZE = 2024, 160, 40

# (unit, to unit, factor): every answer is an integer.
CONVERSIONS = [("kilometres", "metres", 1000), ("kilograms", "grams", 1000), ("hours", "minutes", 60),
               ("minutes", "seconds", 60), ("metres", "centimetres", 100), ("litres", "millilitres", 1000),
               ("days", "hours", 24), ("feet", "inches", 12), ("weeks", "days", 7)]
CAPITALS = {
    "France": "Paris", "Germany": "Berlin", "Italy": "Rome", "Spain": "Madrid", "Portugal": "Lisbon",
    "Japan": "Tokyo", "China": "Beijing", "India": "New Delhi", "Egypt": "Cairo", "Kenya": "Nairobi",
    "Canada": "Ottawa", "Mexico": "Mexico City", "Argentina": "Buenos Aires", "Peru": "Lima", "Chile": "Santiago",
    "Australia": "Canberra", "New Zealand": "Wellington", "Russia": "Moscow", "Norway": "Oslo",
    "Sweden": "Stockholm", "Finland": "Helsinki", "Denmark": "Copenhagen", "Poland": "Warsaw", "Greece": "Athens",
    "Ireland": "Dublin", "Austria": "Vienna", "Hungary": "Budapest", "Belgium": "Brussels", "Switzerland": "Bern",
    "Turkey": "Ankara", "Iran": "Tehran", "Thailand": "Bangkok", "Vietnam": "Hanoi", "South Korea": "Seoul",
    "Nigeria": "Abuja", "Ghana": "Accra", "Morocco": "Rabat", "Cuba": "Havana", "the Philippines": "Manila",
    "Pakistan": "Islamabad", "Saudi Arabia": "Riyadh", "Iceland": "Reykjavik", "Romania": "Bucharest",
    "Bulgaria": "Sofia", "Serbia": "Belgrade", "Croatia": "Zagreb", "Ethiopia": "Addis Ababa",
    "the United Kingdom": "London", "the Czech Republic": "Prague", "Ukraine": "Kyiv",
}
WORDS = ["apple", "river", "garden", "pencil", "window", "rocket", "silver", "planet", "basket", "candle", "forest",
         "guitar", "harbor", "island", "jacket", "kitten", "lemon", "marble", "needle", "orange", "pepper", "quartz",
         "rabbit", "saddle", "tunnel", "violet", "wallet", "yellow", "zipper", "bridge", "castle", "dragon", "engine",
         "flower", "ladder", "mirror", "puzzle", "spider", "turtle", "wizard"]


def conversion(rng: random.Random) -> dict:
    source, target, factor = rng.choice(CONVERSIONS)
    amount = rng.randint(2, 40)
    phrasing = rng.choice(["Convert {a} {s} to {t}.", "How many {t} are in {a} {s}?"])
    return {"task": "conversion", "instruction": phrasing.format(a=amount, s=source, t=target), "input": "",
            "output": f"{amount * factor} {target}"}


def temperature(rng: random.Random) -> dict:
    celsius = 5 * rng.randint(-20, 40)  # multiples of 5: a whole number of degrees Fahrenheit
    return {"task": "temperature", "instruction": f"Convert {celsius} degrees Celsius to Fahrenheit.", "input": "",
            "output": f"{celsius * 9 // 5 + 32} degrees Fahrenheit"}


def arithmetic(rng: random.Random) -> dict:
    op = rng.choice("+-*")
    a, b = (rng.randint(10, 99), rng.randint(10, 99)) if op != "*" else (rng.randint(2, 19), rng.randint(2, 12))
    value = {"+": a + b, "-": a - b, "*": a * b}[op]
    phrasing = rng.choice(["What is {a} {op} {b}?", "Calculate {a} {op} {b}. Answer with the number only."])
    return {"task": "arithmetic", "instruction": phrasing.format(a=a, op=op, b=b), "input": "", "output": str(value)}


def word_edit(rng: random.Random) -> dict:
    word = rng.choice(WORDS)
    kind = rng.choice(["reverse", "upper", "count", "first"])
    instruction, output = {
        "reverse": ("Reverse the letters of the given word.", word[::-1]),
        "upper": ("Write the given word in upper case.", word.upper()),
        "count": ("How many letters does the given word have?", str(len(word))),
        "first": ("What is the first letter of the given word?", word[0]),
    }[kind]
    return {"task": f"word_{kind}", "instruction": instruction, "input": word, "output": output}


def capital(rng: random.Random) -> dict:
    country = rng.choice(sorted(CAPITALS))
    phrasing = rng.choice(["What is the capital of {c}?", "Name the capital city of {c}."])
    return {"task": "capital", "instruction": phrasing.format(c=country), "input": "", "output": CAPITALS[country]}


MAKERS: list[Callable[[random.Random], dict]] = [conversion, temperature, arithmetic, word_edit, capital]


def build() -> tuple[list[dict], list[dict]]:
    """Unique (instruction, input) items, the task kinds taken in turn, then shuffled and split."""
    rng = random.Random(SEED)
    items, seen = [], set()
    while len(items) < POOL_SIZE + EVAL_SIZE:
        item = MAKERS[len(items) % len(MAKERS)](rng)
        key = (item["instruction"], item["input"])
        if key not in seen:
            seen.add(key)
            items.append(item)
    rng.shuffle(items)
    evaluation, pool = items[:EVAL_SIZE], items[EVAL_SIZE:]
    return ([{"id": f"pool-{i:03d}", **item} for i, item in enumerate(pool)],
            [{"id": f"eval-{i:03d}", **item} for i, item in enumerate(evaluation)])


def render(rows: list[dict]) -> str:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def main() -> None:
    pool, evaluation = build()
    FOLDER.mkdir(parents=True, exist_ok=True)
    (FOLDER / "pool.jsonl").write_text(render(pool), encoding="utf-8")
    (FOLDER / "eval.jsonl").write_text(render(evaluation), encoding="utf-8")
    print(f"{len(pool)} pool and {len(evaluation)} eval rows in {FOLDER}")


if __name__ == "__main__":
    main()
