"""A tiny SFT'd base model, built once per test session (shared by xdist workers via a file lock)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from filelock import FileLock

from entropy_rl.base_model import BaseModelSettings, build_base_model
from entropy_rl.tasks import ArithmeticTask

TINY_TASK = {"n_terms": 2, "min_value": 10, "max_value": 49, "ood_n_terms": 3}
TINY_BASE = {
    "model": {
        "hidden_size": 48,
        "num_layers": 2,
        "num_heads": 4,
        "num_kv_heads": 2,
        "intermediate_size": 96,
    },
    "sft": {"steps": 250, "batch_size": 32, "lr": 3e-3, "warmup_steps": 20, "train_problems": 1000},
    "eval_problems": 16,
    "eval_samples": 2,
    "max_new_tokens": 24,
    "threads": 1,
}


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory) -> Path:
    """Folder of a ~40 k-parameter base model SFT'd for a few seconds on two-term addition."""
    root = tmp_path_factory.getbasetemp().parent
    folder = root / "tiny_base"
    with FileLock(str(root / "tiny_base.lock")):
        if not (folder / "base_summary.json").exists():
            _, summary, _ = build_base_model(
                ArithmeticTask(**TINY_TASK), BaseModelSettings.from_dict(TINY_BASE), folder
            )
            (folder / "base_summary.json").write_text(json.dumps(summary))
    return folder


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
        },
    }  # fmt: skip
    base.update(train)
    return {"task": dict(TINY_TASK), "train": base}


def write_config(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config))
    return path
