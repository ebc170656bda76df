"""The teacher behind an OpenAI-compatible server writing answers (task.kind generation).

Each item is one chat completion with `generation.max_tokens`, `temperature` and `stop` (no response
format: the answer is free text), then, as configured, `samples` more at `sample_temperature` (seeds
seed+1...) and one judge call (one token, top logprobs: the grade's probabilities). The requests go
through engine/teacher/transport.py like labels do: the same concurrency, rate limits, retries and typed
failures. A failed answer fails the item (its spent tokens are kept); a failed sample or judge call
only drops that signal, with a note, since the answer itself is there.
"""
from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Any, Sequence


from ..task import TaskConfig
from .answers import Agreement, AnswerPrompts, answer_estimate, answer_signals, expected_grade, grade_probs_from_top
from .base import OnResult, TeacherItem, TeacherResult, call_cost
from .estimate import Estimate, TokenizerLoader
from .options import OpenAITeacherConfig
from .transport import CallFailed, ChatTransport, Session, Spent, ask_each, run_blocking

JUDGE_TOP_LOGPROBS = 20  # the most the OpenAI API gives


def _content(response: Any) -> tuple[str, str | None]:
    """(the answer's text, finish_reason) of a chat completion."""
    choices = getattr(response, "choices", None) or []
    if not choices:
        return "", None
    return (choices[0].message.content or "").strip(), getattr(choices[0], "finish_reason", None)


def _first_token_top(response: Any) -> list[tuple[str, float]]:
    choices = getattr(response, "choices", None) or []
    content = getattr(getattr(choices[0], "logprobs", None), "content", None) if choices else None
    if not content:
        return []
    first = content[0]
    return [(entry.token, entry.logprob) for entry in (first.top_logprobs or [])] or [(first.token, first.logprob)]


class OpenAIWriter:
    def __init__(self, config: OpenAITeacherConfig, task: TaskConfig, progress: bool = True):
        self.config, self.task, self.progress = config, task, progress
        self.options = config.generation
        self.model_id = f"openai:{config.model}@{config.base_url or 'api.openai.com'}"
        self.transport = ChatTransport(config, None)
        self.prompts = AnswerPrompts(self.options, task)
        self.params = self.prompts.params()
        self.judge, self.consistency = answer_signals(self.options)
        self.agreement = Agreement(self.options.embedding_model) if self.consistency else None
        self._closed = False

    def cache_key(self, item: TeacherItem) -> str:
        return self.prompts.key(self.model_id, item, self.params)

    def label(self, items: Sequence[TeacherItem], on_result: OnResult | None = None) -> list[TeacherResult]:
        if self._closed:
            raise RuntimeError("OpenAIWriter.label called after close()")
        items = list(items)
        if not items:
            return []
        return run_blocking(ask_each(self.transport, items, self._one, on_result, progress=self.progress,
                                     desc="teacher writing"))

    def close(self) -> None:
        self._closed = True

    async def _one(self, session: Session, item: TeacherItem) -> TeacherResult:
        started, spent = time.perf_counter(), Spent()
        try:
            result = await self._write(session, item, spent)
        except CallFailed as failed:
            result = TeacherResult(label=None, confidence=None, error=failed.kind, error_message=failed.message)
        cost = call_cost(spent.usage, self.config.price_input_per_mtok, self.config.price_output_per_mtok)
        return dataclasses.replace(result, usage=spent.usage, prompt_hash=self.cache_key(item), cost=cost,
                                   confidence_method="generation", latency_s=time.perf_counter() - started)

    async def _ask(self, session: Session, messages: list[dict[str, str]], spent: Spent, temperature: float,
                   seed: int) -> tuple[str, str | None]:
        response = await self.transport.call(session, messages, spent, temperature=temperature,
                                             max_tokens=self.options.max_tokens, structured=False, seed=seed,
                                             stop=self.options.stop or None)
        return _content(response)

    async def _write(self, session: Session, item: TeacherItem, spent: Spent) -> TeacherResult:
        messages = self.prompts.answer(item)
        text, finish = await self._ask(session, messages, spent, self.options.temperature, self.options.seed)
        if not text:
            return TeacherResult(label=None, confidence=None, raw=text, error="unparsable", error_message="empty answer")
        signals: dict[str, float] = {}
        notes = ["the answer was cut at max_tokens"] if finish == "length" else []
        if self.agreement is not None:
            outcomes = await asyncio.gather(*(self._ask(session, messages, spent, self.options.sample_temperature,
                                                        self.options.seed + 1 + i)
                                              for i in range(self.options.samples)), return_exceptions=True)
            samples = [o[0] for o in outcomes if not isinstance(o, BaseException)]
            failed = [o for o in outcomes if isinstance(o, BaseException)]
            if failed and not isinstance(failed[0], CallFailed):
                raise failed[0]  # a bug, not the server's doing
            if samples:
                signals["self_consistency"] = await asyncio.to_thread(self.agreement, [text] + samples)
            if failed:
                notes.append(f"{len(failed)} of {self.options.samples} samples failed: {failed[0]}")
        if self.judge:
            try:
                response = await self.transport.call(session, self.prompts.judge(item, text), spent, temperature=0.0,
                                                     max_tokens=1, structured=False, top_logprobs=JUDGE_TOP_LOGPROBS)
                grade = expected_grade(grade_probs_from_top(_first_token_top(response)))
                if grade is None:
                    notes.append("the judge's first token was no grade 1-5")
                else:
                    signals["judge"] = grade
            except CallFailed as failed:
                notes.append(f"judge call failed: {failed.message}")
        return TeacherResult(label=None, confidence=None, raw=text, text=text, signals=signals,
                             confidence_note="; ".join(notes))


def estimate(config: OpenAITeacherConfig, task: TaskConfig, *, sample: Sequence[str], shown: str,
             load_tokenizer: TokenizerLoader) -> Estimate:
    """`quarry plan` for answers, counted with `teacher.tokenizer` (else characters / 4)."""
    return answer_estimate(config.generation, task, config.tokenizer, "teacher.tokenizer", sample, shown,
                           load_tokenizer)
