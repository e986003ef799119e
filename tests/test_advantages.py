"""Advantage estimators against direct per-group formulas; flat groups give exact zeros."""

from __future__ import annotations

import itertools
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
    assert available_advantage_estimators() == [
        "dr_grpo", "grpo", "grpo_passk", "passk_analytic", "qae", "reinforce_plus_plus",
        "reinforce_plus_plus_baseline", "rloo",
    ]  # fmt: skip
    with pytest.raises(
        ValueError, match="unknown advantage estimator 'ppo'; known: dr_grpo, grpo,"
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


def whiten_by_hand(values: list[float], weights: list[float]) -> list[float]:
    """verl's masked_whiten of one value per response repeated on its tokens (a per-token loop)."""
    tokens = [v for v, w in zip(values, weights, strict=True) for _ in range(int(w))]
    n = len(tokens)
    mean = sum(tokens) / (n + 1e-8)
    var = sum((t - mean) ** 2 for t in tokens) / (n + 1e-8) * n / (n - 1)
    return [(v - mean) / math.sqrt(var + 1e-8) for v in values]


@given(rewards=reward_tables, seed=st.integers(0, 2**16), weigh=st.booleans())
def test_reinforce_plus_plus_whitens_over_every_token_of_the_batch(rewards, seed, weigh):
    """REINFORCE++ (and its group-baseline variant): the batch's tokens whitened, each response
    counted once per token; flat groups are not zeroed (they keep the batch's signal)."""
    table = torch.tensor(rewards)
    lengths = torch.randint(1, 6, table.shape, generator=torch.Generator().manual_seed(seed))
    lengths = lengths if weigh else None
    weights = (lengths if lengths is not None else torch.ones_like(table)).flatten().tolist()
    if sum(weights) < 2:
        return
    plain, _ = compute_advantages("reinforce_plus_plus", table, lengths=lengths)
    expected = whiten_by_hand(table.flatten().tolist(), weights)
    assert plain.flatten().tolist() == pytest.approx(expected, rel=1e-9, abs=1e-9)
    centred = [r - sum(g) / len(g) for g in rewards.tolist() for r in g]
    base, _ = compute_advantages("reinforce_plus_plus_baseline", table, lengths=lengths)
    assert base.flatten().tolist() == pytest.approx(
        whiten_by_hand(centred, weights), rel=1e-9, abs=1e-9
    )


@given(rewards=reward_tables)
def test_grpo_passk_rewards_only_each_groups_best_response_by_its_gap(rewards):
    """PKPO at k = G (verl's grpo_passk): the best response gets (r_max - r_second) / std."""
    advantages, _ = compute_advantages("grpo_passk", torch.tensor(rewards))
    for group, adv in zip(rewards.tolist(), advantages.tolist(), strict=True):
        ranked = sorted(group, reverse=True)
        gap = (ranked[0] - ranked[1]) / (statistics.stdev(group) + 1e-6)
        if len(set(group)) == 1:
            gap = 0.0
        best = group.index(ranked[0])
        assert adv[best] == pytest.approx(gap, abs=1e-12) or (gap == 0 and adv[best] == 0)
        assert sum(1 for i, a in enumerate(adv) if a != 0 and i != best) == 0


@given(group=st.integers(2, 12), right=st.integers(0, 12), k=st.integers(1, 12))
def test_passk_analytic_advantages_are_the_mean_and_std_of_pass_at_k_over_subsets(group, right, k):
    """Chen et al.'s closed form against enumeration: the group reward of a size-k subset is
    whether it holds a right response; a response's advantage is the mean normalised reward of
    the subsets it is in (their derivation), here counted subset by subset."""
    right, k = min(right, group), min(k, group)
    rewards = torch.tensor([[1.0] * right + [0.0] * (group - right)], dtype=torch.float64)
    advantages, _ = compute_advantages("passk_analytic", rewards, config={"k": k})
    subsets = list(itertools.combinations(range(group), k))
    passed = [any(i < right for i in s) for s in subsets]
    mean = sum(passed) / len(subsets)
    std = math.sqrt(mean * (1 - mean))
    for i in range(group):
        mine = [(p - mean) / (std + 1e-6) for s, p in zip(subsets, passed, strict=True) if i in s]
        expected = sum(mine) / len(mine)
        if right in (0, group):
            expected = 0.0  # a flat group carries no signal
        assert advantages[0, i].item() == pytest.approx(expected, rel=1e-6, abs=1e-6)


@given(rewards=reward_tables, quantile=st.floats(0.05, 1.0), scale=st.sampled_from(["std", "none"]))
def test_qae_takes_the_groups_inverse_cdf_quantile_as_its_baseline(rewards, quantile, scale):
    advantages, _ = compute_advantages(
        "qae", torch.tensor(rewards), config={"quantile": quantile, "scale": scale}
    )
    for group, adv in zip(rewards.tolist(), advantages.tolist(), strict=True):
        ranked = sorted(group)
        # the smallest reward whose share of the group at or below it reaches the quantile
        baseline = next(
            r for r in ranked if sum(x <= r for x in group) / len(group) >= quantile - 1e-9
        )
        std = statistics.stdev(group) + 1e-6 if scale == "std" else 1.0
        expected = (
            [0.0] * len(group) if len(set(group)) == 1 else [(r - baseline) / std for r in group]
        )
        assert adv == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_qae_gates_hard_and_easy_groups_as_the_paper_states():
    """0/1 rewards, K = 0.4: a group right on p <= 0.6 of its responses moves only its right
    ones (baseline 0); one right on more moves only its wrong ones (baseline 1)."""
    hard = torch.tensor([[1.0, 1, 1, 0, 0]])  # p = 0.6
    easy = torch.tensor([[1.0, 1, 1, 1, 0]])  # p = 0.8
    a_hard, _ = compute_advantages("qae", hard, config={"quantile": 0.4})
    a_easy, _ = compute_advantages("qae", easy, config={"quantile": 0.4})
    assert (a_hard[0, :3] > 0).all() and (a_hard[0, 3:] == 0).all()
    assert (a_easy[0, :4] == 0).all() and a_easy[0, 4] < 0


def test_advantage_settings_are_checked_by_name():
    with pytest.raises(ValueError, match=r"passk_analytic\.k must be an integer in \[1, inf\]"):
        compute_advantages("passk_analytic", torch.zeros(1, 4), config={"k": 0})
    with pytest.raises(ValueError, match="advantage 'grpo' takes no advantage_config"):
        compute_advantages("grpo", torch.zeros(1, 4), config={"k": 2})
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['K'\] in qae"):
        compute_advantages("qae", torch.zeros(1, 4), config={"K": 0.2})
