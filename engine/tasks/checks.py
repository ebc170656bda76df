"""Simulated review of written answers: does the teacher's answer pass the task's check against the reference
(task.check)? Then the simulated person accepts it; otherwise they write the reference instead.

Normalization is SQuAD's (Rajpurkar et al. 2016): lower case, punctuation and the articles a/an/the
dropped, whitespace collapsed, so "The capital is Paris." and "the capital is paris" match exactly.
"""
from __future__ import annotations

import re
import string
from typing import Sequence

from ..core.sentences import SentenceEncoder
from ..task import CheckConfig

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation)


def normalize(text: str) -> str:
    return " ".join(_ARTICLES.sub(" ", text.lower().translate(_PUNCTUATION)).split())


class AnswerCheck:
    """`passes(answers, references)`; the sentence encoder of `similarity` is loaded on first use."""

    def __init__(self, config: CheckConfig):
        self.config = config
        self._encoder = SentenceEncoder(config.model) if config.kind == "similarity" else None

    def passes(self, answers: Sequence[str], references: Sequence[str]) -> list[bool]:
        if self.config.kind == "exact":
            return [normalize(a) == normalize(r) for a, r in zip(answers, references)]
        if self.config.kind == "contains":
            return [f" {normalize(r)} " in f" {normalize(a)} " for a, r in zip(answers, references)]
        assert self._encoder is not None
        if not answers:
            return []
        return [bool(c >= self.config.threshold) for c in self._encoder.cosine(answers, references)]
