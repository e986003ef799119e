"""GSPO, GMPO, CISPO and SAPO against loops written from their papers' formulas (plain floats,
gradients by hand, as in ``reference.py``)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from entropy_rl.losses import make_loss_config

from . import reference
from .conftest import token_batches
from .test_policy_losses import as_lists, run

CLIPS = st.sampled_from([(3e-4, 4e-4), (0.05, 0.1), (0.2, 0.2), (0.4, 0.4)])


def gspo_reference(logp, old, adv, mask, lo, hi, mode="seq-mean-token-mean"):
    """GSPO: every token of a response takes the response's ratio exp(mean log-ratio), clipped as
    PPO's; d(token loss)/d logp_t is the unclipped branch's -A·s (the ratio's value is the
    sequence's, its gradient the token's own)."""
    w = reference.weights(mask, mode)
    loss, grad = 0.0, [[0.0] * len(mask[0]) for _ in mask]
    for b, row in enumerate(mask):
        tokens = [t for t, valid in enumerate(row) if valid]
        log_s = sum(logp[b][t] - old[b][t] for t in tokens) / max(len(tokens), 1)
        for t in tokens:
            value, dvalue, _ = reference.ppo_token(min(log_s, 10.0), 0.0, adv[b][t], lo, hi)
            loss += w[b][t] * value
            grad[b][t] = 0.0 if log_s > 10.0 else w[b][t] * dvalue
    return loss, grad


def gmpo_reference(logp, old, adv, mask, lo, hi):
    """GMPO: per response, exp of the mean pessimistically clipped log-ratio times the mean
    advantage; the batch's mean of -A·r."""
    rows = len(mask)
    loss, grad = 0.0, [[0.0] * len(mask[0]) for _ in mask]
    for b, row in enumerate(mask):
        tokens = [t for t, valid in enumerate(row) if valid]
        n = len(tokens) + 1e-8
        kept, slope = {}, {}
        for t in tokens:
            d = logp[b][t] - old[b][t]
            c = min(max(d, -lo), hi)
            sign = (adv[b][t] > 0) - (adv[b][t] < 0)
            if sign == 0:
                kept[t], slope[t] = 0.0, 0.0
            elif sign * d <= sign * c:  # the token's own log-ratio is the pessimistic side
                kept[t], slope[t] = d, 1.0
            else:  # the clip bound: constant
                kept[t], slope[t] = c, 0.0
        ratio = math.exp(sum(kept.values()) / n)
        mean_adv = sum(adv[b][t] for t in tokens) / n
        loss += -mean_adv * ratio / rows
        for t in tokens:
            grad[b][t] = -mean_adv * ratio / rows * slope[t] / n
    return loss, grad


@given(
    batch=token_batches(), clips=CLIPS, mode=st.sampled_from(["seq-mean-token-mean", "token-mean"])
)
def test_gspo_clips_each_response_by_its_length_normalised_ratio(batch, clips, mode):
    logp, old, adv, mask = batch
    lo, hi = clips
    config = {"clip_ratio_low": lo, "clip_ratio_high": hi, "loss_agg_mode": mode}
    loss, grad, metrics = run("gspo", logp, old, adv, mask, config)
    ref_loss, ref_grad = gspo_reference(*as_lists(logp, old, adv, mask), lo, hi, mode)
    assert float(loss) == pytest.approx(ref_loss, rel=1e-12, abs=1e-12)
    torch.testing.assert_close(
        grad, torch.tensor(ref_grad, dtype=torch.float64), rtol=1e-12, atol=1e-12
    )
    assert 0.0 <= metrics["pg_clipfrac"] <= 1.0


@given(batch=token_batches(max_seq=1), clips=CLIPS)
def test_gspo_on_one_token_responses_is_ppos_clipped_loss(batch, clips):
    """A response of one token has its token's ratio: GSPO is then GRPO's loss, clip for clip."""
    logp, old, adv, mask = batch
    config = {"clip_ratio_low": clips[0], "clip_ratio_high": clips[1]}
    loss, grad, _ = run("gspo", logp, old, adv, mask, config)
    ppo_loss, ppo_grad, _ = run(
        "grpo", logp, old, adv, mask, {**config, "loss_agg_mode": "seq-mean-token-mean"}
    )
    assert float(loss) == pytest.approx(float(ppo_loss), rel=1e-12, abs=1e-12)
    torch.testing.assert_close(grad, ppo_grad, rtol=1e-12, atol=1e-12)


@given(batch=token_batches(), clips=CLIPS)
def test_gmpo_takes_the_geometric_mean_of_pessimistically_clipped_ratios(batch, clips):
    logp, old, adv, mask = batch
    lo, hi = clips
    loss, grad, metrics = run(
        "gmpo", logp, old, adv, mask, {"clip_ratio_low": lo, "clip_ratio_high": hi}
    )
    ref_loss, ref_grad = gmpo_reference(*as_lists(logp, old, adv, mask), lo, hi)
    assert float(loss) == pytest.approx(ref_loss, rel=1e-12, abs=1e-12)
    torch.testing.assert_close(
        grad, torch.tensor(ref_grad, dtype=torch.float64), rtol=1e-12, atol=1e-12
    )
    assert 0.0 <= metrics["pg_clipfrac"] + metrics["pg_clipfrac_lower"] <= 1.0


def test_on_policy_both_reduce_to_minus_the_mean_sequence_advantage():
    """At ratio 1 (the first update of a batch) both losses are -mean_i Ā_i, GSPO's gradient the
    sequence-mean policy gradient, and GMPO's the same."""
    logp = torch.tensor([[-0.5, -1.0, -2.0], [-0.1, -0.3, -9.0]], dtype=torch.float64)
    adv = torch.tensor([[1.5] * 3, [-0.5] * 3], dtype=torch.float64)
    mask = torch.tensor([[True, True, True], [True, True, False]])
    expected = torch.tensor([[-1.5 / 6] * 3, [0.5 / 4, 0.5 / 4, 0.0]], dtype=torch.float64)
    for name in ("gspo", "gmpo"):
        loss, grad, _ = run(name, logp, logp.clone(), adv, mask)
        assert float(loss) == pytest.approx(-(1.5 - 0.5) / 2, abs=1e-8), name
        torch.testing.assert_close(grad, expected, rtol=1e-7, atol=1e-9)


def test_their_defaults_are_the_papers_and_a_dual_clip_is_refused():
    gspo, gmpo = make_loss_config("gspo", None), make_loss_config("gmpo", None)
    cispo = make_loss_config("cispo", None)
    assert (cispo.clip_ratio_low, cispo.clip_ratio_high, cispo.loss_agg_mode) == (
        1.0,
        0.28,
        "token-mean",
    )
    assert (gspo.clip_ratio_low, gspo.clip_ratio_high, gspo.loss_agg_mode) == (
        3e-4,
        4e-4,
        "seq-mean-token-mean",
    )
    assert (gmpo.clip_ratio_low, gmpo.clip_ratio_high) == (0.4, 0.4)
    sapo = make_loss_config("sapo", None)
    assert (sapo.tau_pos, sapo.tau_neg, sapo.loss_agg_mode) == (1.0, 1.05, "seq-mean-token-mean")
    for name in ("gspo", "gmpo", "cispo", "sapo"):
        with pytest.raises(ValueError, match=rf"{name}.clip_ratio_c = 10: {name} has no dual-clip"):
            make_loss_config(name, {"clip_ratio_c": 10.0})


def cispo_reference(logp, old, adv, mask, lo, hi, mode="token-mean"):
    """CISPO: -w·A·logp per token with w the clipped ratio, a constant: d/d logp = -w·A."""
    w = reference.weights(mask, mode)
    loss, grad = 0.0, [[0.0] * len(mask[0]) for _ in mask]
    for b, t in reference.valid_tokens(mask):
        ratio = math.exp(min(max(logp[b][t] - old[b][t], -20.0), 20.0))
        weight = min(max(ratio, 1.0 - lo), 1.0 + hi)
        loss += w[b][t] * -weight * adv[b][t] * logp[b][t]
        grad[b][t] = w[b][t] * -weight * adv[b][t]
    return loss, grad


@given(batch=token_batches(), clips=st.sampled_from([(1.0, 0.28), (0.2, 0.2), (0.05, 5.0)]))
def test_cispo_weights_every_tokens_gradient_by_its_clipped_ratio(batch, clips):
    logp, old, adv, mask = batch
    lo, hi = clips
    loss, grad, metrics = run(
        "cispo", logp, old, adv, mask, {"clip_ratio_low": lo, "clip_ratio_high": hi}
    )
    ref_loss, ref_grad = cispo_reference(*as_lists(logp, old, adv, mask), lo, hi)
    assert float(loss) == pytest.approx(ref_loss, rel=1e-12, abs=1e-12)
    torch.testing.assert_close(
        grad, torch.tensor(ref_grad, dtype=torch.float64), rtol=1e-12, atol=1e-12
    )
    # no valid token with a nonzero advantage loses its gradient, clipped or not (PPO's would)
    assert torch.all(grad[mask & (adv != 0)] != 0)
    assert 0.0 <= metrics["pg_clipfrac"] <= 1.0


def test_cispo_on_policy_is_grpos_gradient():
    """At ratio 1 the weight is 1: CISPO's gradient is the policy gradient, GRPO's."""
    logp = torch.tensor([[-0.5, -1.0, -2.0], [-0.1, -0.3, -9.0]], dtype=torch.float64)
    adv = torch.tensor([[1.5] * 3, [-0.5] * 3], dtype=torch.float64)
    mask = torch.tensor([[True, True, True], [True, True, False]])
    _, grad, _ = run("cispo", logp, logp.clone(), adv, mask)
    _, grpo_grad, _ = run("grpo", logp, logp.clone(), adv, mask)
    torch.testing.assert_close(grad, grpo_grad, rtol=1e-12, atol=1e-12)


def sapo_reference(logp, old, adv, mask, tau_pos, tau_neg, mode="seq-mean-token-mean"):
    """SAPO: -A·f(r) with f(r) = sigmoid(tau (r - 1)) · 4 / tau; d/d logp = -A · 4 s (1 - s) · r."""
    w = reference.weights(mask, mode)
    loss, grad = 0.0, [[0.0] * len(mask[0]) for _ in mask]
    for b, t in reference.valid_tokens(mask):
        d = logp[b][t] - old[b][t]
        ratio = math.exp(min(max(d, -20.0), 20.0))
        tau = tau_pos if adv[b][t] > 0 else tau_neg
        s = 1.0 / (1.0 + math.exp(-tau * (ratio - 1.0)))
        loss += w[b][t] * -adv[b][t] * s * 4.0 / tau
        grad[b][t] = 0.0 if abs(d) > 20.0 else w[b][t] * -adv[b][t] * 4.0 * s * (1.0 - s) * ratio
    return loss, grad


@given(batch=token_batches(), taus=st.sampled_from([(1.0, 1.05), (0.5, 2.0), (4.0, 4.0)]))
def test_sapo_gates_each_tokens_gradient_softly(batch, taus):
    logp, old, adv, mask = batch
    config = {"tau_pos": taus[0], "tau_neg": taus[1]}
    loss, grad, _ = run("sapo", logp, old, adv, mask, config)
    ref_loss, ref_grad = sapo_reference(*as_lists(logp, old, adv, mask), *taus)
    assert float(loss) == pytest.approx(ref_loss, rel=1e-12, abs=1e-12)
    torch.testing.assert_close(
        grad, torch.tensor(ref_grad, dtype=torch.float64), rtol=1e-10, atol=1e-12
    )


def test_sapo_on_policy_is_the_policy_gradient_and_fades_off_policy():
    """f'(1) = 1: at ratio 1 SAPO's gradient is GRPO's (averaged per sequence); a token whose
    ratio has moved far (here e^3) keeps a much smaller gradient, but not none, where PPO's clip
    would give it none."""
    logp = torch.tensor([[-0.5, -1.0, -2.0], [-0.1, -0.3, -9.0]], dtype=torch.float64)
    adv = torch.tensor([[1.5] * 3, [-0.5] * 3], dtype=torch.float64)
    mask = torch.tensor([[True, True, True], [True, True, False]])
    agg = {"loss_agg_mode": "seq-mean-token-mean"}
    _, grad, _ = run("sapo", logp, logp.clone(), adv, mask)
    _, grpo_grad, _ = run("grpo", logp, logp.clone(), adv, mask, agg)
    torch.testing.assert_close(grad, grpo_grad, rtol=1e-12, atol=1e-12)
    moved = logp.clone()
    moved[0, 0] -= 3.0  # the policy raised this token's probability e^3-fold since sampling
    _, moved_grad, _ = run("sapo", logp, moved, adv, mask)
    assert 0 < abs(float(moved_grad[0, 0])) < 1e-3 * abs(float(grad[0, 0]))
