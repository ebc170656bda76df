"""Helpers of bench/label_efficiency.py: data splits, student recipes, arms, the memoised real student, metrics.

Every fit is the real `engine.student.Student` (LoRA or full fine-tuning of a Hugging Face encoder). A fit is
deterministic for (set, recipe, seed, round, labeled set), so its test predictions and pool scores are
memoised on disk (bench/results/le_cache/): arms that share a cold start share round 0 instead of refitting.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import numpy as np

from _checkout import REPO  # noqa: F401  (this checkout's quarry_al)

from quarry_al.engine.core.stats import classification_metrics  # noqa: E402

DATA = REPO.parent / "shared" / "datasets"
RESULTS = REPO / "bench" / "results"
CACHE = RESULTS / "le_cache"

# name -> (folder, pool split, test split); ag_news has only its test split: pool and test are disjoint parts of it.
SETS = {
    "ag_news": ("ag_news", "test", "test"),
    "sst2": ("sst2", "train", "test"),
    "clinc150": ("clinc150", "train", "test"),
    "dataclue_cic": ("dataclue_cic", "train", "test"),
    "online_shopping_10_cats": ("online_shopping_10_cats", "train", "test"),
}

SHIPPED = dict(epochs=30, min_steps=100, max_steps=600)  # StudentConfig's step rule today
BOUNDED = dict(epochs=10, min_steps=50, max_steps=200)  # prototype: about a third of the steps
RECIPES = {  # name -> StudentConfig overrides (batch 16, max_length 64, LoRA rank 16 as shipped)
    "lora": dict(method="lora", learning_rate=1e-3, **SHIPPED),  # shipped default
    "lora_bounded": dict(method="lora", learning_rate=1e-3, **BOUNDED),
    "full_5e-5": dict(method="full", learning_rate=5e-5, **SHIPPED),
    "full_bounded": dict(method="full", learning_rate=1e-4, **BOUNDED),
    "full_bounded_5e-5": dict(method="full", learning_rate=5e-5, **BOUNDED),
}

# arm -> (cold start, cold start params, strategy, strategy params); cold start picks the 25 initial labels.
ARMS = {
    "random": ("random", {}, "random", {}),
    "entropy": ("random", {}, "entropy", {}),  # shipped default schedule
    "margin": ("random", {}, "margin", {}),
    "km+margin": ("kmeans", {}, "margin", {}),
    "km+two_stage": ("kmeans", {}, "two_stage", {"prefilter": "margin", "factor": 10, "diversity": "kmeans"}),
    "km+adaptive": ("kmeans", {}, "adaptive", {"early": "kmeans", "late": "margin", "switch_round": 3}),
    "km+cluster_margin": ("kmeans", {}, "kmeans", {"pick": "uncertain", "uncertainty": "margin"}),
}


def read_jsonl(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def load_set(name: str, pool_size: int = 5000, test_size: int = 500):
    """(pool texts, pool y, test texts, test y, label names): random draws with a fixed generator (seed 0)."""
    folder, pool_split, test_split = SETS[name]
    rng = np.random.default_rng(0)
    if pool_split == test_split:
        rows = read_jsonl(DATA / folder / f"{pool_split}.jsonl")
        order = rng.permutation(len(rows))
        pool, test = [rows[i] for i in order[:pool_size]], [rows[i] for i in order[pool_size:pool_size + test_size]]
    else:
        train, held = read_jsonl(DATA / folder / f"{pool_split}.jsonl"), read_jsonl(DATA / folder / f"{test_split}.jsonl")
        pool = [train[i] for i in rng.choice(len(train), size=pool_size, replace=False)]
        test = [held[i] for i in rng.choice(len(held), size=min(test_size, len(held)), replace=False)]
    names = sorted({r["label"] for r in pool} | {r["label"] for r in test})
    index = {n: i for i, n in enumerate(names)}
    return ([r["text"] for r in pool], np.array([index[r["label"]] for r in pool]),
            [r["text"] for r in test], np.array([index[r["label"]] for r in test]), names)


def metrics(y_true: np.ndarray, y_pred: np.ndarray, names: list[str]) -> dict[str, float]:
    return classification_metrics([names[i] for i in y_true], [names[i] for i in y_pred], names)


def aulc(counts, values) -> float:
    """Area under the learning curve over label counts divided by the count range: in [0, 1]."""
    x, y = np.asarray(counts, float), np.asarray(values, float)
    return float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2) / (x[-1] - x[0]))


def frozen_embeddings(model: str, set_name: str, texts: list[str], cache_only: bool = False) -> np.ndarray | None:
    """Mean-pooled states of the untrained encoder (what the loop's round 0 k-means sees), cached per set;
    with `cache_only`, None when they are not cached yet."""
    from quarry_al.engine.core.files import cached_array as cached
    from quarry_al.engine.embeddings import encoder_embeddings

    key = hashlib.sha256(f"{model}\x00{len(texts)}\x00{texts[0]}\x00{texts[-1]}".encode()).hexdigest()[:10]
    path = CACHE / f"frozen-{set_name}-{Path(model).name}-{key}.npz"
    if cache_only and not path.is_file():
        return None
    return cached(path, lambda: encoder_embeddings(model, texts, max_length=128))


class MemoStudent:
    """The real Student for one (set, recipe, model, seed); fits and pool scores memoised by the labeled set."""

    def __init__(self, set_name: str, recipe: str, model: str, seed: int, pool: list[str], test: list[str],
                 names: list[str]):
        from quarry_al.engine.config import StudentConfig
        from quarry_al.engine.students import Student

        self.tag = f"{set_name}|{recipe}|{model}|{seed}"
        self.config = StudentConfig(model=model, seed=seed, **RECIPES[recipe])
        self.pool, self.test, self.names, self.seed = pool, test, names, seed
        self.student = Student(self.config, names)
        self._fitted_key: str | None = None

    def _key(self, round_: int, rows: np.ndarray) -> str:
        digest = hashlib.sha256(np.sort(rows).astype(np.int64).tobytes()).hexdigest()[:16]
        return hashlib.sha256(f"{self.tag}|{round_}|{digest}".encode()).hexdigest()[:20]

    def round(self, round_: int, rows: np.ndarray, y: np.ndarray, need_scores: bool, cache_only: bool = False):
        """Fit on the labeled rows (in the order given), predict the test set, score the pool if asked; with
        `cache_only`, None where that has not been computed yet (replaying an unfinished arm)."""
        key = self._key(round_, rows)
        path = CACHE / f"fit-{key}.npz"
        saved = dict(np.load(path)) if path.is_file() else {}
        out = {"cached": bool(saved)}
        if cache_only and (not saved or (need_scores and "probs" not in saved)):
            return None
        if not saved or (need_scores and "probs" not in saved):
            if self._fitted_key != key:
                started = time.perf_counter()
                stats = self.student.fit([self.pool[i] for i in rows], [self.names[i] for i in y],
                                         seed=self.seed + round_, progress=False)
                saved["fit_s"] = np.float64(time.perf_counter() - started)
                saved["steps"] = np.int64(stats.steps)
                started = time.perf_counter()
                saved["test_pred"] = self.student.score(self.test, progress=False).probs.argmax(axis=1)
                saved["test_s"] = np.float64(time.perf_counter() - started)
                self._fitted_key = key
            if need_scores:
                started = time.perf_counter()
                scores = self.student.score(self.pool, progress=False)
                saved["probs"], saved["embeddings"] = scores.probs, scores.embeddings.astype(np.float32)
                saved["score_s"] = np.float64(time.perf_counter() - started)
            CACHE.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npz")
            np.savez(tmp, **saved)
            tmp.replace(path)
        out.update(saved)
        return out
