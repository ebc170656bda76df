"""The strategies beyond plain uncertainty, on hand-made arrays with known answers.

Every registered strategy first meets the shared contract (k distinct unlabeled int64 indices,
deterministic per generator); then each family's defining preference is checked where it must show.
"""
from __future__ import annotations

import numpy as np
import pytest

from quarry_al.strategies import STRATEGIES, Scores, SelectionState, StrategyParamError, make_strategy, needs_of
from quarry_al.strategies.base import rank_normalise
from quarry_al.strategies.diversity import first_per_group
from quarry_al.strategies.hybrid import Adaptive, prediction_agreement


def blobs(centres: np.ndarray, per: int, spread: float = 0.05, seed: int = 0) -> np.ndarray:
    """`per` points around each centre, centre by centre."""
    rng = np.random.default_rng(seed)
    return np.concatenate([c + spread * rng.standard_normal((per, len(c))) for c in centres]).astype(np.float32)


def full_scores(n: int = 60, c: int = 3, d: int = 8, seed: int = 0) -> Scores:
    rng = np.random.default_rng(seed)
    return Scores(probs=rng.dirichlet(np.ones(c), size=n), embeddings=rng.standard_normal((n, d)).astype(np.float32),
                  mc_probs=rng.dirichlet(np.ones(c), size=(4, n)), token_entropy=rng.gamma(2.0, size=n),
                  ifd=rng.uniform(0.2, 1.4, size=n))


def state(n: int, labeled: list[int] | np.ndarray = (), labels: np.ndarray | None = None, **kw) -> SelectionState:
    mask = np.zeros(n, dtype=bool)
    mask[list(labeled)] = True
    return SelectionState(labeled=mask, labels=labels, **kw)


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


CONFIGS = [(name, {}) for name in STRATEGIES] + [
    ("kmeans", {"pick": "uncertain"}), ("density", {"uncertainty": "bald", "beta": 2.0}),
    ("cal", {"neighbour_probs": "gold"}), ("two_stage", {"diversity": "coreset"}),
    ("adaptive", {"switch_round": None, "agreement": 0.9}), ("eer", {"prefilter": "random"}),
    ("mixture", {"weights": {"entropy": 1.0, "cal": 1.0, "egl": 0.5}}),
    ("margin", {"subsample": 20}), ("coreset", {"subsample": 20, "subsample_method": "seals"}),
    ("badge", {"subsample": 15, "subsample_method": "seals", "subsample_neighbours": 2}),
]


@pytest.mark.parametrize("name,params", CONFIGS, ids=[f"{n}{p}" for n, p in CONFIGS])
class TestContract:
    def labels(self, n: int, labeled: list[int]) -> np.ndarray:
        labels = np.full(n, -1)
        labels[labeled] = np.arange(len(labeled)) % 3
        return labels

    def test_k_distinct_unlabeled(self, name, params):
        labeled = list(range(0, 60, 3))
        chosen = make_strategy(name, params).select(full_scores(), state(60, labeled, self.labels(60, labeled), round=2),
                                                    7, rng())
        assert chosen.dtype == np.int64 and chosen.shape == (7,)
        assert len(set(chosen.tolist())) == 7
        assert not set(chosen.tolist()) & set(labeled)

    def test_deterministic_per_generator(self, name, params):
        labeled = [1, 5, 9, 30]
        picks = [make_strategy(name, params).select(full_scores(), state(60, labeled, self.labels(60, labeled)), 6,
                                                    rng(4)).tolist() for _ in range(2)]
        assert picks[0] == picks[1]

    def test_nothing_labeled_and_everything_labeled(self, name, params):
        strategy = make_strategy(name, params)
        cold = strategy.select(full_scores(), state(60, labels=np.full(60, -1)), 5, rng())
        assert len(set(cold.tolist())) == 5
        assert strategy.select(full_scores(), state(60, range(60), np.zeros(60, int)), 5, rng()).shape == (0,)

    def test_k_above_unlabeled_returns_all_of_them(self, name, params):
        labeled = list(range(55))
        chosen = make_strategy(name, params).select(full_scores(), state(60, labeled, self.labels(60, labeled)), 50,
                                                    rng())
        assert sorted(chosen.tolist()) == [55, 56, 57, 58, 59]


class TestNeeds:
    def test_declared_inputs(self):
        assert needs_of(make_strategy("entropy")) == frozenset()
        assert needs_of(make_strategy("bald")) == {"mc_probs"}
        assert needs_of(make_strategy("coreset")) == {"embeddings"}
        assert needs_of(make_strategy("margin", {"subsample": 10, "subsample_method": "seals"})) == {"embeddings"}
        assert needs_of(make_strategy("margin", {"subsample": 10})) == frozenset()
        assert needs_of(make_strategy("two_stage", {"prefilter": "bald"})) == {"mc_probs", "embeddings"}

    def test_missing_input_is_a_clear_error(self):
        with pytest.raises(ValueError, match=r"strategy 'coreset' needs scores.embeddings, which were not computed"):
            make_strategy("coreset").select(Scores(probs=np.full((4, 2), 0.5)), state(4, [0]), 2, rng())
        with pytest.raises(ValueError, match=r"strategy 'bald' needs scores.mc_probs"):
            make_strategy("bald").select(Scores(probs=np.full((4, 2), 0.5)), state(4), 2, rng())

    def test_mc_passes_reach_the_loop_through_wrappers_and_hybrids(self):
        from quarry_al.strategies import mc_passes_of

        assert mc_passes_of(make_strategy("bald", {"mc_passes": 7})) == 7
        assert mc_passes_of(make_strategy("bald", {"mc_passes": 7, "subsample": 100})) == 7
        assert mc_passes_of(make_strategy("two_stage", {"prefilter": "bald"})) == 10
        assert mc_passes_of(make_strategy("mixture", {"weights": {"bald": 1}, "params": {"bald": {"mc_passes": 4}}})) == 4
        assert mc_passes_of(make_strategy("margin")) == 0

    def test_mc_probs_shape_checked(self):
        with pytest.raises(ValueError, match=r"mc_probs must be \(T, n, c\)"):
            Scores(probs=np.full((4, 2), 0.5), mc_probs=np.full((3, 5, 2), 0.5))


class TestParams:
    @pytest.mark.parametrize("name,params,key", [
        ("kmeans", {"pick": "farthest"}, "pick"), ("bald", {"mc_passes": 1}, "mc_passes"),
        ("density", {"beta": -1}, "beta"), ("cal", {"neighbour_probs": "x"}, "neighbour_probs"),
        ("eer", {"candidates": 0}, "candidates"), ("two_stage", {"diversity": "random"}, "diversity"),
        ("two_stage", {"prefilter": "coreset"}, "prefilter"), ("mixture", {"weights": {"kmeans": 1}}, "weights.kmeans"),
        ("mixture", {"weights": {"margin": -1}}, "weights.margin"), ("adaptive", {"late": "nope"}, "late"),
        ("margin", {"subsample": 0}, "subsample"), ("margin", {"subsample": 5, "subsample_method": "x"},
                                                     "subsample_method"),
        ("margin", {"subsample_method": "seals"}, "subsample"), ("coreset", {"k": 3}, "k"),
    ])
    def test_bad_param_names_its_key(self, name, params, key):
        with pytest.raises(StrategyParamError) as err:
            make_strategy(name, params)
        assert err.value.param == key or err.value.param.startswith(f"{key}.")
        assert "\n" not in str(err.value) and "strategy.params" not in str(err.value)  # the caller adds the key path

    def test_a_component_error_names_its_path(self):
        with pytest.raises(StrategyParamError) as err:
            make_strategy("adaptive", {"late": "bald", "late_params": {"mc_passes": 1}})
        assert err.value.param == "late_params.mc_passes"
        with pytest.raises(StrategyParamError) as err:
            make_strategy("mixture", {"weights": {"bald": 1}, "params": {"bald": {"x": 1}}})
        assert err.value.param == "params.bald.x" and "unknown parameter for strategy 'bald'" in err.value.message


class TestBALD:
    def test_prefers_disagreement_across_passes_over_agreed_doubt(self):
        agree_flat = np.tile([[0.5, 0.5]], (4, 1))  # every pass unsure in the same way: aleatoric
        disagree = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])  # confident passes that differ
        confident = np.tile([[0.99, 0.01]], (4, 1))
        mc = np.stack([agree_flat, disagree, confident], axis=1)  # (T=4, n=3, c=2)
        scores = Scores(probs=mc.mean(axis=0), mc_probs=mc)
        utility = make_strategy("bald").utility(scores)
        np.testing.assert_allclose(utility, [0.0, np.log(2), 0.0], atol=1e-12)
        assert make_strategy("bald").select(scores, state(3), 1, rng()).tolist() == [1]
        # Entropy of the mean cannot tell the first two apart: both mean to (0.5, 0.5).
        assert make_strategy("entropy").utility(scores)[0] == pytest.approx(make_strategy("entropy").utility(scores)[1])


class TestKMeans:
    centres = np.array([[0, 0], [10, 0], [0, 10], [10, 10]], dtype=float)

    def test_one_per_cluster_nearest_the_centre(self):
        ring = np.array([[0, 0], [1, 0], [-1, 0], [0, 1], [0, -1], [1, 1], [-1, -1], [1, -1], [-1, 1]], dtype=float)
        x = np.concatenate([c + ring for c in self.centres]).astype(np.float32)  # row 9i is cluster i's centre
        for seed in range(3):
            chosen = make_strategy("kmeans").select(Scores(np.full((36, 2), 0.5), x), state(36), 4, rng(seed))
            assert sorted(chosen.tolist()) == [0, 9, 18, 27]

    def test_uncertain_pick_takes_the_most_uncertain_of_each_cluster(self):
        x = blobs(self.centres, per=10)
        probs = np.tile([0.95, 0.05], (40, 1))
        doubtful = [3, 17, 25, 38]
        probs[doubtful] = [0.55, 0.45]
        scores = Scores(probs, x)
        chosen = make_strategy("kmeans", {"pick": "uncertain"}).select(scores, state(40), 4, rng())
        assert sorted(chosen.tolist()) == doubtful
        # Plain margin would take any four of them too, but not one per cluster when two share one:
        probs[4] = [0.5, 0.5]
        chosen = make_strategy("kmeans", {"pick": "uncertain"}).select(Scores(probs, x), state(40), 4, rng())
        assert sorted(chosen.tolist()) == [4, 17, 25, 38]

    def test_first_per_group(self):
        groups, key = np.array([1, 0, 1, 0, 2]), np.array([5.0, 3.0, 1.0, 4.0, 0.0])
        assert sorted(first_per_group(groups, key).tolist()) == [1, 2, 4]


class TestCoreSet:
    def test_picks_the_far_point(self):
        x = np.concatenate([blobs(np.zeros((1, 2)), per=20), [[50.0, 50.0]]]).astype(np.float32)
        chosen = make_strategy("coreset").select(Scores(np.full((21, 2), 0.5), x), state(21, [0]), 1, rng())
        assert chosen.tolist() == [20]

    def test_labeled_items_are_the_initial_centres(self):
        centres = np.array([[0, 0], [10, 0], [0, 10]], dtype=float)
        x = blobs(centres, per=10)
        # Two clusters already have a label each: the first pick must come from the third.
        chosen = make_strategy("coreset").select(Scores(np.full((30, 2), 0.5), x), state(30, [0, 10]), 1, rng())
        assert 20 <= chosen[0] < 30

    def test_spreads_the_batch_over_clusters(self):
        centres = np.array([[0, 0], [10, 0], [0, 10], [10, 10]], dtype=float)
        x = blobs(centres, per=10)
        chosen = make_strategy("coreset").select(Scores(np.full((40, 2), 0.5), x), state(40, [0]), 3, rng())
        assert sorted(int(i) // 10 for i in chosen) == [1, 2, 3]


class TestDensity:
    def test_outlier_loses_to_an_equally_uncertain_typical_item(self):
        x = np.concatenate([blobs(np.array([[1.0, 1.0]]), per=10), [[-1.0, 0.2]]]).astype(np.float32)
        probs = np.tile([0.9, 0.1], (11, 1))
        probs[[3, 10]] = [0.5, 0.5]  # one typical, one outlier, equally uncertain
        chosen = make_strategy("density").select(Scores(probs, x), state(11), 1, rng())
        assert chosen.tolist() == [3]
        assert make_strategy("density", {"beta": 0.0}).utility(Scores(probs, x))[10] == pytest.approx(np.log(2))


class TestEGL:
    def test_values(self):
        probs = np.array([[0.5, 0.5], [1.0, 0.0], [0.5, 0.5]])
        emb = np.array([[1.0, 0.0], [3.0, 4.0], [3.0, 4.0]])
        # p = (.5, .5): |p - e_y| = sqrt(.5) for both labels; norm h 1 and 5; certain item: 0.
        np.testing.assert_allclose(make_strategy("egl").utility(Scores(probs, emb)), [np.sqrt(0.5), 0.0, 5 * np.sqrt(0.5)])


class TestBADGE:
    def test_picks_distinct_clusters(self):
        centres = np.array([[0, 0, 5], [5, 0, 0], [0, 5, 0]], dtype=float)
        x = blobs(centres, per=15)
        probs = np.tile([0.5, 0.5], (45, 1))
        for seed in range(5):
            chosen = make_strategy("badge").select(Scores(probs, x), state(45), 3, rng(seed))
            assert sorted(int(i) // 15 for i in chosen) == [0, 1, 2]

    def test_first_pick_is_the_largest_gradient(self):
        x = np.ones((5, 2))
        probs = np.array([[0.9, 0.1], [0.6, 0.4], [0.99, 0.01], [0.8, 0.2], [0.7, 0.3]])
        assert make_strategy("badge").select(Scores(probs, x), state(5), 1, rng()).tolist() == [1]


class TestCAL:
    def scene(self):
        # Two labeled anchors; unlabeled item 2 sits next to anchor 0 and agrees with it,
        # item 3 sits next to anchor 1 but the student predicts the other class there.
        emb = np.array([[0.0, 0.0], [10.0, 0.0], [0.1, 0.0], [10.1, 0.0], [5.0, 5.0]])
        probs = np.array([[0.9, 0.1], [0.1, 0.9], [0.85, 0.15], [0.8, 0.2], [0.5, 0.5]])
        return Scores(probs, emb)

    def test_prefers_items_whose_labeled_neighbours_disagree(self):
        scores = self.scene()
        cal = make_strategy("cal", {"neighbours": 1})
        utility = cal.utility(scores, state(5, [0, 1]))
        assert utility[3] > utility[4] > utility[2] > 0
        assert cal.select(scores, state(5, [0, 1]), 1, rng()).tolist() == [3]

    def test_gold_mode_uses_decided_labels(self):
        scores = self.scene()
        labels = np.array([1, 0, -1, -1, -1])  # gold says the opposite of the student at both anchors
        utility = make_strategy("cal", {"neighbours": 1, "neighbour_probs": "gold"}).utility(
            scores, state(5, [0, 1], labels))
        assert utility[2] > utility[3]

    def test_gold_mode_without_labels_is_a_clear_error(self):
        with pytest.raises(ValueError, match=r"needs the decided labels"):
            make_strategy("cal", {"neighbour_probs": "gold"}).select(self.scene(), state(5, [0]), 1, rng())


class TestEER:
    def test_falls_back_to_entropy_with_one_class_labeled(self):
        scores = full_scores()
        labels = np.full(60, -1)
        labels[[0, 1]] = 0
        chosen = make_strategy("eer").select(scores, state(60, [0, 1], labels), 3, rng())
        expected = make_strategy("entropy").select(scores, state(60, [0, 1]), 3, rng())
        assert chosen.tolist() == expected.tolist()

    def test_prefers_the_item_that_settles_an_ambiguous_region(self):
        # Two labeled clusters; a band of unlabeled items between them that the head cannot place,
        # and far, already clear items. Labeling a band item lowers the expected pool loss most.
        rng_ = np.random.default_rng(0)
        left = np.c_[-1 + 0.05 * rng_.standard_normal(20), 1 + 0.05 * rng_.standard_normal(20)]
        right = np.c_[1 + 0.05 * rng_.standard_normal(20), 1 + 0.05 * rng_.standard_normal(20)]
        band = np.c_[0.05 * rng_.standard_normal(30), 1 + 0.05 * rng_.standard_normal(30)]
        emb = np.concatenate([left, right, band]).astype(np.float32)
        labels = np.full(70, -1)
        labeled = [0, 1, 20, 21]
        labels[labeled] = [0, 0, 1, 1]
        probs = np.full((70, 2), 0.5)
        chosen = make_strategy("eer", {"prefilter": "random", "candidates": 66, "steps": 20}).select(
            Scores(probs, emb), state(70, labeled, labels), 5, rng())
        assert (chosen >= 40).sum() >= 4

    def test_a_batch_larger_than_the_candidate_count_is_filled(self):
        scores = full_scores()
        labels = np.full(60, -1)
        labels[[0, 1]] = [0, 1]
        chosen = make_strategy("eer", {"candidates": 5}).select(scores, state(60, [0, 1], labels), 12, rng())
        assert len(set(chosen.tolist())) == 12 and not {0, 1} & set(chosen.tolist())


class TestSubsampling:
    def test_only_unlabeled_k_of_them_deterministic(self):
        scores = full_scores(n=500)
        labeled = list(range(0, 500, 7))
        strategy = make_strategy("random", {"subsample": 40})
        candidates = strategy.candidates(scores, state(500, labeled), rng(3))
        assert len(candidates) == 40 and len(set(candidates.tolist())) == 40
        assert not set(candidates.tolist()) & set(labeled)
        assert candidates.tolist() == strategy.candidates(scores, state(500, labeled), rng(3)).tolist()
        assert candidates.tolist() != strategy.candidates(scores, state(500, labeled), rng(4)).tolist()

    def test_selection_stays_inside_the_candidates(self):
        scores = full_scores(n=500)
        strategy = make_strategy("entropy", {"subsample": 30})
        candidates = strategy.candidates(scores, state(500), rng(1))
        chosen = strategy.select(scores, state(500), 10, rng(1))
        assert set(chosen.tolist()) <= set(candidates.tolist())

    def test_seals_takes_neighbours_of_the_labeled_set(self):
        x = blobs(np.array([[0, 0], [20, 20]], dtype=float), per=50)
        strategy = make_strategy("margin", {"subsample": 10, "subsample_method": "seals", "subsample_neighbours": 10})
        candidates = strategy.candidates(Scores(np.full((100, 2), 0.5), x), state(100, [60]), rng())
        assert len(candidates) == 10 and all(50 <= i < 100 and i != 60 for i in candidates)

    def test_seals_tops_up_at_random_when_neighbours_are_too_few(self):
        x = blobs(np.array([[0, 0], [20, 20]], dtype=float), per=50)
        strategy = make_strategy("margin", {"subsample": 30, "subsample_method": "seals", "subsample_neighbours": 5})
        candidates = strategy.candidates(Scores(np.full((100, 2), 0.5), x), state(100, [60]), rng())
        assert len(set(candidates.tolist())) == 30 and 60 not in candidates

    def test_core_set_on_candidates_still_measures_from_labeled_items(self):
        # The far point is a candidate; the labeled item stays a centre inside the subsample.
        x = np.concatenate([blobs(np.zeros((1, 2)), per=20), [[50.0, 50.0]]]).astype(np.float32)
        strategy = make_strategy("coreset", {"subsample": 20})
        assert strategy.select(Scores(np.full((21, 2), 0.5), x), state(21, [0]), 1, rng()).tolist() == [20]


class TestHybrids:
    def test_rank_normalise(self):
        np.testing.assert_allclose(rank_normalise(np.array([0.1, 5.0, 0.1, 2.0])), [0.0, 1.0, 0.0, 0.5])

    def test_mixture_weights_decide(self):
        scores = full_scores()
        only_margin = make_strategy("mixture", {"weights": {"margin": 1.0, "entropy": 0.0}})
        assert (only_margin.select(scores, state(60), 5, rng()).tolist()
                == make_strategy("margin").select(scores, state(60), 5, rng()).tolist())

    def test_mixture_params_reach_components(self):
        mixture = make_strategy("mixture", {"weights": {"density": 1.0}, "params": {"density": {"beta": 3.0}}})
        assert mixture.components[0][1].beta == 3.0

    def test_two_stage_is_diverse_among_the_uncertain(self):
        centres = np.array([[0, 0], [10, 0], [0, 10], [10, 10]], dtype=float)
        x = blobs(centres, per=10)
        probs = np.tile([0.99, 0.01], (40, 1))
        uncertain = [0, 1, 2, 3, 10, 20]  # four in one cluster, one in two others
        probs[uncertain] = [0.5, 0.5]
        chosen = make_strategy("two_stage", {"factor": 2, "diversity": "coreset"}).select(
            Scores(probs, x), state(40, [30]), 3, rng())
        assert set(chosen.tolist()) <= set(uncertain)
        assert sorted(int(i) // 10 for i in chosen) == [0, 1, 2]

    def test_adaptive_switches_by_round(self):
        strategy = Adaptive(switch_round=3)
        scores = full_scores()
        assert strategy.phase(scores, state(60)) == "cold"
        assert strategy.phase(scores, state(60, [0], round=2)) == "early"
        assert strategy.phase(scores, state(60, [0], round=3)) == "late"
        late = strategy.select(scores, state(60, [0], round=3), 5, rng())
        assert late.tolist() == make_strategy("margin").select(scores, state(60, [0]), 5, rng()).tolist()

    def test_adaptive_switches_when_predictions_stop_changing(self):
        scores = full_scores()
        strategy = Adaptive(switch_round=None, agreement=0.9)
        changed = scores.probs[:, ::-1]
        assert prediction_agreement(state(60, [0], previous_probs=scores.probs), scores) == 1.0
        assert strategy.phase(scores, state(60, [0], round=9, previous_probs=changed)) == "early"
        assert strategy.phase(scores, state(60, [0], round=9, previous_probs=scores.probs)) == "late"
        assert strategy.phase(scores, state(60, [0], round=9)) == "early"  # no previous round: no signal


def test_seals_searches_from_a_bounded_number_of_labeled_items():
    # 40 labeled items, 5 candidates wanted, 5 neighbours each: one labeled item is enough to search from,
    # so all 5 candidates are the neighbours of a single one of the labeled clusters.
    centres = np.array([[0, 0], [30, 0], [0, 30], [30, 30]], dtype=float)
    x = blobs(centres, per=20)
    labeled = [i for i in range(80) if i % 20 < 10]
    strategy = make_strategy("margin", {"subsample": 5, "subsample_method": "seals", "subsample_neighbours": 5})
    candidates = strategy.candidates(Scores(np.full((80, 2), 0.5), x), state(80, labeled), rng())
    assert len({int(i) // 20 for i in candidates}) == 1


def test_density_matches_the_definition():
    emb = np.random.default_rng(0).standard_normal((30, 5)).astype(np.float32) + 1.0
    unit = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    expected = np.clip((unit @ unit.T).mean(axis=1), 0, None)
    np.testing.assert_allclose(make_strategy("density").density(Scores(np.full((30, 2), 0.5), emb)), expected,
                               rtol=1e-5)


def test_top_k_partition_matches_a_full_sort_with_ties_at_the_boundary():
    from quarry_al.strategies.base import top_k_unlabeled

    for seed in range(20):
        gen = np.random.default_rng(seed)
        utility = gen.integers(0, 4, size=200).astype(float)  # many ties, also at the k-th value
        st = state(200, gen.choice(200, size=50, replace=False))
        tiebreak = np.random.default_rng(seed).random(150)
        candidates = st.unlabeled_indices
        reference = candidates[np.lexsort((tiebreak, -utility[candidates]))[:17]]
        assert top_k_unlabeled(utility, st, 17, np.random.default_rng(seed)).tolist() == reference.tolist()


def test_nearest_unlabeled_matches_brute_force_across_shards():
    from quarry_al.strategies.shards import Shards
    from quarry_al.strategies.subsample import nearest_unlabeled

    gen = np.random.default_rng(0)
    emb = gen.standard_normal((500, 6)).astype(np.float32)
    labeled = np.zeros(500, dtype=bool)
    labeled[gen.choice(500, size=100, replace=False)] = True
    queries = np.flatnonzero(labeled)[:7]
    found = nearest_unlabeled(Shards([emb[:64], emb[64:300], emb[300:]]), labeled, queries, 5)
    d = ((emb[queries, None, :] - emb[None, :, :]) ** 2).sum(-1)
    d[:, labeled] = np.inf
    expected = np.sort(np.argsort(d, axis=1)[:, :5], axis=1)
    assert found.shape == (35,) and not labeled[found].any()
    np.testing.assert_array_equal(np.sort(found.reshape(7, 5), axis=1), expected)
