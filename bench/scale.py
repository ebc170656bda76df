"""Pools of millions: time and peak memory of each phase of a round against the pool's size.

    python bench/scale.py --pool 100000 1000000 10000000 [--out FILE] [--workdir DIR] [--only LABEL ...]
                          [--executor local|ray] [--phases load score embed select commit] [--score-rows R]

For each N a synthetic pool is written once under --workdir (kept between runs): texts from templates
over 50 topics (Parquet, one file per shard), their embeddings as a mixture of 50 Gaussians in 384-d
(float16, one raw file per 1M-row shard: 10M rows = 7.7 GB), the student's class probabilities
(c = 4, from a linear head) and 1,000 labeled rows. Nothing holds a float32 copy of the pool.

Each phase is a function in PHASES: `generate` (the pool above, timed only when written), then a round's
phases in bench/_scale_phases.py (load the pool as a Quarry data file into a run folder, as `quarry run` does; score and embed a
subsample through --executor; commit the picks to a real run database) around `select` (every strategy
of VARIANTS, k = 25). Each selection runs in a fresh child process that
maps the shards (np.memmap) and times `select()` alone (wall and CPU seconds); its peak RSS is the
whole child's high-water mark (VmHWM): interpreter, probabilities, everything.
A full-pool variant is skipped at a size over its `max_pool` (it holds the pool in memory) or when
its time at the size before, grown linearly, would pass --skip-over seconds. `--jobs N` runs N children
at once: CPU seconds and peak RSS stay each child's own, wall seconds then include waiting for the others.

Then the growth exponent of each row: the slope of log(time) against log(N), least squares over the
sizes it ran at (1 = linear; n log n shows as slightly above 1 over one decade), of wall seconds and of
CPU seconds (steadier on a shared machine). Writes the JSON to
--out and a markdown summary to bench/results_summary/scale.md.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from _checkout import REPO  # noqa: E402  (this checkout's quarry_al, not an installed one)

import _scale_phases  # noqa: E402
from quarry_al.strategies import Scores, SelectionState, make_strategy  # noqa: E402
from quarry_al.strategies.shards import Shards  # noqa: E402

DIM, CLASSES, TOPICS, LABELED, SHARD_ROWS, CHUNK = 384, 4, 50, 1000, 1_000_000, 100_000
POOL_VERSION = 1  # bump when the generated pool changes, so old ones are rewritten
SUB = {"subsample": 10_000}
SEALS = {"subsample": 10_000, "subsample_method": "seals"}
# (strategy, row label, params, max_pool): the largest pool a variant is run on (None: any).
VARIANTS: list[tuple[str, str, dict, int | None]] = [
    ("random", "random", {}, None),
    ("margin", "margin", {}, None),
    ("entropy", "entropy", {}, None),
    ("kmeans", "kmeans", {}, None),
    ("coreset", "coreset", {}, None),
    ("density", "density", {}, None),
    ("cal", "cal", {}, None),
    ("two_stage", "two_stage", {}, None),
    ("adaptive", "adaptive", {}, None),
    ("margin", "margin+seals10k", SEALS, None),
    ("coreset", "coreset+seals10k", SEALS, None),
    # An IVF index built afresh each round: slower than exact search (see subsample.py); not run at 10M.
    ("margin", "margin+seals10k-ivf", {**SEALS, "subsample_nprobe": 8}, 1_000_000),
    ("density", "density-knn+sub10k", {"neighbours": 10, **SUB}, None),
    ("badge", "badge+sub10k", SUB, None),
    ("badge", "badge", {}, 1_000_000),  # gathers the candidates as float32: 15 GB at 10M
    # The numpy back ends, for comparison (they hold the candidates in memory, and are O(k n d)).
    ("kmeans", "kmeans[numpy]", {"backend": "numpy"}, 100_000),
    ("coreset", "coreset[numpy]", {"backend": "numpy"}, 100_000),
    ("cal", "cal[numpy]", {"backend": "numpy"}, 100_000),
    # Exact search, to see what `auto`'s IVF search (nprobe 1 above EXACT_PAIRS) changes in the picks.
    ("coreset", "coreset[faiss-exact]", {"backend": "faiss"}, 1_000_000),
    ("cal", "cal[faiss-exact]", {"backend": "faiss"}, 1_000_000),
]
EXACT_TWINS = {"coreset": "coreset[faiss-exact]", "cal": "cal[faiss-exact]"}
WORDS = {"adjective": ["new", "major", "local", "global", "surprising", "quiet", "record", "early", "late", "rare"],
         "verb": ["reports", "announces", "questions", "delays", "wins", "loses", "reviews", "plans", "ends", "opens"]}
TEMPLATES = ["{adj} {topic} news: {subject} {verb} {object}", "{subject} {verb} {object} as {topic} {adj} trend grows",
             "Why the {adj} {topic} story matters: {subject} {verb} {object}"]


# --- phase: generate -------------------------------------------------------------------------------

def topic_words(seed: int) -> list[tuple[str, list[str]]]:
    """Per topic: its name and its own vocabulary, so texts cluster by topic as the embeddings do."""
    rng = np.random.default_rng(seed)
    syllables = ["ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "ze", "po", "da", "fi"]
    word = lambda: "".join(rng.choice(syllables, size=3))  # noqa: E731
    return [(word(), [word() for _ in range(12)]) for _ in range(TOPICS)]


def write_texts(path: Path, ids: np.ndarray, topics: np.ndarray, rng: np.random.Generator, vocab) -> None:
    words = rng.integers(12, size=(len(ids), 2))
    template = rng.integers(len(TEMPLATES), size=len(ids))
    adj, verb = rng.integers(10, size=len(ids)), rng.integers(10, size=len(ids))
    texts = [TEMPLATES[template[i]].format(adj=WORDS["adjective"][adj[i]], verb=WORDS["verb"][verb[i]],
                                           topic=vocab[t][0], subject=vocab[t][1][words[i, 0]],
                                           object=vocab[t][1][words[i, 1]])
             for i, t in enumerate(topics)]
    pq.write_table(pa.table({"id": ids, "text": texts, "topic": topics}), path)


def phase_generate(n: int, folder: Path, seed: int = 0) -> dict:
    """The pool of n rows in `folder`, written unless a complete one of the same kind is there."""
    meta = folder / "meta.json"
    want = {"pool": n, "dim": DIM, "seed": seed, "version": POOL_VERSION}
    if meta.exists() and {k: json.loads(meta.read_text()).get(k) for k in want} == want:
        return {"seconds": None, "written": False}
    folder.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((TOPICS, DIM)).astype(np.float32)
    head = rng.standard_normal((DIM, CLASSES)).astype(np.float32) / np.sqrt(DIM)
    vocab = topic_words(seed)
    probs = np.lib.format.open_memmap(folder / "probs.npy", mode="w+", dtype=np.float32, shape=(n, CLASSES))
    shards = []
    for s, lo in enumerate(range(0, n, SHARD_ROWS)):
        hi = min(lo + SHARD_ROWS, n)
        path = folder / f"shard-{s:05d}.f16"
        shard = np.memmap(path, dtype=np.float16, mode="w+", shape=(hi - lo, DIM))
        topics = rng.integers(TOPICS, size=hi - lo)
        for c in range(0, hi - lo, CHUNK):
            rows = slice(c, min(c + CHUNK, hi - lo))
            emb = centres[topics[rows]] + 0.5 * rng.standard_normal((len(topics[rows]), DIM), dtype=np.float32)
            shard[rows] = emb
            logits = emb @ head
            p = np.exp(logits - logits.max(1, keepdims=True))
            probs[lo + rows.start:lo + rows.stop] = p / p.sum(1, keepdims=True)
        shard.flush()
        del shard
        write_texts(folder / f"texts-{s:05d}.parquet", np.arange(lo, hi), topics, rng, vocab)
        shards.append({"file": path.name, "rows": hi - lo})
    probs.flush()
    np.save(folder / "labeled.npy", np.sort(rng.choice(n, size=LABELED, replace=False)))
    meta.write_text(json.dumps({**want, "shards": shards}))
    return {"seconds": time.perf_counter() - started, "written": True}


def open_pool(folder: Path) -> tuple[Scores, SelectionState]:
    """The pool as a strategy sees it: float16 shards mapped from disk, probabilities, 1,000 labeled."""
    meta = json.loads((folder / "meta.json").read_text())
    parts = [np.memmap(folder / s["file"], dtype=np.float16, mode="r", shape=(s["rows"], meta["dim"]))
             for s in meta["shards"]]
    probs = np.load(folder / "probs.npy")
    labeled = np.zeros(meta["pool"], dtype=bool)
    labeled[np.load(folder / "labeled.npy")] = True
    return Scores(probs=probs, embeddings=Shards(parts)), SelectionState(labeled=labeled, round=1)


# --- phase: select ---------------------------------------------------------------------------------

def select_child(folder: Path, label: str, k: int) -> None:
    """In the child: one timed select() of one variant; prints its measurements as JSON."""
    name, _, params, _ = next(v for v in VARIANTS if v[1] == label)
    scores, state = open_pool(folder)
    strategy = make_strategy(name, params)
    rss_before = peak_rss_mb()
    wall, cpu = time.perf_counter(), time.process_time()
    chosen = strategy.select(scores, state, k, np.random.default_rng(0))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    assert len(set(chosen.tolist())) == k and not state.labeled[chosen].any(), label
    print(json.dumps({"seconds": wall, "cpu_seconds": cpu, "rss_before_select_mb": rss_before,
                      "peak_rss_mb": peak_rss_mb(), "chosen": chosen.tolist()}))


def peak_rss_mb() -> float:
    """The process's resident high-water mark (VmHWM). Not ru_maxrss: Linux carries that over from the
    parent across fork and exec, so a child would report at least the parent's size."""
    line = next(line for line in Path("/proc/self/status").read_text().splitlines() if line.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


def run_child(folder: Path, label: str, k: int, timeout: float) -> dict:
    """A variant in a fresh process: its measurements and the peak RSS of the whole process."""
    child = subprocess.Popen([sys.executable, __file__, "--child", label, "--workdir", str(folder), "--k", str(k)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = child.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        child.kill()
        child.communicate()
        return {"error": f"over {timeout:g}s"}
    if child.returncode:
        return {"error": (err.strip().splitlines() or ["?"])[-1]}
    return json.loads(out.strip().splitlines()[-1])


def phase_select(n: int, folder: Path, args: argparse.Namespace, earlier: dict[str, dict[int, float]]) -> dict:
    results, runs = {}, {}
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        for name, label, params, max_pool in VARIANTS:
            if args.only and label not in args.only:
                continue
            before = {size: t for size, t in earlier.get(label, {}).items() if size < n}
            projected = max((t * n / size for size, t in before.items()), default=0.0)
            if max_pool is not None and n > max_pool:
                results[label] = {"skipped": f"not run above {max_pool:,}"}
            elif projected > args.skip_over:
                results[label] = {"skipped": f"projected {projected:.0f}s > {args.skip_over:g}s"}
            else:
                runs[label] = pool.submit(run_child, folder, label, args.k, 4 * args.skip_over)
    results.update({label: run.result() for label, run in runs.items()})
    results = {v[1]: results[v[1]] for v in VARIANTS if v[1] in results}
    for label, cell in results.items():
        print(f"  {label:<22} " + (f"{cell['seconds']:8.2f}s wall {cell['cpu_seconds']:8.2f}s cpu "
                                   f"{cell['peak_rss_mb']:8.0f} MB" if "seconds" in cell else
                                   cell.get("skipped") or cell.get("error")), flush=True)
    return results


def run_phase(phase: str) -> Callable[..., dict]:
    """A phase of bench/_scale_phases.py in a fresh child process (its own peak RSS)."""
    def run(n: int, folder: Path, args: argparse.Namespace, earlier: dict) -> dict:
        if args.phases and phase not in args.phases:
            return {"skipped": "not asked for"}
        command = [sys.executable, __file__, "--phase-child", phase, "--workdir", str(folder), "--pool", str(n),
                   "--k", str(args.k), "--executor", args.executor, "--score-rows", str(args.score_rows),
                   "--actors", str(args.actors)]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode:
            return {"error": (done.stderr.strip().splitlines() or ["?"])[-1]}
        cell = json.loads(done.stdout.strip().splitlines()[-1])
        extra = (f" ({cell['seconds_per_row'] * 1e3:.2f} ms/row over {cell['rows']:,} rows, worker peak "
                 f"{cell['worker_peak_rss_mb']:.0f} MB)" if "seconds_per_row" in cell else "")
        print(f"  {phase:<8} {cell['seconds']:8.2f}s {cell['peak_rss_mb']:8.0f} MB{extra}", flush=True)
        return cell
    return run


def select_if_asked(n: int, folder: Path, args: argparse.Namespace, earlier: dict) -> dict:
    return phase_select(n, folder, args, earlier) if not args.phases or "select" in args.phases else {}


# The round's phases, in order: (pool size, pool folder, arguments, this phase's wall seconds at the
# sizes before, by row) -> measurements (a JSON-able dict, kept under the phase's name per pool).
PHASES: dict[str, Callable[..., dict]] = {
    "generate": lambda n, folder, args, earlier: phase_generate(n, folder),
    "load": run_phase("load"),
    "score": run_phase("score"),
    "embed": run_phase("embed"),
    "select": select_if_asked,
    "commit": run_phase("commit"),
}
ROUND_PHASES = ("load", "score", "embed", "commit")


# --- report ----------------------------------------------------------------------------------------

def growth(times: dict[int, float]) -> float | None:
    """Least-squares slope of log(time) on log(N), over the sizes measured (at least two)."""
    sizes = sorted(n for n, t in times.items() if t)
    if len(sizes) < 2:
        return None
    return float(np.polyfit(np.log([float(n) for n in sizes]), np.log([times[n] for n in sizes]), 1)[0])


def table(report: dict) -> list[str]:
    sizes = [p["pool"] for p in report["pools"]]
    head = "| strategy | " + " | ".join(f"{n:,} s (cpu s)" for n in sizes) + " | " + \
           " | ".join(f"{n:,} peak MB" for n in sizes) + " | growth (cpu) |"
    lines = [head, "|---" + "|---:" * (2 * len(sizes) + 1) + "|"]
    for label in report["growth"]:
        cells = []
        for p in report["pools"]:
            c = p["select"].get(label, {})
            cells.append(f"{c['seconds']:.2f} ({c['cpu_seconds']:.2f})" if "seconds" in c else
                         "skipped" if "skipped" in c else "error" if "error" in c else "")
        rss = [f"{p['select'][label]['peak_rss_mb']:,.0f}" if "peak_rss_mb" in p["select"].get(label, {}) else ""
               for p in report["pools"]]
        g, g_cpu = report["growth"][label], report["growth_cpu"][label]
        lines.append(f"| {label} | " + " | ".join(cells + rss) + " | "
                     + ("" if g is None else f"{g:.2f} ({g_cpu:.2f})") + " |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pool", type=int, nargs="+", default=[100_000, 1_000_000, 10_000_000])
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "scale.json"))
    parser.add_argument("--workdir", default="/tmp/quarry-scale")
    parser.add_argument("--k", type=int, default=25)
    parser.add_argument("--skip-over", type=float, default=300.0)
    parser.add_argument("--jobs", type=int, default=1, help="selections run at once (each in its own process)")
    parser.add_argument("--only", nargs="+", help="run only these rows (labels as in the table)")
    parser.add_argument("--summary", default=str(REPO / "bench" / "results_summary" / "scale.md"))
    parser.add_argument("--executor", choices=["local", "ray"], default="local", help="where score and embed run")
    parser.add_argument("--actors", type=int, default=2, help="Ray scoring actors (2 CPUs shared among them)")
    parser.add_argument("--score-rows", type=int, default=2048, help="rows score and embed run on (per-row cost)")
    parser.add_argument("--phases", nargs="+", choices=list(ROUND_PHASES) + ["select"], help="run only these phases")
    parser.add_argument("--export-quarry", action="store_true",
                        help="write each pool as a Quarry data file, WORKDIR/quarry-N/pool.parquet, and stop")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--phase-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return select_child(Path(args.workdir), args.child, args.k)
    if args.phase_child:
        return _scale_phases.child(args.phase_child, args.pool[0], Path(args.workdir), args)
    if args.export_quarry:
        for n in args.pool:
            phase_generate(n, Path(args.workdir) / f"pool-{n}")
            print(_scale_phases.export_quarry(Path(args.workdir) / f"pool-{n}", Path(args.workdir) / f"quarry-{n}"))
        return None
    pools, cpu = [], {}
    history: dict[str, dict[str, dict[int, float]]] = {phase: {} for phase in PHASES}  # wall s by row, size
    for n in sorted(args.pool):
        folder = Path(args.workdir) / f"pool-{n}"
        print(f"pool {n:,} ({folder})", flush=True)
        measured = {"pool": n, "load_average": os.getloadavg()}
        for phase, run in PHASES.items():
            measured[phase] = run(n, folder, args, history[phase])
        for label, cell in measured["select"].items():
            if "seconds" in cell:
                history["select"].setdefault(label, {})[n] = cell["seconds"]
                cpu.setdefault(label, {})[n] = cell["cpu_seconds"]
        for phase in ROUND_PHASES:
            if "seconds" in measured[phase]:
                history[phase].setdefault(phase, {})[n] = measured[phase]["seconds"]
        cells = [*measured["select"].values(), *(measured[phase] for phase in ROUND_PHASES)]
        measured["select_seconds"] = {label: c["seconds"] for label, c in measured["select"].items() if "seconds" in c}
        measured["peak_rss_mb"] = max((c["peak_rss_mb"] for c in cells if "peak_rss_mb" in c), default=None)
        measured["same_picks_as_exact"] = {
            label: len(set(measured["select"][label]["chosen"]) & set(measured["select"][twin]["chosen"]))
            for label, twin in EXACT_TWINS.items()
            if "chosen" in measured["select"].get(label, {}) and "chosen" in measured["select"].get(twin, {})}
        pools.append(measured)
    labels = [v[1] for v in VARIANTS if not args.only or v[1] in args.only]
    report = {"k": args.k, "dim": DIM, "labeled": LABELED, "machine": f"{platform.machine()}, {os.cpu_count()} cores",
              "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "jobs": args.jobs, "pools": pools,
              "growth": {label: growth(history["select"].get(label, {})) for label in labels},
              "growth_cpu": {label: growth(cpu.get(label, {})) for label in labels},
              "executor": args.executor, "actors": args.actors, "score_rows": args.score_rows,
              "phase_growth": {phase: growth(history[phase].get(phase, {})) for phase in ("load", "commit")}}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    lines = table(report)
    print("\n" + "\n".join(phase_table(report)))
    print("\nselection: wall seconds (CPU seconds) of select(), peak RSS of the process, growth exponent of wall "
          "(of CPU) seconds\n"
          + "\n".join(lines) + "\npicks shared with exact search: "
          + "; ".join(f"{p['pool']:,}: {p['same_picks_as_exact']}" for p in pools) + f"\nwrote {out}")
    summary = Path(args.summary)
    summary.parent.mkdir(parents=True, exist_ok=True)
    summary.write_text(f"# Selection at scale (`python bench/scale.py --pool {' '.join(map(str, args.pool))}`)\n\n"
                       f"{report['machine']}, k = {args.k}, d = {DIM} float16 shards of {SHARD_ROWS:,} rows, "
                       f"{LABELED:,} labeled, OMP_NUM_THREADS={report['omp_num_threads']}, {args.jobs} selection(s) "
                       f"at once; wall seconds (CPU seconds) of select(), peak RSS of its process, growth exponent of "
                       f"wall (CPU) seconds over N; load average at each size: "
                       + ", ".join(f"{p['pool']:,}: {p['load_average'][0]:.1f}" for p in pools)
                       + "\n\n" + "\n".join(lines) + "\n\nPicks shared with exact search (of k): "
                       + "; ".join(f"{p['pool']:,}: {p['same_picks_as_exact']}" for p in pools) + "\n\n"
                       + "\n".join(phase_table(report)) + "\n")


def phase_table(report: dict) -> list[str]:
    """A round's other phases: seconds and peak RSS per N; score and embed ran on `score_rows` rows, so
    their full-pool time is per-row seconds x N (projected)."""
    pools = report["pools"]
    lines = [f"executor {report['executor']} ({report['actors']} actors if ray); score and embed on "
             f"{report['score_rows']:,} rows, projected to N", "",
             "| phase | " + " | ".join(f"{p['pool']:,}: s (peak MB)" for p in pools) + " | growth |",
             "|---" + "|---:" * (len(pools) + 1) + "|"]
    for phase in ROUND_PHASES:
        cells = []
        for p in pools:
            c = p.get(phase, {})
            if "seconds_per_row" in c:
                cells.append(f"{c['seconds_per_row'] * 1e3:.2f} ms/row -> {c['seconds_per_row'] * p['pool']:,.0f} "
                             f"(driver {c['peak_rss_mb']:,.0f}, worker {c['worker_peak_rss_mb']:,.0f})")
            elif "seconds" in c:
                cells.append(f"{c['seconds']:.2f} ({c['peak_rss_mb']:,.0f})")
            else:
                cells.append(c.get("skipped") or c.get("error") or "")
        g = report["phase_growth"].get(phase)
        lines.append(f"| {phase} | " + " | ".join(cells) + " | " + ("1 (per row)" if phase in ("score", "embed")
                                                                     else "" if g is None else f"{g:.2f}") + " |")
    return lines


if __name__ == "__main__":
    main()
