"""Jinja2 prompt templates from `prompts/`, rendered into chat messages.

A template renders to text with `### system` / `### user` section markers, so one file
serves both chat servers and local models. The task part (instruction, label list) comes
first, then the few-shot examples as earlier user/assistant turns (fixed ones before per-item
ones; as turns, a small model answered AG News at 0.50 instead of 0.13 with the examples in one
message, 30 texts), and the item last: every
prompt of a job starts with the same text, so servers (vLLM's prefix caching, llama.cpp's
`cache_prompt`) compute that prefix once.
"""
from __future__ import annotations

import importlib.resources
import re
from pathlib import Path
from typing import Sequence

import jinja2

from ..core.errors import ConfigError
from ..task import TaskConfig
from .base import Example

_SECTION = re.compile(r"^###\s*(system|user|assistant)\s*$", re.MULTILINE)


def _environment() -> jinja2.Environment:
    return jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=False, autoescape=False)


def template_source(name: str) -> str | None:
    """The text of a template: a path to a file of the user's, else a file of the `prompts` package;
    None when there is neither."""
    path = Path(name)
    if path.is_file():
        return path.read_text(encoding="utf-8")
    resource = importlib.resources.files("quarry_al.prompts").joinpath(name)
    return resource.read_text(encoding="utf-8") if resource.is_file() else None


def load_template(name: str, key: str = "teacher.prompt") -> jinja2.Template:
    """A template by file name from the `prompts` package, or by path to a file of the user's; `key` names
    the config key in the error when there is neither."""
    source = template_source(name)
    if source is None:
        raise ConfigError(f"{key}: template not found: {name} (looked in the prompts package and as a path)")
    return _environment().from_string(source)


def render_messages(template: jinja2.Template, task: TaskConfig, text: str, output: str = "label",
                    examples: Sequence[Example] = ()) -> list[dict[str, str]]:
    """`output` tells the template how the answer must look: "label" (bare) or "json" ({"label": ...});
    `examples` are few-shot examples, rendered after the task and before the item."""
    rendered = template.render(task=task, labels=task.labels, label_names=task.label_names, text=text, output=output,
                               examples=list(examples))
    return split_messages(rendered)


def split_messages(rendered: str) -> list[dict[str, str]]:
    """Chat messages from a rendered template's `### role` sections (all of it as one user turn without any);
    an empty section (an empty system prompt) is left out."""
    parts = _SECTION.split(rendered)
    if len(parts) < 3:
        return [{"role": "user", "content": rendered.strip()}]
    return [{"role": role, "content": content.strip()} for role, content in zip(parts[1::2], parts[2::2])
            if content.strip() or role != "system"]
