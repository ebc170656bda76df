"""The OpenAI-compatible teacher's preflight: one tiny real request before any work.

GET /models first: a server that lists its models and not ours is a wrong model name, said with what it
serves (a server that does not list models is asked anyway). Then a one-token chat completion, which
must come back as a chat completion. Any failure is one line naming the URL, the model and the error:
connection refused, 401 (the key), 404 (the model or the URL), a timeout, a body that is not a chat
completion. One attempt, no retries: a server that cannot answer one tiny request is not ready for a run.
"""
from __future__ import annotations

import time
from typing import Any

import openai

from ..core.errors import TeacherUnavailable
from ..task import TaskConfig
from .options import OpenAITeacherConfig
from .preflight import Preflight
from .transport import TRANSPORT_ERRORS, api_key, usage_of

PING = [{"role": "user", "content": "Reply with the single word OK."}]
_LISTED_MODELS_SHOWN = 8


def _root_cause(exc: BaseException) -> str:
    """The innermost exception's message (an APIConnectionError's "Connection error." hides the refusal)."""
    while exc.__cause__ is not None or exc.__context__ is not None:
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return " ".join(str(exc).split()) or type(exc).__name__


def explain(exc: BaseException, config: OpenAITeacherConfig) -> str:
    """What went wrong, in the words a user acts on."""
    if isinstance(exc, openai.APITimeoutError):
        return f"no answer within teacher.timeout_s={config.timeout_s:g} s (timeout)"
    if isinstance(exc, openai.APIConnectionError):
        return f"cannot connect ({_root_cause(exc)})"
    if isinstance(exc, openai.AuthenticationError):
        return f"401 unauthorized: the server refused the key in ${config.api_key_env}"
    if isinstance(exc, openai.PermissionDeniedError):
        return f"403 forbidden: the key in ${config.api_key_env} may not use this model"
    if isinstance(exc, openai.NotFoundError):
        return "404 not found: no such model here, or teacher.base_url is not the API's root (it usually ends in /v1)"
    if isinstance(exc, openai.APIStatusError):
        return f"HTTP {exc.status_code}: {' '.join(str(exc.message).split())[:200]}"
    if isinstance(exc, (openai.APIResponseValidationError, ValueError)):
        return f"the answer is not an OpenAI chat completion (garbage body: {' '.join(str(exc).split())[:120]})"
    return f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"


def _served_models(client: openai.OpenAI) -> list[str] | None:
    """The model ids the server lists, or None when it does not list them (404/405, or no such list)."""
    try:
        page = client.models.list()
    except openai.APIStatusError as exc:
        if exc.status_code in (404, 405, 501):
            return None
        raise
    data = getattr(page, "data", None)
    if not isinstance(data, list):
        return None
    return [str(getattr(m, "id", "")) for m in data if getattr(m, "id", None)]


def _check(client: openai.OpenAI, config: OpenAITeacherConfig) -> Any:
    served = _served_models(client)
    if served is not None and config.model not in served:
        listed = ", ".join(sorted(served)[:_LISTED_MODELS_SHOWN]) + (" ..." if len(served) > _LISTED_MODELS_SHOWN else "")
        raise LookupError(f"the server does not serve this model; it serves: {listed or 'nothing'}")
    response = client.chat.completions.create(model=config.model, messages=PING, max_tokens=1, temperature=0.0)
    if not getattr(response, "choices", None):
        raise ValueError(f"no choices in {str(response)[:80]!r}")
    return response


def preflight(config: OpenAITeacherConfig, task: TaskConfig) -> Preflight:
    """One real, tiny request to the configured server; TeacherUnavailable (one line) when it fails."""
    root = config.base_url or "https://api.openai.com/v1"
    target = f"{root} (model {config.model})"
    client = openai.OpenAI(api_key=api_key(config), base_url=config.base_url, timeout=config.timeout_s, max_retries=0)
    started = time.perf_counter()
    try:
        response = _check(client, config)
    except LookupError as exc:
        raise TeacherUnavailable(f"teacher unavailable: {target}: {exc}") from None
    except (*TRANSPORT_ERRORS, ValueError) as exc:
        raise TeacherUnavailable(f"teacher unavailable: {target}: {explain(exc, config)}") from None
    finally:
        client.close()
    return Preflight(target=target, detail="answered", seconds=time.perf_counter() - started,
                     usage=usage_of(response), requested=True)
