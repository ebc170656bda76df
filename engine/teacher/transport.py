"""Chat-completion requests to an OpenAI-compatible server: the client, the rate limits, the one retry
policy and the response-format fallback. What the answers mean is engine/teacher/openai_compat.py's.

tenacity is the one retry policy (the SDK's own retries are off): timeouts, dropped connections,
malformed responses, 429 (waiting at least its Retry-After) and 5xx are retried with jittered
exponential backoff; other 4xx are not, as they cannot succeed. A request that still fails raises
`CallFailed` with a typed error kind, which the backend turns into that item's result. Only the
transport's and the API's own exceptions are caught: anything else is a bug, and raises.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import email.utils
import json
import os
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Coroutine, Sequence, TypeVar

import httpx
import openai
from tqdm import tqdm
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from ..core.errors import ConfigError
from .base import TRANSIENT_ERRORS, ErrorKind, OnResult, TeacherItem, TeacherResult, Usage
from .options import OpenAITeacherConfig
from .ratelimit import RateLimits

T = TypeVar("T")

_RETRY_AFTER_CAP_S = 60.0
# What a request may fail with that is the server's or the network's doing (a malformed body included).
TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (
    openai.APIError, httpx.HTTPError, json.JSONDecodeError, asyncio.TimeoutError, TimeoutError, ConnectionError)

Messages = list[dict[str, str]]


def error_kind(exc: BaseException) -> ErrorKind:
    if isinstance(exc, (json.JSONDecodeError, openai.APIResponseValidationError)):
        return "bad_response"  # a 200 whose body is not the JSON it should be: a broken hop, worth retrying
    if isinstance(exc, (openai.APITimeoutError, httpx.TimeoutException, asyncio.TimeoutError, TimeoutError)):
        return "timeout"
    if isinstance(exc, (openai.APIConnectionError, httpx.TransportError, ConnectionError)):
        return "connection"
    if isinstance(exc, openai.RateLimitError):
        return "rate_limit"
    if isinstance(exc, openai.APIStatusError) and exc.status_code >= 500:
        return "server"
    return "other"


def _retryable(exc: BaseException) -> bool:
    return error_kind(exc) in TRANSIENT_ERRORS


def retry_after_s(exc: BaseException | None) -> float | None:
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


def _rejects_json_schema(exc: openai.APIStatusError) -> bool:
    """Whether the server refused the json_schema response format itself (not some other error)."""
    if exc.status_code not in (400, 422, 500):
        return False
    text = str(exc)
    return "response_format" in text and "json_schema" in text


def api_key(config: OpenAITeacherConfig) -> str:
    """The key from `api_key_env`; a local server (a `base_url`) may do without one."""
    key = os.environ.get(config.api_key_env)
    if key:
        return key
    if config.base_url is None:
        raise ConfigError(
            f"teacher.api_key_env: environment variable {config.api_key_env} is not set "
            "(the OpenAI API needs a key; set it, or give teacher.base_url for a local server)"
        )
    return "none"


def usage_of(response: Any) -> Usage:
    usage = getattr(response, "usage", None)
    return Usage(prompt_tokens=getattr(usage, "prompt_tokens", 0) or 0,
                 completion_tokens=getattr(usage, "completion_tokens", 0) or 0)


class CallFailed(Exception):
    """A request that failed for good (after the retries, or at once for a 4xx that cannot succeed)."""

    def __init__(self, kind: ErrorKind, message: str):
        super().__init__(message)
        self.kind, self.message = kind, message


@dataclass
class Spent:
    """Tokens an item's calls used, kept even when a later call of the item fails: it was paid for."""

    usage: Usage = field(default_factory=Usage)

    def add(self, usage: Usage) -> None:
        self.usage = Usage(self.usage.prompt_tokens + usage.prompt_tokens,
                           self.usage.completion_tokens + usage.completion_tokens)


@dataclass
class Session:
    """What one `label` call's requests share: the client (bound to this event loop) and the
    request slots (at most `concurrency` requests in flight, whatever the confidence method)."""

    client: openai.AsyncOpenAI
    slots: asyncio.Semaphore


class ChatTransport:
    """The requests of one teacher; the backoff settings are attributes so tests can shorten them."""

    backoff_initial_s = 0.5
    backoff_max_s = 30.0
    backoff_jitter_s = 0.5

    def __init__(self, config: OpenAITeacherConfig, schema: dict[str, Any] | None):
        self.config = config
        self.schema = schema  # what a structured answer is held to
        self._api_key = api_key(config)
        self.limits = RateLimits.per_minute(config.requests_per_minute, config.tokens_per_minute)
        # "json_schema" (OpenAI, vLLM, llama.cpp's llama-server); "json_object" with a "schema"
        # member is llama-cpp-python's form, switched to once the server refuses the first.
        self.response_format_mode = "json_schema"

    def session(self) -> Session:
        """A client for one event loop; max_retries=0: tenacity is the one retry policy, not the SDK's."""
        client = openai.AsyncOpenAI(api_key=self._api_key, base_url=self.config.base_url,
                                    timeout=self.config.timeout_s, max_retries=0)
        return Session(client, asyncio.Semaphore(self.config.concurrency))

    def _response_format(self) -> dict[str, Any]:
        if self.response_format_mode == "json_schema":
            return {"type": "json_schema", "json_schema": {"name": "label", "schema": self.schema, "strict": True}}
        return {"type": "json_object", "schema": self.schema}

    async def _request(self, client: openai.AsyncOpenAI, messages: Messages, *, temperature: float,
                       max_tokens: int, structured: bool, top_logprobs: int | None, seed: int | None,
                       stop: list[str] | None = None) -> Any:
        """One HTTP request. `top_logprobs` None: no logprobs; `structured`: the answer is held to the
        schema and `extra_body` goes along (a verification question and a written answer have neither)."""
        kwargs: dict[str, Any] = dict(model=self.config.model, messages=messages, temperature=temperature,
                                      max_tokens=max_tokens)
        if stop:
            kwargs["stop"] = stop
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
        asked = retry_after_s(outcome.exception() if outcome is not None else None)
        return max(backoff, min(asked, _RETRY_AFTER_CAP_S)) if asked is not None else backoff

    async def call(self, session: Session, messages: Messages, spent: Spent, *, temperature: float, max_tokens: int,
                   structured: bool = True, top_logprobs: int | None = None, seed: int | None = None,
                   stop: list[str] | None = None) -> Any:
        """A request under the rate limits and the retry policy; raises CallFailed when it gives up."""
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
                                                       top_logprobs=top_logprobs, seed=seed, stop=stop)
        except TRANSPORT_ERRORS as exc:  # one item's failure is its result, never the batch's exception
            tries = f" (after {attempts} attempt{'s' if attempts != 1 else ''})"
            message = " ".join(f"{type(exc).__name__}: {exc}".split())[:500] + tries
            raise CallFailed(error_kind(exc), message) from exc
        used = usage_of(response)
        spent.add(used)
        self.limits.settle(estimate, used.prompt_tokens + used.completion_tokens)
        return response


def run_blocking(coroutine: Coroutine[Any, Any, T]) -> T:
    """An async batch run from synchronous code; inside a running event loop (a notebook, an async app) it
    runs in a worker thread with a loop of its own."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="quarry-teacher") as pool:
        return pool.submit(asyncio.run, coroutine).result()


async def ask_each(transport: ChatTransport, items: Sequence[TeacherItem],
                   ask: Callable[[Session, TeacherItem], Awaitable[TeacherResult]], on_result: OnResult | None, *,
                   progress: bool, desc: str) -> list[TeacherResult]:
    """Every item asked at once, at most `concurrency` at a time; each result handed to `on_result` as it
    completes (so a kill loses nothing already answered), with a bar of tokens, cost and failures."""
    results: list[TeacherResult | None] = [None] * len(items)
    items_in_flight = asyncio.Semaphore(transport.config.concurrency)
    session = transport.session()

    async def one(position: int) -> tuple[int, TeacherResult]:
        async with items_in_flight:
            return position, await ask(session, items[position])

    tasks = [asyncio.create_task(one(i)) for i in range(len(items))]
    tokens, cost, failed = 0, 0.0, 0
    try:
        with tqdm(total=len(items), desc=desc, unit="item", disable=not progress, leave=False) as bar:
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
