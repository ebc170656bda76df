"""A classification student on a causal LM: encoder.Student's public shape (fit, score, predict, save,
load, trained), so the loop can use it unchanged with `student.kind: causal`.

Each label is the assistant's whole answer to `student.causal.prompt` (the item and the label names);
its probability is the label's likelihood normalized over the labels (CausalStudent.label_scores).
Unlike an encoder's fresh head, the untrained LM already has an opinion, so round 0 has real uncertainty.
Training is the causal student's supervised fine-tuning with the label name as the response.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from ..config import StudentConfig
from .causal import CausalStudent, Pair
from .training import TrainStats, check_labels
from ...strategies.base import Scores


class CausalClassifier:
    def __init__(self, config: StudentConfig, label_names: Sequence[str]):
        self.config = config
        self.label_names = list(label_names)
        self.lm = CausalStudent(config)

    @property
    def trained(self) -> bool:
        return self.lm.trained

    def _user_turn(self, text: str) -> str:
        return self.config.causal.prompt.format(text=text, labels=", ".join(self.label_names))

    def fit(self, texts: Sequence[str], labels: Sequence[str], seed: int, progress: bool = True) -> TrainStats:
        """Train a fresh adapter to answer each text's prompt with its label; deterministic for a seed."""
        check_labels(texts, labels, self.label_names)
        return self.lm.fit([Pair(self._user_turn(t), "", label) for t, label in zip(texts, labels)], seed, progress)

    def score(self, texts: Sequence[str], progress: bool = True, desc: str = "scoring", mc_passes: int = 0,
              mc_seed: int = 0) -> Scores:
        """Label probabilities and pooled prompt states. MC dropout has no meaning here (no dropout outside
        the LoRA layers, none at all before training), so strategies that need it are refused."""
        if mc_passes:
            raise ValueError("the causal student has no MC-dropout passes: choose a strategy without mc_probs (not bald)")
        probs, embeddings = self.lm.label_scores(texts, self.label_names, self.config.causal.prompt, progress, desc)
        return Scores(probs=probs, embeddings=embeddings)

    def predict(self, texts: Sequence[str], progress: bool = True) -> list[str]:
        probs = self.score(texts, progress=progress, desc="evaluating").probs
        return [self.label_names[i] for i in probs.argmax(axis=1)]

    def save(self, folder: str | Path) -> None:
        self.lm.save(folder)

    def load(self, folder: str | Path) -> None:
        self.lm.load(folder)
