"""The verl engine adapter: recipe overrides, data files, the grader hook, the log converter.

``verl_console_excerpt.log`` is written by hand from verl's documented metric names (console
logger lines ``step:N - key:value - ...``, a JSON-lines record as its file logger writes, and the
Ray prefixes and other lines a real log has); no verl install or GPU is needed.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd
import pytest
import yaml

from entropy_rl.analysis import summarize_run
from entropy_rl.config import run_section
from entropy_rl.engines.verl import (
    compute_score,
    convert_verl_log,
    verl_command,
    verl_overrides,
    write_verl_data,
)
from entropy_rl.tasks import ArithmeticTask
from entropy_rl.train import RLSettings

HERE = Path(__file__).parent
REPO = HERE.parents[1]
PAPER = yaml.safe_load((REPO / "config" / "paper-qwen2.5-7b.yaml").read_text())


def paper_settings(method: str) -> RLSettings:
    section = run_section(PAPER["train"], method, "train")
    return RLSettings.from_dict({**section, "model": "Qwen/Qwen2.5-7B"})


def overrides(method: str) -> dict[str, str]:
    pairs = verl_overrides(paper_settings(method), "train.parquet", "val.parquet", "out")
    return dict(pair.split("=", 1) for pair in pairs)


def test_kl_cov_and_clip_cov_map_to_verls_losses_with_the_recipe_values():
    kl = overrides("kl_cov")
    assert kl["actor_rollout_ref.actor.policy_loss.loss_mode"] == "kl_cov"
    assert float(kl["actor_rollout_ref.actor.policy_loss.kl_cov_ratio"]) == 2e-3
    assert float(kl["actor_rollout_ref.actor.policy_loss.ppo_kl_coef"]) == 1.0
    clip = overrides("clip_cov")
    assert clip["actor_rollout_ref.actor.policy_loss.loss_mode"] == "clip_cov"
    assert float(clip["actor_rollout_ref.actor.policy_loss.clip_cov_ratio"]) == 2e-4
    assert float(clip["actor_rollout_ref.actor.policy_loss.clip_cov_lb"]) == 1.0
    assert float(clip["actor_rollout_ref.actor.policy_loss.clip_cov_ub"]) == 5.0
    assert float(clip["actor_rollout_ref.actor.clip_ratio_low"]) == 1.0  # the recipe's PPO clip
    # the recipe's batch shape: 256 prompts x 8, mini-batches of 32 prompts, lr 5e-7, 8k tokens
    assert kl["data.train_batch_size"] == "256"
    assert kl["actor_rollout_ref.actor.ppo_mini_batch_size"] == "32"
    assert kl["actor_rollout_ref.rollout.n"] == "8"
    assert float(kl["actor_rollout_ref.actor.optim.lr"]) == 5e-7
    assert kl["data.max_response_length"] == "8192"
    assert kl["algorithm.adv_estimator"] == "grpo"
    assert kl["algorithm.norm_adv_by_std_in_grpo"] == "True"
    assert kl["custom_reward_function.name"] == "compute_score"


def test_grpo_and_the_entropy_bonus_are_verls_vanilla_loss():
    grpo = overrides("grpo")
    assert grpo["actor_rollout_ref.actor.policy_loss.loss_mode"] == "vanilla"
    assert float(grpo["actor_rollout_ref.actor.entropy_coeff"]) == 0.0
    assert float(overrides("entropy_bonus")["actor_rollout_ref.actor.entropy_coeff"]) == 1e-3
    command = verl_command(verl_overrides(paper_settings("grpo"), "t", "v", "o"))
    assert command[:3] == ["python3", "-m", "verl.trainer.main_ppo"]


def test_a_method_verl_does_not_have_is_refused_by_name():
    settings = paper_settings("grpo").replace(loss="forking_tokens", loss_config={})
    with pytest.raises(ValueError, match="loss 'forking_tokens' has no verl equivalent"):
        verl_overrides(settings, "t", "v", "o")
    with pytest.raises(ValueError, match="dynamic_sampling is not mapped to verl"):
        verl_overrides(paper_settings("grpo").replace(dynamic_sampling=True), "t", "v", "o")


def test_verl_data_are_chat_prompts_with_the_ground_truth(tmp_path):
    settings = RLSettings(template="qwen25-math-cot", train_problems=20, eval_problems=5)
    train, val = write_verl_data(ArithmeticTask(), settings, tmp_path)
    rows = pd.read_parquet(train)
    assert len(rows) == 20 and len(pd.read_parquet(val)) == 5
    first = rows.iloc[0]
    assert [m["role"] for m in first["prompt"]] == ["system", "user"]
    assert "\\boxed{}" in first["prompt"][0]["content"]
    problem = ArithmeticTask().problems("train", 20, settings.seed)[0]
    assert first["prompt"][1]["content"] == problem.problem
    assert first["reward_model"]["ground_truth"] == problem.answer
    with pytest.raises(ValueError, match="verl applies the model's own chat template"):
        write_verl_data(ArithmeticTask(), RLSettings(template="toy"), tmp_path / "toy")


def test_verls_reward_hook_is_this_suites_verifier():
    assert compute_score("entropy-rl", "so the sum is \\boxed{\\frac{1}{2}}", "0.5") == 1.0
    assert compute_score("entropy-rl", "\\boxed{3}", "4") == 0.0
    assert compute_score("entropy-rl", "no answer", "4") == 0.0


def test_a_verl_log_converts_to_the_metrics_schema():
    rows = convert_verl_log((HERE / "verl_console_excerpt.log").read_text().splitlines())
    assert [r["step"] for r in rows] == [0, 1, 2]
    first = rows[0]
    assert first["entropy"] == 0.6215 and first["accuracy"] == 0.3125
    assert first["reward_mean"] == 0.3125 and first["response_length"] == 612.4
    assert first["pg_clipfrac"] == 0.0011 and first["approx_kl"] == 0.0002
    assert first["grad_norm"] == 0.2214 and first["lr"] == 5e-7
    assert first["time_rollout_s"] == 151.2 and first["time_update_s"] == 88.7
    assert first["tokens_per_s"] == 1573.1
    assert first["cov_mean"] is None and first["entropy_change"] is None
    # validation of the policy each row starts from: before training, then after 2 updates
    assert first["val_accuracy"] == 0.2871
    assert "val_accuracy" not in rows[1]
    assert rows[2]["val_accuracy"] == 0.3008
    assert rows[2]["entropy"] == 0.5519  # logged again (a resumed run): the last record wins
    summary = summarize_run(rows)  # the shared analysis reads converted runs as its own
    assert summary["entropy_initial"] == 0.6215 and summary["entropy_final"] == 0.5519


def test_a_log_without_training_steps_is_a_clear_error():
    with pytest.raises(ValueError, match="no verl training step found"):
        convert_verl_log(
            ["step:0 - val-core/x/acc/mean@1:0.3", "Traceback (most recent call last):"]
        )


def test_train_with_engine_verl_builds_verls_command_from_the_same_config(tmp_path, capsys):
    from entropy_rl.cli import main

    config = dict(PAPER)
    config_file = tmp_path / "paper.yaml"
    config_file.write_text(yaml.safe_dump(config))
    args = ["train", "--config", str(config_file), "--method", "kl_cov", "--seed", "3",
            "--model", "Qwen/Qwen2.5-7B", "--out", str(tmp_path / "run")]  # fmt: skip
    assert main([*args, "--dry-run"]) == 0
    command = capsys.readouterr().out
    assert "-m verl.trainer.main_ppo" in command
    assert "actor_rollout_ref.actor.policy_loss.loss_mode=kl_cov" in command
    assert "data.seed=3" in command and "trainer.n_gpus_per_node=8" in command
    if importlib.util.find_spec("verl") is None:  # this machine: a clear error, nothing written
        assert main(args) == 2
        assert "pip install -e '.[verl]'" in capsys.readouterr().err
        assert not (tmp_path / "run").exists()
