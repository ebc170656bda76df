"""Simulated review of written answers: does the teacher's answer pass the task's check against the reference
(task.check)? Then the simulated person accepts it; otherwise they write the reference instead.

Normalization is SQuAD's (Rajpurkar et al. 2016): lower case, punctuation and the articles a/an/the
dropped, whitespace collapsed, so "The capital is Paris." and "the capital is paris" match exactly;
with `case_sensitive` the case is kept (for tasks about it: "Uppercase the word").
"""
from __future__ import annotations

import re
import string
from typing import Sequence

from ..core.sentences import SentenceEncoder
from ..task import CheckConfig

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation)


def normalize(text: str, case_sensitive: bool = False) -> str:
    text = text.translate(_PUNCTUATION)
    lowered = text.lower()
    if not case_sensitive:
        return " ".join(_ARTICLES.sub(" ", lowered).split())
    # drop the articles where the lower-cased text has them, keeping the case of everything else
    kept = [word for word, low in zip(text.split(), lowered.split()) if low not in ("a", "an", "the")]
    return " ".join(kept)


class AnswerCheck:
    """`passes(answers, references)`; the sentence encoder of `similarity` is loaded on first use."""

    def __init__(self, config: CheckConfig):
        self.config = config
        self._encoder = SentenceEncoder(config.model) if config.kind == "similarity" else None

    def passes(self, answers: Sequence[str], references: Sequence[str]) -> list[bool]:
        case = self.config.case_sensitive
        if self.config.kind == "exact":
            return [normalize(a, case) == normalize(r, case) for a, r in zip(answers, references)]
        if self.config.kind == "contains":
            return [f" {normalize(r, case)} " in f" {normalize(a, case)} " for a, r in zip(answers, references)]
        assert self._encoder is not None
        if not answers:
            return []
        return [bool(c >= self.config.threshold) for c in self._encoder.cosine(answers, references)]
