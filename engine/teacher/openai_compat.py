"""A teacher behind any OpenAI-compatible chat server: OpenAI, a vLLM server, a llama.cpp server.

Requests go out concurrently (at most `concurrency` in flight, and within `requests_per_minute`
and `tokens_per_minute`), each asking for a JSON object whose "label" is constrained by a JSON
schema to the task's labels. tenacity is the one retry policy (the SDK's own retries are off):
timeouts, dropped connections, malformed responses, 429 (waiting at least its Retry-After) and
5xx are retried with jittered exponential backoff; other 4xx are not, as they cannot succeed.
What still fails after the last try comes back as a typed error on that item's result, never as
an exception, so one bad item never loses a batch. An answer that does not parse, or names a
label outside the set, is asked once more with a stricter follow-up (prompts/strict.j2); if
that fails too, the result carries the error and both raw answers, and routing gives it to a
human.

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
import concurrent.futures
import dataclasses
import email.utils
import json
import math
import os
import re
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import openai
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter
from tqdm import tqdm

from quarry_al.engine.config import ConfigError, OpenAITeacherConfig, TaskConfig
from quarry_al.engine.teacher.base import (Example, TRANSIENT_ERRORS, ErrorKind, OnResult, TeacherItem, TeacherResult, Usage,
                                 call_cost, prompt_hash)
from quarry_al.engine.teacher import cache as teacher_cache
from quarry_al.engine.teacher.confidence import majority_vote, p_true, verbalized_confidence, verbalized_schema
from quarry_al.engine.teacher.prompts import load_template, render_messages, template_source
from quarry_al.engine.teacher.ratelimit import RateLimits

# The "label" member of a JSON object and its string value (group 1, still JSON-escaped).
_LABEL_VALUE = re.compile(r'"label"\s*:\s*"((?:[^"\\]|\\.)*)"', re.DOTALL)
_FENCE = re.compile(r"^```[A-Za-z0-9_-]*\s*\n?(.*?)\n?\s*```$", re.DOTALL)
_RETRY_AFTER_CAP_S = 60.0


def label_schema(labels: Sequence[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {"label": {"type": "string", "enum": list(labels)}},
        "required": ["label"],
        "additionalProperties": False,
    }


def error_kind(exc: BaseException) -> ErrorKind:
    if isinstance(exc, (json.JSONDecodeError, openai.APIResponseValidationError)):
        return "bad_response"  # a 200 whose body is not the JSON it should be: a broken hop, worth retrying
    if isinstance(exc, openai.APITimeoutError):
        return "timeout"
    if isinstance(exc, openai.APIConnectionError):
        return "connection"
    if isinstance(exc, openai.RateLimitError):
        return "rate_limit"
    if isinstance(exc, openai.APIStatusError) and exc.status_code >= 500:
        return "server"
    return "other"


def _retryable(exc: BaseException) -> bool:
    return error_kind(exc) in TRANSIENT_ERRORS


def _retry_after_s(exc: BaseException | None) -> float | None:
    """Seconds the server asked us to wait (Retry-After / retry-after-ms), if it said."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if not headers:
        return None
    try:
        if headers.get("retry-after-ms"):
            return max(0.0, float(headers["retry-after-ms"]) / 1000)
        value = headers.get("retry-after")
        if not value:
            return None
        try:
            return max(0.0, float(value))
        except ValueError:
            when = email.utils.parsedate_to_datetime(value)
            return max(0.0, when.timestamp() - time.time())
    except (TypeError, ValueError, OverflowError):
        return None


def parse_answer(content: str | None) -> tuple[dict[str, Any] | None, str]:
    """(the JSON object, problem) of an answer; surrounding whitespace and code fences are dropped."""
    if content is None:
        return None, "empty answer"
    text = content.strip()
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced.group(1).strip()
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, f"answer is not JSON: {exc}"
    if not isinstance(data, dict):
        return None, "answer is not a JSON object"
    return data, ""


def parse_label(content: str | None, labels: Sequence[str],
                bare: bool = True) -> tuple[str | None, ErrorKind | None, str]:
    """(label, error, message) from the model's answer. Lenient only where it is harmless:
    surrounding whitespace and code fences are dropped, a label matching one of the set except
    for letter case is taken as that label, and so is an answer that is a label and nothing else
    (unless `bare` is False: an answer that must carry more than the label)."""
    data, problem = parse_answer(content)
    if data is None:
        label = bare_label(content, labels) if bare else None
        return (label, None, "") if label is not None else (None, "unparsable", problem)
    return label_of(data, labels)


def bare_label(content: str | None, labels: Sequence[str]) -> str | None:
    """The label an answer is, with nothing else (what vLLM's guided_choice gives): unambiguous, so taken."""
    if not content or not content.strip():
        return None
    label, error, _ = label_of({"label": content.strip()}, labels)
    return label if error is None else None


def label_of(data: dict[str, Any], labels: Sequence[str]) -> tuple[str | None, ErrorKind | None, str]:
    if "label" not in data:
        return None, "unparsable", "answer has no \"label\" member"
    value = data["label"]
    if not isinstance(value, str):
        return None, "unparsable", f"\"label\" is not a string: {value!r}"
    stripped = value.strip()
    if stripped in labels:
        return stripped, None, ""
    folded = [label for label in labels if label.casefold() == stripped.casefold()]
    if len(folded) == 1:
        return folded[0], None, ""
    return None, "out_of_set", f"label {value!r} is not one of {list(labels)}"


def _match_label(fragment: str, closed: bool, labels: Sequence[str]) -> str | None:
    """The one label that a token's part inside the string value can begin (or, when the token
    also closes the string, be); None when no label or several could."""
    if not fragment:
        return None
    for fold in (False, True):
        norm = (lambda s: s.casefold()) if fold else (lambda s: s)
        f = norm(fragment)
        found = [l for l in labels if (norm(l) == f if closed else norm(l).startswith(f))]
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            return None
    return None


def label_confidence(
    logprobs_content: Sequence[Any] | None, label: str, labels: Sequence[str]
) -> tuple[float | None, dict[str, float] | None]:
    """(confidence, distribution) of `label` from a chat completion's `logprobs.content`.

    The tokens of the label are those overlapping the characters of the "label" string value in
    the concatenated token texts; the confidence is the exponent of the sum of their logprobs.
    The distribution holds the labels seen among the top logprobs at the label's first token
    (first-token probability for the others, the joint probability for the chosen label),
    normalised; labels not seen there are left out, and with no other label seen there is no
    distribution (None). The confidence itself is never normalised."""
    if not logprobs_content:
        return None, None
    tokens = [getattr(t, "token", None) or "" for t in logprobs_content]
    starts, offset = [], 0
    for token in tokens:
        starts.append(offset)
        offset += len(token)
    text = "".join(tokens)
    match = _LABEL_VALUE.search(text)
    if match is not None:
        begin, end = match.span(1)
    elif text.strip().casefold() == label.casefold():  # a bare label (vLLM's guided_choice)
        begin = len(text) - len(text.lstrip())
        end = begin + len(text.strip())
    else:
        return None, None
    if end == begin:
        return None, None
    inside = [i for i, token in enumerate(tokens) if starts[i] < end and starts[i] + len(token) > begin]
    logprobs = [getattr(logprobs_content[i], "logprob", None) for i in inside]
    if not inside or any(lp is None or not math.isfinite(lp) for lp in logprobs):
        return None, None
    total = sum(logprobs)
    confidence = min(1.0, math.exp(total))
    if confidence <= 0.0 or total < -1000:  # -9999 is some servers' stand-in for "masked"
        return None, None

    first = inside[0]
    top = getattr(logprobs_content[first], "top_logprobs", None) or []
    if not top:
        return confidence, None
    lead = text[starts[first]:begin]  # the token's characters before the value (e.g. ' "')
    chosen_first = tokens[first]
    probabilities = {label: confidence}
    for alternative in top:
        alt_text, alt_lp = getattr(alternative, "token", None), getattr(alternative, "logprob", None)
        if not alt_text or alt_lp is None or not math.isfinite(alt_lp) or alt_text == chosen_first:
            continue
        if not alt_text.startswith(lead):
            continue
        fragment = alt_text[len(lead):]
        closed = '"' in fragment
        if closed:
            fragment = fragment[: fragment.index('"')]
        other = _match_label(fragment, closed, labels)
        if other is None or other == label:
            continue
        probabilities[other] = probabilities.get(other, 0.0) + math.exp(alt_lp)
    if len(probabilities) < 2:  # only the chosen label seen: {label: 1.0} would claim a certainty never measured
        return confidence, None
    norm = sum(probabilities.values())
    return confidence, {k: v / norm for k, v in probabilities.items()}


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


@dataclass
class _Spent:
    """Tokens an item's calls used, kept even when a later call of the item fails: it was paid for."""

    usage: Usage = field(default_factory=Usage)

    def add(self, usage: Usage) -> None:
        self.usage = Usage(self.usage.prompt_tokens + usage.prompt_tokens,
                           self.usage.completion_tokens + usage.completion_tokens)


@dataclass
class _Session:
    """What one `label` call's requests share: the client (bound to this event loop) and the
    request slots (at most `concurrency` requests in flight, whatever the confidence method)."""

    client: openai.AsyncOpenAI
    slots: asyncio.Semaphore


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


class _CallFailed(Exception):
    """A request that failed for good (after the retries, or at once for a 4xx that cannot succeed)."""

    def __init__(self, kind: ErrorKind, message: str):
        super().__init__(message)
        self.kind, self.message = kind, message


def _usage_of(response: Any) -> Usage:
    usage = getattr(response, "usage", None)
    return Usage(prompt_tokens=getattr(usage, "prompt_tokens", 0) or 0,
                 completion_tokens=getattr(usage, "completion_tokens", 0) or 0)


class OpenAITeacher:
    """Labels through chat completions; see the module docstring."""

    backoff_initial_s = 0.5
    backoff_max_s = 30.0
    backoff_jitter_s = 0.5
    verify_top_logprobs = 20  # the most the OpenAI API gives

    def __init__(self, config: OpenAITeacherConfig, task: TaskConfig, progress: bool = True):
        self.progress = progress
        self.config = config
        self.task = task
        self.labels = list(task.label_names)
        self.method = config.confidence
        self.model_id = f"openai:{config.model}@{config.base_url or 'api.openai.com'}"
        key = os.environ.get(config.api_key_env)
        if not key:
            if config.base_url is None:
                raise ConfigError(
                    f"teacher.api_key_env: environment variable {config.api_key_env} is not set "
                    "(the OpenAI API needs a key; set it, or give teacher.base_url for a local server)"
                )
            key = "none"
        self._api_key = key
        self._template = load_template(config.prompt)
        self._strict = load_template("strict.j2")
        self._verify = load_template("verify.j2")
        self.schema = verbalized_schema(self.labels) if self.method == "verbalized" else label_schema(self.labels)
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
        self.limits = RateLimits.per_minute(config.requests_per_minute, config.tokens_per_minute)
        # "json_schema" (OpenAI, vLLM, llama.cpp's llama-server); "json_object" with a "schema"
        # member is llama-cpp-python's form, switched to once the server refuses the first.
        self.response_format_mode = "json_schema"
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
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self._label_all(items, on_result))
        # Called from inside a running loop (a notebook, an async app): run ours in a worker thread.
        with concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="quarry-teacher") as pool:
            return pool.submit(asyncio.run, self._label_all(items, on_result)).result()

    def close(self) -> None:
        """Clients live for one `label` call (an async client is bound to its event loop), so
        closing only marks the teacher finished."""
        self._closed = True

    # -- the async side -------------------------------------------------------------------------

    def _client(self) -> openai.AsyncOpenAI:
        # max_retries=0: tenacity (below) is the one retry policy, not the SDK's own.
        return openai.AsyncOpenAI(
            api_key=self._api_key, base_url=self.config.base_url, timeout=self.config.timeout_s, max_retries=0
        )

    async def _label_all(self, items: list[TeacherItem], on_result: OnResult | None) -> list[TeacherResult]:
        results: list[TeacherResult | None] = [None] * len(items)
        items_in_flight = asyncio.Semaphore(self.config.concurrency)
        session = _Session(self._client(), asyncio.Semaphore(self.config.concurrency))

        async def one(position: int) -> tuple[int, TeacherResult]:
            async with items_in_flight:
                return position, await self._label_one(session, items[position])

        tasks = [asyncio.create_task(one(i)) for i in range(len(items))]
        tokens, cost, failed = 0, 0.0, 0
        try:
            with tqdm(total=len(items), desc="teacher", unit="label", disable=not self.progress, leave=False) as bar:
                for next_done in asyncio.as_completed(tasks):
                    position, result = await next_done
                    results[position] = result
                    if on_result is not None:
                        on_result(position, result)
                    tokens += result.usage.prompt_tokens + result.usage.completion_tokens
                    cost += result.cost
                    failed += result.error is not None
                    bar.set_postfix_str(f"{tokens} tokens, cost {cost:.4f}, failed {failed}", refresh=False)
                    bar.update(1)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await session.client.close()
        return [r for r in results if r is not None]

    def _response_format(self) -> dict[str, Any]:
        if self.response_format_mode == "json_schema":
            return {"type": "json_schema", "json_schema": {"name": "label", "schema": self.schema, "strict": True}}
        return {"type": "json_object", "schema": self.schema}

    async def _request(self, client: openai.AsyncOpenAI, messages: list[dict[str, str]], *, temperature: float,
                       max_tokens: int, structured: bool, top_logprobs: int | None, seed: int | None) -> Any:
        """One HTTP request. `top_logprobs` None: no logprobs; `structured`: the answer is held to the
        label schema and `extra_body` goes along (a verification question has neither)."""
        kwargs: dict[str, Any] = dict(model=self.config.model, messages=messages, temperature=temperature,
                                      max_tokens=max_tokens)
        if top_logprobs is not None:
            kwargs["logprobs"] = True
            if top_logprobs:
                kwargs["top_logprobs"] = top_logprobs
        if seed is not None:
            kwargs["seed"] = seed
        if not structured:
            return await client.chat.completions.create(**kwargs)
        if self.config.extra_body:
            kwargs["extra_body"] = dict(self.config.extra_body)
        mode = self.response_format_mode
        try:
            return await client.chat.completions.create(response_format=self._response_format(), **kwargs)
        except openai.APIStatusError as exc:
            if mode != "json_schema" or not _rejects_json_schema(exc):
                raise
        self.response_format_mode = "json_object"
        if self.limits.requests is not None:  # the refused request counted against the server's limit too
            await self.limits.requests.acquire(1.0)
        return await client.chat.completions.create(response_format=self._response_format(), **kwargs)

    def _wait(self, retry_state: Any) -> float:
        backoff = wait_exponential_jitter(
            initial=self.backoff_initial_s, max=self.backoff_max_s, jitter=self.backoff_jitter_s
        )(retry_state)
        outcome = retry_state.outcome
        asked = _retry_after_s(outcome.exception() if outcome is not None else None)
        return max(backoff, min(asked, _RETRY_AFTER_CAP_S)) if asked is not None else backoff

    async def _call(self, session: _Session, messages: list[dict[str, str]], spent: _Spent, *,
                    temperature: float, max_tokens: int, structured: bool = True,
                    top_logprobs: int | None = None, seed: int | None = None) -> Any:
        """A request under the rate limits and the retry policy; raises _CallFailed when it gives up."""
        estimate = sum(len(m["content"]) for m in messages) / 4 + max_tokens
        attempts = 0
        try:
            async for attempt in AsyncRetrying(
                stop=stop_after_attempt(self.config.max_retries + 1),
                wait=self._wait,
                retry=retry_if_exception(_retryable),
                reraise=True,
            ):
                with attempt:
                    attempts += 1
                    await self.limits.acquire(estimate)
                    async with session.slots:
                        response = await self._request(session.client, messages, temperature=temperature,
                                                       max_tokens=max_tokens, structured=structured,
                                                       top_logprobs=top_logprobs, seed=seed)
        except Exception as exc:  # one item's failure is its result, never the batch's exception
            tries = f" (after {attempts} attempt{'s' if attempts != 1 else ''})"
            message = " ".join(f"{type(exc).__name__}: {exc}".split())[:500] + tries
            raise _CallFailed(error_kind(exc), message) from exc
        used = _usage_of(response)
        spent.add(used)
        self.limits.settle(estimate, used.prompt_tokens + used.completion_tokens)
        return response

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

    async def _ask(self, session: _Session, messages: list[dict[str, str]], spent: _Spent, *,
                   temperature: float, logprobs: bool, seed: int | None = None) -> _Answer:
        """A label from the model; an unusable answer is asked once more with a stricter follow-up."""
        raws: list[str] = []
        for strict in (False, True):
            response = await self._call(session, messages, spent, temperature=temperature,
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

    async def _label_one(self, session: _Session, item: TeacherItem) -> TeacherResult:
        messages = self.messages(item.text, item.examples)
        key = prompt_hash(self.model_id, json.dumps(messages), self.params)
        started = time.perf_counter()
        spent = _Spent()
        try:
            result = await self._by_method(session, messages, spent)
        except _CallFailed as failed:
            result = TeacherResult(label=None, confidence=None, error=failed.kind, error_message=failed.message)
        cost = call_cost(spent.usage, self.config.price_input_per_mtok, self.config.price_output_per_mtok)
        return dataclasses.replace(result, usage=spent.usage, prompt_hash=key, cost=cost, confidence_method=self.method,
                                   latency_s=time.perf_counter() - started)

    async def _by_method(self, session: _Session, messages: list[dict[str, str]], spent: _Spent) -> TeacherResult:
        cfg = self.config
        if self.method == "self_consistency":
            outcomes = await asyncio.gather(
                *(self._ask(session, messages, spent, temperature=cfg.sample_temperature, logprobs=False, seed=i)
                  for i in range(cfg.samples)), return_exceptions=True)
            failures = [o for o in outcomes if isinstance(o, BaseException)]
            answers = [a for a in outcomes if isinstance(a, _Answer)]
            # Vote on the samples that arrived when at least half did: failing the item would buy them all again.
            if failures and (len(answers) * 2 < cfg.samples or not isinstance(failures[0], _CallFailed)):
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
            response = await self._call(session, verify, spent, temperature=0.0, max_tokens=1, structured=False,
                                        top_logprobs=self.verify_top_logprobs)
            choices = getattr(response, "choices", None) or []
            logprobs = getattr(getattr(choices[0], "logprobs", None), "content", None) if choices else None
            return TeacherResult(label=answer.label, confidence=p_true(logprobs), raw=answer.raw)
        confidence, distribution = label_confidence(answer.logprobs, answer.label, self.labels)
        return TeacherResult(label=answer.label, confidence=confidence, distribution=distribution, raw=answer.raw)


def _rejects_json_schema(exc: openai.APIStatusError) -> bool:
    """Whether the server refused the json_schema response format itself (not some other error)."""
    if exc.status_code not in (400, 422, 500):
        return False
    text = str(exc)
    return "response_format" in text and "json_schema" in text
