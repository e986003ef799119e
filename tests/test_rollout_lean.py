"""The lean sampler is exact: its log-probabilities are a teacher-forced pass's, its tokens follow
softmax(z / T), its greedy decoding is generate's, and a seed fixes its samples."""

from __future__ import annotations

import pytest
import torch
from scipy.stats import chisquare
from transformers import AutoModelForCausalLM, AutoTokenizer

from entropy_rl.data import render_prompt
from entropy_rl.rollout import HFGenerator
from entropy_rl.rollout.lean import LeanGenerator, exponential_race

PROMPTS = [render_prompt("toy", f"{10 + i}+{21 + 2 * i}") for i in range(6)]


@pytest.fixture(scope="module")
def policy(tiny_base):
    model = AutoModelForCausalLM.from_pretrained(tiny_base, dtype=torch.float32)
    return model, AutoTokenizer.from_pretrained(tiny_base)


# float32 rounding: the cached one-token forward and the full-sequence forward run other matrix
# kernels, and 1 / T scales their difference; measured at most 1.9e-5 at T = 0.6 on an AMD EPYC
# with AVX-512 (under 1e-5 on the Intel Xeon). A wrong token, temperature or position is > 1e-2.
FLOAT32_TOL = 5e-5


def _teacher_forced(model, prompt_ids, response_ids, temperature: float) -> torch.Tensor:
    ids = torch.tensor([prompt_ids + response_ids])
    logits = model(ids).logits[0, len(prompt_ids) - 1 : -1].float() / temperature
    return logits.log_softmax(-1), torch.tensor(response_ids)


@pytest.mark.parametrize("temperature", [1.0, 0.6])
def test_its_logprobs_and_entropies_equal_a_teacher_forced_pass(policy, temperature):
    model, tokenizer = policy
    generation = LeanGenerator(model, tokenizer).generate(PROMPTS, 4, temperature, 1.0, 24, seed=0)
    assert (
        len(generation) == 24
        and any(generation.finished)
        and any(len(r) > 3 for r in generation.response_ids)
    )
    for i in range(len(generation)):
        logp, tokens = _teacher_forced(
            model, generation.prompt_ids[i], generation.response_ids[i], temperature
        )
        expected = logp.gather(-1, tokens[:, None]).squeeze(-1)
        entropy = torch.special.entr(logp.exp()).sum(-1)
        got = torch.tensor(generation.logprobs[i])
        assert torch.allclose(got, expected, atol=FLOAT32_TOL, rtol=0), (got - expected).abs().max()
        got = torch.tensor(generation.entropies[i])
        assert torch.allclose(got, entropy, atol=FLOAT32_TOL, rtol=0), (got - entropy).abs().max()
        eos = tokenizer.eos_token_id
        assert generation.finished[i] == (generation.response_ids[i][-1] == eos)
        assert eos not in generation.response_ids[i][:-1]
    # a prompt's samples are prompt-major and carry its ids without padding
    assert generation.prompt_ids[0] == tokenizer(PROMPTS[0], add_special_tokens=False)["input_ids"]


def test_its_first_token_follows_softmax_of_the_logits_over_the_temperature(policy):
    model, tokenizer = policy
    temperature, draws = 1.5, 6000
    prompt = PROMPTS[2]
    generation = LeanGenerator(model, tokenizer).generate(
        [prompt], draws, temperature, 1.0, 1, seed=7
    )
    ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    probs = (model(torch.tensor([ids])).logits[0, -1].float() / temperature).softmax(-1)
    observed = torch.bincount(
        torch.tensor([r[0] for r in generation.response_ids]), minlength=len(probs)
    )
    likely = probs * draws >= 5  # the chi-square test's cells; the rare tokens pooled into one
    counts = observed[likely].tolist()
    expected = (probs[likely] * draws).tolist()
    counts[-1] += int(observed[~likely].sum())
    expected[-1] += float(probs[~likely].sum() * draws)
    assert likely.sum() >= 3  # a real distribution, not one sure token
    assert chisquare(counts, [e * sum(counts) / sum(expected) for e in expected]).pvalue > 1e-3


def test_the_exponential_race_never_draws_an_impossible_token():
    logp = torch.tensor([[0.0, -torch.inf, -torch.inf], [-0.7, -0.7, -torch.inf]])
    draws = torch.stack(
        [exponential_race(logp, torch.Generator().manual_seed(s)) for s in range(200)]
    )
    assert (draws[:, 0] == 0).all() and set(draws[:, 1].tolist()) == {0, 1}


def test_its_greedy_decoding_is_generates(policy):
    model, tokenizer = policy
    lean = LeanGenerator(model, tokenizer).generate(PROMPTS, 1, 0.0, 1.0, 24, seed=0)
    hf = HFGenerator(model, tokenizer).generate(PROMPTS, 1, 0.0, 1.0, 24, seed=0)
    assert lean.response_ids == hf.response_ids and lean.texts == hf.texts
    assert lean.finished == hf.finished
    for a, b in zip(lean.logprobs, hf.logprobs, strict=True):
        assert torch.allclose(torch.tensor(a), torch.tensor(b), atol=1e-5)


def test_a_seed_fixes_the_samples_and_another_seed_changes_them(policy):
    model, tokenizer = policy
    lean = LeanGenerator(model, tokenizer, batch_size=10)  # two chunks
    first, again = (lean.generate(PROMPTS, 3, 1.0, 0.9, 24, seed=5) for _ in range(2))
    assert first == again
    assert lean.generate(PROMPTS, 3, 1.0, 0.9, 24, seed=6).response_ids != first.response_ids


def test_the_trainer_samples_with_it_deterministically(tiny_base, tmp_path):
    from entropy_rl.config import run_section
    from entropy_rl.tasks import ArithmeticTask
    from entropy_rl.train import RLSettings, train

    from .conftest import TINY_TASK
    from .train.conftest import rl_config

    config = rl_config(tiny_base, steps=3, rollout="lean")
    settings = RLSettings.from_dict(run_section(config["train"], "grpo", "train"))
    timings = {"time_rollout_s", "time_update_s", "tokens_per_s"}
    runs = [
        [{k: v for k, v in row.items() if k not in timings} for row in train(settings, tmp_path / run, ArithmeticTask(**TINY_TASK))]
        for run in ("a", "b")
    ]  # fmt: skip
    assert runs[0] == runs[1] and len(runs[0]) == 3
    # its log-probabilities are the old ones of the first update (the sampler is the policy)
    assert all(row["rollout_logp_gap"] < 1e-4 for row in runs[0])
