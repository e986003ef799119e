"""On a GPU: the token metrics, the sampler and a bf16 training run on CUDA (skipped without one).

Self-contained (no conftest fixtures) so that benchmarks/gpu_check.sh runs it with
``pytest --noconftest`` on a GPU image that has torch and transformers but not the test tools.
"""

from __future__ import annotations

import math

import pytest
import torch

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]


def _tiny_model(folder):
    from entropy_rl.base_model import ModelSettings, build_char_tokenizer, build_model

    tokenizer = build_char_tokenizer()
    settings = ModelSettings(hidden_size=64, num_layers=2, num_heads=4, num_kv_heads=2,
                             intermediate_size=128)  # fmt: skip
    model = build_model(settings, len(tokenizer), tokenizer.pad_token_id, tokenizer.eos_token_id, 0)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_token_entropy_and_logprobs_on_cuda_equal_the_cpus():
    from entropy_rl.metrics import token_entropy, token_logprobs

    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(4, 64, 1000, generator=generator) * 3
    tokens = torch.randint(0, 1000, (4, 64), generator=generator)
    gpu = logits.cuda()
    assert torch.allclose(token_entropy(gpu).cpu(), token_entropy(logits), atol=1e-4)
    assert torch.allclose(
        token_logprobs(gpu, tokens.cuda()).cpu(), token_logprobs(logits, tokens), atol=1e-4
    )


def test_the_cuda_sampler_reports_the_policys_log_probabilities(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from entropy_rl.rollout import HFGenerator
    from entropy_rl.train.batch import collate, policy_forward, sampler_logprobs

    folder = _tiny_model(tmp_path / "model")
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).cuda()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    generation = HFGenerator(model, tokenizer).generate(["Q: 12+30=?\nA:"] * 2, 4, 0.5, 1.0, 16, 0)
    batch = collate(generation, torch.zeros(len(generation)), tokenizer.pad_token_id).to("cuda")
    with torch.no_grad():
        logp, _ = policy_forward(model, batch, temperature=0.5)
    sampled = sampler_logprobs(generation, batch.response_mask.cpu()).cuda()
    gap = (logp - sampled).abs()[batch.response_mask]
    assert float(gap.max()) < 1e-3, float(gap.max())


def test_a_bf16_training_run_on_cuda_keeps_float32_weights_and_finite_metrics(tmp_path):
    from safetensors.torch import load_file

    from entropy_rl.tasks import ArithmeticTask
    from entropy_rl.train import RLSettings, train

    folder = _tiny_model(tmp_path / "model")
    settings = RLSettings(
        model=str(folder), steps=2, prompts_per_step=4, group_size=4, mini_batches=2, lr=1e-3,
        max_new_tokens=16, checkpoint_every=2, lemma_check_every=1, probe_size=4, eval_every=1,
        eval_problems=8, train_problems=200, device="cuda", precision="bfloat16", loss="kl_cov",
        loss_config={"k": 0.1},
    )  # fmt: skip
    assert not settings.old_logp_from_sampler()  # bf16 updates: the old log-probs are recomputed
    rows = train(settings, tmp_path / "run", ArithmeticTask(n_terms=2, max_value=49))
    assert [row["step"] for row in rows] == [0, 1]
    for row in rows:
        for key in ("entropy", "grad_norm", "approx_kl", "cov_mean", "rollout_logp_gap"):
            assert math.isfinite(row[key]), (key, row[key])
    saved = load_file(tmp_path / "run" / "model" / "model.safetensors")
    assert {tensor.dtype for tensor in saved.values()} == {torch.float32}
