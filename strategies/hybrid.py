"""Hybrid and adaptive strategies: combine uncertainty with diversity, or move from one to the other.

Components are other registered strategies, built with `make_strategy` from their names and params.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .base import Scores, SelectionState, StrategyError, StrategyParamError, mc_passes_of, needs_of, rank_normalise, top_k_unlabeled
from .diversity import KMeansSampling
from .registry import make_strategy, register


def _build(key: str, name: Any, params: Any = None, params_key: str | None = None):
    """A component strategy; its errors name the component's key (`late_params.mc_passes`)."""
    params_key = params_key or f"{key}_params"
    if not isinstance(name, str):
        raise StrategyParamError(key, f"must be a strategy name, got {name!r}")
    if params is not None and not isinstance(params, dict):
        raise StrategyParamError(params_key, f"must be a mapping, got {params!r}")
    try:
        return make_strategy(name, params)
    except StrategyParamError as exc:
        raise exc.under(params_key) from None
    except StrategyError as exc:
        raise StrategyParamError(key, str(exc)) from None


@register
class WeightedMixture:
    """Utility sum_i w_i * rank(u_i) / n over component utilities, each rank-normalised to [0, 1].

    A weighted combination of informativeness and representativeness in the spirit of Settles &
    Craven 2008 (EMNLP) and Huang, Jin & Zhou 2010, "Active Learning by Querying Informative and
    Representative Examples", NeurIPS. Ranks, not raw values, so entropy in nats and a similarity in
    [0, 1] weigh what their weights say. `weights` maps a strategy name to its weight; `params`
    maps a strategy name to its params. Components need a `utility` (uncertainty, density, egl, cal).
    """

    name = "mixture"

    def __init__(self, weights: dict[str, float] | None = None, params: dict[str, dict] | None = None):
        weights = weights if weights is not None else {"margin": 0.5, "density": 0.5}
        if not isinstance(weights, dict) or not weights:
            raise StrategyParamError("weights", f"must map strategy names to weights, got {weights!r}")
        params = params or {}
        for name in params:
            if name not in weights:
                raise StrategyParamError(f"params.{name}", "not one of the weighted strategies")
        self.components = []
        for name, weight in weights.items():
            if not isinstance(weight, (int, float)) or weight < 0:
                raise StrategyParamError(f"weights.{name}", f"must be a number >= 0, got {weight!r}")
            component = _build(f"weights.{name}", name, params.get(name), params_key=f"params.{name}")
            if not hasattr(component, "utility"):
                raise StrategyParamError(f"weights.{name}", f"strategy '{name}' has no per-item utility to mix")
            self.components.append((float(weight), component))
        self.needs = frozenset().union(*(needs_of(c) for _, c in self.components))
        self.mc_passes = mc_passes_of(*(c for _, c in self.components))

    def utility(self, scores: Scores, state: SelectionState) -> np.ndarray:
        unlabeled = state.unlabeled_indices
        total = np.zeros(scores.n)
        for weight, component in self.components:
            total[unlabeled] += weight * rank_normalise(component.utility(scores, state)[unlabeled])
        return total

    def select(self, scores: Scores, state: SelectionState, k: int, rng: np.random.Generator) -> np.ndarray:
        return top_k_unlabeled(self.utility(scores, state), state, k, rng)


@register
class TwoStage:
    """Top `factor` * k unlabeled items by an uncertainty utility, then a diverse k among them.

    Zhdanov 2019, "Diverse mini-batch Active Learning", arXiv:1901.05954 (margin pre-filter, then
    k-means); Citovsky et al. 2021, "Batch Active Learning at Scale", NeurIPS. `diversity` is
    `kmeans` (the item nearest each centre) or `coreset` (greedy k-center, labeled items as centres).
    """

    name = "two_stage"

    def __init__(self, prefilter: str = "margin", factor: int = 10, diversity: str = "kmeans"):
        if not isinstance(factor, int) or factor < 1:
            raise StrategyParamError("factor", f"must be a positive integer, got {factor!r}")
        if diversity not in ("kmeans", "coreset"):
            raise StrategyParamError("diversity", f"must be 'kmeans' or 'coreset', got {diversity!r}")
        self.prefilter = _build("prefilter", prefilter)
        if not hasattr(self.prefilter, "utility"):
            raise StrategyParamError("prefilter", f"strategy '{prefilter}' has no per-item utility")
        self.factor, self.diversity = factor, _build("diversity", diversity)
        self.needs = needs_of(self.prefilter) | needs_of(self.diversity)
        self.mc_passes = mc_passes_of(self.prefilter, self.diversity)

    def select(self, scores: Scores, state: SelectionState, k: int, rng: np.random.Generator) -> np.ndarray:
        shortlist = top_k_unlabeled(self.prefilter.utility(scores, state), state, self.factor * k, rng)
        rows = np.concatenate([shortlist, state.labeled_indices])
        chosen = self.diversity.select(scores.take(rows), state.take(rows), k, rng)
        return rows[chosen].astype(np.int64)


def prediction_agreement(state: SelectionState, scores: Scores) -> float | None:
    """Share of pool items whose predicted class did not change since the previous round's student."""
    if state.previous_probs is None or len(state.previous_probs) != scores.n or scores.n == 0:
        return None
    return float(np.mean(state.previous_probs.argmax(axis=1) == scores.probs.argmax(axis=1)))


@register
class Adaptive:
    """Diversity first, uncertainty later: `early` until round `switch_round`, or until the student's
    pool predictions agree with the previous round's on at least `agreement` of the items; `late` after.

    Donmez, Carbonell & Bennett 2007, "Dual Strategy Active Learning", ECML (density first, then
    uncertainty once the learner stabilises); the stabilising signal follows Bloodgood &
    Vijay-Shanker 2009 (CoNLL). With nothing labeled it clusters (k-means, item nearest each centre):
    the cold start. Either trigger switches; set `switch_round: null` to switch on the signal alone.
    """

    name = "adaptive"

    def __init__(self, early: str = "kmeans", late: str = "margin", switch_round: int | None = 3,
                 agreement: float | None = None, early_params: dict | None = None, late_params: dict | None = None):
        if switch_round is None and agreement is None:
            raise StrategyParamError("switch_round", "give switch_round, agreement or both")
        if switch_round is not None and (not isinstance(switch_round, int) or switch_round < 1):
            raise StrategyParamError("switch_round", f"must be a positive integer or null, got {switch_round!r}")
        if agreement is not None and not 0 < agreement <= 1:
            raise StrategyParamError("agreement", f"must be in (0, 1] or null, got {agreement!r}")
        self.early, self.late = _build("early", early, early_params), _build("late", late, late_params)
        self.switch_round, self.agreement = switch_round, agreement
        self.cold = KMeansSampling()
        self.needs = needs_of(self.early) | needs_of(self.late) | needs_of(self.cold)
        self.mc_passes = mc_passes_of(self.early, self.late)

    def phase(self, scores: Scores, state: SelectionState) -> str:
        """'cold', 'early' or 'late': which strategy this round uses."""
        if not state.labeled.any():
            return "cold"
        if self.switch_round is not None and state.round >= self.switch_round:
            return "late"
        agreement = prediction_agreement(state, scores)
        if self.agreement is not None and agreement is not None and agreement >= self.agreement:
            return "late"
        return "early"

    def select(self, scores: Scores, state: SelectionState, k: int, rng: np.random.Generator) -> np.ndarray:
        strategy = {"cold": self.cold, "early": self.early, "late": self.late}[self.phase(scores, state)]
        return strategy.select(scores, state, k, rng)
