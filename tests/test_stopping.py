"""Stopping criteria and their boundaries, on hand-made round histories."""
from __future__ import annotations

import pytest

from quarry_al.engine.config import LoopConfig, StoppingConfig
from quarry_al.engine.stopping import remaining_budget, stop_reason


def history(*accuracies: float, metric: str = "eval_accuracy") -> list[dict]:
    return [{"round": i, metric: a, "other": 0.0} for i, a in enumerate(accuracies)]


def loop(rounds: int = 100, label_budget: int | None = None, **stopping) -> LoopConfig:
    return LoopConfig(rounds=rounds, label_budget=label_budget, stopping=StoppingConfig(**stopping))


class TestMaxRounds:
    def test_stops_when_last_round_reaches_rounds(self):
        assert stop_reason(history(*[0.5] * 6), loop(rounds=5), 0) == "max rounds reached (5)"

    def test_one_round_before(self):
        assert stop_reason(history(*[0.5] * 5), loop(rounds=5), 0) is None

    def test_zero_rounds_stops_after_round_zero(self):
        assert stop_reason(history(0.5), loop(rounds=0), 0) == "max rounds reached (0)"

    def test_uses_round_number_not_history_length(self):
        assert stop_reason([{"round": 5, "eval_accuracy": 0.5}], loop(rounds=5), 0) == "max rounds reached (5)"

    def test_empty_history_does_not_stop(self):
        assert stop_reason([], loop(rounds=0), 0) is None


class TestBudget:
    def test_spent(self):
        assert stop_reason(history(0.5), loop(label_budget=200), 200) == "label budget spent (200/200)"
        assert stop_reason(history(0.5), loop(label_budget=200), 201) == "label budget spent (201/200)"

    def test_one_left(self):
        assert stop_reason(history(0.5), loop(label_budget=200), 199) is None

    def test_no_budget(self):
        assert stop_reason(history(0.5), loop(), 10**9) is None

    def test_remaining(self):
        assert remaining_budget(loop(label_budget=200), 150) == 50
        assert remaining_budget(loop(label_budget=200), 250) == 0
        assert remaining_budget(loop(), 150) is None


class TestPlateau:
    def test_needs_more_than_patience_rounds(self):
        assert stop_reason(history(0.5, 0.5, 0.5), loop(plateau_patience=3), 0) is None
        assert stop_reason(history(0.5, 0.5, 0.5, 0.5), loop(plateau_patience=3), 0) == (
            "plateau: eval_accuracy did not improve by more than 0.000 for 3 rounds")

    def test_no_improvement_over_best_earlier(self):
        # best earlier is 0.8 (round 1), the last 2 rounds do not beat it
        assert stop_reason(history(0.5, 0.8, 0.7, 0.79), loop(plateau_patience=2), 0) is not None

    def test_improvement_within_patience_continues(self):
        assert stop_reason(history(0.5, 0.8, 0.81, 0.7), loop(plateau_patience=2), 0) is None

    def test_min_delta_boundary(self):
        cfg = loop(plateau_patience=1, plateau_min_delta=0.05)
        assert stop_reason(history(0.5, 0.55), cfg, 0) == (
            "plateau: eval_accuracy did not improve by more than 0.050 for 1 rounds")
        assert stop_reason(history(0.5, 0.5501), cfg, 0) is None

    def test_metric_choice(self):
        rows = [{"round": 0, "eval_accuracy": 0.5, "eval_macro_f1": 0.4},
                {"round": 1, "eval_accuracy": 0.5, "eval_macro_f1": 0.6}]
        assert stop_reason(rows, loop(plateau_patience=1), 0) is not None
        assert stop_reason(rows, loop(plateau_patience=1, metric="eval_macro_f1"), 0) is None

    def test_off_by_default(self):
        assert stop_reason(history(*[0.5] * 10), loop(), 0) is None


class TestMinGain:
    def test_needs_more_than_k_rounds(self):
        assert stop_reason(history(0.5, 0.5), loop(min_gain=0.01, min_gain_rounds=2), 0) is None
        assert stop_reason(history(0.5, 0.5, 0.5), loop(min_gain=0.01, min_gain_rounds=2), 0) is not None

    def test_small_gain_stops(self):
        assert stop_reason(history(0.5, 0.7, 0.702, 0.704), loop(min_gain=0.01, min_gain_rounds=2), 0) == (
            "gain below 0.010 over the last 2 rounds (eval_accuracy +0.004)")

    def test_gain_equal_to_min_gain_continues(self):
        assert stop_reason(history(0.5, 0.25, 0.75), loop(min_gain=0.25, min_gain_rounds=1), 0) is None

    def test_gain_just_below_is_not_rounded_up(self):
        reason = stop_reason(history(0.5, 0.5099), loop(min_gain=0.01, min_gain_rounds=1), 0)
        assert reason == "gain below 0.010 over the last 1 rounds (eval_accuracy +0.0099)"

    def test_compares_with_k_rounds_back_only(self):
        # big jump 3 rounds back does not count for k=2
        cfg = loop(min_gain=0.05, min_gain_rounds=2)
        assert stop_reason(history(0.1, 0.7, 0.72, 0.74), cfg, 0) is not None
        assert stop_reason(history(0.1, 0.6, 0.7, 0.74), cfg, 0) is None

    def test_drop_stops(self):
        assert stop_reason(history(0.7, 0.6), loop(min_gain=0.0, min_gain_rounds=1), 0) == (
            "gain below 0.000 over the last 1 rounds (eval_accuracy -0.100)")


def test_order_max_rounds_first():
    cfg = loop(rounds=2, label_budget=10, plateau_patience=1, min_gain=0.5)
    assert stop_reason(history(0.5, 0.5, 0.5), cfg, 10) == "max rounds reached (2)"
    assert stop_reason(history(0.5, 0.5), cfg, 10) == "label budget spent (10/10)"


@pytest.mark.parametrize("cfg", [loop(plateau_patience=2), loop(min_gain=0.01)])
def test_improving_run_continues(cfg):
    assert stop_reason(history(0.5, 0.6, 0.7, 0.8), cfg, 0) is None
