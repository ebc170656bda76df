"""Teacher backends by kind: what `teacher.kind` may name, and where each kind's parts live.

A backend is one `TeacherSpec`: its kind, its options model (a `TeacherOptions` subclass, so the
shared keys come with it), and "module:attribute" references that are imported only when used:
the backend (called with the options, the task and `progress=`), its `quarry plan` estimate
(called with the options, the task and `sample=`, `shown=`, `load_tokenizer=`, returning an
`engine.teacher.estimate.Estimate`) and, optionally, its preflight (called with the options and the
task before any work, and when calls keep failing mid-run; it returns an
`engine.teacher.preflight.Preflight` or raises `TeacherUnavailable`: a real request to a server, or a
cheap check that a local model can be found). Referring by name keeps this module, and engine/config.py
which builds the config's union from it, free of every backend's libraries.

Besides the built-ins, an installed distribution may add kinds through the entry-point group
`quarry_al.teachers`, each entry point naming a `TeacherSpec` (as simonw/llm finds its plugins):

    [project.entry-points."quarry_al.teachers"]
    echo = "quarry_echo:SPEC"

Plugins are found when engine/config.py is first imported (so a plugin's module must not import
quarry_al.engine.config itself: it is still being built); one that cannot be loaded is skipped with
a warning, so a broken plugin costs its own kind and nothing else.
"""
from __future__ import annotations

import importlib
import importlib.metadata
import typing
import warnings
from dataclasses import dataclass
from typing import Annotated, Any, Callable, Union

from pydantic import Field

from ..core.errors import ConfigError
from .options import LocalTeacherConfig, OpenAITeacherConfig, TeacherOptions, VLLMTeacherConfig

ENTRY_POINT_GROUP = "quarry_al.teachers"


@dataclass(frozen=True)
class TeacherSpec:
    """One kind of teacher; checked when made, so a plugin's mistake shows where it is installed, not mid-run."""

    kind: str
    options: type[TeacherOptions]
    backend: str  # "module:attribute" of the backend class or factory
    estimate: str  # "module:attribute" of the plan estimate
    preflight: str | None = None  # "module:attribute" of the check that the teacher can answer
    # For generation tasks (the teacher writes answers): the writing backend and its estimate; a kind without
    # them can only label.
    writer: str | None = None
    writer_estimate: str | None = None

    def __post_init__(self) -> None:
        if not (isinstance(self.options, type) and issubclass(self.options, TeacherOptions)):
            raise TypeError(f"teacher kind {self.kind!r}: options must subclass TeacherOptions")
        field = self.options.model_fields.get("kind")
        if field is None or typing.get_args(field.annotation) != (self.kind,) or field.default != self.kind:
            raise TypeError(f"teacher kind {self.kind!r}: {self.options.__name__}.kind must be "
                            f"Literal[{self.kind!r}] = {self.kind!r}")
        if (self.writer is None) != (self.writer_estimate is None):
            raise TypeError(f"teacher kind {self.kind!r}: give both writer and writer_estimate, or neither")
        for reference in (self.backend, self.estimate, self.preflight, self.writer, self.writer_estimate):
            if reference is None:
                continue
            module, sep, attribute = reference.partition(":")
            if not (module and sep and attribute):
                raise TypeError(f"teacher kind {self.kind!r}: {reference!r} is not 'module:attribute'")

    def load_backend(self) -> Callable[..., Any]:
        """The backend's class or factory; its module (and whatever that imports) is imported now."""
        return _resolve(self.backend)

    def load_estimate(self) -> Callable[..., Any]:
        return _resolve(self.estimate)

    def load_preflight(self) -> Callable[..., Any] | None:
        return None if self.preflight is None else _resolve(self.preflight)

    def for_task(self, task_kind: str) -> tuple[str, str]:
        """(backend, estimate) references for a task kind: the labeling pair, or the writing pair for generation."""
        if task_kind != "generation":
            return self.backend, self.estimate
        if self.writer is None or self.writer_estimate is None:
            raise ConfigError(f"teacher.kind: {self.kind!r} cannot write answers (it has no writer); a generation "
                              f"task needs local, openai or vllm")
        return self.writer, self.writer_estimate

    def load_for_task(self, task_kind: str) -> tuple[Callable[..., Any], Callable[..., Any]]:
        """The backend and the plan estimate for a task kind, imported now."""
        backend, estimate = self.for_task(task_kind)
        return _resolve(backend), _resolve(estimate)


def _resolve(reference: str) -> Any:
    module, _, attribute = reference.partition(":")
    target: Any = importlib.import_module(module)
    for name in attribute.split("."):
        target = getattr(target, name)
    return target


_TEACHER = "quarry_al.engine.teacher"
BUILTIN: tuple[TeacherSpec, ...] = (
    TeacherSpec("local", LocalTeacherConfig, f"{_TEACHER}.local:LocalTeacher", f"{_TEACHER}.local:estimate",
                f"{_TEACHER}.local:preflight", f"{_TEACHER}.local_writer:LocalWriter",
                f"{_TEACHER}.local_writer:estimate"),
    TeacherSpec("openai", OpenAITeacherConfig, f"{_TEACHER}.openai_compat:OpenAITeacher",
                f"{_TEACHER}.openai_compat:estimate", f"{_TEACHER}.openai_preflight:preflight",
                f"{_TEACHER}.openai_writer:OpenAIWriter", f"{_TEACHER}.openai_writer:estimate"),
    TeacherSpec("vllm", VLLMTeacherConfig, f"{_TEACHER}.vllm_offline:VLLMTeacher", f"{_TEACHER}.vllm_offline:estimate",
                f"{_TEACHER}.vllm_offline:preflight", f"{_TEACHER}.vllm_writer:VLLMWriter",
                f"{_TEACHER}.vllm_writer:estimate"),
)


def discover() -> dict[str, TeacherSpec]:
    """Every kind: the built-ins, then those of installed plugins."""
    specs = {spec.kind: spec for spec in BUILTIN}
    for point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        where = f"teacher plugin {point.name!r} ({point.value})"
        try:
            spec = point.load()
        except Exception as exc:  # a plugin's own bug, whatever it is, must not stop every quarry command
            warnings.warn(f"{where} could not be loaded, skipped: {type(exc).__name__}: {exc}", stacklevel=2)
            continue
        if not isinstance(spec, TeacherSpec):
            warnings.warn(f"{where} is a {type(spec).__name__}, not a TeacherSpec: skipped", stacklevel=2)
        elif spec.kind in specs:
            warnings.warn(f"{where}: kind {spec.kind!r} is taken by {specs[spec.kind].backend}: skipped", stacklevel=2)
        else:
            specs[spec.kind] = spec
    return specs


def spec_for(kind: str) -> TeacherSpec:
    """The spec of `kind`, built-in or a plugin's, or a one-line ConfigError."""
    specs = discover()
    if kind not in specs:
        raise ConfigError(f"teacher.kind: unknown teacher kind {kind!r} (expected one of: {', '.join(specs)})")
    return specs[kind]


def options_union(specs: dict[str, TeacherSpec]) -> Any:
    """The type of `JobConfig.teacher`: the kinds' options models, told apart by `kind`."""
    models = tuple(spec.options for spec in specs.values())
    return Annotated[Union[models], Field(discriminator="kind")]
