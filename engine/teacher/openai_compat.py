"""A teacher behind any OpenAI-compatible chat server: OpenAI, a vLLM server, a llama.cpp server.

Requests go out concurrently (at most `concurrency` in flight, and within `requests_per_minute`
and `tokens_per_minute`), each asking for a JSON object whose "label" is constrained by a JSON
schema to the task's labels; the requests themselves, their retries and their typed failures are
engine/teacher/transport.py's. A failed call comes back as a typed error on that item's result,
never as an exception, so one bad item never loses a batch. An answer that does not parse
(engine/teacher/parsing.py), or names a label outside the set, is asked once more with a stricter
follow-up (prompts/strict.j2); if that fails too, the result carries the error and both raw
answers, and routing gives it to a human.

Confidence (`teacher.confidence`, see engine/teacher/confidence.py): `logprobs` is the
probability the model gave to the label string it wrote, the product of the probabilities of
the tokens inside the JSON string value. Servers differ in what those logprobs mean:
llama-cpp-python reports the model's own distribution before its grammar masks the tokens
outside the schema, so that probability is the raw one (often low for a small model) and the
distribution over labels, read from the top logprobs at the label's first token, is the more
useful comparison between labels.
"""
from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from dataclasses import dataclass
from typing import Any, Sequence


from ..task import TaskConfig
from . import cache as teacher_cache
from .base import Example, ErrorKind, OnResult, TeacherItem, TeacherResult, call_cost, prompt_hash
from .confidence import (LabelConfidence, label_confidence, majority_vote, p_true,
                                                 verbalized_confidence, verbalized_schema)
from .estimate import Estimate, TokenizerLoader, answer_tokens, mean_prompt_tokens, token_counter
from .options import OpenAITeacherConfig
from .parsing import label_schema, parse_answer, parse_label
from .prompts import load_template, render_messages, template_source
from .transport import CallFailed, ChatTransport, Session, Spent, ask_each, run_blocking


def label_messages(template: Any, task: TaskConfig, text: str, method: str,
                   examples: Sequence[Example] = ()) -> list[dict[str, str]]:
    """The chat messages asking for an item's label; `verbalized` appends the request for a 0-100
    confidence (prompts/verbalized.j2) to the last message, after the item, keeping the prefix shared."""
    messages = render_messages(template, task, text, output="json", examples=examples)
    if method != "verbalized":
        return messages
    last = messages[-1]
    ask = load_template("verbalized.j2").render().strip()
    return messages[:-1] + [{**last, "content": f"{last['content']}\n\n{ask}"}]


@dataclass(frozen=True)
class _Answer:
    """A labeling exchange: one request, plus the stricter retry when its answer was not usable."""

    label: str | None
    data: dict[str, Any] | None
    raw: str
    messages: list[dict[str, str]]  # as sent for the answer kept (with the stricter follow-up, if any)
    logprobs: Any = None
    error: ErrorKind | None = None
    message: str = ""


class OpenAITeacher:
    """Labels through chat completions; see the module docstring."""

    verify_top_logprobs = 20  # the most the OpenAI API gives

    def __init__(self, config: OpenAITeacherConfig, task: TaskConfig, progress: bool = True):
        self.progress = progress
        self.config = config
        self.task = task
        self.labels = list(task.label_names)
        self.method = config.confidence
        self.model_id = f"openai:{config.model}@{config.base_url or 'api.openai.com'}"
        self.schema = verbalized_schema(self.labels) if self.method == "verbalized" else label_schema(self.labels)
        self.transport = ChatTransport(config, self.schema)
        self._template = load_template(config.prompt)
        self._strict = load_template("strict.j2")
        self._verify = load_template("verify.j2")
        # Everything that shapes the answer (and its confidence) is in the key, with the cache's version:
        # bumping CACHE_VERSION retires old entries.
        sampling: dict[str, Any] = {"temperature": config.temperature, "max_tokens": config.max_tokens,
                                    "schema": self.schema, "extra_body": config.extra_body, "confidence": self.method,
                                    "cache_version": teacher_cache.CACHE_VERSION}
        if self.method == "logprobs":  # the only method that asks for logprobs: they make its confidence
            sampling.update(logprobs=config.logprobs, top_logprobs=config.top_logprobs)
        if self.method == "self_consistency":
            sampling.update(samples=config.samples, sample_temperature=config.sample_temperature)
        if self.method == "p_true":  # the check's question shapes the confidence: a new one is a new call
            sampling["verify_prompt"] = template_source("verify.j2")
        self.params = json.dumps(sampling, sort_keys=True)
        self._closed = False

    # -- the public, synchronous side -------------------------------------------------------

    def messages(self, text: str, examples: Sequence[Example] = ()) -> list[dict[str, str]]:
        """The chat messages of an item's labeling request."""
        return label_messages(self._template, self.task, text, self.method, examples)

    def cache_key(self, item: TeacherItem) -> str:
        return prompt_hash(self.model_id, json.dumps(self.messages(item.text, item.examples)), self.params)

    def label(self, items: Sequence[TeacherItem], on_result: OnResult | None = None) -> list[TeacherResult]:
        if self._closed:
            raise RuntimeError("OpenAITeacher.label called after close()")
        items = list(items)
        if not items:
            return []
        return run_blocking(ask_each(self.transport, items, self._label_one, on_result, progress=self.progress,
                                     desc="teacher"))

    def close(self) -> None:
        """Clients live for one `label` call (an async client is bound to its event loop), so
        closing only marks the teacher finished."""
        self._closed = True

    # -- the async side -------------------------------------------------------------------------

    def _parse(self, content: str | None) -> tuple[str | None, dict[str, Any] | None, ErrorKind | None, str]:
        """(label, the answer's JSON object when the method reads more from it, error, message)."""
        verbalized = self.method == "verbalized"
        label, error, message = parse_label(content, self.labels, bare=not verbalized)
        if error is not None or not verbalized:
            return label, None, error, message
        data, _ = parse_answer(content)  # a JSON object: a verbalized answer is never a bare label
        confidence, message = verbalized_confidence(data or {})
        if confidence is None:
            return None, data, "unparsable", message
        return label, data, None, ""

    async def _ask(self, session: Session, messages: list[dict[str, str]], spent: Spent, *,
                   temperature: float, logprobs: bool, seed: int | None = None) -> _Answer:
        """A label from the model; an unusable answer is asked once more with a stricter follow-up."""
        raws: list[str] = []
        for strict in (False, True):
            response = await self.transport.call(session, messages, spent, temperature=temperature,
                                                 max_tokens=self.config.max_tokens, seed=seed,
                                                 top_logprobs=self.config.top_logprobs if logprobs else None)
            choices = getattr(response, "choices", None) or []
            choice = choices[0] if choices else None
            content = choice.message.content if choice is not None else None
            raws.append(content or "")
            if choice is None:
                label, data, error, message = None, None, "unparsable", "response has no choices"
            else:
                label, data, error, message = self._parse(content)
            if error is None:
                return _Answer(label, data, content or "", messages,
                               logprobs=getattr(getattr(choice, "logprobs", None), "content", None))
            refusal = getattr(choice.message, "refusal", None) if choice is not None else None
            if refusal:
                message = f"refused: {refusal}"
            if choice is not None and getattr(choice, "finish_reason", None) == "length":
                message += " (the answer was cut at max_tokens)"
            if strict:
                break
            example = '{"label": "<label>", "confidence": <0-100>}' if self.method == "verbalized" else '{"label": "<label>"}'
            follow_up = self._strict.render(problem=message, example=example, label_names=self.labels).strip()
            messages = messages + [{"role": "assistant", "content": content or ""}, {"role": "user", "content": follow_up}]
        return _Answer(None, None, "\n--- after the stricter prompt ---\n".join(raws), messages, error=error,
                       message=f"{message} (also after a stricter prompt)")

    async def _label_one(self, session: Session, item: TeacherItem) -> TeacherResult:
        messages = self.messages(item.text, item.examples)
        key = prompt_hash(self.model_id, json.dumps(messages), self.params)
        started = time.perf_counter()
        spent = Spent()
        try:
            result = await self._by_method(session, messages, spent)
        except CallFailed as failed:
            result = TeacherResult(label=None, confidence=None, error=failed.kind, error_message=failed.message)
        cost = call_cost(spent.usage, self.config.price_input_per_mtok, self.config.price_output_per_mtok)
        return dataclasses.replace(result, usage=spent.usage, prompt_hash=key, cost=cost, confidence_method=self.method,
                                   latency_s=time.perf_counter() - started)

    async def _by_method(self, session: Session, messages: list[dict[str, str]], spent: Spent) -> TeacherResult:
        cfg = self.config
        if self.method == "self_consistency":
            outcomes = await asyncio.gather(
                *(self._ask(session, messages, spent, temperature=cfg.sample_temperature, logprobs=False, seed=i)
                  for i in range(cfg.samples)), return_exceptions=True)
            failures = [o for o in outcomes if isinstance(o, BaseException)]
            answers = [a for a in outcomes if isinstance(a, _Answer)]
            # Vote on the samples that arrived when at least half did: failing the item would buy them all again.
            if failures and (len(answers) * 2 < cfg.samples or not isinstance(failures[0], CallFailed)):
                raise failures[0]
            vote = majority_vote([a.label for a in answers], self.labels)
            raw = json.dumps([a.raw for a in answers])
            if vote.label is None:
                return TeacherResult(label=None, confidence=None, raw=raw, error=answers[0].error,
                                     error_message=f"no sample gave a usable label: {answers[0].message}")
            return TeacherResult(label=vote.label, confidence=vote.confidence, distribution=vote.distribution, raw=raw)

        answer = await self._ask(session, messages, spent, temperature=cfg.temperature,
                                 logprobs=self.method == "logprobs" and cfg.logprobs)
        if answer.label is None:
            return TeacherResult(label=None, confidence=None, raw=answer.raw, error=answer.error,
                                 error_message=answer.message)
        if self.method == "verbalized":
            confidence, _ = verbalized_confidence(answer.data or {})
            return TeacherResult(label=answer.label, confidence=confidence, raw=answer.raw)
        if self.method == "p_true":
            question = self._verify.render(label=answer.label).strip()
            verify = answer.messages + [{"role": "assistant", "content": answer.raw}, {"role": "user", "content": question}]
            response = await self.transport.call(session, verify, spent, temperature=0.0, max_tokens=1,
                                                 structured=False, top_logprobs=self.verify_top_logprobs)
            choices = getattr(response, "choices", None) or []
            logprobs = getattr(getattr(choices[0], "logprobs", None), "content", None) if choices else None
            return _with_confidence(answer, p_true(logprobs))
        if not cfg.logprobs:
            return _with_confidence(answer, LabelConfidence.unknown("teacher.logprobs is false: no logprobs asked for"))
        return _with_confidence(answer, label_confidence(answer.logprobs, answer.label, self.labels))


def _with_confidence(answer: _Answer, measured: LabelConfidence) -> TeacherResult:
    return TeacherResult(label=answer.label, confidence=measured.confidence, distribution=measured.distribution,
                         raw=answer.raw, confidence_note=measured.reason)


def estimate(config: OpenAITeacherConfig, task: TaskConfig, *, sample: Sequence[str], shown: str,
             load_tokenizer: TokenizerLoader) -> Estimate:
    """`quarry plan`: calls and tokens per item under the confidence method, counted with `teacher.tokenizer`."""
    template = load_template(config.prompt)

    def render(text: str) -> list[dict[str, str]]:
        return label_messages(template, task, text, config.confidence)

    count, how = token_counter(config.tokenizer, "teacher.tokenizer", load_tokenizer,
                               "no tokenizer known: set teacher.tokenizer")
    prompt = mean_prompt_tokens(count, render, sample)
    longest = max(task.label_names, key=len)
    answer = {"label": longest, "confidence": 100} if config.confidence == "verbalized" else {"label": longest}
    tokens = float(min(config.max_tokens, answer_tokens(count, json.dumps(answer))))
    if config.confidence == "self_consistency":
        calls, prompts, answers = config.samples, config.samples * prompt, config.samples * tokens
    elif config.confidence == "p_true":
        # The label (prompt, answer), then the check (prompt + answer + question, a one-token answer).
        question = count([{"role": "user", "content": load_template("verify.j2").render(label=longest).strip()}])
        calls, prompts, answers = 2, prompt + (prompt + tokens + question), tokens + 1
    else:
        calls, prompts, answers = 1, prompt, tokens
    return Estimate(calls, prompts, answers, how, render(shown))
