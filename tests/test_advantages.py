"""Advantage estimators against direct per-group formulas; flat groups give exact zeros."""

from __future__ import annotations

import math
import statistics

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from entropy_rl.advantages import (
    available_advantage_estimators,
    compute_advantages,
    kl_penalized_rewards,
)

reward_tables = st.tuples(st.integers(1, 6), st.integers(2, 8)).flatmap(
    lambda shape: arrays(float, shape, elements=st.sampled_from([0.0, 1.0, 0.5, -1.0, 0.1]))
)


def by_hand(name: str, group: list[float], eps: float = 1e-6) -> list[float]:
    mean = sum(group) / len(group)
    if len(set(group)) == 1:
        return [0.0] * len(group)
    if name == "grpo":
        return [(r - mean) / (statistics.stdev(group) + eps) for r in group]
    if name == "dr_grpo":
        return [r - mean for r in group]
    return [r - (sum(group) - r) / (len(group) - 1) for r in group]  # rloo: leave one out


@pytest.mark.parametrize("name", ["grpo", "dr_grpo", "rloo"])
@given(rewards=reward_tables)
def test_estimators_match_per_group_formulas(name, rewards):
    advantages, metrics = compute_advantages(name, torch.tensor(rewards))
    expected = [by_hand(name, list(group)) for group in rewards.tolist()]
    torch.testing.assert_close(
        advantages, torch.tensor(expected, dtype=torch.float64), rtol=1e-9, atol=1e-12
    )
    flat = [len(set(group)) == 1 for group in rewards.tolist()]
    assert metrics["zero_adv_group_frac"] == pytest.approx(sum(flat) / len(flat))


@pytest.mark.parametrize("name", ["grpo", "dr_grpo", "rloo"])
def test_group_with_equal_rewards_gets_exactly_zero(name):
    rewards = torch.tensor([[0.1, 0.1, 0.1], [1.0, 0.0, 0.0]], dtype=torch.float64)
    advantages, metrics = compute_advantages(name, rewards)
    assert torch.all(advantages[0] == 0)  # 0.1 * 3 / 3 != 0.1 in floats; still exactly 0
    assert torch.all(advantages[1] != 0)
    assert metrics["zero_adv_group_frac"] == 0.5


def test_dr_grpo_does_not_divide_by_the_std():
    rewards = torch.tensor([[0.0, 0.0, 0.0, 1.0]])
    grpo, _ = compute_advantages("grpo", rewards)
    dr, _ = compute_advantages("dr_grpo", rewards)
    torch.testing.assert_close(dr, torch.tensor([[-0.25, -0.25, -0.25, 0.75]]))
    torch.testing.assert_close(grpo, dr / (rewards.std() + 1e-6))


def test_unknown_estimator_and_bad_shape_are_errors():
    assert available_advantage_estimators() == ["dr_grpo", "grpo", "rloo"]
    with pytest.raises(
        ValueError, match="unknown advantage estimator 'ppo'; known: dr_grpo, grpo, rloo"
    ):
        compute_advantages("ppo", torch.zeros(2, 4))
    with pytest.raises(ValueError, match=r"rewards must be grouped as \[n_prompts, G\]"):
        compute_advantages("grpo", torch.zeros(8))


@given(
    rows=st.integers(1, 5),
    width=st.integers(1, 6),
    coef=st.floats(0.0, 2.0),
    estimator=st.sampled_from(["k1", "k2", "k3", "low_var_kl"]),
    seed=st.integers(0, 2**16),
)
def test_kl_penalised_rewards_subtract_the_summed_token_kl(rows, width, coef, estimator, seed):
    """verl's use_kl_in_reward: r_i - coef · sum_t kl_t over the response's tokens only."""
    gen = torch.Generator().manual_seed(seed)
    logp = -torch.rand(rows, width, generator=gen, dtype=torch.float64) * 3
    ref = -torch.rand(rows, width, generator=gen, dtype=torch.float64) * 3
    mask = torch.rand(rows, width, generator=gen) < 0.7
    rewards = torch.rand(rows, generator=gen, dtype=torch.float64)
    penalised, mean_kl = kl_penalized_rewards(rewards, logp, ref, mask, coef, estimator)
    for i in range(rows):
        terms = []
        for t in range(width):
            if mask[i, t]:
                x = (ref[i, t] - logp[i, t]).item()
                k3 = math.exp(x) - x - 1
                low = min(k3, 10.0)  # verl clamps it at 10
                terms.append({"k1": -x, "k2": x * x / 2, "k3": k3, "low_var_kl": low}[estimator])
        assert penalised[i].item() == pytest.approx(
            rewards[i].item() - coef * sum(terms), abs=1e-12
        )
        assert mean_kl[i].item() == pytest.approx(sum(terms) / max(len(terms), 1), abs=1e-12)
