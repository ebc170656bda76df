"""What every backend shares when the teacher writes answers (task.kind generation): the prompts, the
call keys, and the two confidence signals the teacher measures with an answer.

- `judge`: the teacher grades the answer from 1 to 5 with a rubric (prompts/judge.j2) and the signal is
  the expected grade under the probabilities of the five grade tokens as its whole answer, read from
  token logprobs (a server) or scored (the local model): Liu et al. 2023, "G-Eval: NLG Evaluation using
  GPT-4 with Better Human Alignment", EMNLP, take the same expectation over score tokens.
- `self_consistency`: `samples` more answers at `sample_temperature`; the signal is the mean pairwise
  cosine of the sentence embeddings of all of them and the kept answer (an answer the model would give
  again, in other words, is likelier right: Manakul et al. 2023, "SelfCheckGPT", EMNLP; Kuhn et al. 2023,
  "Semantic Uncertainty", ICLR, cluster samples by meaning for the same reason).

A backend returns raw signal values in `TeacherResult.signals`; engine/tasks/signals.py turns each into a
confidence in [0, 1]. A signal whose calls failed is left out (with a note), never guessed: routing then
sends the item to a person when it is the routing signal.
"""
from __future__ import annotations

import json
import threading
from typing import Any, Mapping, Sequence

import jinja2

from ..core.sentences import SentenceEncoder, mean_pairwise_cosine
from ..task import TaskConfig
from .base import TeacherItem, prompt_hash
from .estimate import Estimate, TokenizerLoader, answer_tokens, mean_prompt_tokens, token_counter
from .cache import CACHE_VERSION
from .options import GenerationOptions
from .prompts import load_template, split_messages, template_source

GRADES = ("1", "2", "3", "4", "5")
Messages = list[dict[str, str]]


def user_turn(instruction: str, input_text: str) -> str:
    """The user's message: the instruction, then its input after a blank line (as the causal student sees it)."""
    return f"{instruction}\n\n{input_text}" if input_text else instruction


def _render(template: jinja2.Template, **values: Any) -> Messages:
    return split_messages(template.render(**values))


class AnswerPrompts:
    """The generation prompts of one teacher: the answer request and the judge's question."""

    def __init__(self, options: GenerationOptions, task: TaskConfig):
        self.options, self.task = options, task
        self.answer_template = load_template(options.prompt, key="teacher.generation.prompt")
        self.judge_template = load_template(options.judge_prompt, key="teacher.generation.judge_prompt")

    def answer(self, item: TeacherItem) -> Messages:
        return _render(self.answer_template, task=self.task, system_prompt=self.task.system_prompt,
                       instruction=item.text, input=item.input, user=user_turn(item.text, item.input))

    def judge(self, item: TeacherItem, answer: str) -> Messages:
        return _render(self.judge_template, task=self.task, instruction=item.text, input=item.input,
                       user=user_turn(item.text, item.input), answer=answer, grades=GRADES)

    def params(self, extra: Mapping[str, Any] | None = None) -> str:
        """Everything besides the prompt that shapes an answer and its signals: the key's parameters."""
        options = self.options.model_dump(mode="json", exclude={"prompt"})
        options["judge_prompt"] = template_source(self.options.judge_prompt) if "judge" in self.options.signals else None
        return json.dumps({"kind": "generation", "options": options, "cache_version": CACHE_VERSION, **(extra or {})},
                          sort_keys=True)

    def key(self, model_id: str, item: TeacherItem, params: str) -> str:
        """The prompt_hash (and cache key) of an item's call: model, rendered answer prompt, parameters."""
        return prompt_hash(model_id, json.dumps(self.answer(item)), params)


def expected_grade(probs: Mapping[str, float]) -> float | None:
    """The expected grade (1-5) under probabilities of the grade tokens, renormalized; None when none is there."""
    total = sum(probs.get(g, 0.0) for g in GRADES)
    if total <= 0:
        return None
    return sum(int(g) * probs.get(g, 0.0) for g in GRADES) / total


def grade_probs_from_top(top: Sequence[tuple[str, float]]) -> dict[str, float]:
    """Probabilities of the grade tokens among (token text, logprob) pairs of the first answer token; a
    token counts for a grade when it is that digit once stripped (" 4" and "4" both), summed."""
    import math

    probs: dict[str, float] = {}
    for token, logprob in top:
        grade = token.strip()
        if grade in GRADES:
            probs[grade] = probs.get(grade, 0.0) + math.exp(logprob)
    return probs


class Agreement:
    """Self-consistency from sentence embeddings; one encoder per teacher, safe to call from threads."""

    def __init__(self, model: str):
        self.encoder = SentenceEncoder(model)
        self._lock = threading.Lock()

    def __call__(self, answers: Sequence[str]) -> float:
        with self._lock:
            return mean_pairwise_cosine(self.encoder.embed(answers))


def answer_signals(options: GenerationOptions) -> tuple[bool, bool]:
    """(judge, self_consistency): which signals the teacher measures."""
    return "judge" in options.signals, "self_consistency" in options.signals


def cut_at_stop(text: str, stop: Sequence[str]) -> str:
    """The answer up to the first stop string (servers drop it; a local generation keeps it)."""
    cut = min((text.find(s) for s in stop if s and s in text), default=-1)
    return (text[:cut] if cut >= 0 else text).strip()


def answer_estimate(options: GenerationOptions, task: TaskConfig, tokenizer_model: str | None, key: str, sample: Sequence[str],
                    shown: str, load_tokenizer: TokenizerLoader) -> Estimate:
    """The estimate every writer shares: one answer, `samples` more with self-consistency, one judge call."""
    prompts = AnswerPrompts(options, task)
    judge, consistency = answer_signals(options)
    count, how = token_counter(tokenizer_model, key, load_tokenizer, "no tokenizer known")
    render = lambda text: prompts.answer(TeacherItem("", text))  # noqa: E731
    prompt = mean_prompt_tokens(count, render, sample)
    answers = 1 + (options.samples if consistency else 0)
    calls, prompt_tokens, completion = answers, answers * prompt, float(answers * options.max_tokens)
    if judge:
        filler = " ".join(["word"] * options.max_tokens)  # an answer of max_tokens tokens, near enough
        calls += 1
        prompt_tokens += mean_prompt_tokens(count, lambda text: prompts.judge(TeacherItem("", text), filler), sample)
        completion += answer_tokens(count, "5")
    return Estimate(calls, prompt_tokens, completion, how, render(shown))
