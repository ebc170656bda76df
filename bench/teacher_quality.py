"""Zero-shot against few-shot for the embedded teacher on AG News, and what calibration makes of it.

Labels the first N test texts with SmolLM2-135M, without examples and with few-shot examples
picked per item from a separate labeled set (TF-IDF similarity, label-aware MMR, as the loop
does in round 0), then reports accuracy, AUROC of the teacher's confidence, prompt tokens,
items/s, each with and without the content-free prior correction (`teacher.calibrate`, whose
prior is measured without examples), and the threshold routing calibration would choose at a few target precisions if every item
had been reviewed.

    .venv/bin/python bench/teacher_quality.py [--n 60] [--k 4] [--per-label 0] [--labeled 400]
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
    parser.add_argument("--n", type=int, default=60)
    parser.add_argument("--labeled", type=int, default=400, help="texts after the first N used as the labeled set")
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--per-label", type=int, default=0)
    parser.add_argument("--max-tokens", type=int, default=400)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "teacher_quality.json"))
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    from quarry_al.engine.calibration import ReviewedItem, choose_threshold, signal_aurocs
    from quarry_al.engine.config import load_config
    from quarry_al.engine.examples import with_examples
    from quarry_al.engine.store import LabelRow
    from quarry_al.engine.teacher import TeacherItem, build_teacher
    from quarry_al.engine.teacher.options import FewShotConfig, LocalTeacherConfig

    torch.set_num_threads(args.threads)
    rows = [json.loads(line) for line in Path(args.data).read_text().splitlines()[:args.n + args.labeled]]
    test, labeled = rows[:args.n], rows[args.n:]
    task = load_config(REPO / "configs" / "ag_news.yaml", check_files=False).task
    teacher = build_teacher(LocalTeacherConfig(), task, progress=False)
    uncalibrated = build_teacher(LocalTeacherConfig(calibrate=False), task, progress=False)
    plain = [TeacherItem(r["id"], r["text"]) for r in test]
    label_rows = [LabelRow(r["id"], r["text"], r["label"], "human", None, 0, "", None, r["label"]) for r in labeled]
    few = FewShotConfig(k=args.k, per_label=args.per_label, max_tokens=args.max_tokens, embeddings="tfidf")
    shots = with_examples(few, plain, label_rows, task.label_names, Path("/nonexistent"), [])
    table = []
    shot = f"few-shot k={args.k} per_label={args.per_label}"
    for name, items, labeler in (("zero-shot", plain, teacher), ("zero-shot, no prior", plain, uncalibrated),
                                 (shot, shots, teacher), (shot + ", no prior", shots, uncalibrated)):
        started = time.perf_counter()
        results = labeler.label(items)
        seconds = time.perf_counter() - started
        reviewed = [ReviewedItem(r.label, r.confidence, t["label"]) for r, t in zip(results, test) if r.ok]
        row = {"setting": name, "accuracy": sum(i.correct for i in reviewed) / len(test),
               "auroc_teacher": signal_aurocs(reviewed)["teacher"],
               "prompt_tokens_mean": sum(r.usage.prompt_tokens for r in results) / len(results),
               "items_per_s": len(items) / seconds, "examples_mean": sum(len(i.examples) for i in items) / len(items)}
        for target in (0.6, 0.8, 0.9):
            cal = choose_threshold(reviewed, target)
            row[f"threshold@{target}"] = None if cal.threshold > 1 else round(cal.threshold, 3)
            row[f"accepted@{target}"] = round(cal.accepted_share, 3)
        table.append(row)
        print(f"{name}: {seconds:.1f} s", file=sys.stderr, flush=True)
    print(f"{len(test)} AG News texts, SmolLM2-135M, {args.threads} threads; calibration as if every item were reviewed")
    keys = list(table[0])
    print(" | ".join(keys))
    for row in table:
        print(" | ".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in row.values()))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"n": len(test), "rows": table}, indent=2))


if __name__ == "__main__":
    main()
