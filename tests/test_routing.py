"""Routing rules: every way a teacher answer is accepted or sent to a human, and the reason given."""
from __future__ import annotations

import pytest

from quarry_al.engine.config import RoutingConfig
from quarry_al.engine.routing import Decision, Router, StudentPrediction
from quarry_al.engine.teacher.base import TeacherResult


def route(confidence: float | None, student: StudentPrediction | None = None, label: str | None = "pos",
          **config) -> Decision:
    return Router(RoutingConfig(**config)).route(TeacherResult(label=label, confidence=confidence), student)


AGREE = StudentPrediction("pos", 0.71)
DISAGREE = StudentPrediction("neg", 0.71)


class TestFailures:
    @pytest.mark.parametrize("mode", ["ignore", "required", "sufficient"])
    def test_error_goes_to_human_with_kind_and_message(self, mode):
        result = TeacherResult(label=None, confidence=None, error="timeout", error_message="no answer in 60 s")
        decision = Router(RoutingConfig(student_agreement=mode)).route(result, AGREE)
        assert decision == Decision("human", "teacher failed (timeout): no answer in 60 s")

    def test_error_with_a_label_still_goes_to_human(self):
        result = TeacherResult(label="pos", confidence=0.99, error="out_of_set", error_message="said 'maybe'")
        assert Router(RoutingConfig()).route(result, AGREE) == Decision("human", "teacher failed (out_of_set): said 'maybe'")

    def test_error_without_message(self):
        result = TeacherResult(label=None, confidence=None, error="server")
        assert Router(RoutingConfig()).route(result, None) == Decision("human", "teacher failed (server)")

    def test_no_label_without_error(self):
        assert route(0.99, label=None) == Decision("human", "teacher failed (no label)")

    @pytest.mark.parametrize("mode", ["ignore", "required", "sufficient"])
    def test_no_confidence(self, mode):
        assert route(None, AGREE, student_agreement=mode) == Decision("human", "teacher gave no confidence")


class TestIgnore:
    def test_accept_at_or_above_threshold(self):
        assert route(0.93) == Decision("accept", "teacher confidence 0.93 >= 0.80")
        assert route(0.8) == Decision("accept", "teacher confidence 0.80 >= 0.80")

    def test_human_below_threshold(self):
        assert route(0.55) == Decision("human", "teacher confidence 0.55 < 0.80")

    def test_student_has_no_say(self):
        assert route(0.93, DISAGREE).route == "accept"
        assert route(0.55, AGREE).route == "human"

    def test_close_numbers_are_not_rounded_together(self):
        assert route(0.7999) == Decision("human", "teacher confidence 0.7999 < 0.8000")

    def test_threshold_from_config(self):
        assert route(0.93, confidence_threshold=0.95) == Decision("human", "teacher confidence 0.93 < 0.95")


class TestRequired:
    cfg = {"student_agreement": "required"}

    def test_accept_when_confident_and_student_agrees(self):
        assert route(0.93, AGREE, **self.cfg) == Decision("accept", "teacher confidence 0.93 >= 0.80 and student agrees")

    def test_human_when_student_disagrees(self):
        assert route(0.93, DISAGREE, **self.cfg) == Decision(
            "human", "teacher confidence 0.93 >= 0.80 but student says 'neg' (0.71), teacher 'pos'")

    def test_student_without_confidence(self):
        decision = route(0.93, StudentPrediction("neg", None), **self.cfg)
        assert decision == Decision("human", "teacher confidence 0.93 >= 0.80 but student says 'neg', teacher 'pos'")

    @pytest.mark.parametrize("student", [None, StudentPrediction(None, None)])
    def test_no_student_is_no_agreement(self, student):
        assert route(0.93, student, **self.cfg) == Decision("human", "teacher confidence 0.93 >= 0.80 but no student prediction")

    def test_agreement_does_not_rescue_low_confidence(self):
        assert route(0.55, AGREE, **self.cfg) == Decision("human", "teacher confidence 0.55 < 0.80")


class TestSufficient:
    cfg = {"student_agreement": "sufficient", "agreement_threshold": 0.5}

    def test_confident_teacher_alone_accepts(self):
        assert route(0.93, DISAGREE, **self.cfg) == Decision("accept", "teacher confidence 0.93 >= 0.80")
        assert route(0.93, None, **self.cfg).route == "accept"

    def test_agreement_accepts_at_agreement_threshold(self):
        assert route(0.62, AGREE, **self.cfg) == Decision(
            "accept", "student agrees and teacher confidence 0.62 >= 0.50 (agreement threshold)")
        assert route(0.5, AGREE, **self.cfg).route == "accept"

    def test_agreement_below_agreement_threshold(self):
        assert route(0.45, AGREE, **self.cfg) == Decision(
            "human", "teacher confidence 0.45 < 0.80; student agrees but teacher confidence 0.45 < 0.50 (agreement threshold)")

    def test_disagreement_below_threshold(self):
        assert route(0.62, DISAGREE, **self.cfg) == Decision(
            "human", "teacher confidence 0.62 < 0.80 and student says 'neg' (0.71), teacher 'pos'")

    def test_no_student_below_threshold(self):
        assert route(0.62, None, **self.cfg) == Decision("human", "teacher confidence 0.62 < 0.80 and no student prediction")
