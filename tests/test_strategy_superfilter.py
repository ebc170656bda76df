"""superfilter on hand-made arrays: the IFD filter decides which pairs may be chosen, k-means spreads them."""
from __future__ import annotations

import numpy as np
import pytest

from quarry_al.strategies import Scores, SelectionState, StrategyParamError, make_strategy, needs_of


def state(n: int, labeled: list[int] = ()) -> SelectionState:
    mask = np.zeros(n, dtype=bool)
    mask[list(labeled)] = True
    return SelectionState(labeled=mask)


def clustered(seed: int = 0) -> Scores:
    """Four tight clusters of 10 points; in each, points 0-2 have a high IFD below 1, the rest a low one,
    and one point per cluster is flagged (IFD 1.3)."""
    rng = np.random.default_rng(seed)
    centres = np.array([[0, 0], [10, 0], [0, 10], [10, 10]], dtype=np.float32)
    embeddings = np.concatenate([c + 0.1 * rng.standard_normal((10, 2)) for c in centres]).astype(np.float32)
    ifd = np.tile([0.9, 0.85, 0.8, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 1.3], 4)
    return Scores(probs=np.ones((40, 1)), embeddings=embeddings, ifd=ifd)


def test_keeps_top_fraction_by_ifd_then_one_per_cluster():
    scores = clustered()
    chosen = make_strategy("superfilter", {"fraction": 0.3}).select(scores, state(40), 4, np.random.default_rng(0))
    assert len(chosen) == 4
    assert (scores.ifd[chosen] >= 0.8).all() and (scores.ifd[chosen] < 1).all()  # only the top 12 by IFD
    assert sorted(chosen // 10) == [0, 1, 2, 3]  # one per cluster


def test_exclude_flagged_never_picks_a_flagged_pair_even_when_short():
    scores = clustered()
    ifd = scores.ifd.copy()
    ifd[:37] = 1.5  # only 37 and 38 are below 1 (39 is flagged)
    strategy = make_strategy("superfilter", {"exclude_flagged": True})
    chosen = strategy.select(Scores(probs=scores.probs, embeddings=scores.embeddings, ifd=ifd), state(40), 4,
                             np.random.default_rng(0))
    assert sorted(chosen.tolist()) == [37, 38]


def test_labeled_pairs_are_never_kept():
    chosen = make_strategy("superfilter", {"fraction": 0.1}).select(clustered(), state(40, [0, 10, 20, 30]), 4,
                                                                    np.random.default_rng(1))
    assert not set(chosen.tolist()) & {0, 10, 20, 30}


@pytest.mark.parametrize("params,key", [({"fraction": 0}, "fraction"), ({"fraction": 1.5}, "fraction"),
                                        ({"fraction": True}, "fraction"), ({"exclude_flagged": 1}, "exclude_flagged")])
def test_bad_params_name_their_key(params, key):
    with pytest.raises(StrategyParamError) as err:
        make_strategy("superfilter", params)
    assert err.value.param == key


def test_needs_ifd_and_embeddings():
    assert needs_of(make_strategy("superfilter")) == {"ifd", "embeddings"}
    with pytest.raises(ValueError, match=r"strategy 'superfilter' needs scores.embeddings"):
        make_strategy("superfilter").select(Scores(probs=np.ones((3, 1)), ifd=np.ones(3)), state(3), 2,
                                            np.random.default_rng(0))
