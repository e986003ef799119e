"""Bad loss configs and inputs fail with the key, the allowed range and the fix."""

from __future__ import annotations

import pytest
import torch

from entropy_rl.losses import get_policy_loss, make_loss_config

X = torch.zeros(2, 3, dtype=torch.float64)
MASK = torch.ones(2, 3, dtype=torch.bool)


def test_unknown_loss_lists_the_known_ones():
    with pytest.raises(
        ValueError,
        match=r"unknown policy loss 'klcov'; known losses: adaptive_entropy, .*clip_cov, .*kl_cov",
    ):
        get_policy_loss("klcov")


@pytest.mark.parametrize(
    ("name", "values", "message"),
    [
        ("clip_cov", {"r": 0.0}, r"clip_cov\.r must be in \(0, 1\], got 0\.0"),
        ("clip_cov", {"r": -1e-4}, r"clip_cov\.r must be in \(0, 1\], got -0\.0001"),
        ("clip_cov", {"r": 2.0}, r"clip_cov\.r must be in \(0, 1\], got 2\.0"),
        (
            "clip_cov",
            {"omega_low": 5.0, "omega_high": 1.0},
            r"clip_cov\.omega_low \(5\) must be <= clip_cov\.omega_high \(1\)",
        ),
        (
            "clip_cov",
            {"band": "open"},
            r"clip_cov\.band must be one of 'strict', 'inclusive', got 'open'",
        ),
        ("kl_cov", {"k": 0.0}, r"kl_cov\.k must be in \(0, 1\], got 0\.0"),
        ("kl_cov", {"k": 1.5}, r"kl_cov\.k must be in \(0, 1\], got 1\.5"),
        ("kl_cov", {"beta": -1.0}, r"kl_cov\.beta must be in \[0, inf\], got -1\.0"),
        ("kl_cov", {"k": "0.2"}, r"kl_cov\.k must be in \(0, 1\], got '0\.2'"),
        ("grpo", {"clip_ratio_low": 1.5}, r"grpo\.clip_ratio_low must be in \[0, 1\], got 1\.5"),
        ("grpo", {"loss_agg_mode": "mean"}, r"grpo\.loss_agg_mode must be one of 'token-mean'"),
        (
            "grpo",
            {"kl_estimator": "k4"},
            r"grpo\.kl_estimator must be one of 'k1', 'k2', 'k3', 'low_var_kl', got 'k4'",
        ),
        (
            "entropy_bonus",
            {"coef": float("nan")},
            r"entropy_bonus\.coef must be in \[0, inf\], got nan",
        ),
        ("grpo", {"r": 1e-3}, r"unknown key\(s\) \['r'\] in grpo; known keys: \["),
    ],
)
def test_bad_value_names_the_key_and_the_allowed_range(name, values, message):
    with pytest.raises(ValueError, match=message):
        make_loss_config(name, values)


def test_integer_values_from_yaml_are_accepted_as_floats():
    assert make_loss_config("clip_cov", {"omega_low": 1, "omega_high": 5}).omega_high == 5.0


def test_entropy_bonus_without_entropy_says_how_to_get_it():
    with pytest.raises(ValueError, match=r"entropy_bonus needs extras\['entropy'\].*token_entropy"):
        get_policy_loss("entropy_bonus")(X, X, X, MASK)


def test_kl_to_reference_without_reference_logprobs_says_the_fix():
    with pytest.raises(
        ValueError, match=r"grpo\.kl_coef = 0\.1 needs extras\['ref_logp'\].*set kl_coef: 0"
    ):
        get_policy_loss("grpo")(X, X, X, MASK, {"kl_coef": 0.1})


def test_shape_mismatch_names_the_tensor():
    with pytest.raises(
        ValueError, match=r"advantages has shape \(2,\) but logp has \(2, 3\).*expand_as"
    ):
        get_policy_loss("grpo")(X, X, torch.zeros(2), MASK)
    with pytest.raises(ValueError, match=r"logp must be a \[batch, seq\] token tensor"):
        get_policy_loss("grpo")(torch.zeros(3), torch.zeros(3), torch.zeros(3), torch.ones(3))
