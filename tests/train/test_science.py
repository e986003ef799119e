"""The science acceptance of docs/design.md on reduced configs, in two worlds.

The saturating world (the tests first below): the toy shows the paper's entropy collapse, and the
covariance interventions keep entropy at GRPO's accuracy. The carry world, the embedded default's
(the tests at the end): the base model has headroom above GRPO, and Clip-Cov, keeping entropy, pays.

The saturating world's reduced config: a smaller forking world (a 340 k-parameter model, 1,500 SFT steps, 8
prompts × 8 responses at temperature 0.5, lr 3e-5, 90 RL steps; about six minutes of CPU in all,
the SFT two of them). Measured on Intel Xeon, 2 cores (seeds 0, 1; greedy accuracy on 128
validation problems at the last step):

- GRPO: final entropy 0.0095, 0.0140; greedy 0.906, 0.953.
- KL-Cov (k 0.05, β 2): final entropy 3.05×, 2.51× GRPO's; greedy 0.945, 0.938 (on an AMD EPYC
  with AVX-512 its mean greedy difference is −0.043: inside the interval the test decides on).
- Clip-Cov (r 0.05, band (1, 100)): final entropy 2.95×, 2.41×; greedy 0.906, 0.914.
- Entropy bonus 1e-3 ends at 0.95× GRPO's entropy (seed 0); coefficient 2 takes entropy from
  0.064 to 0.101 in 10 steps while validation accuracy falls from 0.422 to 0.289.

The claims and the analysis code are the pipeline's; the runs are shared by the tests of a session.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from entropy_rl.analysis.claims import CLAIMS
from entropy_rl.analysis.runs import summarize_run
from entropy_rl.analysis.stats import paired_bootstrap
from entropy_rl.cli import main
from entropy_rl.config import load_yaml, run_section
from entropy_rl.tasks import ArithmeticTask, make_task
from entropy_rl.train.loop import train
from entropy_rl.train.settings import RLSettings
from tests.conftest import shared_base_model, shared_folder

FORK_TASK = {
    "n_terms": 3, "min_value": 10, "max_value": 49, "ood_n_terms": 4, "canonical_fraction": 0.45,
    "slip_rate_canonical": 0.0, "slip_rate_other": 0.0, "forget_rate_other": 1.0,
}  # fmt: skip
FORK_BASE = {
    "model": {
        "hidden_size": 96, "num_layers": 3, "num_heads": 4, "num_kv_heads": 2,
        "intermediate_size": 288,
    },
    "sft": {"steps": 1500, "batch_size": 32, "lr": 3e-3, "warmup_steps": 30, "train_problems": 4000},
    "eval_problems": 64, "eval_samples": 2, "max_new_tokens": 40, "threads": 1,
}  # fmt: skip
STEPS = 90
SEEDS = (0, 1)
EVAL_PROBLEMS = 128  # validation problems each run answers greedily at its last step
KL_COV = {"loss": "kl_cov", "loss_config": {"k": 0.05, "beta": 2.0}}
CLIP_COV = {"loss": "clip_cov", "loss_config": {"r": 0.05, "omega_low": 1.0, "omega_high": 100.0}}

# the suite's longest chain (an SFT, then eight RL runs): conftest.py schedules it first
pytestmark = [pytest.mark.slow, pytest.mark.science]


@pytest.fixture(scope="session")
def fork_base(tmp_path_factory) -> Path:
    """The reduced forking world's base model (about two minutes of SFT, once per session)."""
    return shared_base_model(tmp_path_factory, "fork_base", FORK_TASK, FORK_BASE)


def run(base: Path, out: Path, loss: dict, steps: int = STEPS, seed: int = 0) -> list[dict]:
    """One RL run of the reduced world; held-out accuracy (sampled and greedy) at its last step."""
    section = {
        "model": str(base), "steps": steps, "prompts_per_step": 8, "group_size": 8,
        "mini_batches": 4, "lr": 3e-5, "temperature": 0.5, "seed": seed, "max_new_tokens": 40,
        "checkpoint_every": 1000, "lemma_check_every": 0, "eval_every": steps - 1,
        "eval_problems": EVAL_PROBLEMS, "methods": {"method": loss},
    }  # fmt: skip
    settings = RLSettings.from_dict(run_section(section, "method", "train"))
    return train(settings, out, ArithmeticTask(**FORK_TASK))


@pytest.fixture(scope="session")
def shared_run(tmp_path_factory, fork_base):
    """``shared_run(name, loss, seed)``: a run made once per test session (``shared_folder``) and
    read back from its ``metrics.jsonl`` by the tests that ask for it again."""

    def get(name: str, loss: dict, seed: int) -> list[dict]:
        folder = shared_folder(
            tmp_path_factory,
            f"fork_{name}_seed{seed}",
            lambda folder: run(fork_base, folder, loss, seed=seed),
        )
        lines = (folder / "metrics.jsonl").read_text().splitlines()
        return [json.loads(line) for line in lines]

    return get


def greedy_accuracy(rows: list[dict]) -> float:
    return rows[-1]["val_accuracy_greedy"]


def test_grpo_collapses_entropy_early_while_accuracy_rises(shared_run):
    summaries, gains = [], []
    for seed in SEEDS:
        rows = shared_run("grpo", {"loss": "grpo"}, seed)
        summaries.append(summarize_run(rows))
        accuracy = [row["accuracy"] for row in rows]
        gains.append(np.mean(accuracy[-10:]) - np.mean(accuracy[:10]))
    # the pipeline's claims (entropy_rl.analysis.claims): the drop in the first third
    drop = np.mean([s["entropy_drop_first_third"] for s in summaries])
    assert CLAIMS["entropy_drop_first_third"].holds(drop), summaries
    assert all(gain > 0.1 for gain in gains), gains  # accuracy rises as entropy falls
    # the covariance between log-probability and advantage stays positive: the driver
    assert all(CLAIMS["cov_positive"].holds(s["cov_positive_frac"]) for s in summaries), summaries


@pytest.mark.parametrize(
    "loss",
    [KL_COV, CLIP_COV],
    ids=["kl_cov", "clip_cov"],
)
def test_covariance_interventions_keep_entropy_at_grpo_accuracy(shared_run, loss):
    grpo = {seed: shared_run("grpo", {"loss": "grpo"}, seed) for seed in SEEDS}
    method = {seed: shared_run(loss["loss"], loss, seed) for seed in SEEDS}
    # the pipeline's claims: final entropy kept (mean of per-seed ratios) at no accuracy cost
    ratios = [
        summarize_run(method[s])["entropy_final"] / summarize_run(grpo[s])["entropy_final"]
        for s in SEEDS
    ]
    assert CLAIMS["kept_entropy"].holds(np.mean(ratios)), ratios
    # no accuracy cost shown: the claim is not FAIL on the 95% interval of the mean greedy
    # difference over seeds and 128 problems (each accuracy a binomial proportion; one base
    # model, so the interval is the seeds' and problems', and a CPU that lands a point on either
    # side of the threshold gives the same verdict)
    diffs, variance = [], 0.0
    for s in SEEDS:
        a, b = greedy_accuracy(method[s]), greedy_accuracy(grpo[s])
        diffs.append(a - b)
        variance += (a * (1 - a) + b * (1 - b)) / EVAL_PROBLEMS
    cost, half = float(np.mean(diffs)), 1.96 * np.sqrt(variance) / len(SEEDS)
    assert CLAIMS["accuracy_cost"].verdict(cost - half, cost + half) != "fail", (diffs, half)


@pytest.mark.xfail(
    strict=False,
    reason="measured on Intel Xeon, 2 cores (seed 0): coefficient 2 takes entropy 0.064 -> 0.101 "
    "(1.57x, the test asks 1.2x) and validation accuracy 0.422 -> 0.289 in 10 steps (the test "
    "asks a fall of 0.1: two of 64 problems from the threshold, one seed); 0.001 ends at 0.95x "
    "GRPO's entropy (asked: < 1.5x)",
)
def test_entropy_bonus_sweep_shows_both_failure_modes(shared_run, fork_base, tmp_path):
    grpo = summarize_run(shared_run("grpo", {"loss": "grpo"}, 0))
    # too small a coefficient collapses like GRPO (the pipeline's claim bonus_small)
    bonus = {"loss": "entropy_bonus", "loss_config": {"coef": 1e-3}}
    small = summarize_run(run(fork_base, tmp_path / "small", bonus))
    assert CLAIMS["bonus_small"].holds(small["entropy_final"] / grpo["entropy_final"]), (
        small,
        grpo,
    )
    # too large a coefficient: entropy rises and the held-out accuracy falls
    bonus = {"loss": "entropy_bonus", "loss_config": {"coef": 2.0}}
    rows = run(fork_base, tmp_path / "large", bonus, steps=10)
    large = summarize_run(rows)
    assert large["entropy_final"] > 1.2 * large["entropy_initial"], large
    held_out = [row["val_accuracy"] for row in rows if row.get("val_accuracy") is not None]
    assert held_out[-1] < held_out[0] - 0.1, held_out


# -- the payoff: the embedded default's carry world, reduced ----------------------------------
# The world (task, base model, RL settings, methods) is read from config/config.yaml; only the
# run is shorter (PAYOFF_STEPS steps instead of 120) and the evaluation smaller (greedy, 128
# held-out problems). Clip-Cov's gain shows by then: in the default's own run its validation
# accuracy has passed GRPO's well before step 100.
#
# Three seeds, as in the pipeline: with two, the bootstrap's seed level has only three distinct
# draws and its interval is no interval. Measured on Intel Xeon, 2 cores, with seeds 0-3 (base
# pass@64 0.742): every three of the four seeds give headroom 0.130-0.169, a payoff of
# +0.138 to +0.188 with the interval's lower end 0.036-0.107, and 2.6-4.1x GRPO's late entropy;
# of the pairs, three of six put the interval's lower end at 0.

PAYOFF_STEPS = 100
PAYOFF_SEEDS = (0, 1, 2)
DEFAULT = load_yaml(Path(__file__).parents[2] / "config" / "config.yaml")


@pytest.fixture(scope="session")
def carry_base(tmp_path_factory) -> Path:
    """The default world's base model (its SFT on one thread: about four minutes)."""
    base = {**DEFAULT["base_model"], "threads": 1}
    base.pop("template", None)
    return shared_base_model(tmp_path_factory, "carry_base", DEFAULT["task"], base)


def payoff_run(base: Path, out: Path, method: str, seed: int) -> list[dict]:
    section = {
        **DEFAULT["train"], "model": str(base), "steps": PAYOFF_STEPS, "seed": seed,
        "checkpoint_every": 1000, "lemma_check_every": 0, "eval_every": PAYOFF_STEPS,
        "eval_early_every": 0, "loggers": ["jsonl"],
    }  # fmt: skip
    settings = RLSettings.from_dict(run_section(section, method, "train"))
    return train(settings, out, make_task(DEFAULT["task"]))


def heldout(model: Path, out: Path, k: int) -> tuple[dict, dict[str, bool]]:
    """The held-out evaluation of the default config (``k`` samples per problem, 128 problems)
    through the CLI: its summary and the greedy correctness per problem."""
    config = {**DEFAULT, "evaluate": {**DEFAULT["evaluate"], "heldout_k": k, "ood_problems": 0,
                                      "benchmarks": []}}  # fmt: skip
    path = out.parent / f"{out.name}.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["evaluate", "--config", str(path), "--model", str(model), "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    greedy = [json.loads(line) for line in (out / "samples" / "heldout_greedy.jsonl").open()]
    return summary, {row["id"]: row["correct"] for row in greedy}


@pytest.fixture(scope="session")
def payoff(tmp_path_factory, carry_base):
    """``payoff(method, seed)``: a reduced run of the default world, evaluated greedy on the held-out
    split, once per session: its metrics rows and greedy correctness per problem."""

    def get(method: str, seed: int) -> tuple[list[dict], dict[str, bool]]:
        def make(folder: Path) -> None:
            payoff_run(carry_base, folder, method, seed)
            heldout(folder / "model", folder / "eval", k=1)

        folder = shared_folder(tmp_path_factory, f"carry_{method}_seed{seed}", make)
        rows = [json.loads(line) for line in (folder / "metrics.jsonl").open()]
        greedy = [
            json.loads(line) for line in (folder / "eval/samples/heldout_greedy.jsonl").open()
        ]
        return rows, {row["id"]: row["correct"] for row in greedy}

    return get


def test_the_default_world_has_headroom_above_grpo(payoff, carry_base, tmp_path):
    """Claim ``headroom``: the base model's held-out pass@64 lies above GRPO's final greedy
    accuracy by the claim's margin: what the base model can reach by sampling, GRPO does not."""
    summary, _ = heldout(carry_base, tmp_path / "base", k=64)
    grpo = np.mean([np.mean(list(payoff("grpo", seed)[1].values())) for seed in PAYOFF_SEEDS])
    headroom = summary["heldout"]["pass@64"] - grpo
    assert CLAIMS["headroom"].holds(headroom), (summary["heldout"]["pass@64"], grpo)
    # the hard family is where the headroom lies: the base model rarely solves it by sampling
    assert summary["heldout"]["family_pass@1"]["hard"] < 0.05, summary["heldout"]


def test_clip_cov_keeps_entropy_and_pays_in_the_default_world(payoff):
    """Claims ``payoff`` and ``kept_entropy``: Clip-Cov ends above GRPO in held-out greedy accuracy
    by the claim's margin, the paired bootstrap interval of the difference (seeds × problems)
    above 0, keeping the claimed multiple of GRPO's late-run entropy."""
    grpo = {seed: payoff("grpo", seed) for seed in PAYOFF_SEEDS}
    clip = {seed: payoff("clip_cov", seed) for seed in PAYOFF_SEEDS}
    ids = sorted(grpo[PAYOFF_SEEDS[0]][1])
    difference = paired_bootstrap(
        [[clip[s][1][i] for i in ids] for s in PAYOFF_SEEDS],
        [[grpo[s][1][i] for i in ids] for s in PAYOFF_SEEDS],
    )
    assert CLAIMS["payoff"].holds(difference["diff"]), difference
    assert CLAIMS["payoff_interval"].holds(difference["lo"]), difference
    ratios = [
        summarize_run(clip[s][0])["entropy_late"] / summarize_run(grpo[s][0])["entropy_late"]
        for s in PAYOFF_SEEDS
    ]
    assert CLAIMS["kept_entropy"].holds(np.mean(ratios)), ratios
