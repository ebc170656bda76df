"""Items/s of the embedded teacher (SmolLM2-135M) by batch size, on AG News texts.

Labels the same texts at each batch size after a warm-up, and checks that batching does not
change the answers (largest difference in any label probability against batch size 1).

    .venv/bin/python bench/teacher_local.py [--n 40] [--batch-sizes 1 8] [--threads 1] [--repeats 1]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from _checkout import REPO  # noqa: E402  (this checkout's quarry_al, not an installed one)
AG_NEWS = REPO.parent / "shared" / "datasets" / "ag_news" / "test.jsonl"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default=str(AG_NEWS))
    parser.add_argument("--n", type=int, default=40)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "teacher_local.json"))
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    from quarry_al.engine.config import load_config
    from quarry_al.engine.teacher import TeacherItem, build_teacher
    from quarry_al.engine.teacher.options import LocalTeacherConfig

    torch.set_num_threads(args.threads)
    rows = [json.loads(line) for line in Path(args.data).read_text().splitlines()[:args.n]]
    task = load_config(REPO / "configs" / "ag_news.yaml", check_files=False).task
    items = [TeacherItem(r["id"], r["text"]) for r in rows]
    gold = [r["label"] for r in rows]
    teacher = build_teacher(LocalTeacherConfig(), task, progress=False)
    teacher.label(items[:4])  # warm-up
    table, reference = [], None
    for size in args.batch_sizes:
        teacher.config = teacher.config.model_copy(update={"batch_size": size})
        best = float("inf")
        for _ in range(args.repeats):
            started = time.perf_counter()
            results = teacher.label(items)
            best = min(best, time.perf_counter() - started)
        if reference is None:
            reference = results
        diff = max(abs(a.distribution[k] - b.distribution[k]) for a, b in zip(results, reference) for k in a.distribution)
        table.append({"batch_size": size, "seconds": round(best, 2), "items_per_s": round(len(items) / best, 2),
                      "accuracy": sum(r.label == g for r, g in zip(results, gold)) / len(gold),
                      "max_prob_diff_vs_first": diff})
        print(f"batch {size}: {best:.1f} s", file=sys.stderr, flush=True)
    print(f"{len(items)} AG News texts, SmolLM2-135M, {args.threads} threads, best of {args.repeats}")
    print(f"{'batch':>5} {'seconds':>8} {'items/s':>8} {'accuracy':>8} {'max diff':>9}")
    for row in table:
        print(f"{row['batch_size']:>5} {row['seconds']:>8.2f} {row['items_per_s']:>8.2f} {row['accuracy']:>8.3f} "
              f"{row['max_prob_diff_vs_first']:>9.1e}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"n": len(items), "threads": args.threads, "rows": table}, indent=2))


if __name__ == "__main__":
    main()
