"""The statistics behind the verdicts, on synthetic run tables: a planted effect is found, a null
effect is inconclusive, base models that disagree widen the interval, rates get exact intervals."""

from __future__ import annotations

import numpy as np
import pytest

from entropy_rl.analysis.claims import CLAIMS
from entropy_rl.analysis.stats import (
    binomial_interval,
    cluster_bootstrap,
    hierarchical_bootstrap,
    paired_bootstrap,
)


def _paired_table(rng, base_effects, seeds=2, problems=128, control_rate=0.5):
    """Per base: [seeds, problems] greedy differences treated − control (0/1 correctness), the
    treated method right with probability control_rate + the base's effect."""
    bases = []
    for effect in base_effects:
        control = rng.random((seeds, problems)) < control_rate
        treated = rng.random((seeds, problems)) < control_rate + effect
        bases.append(treated.astype(float) - control.astype(float))
    return bases


def test_a_planted_effect_is_found_and_passes():
    bases = _paired_table(np.random.default_rng(0), [0.2] * 4)
    result = hierarchical_bootstrap(bases)
    assert result["bases"] == 4 and result["seeds"] == 8 and result["problems"] == 128
    assert result["lo"] > 0.05 and result["lo"] < result["estimate"] < result["hi"]
    assert CLAIMS["payoff"].verdict(result["lo"], result["hi"]) == "pass"
    assert CLAIMS["payoff_interval"].verdict(result["lo"], result["hi"]) == "pass"


def test_a_null_effect_is_inconclusive_not_a_pass_or_a_fail():
    bases = _paired_table(np.random.default_rng(1), [0.0] * 4)
    result = hierarchical_bootstrap(bases)
    assert result["lo"] < 0 < result["hi"]
    assert CLAIMS["payoff_interval"].verdict(result["lo"], result["hi"]) == "inconclusive"


def test_an_effect_clearly_below_the_threshold_fails():
    bases = _paired_table(np.random.default_rng(2), [-0.2] * 4)
    result = hierarchical_bootstrap(bases)
    assert CLAIMS["payoff"].verdict(result["lo"], result["hi"]) == "fail"


def test_the_interval_widens_when_base_models_disagree():
    rng = np.random.default_rng(3)
    agree = hierarchical_bootstrap(_paired_table(rng, [0.1, 0.1, 0.1, 0.1]))
    disagree = hierarchical_bootstrap(_paired_table(rng, [0.35, -0.15, 0.35, -0.15]))
    assert abs(agree["estimate"] - disagree["estimate"]) < 0.05  # the same mean effect
    assert disagree["hi"] - disagree["lo"] > 2 * (agree["hi"] - agree["lo"])
    assert CLAIMS["payoff_interval"].verdict(agree["lo"], agree["hi"]) == "pass"
    assert CLAIMS["payoff_interval"].verdict(disagree["lo"], disagree["hi"]) == "inconclusive"


def test_one_base_model_gives_the_seed_and_problem_bootstrap():
    rng = np.random.default_rng(4)
    treated = (rng.random((3, 64)) < 0.7).astype(float)
    control = (rng.random((3, 64)) < 0.5).astype(float)
    one = hierarchical_bootstrap([treated - control], n_boot=4000)
    two = paired_bootstrap(treated, control, n_boot=4000)
    assert one["estimate"] == pytest.approx(two["diff"])
    assert one["lo"] == pytest.approx(two["lo"], abs=0.02)
    assert one["hi"] == pytest.approx(two["hi"], abs=0.02)


def test_per_run_numbers_are_bootstrapped_over_bases_and_seeds():
    ratios = [[3.1, 2.8], [2.5, 2.9], [4.0, 3.2], [2.7, 3.5]]  # late entropy / GRPO's, per run
    result = hierarchical_bootstrap(ratios)
    assert result["problems"] == 1 and result["estimate"] == pytest.approx(np.mean(ratios))
    assert 2.5 <= result["lo"] < result["hi"] <= 4.0
    assert CLAIMS["kept_entropy"].verdict(result["lo"], result["hi"]) == "pass"


def test_uneven_seeds_per_base_weigh_every_base_equally():
    result = hierarchical_bootstrap([[1.0], [0.0, 0.0, 0.0]])
    assert result["estimate"] == pytest.approx(0.5)


def test_bad_tables_are_refused():
    with pytest.raises(ValueError, match="one number of problems"):
        hierarchical_bootstrap([np.zeros((2, 3)), np.zeros((2, 4))])
    with pytest.raises(ValueError):
        hierarchical_bootstrap([])


@pytest.mark.parametrize(
    ("k", "n", "lo", "hi"),
    [
        (0, 8, 0.0, 1 - 0.025 ** (1 / 8)),  # the closed forms at the ends
        (8, 8, 0.025 ** (1 / 8), 1.0),
        (1, 8, 0.00316, 0.52651),  # R: binom.test(1, 8)$conf.int
        (7, 8, 0.47349, 0.99684),
    ],
)
def test_the_binomial_interval_is_clopper_pearsons(k, n, lo, hi):
    assert binomial_interval(k, n) == pytest.approx((lo, hi), abs=1e-5)


def test_a_verdict_needs_the_whole_interval():
    claim = CLAIMS["headroom"]  # >= 0.10
    assert claim.verdict(0.12, 0.3) == "pass"
    assert claim.verdict(0.02, 0.08) == "fail"
    assert claim.verdict(0.05, 0.2) == "inconclusive"
    assert claim.verdict(float("nan"), 0.2) == "inconclusive"
    below = CLAIMS["boundary_grpo"]  # < 0
    assert below.verdict(-0.2, -0.01) == "pass" and below.verdict(-0.1, 0.1) == "inconclusive"


def test_a_pooled_statistic_is_bootstrapped_over_whole_runs():
    # per run, points on one line y = x (r 1 within each run); runs of base 1 sit on another line,
    # so pooled r falls only when base 1's runs are drawn with base 0's
    line = [[(x, x) for x in range(5)], [(x, x + 0.1) for x in range(5)]]
    other = [[(x, 4 - x) for x in range(5)]]

    def pooled_r(runs: list[list[tuple[float, float]]]) -> float:
        points = np.array([p for run in runs for p in run], dtype=float)
        return float(np.corrcoef(points[:, 0], points[:, 1])[0, 1])

    agree = cluster_bootstrap([line, line], pooled_r, n_boot=400)
    assert agree["estimate"] > 0.99 and agree["lo"] > 0.99 and agree["bases"] == 2
    mixed = cluster_bootstrap([line, other], pooled_r, n_boot=400)
    assert mixed["lo"] < 0 < mixed["hi"] and mixed["seeds"] == 3
    with pytest.raises(ValueError, match="at least one base model"):
        cluster_bootstrap([[]], pooled_r)
