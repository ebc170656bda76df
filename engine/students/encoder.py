"""The student: a transformers sequence classifier, LoRA-tuned (or fully fine-tuned) each round.

It is retrained from the base weights on all labels every round (no drift from earlier,
noisier label sets), with the shared step budget of engine/students/training.py.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from ..config import StudentConfig
from ..core.models import masked_mean, resolve_model_path
from .training import TrainStats, check_labels, run_steps, step_budget
from ...strategies.base import Scores

__all__ = ["Student", "TrainStats"]


class Student:
    def __init__(self, config: StudentConfig, label_names: Sequence[str]):
        from transformers import AutoTokenizer

        self.config = config
        self.label_names = list(label_names)
        self.label_index = {name: i for i, name in enumerate(self.label_names)}
        self.model_path = resolve_model_path(config.model)
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_path)
        self.device = torch.device(config.device)
        self.model: torch.nn.Module | None = None

    # --- model construction ---------------------------------------------------------
    def _base_model(self) -> torch.nn.Module:
        from transformers import AutoModelForSequenceClassification

        return AutoModelForSequenceClassification.from_pretrained(
            self.model_path, num_labels=len(self.label_names),
            id2label=dict(enumerate(self.label_names)), label2id=self.label_index)

    def _fresh_model(self) -> torch.nn.Module:
        model = self._base_model()
        if self.config.method == "lora":
            from peft import LoraConfig, TaskType, get_peft_model

            lora = self.config.lora
            model = get_peft_model(model, LoraConfig(
                task_type=TaskType.SEQ_CLS, r=lora.rank, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                target_modules=lora.target_modules))
        return model.to(self.device)

    @property
    def trained(self) -> bool:
        return self.model is not None

    # --- training ------------------------------------------------------------------
    def steps_for(self, n_examples: int) -> int:
        return step_budget(self.config, n_examples)

    def fit(self, texts: Sequence[str], labels: Sequence[str], seed: int, progress: bool = True) -> TrainStats:
        """Train a fresh adapter on all labels so far; deterministic for a seed and an ordered label set."""
        check_labels(texts, labels, self.label_index)
        with torch.random.fork_rng(devices=[]):  # seeded head init and dropout, the caller's RNG untouched
            torch.manual_seed(seed)
            return self._fit(texts, labels, seed, progress)

    def _fit(self, texts: Sequence[str], labels: Sequence[str], seed: int, progress: bool) -> TrainStats:
        model = self._fresh_model()
        encoded = self.tokenizer(list(texts), truncation=True, max_length=self.config.max_length)
        targets = torch.tensor([self.label_index[label] for label in labels])

        def batch_loss(batch: list[int]) -> torch.Tensor:
            inputs = self.tokenizer.pad({k: [encoded[k][i] for i in batch] for k in encoded.keys()}, return_tensors="pt")
            return model(**{k: v.to(self.device) for k, v in inputs.items()}, labels=targets[batch].to(self.device)).loss

        stats = run_steps(model, self.config, len(texts), seed, progress, batch_loss)
        self.model = model
        return stats

    # --- persistence ---------------------------------------------------------------
    def save(self, folder: str | Path) -> None:
        """The round's adapter (LoRA weights and the head), or the whole model for full fine-tuning;
        the run folder makes the write atomic."""
        if self.model is None:
            raise RuntimeError("nothing to save: the student has not been trained")
        self.model.save_pretrained(Path(folder))

    def load(self, folder: str | Path) -> None:
        folder = Path(folder)
        if self.config.method == "lora":
            from peft import PeftModel

            self.model = PeftModel.from_pretrained(self._base_model(), folder).to(self.device)
        else:
            from transformers import AutoModelForSequenceClassification

            self.model = AutoModelForSequenceClassification.from_pretrained(folder).to(self.device)
        self.model.eval()

    # --- inference -----------------------------------------------------------------
    @torch.inference_mode()
    def score(self, texts: Sequence[str], progress: bool = True, desc: str = "scoring", mc_passes: int = 0,
              mc_seed: int = 0) -> Scores:
        """Class probabilities and mean-pooled last hidden states, in batches; with `mc_passes` T > 0 also
        T stochastic passes with dropout on (MC dropout, for BALD) as `Scores.mc_probs` (T, n, c)."""
        if self.model is None:
            raise RuntimeError("the student must be trained (or loaded) before it scores")
        probs, embeddings, mc = [], [], []
        size = self.config.score_batch_size
        # Sorting by length keeps padding small; results go back to the original order.
        order = np.argsort([len(t) for t in texts], kind="stable")
        bar = tqdm(total=len(texts), desc=desc, unit="text", disable=not progress, leave=False)
        with torch.random.fork_rng(devices=[]):  # seeded dropout masks without touching the caller's RNG
            torch.manual_seed(mc_seed)
            for start in range(0, len(texts), size):
                idx = order[start:start + size]
                inputs = self.tokenizer([texts[i] for i in idx], truncation=True, max_length=self.config.max_length,
                                        padding=True, return_tensors="pt").to(self.device)
                output = self.model(**inputs, output_hidden_states=True)
                pooled = masked_mean(output.hidden_states[-1], inputs["attention_mask"])
                probs.append(torch.softmax(output.logits.float(), dim=-1).cpu().numpy())
                embeddings.append(pooled.float().cpu().numpy())
                if mc_passes:
                    self.model.train()
                    try:
                        mc.append(np.stack([torch.softmax(self.model(**inputs).logits.float(), dim=-1).cpu().numpy()
                                            for _ in range(mc_passes)]))
                    finally:
                        self.model.eval()
                bar.update(len(idx))
        bar.close()
        inverse = np.empty_like(order)
        inverse[order] = np.arange(len(order))
        if not texts:
            c = len(self.label_names)
            return Scores(probs=np.zeros((0, c), dtype=np.float32), embeddings=np.zeros((0, 0), dtype=np.float32),
                          mc_probs=np.zeros((mc_passes, 0, c), dtype=np.float32) if mc_passes else None)
        return Scores(probs=np.concatenate(probs)[inverse], embeddings=np.concatenate(embeddings)[inverse],
                      mc_probs=np.concatenate(mc, axis=1)[:, inverse] if mc_passes else None)

    def predict(self, texts: Sequence[str], progress: bool = True) -> list[str]:
        probs = self.score(texts, progress=progress, desc="evaluating").probs
        return [self.label_names[i] for i in probs.argmax(axis=1)]


