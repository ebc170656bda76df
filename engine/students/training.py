"""The training loop every student shares: a step budget rather than a fixed epoch count (the recipe
measurements in DESIGN.md show LoRA needs enough steps to pass frozen embeddings), seeded shuffled
batches, AdamW with linear warmup and decay, gradient clipping and a progress bar."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Collection, Sequence

import torch
from tqdm.auto import tqdm

from ..config import StudentConfig


@dataclass(frozen=True)
class TrainStats:
    steps: int
    epochs: float
    final_loss: float
    examples: int


def check_labels(texts: Sequence[str], labels: Sequence[str], known: Collection[str]) -> None:
    """A classification student's training set: not empty, and every label one of the task's."""
    if not texts:
        raise ValueError("the student needs at least one label to train on")
    unknown = sorted(set(labels) - set(known))
    if unknown:
        raise ValueError(f"labels outside the task's label set: {unknown}")


def step_budget(config: StudentConfig, n_examples: int) -> int:
    """`epochs` passes over the examples, clamped to [min_steps, max_steps]."""
    per_epoch = math.ceil(n_examples / config.batch_size)
    return int(min(config.max_steps, max(config.min_steps, math.ceil(config.epochs * per_epoch))))


def run_steps(model: torch.nn.Module, config: StudentConfig, n_examples: int, seed: int, progress: bool,
              batch_loss: Callable[[list[int]], torch.Tensor]) -> TrainStats:
    """Train `model` on batches of example indices; `batch_loss` turns one batch into its loss.

    The batch order comes from its own generator seeded with `seed`; the caller seeds torch's RNG
    (head init, dropout) inside `torch.random.fork_rng`, so the caller's RNG stays untouched.
    """
    steps = step_budget(config, n_examples)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=0.01)
    warmup = max(1, steps // 10)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warmup, max(0.0, (steps - s) / max(1, steps - warmup))))
    generator = torch.Generator().manual_seed(seed)
    order: list[int] = []
    model.train()
    loss_value = float("nan")
    bar = tqdm(range(steps), desc="training", unit="step", disable=not progress, leave=False)
    for _ in bar:
        if len(order) < config.batch_size:
            order.extend(torch.randperm(n_examples, generator=generator).tolist())
        batch, order = order[:config.batch_size], order[config.batch_size:]
        loss = batch_loss(batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        loss_value = float(loss.detach())
        bar.set_postfix(loss=f"{loss_value:.3f}")
    model.eval()
    return TrainStats(steps=steps, epochs=steps * config.batch_size / n_examples, final_loss=loss_value,
                      examples=n_examples)
