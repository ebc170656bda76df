"""How right a finished demo run's exported labels are: `quarry export --format jsonl` of the run, compared
with the gold labels of configs/demo_data/pool.jsonl (the demo pool has them; the run never shows them to
the teacher, and simulated review answers from them).

    .venv/bin/python bench/demo_quality.py RUN_DIR [RUN_DIR ...] [--checkout DIR] [--label NAME]

RUN_DIR: a folder made by `quarry run configs/demo.yaml --run-dir RUN_DIR`; --checkout: the code that
exports (default this one; an older checkout exports without the teacher_label field, which is not used).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
POOL = REPO / "configs" / "demo_data" / "pool.jsonl"


def measure(run_dir: Path, checkout: Path) -> dict:
    out = Path(tempfile.mkdtemp(prefix="quarry-demo-export-")) / "export.jsonl"
    subprocess.run([sys.executable, "-m", "engine", "export", str(run_dir), "--format", "jsonl", "--out", str(out)],
                   cwd=checkout, env={**os.environ, "HF_HUB_OFFLINE": "1"}, check=True, capture_output=True)
    gold = {row["id"]: row["label"] for row in map(json.loads, POOL.read_text().splitlines())}
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").split("\n") if line]
    by_source = Counter(r["source"] for r in rows)
    right = Counter(r["source"] for r in rows if r["label"] == gold[r["id"]])
    decided = by_source["teacher"] + by_source["human"]
    return {"run_dir": str(run_dir), "exported": len(rows), "exported_right": sum(right.values()),
            "exported_accuracy": round(sum(right.values()) / len(rows), 4),
            "teacher_accepted": by_source["teacher"], "teacher_accepted_right": right["teacher"],
            "human": by_source["human"], "human_share": round(by_source["human"] / decided, 4) if decided else None}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("run_dirs", nargs="+")
    parser.add_argument("--checkout", default=str(REPO))
    parser.add_argument("--label", default="demo")
    args = parser.parse_args()
    rows = [measure(Path(d).resolve(), Path(args.checkout).resolve()) for d in args.run_dirs]
    print("| run | exported | right (vs gold) | teacher accepted (right) | human share |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for r in rows:
        share = "-" if r["human_share"] is None else f"{100 * r['human_share']:.0f}%"
        print(f"| {r['run_dir']} | {r['exported']} | {r['exported_right']} ({100 * r['exported_accuracy']:.1f}%) | "
              f"{r['teacher_accepted']} ({r['teacher_accepted_right']}) | {share} |")
    out = REPO / "bench" / "results" / f"demo_quality-{args.label}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
