"""The label-free stopping criteria: stabilizing predictions (kappa) and overall uncertainty on a stop set."""
from __future__ import annotations

import numpy as np
import pytest

from quarry_al.engine.config import LoopConfig, StoppingConfig
from quarry_al.engine.stopping import cohens_kappa, stop_reason, stop_set_indices, stop_set_metrics


def loop(**stopping) -> LoopConfig:
    return LoopConfig(rounds=100, stopping=StoppingConfig(**stopping))


def history(kappas: list[float | None], uncertainties: list[float] | None = None) -> list[dict]:
    uncertainties = uncertainties or [0.5] * len(kappas)
    return [{"round": i, "eval_accuracy": 0.5, "stop_set_kappa": k, "stop_set_uncertainty": u}
            for i, (k, u) in enumerate(zip(kappas, uncertainties))]


class TestKappa:
    def test_known_values(self):
        a = np.array([0, 0, 1, 1])
        assert cohens_kappa(a, a) == 1.0
        assert cohens_kappa(a, 1 - a) == -1.0
        # observed 0.5, chance 0.5: no agreement beyond chance
        assert cohens_kappa(np.array([0, 0, 1, 1]), np.array([0, 1, 0, 1])) == 0.0
        # a textbook table: 20 yes-yes, 5 yes-no, 10 no-yes, 15 no-no -> kappa 0.4
        a = np.array([1] * 25 + [0] * 25)
        b = np.array([1] * 20 + [0] * 5 + [1] * 10 + [0] * 15)
        assert cohens_kappa(a, b) == pytest.approx(0.4)

    def test_constant_identical_predictions_are_stable(self):
        assert cohens_kappa(np.zeros(5), np.zeros(5)) == 1.0

    def test_length_mismatch(self):
        with pytest.raises(ValueError, match="same length"):
            cohens_kappa(np.zeros(3), np.zeros(4))


class TestStopSet:
    def test_fixed_per_seed_and_inside_the_pool(self):
        first = stop_set_indices(10_000, 2000, seed=1)
        assert len(set(first.tolist())) == 2000 and first.min() >= 0 and first.max() < 10_000
        assert first.tolist() == stop_set_indices(10_000, 2000, seed=1).tolist()
        assert first.tolist() != stop_set_indices(10_000, 2000, seed=2).tolist()

    def test_small_pool_is_all_of_it(self):
        assert stop_set_indices(50, 2000, seed=0).tolist() == list(range(50))

    def test_metrics(self):
        probs = np.array([[0.5, 0.5], [1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])
        metrics = stop_set_metrics(probs, previous_predictions=None)
        assert metrics["stop_set_kappa"] is None
        assert metrics["stop_set_uncertainty"] == pytest.approx(0.5)  # two of four at maximum entropy
        again = stop_set_metrics(probs, previous_predictions=probs.argmax(axis=1))
        assert again["stop_set_kappa"] == 1.0


class TestStabilizingPredictions:
    def test_stops_when_the_window_mean_reaches_the_threshold(self):
        reason = stop_reason(history([None, 0.9, 0.995, 0.99, 0.999]), loop(stabilizing_kappa=0.99), 0)
        assert reason == "stabilizing predictions: mean kappa 0.994667 >= 0.990 over the last 3 rounds"

    def test_one_unstable_round_in_the_window_keeps_going(self):
        assert stop_reason(history([None, 0.999, 0.95, 0.999]), loop(stabilizing_kappa=0.99), 0) is None

    def test_needs_a_full_window(self):
        assert stop_reason(history([None, 1.0, 1.0]), loop(stabilizing_kappa=0.99), 0) is None
        assert stop_reason(history([None, 1.0]), loop(stabilizing_kappa=0.99, stabilizing_window=1), 0) is not None

    def test_off_by_default(self):
        assert stop_reason(history([None, 1.0, 1.0, 1.0]), loop(), 0) is None


class TestOverallUncertainty:
    def test_stops_at_or_below_threshold(self):
        config = loop(max_uncertainty=0.2)
        assert stop_reason(history([None, 0.5], [0.6, 0.21]), config, 0) is None
        assert stop_reason(history([None, 0.5], [0.6, 0.2]), config, 0) == \
            "overall uncertainty 0.200 <= 0.200 on the stop set"

    def test_history_without_the_metric_does_not_stop(self):
        assert stop_reason([{"round": 0, "eval_accuracy": 0.5}], loop(max_uncertainty=0.5), 0) is None


class TestConfig:
    def test_stop_set_only_when_a_criterion_needs_it(self):
        assert not StoppingConfig().uses_stop_set
        assert StoppingConfig(stabilizing_kappa=0.99).uses_stop_set
        assert StoppingConfig(max_uncertainty=0.1).uses_stop_set

    @pytest.mark.parametrize("key,value", [("stabilizing_kappa", 1.5), ("stabilizing_kappa", 0), ("max_uncertainty", -0.1),
                                           ("stabilizing_window", 0), ("stop_set_size", 0)])
    def test_bounds(self, key, value):
        with pytest.raises(ValueError, match=key):
            StoppingConfig(**{key: value})
