"""Query strategies on hand-made probability arrays: the shared contract, then each one's ranking."""
from __future__ import annotations

import numpy as np
import pytest

from quarry_al.strategies import STRATEGIES, QueryStrategy, Scores, SelectionState, StrategyParamError, make_strategy
from quarry_al.strategies.base import top_k_unlabeled
from quarry_al.strategies.random_sampling import RandomSampling
from quarry_al.strategies.uncertainty import Entropy, LeastConfidence, Margin


def random_probs(n: int = 30, c: int = 4, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).dirichlet(np.ones(c), size=n)


def state_with(n: int, labeled: list[int] | None = None) -> SelectionState:
    mask = np.zeros(n, dtype=bool)
    mask[labeled or []] = True
    return SelectionState(labeled=mask)


class StrategyContract:
    """Every strategy's test class inherits this: the promises of `QueryStrategy.select`."""

    strategy_class: type

    def make(self) -> QueryStrategy:
        return self.strategy_class()

    def pick(self, probs: np.ndarray, labeled: list[int] | None = None, k: int = 5, seed: int = 0) -> np.ndarray:
        return self.make().select(Scores(probs=probs), state_with(len(probs), labeled), k, np.random.default_rng(seed))

    def test_is_a_registered_query_strategy(self):
        strategy = self.make()
        assert isinstance(strategy, QueryStrategy)
        assert STRATEGIES[strategy.name] is self.strategy_class

    def test_returns_k_distinct_int64_indices(self):
        chosen = self.pick(random_probs(), k=7)
        assert chosen.dtype == np.int64
        assert chosen.shape == (7,)
        assert len(set(chosen.tolist())) == 7
        assert ((chosen >= 0) & (chosen < 30)).all()

    def test_never_returns_labeled(self):
        labeled = list(range(0, 30, 2))
        for seed in range(5):
            chosen = self.pick(random_probs(seed=seed), labeled=labeled, k=10, seed=seed)
            assert not set(chosen.tolist()) & set(labeled)

    def test_k_larger_than_unlabeled_returns_all_unlabeled(self):
        labeled = list(range(25))
        chosen = self.pick(random_probs(), labeled=labeled, k=100)
        assert sorted(chosen.tolist()) == [25, 26, 27, 28, 29]

    def test_k_zero(self):
        chosen = self.pick(random_probs(), k=0)
        assert chosen.dtype == np.int64 and chosen.shape == (0,)

    def test_all_labeled(self):
        chosen = self.pick(random_probs(), labeled=list(range(30)), k=5)
        assert chosen.dtype == np.int64 and chosen.shape == (0,)

    def test_deterministic_for_a_seed(self):
        probs = random_probs()
        assert self.pick(probs, k=10, seed=3).tolist() == self.pick(probs, k=10, seed=3).tolist()

    def test_uses_the_generator_passed_in_not_the_global_one(self):
        probs = np.full((30, 3), 1 / 3)  # all ties: only the generator decides
        np.random.seed(0)
        first = self.pick(probs, k=10, seed=1)
        np.random.seed(12345)
        assert self.pick(probs, k=10, seed=1).tolist() == first.tolist()


class TestRandomSampling(StrategyContract):
    strategy_class = RandomSampling

    def test_different_seeds_give_different_picks(self):
        probs = random_probs(n=100)
        picks = {tuple(self.pick(probs, k=10, seed=s).tolist()) for s in range(5)}
        assert len(picks) == 5

    def test_ignores_probabilities(self):
        confident, uncertain = np.eye(3)[np.zeros(50, dtype=int)], np.full((50, 3), 1 / 3)
        assert self.pick(confident, k=10, seed=2).tolist() == self.pick(uncertain, k=10, seed=2).tolist()

    def test_roughly_uniform(self):
        probs = random_probs(n=10)
        counts = np.zeros(10)
        for seed in range(2000):
            counts[self.pick(probs, k=1, seed=seed)] += 1
        assert counts.min() > 140 and counts.max() < 260  # expected 200 each

    def test_has_no_utility(self):
        # The loop records a utility only for strategies that have one; random has none to show.
        assert not hasattr(self.make(), "utility")


class UncertaintyContract(StrategyContract):
    def test_utility_shape_and_order_matches_select(self):
        probs = random_probs()
        strategy = self.make()
        utility = strategy.utility(Scores(probs=probs))
        assert utility.shape == (30,)
        chosen = self.pick(probs, k=30)
        assert np.all(np.diff(utility[chosen]) <= 0)  # most informative first

    def test_ties_broken_at_random(self):
        probs = np.full((40, 2), 0.5)
        picks = {tuple(self.pick(probs, k=5, seed=s).tolist()) for s in range(6)}
        assert len(picks) > 1
        heads = {self.pick(probs, k=1, seed=s)[0] for s in range(40)}
        assert len(heads) > 10  # not drifting to the head of the pool


class TestLeastConfidence(UncertaintyContract):
    strategy_class = LeastConfidence

    def test_exact_ranking(self):
        probs = np.array([[0.9, 0.05, 0.05], [0.4, 0.3, 0.3], [0.6, 0.4, 0.0], [1.0, 0.0, 0.0]])
        assert self.pick(probs, k=4).tolist() == [1, 2, 0, 3]
        np.testing.assert_allclose(self.make().utility(Scores(probs)), [0.1, 0.6, 0.4, 0.0])

    def test_skips_labeled_best(self):
        probs = np.array([[0.9, 0.1], [0.5, 0.5], [0.7, 0.3]])
        assert self.pick(probs, labeled=[1], k=2).tolist() == [2, 0]


class TestMargin(UncertaintyContract):
    strategy_class = Margin

    def test_exact_ranking(self):
        probs = np.array([[0.6, 0.3, 0.1], [0.5, 0.5, 0.0], [0.8, 0.1, 0.1], [0.4, 0.35, 0.25]])
        assert self.pick(probs, k=4).tolist() == [1, 3, 0, 2]
        np.testing.assert_allclose(self.make().utility(Scores(probs)), [0.7, 1.0, 0.3, 0.95])

    def test_prefers_two_way_tie_over_uniform_spread_unlike_least_confidence(self):
        probs = np.array([[0.34, 0.33, 0.33], [0.5, 0.495, 0.005]])
        assert self.pick(probs, k=1).tolist() == [1]
        assert LeastConfidence().select(Scores(probs), state_with(2), 1, np.random.default_rng(0)).tolist() == [0]

    def test_order_of_classes_does_not_matter(self):
        probs = np.array([[0.1, 0.3, 0.6], [0.0, 0.5, 0.5]])
        np.testing.assert_allclose(self.make().utility(Scores(probs)), [0.7, 1.0])

    def test_single_class(self):
        np.testing.assert_allclose(self.make().utility(Scores(np.array([[1.0], [1.0]]))), [0.0, 0.0])


class TestEntropy(UncertaintyContract):
    strategy_class = Entropy

    def test_exact_ranking(self):
        probs = np.array([[0.5, 0.5, 0.0], [1 / 3, 1 / 3, 1 / 3], [1.0, 0.0, 0.0], [0.8, 0.1, 0.1]])
        assert self.pick(probs, k=4).tolist() == [1, 0, 3, 2]

    def test_values_with_zero_log_zero(self):
        probs = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.25, 0.25, 0.5]])
        with np.errstate(all="raise"):  # no log(0) warnings on the way
            utility = self.make().utility(Scores(probs))
        assert np.isfinite(utility).all()
        np.testing.assert_allclose(utility, [0.0, np.log(2), 1.5 * np.log(2)])

    def test_prefers_uniform_unlike_margin(self):
        probs = np.array([[0.5, 0.495, 0.005], [0.34, 0.33, 0.33]])
        assert self.pick(probs, k=1).tolist() == [1]
        assert Margin().select(Scores(probs), state_with(2), 1, np.random.default_rng(0)).tolist() == [0]


def test_top_k_unlabeled_orders_by_utility_and_skips_labeled():
    utility = np.array([0.1, 0.9, 0.5, 0.7, 0.3])
    chosen = top_k_unlabeled(utility, state_with(5, [1]), 3, np.random.default_rng(0))
    assert chosen.tolist() == [3, 2, 4]


class TestRegistry:
    def test_names(self):
        assert set(STRATEGIES) == {"random", "least_confidence", "margin", "entropy", "bald", "kmeans", "coreset",
                                   "density", "egl", "badge", "eer", "cal", "mixture", "two_stage", "adaptive",
                                   "token_entropy", "ifd", "superfilter"}
        assert all(cls.name == name for name, cls in STRATEGIES.items())

    @pytest.mark.parametrize("name", ["random", "least_confidence", "margin", "entropy"])
    def test_make_each(self, name):
        for params in (None, {}):
            strategy = make_strategy(name, params)
            assert isinstance(strategy, STRATEGIES[name]) and strategy.name == name

    def test_unknown_name(self):
        with pytest.raises(ValueError, match=r"unknown strategy 'baldd'; choose one of: adaptive, badge, bald, "):
            make_strategy("baldd")

    def test_unknown_param_is_named(self):
        with pytest.raises(StrategyParamError, match=r"^unknown parameter for strategy 'entropy'") as err:
            make_strategy("entropy", {"temperature": 2.0})
        assert err.value.param == "temperature"

    def test_exports(self):
        from quarry_al import strategies

        for name in ("Scores", "SelectionState", "QueryStrategy", "make_strategy", "STRATEGIES"):
            assert hasattr(strategies, name)
