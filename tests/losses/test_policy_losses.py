"""Every registered policy loss: its defining properties, and agreement with a per-token loop."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from entropy_rl.losses import (
    AGGREGATIONS,
    available_policy_losses,
    get_policy_loss,
    kl_estimate,
    selection_count,
    token_covariance,
)
from entropy_rl.losses import registry as registry_module
from entropy_rl.metrics import token_entropy, token_logprobs

from . import reference
from .conftest import token_batches

BUILTIN = ["clip_cov", "clip_higher", "entropy_bonus", "grpo", "kl_cov"]


def run(name, logp, old_logp, advantages, mask, config=None, **extras):
    """The loss, its gradient with respect to logp, and its metrics."""
    logp = logp.clone().requires_grad_(True)
    if name == "entropy_bonus" and "entropy" not in extras:
        extras["entropy"] = torch.rand_like(logp)
    loss, metrics = get_policy_loss(name)(logp, old_logp, advantages, mask, config, **extras)
    (grad,) = torch.autograd.grad(loss, logp, allow_unused=True)
    return loss.detach(), torch.zeros_like(logp) if grad is None else grad, metrics


def as_lists(*tensors):
    return [t.tolist() for t in tensors]


def test_builtin_losses_are_registered():
    assert set(BUILTIN) <= set(available_policy_losses())


@pytest.mark.parametrize("name", BUILTIN)
@pytest.mark.parametrize("mode", AGGREGATIONS)
@given(batch=token_batches())
def test_gradient_on_masked_tokens_is_exactly_zero(name, mode, batch):
    logp, old_logp, advantages, mask = batch
    config = {"loss_agg_mode": mode}
    if name == "clip_cov":
        config.update(r=0.5, omega_low=-10.0)
    if name == "kl_cov":
        config.update(k=0.5)
    _, grad, _ = run(name, logp, old_logp, advantages, mask, config)
    assert torch.all(grad[~mask] == 0)


@pytest.mark.parametrize(
    ("name", "config"),
    [
        ("grpo", {}),
        ("clip_higher", {}),
        ("entropy_bonus", {"coef": 0.0}),
        ("clip_cov", {"omega_low": 100.0, "omega_high": 200.0}),  # empty band: nothing clipped
        ("kl_cov", {"k": 0.5}),  # on-policy: |logp - old_logp| = 0 with zero gradient
    ],
)
@pytest.mark.parametrize("mode", AGGREGATIONS)
@given(batch=token_batches())
def test_on_policy_gradient_equals_vanilla_policy_gradient(name, config, mode, batch):
    """ratio = 1 and no intervention active: dL/dlogp_t = -w_t A_t (REINFORCE with baseline)."""
    logp, _, advantages, mask = batch
    _, grad, metrics = run(
        name, logp, logp.clone(), advantages, mask, {**config, "loss_agg_mode": mode}
    )
    w = torch.tensor(reference.weights(mask.tolist(), mode), dtype=torch.float64)
    torch.testing.assert_close(grad, -w * advantages, rtol=0, atol=1e-12)
    assert metrics["pg_clipfrac"] == 0.0


@pytest.mark.parametrize("name", ["grpo", "clip_higher", "entropy_bonus"])
@pytest.mark.parametrize("mode", AGGREGATIONS)
@given(batch=token_batches(ratio_scale=1.0), coef=st.floats(0.0, 0.1))
def test_ppo_losses_match_per_token_loop(name, mode, batch, coef):
    logp, old_logp, advantages, mask = batch
    entropy = torch.rand_like(logp)
    config = {"loss_agg_mode": mode, **({"coef": coef} if name == "entropy_bonus" else {})}
    loss, grad, _ = run(name, logp, old_logp, advantages, mask, config, entropy=entropy)
    cfg = get_policy_loss(name).config_cls.from_dict(config)
    expected, expected_grad = reference.ppo_loss(
        *as_lists(logp, old_logp, advantages, mask), cfg.clip_ratio_low, cfg.clip_ratio_high, mode
    )
    if name == "entropy_bonus":
        w = reference.weights(mask.tolist(), mode)
        expected -= coef * sum(
            w[b][t] * entropy[b, t].item() for b, t in reference.valid_tokens(mask.tolist())
        )
    assert loss.item() == pytest.approx(expected, rel=1e-10, abs=1e-12)
    torch.testing.assert_close(
        grad, torch.tensor(expected_grad, dtype=torch.float64), rtol=1e-10, atol=1e-12
    )


@pytest.mark.parametrize("name", ["grpo", "clip_higher", "entropy_bonus"])
@pytest.mark.parametrize("mode", AGGREGATIONS)
@given(batch=token_batches(ratio_scale=3.0), c=st.sampled_from([1.5, 3.0, 10.0]))
def test_dual_clip_matches_per_token_loop(name, mode, batch, c):
    logp, old_logp, advantages, mask = batch
    config = {
        "loss_agg_mode": mode,
        "clip_ratio_c": c,
        **({"coef": 0.0} if name == "entropy_bonus" else {}),
    }
    loss, grad, metrics = run(name, logp, old_logp, advantages, mask, config)
    cfg = get_policy_loss(name).config_cls.from_dict(config)
    expected, expected_grad = reference.ppo_loss(
        *as_lists(logp, old_logp, advantages, mask), cfg.clip_ratio_low, cfg.clip_ratio_high, mode,
        c=c,
    )  # fmt: skip
    assert loss.item() == pytest.approx(expected, rel=1e-10, abs=1e-12)
    torch.testing.assert_close(
        grad, torch.tensor(expected_grad, dtype=torch.float64), rtol=1e-10, atol=1e-12
    )
    capped = (advantages < 0) & (torch.exp(logp - old_logp) > c) & mask
    assert float(metrics["pg_clipfrac_lower"]) == pytest.approx(
        float(capped.sum()) / float(mask.sum())
    )


def test_dual_clip_caps_a_stale_negative_token_and_stops_its_gradient():
    """verl's example: ratio 4.48, A = -1, cap 3: the loss is 3.0 with zero gradient; off, 4.48."""
    logp, old = torch.tensor([[1.5]], dtype=torch.float64), torch.zeros(1, 1, dtype=torch.float64)
    adv, mask = -torch.ones(1, 1, dtype=torch.float64), torch.ones(1, 1, dtype=torch.bool)
    capped, grad, metrics = run("grpo", logp, old, adv, mask, {"clip_ratio_c": 3.0})
    assert capped.item() == pytest.approx(3.0) and grad.item() == 0.0
    assert metrics["pg_clipfrac_lower"] == 1.0
    free, grad, metrics = run("grpo", logp, old, adv, mask)
    assert free.item() == pytest.approx(math.exp(1.5)) and grad.item() == pytest.approx(
        math.exp(1.5)
    )
    assert "pg_clipfrac_lower" not in metrics  # off by default


def test_dual_clip_below_one_is_refused():
    with pytest.raises(ValueError, match=r"grpo.clip_ratio_c must be in \(1, inf\], got 0.5"):
        get_policy_loss("grpo").config_cls.from_dict({"clip_ratio_c": 0.5})


@pytest.mark.parametrize("rounding", ["reference", "ceil", "floor"])
@pytest.mark.parametrize("band", ["strict", "inclusive"])
@given(
    batch=token_batches(max_batch=8, ratio_scale=1.0),
    r=st.floats(0.01, 1.0),
    seed=st.integers(0, 99),
)
def test_clip_cov_matches_per_token_loop(rounding, band, batch, r, seed):
    logp, old_logp, advantages, mask = batch
    config = {"r": r, "omega_low": 0.0, "omega_high": 2.0, "band": band, "count_rounding": rounding}
    config.update(clip_ratio_low=0.2, clip_ratio_high=0.2)
    gen = torch.Generator().manual_seed(seed)
    loss, grad, metrics = run("clip_cov", logp, old_logp, advantages, mask, config, generator=gen)

    lists = as_lists(logp, old_logp, advantages, mask)
    cov = reference.covariances(lists[0], lists[2], lists[3])
    inside = (lambda c: 0.0 < c < 2.0) if band == "strict" else (lambda c: 0.0 <= c <= 2.0)
    candidates = [
        (b, t)
        for (b, t) in reference.valid_tokens(lists[3])
        if inside(cov[(b, t)])
        and not reference.ppo_token(lists[0][b][t], lists[1][b][t], lists[2][b][t], 0.2, 0.2)[2]
    ]
    n = min(selection_count(r, len(cov), rounding), len(candidates))
    perm = torch.randperm(len(candidates), generator=torch.Generator().manual_seed(seed)).tolist()
    drop = {candidates[i] for i in perm[:n]}
    expected, expected_grad = reference.ppo_loss(*lists, 0.2, 0.2, "token-mean", drop=drop)
    assert loss.item() == pytest.approx(expected, rel=1e-10, abs=1e-12)
    torch.testing.assert_close(
        grad, torch.tensor(expected_grad, dtype=torch.float64), rtol=1e-10, atol=1e-12
    )
    assert metrics["cov_selected_count"] == n


@pytest.mark.parametrize("rounding", ["reference", "ceil", "floor"])
@pytest.mark.parametrize("ppo_clip", [False, True])
@given(
    batch=token_batches(max_batch=8, ratio_scale=1.0),
    k=st.floats(0.01, 1.0),
    beta=st.floats(0.0, 5.0),
)
def test_kl_cov_matches_per_token_loop(rounding, ppo_clip, batch, k, beta):
    logp, old_logp, advantages, mask = batch
    config = {"k": k, "beta": beta, "count_rounding": rounding, "ppo_clip": ppo_clip}
    loss, grad, metrics = run("kl_cov", logp, old_logp, advantages, mask, config)
    lists = as_lists(logp, old_logp, advantages, mask)
    n = selection_count(k, int(mask.sum()), rounding)
    selected = reference.top_by_covariance(lists[0], lists[2], lists[3], n)
    expected, expected_grad = reference.kl_cov_loss(
        *lists, selected, beta, "token-mean", ppo_clip=ppo_clip
    )
    assert loss.item() == pytest.approx(expected, rel=1e-10, abs=1e-12)
    torch.testing.assert_close(
        grad, torch.tensor(expected_grad, dtype=torch.float64), rtol=1e-10, atol=1e-12
    )
    assert metrics["cov_selected_count"] == n


@pytest.mark.parametrize("rounding", ["ceil", "reference"])
@given(
    batch=token_batches(max_batch=8, ratio_scale=0.0),
    r=st.floats(0.05, 1.0),
    seed=st.integers(0, 99),
)
def test_clip_cov_stops_gradient_of_exactly_n_tokens_inside_the_band(rounding, batch, r, seed):
    logp, _, advantages, mask = batch
    advantages = advantages + 1e-3  # no token has exactly zero advantage (zero gradient anyway)
    lo, hi = -0.5, 1.0
    config = {"r": r, "omega_low": lo, "omega_high": hi, "count_rounding": rounding}
    gen = torch.Generator().manual_seed(seed)
    _, grad, metrics = run("clip_cov", logp, logp.clone(), advantages, mask, config, generator=gen)
    cov = token_covariance(logp, advantages, mask)
    stopped = mask & (grad == 0)
    in_band = mask & (cov > lo) & (cov < hi)
    n_valid = int(mask.sum())
    assert int(stopped.sum()) == min(selection_count(r, n_valid, rounding), int(in_band.sum()))
    assert torch.all(in_band[stopped])
    assert metrics["cov_selected_count"] == int(stopped.sum())
    assert metrics["cov_selected_frac"] == pytest.approx(int(stopped.sum()) / n_valid)


@given(batch=token_batches(ratio_scale=0.0))
def test_clip_cov_stops_nothing_when_the_band_is_empty(batch):
    logp, _, advantages, mask = batch
    config = {"r": 1.0, "omega_low": 1e6, "omega_high": 2e6}
    _, grad, metrics = run("clip_cov", logp, logp.clone(), advantages, mask, config)
    _, grad_grpo, _ = run(
        "grpo",
        logp,
        logp.clone(),
        advantages,
        mask,
        {"clip_ratio_low": 1.0, "clip_ratio_high": 1.0},
    )
    torch.testing.assert_close(grad, grad_grpo, rtol=0, atol=0)
    assert metrics["cov_selected_count"] == 0


@given(batch=token_batches(max_batch=8, ratio_scale=1.0), k=st.floats(0.05, 1.0))
def test_kl_cov_penalises_exactly_the_top_tokens_by_covariance(batch, k):
    logp, old_logp, advantages, mask = batch
    _, grad, metrics = run("kl_cov", logp, old_logp, advantages, mask, {"k": k, "beta": 1.0})
    _, grad_plain, _ = run("kl_cov", logp, old_logp, advantages, mask, {"k": k, "beta": 0.0})
    penalised = (grad != grad_plain) & mask
    n = selection_count(k, int(mask.sum()), "reference")
    top = reference.top_by_covariance(logp.tolist(), advantages.tolist(), mask.tolist(), n)
    moved = (logp != old_logp) & mask  # |logp - old_logp| has no gradient where they are equal
    assert {tuple(i) for i in torch.nonzero(penalised).tolist()} == {bt for bt in top if moved[bt]}
    assert metrics["cov_selected_count"] == n


def test_kl_cov_breaks_covariance_ties_by_position():
    """Identical rows have identical covariances; the earlier ones are chosen, every time."""
    logp = torch.tensor([[-0.5, -2.0]] * 4, dtype=torch.float64)
    old_logp = logp - 0.3
    advantages = torch.tensor([[1.0, 1.0]] * 4, dtype=torch.float64) * torch.tensor(
        [[1.0], [1.0], [-1.0], [-1.0]]
    )
    mask = torch.ones_like(logp, dtype=torch.bool)
    for _ in range(3):
        _, grad, metrics = run("kl_cov", logp, old_logp, advantages, mask, {"k": 0.25, "beta": 1.0})
        _, plain, _ = run("kl_cov", logp, old_logp, advantages, mask, {"k": 0.25, "beta": 0.0})
        assert metrics["cov_selected_count"] == 2
        assert torch.nonzero(grad != plain).tolist() == [[0, 0], [1, 0]]


@given(batch=token_batches(ratio_scale=1.0))
def test_kl_cov_below_one_token_with_floor_rounding_is_grpo(batch):
    """k·N < 1 with `count_rounding: floor` selects nothing; with `ppo_clip: true` that is GRPO."""
    logp, old_logp, advantages, mask = batch
    k = 0.99 / int(mask.sum())
    config = {"k": k, "count_rounding": "floor", "ppo_clip": True}
    loss, grad, metrics = run("kl_cov", logp, old_logp, advantages, mask, config)
    loss_grpo, grad_grpo, _ = run("grpo", logp, old_logp, advantages, mask)
    assert metrics["cov_selected_count"] == 0
    assert loss.item() == loss_grpo.item()
    torch.testing.assert_close(grad, grad_grpo, rtol=0, atol=0)
    # the authors' rounding never selects fewer than one token
    _, _, reference_metrics = run("kl_cov", logp, old_logp, advantages, mask, {"k": k})
    assert reference_metrics["cov_selected_count"] == 1


@given(
    batch=st.integers(1, 3), seq=st.integers(1, 4), vocab=st.integers(2, 12), seed=st.integers(0, 10**6),
    coef=st.floats(1e-4, 1.0),
)  # fmt: skip
def test_entropy_bonus_gradient_is_minus_coef_times_entropy_gradient(batch, seq, vocab, seed, coef):
    gen = torch.Generator().manual_seed(seed)
    logits = (
        2 * torch.randn(batch, seq, vocab, generator=gen, dtype=torch.float64)
    ).requires_grad_(True)
    tokens = torch.randint(vocab, (batch, seq), generator=gen)
    mask = torch.rand(batch, seq, generator=gen) < 0.7
    mask[0, 0] = True
    advantages = torch.randn(batch, seq, generator=gen, dtype=torch.float64)
    logp = token_logprobs(logits, tokens)
    entropy = token_entropy(logits)
    old = logp.detach()
    bonus, _ = get_policy_loss("entropy_bonus")(
        logp, old, advantages, mask, {"coef": coef}, entropy=entropy
    )
    plain, _ = get_policy_loss("grpo")(logp, old, advantages, mask)
    (grad,) = torch.autograd.grad(bonus - plain, logits)

    # dH_t/dz_tv = -pi_v (log pi_v + H_t), by hand
    logpi = torch.log_softmax(logits.detach(), -1)
    pi = logpi.exp()
    h = -(pi * logpi).sum(-1, keepdim=True)
    dh = -pi * (logpi + h)
    w = mask.double() / mask.sum()
    torch.testing.assert_close(grad, -coef * w[..., None] * dh, rtol=1e-10, atol=1e-13)


@given(
    batch=token_batches(ratio_scale=1.0),
    coef=st.floats(0.01, 1.0),
    estimator=st.sampled_from(["k1", "k2", "k3", "low_var_kl"]),
)
def test_kl_to_reference_term_is_added_to_any_loss(batch, coef, estimator):
    logp, old_logp, advantages, mask = batch
    ref = logp - 0.2
    loss, _, metrics = run(
        "grpo",
        logp,
        old_logp,
        advantages,
        mask,
        {"kl_coef": coef, "kl_estimator": estimator},
        ref_logp=ref,
    )
    base, _, _ = run("grpo", logp, old_logp, advantages, mask)
    x = (ref - logp)[mask]
    k3 = torch.exp(x) - x - 1  # low_var_kl: k3 within verl's clamps, as here
    kl = {"k1": -x, "k2": 0.5 * x**2, "k3": k3, "low_var_kl": k3}[estimator].mean()
    assert loss.item() == pytest.approx(base.item() + coef * kl.item(), rel=1e-10)
    assert metrics["kl_ref"] == pytest.approx(kl.item(), rel=1e-10)


def test_low_var_kl_is_k3_clamped_as_verl_clamps_it():
    logp = torch.zeros(5, dtype=torch.float64)
    ref = torch.tensor([-30.0, -1.0, 0.0, 2.0, 25.0], dtype=torch.float64)
    x = ref - logp
    k3 = torch.exp(x) - x - 1
    low = kl_estimate(logp, ref, "low_var_kl")
    torch.testing.assert_close(low[1:4], k3[1:4])  # inside the clamps: k3 itself
    assert low[0].item() == 10.0 and low[4].item() == 10.0  # k3 there: 29 and 7.2e10
    assert k3[0].item() == pytest.approx(29.0) and k3[4].item() > 1e10


@given(batch=token_batches(ratio_scale=1.0))
def test_common_metrics_are_reported_by_every_loss(batch):
    logp, old_logp, advantages, mask = batch
    cov_mean = token_covariance(logp, advantages, mask)[mask].mean().item()
    for name in BUILTIN:
        _, _, metrics = run(
            name, logp, old_logp, advantages, mask, entropy=torch.full_like(logp, 0.5)
        )
        for key in ("pg_clipfrac", "approx_kl", "cov_mean", "cov_selected_frac", "entropy"):
            assert key in metrics, (name, key)
        assert metrics["cov_mean"] == pytest.approx(cov_mean, rel=1e-10, abs=1e-14)
        assert metrics["approx_kl"] == pytest.approx(
            (old_logp - logp)[mask].mean().item(), rel=1e-10, abs=1e-14
        )
        assert metrics["entropy"] == pytest.approx(0.5)


def test_a_new_intervention_is_one_registered_function(monkeypatch):
    monkeypatch.setattr(registry_module, "_REGISTRY", dict(registry_module._REGISTRY))

    @registry_module.register_policy_loss("reinforce")
    def reinforce(logp, old_logp, advantages, mask, config, **extras):
        """Plain REINFORCE: -A·logp."""
        return (-(advantages * logp) * mask).sum() / mask.sum(), {}

    assert "reinforce" in available_policy_losses()
    logp = torch.tensor([[-1.0, -2.0]], dtype=torch.float64)
    _, metrics = get_policy_loss("reinforce")(
        logp, logp, torch.ones_like(logp), torch.ones_like(logp, dtype=torch.bool)
    )
    assert metrics["cov_mean"] == 0.0 and "approx_kl" in metrics
    with pytest.raises(ValueError, match="unknown key"):
        get_policy_loss("reinforce")(logp, logp, logp, logp > -5, {"coef": 1.0})
