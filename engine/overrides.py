"""`--set key.path=value` overrides: read as YAML, except where the config schema wants a string."""
from __future__ import annotations

from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

import yaml
from pydantic import BaseModel

from .core.errors import ConfigError


def set_dotted(tree: dict, dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = tree
    for key in keys[:-1]:
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            raise ConfigError(f"--set {dotted}: '{key}' is not a section")
        node = child
    node[keys[-1]] = value


def _flat_types(annotation: Any) -> list[Any]:
    """The types an annotation admits: Optional, unions and Annotated unwrapped."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _flat_types(get_args(annotation)[0])
    if origin in (Union, UnionType):
        return [t for arg in get_args(annotation) for t in _flat_types(arg)]
    return [annotation]


def wants_string(root: type[BaseModel], dotted: str) -> bool:
    """Whether the schema `root` types the value at `dotted` as a string (under any member of a union)."""
    models: list[Any] = [root]
    keys = dotted.split(".")
    for depth, key in enumerate(keys):
        admitted = [t for m in models if key in m.model_fields for t in _flat_types(m.model_fields[key].annotation)]
        if depth == len(keys) - 1:
            return str in admitted
        models = [t for t in admitted if isinstance(t, type) and issubclass(t, BaseModel)]
    return False


def parse_overrides(root: type[BaseModel], pairs: list[str]) -> list[tuple[str, Any]]:
    """`key.path=value` pairs from the command line; values are read as YAML (numbers, lists, null),
    except where the schema wants a string: there a value YAML would read as something else (a mapping,
    as in `task.description=Emails: from customers`, a list, a number) is taken as written."""
    parsed = []
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--set {pair!r}: expected key.path=value")
        literal = wants_string(root, key)
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as exc:
            if not literal:
                problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
                raise ConfigError(f"--set {pair!r}: the value is not valid YAML ({problem}); "
                                  f"complete it, or quote it as a YAML string") from None
            value = raw
        if literal and value is not None and not isinstance(value, str):
            value = raw.strip()
        parsed.append((key, value))
    return parsed
