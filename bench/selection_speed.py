"""Selection time of every strategy against pool size, on synthetic 384-d embeddings.

Pool: n items in 50 Gaussian clusters (d = 384, float32), class probabilities from a random linear
head (c = 4), 10 MC-dropout-like passes for BALD, 1,000 items labeled, k = 25. Each strategy runs
on the full pool, and with candidate subsampling (`subsample: 10000`, random; and SEALS for margin
and core-set). A full-pool run is skipped at the next size when it took over `--skip-over` seconds
at the size before (its growth is at least linear). One timed run per cell: wall seconds of
`select()` only; the synthetic data is built outside the timer. Threads: as OMP_NUM_THREADS says
(recorded in the JSON); on a shared machine 1 avoids OpenMP oversubscription in scikit-learn.

    python bench/selection_speed.py [--sizes 10000 100000 1000000]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from _checkout import REPO  # noqa: E402  (this checkout's quarry_al, not an installed one)

from quarry_al.strategies import STRATEGIES, MC_PROBS, Scores, SelectionState, make_strategy, needs_of  # noqa: E402

VARIANTS: list[tuple[str, str, dict]] = [(name, name, {}) for name in STRATEGIES] + [
    ("kmeans", "kmeans+sub10k", {"subsample": 10_000}),
    ("coreset", "coreset+sub10k", {"subsample": 10_000}),
    ("coreset", "coreset+seals10k", {"subsample": 10_000, "subsample_method": "seals"}),
    ("badge", "badge+sub10k", {"subsample": 10_000}),
    ("cal", "cal+sub10k", {"subsample": 10_000}),
    ("eer", "eer+sub10k", {"subsample": 10_000}),
    ("density", "density+sub10k", {"subsample": 10_000}),
    ("mixture", "mixture+sub10k", {"subsample": 10_000}),
    ("two_stage", "two_stage+sub10k", {"subsample": 10_000}),
    ("adaptive", "adaptive+sub10k", {"subsample": 10_000}),
    ("margin", "margin+seals10k", {"subsample": 10_000, "subsample_method": "seals"}),
]


def synthetic(n: int, d: int = 384, c: int = 4, passes: int = 10, labeled: int = 1000, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((50, d)).astype(np.float32)
    emb = centres[rng.integers(50, size=n)]
    emb += 0.5 * rng.standard_normal((n, d), dtype=np.float32)
    head = rng.standard_normal((d, c)).astype(np.float32) / np.sqrt(d)
    logits = emb @ head
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    noisy = logits[None] + 0.5 * rng.standard_normal((passes, n, c), dtype=np.float32)
    mc = np.exp(noisy - noisy.max(2, keepdims=True))
    mc /= mc.sum(2, keepdims=True)
    mask = np.zeros(n, dtype=bool)
    chosen = rng.choice(n, size=labeled, replace=False)
    mask[chosen] = True
    labels = np.full(n, -1)
    labels[chosen] = probs[chosen].argmax(1)
    return Scores(probs=probs, embeddings=emb, mc_probs=mc), SelectionState(labeled=mask, round=1, labels=labels,
                                                                              previous_probs=probs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--k", type=int, default=25)
    parser.add_argument("--skip-over", type=float, default=15.0)
    parser.add_argument("--only", nargs="+", help="run only these rows (names as in the table)")
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "selection_speed.json"))
    args = parser.parse_args()
    variants = [v for v in VARIANTS if not args.only or v[1] in args.only]
    times: dict[str, dict[int, float | None]] = {label: {} for _, label, _ in variants}
    for n in args.sizes:
        built = time.perf_counter()
        scores, state = synthetic(n)
        print(f"n = {n:,}: synthetic pool built in {time.perf_counter() - built:.1f}s", flush=True)
        for name, label, params in variants:
            earlier = [t for size, t in times[label].items() if size < n]
            if earlier and (earlier[-1] is None or earlier[-1] > args.skip_over):
                times[label][n] = None
                continue
            strategy = make_strategy(name, params)
            view = scores if MC_PROBS in needs_of(strategy) else Scores(scores.probs, scores.embeddings)
            started = time.perf_counter()
            chosen = strategy.select(view, state, args.k, np.random.default_rng(0))
            times[label][n] = time.perf_counter() - started
            assert len(set(chosen.tolist())) == args.k and not state.labeled[chosen].any(), label
            print(f"  {label:<20} {times[label][n]:8.3f}s", flush=True)
        del scores, state
    header = f"{'strategy':<20} " + " ".join(f"{n:>11,}" for n in args.sizes)
    print(f"\nselection time (s), k = {args.k}, d = 384, 1,000 labeled; '-' = skipped (over {args.skip_over:g}s "
          f"at the size before)\n{header}")
    for _, label, _ in variants:
        cells = [times[label].get(n) for n in args.sizes]
        print(f"{label:<20} " + " ".join(f"{c:>11.3f}" if c is not None else f"{'-':>11}" for c in cells))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"k": args.k, "d": 384, "labeled": 1000, "sizes": args.sizes,
                               "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
                               "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
                               "seconds": {label: {str(n): t for n, t in row.items()} for label, row in times.items()}},
                              indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
