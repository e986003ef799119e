"""The study's statistics and acceptance rows on runs built in the test: a collapsing GRPO, an
intervention that keeps entropy and pays, and a base model with headroom."""

from __future__ import annotations

import re

import numpy as np
import pytest

from entropy_rl.analysis.law import compare_with_line
from entropy_rl.analysis.runs import late_mean, summarize_run
from entropy_rl.analysis.stats import paired_bootstrap
from entropy_rl.analysis.study import (
    Run,
    acceptance_checks,
    analyze_study,
    discovery_rate,
    greedy_difference,
)
from entropy_rl.report import acceptance_markdown, law_table_markdown, method_table_markdown


def test_paired_bootstrap_brackets_a_real_difference_and_straddles_none():
    rng = np.random.default_rng(0)
    control = rng.random((3, 200)) < 0.5
    treated = control | (rng.random((3, 200)) < 0.3)  # fixes ~30% of the misses
    result = paired_bootstrap(treated, control)
    assert result["lo"] > 0 and result["lo"] < result["diff"] < result["hi"]
    assert result["diff"] == pytest.approx((treated.astype(float) - control).mean())
    same = paired_bootstrap(control, control)
    assert same["diff"] == same["lo"] == same["hi"] == 0
    noise = paired_bootstrap(rng.random((3, 200)) < 0.5, rng.random((3, 200)) < 0.5)
    assert noise["lo"] < 0 < noise["hi"]
    with pytest.raises(ValueError, match=r"\[seeds, problems\].*\(3, 200\) and \(2, 200\)"):
        paired_bootstrap(control, control[:2])


def test_the_line_and_the_law_agree_on_small_entropies_and_part_on_large_ones():
    rng = np.random.default_rng(1)
    small = np.linspace(0.002, 0.04, 40)
    noisy = 0.6 - 2.0 * np.exp(small) + 2.0 + rng.normal(0, 0.01, small.size)
    near = compare_with_line(small, noisy)
    assert not near["distinguishable"] and near["max_gap"] < 0.01
    assert near["r2_law"] == pytest.approx(near["r2_line"], abs=0.01)
    large = np.linspace(0.0, 3.0, 40)
    far = compare_with_line(large, 20 - np.exp(large) + rng.normal(0, 0.01, large.size))
    assert far["distinguishable"] and far["r2_law"] > far["r2_line"]


def test_late_mean_averages_the_last_tenth_of_the_steps():
    assert late_mean(np.arange(20.0)) == pytest.approx(18.5)  # the last 2 of 20
    assert late_mean([5.0, 1.0]) == 1.0  # at least one value
    with pytest.raises(ValueError, match="at least one value"):
        late_mean([])


def _rows(entropy: np.ndarray, val: np.ndarray, every: int) -> list[dict]:
    rows = []
    for step, h in enumerate(entropy):
        row = {"step": step, "entropy": float(h), "accuracy": 0.5, "cov_mean": 0.1}
        if step % every == 0 or step == len(entropy) - 1:
            row["val_accuracy"] = float(val[step])
        rows.append(row)
    return rows


def _world(seed: int, grpo_greedy: float, kept_greedy: float):
    """GRPO collapses (entropy 0.04 → 0.004) as its accuracy rises to 0.55; ``clip_cov`` keeps 4×
    the entropy; both evaluated on 100 problems."""
    rng = np.random.default_rng(seed)
    steps = np.arange(60)
    h = 0.004 + 0.036 * np.exp(-steps / 10)  # halves at step 9
    val = 2.55 - 2.0 * np.exp(h) + rng.normal(0, 0.003, steps.size)  # ceiling 0.55
    ids = [f"p{i}" for i in range(100)]

    def run(method: str, entropy: np.ndarray, greedy: float, pass64: float) -> Run:
        rows = _rows(entropy, val, every=2)
        correct = rng.random(100) < greedy
        evaluation = {
            "heldout": {"pass@1": greedy - 0.02, "pass@64": pass64},
            "heldout_greedy": {"pass@1": float(correct.mean())},
        }
        return Run(
            method,
            seed,
            rows,
            summarize_run(rows),
            evaluation,
            dict(zip(ids, correct, strict=True)),
        )

    return run("grpo", h, grpo_greedy, 0.6), run("clip_cov", 4 * h, kept_greedy, 0.85)


def _checks(kept_greedy: float, base_pass64: float = 0.8):
    worlds = [_world(seed, 0.55, kept_greedy) for seed in range(3)]
    lm = {"grpo": [w[0] for w in worlds], "clip_cov": [w[1] for w in worlds]}
    methods = {"grpo": {"loss": "grpo"}, "clip_cov": {"loss": "clip_cov"}}
    analysis = analyze_study(lm, methods)
    base = {"heldout": {"pass@1": 0.4, "pass@64": base_pass64}}
    return (
        lm,
        analysis,
        {c["check"]: c for c in acceptance_checks(lm, analysis, {}, methods, {}, {0: base})},
    )


def test_acceptance_names_headroom_ceiling_payoff_and_boundary_with_numbers():
    _, analysis, checks = _checks(kept_greedy=0.8)
    by_start = {name.split(":")[0]: c for name, c in checks.items()}
    assert (
        checks["GRPO: held-out evaluations before its entropy halves (fewest of any run)"][
            "verdict"
        ]
        == "pass"
    )
    ceiling = by_start["ceiling"]
    assert ceiling["pass"] and ceiling["value"] < 0.95 and "b − a = 0.55" in ceiling["detail"]
    headroom = by_start["headroom"]
    assert headroom["pass"] and headroom["value"] == pytest.approx(0.8 - 0.55, abs=0.08)
    payoff = next(c for name, c in checks.items() if name.startswith("payoff: clip_cov"))
    assert payoff["verdict"] == "pass" and payoff["interval"][0] > 0
    assert "1 base model, 3 runs × 100 problems" in payoff["detail"]
    assert all(c["pass"] for name, c in checks.items() if name.startswith("boundary"))
    ratio = checks["clip_cov: late-run entropy / GRPO's (LM; mean of the last 10% of steps)"]
    assert ratio["value"] == pytest.approx(4.0)
    assert analysis["methods"]["grpo"]["law_line"]["distinguishable"] is False
    table = acceptance_markdown(list(checks.values()))
    assert "| 95% interval |" in table and "| pass |" in table
    assert "late-run entropy (last 10% of steps)" in method_table_markdown(analysis["table"])


def test_acceptance_fails_the_payoff_when_the_intervention_does_not_pay():
    lm, _, checks = _checks(kept_greedy=0.55, base_pass64=0.6)
    payoff = next(c for name, c in checks.items() if name.startswith("payoff: clip_cov"))
    assert not payoff["pass"]
    assert not checks["payoff: an intervention ends above GRPO (some payoff row above passes)"][
        "pass"
    ]
    assert not next(c for n, c in checks.items() if n.startswith("headroom"))["pass"]
    difference = greedy_difference(lm, "clip_cov", "grpo")
    assert difference["lo"] < 0.05 and difference["seeds"] == 3 and difference["problems"] == 100
    assert difference["bases"] == 1


def test_the_law_is_fitted_on_the_validation_entropy_where_every_evaluation_has_one():
    # the rollout entropy is the validation entropy plus the prompt mix's noise: the fit on the
    # validation entropy recovers the law, and falls back to the rollout entropy where one is missing
    rng = np.random.default_rng(3)
    grpo, _ = _world(0, 0.55, 0.8)
    for row in grpo.rows:
        if "val_accuracy" in row:
            row["val_entropy"] = row["entropy"]
            row["entropy"] *= float(np.exp(rng.normal(0, 0.3)))
    methods = {"grpo": {"loss": "grpo"}}
    clean = analyze_study({"grpo": [grpo]}, methods)
    assert clean["entropy_key"] == "val_entropy"
    noisy_rows = [{k: v for k, v in r.items() if k != "val_entropy"} for r in grpo.rows]
    noisy_rows[0]["val_entropy"] = 0.01  # one row is not every row
    noisy = analyze_study({"grpo": [Run("grpo", 0, noisy_rows, grpo.summary, {}, {})]}, methods)
    assert noisy["entropy_key"] == "entropy"
    r2 = {k: a["methods"]["grpo"]["law"]["r2"] for k, a in (("clean", clean), ("noisy", noisy))}
    assert r2["clean"] > 0.95 > r2["noisy"], r2
    # the table reports the rollout entropy's R² beside the validation entropy's
    rollout_r2 = clean["methods"]["grpo"]["law_r2_rollout_entropy"]
    assert rollout_r2 == pytest.approx(r2["noisy"], abs=0.05)
    assert "R² on the rollout entropy" in law_table_markdown(clean["methods"])
    assert "R² on the rollout entropy" not in law_table_markdown(noisy["methods"])


def _with_hard_family(runs: list[Run], learned: list[bool]) -> list[Run]:
    for run, hit in zip(runs, learned, strict=True):
        run.evaluation["heldout_greedy"]["family_pass@1"] = {
            "easy": 1.0,
            "hard": 0.8 if hit else 0.0,
        }
    return runs


@pytest.mark.parametrize(
    ("grpo_learned", "kept_learned", "verdicts"),
    [
        ([False] * 3, [True] * 3, ("inconclusive", "inconclusive")),  # 3 runs: too few to tell
        ([False] * 8, [True] * 8, ("pass", "pass")),  # 0 of 8 against 8 of 8
        ([True] * 8, [False] * 8, ("fail", "fail")),
        ([True] * 7 + [False], [False] * 8, ("inconclusive", "fail")),  # 7 of 8: 0.47 to 1
    ],
)
def test_discovery_rates_get_exact_intervals_and_three_state_verdicts(
    grpo_learned, kept_learned, verdicts
):
    worlds = [_world(seed, 0.55, 0.8) for seed in range(len(grpo_learned))]
    lm = {
        "grpo": _with_hard_family([w[0] for w in worlds], grpo_learned),
        "clip_cov": _with_hard_family([w[1] for w in worlds], kept_learned),
    }
    assert discovery_rate(lm["clip_cov"]) == (sum(kept_learned), len(kept_learned))
    methods = {"grpo": {"loss": "grpo"}, "clip_cov": {"loss": "clip_cov"}}
    checks = acceptance_checks(lm, analyze_study(lm, methods), {}, methods, {})
    found = {c["claim"]: c for c in checks if c["claim"].startswith("discovery")}
    assert (found["discovery_grpo"]["verdict"], found["discovery"]["verdict"]) == verdicts
    assert found["discovery"]["pass"] == (verdicts[1] == "pass")
    n = len(kept_learned)
    assert f"{sum(kept_learned)} of {n} runs on 1 base model;" in found["discovery"]["detail"]
    table = acceptance_markdown(list(found.values()))
    assert f"| {verdicts[0].replace('fail', 'FAIL')} |" in table


def test_a_task_without_a_hard_family_has_no_discovery_rows():
    _, _, checks = _checks(kept_greedy=0.8)
    assert not any(name.startswith("discovery") for name in checks)


def _bases(pays_on: list[bool], seeds: int = 2):
    """GRPO and Clip-Cov on one base model per entry of ``pays_on``, ``seeds`` seeds each: Clip-Cov
    ends +0.25 greedy where its base lets it pay and −0.15 where not."""
    lm: dict[str, list[Run]] = {"grpo": [], "clip_cov": []}
    for base, pays in enumerate(pays_on):
        for seed in range(seeds):
            grpo, kept = _world(10 * base + seed, 0.55, 0.8 if pays else 0.4)
            grpo.base = kept.base = base
            grpo.seed = kept.seed = seed
            lm["grpo"].append(grpo)
            lm["clip_cov"].append(kept)
    methods = {"grpo": {"loss": "grpo"}, "clip_cov": {"loss": "clip_cov"}}
    bases = {b: {"heldout": {"pass@1": 0.4, "pass@64": 0.8}} for b in range(len(pays_on))}
    checks = acceptance_checks(lm, analyze_study(lm, methods), {}, methods, {}, bases)
    return lm, {c["claim"]: c for c in checks}


def test_runs_pair_by_base_and_seed_and_base_models_that_disagree_leave_the_payoff_open():
    lm, agree = _bases([True, True, True, True])
    assert agree["payoff"]["verdict"] == "pass"
    assert "4 base models, 8 runs × 100 problems" in agree["payoff"]["detail"]
    # a pair is the same base and seed: swapping base 1's runs of one method breaks no pair
    assert greedy_difference(lm, "clip_cov", "grpo")["seeds"] == 8
    _, split = _bases([True, False, True, False])
    assert split["payoff"]["verdict"] == "inconclusive"
    assert split["payoff"]["interval"][0] < 0.05 < split["payoff"]["interval"][1]
    _, none = _bases([False, False, False, False])
    assert none["payoff"]["verdict"] == "fail" and none["payoff_any"]["verdict"] == "fail"
    # every row carries its verdict and (where it is sampled) its interval
    assert all(c["verdict"] in ("pass", "fail", "inconclusive") for c in agree.values())
    exact = {"evals_before_half", "payoff_any"}  # a count by design, and a count of rows
    assert all(c["interval"] is not None for k, c in agree.items() if k not in exact)


def test_the_runs_figure_shows_every_run_and_the_hard_family_where_there_is_one(tmp_path):
    import matplotlib.image

    from entropy_rl.plots.study import plot_runs

    lm, _ = _bases([True, False])
    plot_runs(lm, tmp_path / "overall")
    for method, learned in (("grpo", [False] * 4), ("clip_cov", [True, True, False, False])):
        _with_hard_family(lm[method], learned)
    plot_runs(lm, tmp_path / "families")
    one = matplotlib.image.imread(tmp_path / "overall.png")
    two = matplotlib.image.imread(tmp_path / "families.png")
    assert (tmp_path / "families.pdf").stat().st_size > 0
    assert two.shape[1] > 1.8 * one.shape[1] and two.shape[0] == one.shape[0]  # a second panel


@pytest.mark.parametrize(("tuned", "verdict"), [(0.7, "pass"), (0.5, "fail")])
def test_the_bonus_in_the_payoff_rows_must_be_the_sweeps_best_on_validation(tuned, verdict):
    lm, _ = _bases([True, True])
    validation = {"entropy_bonus_0.01": 0.6, "entropy_bonus_0.3": tuned, "entropy_bonus_2": 0.4}
    for method, accuracy in validation.items():
        runs = [
            r for r in lm["grpo"] if method == "entropy_bonus_0.3" or (r.base, r.seed) == (0, 0)
        ]
        lm[method] = []
        for run in runs:
            rows = [dict(row) for row in run.rows]
            rows[-1]["val_accuracy_greedy"] = accuracy
            lm[method].append(
                Run(method, run.seed, rows, run.summary, run.evaluation, run.greedy, run.base)
            )
    methods = {"grpo": {"loss": "grpo"}, "clip_cov": {"loss": "clip_cov"}}
    methods |= {m: {"loss": "entropy_bonus", "loss_config": {"coef": float(m.split("_")[-1])}}
                for m in validation}  # fmt: skip
    checks = {
        c["check"]: c for c in acceptance_checks(lm, analyze_study(lm, methods), {}, methods, {})
    }
    chosen = [c for c in checks.values() if c["claim"] == "bonus_chosen"]
    assert [c["verdict"] for c in chosen] == [verdict]
    assert chosen[0]["value"] == pytest.approx(tuned - 0.6) and "over 1 run" in chosen[0]["detail"]
    # the full-design bonus is compared with GRPO like Clip-Cov; the sweep's ends are not
    payoffs = [c["check"] for c in checks.values() if c["claim"] == "payoff"]
    assert any("entropy_bonus_0.3" in p for p in payoffs) and not any("_2'" in p for p in payoffs)


def test_every_method_is_compared_with_grpo_with_intervals_and_three_state_verdicts():
    """The comparison table pairs each method with GRPO on the same base model and seed: a method
    that pays on every base is above GRPO with its entropy kept; one that pays on half the bases
    stays inconclusive; the markdown carries each interval and verdict."""
    from entropy_rl.analysis.study import comparison_table
    from entropy_rl.report import comparison_markdown

    lm, _ = _bases([True, True, True, True])
    split, _ = _bases([True, False, True, False])
    lm["split"] = split["clip_cov"]
    for run in lm["split"]:
        run.method = "split"
    methods = {"grpo": {"loss": "grpo"}, "clip_cov": {"loss": "clip_cov"}, "split": {"loss": "x"}}
    rows = {r["method"]: r for r in comparison_table(lm, methods, "grpo")}
    assert set(rows) == {"clip_cov", "split"}  # GRPO is the reference, not a row
    pays, half = rows["clip_cov"], rows["split"]
    assert pays["runs"] == 8 and pays["bases"] == 4
    assert pays["entropy_ratio"]["estimate"] == pytest.approx(4.0)
    assert pays["entropy_verdict"] == "pass" and pays["greedy_verdict"] == "pass"
    assert pays["greedy_diff"]["lo"] > 0 and pays["passk_diff"]["estimate"] == pytest.approx(0.25)
    assert pays["k"] == 64
    assert half["greedy_verdict"] == "inconclusive"
    assert half["greedy_diff"]["lo"] < 0 < half["greedy_diff"]["hi"]
    table = comparison_markdown(list(rows.values()))
    verdicts, accuracies = table.strip().split("\n\n")
    lo, hi = pays["greedy_diff"]["lo"], pays["greedy_diff"]["hi"]
    assert (
        f"| clip_cov | 8 | 4.000 (4.000 to 4.000) | pass | +{pays['greedy_diff']['estimate']:.3f} "
        f"(+{lo:.3f} to +{hi:.3f}) | pass |" in verdicts
    )
    assert "| split | 8 |" in verdicts and "| inconclusive |" in verdicts
    assert "held-out pass@64 − GRPO's" in accuracies.splitlines()[0]
    assert "| clip_cov | " in accuracies and "| n/a |" in accuracies  # no hard family here
    # a method that lost GRPO's runs (none paired) has no row; nothing evaluated: no table
    assert comparison_table({"grpo": lm["grpo"], "other": []}, methods, "grpo") == []
    assert comparison_markdown([]) == ""


def test_the_findings_say_the_runs_numbers_and_what_does_not_hold():
    """tables/findings.md, the front page's sentences: each number is an acceptance or comparison
    row's estimate as its table prints it, with its interval and verdict; the failing rows are
    named, and a sentence whose rows the run lacks is left out."""
    from entropy_rl.analysis.study import comparison_table
    from entropy_rl.report import acceptance_markdown, comparison_markdown, findings_markdown

    lm, _ = _bases([True, True, True, True])
    methods = {"grpo": {"loss": "grpo"}, "clip_cov": {"loss": "clip_cov"}}
    checks = acceptance_checks(lm, analyze_study(lm, methods), {}, methods, {})
    comparison = comparison_table(lm, methods, "grpo")
    text = findings_markdown(checks, comparison, "Some CPU (avx2)")
    assert text.startswith("On Some CPU (avx2): ") and "acceptance rows" in text
    ratio = comparison[0]["entropy_ratio"]
    assert f"clip_cov: {ratio['estimate']:.3f} ({ratio['lo']:.3f} to" in text
    # Clip-Cov pays on every base model here
    assert "shown above GRPO's" in text and "(95% interval " in text
    # every decimal in the sentences is one the included tables print
    tables = acceptance_markdown(checks) + comparison_markdown(comparison)
    numbers = set(re.findall(r"\d+\.\d{3}", text))
    assert numbers and numbers <= set(re.findall(r"\d+\.\d{3}", tables)), numbers
    failing = [c["check"] for c in checks if c["verdict"] == "fail"]
    for name in failing:
        assert name in text
    # the failing rows are counted before they are named, so that the verdict reads for all of them
    lead = "**What does not hold here**: "
    assert lead + (f"{len(failing)} row" if failing else "no row fails") in text, text
    # without the law's or the mechanism's rows, their sentences are left out
    text = findings_markdown(
        [c for c in checks if c["claim"] not in ("law_r2", "lemma1_r")], [], "X"
    )
    assert "The law" not in text and "The mechanism" not in text and "Against GRPO" not in text


def test_the_map_draws_every_method_with_interval_bars_and_the_law_through_grpo(tmp_path):
    import matplotlib.image

    from entropy_rl.plots.study import plot_interventions

    stat = {"estimate": 0.5, "lo": 0.4, "hi": 0.6}
    points = [
        {"method": "grpo", "x": {"estimate": 0.01, "lo": 0.008, "hi": 0.012}, "y": stat},
        {"method": "clip_cov", "x": {"estimate": 0.05, "lo": 0.03, "hi": 0.07}, "y": stat},
    ]
    with_law = plot_interventions(
        {"lm": (points, "accuracy", {"a": 0.2, "b": 0.7}), "tab": ([], "accuracy", None)},
        tmp_path / "map",
    )
    plot_interventions(
        {"lm": (points, "accuracy", None), "tab": ([], "accuracy", None)}, tmp_path / "bare"
    )
    assert {p.suffix for p in with_law} == {".png", ".pdf"}
    drawn = matplotlib.image.imread(tmp_path / "map.png")
    bare = matplotlib.image.imread(tmp_path / "bare.png")
    assert drawn.shape == bare.shape and not np.array_equal(drawn, bare)  # the law's curve


def test_the_mechanism_table_tells_a_covariance_driven_objective_from_one_moved_by_other_terms():
    """Lemma 1 holds for any update; the advantage's covariance predicts the entropy change only
    where the policy gradient is what moves the logits."""
    from entropy_rl.report import mechanism_markdown

    rng = np.random.default_rng(0)
    cov = rng.uniform(0.1, 1.0, 40)
    other = rng.normal(0.0, 1.0, 40)  # a term that moves the entropy independently of A

    def rows(change: np.ndarray) -> list[dict]:
        return [
            {"step": i, "entropy": 1.0 - 0.01 * i, "accuracy": 0.5, "cov_mean": float(c),
             "entropy_change": float(d), "entropy_change_predicted": float(d) * 1.01}
            for i, (c, d) in enumerate(zip(cov, change, strict=True))
        ]  # fmt: skip

    driven = summarize_run(rows(-0.01 * cov))
    mixed = summarize_run(rows(-0.01 * cov + 0.05 * other))
    assert driven["entropy_cov_corr"] == pytest.approx(1.0)
    assert driven["entropy_change_corr"] == pytest.approx(1.0)
    assert mixed["entropy_change_corr"] == pytest.approx(1.0) and mixed["entropy_cov_corr"] < 0.5
    lm = {m: [Run(m, 0, rows(d), summarize_run(rows(d)))] for m, d in
          (("grpo", -0.01 * cov), ("entropy_bonus", -0.01 * cov + 0.05 * other))}  # fmt: skip
    analysis = analyze_study(lm, {"grpo": {"loss": "grpo"}, "entropy_bonus": {"loss": "x"}})
    table = mechanism_markdown({"tabular": analysis["methods"], "toy LM": {}})
    assert table.splitlines()[0] == (
        "| method | tabular: Lemma 1 r, pooled | tabular: r with −Cov(log π, A), mean of runs | "
        "toy LM: Lemma 1 r, pooled | toy LM: r with −Cov(log π, A), mean of runs |"
    )
    assert "| grpo | 1.000 | 1.000 | n/a | n/a |" in table
    assert f"| entropy_bonus | 1.000 | {mixed['entropy_cov_corr']:.3f} | n/a | n/a |" in table
