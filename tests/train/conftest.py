"""Configs for quick RL runs on the tiny base model (tests/conftest.py builds it)."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.conftest import TINY_TASK


def rl_config(model_dir: Path, **train) -> dict:
    """A pipeline-style config for a few quick RL steps on the tiny base."""
    base = {
        "model": str(model_dir), "steps": 4, "prompts_per_step": 4, "group_size": 4, "mini_batches": 2,
        "max_new_tokens": 24, "checkpoint_every": 2, "lemma_check_every": 2, "probe_size": 4,
        "eval_every": 3, "eval_problems": 8, "train_problems": 500, "lr": 1e-3,
        "methods": {
            "grpo": {"loss": "grpo"},
            "kl_cov": {"loss": "kl_cov", "loss_config": {"k": 0.1}},
            "clip_cov": {"loss": "clip_cov", "loss_config": {"r": 0.1, "omega_low": 0.1}},
            "entropy_bonus": {"loss": "entropy_bonus", "loss_config": {"coef": 0.01}},
            "entropy_target": {"loss": "entropy_target", "loss_config": {"target": 1.0}},
            "adaptive_entropy": {"loss": "adaptive_entropy", "loss_config": {
                "target": 1.0, "coef_init": 0.01, "delta": 0.005, "coef_max": 0.05}},
            "dapo": {"loss": "clip_higher", "dynamic_sampling": True},
            "dr_grpo": {"loss": "dr_grpo", "advantage": "dr_grpo"},
            "siren": {"loss": "siren", "loss_config": {"coef": 1.0}},
            "lp_reg": {"loss": "lp_reg", "loss_config": {"neg_fraction": 0.2}},
            "aepo": {"loss": "aepo", "loss_config": {"entropy_base": 1.0, "samples": 8}},
            "reinforce_pp": {"loss": "grpo", "advantage": "reinforce_plus_plus"},
            "passk": {"loss": "grpo", "advantage": "passk_analytic", "advantage_config": {"k": 2}},
            "kl_ref": {"loss": "grpo", "loss_config": {"kl_coef": 0.1, "kl_estimator": "low_var_kl"},
                       "reward_kl_coef": 0.1, "reward_kl_estimator": "k3"},
        },
    }  # fmt: skip
    base.update(train)
    return {"task": dict(TINY_TASK), "train": base}


def write_config(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config))
    return path
