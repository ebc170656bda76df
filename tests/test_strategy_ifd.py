"""ifd on hand-made arrays: the highest IFD below 1 first; flagged pairs (IFD >= 1) last or excluded."""
from __future__ import annotations

import numpy as np
import pytest

from quarry_al.strategies import Scores, SelectionState, StrategyParamError, make_strategy, needs_of
from quarry_al.strategies.ifd import ifd_utility

IFD = [0.30, 0.95, 1.40, 0.60, np.nan, 1.05, 0.10]


def scores(ifd: list[float] = IFD) -> Scores:
    return Scores(probs=np.ones((len(ifd), 1)), ifd=np.array(ifd))


def state(n: int, labeled: list[int] = ()) -> SelectionState:
    mask = np.zeros(n, dtype=bool)
    mask[list(labeled)] = True
    return SelectionState(labeled=mask)


def test_order_unflagged_high_first_then_least_flagged_then_unscored():
    chosen = make_strategy("ifd").select(scores(), state(7), 7, np.random.default_rng(0))
    assert chosen.tolist() == [1, 3, 0, 6, 5, 2, 4]


def test_exclude_flagged_returns_only_unflagged():
    chosen = make_strategy("ifd", {"exclude_flagged": True}).select(scores(), state(7, [1]), 7, np.random.default_rng(0))
    assert chosen.tolist() == [3, 0, 6]


def test_utility_ranks_every_unflagged_above_every_flagged():
    utility = ifd_utility(np.array([0.99, 1.0, 3.0, np.nan, 0.01]))
    assert utility[0] > utility[4] > utility[1] > utility[2] > utility[3]


def test_needs_and_params():
    assert needs_of(make_strategy("ifd")) == {"ifd"}
    with pytest.raises(StrategyParamError) as err:
        make_strategy("ifd", {"exclude_flagged": "yes"})
    assert err.value.param == "exclude_flagged"
    with pytest.raises(ValueError, match=r"strategy 'ifd' needs scores.ifd"):
        make_strategy("ifd").select(Scores(probs=np.ones((3, 1))), state(3), 2, np.random.default_rng(0))


def test_generation_scores_survive_the_run_folder(tmp_path):
    from quarry_al.engine.run_folder import RunFolder

    folder = RunFolder(tmp_path).create()
    saved = Scores(probs=np.ones((3, 1)), embeddings=np.zeros((3, 2)), token_entropy=np.array([0.5, 1.0, 2.0]),
                   ifd=np.array([0.3, np.nan, 1.2]))
    folder.save_scores(0, saved)
    loaded = folder.load_scores(0)
    np.testing.assert_array_equal(loaded.token_entropy, saved.token_entropy)
    np.testing.assert_array_equal(loaded.ifd, saved.ifd)
    folder.save_scores(1, Scores(probs=np.ones((3, 1)), embeddings=np.zeros((3, 2))))
    assert folder.load_scores(1).ifd is None and folder.load_scores(1).token_entropy is None


def test_misaligned_marks_ifd_of_one_and_above_but_not_missing_outputs():
    from quarry_al.strategies.ifd import misaligned

    assert misaligned(np.array([0.2, 1.0, 3.5, np.nan])).tolist() == [False, True, True, False]
