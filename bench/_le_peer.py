"""The peer: small-text 1.4.1 with its own transformer integration (TransformerBasedClassification), the same
MiniLM folder, full fine-tuning, the same pool, test set, random initial labels, schedule and seeds.

small-text's own training recipe is kept (its defaults: 10 epochs, lr 2e-5, 10% of the labels held out for
validation, early stopping and model selection) except batch 16 and max_length 64, Quarry's values; batches
are cut to their longest text (`trim_padding`: same outputs, less padding). Its
random parts draw from numpy's and torch's global generators, so those are seeded per run (the peer's API
offers nothing else).
"""
from __future__ import annotations

import time

import numpy as np

PEER_STRATEGIES = ("RandomSampling", "BreakingTies", "PredictionEntropy", "EmbeddingKMeans", "ContrastiveActiveLearning")


def encode(tokenizer, texts: list[str], y: np.ndarray, target: np.ndarray, dataset_cls):
    """`TransformersDataset.from_arrays` without `tokenizer.encode_plus`, which transformers 5 removed: the
    same rows (each text padded to max_length 64, truncated, attention mask, label), in one tokenizer call."""
    enc = tokenizer(list(texts), add_special_tokens=True, padding="max_length", max_length=64, truncation=True,
                    return_attention_mask=True, return_tensors="pt")
    return dataset_cls([(enc["input_ids"][i:i + 1], enc["attention_mask"][i:i + 1], int(y[i])) for i in range(len(texts))],
                       multi_label=False, target_labels=target)


def trim_padding() -> None:
    """Cut each batch to its longest text: small-text pads every text to max_length; the masked, right-side
    padding changes no output, only the cost (4x on short texts). Patched where `_create_collate_fn` looks it up."""
    import small_text.integrations.transformers.classifiers.classification as module

    original = getattr(module, "_untrimmed_collate_fn", module.transformers_collate_fn)

    def trimmed(batch, *args, **kwargs):
        text, masks, label, weights = original(batch, *args, **kwargs)
        width = int(masks.sum(dim=1).max()) if len(masks) else masks.shape[1]
        return text[:, :width], masks[:, :width], label, weights

    module._untrimmed_collate_fn = original
    module.transformers_collate_fn = trimmed


def run_peer(name: str, model_path: str, pool: list[str], y_pool: np.ndarray, test: list[str], y_test: np.ndarray,
             n_classes: int, initial: np.ndarray, rounds: int, batch: int, seed: int, metrics, on_round=None) -> dict:
    import torch
    from transformers import AutoTokenizer
    from small_text import PoolBasedActiveLearner
    import small_text.query_strategies as qs
    from small_text.integrations.transformers import TransformerModelArguments
    from small_text.integrations.transformers.classifiers.factories import TransformerBasedClassificationFactory
    from small_text.integrations.transformers.datasets import TransformersDataset

    trim_padding()
    np.random.seed(seed)  # noqa: NPY002  (the peer reads the global generators)
    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    target = np.arange(n_classes)
    pool_ds, test_ds = (encode(tokenizer, texts, y, target, TransformersDataset) for texts, y in ((pool, y_pool), (test, y_test)))
    factory = TransformerBasedClassificationFactory(
        TransformerModelArguments(model_path), n_classes,
        kwargs={"mini_batch_size": 16, "device": "cpu", "class_weight": None})
    strategy = getattr(qs, name)()
    learner = PoolBasedActiveLearner(factory, strategy, pool_ds, reuse_model=False)
    started = time.perf_counter()
    learner.initialize_data(np.sort(initial), y_pool[np.sort(initial)])
    fit_s = time.perf_counter() - started
    out = {"labels": [], "accuracy": [], "macro_f1": [], "round_s": [], "select_s": []}
    for round_ in range(rounds + 1):
        started = time.perf_counter()
        predicted = learner.classifier.predict(test_ds)
        m = metrics(y_test, np.asarray(predicted))
        out["labels"].append(int(len(learner.indices_labeled)))
        out["accuracy"].append(m["accuracy"])
        out["macro_f1"].append(m["macro_f1"])
        test_s = time.perf_counter() - started
        if on_round is not None:
            on_round(out)  # the curve so far, for a run cut short
        if round_ == rounds:
            out["round_s"].append(fit_s + test_s)
            break
        started = time.perf_counter()
        chosen = learner.query(num_samples=batch)
        select_s = time.perf_counter() - started
        out["select_s"].append(select_s)
        out["round_s"].append(fit_s + test_s + select_s)
        started = time.perf_counter()
        learner.update(y_pool[chosen])  # retrains on all labels (small-text's own fit)
        fit_s = time.perf_counter() - started
    return out
