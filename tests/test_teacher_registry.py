"""The teacher registry: the built-in kinds, and a plugin's kind found through an entry point, with its
options in the config, its backend built on use and its `quarry plan` estimate."""
from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
from typing import Literal

import pytest
import yaml
from pydantic import TypeAdapter, ValidationError

from conftest import CHECKOUT_PRELUDE, REPO
from quarry_al.engine.config import ConfigError, JobConfig, TaskConfig
from quarry_al.engine.teacher import TeacherItem, build_backend, build_teacher
from quarry_al.engine.teacher.options import LocalTeacherConfig, OpenAITeacherConfig, TeacherOptions, VLLMTeacherConfig
from quarry_al.engine.teacher.registry import ENTRY_POINT_GROUP, TeacherSpec, discover, options_union, spec_for

TASK = TaskConfig(labels=["yes", "no"], instruction="Yes or no?")

# A third-party backend in one module, as a plugin distribution would ship it.
PLUGIN = '''
from typing import Literal

from quarry_al.engine.teacher.base import TeacherResult
from quarry_al.engine.teacher.estimate import Estimate
from quarry_al.engine.teacher.options import LocalTeacherConfig, TeacherOptions
from quarry_al.engine.teacher.registry import TeacherSpec


class EchoOptions(TeacherOptions):
    kind: Literal["echo"] = "echo"
    answer: str


class EchoTeacher:
    def __init__(self, config, task, progress=True):
        self.config, self.task, self.model_id = config, task, "echo"

    def label(self, items, on_result=None):
        results = [TeacherResult(label=self.config.answer, confidence=1.0) for _ in items]
        for position, result in enumerate(results):
            if on_result is not None:
                on_result(position, result)
        return results

    def close(self):
        pass


def estimate(config, task, *, sample, shown, load_tokenizer):
    return Estimate(2, 30.0, 4.0, "echo's own count", [{"role": "user", "content": shown}])


SPEC = TeacherSpec("echo", EchoOptions, "quarry_echo_teacher:EchoTeacher", "quarry_echo_teacher:estimate")
NOT_A_SPEC = 42
TAKEN = TeacherSpec("local", LocalTeacherConfig, "quarry_echo_teacher:EchoTeacher", "quarry_echo_teacher:estimate")
'''


def point(name: str, value: str) -> importlib.metadata.EntryPoint:
    return importlib.metadata.EntryPoint(name=name, value=value, group=ENTRY_POINT_GROUP)


@pytest.fixture
def plugins(tmp_path, monkeypatch):
    """Installs the plugin module and answers the entry-point lookup with the points a test sets."""
    (tmp_path / "quarry_echo_teacher.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "quarry_echo_teacher", raising=False)
    installed: list[importlib.metadata.EntryPoint] = []

    def entry_points(**selection):
        assert selection == {"group": ENTRY_POINT_GROUP}
        return list(installed)

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)
    return installed


def test_builtins_without_any_plugin(plugins):
    specs = discover()
    assert list(specs) == ["local", "openai", "vllm"]
    assert [spec.options for spec in specs.values()] == [LocalTeacherConfig, OpenAITeacherConfig, VLLMTeacherConfig]
    assert all(issubclass(spec.options, TeacherOptions) for spec in specs.values())
    assert JobConfig.model_fields["teacher"].discriminator == "kind"


def test_backends_are_imported_on_use():
    code = """
import sys
from quarry_al.engine.config import JobConfig
from quarry_al.engine.teacher import build_teacher
from quarry_al.engine.teacher.registry import spec_for
heavy = [m for m in ("torch", "openai", "vllm", "quarry_al.engine.teacher.local", "quarry_al.engine.teacher.openai_compat",
                     "quarry_al.engine.teacher.vllm_offline") if m in sys.modules]
assert not heavy, heavy
assert spec_for("vllm").load_backend().__name__ == "VLLMTeacher" and "vllm" not in sys.modules
"""
    done = subprocess.run([sys.executable, "-c", CHECKOUT_PRELUDE + code], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 0, done.stderr[-2000:]


def test_unknown_kind_is_one_line():
    with pytest.raises(ConfigError, match=r"^teacher\.kind: unknown teacher kind 'magic' \(expected one of: "
                                          r"local, openai, vllm\)$"):
        build_backend(LocalTeacherConfig().model_copy(update={"kind": "magic"}), TASK)


def test_a_plugin_kind_is_configured_built_and_planned(plugins):
    plugins.append(point("echo", "quarry_echo_teacher:SPEC"))
    specs = discover()
    assert list(specs) == ["local", "openai", "vllm", "echo"]
    teacher_type = TypeAdapter(options_union(specs))
    options = teacher_type.validate_python({"kind": "echo", "answer": "yes", "few_shot": {"k": 2}})
    assert type(options).__name__ == "EchoOptions" and options.few_shot.k == 2 and options.cache  # the shared keys
    assert isinstance(teacher_type.validate_python({"kind": "vllm", "model": "m"}), VLLMTeacherConfig)
    with pytest.raises(ValidationError, match=r"echo\.answr\n  Extra inputs"):
        teacher_type.validate_python({"kind": "echo", "answer": "yes", "answr": "no"})

    assert spec_for("echo") == specs["echo"]
    teacher = build_teacher(options.model_copy(update={"cache": False}), TASK)
    assert [r.label for r in teacher.label([TeacherItem("1", "Is it?")])] == ["yes"]
    estimate = spec_for("echo").load_estimate()(options, TASK, sample=["a"], shown="a", load_tokenizer=None)
    assert estimate.calls_per_item == 2 and estimate.token_counter == "echo's own count"


def test_broken_plugins_are_skipped_with_a_warning(plugins):
    plugins.extend([point("gone", "quarry_no_such_module:SPEC"), point("number", "quarry_echo_teacher:NOT_A_SPEC"),
                    point("taken", "quarry_echo_teacher:TAKEN")])
    with pytest.warns(UserWarning) as caught:
        specs = discover()
    assert list(specs) == ["local", "openai", "vllm"] and specs["local"].options is LocalTeacherConfig
    messages = [str(w.message) for w in caught]
    assert "'gone'" in messages[0] and "could not be loaded" in messages[0] and "ModuleNotFoundError" in messages[0]
    assert "'number'" in messages[1] and "not a TeacherSpec" in messages[1]
    assert "'taken'" in messages[2] and "kind 'local' is taken" in messages[2]


def test_a_spec_must_tag_its_options_with_its_kind():
    class Untagged(TeacherOptions):
        kind: str = "x"

    class Mine(TeacherOptions):
        kind: Literal["mine"] = "mine"

    with pytest.raises(TypeError, match=r"Untagged\.kind must be Literal\['x'\]"):
        TeacherSpec("x", Untagged, "m:a", "m:b")
    with pytest.raises(TypeError, match="must subclass TeacherOptions"):
        TeacherSpec("x", dict, "m:a", "m:b")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="is not 'module:attribute'"):
        TeacherSpec("mine", Mine, "just_a_module", "m:b")
    assert TeacherSpec("mine", Mine, "m:a", "m:b").kind == "mine"


def test_an_installed_plugin_distribution_from_the_command_line(tmp_path):
    """A real (if tiny) distribution on the path: its entry point reaches config, `quarry plan` and the teacher."""
    site = tmp_path / "site"
    (site / "quarry_echo_teacher-0.1.dist-info").mkdir(parents=True)
    (site / "quarry_echo_teacher-0.1.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: quarry-echo-teacher\nVersion: 0.1\n")
    (site / "quarry_echo_teacher-0.1.dist-info" / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\necho = quarry_echo_teacher:SPEC\n")
    (site / "quarry_echo_teacher.py").write_text(PLUGIN.split("NOT_A_SPEC")[0])
    (tmp_path / "pool.jsonl").write_text("".join(json.dumps({"id": f"p{i}", "text": f"text {i}", "label": "yes"}) + "\n"
                                                 for i in range(10)))
    job = {"name": "echo", "task": {"labels": ["yes", "no"], "instruction": "Yes or no?"},
           "data": {"pool": "pool.jsonl", "split": {"eval_size": 2}}, "teacher": {"kind": "echo", "answer": "no"},
           "loop": {"initial_labels": 2, "batch_size": 2, "rounds": 1}}
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(job))
    code = f"""
from quarry_al.engine.cli import main
from quarry_al.engine.config import load_config
from quarry_al.engine.teacher import TeacherItem, build_teacher
config = load_config({str(tmp_path / "job.yaml")!r})
print("labels:", [r.label for r in build_teacher(config.teacher.model_copy(update={{"cache": False}}), config.task)
                  .label([TeacherItem("1", "x")])])
main(["plan", {str(tmp_path / "job.yaml")!r}])
main(["plan", {str(tmp_path / "job.yaml")!r}, "--set", "teacher.answr=yes"])
"""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(site)}
    done = subprocess.run([sys.executable, "-c", CHECKOUT_PRELUDE + code], capture_output=True, text=True,
                          timeout=300, env=env, cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "labels: ['no']" in done.stdout
    assert "calls per item" in done.stdout and "echo's own count" in done.stdout and "--- user ---\ntext 0" in done.stdout
    assert "teacher.echo.answr: unknown key" in done.stderr and "Traceback" not in done.stderr


class _MineForPreflight(TeacherOptions):
    kind: Literal["mine"] = "mine"


def test_builtin_kinds_have_a_preflight_and_a_spec_may_name_one():
    assert all(spec_for(kind).load_preflight() is not None for kind in ("local", "openai", "vllm"))
    assert TeacherSpec("mine", _MineForPreflight, "m:a", "m:b").load_preflight() is None  # optional
    with pytest.raises(TypeError, match="is not 'module:attribute'"):
        TeacherSpec("mine", _MineForPreflight, "m:a", "m:b", "no_attribute")


def test_local_and_vllm_preflights_check_without_loading(tmp_path, monkeypatch):
    """The local kinds' checks are cheap: the model is found (or not) without loading it; vLLM is found
    (or not) without importing it."""
    import importlib.util

    from quarry_al.engine.core.errors import QuarryError, TeacherUnavailable
    from quarry_al.engine.teacher.preflight import preflight_teacher

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(QuarryError, match=r"^teacher.model: 'nobody/no-such-model' is not an installed"):
        preflight_teacher(LocalTeacherConfig(model="nobody/no-such-model"), TASK)
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    assert str(folder) in preflight_teacher(LocalTeacherConfig(model=str(folder)), TASK).detail
    with pytest.raises(QuarryError, match=r"^teacher.model: .*no GGUF file 'x.gguf'"):
        preflight_teacher(LocalTeacherConfig(model=str(folder), gguf_file="x.gguf"), TASK)
    if importlib.util.find_spec("vllm") is not None:
        assert "vLLM is installed" in preflight_teacher(VLLMTeacherConfig(model=str(folder)), TASK).detail
    else:
        with pytest.raises(TeacherUnavailable, match="vLLM is not installed"):
            preflight_teacher(VLLMTeacherConfig(model=str(folder)), TASK)
    assert "vllm" not in sys.modules
