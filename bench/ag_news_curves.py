"""Learning curves of entropy against random sampling on AG News, same seed, side by side.

Runs configs/ag_news.yaml (5,000 pool / 2,600 evaluation split of the one file; 20 initial
labels, 8 rounds of 50; local teacher; simulated review from gold) once per strategy, each
in its own process with one thread, then prints eval_accuracy per round and writes JSON.

    .venv/bin/python bench/ag_news_curves.py [--out bench/results/ag_news_curves.json] [--set key=value ...]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--strategies", nargs="+", default=["entropy", "random"])
    parser.add_argument("--runs", default=str(REPO / "runs" / "bench_ag_news"))
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "ag_news_curves.json"))
    parser.add_argument("--set", action="append", default=[])
    args = parser.parse_args()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    processes, started = {}, time.time()
    for name in args.strategies:
        run_dir = Path(args.runs) / name
        command = [sys.executable, "-m", "engine", "run", str(REPO / "configs" / "ag_news.yaml"), "--run-dir",
                   str(run_dir), "--no-progress", "--set", f"strategy.name={name}"]
        for pair in args.set:
            command += ["--set", pair]
        Path(args.runs).mkdir(parents=True, exist_ok=True)
        log = open(Path(args.runs) / f"{name}.log", "w")
        processes[name] = (subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT), run_dir)
    for name, (process, _) in processes.items():
        if process.wait() != 0:
            raise SystemExit(f"{name} failed; see {Path(args.runs) / (name + '.log')}")
    wall = time.time() - started
    curves = {name: [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
              for name, (_, run_dir) in processes.items()}
    names = list(curves)
    print(f"{'round':>5} {'labels':>6} " + " ".join(f"{n:>10}" for n in names))
    for row in zip(*(curves[n] for n in names)):
        print(f"{row[0]['round']:>5} {row[0]['labeled_total']:>6} " + " ".join(f"{m['eval_accuracy']:>10.3f}" for m in row))
    for name in names:
        last = curves[name][-1]
        print(f"{name}: teacher accuracy vs gold {last['teacher_accuracy_vs_gold']:.3f}, "
              f"human share {last['human_share']:.3f}, accepted-label accuracy {last['accepted_accuracy_vs_gold']}")
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"wall {wall:.0f}s (strategies in parallel, one thread each); peak RSS of one run {peak_mb:.0f} MB")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"wall_s": wall, "peak_rss_mb": peak_mb, "overrides": args.set, "curves": curves}, indent=1))


if __name__ == "__main__":
    main()
