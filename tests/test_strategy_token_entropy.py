"""token_entropy on hand-made arrays: highest mean token entropy first, labeled items skipped."""
from __future__ import annotations

import numpy as np
import pytest

from quarry_al.strategies import Scores, SelectionState, make_strategy, needs_of


def scores(entropy: list[float]) -> Scores:
    return Scores(probs=np.ones((len(entropy), 1)), token_entropy=np.array(entropy))


def state(n: int, labeled: list[int] = ()) -> SelectionState:
    mask = np.zeros(n, dtype=bool)
    mask[list(labeled)] = True
    return SelectionState(labeled=mask)


def test_highest_entropy_first_and_labeled_skipped():
    chosen = make_strategy("token_entropy").select(scores([0.1, 2.5, 0.7, 3.0, 1.2]), state(5, [3]), 3,
                                                   np.random.default_rng(0))
    assert chosen.tolist() == [1, 4, 2]


def test_missing_entropy_comes_last():
    chosen = make_strategy("token_entropy").select(scores([np.nan, 0.2, 0.1]), state(3), 3, np.random.default_rng(0))
    assert chosen.tolist() == [1, 2, 0]


def test_declares_and_requires_its_input():
    assert needs_of(make_strategy("token_entropy")) == {"token_entropy"}
    with pytest.raises(ValueError, match=r"strategy 'token_entropy' needs scores.token_entropy"):
        make_strategy("token_entropy").select(Scores(probs=np.ones((3, 1))), state(3), 2, np.random.default_rng(0))


def test_scores_check_the_shape():
    with pytest.raises(ValueError, match=r"token_entropy must be 1-D with one value per row \(3\)"):
        Scores(probs=np.ones((3, 1)), token_entropy=np.ones(4))
