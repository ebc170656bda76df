"""Teachers: the labeling oracles. `build_teacher` makes the one a job's config names; which kinds exist,
and where each one's options, backend and plan estimate live, is engine/teacher/registry.py's business."""
from __future__ import annotations

from .base import Teacher, TeacherItem, TeacherResult
from .cache import CachingTeacher, TeacherCache
from .options import TeacherOptions
from .registry import spec_for

__all__ = ["Teacher", "TeacherItem", "TeacherResult", "build_backend", "build_teacher"]


def build_teacher(config: TeacherOptions, task, progress: bool = True, backend: Teacher | None = None) -> Teacher:
    """The teacher for `config` (any kind's options) and the job's task, behind the call cache
    (unless `cache: false`) and the price list of the config; `backend` replaces the one the kind names
    (the Ray executor's, engine/executors/ray_llm.py)."""
    cache = TeacherCache(config.cache_path) if config.cache else None
    # The local teacher's confidence is its label likelihoods; a chat teacher's is the configured method;
    # a writer's are the signals of its answers.
    method = "generation" if task.kind == "generation" else getattr(config, "confidence", "label_likelihood")
    return CachingTeacher(backend or build_backend(config, task, progress), cache, config.price_input_per_mtok,
                          config.price_output_per_mtok, confidence_method=method)


def build_backend(config: TeacherOptions, task, progress: bool = True) -> Teacher:
    """The bare backend named by `config.kind` for the task's kind (a labeler, or a writer of answers),
    without cache or prices; its module, and the libraries it needs, are imported only now."""
    backend, _ = spec_for(config.kind).load_for_task(task.kind)
    return backend(config, task, progress=progress)
