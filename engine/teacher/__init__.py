"""Teachers: the labeling oracles. `build_teacher` makes the one a job's config names."""
from __future__ import annotations

from quarry_al.engine.teacher.base import Teacher, TeacherItem, TeacherResult

__all__ = ["Teacher", "TeacherItem", "TeacherResult", "build_backend", "build_teacher"]


def build_teacher(config, task, progress: bool = True) -> Teacher:
    """The teacher for `config` (a Local-, OpenAI- or VLLMTeacherConfig) and the job's task,
    behind the call cache (unless `cache: false`) and the price list of the config."""
    from quarry_al.engine.teacher.cache import CachingTeacher, TeacherCache

    cache = TeacherCache(config.cache_path) if config.cache else None
    # The local teacher's confidence is its label likelihoods; a chat teacher's is the configured method.
    method = getattr(config, "confidence", "label_likelihood")
    return CachingTeacher(build_backend(config, task, progress), cache, config.price_input_per_mtok,
                          config.price_output_per_mtok, confidence_method=method)


def build_backend(config, task, progress: bool = True) -> Teacher:
    """The bare backend named by `config.kind`, without cache or prices; each backend's module, and the
    libraries it needs, are imported only when it is chosen."""
    kind = getattr(config, "kind", None)
    if kind == "openai":
        from quarry_al.engine.teacher.openai_compat import OpenAITeacher

        return OpenAITeacher(config, task, progress=progress)
    if kind == "local":
        from quarry_al.engine.teacher.local import LocalTeacher

        return LocalTeacher(config, task, progress=progress)
    if kind == "vllm":
        from quarry_al.engine.teacher.vllm_offline import VLLMTeacher

        return VLLMTeacher(config, task, progress=progress)
    raise ValueError(f"teacher.kind: unknown teacher kind {kind!r} (expected 'local', 'openai' or 'vllm')")
