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
from entropy_rl.config import load_profile, run_section
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
PROFILES = {size: load_profile(REPO / "config" / f"paper-qwen2.5-{size}.yaml")
            for size in ("7b", "32b")}  # fmt: skip
PAPER = PROFILES["7b"]


def paper_settings(method: str, size: str = "7b") -> RLSettings:
    section = run_section(PROFILES[size]["train"], method, "train")
    return RLSettings.from_dict({**section, "model": f"Qwen/Qwen2.5-{size.upper()}"})


def overrides(method: str, size: str = "7b") -> dict[str, str]:
    pairs = verl_overrides(paper_settings(method, size), "train.parquet", "val.parquet", "out")
    return dict(pair.split("=", 1) for pair in pairs)


# The recipe's values (the authors' recipe/dapo/{7b,32b}_*.sh): verl's key -> value, per model size
RECIPE = {
    "data.train_batch_size": "256",
    "actor_rollout_ref.rollout.n": "8",
    "actor_rollout_ref.actor.ppo_mini_batch_size": "32",
    "data.max_response_length": "8192",
    "data.max_prompt_length": "2048",
    "actor_rollout_ref.rollout.tensor_model_parallel_size": "2",
    "trainer.test_freq": "4",  # validation every 4 steps
    "actor_rollout_ref.rollout.temperature": "1.0",
    "actor_rollout_ref.rollout.top_p": "1.0",
    "actor_rollout_ref.actor.loss_agg_mode": "token-mean",
    "actor_rollout_ref.actor.grad_clip": "1.0",
    "actor_rollout_ref.actor.optim.weight_decay": "0.0",
    "actor_rollout_ref.actor.use_kl_loss": "False",
    "algorithm.use_kl_in_reward": "False",
    "algorithm.filter_groups.enable": "True",
    "algorithm.filter_groups.max_num_gen_batches": "10",
}
RECIPE_LR = {"7b": 5e-7, "32b": 1e-6}
RECIPE_K = {"7b": 2e-3, "32b": 2e-4}  # k_percent 0.2 and 0.02
RECIPE_NODES = {"7b": "1", "32b": "4"}


@pytest.mark.parametrize("size", ["7b", "32b"])
@pytest.mark.parametrize("method", ["grpo", "clip_higher", "clip_cov", "kl_cov", "entropy_bonus"])
def test_every_recipe_value_lands_on_verls_key(size, method):
    got = overrides(method, size)
    for key, value in RECIPE.items():
        assert got[key] == value, (key, got[key], value)
    assert float(got["actor_rollout_ref.actor.optim.lr"]) == RECIPE_LR[size]
    assert got["trainer.nnodes"] == RECIPE_NODES[size]
    assert got["algorithm.filter_groups.metric"] == "reward"  # the verifier's 0/1: accuracy
    vanilla = method in ("grpo", "clip_higher", "entropy_bonus")
    if vanilla:  # dual-clip at 10 (verl's default is 3); verl's clip_cov / kl_cov have none
        assert float(got["actor_rollout_ref.actor.clip_ratio_c"]) == 10.0
    else:
        assert "actor_rollout_ref.actor.clip_ratio_c" not in got
    if method == "kl_cov":
        assert float(got["actor_rollout_ref.actor.policy_loss.kl_cov_ratio"]) == RECIPE_K[size]
    high = {"clip_higher": 0.28, "clip_cov": 1.0}.get(method, 0.2)
    assert float(got["actor_rollout_ref.actor.clip_ratio_high"]) == high


@pytest.mark.parametrize("size", ["7b", "32b"])
def test_the_recipes_validation_sampling_is_in_the_evaluation(size):
    """AIME, AIME25 and AMC sampled at 0.6, the other benchmarks decoded greedily."""
    from entropy_rl.evaluate import EvaluateSettings

    settings = EvaluateSettings.from_dict(PROFILES[size]["evaluate"])
    sampled = {name for name, t in settings.benchmark_temperatures.items() if t > 0}
    assert sampled == {"aime24", "aime25", "amc23"}
    assert {settings.benchmark_temperatures[n] for n in sampled} == {0.6}
    assert set(settings.benchmark_temperatures) == set(settings.benchmarks)


def test_dual_clip_is_passed_to_verl_explicitly_and_off_means_off():
    grpo = paper_settings("grpo").replace(loss_config={})
    pairs = dict(p.split("=", 1) for p in verl_overrides(grpo, "t", "v", "o"))
    assert pairs["actor_rollout_ref.actor.clip_ratio_c"] == "inf"  # not verl's silent default 3
    kl = paper_settings("kl_cov")
    with pytest.raises(ValueError, match="verl's kl_cov loss has no dual-clip"):
        verl_overrides(
            kl.replace(loss_config={**kl.loss_config, "clip_ratio_c": 3.0}), "t", "v", "o"
        )


def test_dr_grpos_constant_is_the_maximum_response_length_in_verl_too():
    dr = paper_settings("grpo").replace(loss="dr_grpo", loss_config={}, advantage="dr_grpo")
    pairs = dict(p.split("=", 1) for p in verl_overrides(dr, "t", "v", "o"))
    assert pairs["actor_rollout_ref.actor.loss_agg_mode"] == "seq-mean-token-sum-norm"
    assert pairs["actor_rollout_ref.actor.loss_scale_factor"] == "8192"
    assert pairs["algorithm.norm_adv_by_std_in_grpo"] == "False"


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


@pytest.mark.parametrize(("loss", "verl_key", "ours"), [
    ("grpo", "actor/pg_clipfrac", "pg_clipfrac"),  # PPO's clip fraction
    ("grpo", "actor/ppo_kl", "approx_kl"),  # mean old_logp - logp
    ("clip_cov", "actor/pg_clipfrac", "cov_selected_frac"),  # the share Clip-Cov detached
    ("clip_cov", "actor/ppo_kl", "approx_kl"),
    ("kl_cov", "actor/ppo_kl", "abs_log_ratio"),  # mean |logp - old_logp|
])  # fmt: skip
def test_each_verl_quantity_lands_under_the_name_of_the_same_quantity_here(loss, verl_key, ours):
    """verl's loss-specific meanings of its shared metric names (core_algos.py), mapped to the
    names this suite's own losses log for that very quantity: the two match on one batch."""
    import torch

    from entropy_rl.engines.verl import verl_metrics
    from entropy_rl.losses import get_policy_loss

    assert verl_metrics(loss)[verl_key] == ours
    lines = (HERE / "verl_console_excerpt.log").read_text().splitlines()
    rows = convert_verl_log(lines, loss)
    logged = {"actor/pg_clipfrac": 0.0011, "actor/ppo_kl": 0.0002}[verl_key]
    assert rows[0][ours] == logged
    if ours != "pg_clipfrac" and verl_key == "actor/pg_clipfrac":
        assert "pg_clipfrac" not in rows[0]  # not logged under PPO's clip fraction's name
    g = torch.Generator().manual_seed(0)
    logp = -torch.rand(4, 6, generator=g, dtype=torch.float64) * 3
    old = logp + 0.3 * torch.randn(4, 6, generator=g, dtype=torch.float64)
    adv = torch.randn(4, 1, generator=g, dtype=torch.float64).expand(4, 6)
    mask = torch.ones(4, 6, dtype=torch.bool)
    config = {"r": 0.2, "omega_low": -10.0, "omega_high": 10.0} if loss == "clip_cov" else {}
    _, metrics = get_policy_loss(loss)(logp, old, adv, mask, config, generator=g)
    expected = {  # verl's definitions, written out
        "approx_kl": float((old - logp).mean()),
        "abs_log_ratio": float((logp - old).abs().mean()),
        "pg_clipfrac": None,
        "cov_selected_frac": None,
    }[ours]
    if expected is not None:
        assert float(metrics[ours]) == pytest.approx(expected)
    else:
        assert ours in metrics


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


def test_verl_runs_clip_cov_and_kl_cov_only_with_their_per_micro_batch_selection():
    """verl chooses Clip-Cov's and KL-Cov's tokens within each micro-batch and GPU: the paper
    profiles say so (selection: micro_batch); the suite's batch-wide choice is refused by name."""
    for method in ("clip_cov", "kl_cov"):
        assert paper_settings(method).selection == "micro_batch"
        with pytest.raises(ValueError, match=f"train.selection: batch: verl's {method} chooses"):
            verl_overrides(paper_settings(method).replace(selection="batch"), "t", "v", "o")
    verl_overrides(paper_settings("grpo").replace(selection="batch"), "t", "v", "o")  # no choice


@pytest.mark.parametrize(
    ("loss", "mode", "low", "high"),
    [("gspo", "gspo", 3e-4, 4e-4), ("gmpo", "geo_mean", 0.4, 0.4), ("cispo", "cispo", 1.0, 0.28),
     ("sapo", "sapo", 0.2, 0.2)],
)  # fmt: skip
def test_gspo_gmpo_cispo_and_sapo_map_to_verls_losses_with_their_settings(loss, mode, low, high):
    """Each runs as verl's own loss (loss_mode gspo, geo_mean, cispo, sapo) with this suite's
    defaults: the papers' clip ranges (GSPO's on the sequence ratio, GMPO's in log space as verl's
    geo_mean reads them, CISPO's on the importance weight) and SAPO's gate temperatures."""
    settings = RLSettings.from_dict(
        {**run_section(PAPER["train"], "grpo", "train"), "loss": loss, "loss_config": {},
         "model": "Qwen/Qwen2.5-7B"}
    )  # fmt: skip
    values = dict(pair.split("=", 1) for pair in verl_overrides(settings, "t", "v", "o"))
    assert values["actor_rollout_ref.actor.policy_loss.loss_mode"] == mode
    assert float(values["actor_rollout_ref.actor.clip_ratio_low"]) == low
    assert float(values["actor_rollout_ref.actor.clip_ratio_high"]) == high
    assert "actor_rollout_ref.actor.clip_ratio_c" not in values  # none of them dual-clips
    if loss == "sapo":  # its gate's temperatures; the clip ranges are not read
        assert float(values["actor_rollout_ref.actor.tau_pos"]) == 1.0
        assert float(values["actor_rollout_ref.actor.tau_neg"]) == 1.05
    if loss in ("gspo", "sapo"):
        assert values["actor_rollout_ref.actor.loss_agg_mode"] == "seq-mean-token-mean"
        token_mean = RLSettings.from_dict(
            {**settings.__dict__, "loss_config": {"loss_agg_mode": "token-mean"}}
        )
        with pytest.raises(ValueError, match=f"verl's {loss} always averages per sequence"):
            verl_overrides(token_mean, "t", "v", "o")


def test_a_kl_to_the_reference_maps_to_verls_loss_and_reward_keys(tmp_path, capsys):
    """kl_coef > 0 is verl's KL loss, reward_kl_coef > 0 its in-reward penalty (fixed
    controller), each with its estimator; this suite's unclamped k3 has no verl key."""
    base = {**run_section(PAPER["train"], "grpo", "train"), "model": "Qwen/Qwen2.5-7B"}
    both = RLSettings.from_dict(
        {**base, "loss_config": {"kl_coef": 0.001, "kl_estimator": "low_var_kl"},
         "reward_kl_coef": 0.01, "reward_kl_estimator": "k1"}
    )  # fmt: skip
    values = dict(pair.split("=", 1) for pair in verl_overrides(both, "t", "v", "o"))
    assert values["actor_rollout_ref.actor.use_kl_loss"] == "True"
    assert float(values["actor_rollout_ref.actor.kl_loss_coef"]) == 0.001
    assert values["actor_rollout_ref.actor.kl_loss_type"] == "low_var_kl"
    assert values["algorithm.use_kl_in_reward"] == "True"
    assert values["algorithm.kl_penalty"] == "kl"
    assert values["algorithm.kl_ctrl.type"] == "fixed"
    assert float(values["algorithm.kl_ctrl.kl_coef"]) == 0.01
    off = dict(pair.split("=", 1) for pair in verl_overrides(paper_settings("grpo"), "t", "v", "o"))
    assert not any("kl_loss_coef" in key or "kl_ctrl" in key for key in off)
    k3 = both.replace(loss_config={"kl_coef": 0.001})  # the default estimator, k3
    with pytest.raises(ValueError, match=r"loss_config\.kl_estimator = k3: verl.s k3 is clamped"):
        verl_overrides(k3, "t", "v", "o")
    # through the CLI: the dry run prints the command with the reference's keys
    config = {**PAPER, "train": {**PAPER["train"], "methods": {
        **PAPER["train"]["methods"],
        "grpo_kl": {"loss": "grpo", "loss_config": {"kl_coef": 0.001, "kl_estimator": "low_var_kl"},
                    "reward_kl_coef": 0.01}}}}  # fmt: skip
    config_file = tmp_path / "kl.yaml"
    config_file.write_text(yaml.safe_dump(config))
    from entropy_rl.cli import main

    args = ["train", "--config", str(config_file), "--method", "grpo_kl", "--model",
            "Qwen/Qwen2.5-7B", "--out", str(tmp_path / "run"), "--dry-run"]  # fmt: skip
    assert main(args) == 0
    command = capsys.readouterr().out
    assert "actor_rollout_ref.actor.use_kl_loss=True" in command
    assert "algorithm.use_kl_in_reward=True" in command and "algorithm.kl_penalty=kl" in command


@pytest.mark.parametrize(
    ("advantage", "verl_name", "norm"),
    [("grpo", "grpo", "True"), ("dr_grpo", "grpo", "False"), ("rloo", "rloo", "True"),
     ("reinforce_plus_plus", "reinforce_plus_plus", "True"),
     ("reinforce_plus_plus_baseline", "reinforce_plus_plus_baseline", "True"),
     ("grpo_passk", "grpo_passk", "True")],
)  # fmt: skip
def test_each_advantage_verl_has_maps_to_its_estimator(advantage, verl_name, norm):
    settings = paper_settings("grpo").replace(advantage=advantage)
    values = dict(pair.split("=", 1) for pair in verl_overrides(settings, "t", "v", "o"))
    assert values["algorithm.adv_estimator"] == verl_name
    assert values["algorithm.norm_adv_by_std_in_grpo"] == norm
    assert float(values["algorithm.gamma"]) == 1.0  # outcome reward: every token's return is r


@pytest.mark.parametrize("advantage", ["passk_analytic", "qae"])
def test_an_advantage_verl_does_not_have_is_refused_by_name(advantage):
    settings = paper_settings("grpo").replace(advantage=advantage)
    with pytest.raises(ValueError, match=f"advantage '{advantage}' is not mapped to verl"):
        verl_overrides(settings, "t", "v", "o")
