"""verl as an alternative engine for the largest runs: its PPO trainer, this suite's recipe and grader.

verl (Sheng et al., 2024; ``pip install verl``, an optional extra) implements GRPO and the paper's
``clip_cov`` and ``kl_cov`` losses with FSDP and vLLM across nodes. This module does the three
things the pipeline needs to use it and still share analysis, figures and docs:

- :func:`verl_overrides`: a run's settings (the same ``train:`` section and method entry our
  trainer reads) as the Hydra overrides of ``python -m verl.trainer.main_ppo``;
- :func:`write_verl_data`: the task's problems as the parquet files verl reads (chat prompts, a
  ``reward_model.ground_truth``), graded by :func:`compute_score` — this suite's verifier — through
  verl's ``custom_reward_function``;
- :func:`convert_verl_log`: verl's logged metrics (console lines ``step:1 - actor/entropy:0.5 - ...``
  or JSON lines ``{"step": 1, "data": {...}}``) as rows of this suite's ``metrics.jsonl`` schema.

Nothing here imports verl: building the command and converting the log run anywhere; only
launching it needs verl and GPUs.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from entropy_rl.train.settings import RLSettings

__all__ = [
    "VERL_LOSS_METRICS",
    "VERL_METRICS",
    "compute_score",
    "convert_verl_log",
    "run_with_verl",
    "verl_command",
    "verl_merge_command",
    "verl_metrics",
    "verl_overrides",
    "write_verl_data",
]

# this suite's loss -> verl's actor.policy_loss.loss_mode
LOSS_MODES = {"grpo": "vanilla", "clip_higher": "vanilla", "entropy_bonus": "vanilla",
              "dr_grpo": "vanilla", "clip_cov": "clip_cov", "kl_cov": "kl_cov", "gspo": "gspo",
              "gmpo": "geo_mean", "cispo": "cispo", "sapo": "sapo"}  # fmt: skip
# this suite's advantage estimator -> verl's adv_estimator (and whether verl divides by the std)
ADV_ESTIMATORS = {"grpo": ("grpo", True), "dr_grpo": ("grpo", False), "rloo": ("rloo", True),
                  "reinforce_plus_plus": ("reinforce_plus_plus", True),
                  "reinforce_plus_plus_baseline": ("reinforce_plus_plus_baseline", True),
                  "grpo_passk": ("grpo_passk", True)}  # fmt: skip
# this suite's KL estimator -> verl's kl_loss_type / kl_penalty (verl's k3 is low_var_kl, clamped;
# this suite's k3 is not, so it has no verl key)
KL_TYPES = {"k1": "kl", "k2": "mse", "low_var_kl": "low_var_kl"}
SYSTEM_PROMPT = "Please reason step by step, and put your final answer within \\boxed{}."

# verl's metric name -> this suite's metrics.jsonl key (verl's documented names), for every loss
VERL_METRICS = {
    "actor/entropy": "entropy",
    "critic/rewards/mean": "reward_mean",
    "critic/score/mean": "accuracy",
    "response_length/mean": "response_length",
    "actor/pg_clipfrac": "pg_clipfrac",
    "actor/ppo_kl": "approx_kl",
    "actor/pg_clipfrac_lower": "pg_clipfrac_lower",
    "actor/grad_norm": "grad_norm",
    "actor/lr": "lr",
    "actor/kl_loss": "kl_ref",
    "actor/reward_kl_penalty": "reward_kl",
    "timing_s/gen": "time_rollout_s",
    "timing_s/update_actor": "time_update_s",
    "perf/throughput": "tokens_per_s",
}
# where one of verl's losses logs another quantity under a shared name (core_algos.py 0.9):
# clip_cov's pg_clipfrac is the share of tokens it detached; kl_cov's ppo_kl is mean |logp - old|
VERL_LOSS_METRICS = {
    "clip_cov": {"actor/pg_clipfrac": "cov_selected_frac"},
    "kl_cov": {"actor/ppo_kl": "abs_log_ratio"},
}


def verl_metrics(loss: str) -> dict[str, str]:
    """verl's metric names -> this suite's for a run of ``loss``: each verl quantity under the
    name of the quantity this suite's trainer logs with the same meaning."""
    return {**VERL_METRICS, **VERL_LOSS_METRICS.get(loss, {})}


VAL_ACCURACY = re.compile(r"^val(-core)?/.*(acc|score|reward).*$")


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    return str(value)


def verl_overrides(
    settings: RLSettings,
    train_file: str | Path,
    val_file: str | Path,
    out: str | Path,
) -> list[str]:
    """Hydra overrides of ``verl.trainer.main_ppo`` for one run (method and seed in ``settings``).

    The batch shape, optimizer, sampling, dynamic sampling (verl's ``filter_groups`` on the
    reward, at most ``sampling_rounds`` generation batches) and loss follow ``settings``, dual-clip
    included (``clip_ratio_c``, which verl's vanilla loss always applies: inf turns it off); a
    method verl does not implement (forking tokens, entropy advantage, reweighting, the entropy
    target, an advantage verl has no estimator for: pass@k analytic, QAE) is an error that names it.
    """
    _check_mappable(settings)
    loss = settings.loss_settings()
    out = Path(out)
    actor = "actor_rollout_ref.actor"
    values: dict[str, Any] = {
        "algorithm.adv_estimator": ADV_ESTIMATORS[settings.advantage][0],
        "algorithm.norm_adv_by_std_in_grpo": ADV_ESTIMATORS[settings.advantage][1],
        "algorithm.gamma": 1.0,  # REINFORCE++'s returns: the outcome reward on every token
        "algorithm.use_kl_in_reward": settings.reward_kl_coef > 0,
        "data.train_files": str(train_file),
        "data.val_files": str(val_file),
        "data.train_batch_size": settings.prompts_per_step,
        "data.max_prompt_length": settings.max_prompt_tokens,
        "data.max_response_length": settings.max_new_tokens,
        "data.seed": settings.seed,
        "actor_rollout_ref.model.path": settings.model,
        "actor_rollout_ref.model.enable_gradient_checkpointing": True,
        f"{actor}.optim.lr": settings.lr,
        f"{actor}.optim.weight_decay": settings.weight_decay,
        f"{actor}.ppo_mini_batch_size": settings.prompts_per_step // settings.mini_batches,
        f"{actor}.ppo_epochs": settings.epochs,
        f"{actor}.grad_clip": settings.grad_clip,
        f"{actor}.clip_ratio_low": loss.clip_ratio_low,
        f"{actor}.clip_ratio_high": loss.clip_ratio_high,
        f"{actor}.loss_agg_mode": loss.loss_agg_mode,
        f"{actor}.loss_scale_factor": int(loss.loss_scale_factor),
        f"{actor}.entropy_coeff": getattr(loss, "coef", 0.0)
        if settings.loss == "entropy_bonus"
        else 0.0,
        f"{actor}.use_kl_loss": loss.kl_coef > 0,
        f"{actor}.policy_loss.loss_mode": LOSS_MODES[settings.loss],
        "actor_rollout_ref.rollout.name": "vllm",
        "actor_rollout_ref.rollout.n": settings.group_size,
        "actor_rollout_ref.rollout.tensor_model_parallel_size": settings.rollout_tensor_parallel,
        "actor_rollout_ref.rollout.temperature": settings.temperature,
        "actor_rollout_ref.rollout.top_p": settings.top_p,
        "custom_reward_function.path": str(Path(__file__).resolve()),
        "custom_reward_function.name": "compute_score",
        "trainer.total_training_steps": settings.steps,
        "trainer.n_gpus_per_node": settings.gpus_per_node,
        "trainer.nnodes": settings.nodes,
        "trainer.save_freq": settings.checkpoint_every,
        "trainer.test_freq": settings.eval_every or -1,
        "trainer.default_local_dir": str(out / "verl_checkpoints"),
        "trainer.project_name": "entropy-rl",
        "trainer.experiment_name": f"{settings.loss}-seed{settings.seed}",
        "trainer.logger": "['console']",
        "trainer.resume_mode": "auto",
    }
    values.update(_loss_overrides(settings, loss, actor))
    values.update(_kl_overrides(settings, loss, actor))
    return [f"{key}={_fmt(value)}" for key, value in values.items()]


def _check_mappable(settings: RLSettings) -> None:
    """A method verl runs as this suite would, or an error that names what does not map."""
    if settings.loss not in LOSS_MODES:
        raise ValueError(
            f"loss {settings.loss!r} has no verl equivalent; verl runs {', '.join(LOSS_MODES)}. "
            "Run it with this suite's trainer (train.engine: entropy-rl)"
        )
    if settings.advantage not in ADV_ESTIMATORS:
        raise ValueError(
            f"advantage {settings.advantage!r} is not mapped to verl; use one of "
            f"{', '.join(ADV_ESTIMATORS)}, or run it with this suite's trainer"
        )
    if settings.selection == "batch" and settings.loss in ("clip_cov", "kl_cov"):
        raise ValueError(
            f"train.selection: batch: verl's {settings.loss} chooses its tokens within each "
            "micro-batch and GPU; set train.selection: micro_batch to run it through verl, or run "
            "it with this suite's trainer"
        )
    if settings.prompts_per_step % settings.mini_batches:
        raise ValueError(
            f"train.mini_batches ({settings.mini_batches}) must divide train.prompts_per_step "
            f"({settings.prompts_per_step}): verl's mini-batches are counted in prompts"
        )


def _loss_overrides(settings: RLSettings, loss: Any, actor: str) -> dict[str, Any]:
    """What depends on the method: dynamic sampling, dual-clip, Clip-Cov's and KL-Cov's keys."""
    values: dict[str, Any] = {}
    if settings.dynamic_sampling:  # DAPO's group filter: drop groups whose rewards are all equal
        values.update({
            "algorithm.filter_groups.enable": True,
            "algorithm.filter_groups.metric": "reward",  # the verifier's reward, as this trainer
            "algorithm.filter_groups.max_num_gen_batches": settings.sampling_rounds,
        })  # fmt: skip
    if LOSS_MODES[settings.loss] == "vanilla":  # verl's vanilla loss always dual-clips
        values[f"{actor}.clip_ratio_c"] = loss.clip_ratio_c
    elif math.isfinite(loss.clip_ratio_c):
        raise ValueError(
            f"clip_ratio_c = {loss.clip_ratio_c:g}: verl's {settings.loss} loss has no dual-clip; "
            "leave clip_ratio_c at inf for this method, or run it with this suite's trainer"
        )
    if settings.loss in ("gspo", "sapo") and loss.loss_agg_mode != "seq-mean-token-mean":
        raise ValueError(
            f"{settings.loss}.loss_agg_mode = {loss.loss_agg_mode}: verl's {settings.loss} always "
            "averages per sequence (seq-mean-token-mean); use that, or run it with this suite's "
            "trainer"
        )
    if settings.loss == "sapo":
        values.update({f"{actor}.tau_pos": loss.tau_pos, f"{actor}.tau_neg": loss.tau_neg})
    if settings.loss == "clip_cov":
        values.update({
            f"{actor}.policy_loss.clip_cov_ratio": loss.r,
            f"{actor}.policy_loss.clip_cov_lb": loss.omega_low,
            f"{actor}.policy_loss.clip_cov_ub": loss.omega_high,
        })  # fmt: skip
    if settings.loss == "kl_cov":
        values.update({
            f"{actor}.policy_loss.kl_cov_ratio": loss.k,
            f"{actor}.policy_loss.ppo_kl_coef": loss.beta,
        })  # fmt: skip
    return values


def _kl_overrides(settings: RLSettings, loss: Any, actor: str) -> dict[str, Any]:
    """The KL to the reference policy (verl enables its reference model for either): in the loss
    (``kl_coef``, ``kl_estimator``) and in the reward (``reward_kl_coef``, ``reward_kl_estimator``,
    verl's fixed controller). Both coefficients are per token: the loss's weighs the aggregated
    KL as the policy loss is aggregated; the reward's weighs each token's KL, summed per response."""
    values: dict[str, Any] = {}
    terms = (
        ("loss_config.kl_estimator", loss.kl_coef, loss.kl_estimator,
         {f"{actor}.kl_loss_coef": loss.kl_coef}, f"{actor}.kl_loss_type"),
        ("train.reward_kl_estimator", settings.reward_kl_coef, settings.reward_kl_estimator,
         {"algorithm.kl_ctrl.type": "fixed", "algorithm.kl_ctrl.kl_coef": settings.reward_kl_coef},
         "algorithm.kl_penalty"),
    )  # fmt: skip
    for where, coef, estimator, keys, type_key in terms:
        if coef <= 0:
            continue
        if estimator not in KL_TYPES:
            raise ValueError(
                f"{where} = {estimator}: verl's k3 is clamped (its low_var_kl); set it to "
                "low_var_kl to run through verl, or run this method with this suite's trainer"
            )
        values.update({**keys, type_key: KL_TYPES[estimator]})
    return values


def verl_command(overrides: Sequence[str], python: str = "python3") -> list[str]:
    """The command line that runs verl's PPO trainer with ``overrides``."""
    return [python, "-m", "verl.trainer.main_ppo", *overrides]


def verl_merge_command(out: str | Path, step: int, python: str = "python3") -> list[str]:
    """verl's model merger: the FSDP actor checkpoint of ``step`` as a Hugging Face folder
    ``out/model`` (what evaluation loads, as from this suite's trainer)."""
    out = Path(out)
    actor = out / "verl_checkpoints" / f"global_step_{step}" / "actor"
    return [python, "-m", "verl.model_merger", "merge", "--backend", "fsdp",
            "--local_dir", str(actor), "--target_dir", str(out / "model")]  # fmt: skip


def _chat(problem: str, template: str) -> list[dict[str, str]]:
    if template != "qwen25-math-cot":
        raise ValueError(
            f"template {template!r}: verl applies the model's own chat template, so the verl "
            "engine supports template qwen25-math-cot (system: reason step by step and box the "
            "answer; user: the problem)"
        )
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": problem}]


def verl_rows(problems: Iterable[Any], template: str, split: str) -> list[dict[str, Any]]:
    """verl's RL dataset rows: a chat prompt, the ground truth for the reward, an id."""
    return [
        {
            "data_source": "entropy-rl",
            "prompt": _chat(p.problem, template),
            "ability": "math",
            "reward_model": {"style": "rule", "ground_truth": p.answer},
            "extra_info": {"split": split, "id": p.id},
        }
        for p in problems
    ]


def write_verl_data(task: Any, settings: RLSettings, folder: str | Path) -> tuple[Path, Path]:
    """Write the task's train and validation problems as verl's parquet files; return their
    paths (the held-out split stays for the final evaluation)."""
    import pandas as pd

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for split, n, seed in (
        ("train", settings.train_problems, settings.seed),
        ("validation", settings.eval_problems, 0),
    ):
        rows = verl_rows(task.problems(split, n, seed), settings.template, split)
        path = folder / f"{split}.parquet"
        pd.DataFrame(rows).to_parquet(path)
        paths.append(path)
    return paths[0], paths[1]


def compute_score(
    data_source: str, solution_str: str, ground_truth: str, extra_info: Any = None
) -> float:
    """verl's ``custom_reward_function``: this suite's verifier (1 correct, 0 otherwise)."""
    from entropy_rl.rewards import reward

    return float(reward(solution_str, ground_truth))


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _parse_line(line: str) -> tuple[int, dict[str, float]] | None:
    """``(step, metrics)`` of one verl log line, or ``None`` for any other line."""
    line = line.strip()
    if line.startswith("{"):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            return None
        if isinstance(record, dict) and "step" in record and isinstance(record.get("data"), dict):
            data = {k: float(v) for k, v in record["data"].items() if isinstance(v, int | float)}
            return int(record["step"]), data
        return None
    match = re.search(r"step:(\d+) - (.*)$", line)
    if match is None:
        return None
    metrics = {}
    for item in match.group(2).split(" - "):
        key, sep, value = item.rpartition(":")
        number = _number(value.strip()) if sep else None
        if number is not None:
            metrics[key.strip()] = number
    return int(match.group(1)), metrics


def _val_accuracy(metrics: dict[str, float]) -> float | None:
    val = [v for k, v in metrics.items() if VAL_ACCURACY.match(k) and "mean@1" in k]
    val = val or [v for k, v in metrics.items() if k.startswith("val/test_score/")]
    return sum(val) / len(val) if val else None


def convert_verl_log(lines: Iterable[str], loss: str = "grpo") -> list[dict[str, Any]]:
    """Rows of this suite's ``metrics.jsonl`` from verl's logged metrics.

    verl logs training step ``s`` (counted from 1) after its update, and validation at step ``s``
    after ``s`` updates (step 0: before training). This suite's row ``k`` holds the update made
    from the policy after ``k`` updates, and the validation of that policy — so row ``k`` takes
    verl's training metrics of step ``k + 1`` and its validation of step ``k``. Keys are renamed
    by :func:`verl_metrics` of the run's ``loss``; ``val_accuracy`` is the mean over data sources of verl's validation
    accuracy (``val-core/<source>/acc/mean@1``, or ``val/test_score/<source>`` in older versions).
    What verl does not log (the token covariance, the Lemma-1 check) is ``None``. A step logged
    twice (a resumed run) keeps its last record.
    """
    by_step: dict[int, dict[str, float]] = {}
    for line in lines:
        parsed = _parse_line(line)
        if parsed is not None:
            step, metrics = parsed
            by_step.setdefault(step, {}).update(metrics)
    rows = []
    for step in sorted(s for s, metrics in by_step.items() if "actor/entropy" in metrics):
        metrics = by_step[step]
        row: dict[str, Any] = {"step": step - 1, "cov_mean": None, "cov_selected_frac": None,
                               "entropy_change": None, "entropy_change_predicted": None}  # fmt: skip
        for verl_key, key in verl_metrics(loss).items():
            row[key] = metrics.get(verl_key)
        val = _val_accuracy(by_step.get(step - 1, {}))
        if val is not None:
            row["val_accuracy"] = val
        rows.append(row)
    if not rows:
        raise ValueError(
            "no verl training step found in the log (expected lines like "
            '\'step:1 - actor/entropy:0.61 - ...\' or JSON lines {"step": 1, "data": {...}})'
        )
    return rows


def run_with_verl(
    settings: RLSettings, task: Any, out: Path, method: str, dry_run: bool = False
) -> int:
    """One RL run with verl's PPO trainer (``train.engine: verl``): its data files, verl in a
    subprocess (log appended to ``out/verl.log``, so a resumed run adds to it), the log converted
    to the suite's ``metrics.jsonl`` and ``summary.json``, its model merged. With ``dry_run`` it
    prints verl's command line and runs nothing. Returns the exit status."""
    import importlib.util
    import subprocess
    import sys

    from entropy_rl.analysis import summarize_run
    from entropy_rl.io import write_json, write_jsonl

    data = out / "verl_data"
    overrides = verl_overrides(settings, data / "train.parquet", data / "validation.parquet", out)
    command = verl_command(overrides, sys.executable)
    if dry_run:
        print(" ".join(command))
        return 0
    if importlib.util.find_spec("verl") is None:
        raise ValueError(
            "train.engine is verl but verl is not installed: pip install -e '.[verl]' (GPUs), "
            "or set train.engine: entropy-rl"
        )
    write_verl_data(task, settings, data)
    log = out / "verl.log"
    with open(log, "a") as sink:
        code = subprocess.run(command, stdout=sink, stderr=subprocess.STDOUT).returncode
    if code:
        print(f"entropy-rl train: verl exited with {code}; see {log}", file=sys.stderr)
        return 1
    rows = convert_verl_log(log.read_text().splitlines(), settings.loss)
    write_jsonl(out / "metrics.jsonl", rows)
    subprocess.run(verl_merge_command(out, settings.steps), check=True)
    summary = {"method": method, "engine": "verl", **summarize_run(rows)}
    write_json(out / "summary.json", summary)
    print(f"{method} seed {settings.seed} (verl): entropy {summary['entropy_initial']:.3f} -> "
          f"{summary['entropy_final']:.3f}")  # fmt: skip
    return 0
