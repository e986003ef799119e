"""The vLLM backend: lazily imported, a clear error without vLLM, and a real run where installed."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from types import SimpleNamespace

import pytest

from entropy_rl.rollout.vllm import VLLMGenerator, generation_from_vllm

HAS_VLLM = importlib.util.find_spec("vllm") is not None


def test_the_cpu_install_never_imports_vllm():
    code = "import entropy_rl.cli, entropy_rl.rollout, entropy_rl.rollout.vllm, sys; print('vllm' in sys.modules)"
    assert (
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout.strip()
        == "False"
    )


@pytest.mark.skipif(HAS_VLLM, reason="vLLM is installed here; the error path cannot be shown")
def test_without_vllm_the_backend_says_how_to_get_it():
    with pytest.raises(ImportError, match=r"pip install -e '\.\[gpu\]'"):
        VLLMGenerator("any/model")


def test_request_outputs_become_a_generation():
    """vLLM's documented RequestOutput shape (prompt_token_ids; outputs with token_ids, text,
    logprobs as one {token: Logprob} dict per position, finish_reason) maps onto Generation."""

    def completion(tokens, reason):
        logprobs = [{t: SimpleNamespace(logprob=-0.5 * (i + 1))} for i, t in enumerate(tokens)]
        return SimpleNamespace(
            token_ids=tokens,
            text="".join(map(str, tokens)),
            logprobs=logprobs,
            finish_reason=reason,
        )

    outputs = [
        SimpleNamespace(
            prompt_token_ids=[1, 2], outputs=[completion([7, 8], "stop"), completion([9], "length")]
        ),
        SimpleNamespace(
            prompt_token_ids=[3], outputs=[completion([4, 5, 6], "stop"), completion([4], "stop")]
        ),
    ]
    generation = generation_from_vllm(outputs, n=2)
    assert generation.prompt_ids == [[1, 2], [1, 2], [3], [3]]
    assert generation.response_ids == [[7, 8], [9], [4, 5, 6], [4]]
    assert generation.logprobs[2] == [-0.5, -1.0, -1.5]
    assert generation.finished == [True, False, True, True]
    with pytest.raises(ValueError, match="expected 3"):
        generation_from_vllm(outputs, n=3)


@pytest.mark.skipif(not HAS_VLLM, reason="vLLM is not installed (GPU extra); run on a GPU machine")
def test_vllm_generates_with_the_protocol(tmp_path):  # pragma: no cover - needs a GPU
    from entropy_rl.base_model import ModelSettings, build_char_tokenizer, build_model

    tokenizer = build_char_tokenizer()
    settings = ModelSettings(
        hidden_size=64, num_layers=2, num_heads=4, num_kv_heads=2, intermediate_size=128
    )
    build_model(
        settings, len(tokenizer), tokenizer.pad_token_id, tokenizer.eos_token_id, seed=0
    ).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    generator = VLLMGenerator(str(tmp_path), dtype="float32", gpu_memory_utilization=0.2)
    generation = generator.generate(["Q: 1+2=?\nA: "], 3, 1.0, 1.0, 8, seed=0)
    assert len(generation) == 3 and all(
        len(ids) == len(lp)
        for ids, lp in zip(generation.response_ids, generation.logprobs, strict=True)
    )


@pytest.mark.skipif(not HAS_VLLM, reason="vLLM is not installed (GPU extra); run on a GPU machine")
def test_the_trainer_samples_with_vllm_and_keeps_it_in_sync(tmp_path):  # pragma: no cover - GPU
    """train.rollout: vllm — after every update the policy's weights are loaded into the engine,
    so the engine's log-probabilities of what it sampled stay those of the trained policy (with a
    large learning rate, stale weights would open the gap within a step or two)."""
    from entropy_rl.base_model import ModelSettings, build_char_tokenizer, build_model
    from entropy_rl.config import run_section
    from entropy_rl.tasks import ArithmeticTask
    from entropy_rl.train import RLSettings, train

    tokenizer = build_char_tokenizer()
    model_settings = ModelSettings(
        hidden_size=64, num_layers=2, num_heads=4, num_kv_heads=2, intermediate_size=128
    )
    build_model(
        model_settings, len(tokenizer), tokenizer.pad_token_id, tokenizer.eos_token_id, seed=0
    ).save_pretrained(tmp_path / "base")
    tokenizer.save_pretrained(tmp_path / "base")
    section = {
        "model": str(tmp_path / "base"), "steps": 4, "prompts_per_step": 8, "group_size": 4,
        "mini_batches": 2, "lr": 1e-2, "max_new_tokens": 16, "rollout": "vllm", "device": "cuda",
        "vllm_gpu_memory": 0.2, "eval_every": 0, "lemma_check_every": 0,
        "methods": {"grpo": {"loss": "entropy_bonus", "loss_config": {"coef": 0.5}}},
    }  # fmt: skip
    settings = RLSettings.from_dict(run_section(section, "grpo", "train"))
    rows = train(settings, tmp_path / "run", ArithmeticTask(n_terms=2, max_value=49))
    assert len(rows) == 4
    assert all(row["rollout_logp_gap"] < 1e-3 for row in rows), [
        r["rollout_logp_gap"] for r in rows
    ]
