"""SIREN and Lp-Reg against loops written from their authors' code (per position, plain sorting
and counting), and their behaviour in the tabular simulator."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from entropy_rl.analysis import summarize_run
from entropy_rl.losses import get_policy_loss, kl_estimate
from entropy_rl.losses.regularizers import min_p_logprobs, peak_tokens, top_p_entropy
from entropy_rl.tabular import TabularConfig, run_tabular


@st.composite
def logit_batches(draw, max_batch: int = 4, max_seq: int = 6, max_vocab: int = 7):
    """logits [B, T, V] (with gradient), the sampled tokens, old log-probabilities near the
    policy's, per-response advantages and a ragged mask."""
    batch, seq = draw(st.integers(1, max_batch)), draw(st.integers(1, max_seq))
    vocab = draw(st.integers(2, max_vocab))
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    logits = torch.tensor(rng.standard_normal((batch, seq, vocab)) * draw(
        st.sampled_from([0.3, 1.0, 4.0])), requires_grad=True)  # fmt: skip
    tokens = torch.tensor(rng.integers(0, vocab, (batch, seq)))
    old = torch.log_softmax(logits.detach(), -1).gather(-1, tokens[..., None]).squeeze(-1)
    old = old + 0.1 * torch.tensor(rng.standard_normal((batch, seq)))
    adv = torch.tensor(np.repeat(rng.standard_normal((batch, 1)), seq, 1))
    lengths = rng.integers(1, seq + 1, size=batch)
    mask = torch.tensor(np.arange(seq)[None, :] < lengths[:, None])
    return logits, tokens, old, adv, mask


def logp_of(logits, tokens):
    return torch.log_softmax(logits, -1).gather(-1, tokens[..., None]).squeeze(-1)


def nucleus_entropy_loop(probs: torch.Tensor, p: float) -> torch.Tensor:
    """One position: rank the tokens, keep those whose running sum stays under p, renormalise."""
    ranked = sorted(range(len(probs)), key=lambda v: -float(probs[v].detach()))
    kept, total = [], 0.0
    for v in ranked:
        total += float(probs[v].detach())
        if total >= p:
            break
        kept.append(v)
    if not kept:
        return probs.sum() * 0.0
    mass = sum(probs[v] for v in kept)
    return -sum((probs[v] / mass) * torch.log(probs[v] / mass) for v in kept)


@given(batch=logit_batches(), p=st.sampled_from([0.3, 0.8, 0.95, 1.0]))
def test_top_p_entropy_is_the_entropy_of_the_renormalised_nucleus(batch, p):
    logits = batch[0]
    probs = torch.softmax(logits, -1)
    got = top_p_entropy(logits, p)
    for index in np.ndindex(*logits.shape[:-1]):
        expected = nucleus_entropy_loop(probs[index], p)
        assert got[index].item() == pytest.approx(expected.item(), abs=1e-10)


@given(batch=logit_batches(), q=st.sampled_from([0.0, 0.5, 0.8]))
def test_peak_tokens_are_each_responses_tokens_above_its_quantile(batch, q):
    logits, _, _, _, mask = batch
    entropy = top_p_entropy(logits, 0.8)
    got = peak_tokens(entropy, mask, q)
    for b in range(len(mask)):
        values = entropy[b][mask[b]].detach().numpy()
        bound = np.quantile(values, q)  # linear interpolation, as torch.nanquantile
        for t in range(mask.shape[1]):
            expected = bool(mask[b, t]) and float(entropy[b, t].detach()) > bound
            assert bool(got[b, t]) == expected


@settings(deadline=None)
@given(batch=logit_batches(), anchor=st.floats(0.0, 1.5), coef=st.sampled_from([0.005, 1.0]))
def test_siren_is_grpo_plus_the_anchored_square_of_the_peak_nucleus_entropy(batch, anchor, coef):
    """Value and gradient (to the logits) against GRPO's loss plus the penalty built position by
    position from the loops above (seq-mean-token-mean over each response's peak tokens)."""
    logits, tokens, old, adv, mask = batch
    config = {"coef": coef, "top_p": 0.8, "peak_quantile": 0.5}
    loss, metrics = get_policy_loss("siren")(
        logp_of(logits, tokens), old, adv, mask, config, logits=logits, anchor=anchor
    )
    (grad,) = torch.autograd.grad(loss, logits)
    twin = logits.detach().clone().requires_grad_(True)
    grpo, _ = get_policy_loss("grpo")(logp_of(twin, tokens), old, adv, mask)
    probs = torch.softmax(twin, -1)
    nucleus = [[nucleus_entropy_loop(probs[b, t], 0.8) for t in range(mask.shape[1])]
               for b in range(len(mask))]  # fmt: skip
    rows = []
    for b in range(len(mask)):
        valid = [t for t in range(mask.shape[1]) if mask[b, t]]
        bound = np.quantile([float(nucleus[b][t].detach()) for t in valid], 0.5)
        peak = [t for t in valid if float(nucleus[b][t].detach()) > bound]
        rows.append(
            sum(nucleus[b][t] for t in peak) / max(len(peak), 1) if peak else twin.sum() * 0
        )
    entropy = sum(rows) / len(rows)
    expected = grpo + coef * (entropy - anchor) ** 2
    (expected_grad,) = torch.autograd.grad(expected, twin)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-9, abs=1e-12)
    torch.testing.assert_close(grad, expected_grad, rtol=1e-7, atol=1e-10)
    assert metrics["siren_entropy"] == pytest.approx(float(entropy.detach()), abs=1e-12)
    unanchored, _ = get_policy_loss("siren")(
        logp_of(logits, tokens), old, adv, mask, config, logits=logits
    )  # the first step: no anchor yet, plain GRPO
    assert unanchored.item() == pytest.approx(grpo.item(), rel=1e-12)


@given(batch=logit_batches(), min_p=st.sampled_from([0.0, 0.02, 0.3, 0.9]))
def test_the_min_p_proxy_drops_tokens_under_min_p_of_the_top_and_renormalises(batch, min_p):
    logits, tokens = batch[0].detach(), batch[1]
    got = min_p_logprobs(logits, tokens, min_p)
    probs = torch.softmax(logits, -1)
    for index in np.ndindex(*tokens.shape):
        row, token = probs[index].tolist(), int(tokens[index])
        kept = [v for v, q in enumerate(row) if q >= min_p * max(row)]
        if token in kept:
            expected = math.log(row[token] / sum(row[v] for v in kept))
            assert got[index].item() == pytest.approx(expected, abs=1e-9)
        else:
            assert got[index].item() < -1e3  # noise: the authors' -1e4 logit


@settings(deadline=None)
@given(batch=logit_batches(max_batch=6, max_seq=8), fraction=st.sampled_from([0.2, 0.5, 1.0]),
       min_p=st.sampled_from([0.0, 0.3]))  # fmt: skip
def test_lp_reg_swaps_the_clip_for_a_kl_to_the_proxy_on_its_tokens(batch, fraction, min_p):
    """Per token: the least likely `fraction` of the negative samples' tokens (when more than
    one), those the proxy keeps above the policy, lose GRPO's clipped term for -A·r + beta·KL."""
    logits, tokens, old, adv, mask = batch
    config = {"min_p": min_p, "neg_fraction": fraction, "beta": 0.7}
    logp = logp_of(logits, tokens)
    loss, metrics = get_policy_loss("lp_reg")(logp, old, adv, mask, config, logits=logits)
    proxy = min_p_logprobs(logits.detach(), tokens, min_p)
    negative = [(b, t) for b in range(len(mask)) for t in range(mask.shape[1])
                if mask[b, t] and adv[b, t] < 0]  # fmt: skip
    count = max(1, math.floor(round(fraction * len(negative), 9))) if negative else 0
    lowest = sorted(negative, key=lambda bt: float(logp[bt].detach()))[:count] if count > 1 else []
    chosen = {bt for bt in lowest if float(logp[bt].detach()) < float(proxy[bt])}
    grpo_terms = []
    for b in range(len(mask)):
        for t in range(mask.shape[1]):
            if not mask[b, t]:
                continue
            ratio = torch.exp(logp[b, t] - old[b, t])
            if (b, t) in chosen:
                kl = kl_estimate(logp[b, t], proxy[b, t], "low_var_kl")
                grpo_terms.append(-adv[b, t] * ratio + 0.7 * kl)
            else:
                clipped = ratio.clamp(0.8, 1.2)
                grpo_terms.append(torch.maximum(-adv[b, t] * ratio, -adv[b, t] * clipped))
    expected = sum(grpo_terms) / len(grpo_terms)  # token-mean
    assert loss.item() == pytest.approx(expected.item(), rel=1e-9, abs=1e-12)
    (grad,) = torch.autograd.grad(loss, logits, retain_graph=True)
    (expected_grad,) = torch.autograd.grad(expected, logits)
    torch.testing.assert_close(grad, expected_grad, rtol=1e-7, atol=1e-10)
    assert metrics["cov_selected_count"] == len(chosen)


def test_siren_holds_the_peak_entropy_at_its_anchor_where_grpo_lets_it_fall():
    """In the tabular world the anchor is the first step's selected nucleus entropy, fixed; a
    strong penalty keeps it near there, and the policy's entropy above GRPO's."""
    grpo = summarize_run(run_tabular(TabularConfig(steps=150)))
    rows = run_tabular(TabularConfig(steps=150, loss="siren", loss_config={"coef": 10.0}))
    assert rows[0]["siren_anchor"] == pytest.approx(rows[0]["siren_entropy"])
    assert {row["siren_anchor"] for row in rows} == {rows[0]["siren_anchor"]}
    assert rows[-1]["siren_entropy"] == pytest.approx(rows[0]["siren_anchor"], rel=0.1)
    assert summarize_run(rows)["entropy_final"] > grpo["entropy_final"] + 0.5
    assert summarize_run(rows)["accuracy_final"] > summarize_run(rows)["accuracy_initial"]


# -- AEPO: extra responses at another temperature ------------------------------------------------


def test_aepo_draws_hot_under_its_target_cold_over_it_and_keeps_the_better_responses():
    from entropy_rl.losses import make_loss_config
    from entropy_rl.losses.resampling import aepo_choice, aepo_temperature

    config = make_loss_config("aepo", {"entropy_base": 0.5, "samples": 3, "threshold": 0.05})
    assert aepo_temperature(config, 0.0) == aepo_temperature(config, 0.5) == 1.2  # <= target
    assert aepo_temperature(config, 0.51) == 0.8
    advantages = torch.tensor([0.5, -1.0, 0.05, 0.06, 2.0, 1.0, 0.9])
    assert aepo_choice(config, 0.2, advantages).tolist() == [0, 3, 4]  # above 0.05, first 3
    assert aepo_choice(config, 0.9, advantages).tolist() == [0]  # over the target: half (3 // 2)
    assert aepo_choice(config, 0.2, -advantages.abs()).tolist() == []


def test_resample_puts_the_kept_extra_responses_first_with_advantage_one():
    """The shared step's merge: the chosen re-drawn responses take the places of the step's
    first ones (advantage 1), the rest of the batch keeps its own; the draw is at the
    controller's temperature, on the loss's share of the prompts."""
    from entropy_rl.losses import get_policy_loss, make_loss_config
    from entropy_rl.step import resample
    from entropy_rl.tabular.world import Rollouts

    def rows(rewards, tag):
        n = len(rewards)
        return Rollouts(torch.full((n,), tag), torch.zeros(n, 2, dtype=torch.long),
                        torch.zeros(n, 2, dtype=torch.long), torch.tensor(rewards))  # fmt: skip

    calls = []

    def draw_at(temperature, prompts):
        calls.append((temperature, prompts))
        return rows([1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0], 7)  # 2 groups of 4

    settings = TabularConfig(prompts_per_step=8, group_size=4, loss="aepo")
    kept = rows([0.0] * 32, 0)
    config = make_loss_config("aepo", {"samples": 60, "prompt_fraction": 0.25})
    advantages = torch.linspace(-1, 1, 32)
    merged, merged_adv, metrics = resample(
        get_policy_loss("aepo"), config, {"entropy": 0.1}, draw_at, kept, advantages, settings
    )
    assert calls == [(1.2, 2)]  # hot (entropy under 0.5), a quarter of 8 prompts
    assert merged.prompts.tolist()[:3] == [7, 7, 7] and set(merged.prompts.tolist()[3:]) == {0}
    assert len(merged.rewards) == 32 and merged_adv[:3].tolist() == [1.0, 1.0, 1.0]
    torch.testing.assert_close(merged_adv[3:], advantages[3:])
    assert metrics["resampled"] == 3 and metrics["resample_temperature"] == 1.2
    same = resample(get_policy_loss("grpo"), config, None, draw_at, kept, advantages, settings)
    assert same[0] is kept and len(calls) == 1  # a loss without a resampler draws nothing


def test_aepo_follows_the_entropy_with_its_temperature_and_a_hot_draw_keeps_entropy():
    """In the tabular world: each step's temperature is the rule applied to the previous
    step's entropy (the first step's: 0, hot), and re-drawing the whole batch hot (T = 3) keeps
    more entropy than GRPO."""
    config = {"entropy_base": 1.5, "samples": 128, "prompt_fraction": 1.0, "temperature_high": 3.0}
    rows = run_tabular(TabularConfig(steps=150, loss="aepo", loss_config=config))
    assert rows[0]["resample_temperature"] == 3.0
    for before, row in itertools.pairwise(rows):
        expected = 3.0 if before["entropy"] <= 1.5 else 0.8
        assert row["resample_temperature"] == expected == before["aepo_temperature_next"]
        assert 0 <= row["resampled"] <= 128
    grpo = summarize_run(run_tabular(TabularConfig(steps=150)))
    assert summarize_run(rows)["entropy_final"] > grpo["entropy_final"] + 0.05
