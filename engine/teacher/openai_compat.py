"""A teacher behind any OpenAI-compatible chat server: OpenAI, a vLLM server, a llama.cpp server.

Requests go out concurrently (at most `concurrency` in flight) and each one asks for a JSON
object whose "label" is constrained by a JSON schema to the task's labels. Transient failures
(timeouts, refused connections, 429, 5xx) are retried with jittered exponential backoff; what
still fails after the last try comes back as a typed error on that item's result, never as an
exception, so one bad item never loses a batch.

The confidence is the probability the model gave to the label string it wrote: the product of
the probabilities of the tokens inside the JSON string value, read from the returned logprobs.
Servers differ in what those logprobs mean: llama-cpp-python reports the model's own
distribution before its grammar masks the tokens outside the schema, so that probability is
the raw one (often low for a small model) and the distribution over labels, read from the top
logprobs at the label's first token, is the more useful comparison between labels.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import email.utils
import json
import math
import os
import re
import time
from typing import Any, Sequence

import openai
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter
from tqdm import tqdm

from engine.config import ConfigError, OpenAITeacherConfig, TaskConfig
from engine.teacher.base import ErrorKind, OnResult, TeacherItem, TeacherResult, Usage, prompt_hash
from engine.teacher.prompts import load_template, render_messages

# The "label" member of a JSON object and its string value (group 1, still JSON-escaped).
_LABEL_VALUE = re.compile(r'"label"\s*:\s*"((?:[^"\\]|\\.)*)"', re.DOTALL)
_FENCE = re.compile(r"^```[A-Za-z0-9_-]*\s*\n?(.*?)\n?\s*```$", re.DOTALL)
_RETRY_AFTER_CAP_S = 60.0


class _FormatRejected(Exception):
    """The server refused `response_format` of type json_schema (llama-cpp-python does, with a 500)."""


def label_schema(labels: Sequence[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {"label": {"type": "string", "enum": list(labels)}},
        "required": ["label"],
        "additionalProperties": False,
    }


def error_kind(exc: BaseException) -> ErrorKind:
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
    return error_kind(exc) in ("timeout", "connection", "rate_limit", "server")


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


def parse_label(content: str | None, labels: Sequence[str]) -> tuple[str | None, ErrorKind | None, str]:
    """(label, error, message) from the model's answer. Lenient only where it is harmless:
    surrounding whitespace and code fences are dropped, and a label matching one of the set
    except for letter case is taken as that label."""
    if content is None:
        return None, "unparsable", "empty answer"
    text = content.strip()
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced.group(1).strip()
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, "unparsable", f"answer is not JSON: {exc}"
    if not isinstance(data, dict) or "label" not in data:
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
    if match is None or match.end(1) == match.start(1):
        return None, None
    begin, end = match.span(1)
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


class OpenAITeacher:
    """Labels through chat completions; see the module docstring."""

    backoff_initial_s = 0.5
    backoff_max_s = 30.0
    backoff_jitter_s = 0.5

    def __init__(self, config: OpenAITeacherConfig, task: TaskConfig, progress: bool = True):
        self.progress = progress
        self.config = config
        self.task = task
        self.labels = list(task.label_names)
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
        self.schema = label_schema(self.labels)
        self.params = json.dumps(
            {"temperature": config.temperature, "max_tokens": config.max_tokens, "schema": self.schema,
             "extra_body": config.extra_body},
            sort_keys=True,
        )
        # "json_schema" (OpenAI, vLLM, llama.cpp's llama-server); "json_object" with a "schema"
        # member is llama-cpp-python's form, switched to once the server refuses the first.
        self.response_format_mode = "json_schema"
        self._closed = False

    # -- the public, synchronous side -------------------------------------------------------

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
        return openai.AsyncOpenAI(
            api_key=self._api_key, base_url=self.config.base_url, timeout=self.config.timeout_s, max_retries=0
        )

    async def _label_all(self, items: list[TeacherItem], on_result: OnResult | None) -> list[TeacherResult]:
        results: list[TeacherResult | None] = [None] * len(items)
        semaphore = asyncio.Semaphore(self.config.concurrency)
        client = self._client()

        async def one(position: int) -> tuple[int, TeacherResult]:
            async with semaphore:
                return position, await self._label_one(client, items[position])

        tasks = [asyncio.create_task(one(i)) for i in range(len(items))]
        try:
            with tqdm(total=len(items), desc="teacher", unit="item", disable=not self.progress, leave=False) as bar:
                for next_done in asyncio.as_completed(tasks):
                    position, result = await next_done
                    results[position] = result
                    if on_result is not None:
                        on_result(position, result)
                    bar.update(1)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await client.close()
        return [r for r in results if r is not None]

    def _response_format(self) -> dict[str, Any]:
        if self.response_format_mode == "json_schema":
            return {"type": "json_schema", "json_schema": {"name": "label", "schema": self.schema, "strict": True}}
        return {"type": "json_object", "schema": self.schema}

    async def _request(self, client: openai.AsyncOpenAI, messages: list[dict[str, str]]) -> Any:
        kwargs: dict[str, Any] = dict(
            model=self.config.model,
            messages=messages,
            temperature=self.config.temperature,
            max_tokens=self.config.max_tokens,
        )
        if self.config.logprobs:
            kwargs["logprobs"] = True
            if self.config.top_logprobs:
                kwargs["top_logprobs"] = self.config.top_logprobs
        if self.config.extra_body:
            kwargs["extra_body"] = dict(self.config.extra_body)
        mode = self.response_format_mode
        try:
            return await client.chat.completions.create(response_format=self._response_format(), **kwargs)
        except openai.APIStatusError as exc:
            if mode != "json_schema" or not _rejects_json_schema(exc):
                raise
        self.response_format_mode = "json_object"
        return await client.chat.completions.create(response_format=self._response_format(), **kwargs)

    def _wait(self, retry_state: Any) -> float:
        backoff = wait_exponential_jitter(
            initial=self.backoff_initial_s, max=self.backoff_max_s, jitter=self.backoff_jitter_s
        )(retry_state)
        outcome = retry_state.outcome
        asked = _retry_after_s(outcome.exception() if outcome is not None else None)
        return max(backoff, min(asked, _RETRY_AFTER_CAP_S)) if asked is not None else backoff

    async def _label_one(self, client: openai.AsyncOpenAI, item: TeacherItem) -> TeacherResult:
        messages = render_messages(self._template, self.task, item.text, output="json")
        key = prompt_hash(self.model_id, json.dumps(messages), self.params)
        started = time.perf_counter()
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
                    response = await self._request(client, messages)
        except Exception as exc:  # one item's failure is its result, never the batch's exception
            kind = error_kind(exc)
            tries = f" (after {attempts} attempt{'s' if attempts != 1 else ''})"
            message = " ".join(f"{type(exc).__name__}: {exc}".split())[:500] + tries
            return TeacherResult(label=None, confidence=None, error=kind, error_message=message,
                                 prompt_hash=key, latency_s=time.perf_counter() - started)
        latency = time.perf_counter() - started
        usage = getattr(response, "usage", None)
        counted = Usage(prompt_tokens=getattr(usage, "prompt_tokens", 0) or 0,
                        completion_tokens=getattr(usage, "completion_tokens", 0) or 0)
        extra = dict(usage=counted, prompt_hash=key, latency_s=latency)
        choices = getattr(response, "choices", None) or []
        if not choices:
            return TeacherResult(label=None, confidence=None, error="unparsable",
                                 error_message="response has no choices", **extra)
        choice = choices[0]
        content = choice.message.content
        raw = content or ""
        label, error, message = parse_label(content, self.labels)
        if error is not None:
            refusal = getattr(choice.message, "refusal", None)
            if refusal:
                message = f"refused: {refusal}"
            if getattr(choice, "finish_reason", None) == "length":
                message += " (the answer was cut at max_tokens)"
            return TeacherResult(label=None, confidence=None, raw=raw, error=error, error_message=message, **extra)
        logprobs = getattr(getattr(choice, "logprobs", None), "content", None)
        confidence, distribution = label_confidence(logprobs, label, self.labels)
        return TeacherResult(label=label, confidence=confidence, distribution=distribution, raw=raw, **extra)


def _rejects_json_schema(exc: openai.APIStatusError) -> bool:
    """Whether the server refused the json_schema response format itself (not some other error)."""
    if exc.status_code not in (400, 422, 500):
        return False
    text = str(exc)
    return "response_format" in text and "json_schema" in text
