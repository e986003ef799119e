"""The interventions from after the paper: each one's defining property, against a per-token loop.

The reference loops are plain Python floats (``reference.py`` style): a loss and its gradient with
respect to every ``logp[b][t]``, written out by hand from each paper's formula.
"""

from __future__ import annotations

import json
import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from entropy_rl.advantages import compute_advantages, informative_groups
from entropy_rl.losses import (
    available_policy_losses,
    get_policy_loss,
    make_loss_config,
)
from entropy_rl.losses.interventions import adaptive_coef, next_coef

from . import reference
from .conftest import token_batches
from .test_policy_losses import as_lists, run

LATER = ["dr_grpo", "entropy_advantage", "entropy_target", "forking_tokens", "pos_neg_weight"]


def entropies_for(logp: torch.Tensor, seed: int) -> torch.Tensor:
    """Token entropies with ties (a few distinct values), so the tie rule is exercised."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 4, logp.shape, generator=g).to(torch.float64) * 0.5


def weighted_ppo(logp, old, adv, mask, mode, tokens=None, lo=0.2, hi=0.2):
    """PPO's clipped loss over ``tokens`` (default: every valid token), aggregated over them."""
    if tokens is None:
        tokens = set(reference.valid_tokens(mask))
    sub_mask = [[(b, t) in tokens for t in range(len(mask[0]))] for b in range(len(mask))]
    w = reference.weights(sub_mask, mode)
    loss, grad = 0.0, [[0.0] * len(logp[0]) for _ in logp]
    for b, t in tokens:
        value, dvalue, _ = reference.ppo_token(logp[b][t], old[b][t], adv[b][t], lo, hi)
        loss += w[b][t] * value
        grad[b][t] = w[b][t] * dvalue
    return loss, grad


def test_later_interventions_are_registered():
    assert set(LATER) <= set(available_policy_losses())


# -- Dr. GRPO -------------------------------------------------------------------------------


@given(batch=token_batches())
def test_dr_grpo_divides_the_token_sum_by_a_constant(batch):
    logp, old, adv, mask = batch
    loss, grad, _ = run("dr_grpo", logp, old, adv, mask)
    rows, cols = mask.shape
    ref_loss, ref_grad = weighted_ppo(*as_lists(logp, old, adv, mask), "token-mean")
    n_valid = int(mask.sum())
    # the same token losses, summed over B · T instead of averaged over the N valid tokens
    assert float(loss) == pytest.approx(ref_loss * n_valid / (rows * cols), abs=1e-12)
    expected = torch.tensor(ref_grad, dtype=torch.float64) * n_valid / (rows * cols)
    torch.testing.assert_close(grad, expected, rtol=0, atol=1e-12)


@given(batch=token_batches(), prompt=st.integers(1, 9), longer=st.integers(1, 9))
def test_dr_grpo_loss_ignores_the_prompt_length_and_the_longest_response(batch, prompt, longer):
    """The trainer's tensors hold prompt + response, right-padded to the step's longest sequence:
    a longer prompt adds masked positions in front, a longer response elsewhere in the batch adds
    padding behind. With the trainer's loss settings (T = max_new_tokens) neither changes the loss
    or its gradient; it is TRL's sum / (B · max_completion_length)."""
    from entropy_rl.train.settings import RLSettings

    logp, old, adv, mask = batch
    settings = RLSettings(loss="dr_grpo", max_new_tokens=24, model="unused")
    config = settings.loss_settings().to_dict()
    assert config["loss_scale_factor"] == 24.0
    loss, grad, _ = run("dr_grpo", logp, old, adv, mask, config)

    def widen(t, front, back, fill):
        rows = t.shape[0]
        pad = lambda n: torch.full((rows, n), fill, dtype=t.dtype)  # noqa: E731
        return torch.cat([pad(front), t, pad(back)], dim=1)

    wide = [
        widen(t, prompt, longer, f)
        for t, f in ((logp, -1.0), (old, -1.0), (adv, 0.5), (mask, False))
    ]
    wide_loss, wide_grad, _ = run("dr_grpo", *wide, config)
    assert float(wide_loss) == pytest.approx(float(loss), rel=1e-12, abs=1e-15)
    torch.testing.assert_close(
        wide_grad[:, prompt : prompt + mask.shape[1]], grad, rtol=0, atol=1e-15
    )
    # TRL's dr_grpo: (per_token_loss * completion_mask).sum() / (B * max_completion_length)
    ref_loss, _ = weighted_ppo(*as_lists(logp, old, adv, mask), "token-mean")
    assert float(loss) == pytest.approx(
        ref_loss * float(mask.sum()) / (mask.shape[0] * 24), abs=1e-12
    )


@given(
    rewards=st.lists(st.sampled_from([0.0, 1.0]), min_size=4, max_size=4).filter(
        lambda r: len(set(r)) > 1
    ),
    scale=st.sampled_from([0.5, 2.0, 10.0]),
)
def test_dr_grpo_advantages_are_not_divided_by_the_std(rewards, scale):
    r = torch.tensor([rewards])
    dr, _ = compute_advantages("dr_grpo", r * scale)
    torch.testing.assert_close(dr, (r - r.mean()) * scale)  # scales with the rewards
    grpo, _ = compute_advantages("grpo", r * scale)
    torch.testing.assert_close(grpo, compute_advantages("grpo", r)[0], atol=1e-5, rtol=1e-5)


# -- forking tokens -------------------------------------------------------------------------


@pytest.mark.parametrize("fraction", [0.2, 0.5, 1.0])
@given(batch=token_batches(), seed=st.integers(0, 100))
def test_forking_tokens_train_only_the_top_entropy_tokens(fraction, batch, seed):
    logp, old, adv, mask = batch
    entropy = entropies_for(logp, seed)
    loss, grad, metrics = run(
        "forking_tokens", logp, old, adv, mask, {"top_fraction": fraction}, entropy=entropy
    )
    valid = reference.valid_tokens(mask.tolist())
    n = math.ceil(round(fraction * len(valid), 9))
    ranked = sorted(valid, key=lambda bt: (-float(entropy[bt]), bt))  # ties: the earlier token
    forking = set(ranked[:n])
    ref_loss, ref_grad = weighted_ppo(*as_lists(logp, old, adv, mask), "token-mean", forking)
    assert float(loss) == pytest.approx(ref_loss, abs=1e-12)
    torch.testing.assert_close(
        grad, torch.tensor(ref_grad, dtype=torch.float64), rtol=0, atol=1e-12
    )
    threshold = min(float(entropy[bt]) for bt in forking)
    below = entropy < threshold
    assert torch.all(grad[below] == 0)  # the defining property: no gradient below the quantile
    assert metrics["entropy_threshold"] == threshold
    assert metrics["forking_frac"] == pytest.approx(n / len(valid))


@given(batch=token_batches(), seed=st.integers(0, 100))
def test_forking_tokens_normalizer_all_is_trls_top_entropy_quantile(batch, seed):
    """``normalizer: all``: the selected tokens' losses, the others zeroed, averaged over every
    valid token (TRL: ``per_token_loss * entropy_mask``, then its token-mean); ``selected`` (the
    authors' code) averages over the selected ones, 1 / rho times larger."""
    logp, old, adv, mask = batch
    entropy = entropies_for(logp, seed)
    config = {"top_fraction": 0.2}
    selected, selected_grad, _ = run(
        "forking_tokens", logp, old, adv, mask, config, entropy=entropy
    )
    whole, whole_grad, _ = run(
        "forking_tokens", logp, old, adv, mask, {**config, "normalizer": "all"}, entropy=entropy
    )
    valid = reference.valid_tokens(mask.tolist())
    n = math.ceil(round(0.2 * len(valid), 9))
    forking = set(sorted(valid, key=lambda bt: (-float(entropy[bt]), bt))[:n])
    ref_loss, _ = weighted_ppo(*as_lists(logp, old, adv, mask), "token-mean", forking)
    assert float(whole) == pytest.approx(ref_loss * n / len(valid), abs=1e-12)
    assert float(selected) == pytest.approx(ref_loss, abs=1e-12)
    torch.testing.assert_close(whole_grad * len(valid), selected_grad * n, rtol=0, atol=1e-12)


def test_forking_tokens_need_the_entropy():
    logp = torch.zeros(1, 3)
    with pytest.raises(ValueError, match=r"forking_tokens needs extras\['entropy'\]"):
        run("forking_tokens", logp, logp, torch.ones(1, 3), torch.ones(1, 3, dtype=torch.bool))


# -- entropy-based advantage shaping --------------------------------------------------------


@given(batch=token_batches(), seed=st.integers(0, 100))
def test_entropy_advantage_adds_a_clipped_detached_entropy_term(batch, seed):
    logp, old, adv, mask = batch
    entropy = entropies_for(logp, seed).requires_grad_(True)
    config = {"alpha": 0.4, "kappa": 2.0}
    loss, grad, _ = run("entropy_advantage", logp, old, adv, mask, config, entropy=entropy)
    shaped = [
        [a + min(0.4 * float(h), abs(a) / 2.0) for a, h in zip(a_row, h_row, strict=True)]
        for a_row, h_row in zip(adv.tolist(), entropy.tolist(), strict=True)
    ]
    ref_loss, ref_grad = weighted_ppo(
        logp.tolist(), old.tolist(), shaped, mask.tolist(), "token-mean"
    )
    assert float(loss) == pytest.approx(ref_loss, abs=1e-12)
    torch.testing.assert_close(
        grad, torch.tensor(ref_grad, dtype=torch.float64), rtol=0, atol=1e-12
    )
    # no gradient flows through the entropy: the loss does not depend on it differentiably
    loss_again, _ = get_policy_loss("entropy_advantage")(
        logp.clone().requires_grad_(True), old, adv, mask, config, entropy=entropy
    )
    assert (
        not loss_again.requires_grad
        or torch.autograd.grad(loss_again, entropy, allow_unused=True)[0] is None
    )


def test_entropy_advantage_never_flips_a_sign_or_wakes_a_zero():
    adv = torch.tensor([[-1.0, -0.1, 0.0, 0.5]])
    entropy = torch.full_like(adv, 10.0)  # a huge entropy: the clip decides
    from entropy_rl.losses.interventions import shaped_advantages

    shaped = shaped_advantages(adv, entropy, alpha=0.4, kappa=2.0)
    torch.testing.assert_close(shaped, torch.tensor([[-0.5, -0.05, 0.0, 0.75]]))


# -- positive / negative reweighting --------------------------------------------------------


@pytest.mark.parametrize(("w_pos", "w_neg"), [(0.1, 1.0), (0.0, 1.0), (1.0, 0.0), (1.0, 1.0)])
@given(batch=token_batches())
def test_pos_neg_weight_scales_positive_and_negative_advantages(w_pos, w_neg, batch):
    logp, old, adv, mask = batch
    config = {"positive_weight": w_pos, "negative_weight": w_neg}
    loss, grad, _ = run("pos_neg_weight", logp, old, adv, mask, config)
    weighted = [[a * (w_pos if a > 0 else w_neg) for a in row] for row in adv.tolist()]
    ref_loss, ref_grad = weighted_ppo(
        logp.tolist(), old.tolist(), weighted, mask.tolist(), "token-mean"
    )
    assert float(loss) == pytest.approx(ref_loss, abs=1e-12)
    torch.testing.assert_close(
        grad, torch.tensor(ref_grad, dtype=torch.float64), rtol=0, atol=1e-12
    )
    if w_pos == 0:
        assert torch.all(grad[adv > 0] == 0)
    _, grpo_grad, _ = run("grpo", logp, old, adv, mask)
    if w_pos == w_neg == 1:  # no reweighting is GRPO
        torch.testing.assert_close(grad, grpo_grad, rtol=0, atol=1e-15)


# -- the entropy-target controller ----------------------------------------------------------


@pytest.mark.parametrize("name", ["entropy_target", "adaptive_entropy"])
@given(batch=token_batches(), coef=st.sampled_from([0.0, 0.004, 0.3]), seed=st.integers(0, 50))
def test_a_controlled_loss_is_the_entropy_bonus_with_the_controllers_coefficient(
    name, batch, coef, seed
):
    logp, old, adv, mask = batch
    entropy = entropies_for(logp, seed)
    target, target_grad, metrics = run(name, logp, old, adv, mask, {}, entropy=entropy, coef=coef)
    bonus, bonus_grad, _ = run(
        "entropy_bonus", logp, old, adv, mask, {"coef": coef}, entropy=entropy
    )
    assert float(target) == pytest.approx(float(bonus), abs=1e-12)
    torch.testing.assert_close(target_grad, bonus_grad, rtol=0, atol=1e-12)
    assert metrics["entropy_coef"] == coef


@given(
    entropy=st.floats(0.0, 5.0),
    target=st.floats(0.05, 3.0),
    integral=st.floats(0.0, 1.0),
    kp=st.floats(0.0, 4.0),
    ki=st.floats(0.0, 1.0),
)
def test_controller_is_a_clamped_pi_step_towards_the_target(entropy, target, integral, kp, ki):
    new_integral, coef = next_coef(integral, entropy, target, kp, ki, coef_max=1.0)
    error = (target - entropy) / target
    assert new_integral == pytest.approx(min(1.0, max(0.0, integral + ki * error)))
    assert coef == pytest.approx(min(1.0, max(0.0, new_integral + kp * error)))
    if entropy < target:  # below target the integral never falls, above it never rises
        assert new_integral >= integral - 1e-12 or new_integral == 1.0
    elif entropy > target:
        assert new_integral <= integral + 1e-12 or new_integral == 0.0
    assert 0.0 <= coef <= 1.0


def test_controller_is_explicit_state_and_only_the_controlled_losses_have_one():
    config = make_loss_config("entropy_target", {"target": 0.4, "coef_init": 0.01})
    controller = get_policy_loss("entropy_target").controller
    state = controller.init(config)
    assert controller.loss_kwargs(config, state) == {"coef": pytest.approx(0.01)}
    new, metrics = controller.update(config, state, {"entropy": 0.2})  # below target: it grows
    assert state == {"integral": 0.01, "coef": 0.01}  # the old state is not changed
    assert metrics == {"entropy_target": 0.4, "entropy_coef_next": new["coef"]}
    assert controller.loss_kwargs(config, new)["coef"] == new["coef"] > 0.01
    assert json.loads(json.dumps(new)) == new  # a checkpoint stores it as it is
    assert all(
        get_policy_loss(name).controller is None
        for name in available_policy_losses() if name not in ("entropy_target", "adaptive_entropy", "siren", "aepo")
    )  # fmt: skip
    with pytest.raises(ValueError, match=r"entropy_target.coef_init \(2\) must be <= "):
        make_loss_config("entropy_target", {"coef_init": 2.0})
    with pytest.raises(ValueError, match="controller inputs must be finite"):
        controller.update(config, new, {"entropy": float("nan")})


@given(
    coef=st.floats(0.0, 0.01),
    entropy=st.floats(0.0, 2.0),
    target=st.floats(0.05, 1.0),
    delta=st.floats(1e-5, 1e-3),
)
def test_adaptive_entropy_steps_the_coefficient_by_delta_towards_more_entropy(
    coef, entropy, target, delta
):
    """Skywork-OR1's ``EntController.update``, written out: up by delta under the target, down
    over it, clipped, and the bonus on only under it."""
    new, on = adaptive_coef(coef, entropy, target, delta, 0.0, 0.005)
    expected = coef + delta if entropy < target else coef - delta
    assert new == pytest.approx(min(0.005, max(0.0, expected)))
    assert on == (entropy < target)


def test_adaptive_entropy_switches_its_bonus_off_over_the_target():
    config = make_loss_config("adaptive_entropy", {"target": 0.5, "coef_init": 0.002})
    controller = get_policy_loss("adaptive_entropy").controller
    state = controller.init(config)
    assert controller.loss_kwargs(config, state) == {"coef": 0.002}  # on at the start
    low, metrics = controller.update(config, state, {"entropy": 0.1})
    assert controller.loss_kwargs(config, low)["coef"] == pytest.approx(0.0021)
    assert metrics["entropy_coef_next"] == pytest.approx(0.0021)
    high, metrics = controller.update(config, low, {"entropy": 0.9})
    assert high["coef"] == pytest.approx(0.002) and controller.loss_kwargs(config, high) == {
        "coef": 0.0
    }
    assert metrics == {"entropy_target": 0.5, "entropy_coef_next": 0.0}
    with pytest.raises(ValueError, match="coef_min <= coef_init <= coef_max"):
        make_loss_config("adaptive_entropy", {"coef_init": 0.01})


# -- DAPO's dynamic-sampling filter --------------------------------------------------------


def test_informative_groups_are_those_whose_rewards_differ():
    rewards = torch.tensor([[1.0, 1.0, 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0], [0.5, 0.5, 0.4]])
    assert informative_groups(rewards).tolist() == [False, True, False, True]
    with pytest.raises(ValueError, match=r"grouped as \[n_prompts, G\]"):
        informative_groups(torch.zeros(3))
