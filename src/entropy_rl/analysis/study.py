"""The study's numbers: runs collected from ``results/``, the law, the method table, and the
science-acceptance checks of docs/design.md with pass/fail against their targets."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from entropy_rl.analysis.claims import CLAIMS
from entropy_rl.analysis.law import compare_with_line, early_fit_prediction, fit_law
from entropy_rl.analysis.runs import summarize_run
from entropy_rl.analysis.stats import binomial_interval, paired_bootstrap
from entropy_rl.io import read_jsonl, read_metrics

__all__ = [
    "Run",
    "Study",
    "acceptance_checks",
    "analyze_study",
    "base_table_row",
    "greedy_difference",
    "load_runs",
    "load_study",
    "method_table",
    "methods_with_loss",
]


@dataclass
class Run:
    """One run: its metrics rows, its summary and (LM runs) its evaluation summary and greedy
    held-out correctness per problem id."""

    method: str
    seed: int
    rows: list[dict[str, Any]]
    summary: dict[str, Any]
    evaluation: dict[str, Any] = field(default_factory=dict)
    greedy: dict[Any, bool] = field(default_factory=dict)


def load_runs(root: Path, methods: dict[str, list[int]]) -> dict[str, list[Run]]:
    """``root/<method>/seed<k>/{metrics.jsonl, summary.json[, eval/summary.json]}`` for each method."""
    runs: dict[str, list[Run]] = {}
    for method, seeds in methods.items():
        for seed in seeds:
            folder = Path(root) / method / f"seed{seed}"
            rows = read_metrics(folder / "metrics.jsonl")
            evaluation = folder / "eval" / "summary.json"
            greedy = folder / "eval" / "samples" / "heldout_greedy.jsonl"
            runs.setdefault(method, []).append(
                Run(
                    method=method,
                    seed=seed,
                    rows=rows,
                    summary=summarize_run(rows),
                    evaluation=json.loads(evaluation.read_text()) if evaluation.exists() else {},
                    greedy={
                        row["id"]: bool(row["correct"])
                        for row in (read_jsonl(greedy) if greedy.exists() else [])
                    },
                )
            )
    return runs


def law_entropy_key(runs: dict[str, list[Run]], accuracy_key: str) -> str:
    """The entropy the law is fitted on: ``val_entropy``, the policy's entropy on the validation
    problems whose accuracy is measured (the same responses), wherever every evaluated row has it;
    else ``entropy``, the rollout batch's (an engine that reports no validation entropy, the
    tabular world's exact entropy). The rollout batch's prompt mix changes every step, which at a
    small batch makes its entropy a noisy x for the fit (docs/law.md)."""
    rows = [r for group in runs.values() for run in group for r in run.rows]
    evaluated = [r for r in rows if r.get(accuracy_key) is not None]
    if evaluated and all(r.get("val_entropy") is not None for r in evaluated):
        return "val_entropy"
    return "entropy"


def _law_points(
    runs: list[Run], accuracy_key: str, entropy_key: str = "entropy"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    points = [
        (r["step"], r[entropy_key], r[accuracy_key])
        for run in runs
        for r in run.rows
        if r.get(accuracy_key) is not None
    ]
    if not points:
        raise ValueError(f"no metrics row has {accuracy_key!r}; enable evaluation during training")
    steps, entropy, accuracy = (
        np.array(column, dtype=float) for column in zip(*points, strict=True)
    )
    return steps, entropy, accuracy


def _mean_std(values: list[float]) -> dict[str, float]:
    array = np.array(values, dtype=float)
    return {
        "mean": float(array.mean()),
        "std": float(array.std(ddof=1)) if len(array) > 1 else 0.0,
        "n": len(array),
    }


def method_table(
    runs: dict[str, list[Run]], methods: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    """One row per method: mean ± std over seeds of the final entropy and accuracies."""
    table = []
    for method, method_runs in runs.items():
        spec = methods.get(method, {})
        row: dict[str, Any] = {
            "method": method,
            "loss": spec.get("loss", method),
            "loss_config": spec.get("loss_config", {}),
            "seeds": len(method_runs),
        }
        row["entropy_final"] = _mean_std([r.summary["entropy_final"] for r in method_runs])
        row["entropy_late"] = _mean_std([r.summary["entropy_late"] for r in method_runs])
        row["entropy_drop_frac"] = _mean_std([r.summary["entropy_drop_frac"] for r in method_runs])
        finals = [[x for x in r.rows if x.get("val_accuracy") is not None] for r in method_runs]
        if all(finals):
            row["val_accuracy_final"] = _mean_std([f[-1]["val_accuracy"] for f in finals])
        row["accuracy_final"] = _mean_std([r.summary["accuracy_final"] for r in method_runs])
        if all("entropy_target" in r.summary for r in method_runs):
            row["target_rolling_within_10pct"] = _mean_std(
                [r.summary["target_rolling_within_10pct"] for r in method_runs]
            )
        evaluations = [r.evaluation for r in method_runs]
        if all(evaluations):
            for split, key in (
                ("heldout", "heldout_pass@1"),
                ("heldout_greedy", "heldout_greedy"),
                ("ood", "ood_pass@1"),
            ):
                if all(split in e for e in evaluations):
                    row[key] = _mean_std([e[split]["pass@1"] for e in evaluations])
            if all("heldout" in e for e in evaluations):
                k = _largest_k(evaluations[0])
                row[f"heldout_pass@{k}"] = _mean_std(
                    [e["heldout"][f"pass@{k}"] for e in evaluations]
                )
            families = [e.get("heldout_greedy", {}).get("family_pass@1", {}) for e in evaluations]
            for family in families[0]:  # the carry world's easy and hard
                if all(family in f for f in families):
                    row[f"heldout_greedy_{family}"] = _mean_std([f[family] for f in families])
            if all("benchmark_average" in e for e in evaluations):
                row["benchmark_pass@1"] = _mean_std(
                    [e["benchmark_average"]["pass@1"] for e in evaluations]
                )
        table.append(row)
    return table


def base_table_row(evaluation: dict[str, Any]) -> dict[str, Any]:
    """The base model as a row of the method table: its held-out and OOD accuracies (it has no
    training run, so no entropy columns)."""
    row: dict[str, Any] = {"method": "base", "loss": "(SFT)", "loss_config": {}, "seeds": 1}
    one = {"std": 0.0, "n": 1}
    if "heldout" in evaluation:
        row["heldout_pass@1"] = {"mean": evaluation["heldout"]["pass@1"], **one}
        k = _largest_k(evaluation)
        if k > 1:
            row[f"heldout_pass@{k}"] = {"mean": evaluation["heldout"][f"pass@{k}"], **one}
    if "heldout_greedy" in evaluation:
        greedy = evaluation["heldout_greedy"]
        row["heldout_greedy"] = {"mean": greedy["pass@1"], **one}
        for family, value in greedy.get("family_pass@1", {}).items():
            row[f"heldout_greedy_{family}"] = {"mean": value, **one}
    if "ood" in evaluation:
        row["ood_pass@1"] = {"mean": evaluation["ood"]["pass@1"], **one}
    return row


def _per_seed_ratio(
    runs: dict[str, list[Run]], method: str, reference: str, key: str = "entropy_late"
) -> float:
    """Mean over seeds of ``method``'s ``key`` over ``reference``'s of the same seed."""
    by_seed = {r.seed: r.summary[key] for r in runs[reference]}
    ratios = [
        r.summary[key] / by_seed[r.seed]
        for r in runs[method]
        if r.seed in by_seed and by_seed[r.seed] > 0
    ]
    return float(np.mean(ratios)) if ratios else float("nan")


def greedy_difference(runs: dict[str, list[Run]], method: str, reference: str) -> dict[str, Any]:
    """Held-out greedy accuracy of ``method`` minus ``reference``'s: the mean over the seeds both
    ran and the problems both answered, with its paired bootstrap interval
    (:func:`~entropy_rl.analysis.stats.paired_bootstrap`)."""
    pairs = {r.seed: r for r in runs[reference]}
    treated, control = [], []
    for run in runs[method]:
        other = pairs.get(run.seed)
        if other is None or not run.greedy or not other.greedy:
            continue
        ids = sorted(set(run.greedy) & set(other.greedy), key=str)
        treated.append([run.greedy[i] for i in ids])
        control.append([other.greedy[i] for i in ids])
    if not treated or len({len(t) for t in treated}) != 1:
        nan = float("nan")
        return {"diff": nan, "lo": nan, "hi": nan, "seeds": len(treated)}
    return paired_bootstrap(treated, control)


def analyze_study(
    runs: dict[str, list[Run]],
    methods: dict[str, dict[str, Any]],
    accuracy_key: str = "val_accuracy",
) -> dict[str, Any]:
    """Law fits per method (pooled over seeds), early-fit prediction, Lemma-1 agreement, table.

    The law's entropy is :func:`law_entropy_key`'s, recorded as ``entropy_key``."""
    entropy_key = law_entropy_key(runs, accuracy_key)
    result: dict[str, Any] = {
        "methods": {},
        "table": method_table(runs, methods),
        "accuracy_key": accuracy_key,
        "entropy_key": entropy_key,
    }
    for method, method_runs in runs.items():
        entry: dict[str, Any] = {}
        try:
            _, entropy, accuracy = _law_points(method_runs, accuracy_key, entropy_key)
            entry["law"] = fit_law(entropy, accuracy).to_dict()
            entry["law_line"] = compare_with_line(entropy, accuracy)
            if entropy_key != "entropy":  # what the rollout batch's noisier entropy would give
                _, rollout, _ = _law_points(method_runs, accuracy_key)
                entry["law_r2_rollout_entropy"] = compare_with_line(rollout, accuracy)["r2_law"]
        except ValueError as err:
            entry["law_error"] = str(err)
        early = []
        for run in method_runs:
            try:
                early.append(early_fit_prediction(*_law_points([run], accuracy_key, entropy_key)))
            except ValueError:
                continue
        if early:
            entry["early_fit"] = {
                "runs": early,
                "mean_abs_final_error": float(np.mean([abs(e["final_error"]) for e in early])),
                "mean_rmse_later": float(np.mean([e["rmse_later"] for e in early])),
            }
        entry["entropy_change_corr"] = _mean_std(
            [r.summary["entropy_change_corr"] for r in method_runs]
        )
        entry["cov_positive_frac"] = _mean_std(
            [r.summary["cov_positive_frac"] for r in method_runs]
        )
        result["methods"][method] = entry
    return result


def _check(
    claim_id: str,
    value: float,
    passed: bool | None = None,
    detail: str = "",
    target: str | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """One acceptance row of claim ``claim_id`` (:data:`~entropy_rl.analysis.claims.CLAIMS`):
    its row name filled with ``fields``, the value, the target, and whether the claim holds
    (``passed`` where a row combines several claims)."""
    claim = CLAIMS[claim_id]
    check = {
        "claim": claim_id,
        "check": claim.row.format(**fields),
        "value": value,
        "target": claim.target if target is None else target,
        "pass": claim.holds(value) if passed is None else bool(passed),
    }
    if detail:
        check["detail"] = detail
    return check


def _heldout(runs: list[Run], split: str, key: str) -> float:
    """Mean over seeds of ``evaluation[split][key]`` (NaN where a run has none)."""
    return float(np.mean([r.evaluation.get(split, {}).get(key, np.nan) for r in runs]))


def _largest_k(evaluation: dict[str, Any]) -> int:
    return max(
        (
            int(key.split("@")[1])
            for key in evaluation.get("heldout", {})
            if key.startswith("pass@")
        ),
        default=0,
    )


def _target_check(runs: list[Run], method: str, key: str, world: str) -> dict[str, Any]:
    """The entropy-target controller held its target: share of steps after warm-up within 10%
    (the LM's per-step entropy is a noisy batch estimate, so it is judged on a 5-step mean)."""
    held = float(np.mean([r.summary[key] for r in runs]))
    what = "the 5-step mean entropy" if key == "target_rolling_within_10pct" else "entropy"
    return _check("target_held", held, method=method, world=world, what=what)


def methods_with_loss(spec: dict[str, dict[str, Any]], loss: str) -> list[str]:
    """The methods of a config's ``methods`` entry that use registered loss ``loss``."""
    return [name for name, entry in spec.items() if entry["loss"] == loss]


def _collapse_law_mechanism_checks(
    lm: dict[str, list[Run]], lm_analysis: dict[str, Any], grpo: str
) -> list[dict[str, Any]]:
    """The collapse, the law (fit, early prediction, ceiling) and the mechanism on GRPO's runs."""
    checks: list[dict[str, Any]] = []
    g = [r.summary for r in lm[grpo]]
    checks.append(
        _check(
            "entropy_drop_first_third", float(np.mean([s["entropy_drop_first_third"] for s in g]))
        )
    )
    val = [
        [x["val_accuracy"] for x in r.rows if x.get("val_accuracy") is not None] for r in lm[grpo]
    ]
    checks.append(_check("accuracy_gain", float(np.mean([v[-1] - v[0] for v in val]))))
    law = lm_analysis["methods"][grpo].get("law", {})
    line = lm_analysis["methods"][grpo].get("law_line", {})
    checks.append(
        _check(
            "law_r2",
            law.get("r2", float("nan")),
            detail=f"a straight line: R² {line.get('r2_line', float('nan')):.3f}" if line else "",
        )
    )
    early = lm_analysis["methods"][grpo].get("early_fit", {})
    checks.append(_check("early_fit_error", early.get("mean_abs_final_error", float("nan"))))
    checks.append(_check("lemma1_r", lm_analysis["methods"][grpo]["entropy_change_corr"]["mean"]))
    checks.append(_check("cov_positive", lm_analysis["methods"][grpo]["cov_positive_frac"]["mean"]))
    checks.append(
        _check("evals_before_half", float(min(r.summary["evals_before_half"] for r in lm[grpo])))
    )
    ceiling = law.get("ceiling_ci", (float("nan"), float("nan")))
    checks.append(
        _check(
            "ceiling",
            ceiling[1],
            detail=f"b − a = {law.get('ceiling', float('nan')):.3f}, "
            f"interval {ceiling[0]:.3f}–{ceiling[1]:.3f}",
        )
    )
    return checks


def _payoff_checks(
    lm: dict[str, list[Run]], grpo: str, interventions: list[str], base: dict[str, Any] | None
) -> list[dict[str, Any]]:
    """Headroom, kept entropy, accuracy cost, payoff and boundary of Clip-Cov and KL-Cov."""
    checks: list[dict[str, Any]] = []
    greedy = {m: _heldout(lm[m], "heldout_greedy", "pass@1") for m in lm}
    sampled = {m: _heldout(lm[m], "heldout", "pass@1") for m in lm}
    k = _largest_k(lm[grpo][0].evaluation)
    if base and k > 1:
        base_k = float(base.get("heldout", {}).get(f"pass@{k}", np.nan))
        checks.append(
            _check(
                "headroom",
                base_k - greedy[grpo],
                detail=f"base pass@{k} {base_k:.3f}, GRPO greedy {greedy[grpo]:.3f}",
                k=k,
            )
        )
    payoffs = []
    for method in interventions:
        ratio = _per_seed_ratio(lm, method, grpo)
        checks.append(_check("kept_entropy", ratio, method=method))
        delta = greedy[method] - greedy[grpo]
        checks.append(_check("accuracy_cost", delta, method=method))
        boot = greedy_difference(lm, method, grpo)
        paid = (
            CLAIMS["payoff"].holds(delta)
            and CLAIMS["payoff_interval"].holds(boot["lo"])
            and CLAIMS["kept_entropy"].holds(ratio)
        )
        payoffs.append((method, paid))
        checks.append(
            _check(
                "payoff",
                delta,
                paid,
                detail=f"interval {boot['lo']:+.3f} to {boot['hi']:+.3f} over "
                f"{boot['seeds']} seeds × {boot.get('problems', 0)} problems; sampled pass@1 "
                f"{sampled[method] - sampled[grpo]:+.3f}",
                method=method,
            )
        )
    if payoffs:
        checks.append(
            _check(
                "payoff_any",
                float(sum(paid for _, paid in payoffs)),
                detail=", ".join(m for m, paid in payoffs if paid) or "none",
            )
        )
    if base and k > 1 and interventions:
        key = f"pass@{k}"
        base_k = float(base.get("heldout", {}).get(key, np.nan))
        grpo_k = _heldout(lm[grpo], "heldout", key)
        checks.append(
            _check(
                "boundary_grpo",
                grpo_k - base_k,
                detail=f"GRPO {grpo_k:.3f}, base {base_k:.3f}",
                key=key,
            )
        )
        best = max(interventions, key=lambda m: greedy[m])
        best_k = _heldout(lm[best], "heldout", key)
        checks.append(
            _check(
                "boundary_intervention",
                best_k - grpo_k,
                detail=f"{best} {best_k:.3f}, GRPO {grpo_k:.3f}",
                method=best,
                key=key,
            )
        )
    return checks


DISCOVERY_BAR = 0.5  # a run has learned a family when its greedy accuracy on it ends at least here


def discovery_rate(runs: list[Run], family: str = "hard") -> tuple[int, int]:
    """``(k, n)``: how many of ``runs`` end with held-out greedy accuracy ≥ ``DISCOVERY_BAR`` on
    ``family`` (the carry world's hard problems, which need the path the base model rarely
    takes), out of the runs evaluated on it."""
    accuracies = [
        r.evaluation.get("heldout_greedy", {}).get("family_pass@1", {}).get(family) for r in runs
    ]
    learned = [a >= DISCOVERY_BAR for a in accuracies if a is not None]
    return sum(learned), len(learned)


def _discovery_checks(
    lm: dict[str, list[Run]], grpo: str, interventions: list[str]
) -> list[dict[str, Any]]:
    """The discovery rate of GRPO and of each intervention, with its Clopper–Pearson interval and
    a verdict on the whole interval (where the task has a hard family)."""
    checks = []
    for method in [grpo, *interventions]:
        k, n = discovery_rate(lm[method])
        if not n:
            continue
        lo, hi = binomial_interval(k, n)
        claim = "discovery_grpo" if method == grpo else "discovery"
        verdict = CLAIMS[claim].verdict(lo, hi)
        check = _check(claim, k / n, verdict == "pass", method=method,
                       detail=f"{k} of {n} runs; 95% interval {lo:.2f} to {hi:.2f}")  # fmt: skip
        checks.append({**check, "verdict": verdict, "interval": [lo, hi]})
    return checks


def _bonus_checks(lm: dict[str, list[Run]], grpo: str, bonus: list[str]) -> list[dict[str, Any]]:
    """The entropy bonus's two failure modes: its smallest and largest coefficients (``bonus``
    sorted by coefficient)."""
    checks: list[dict[str, Any]] = []
    if len(bonus) >= 2:
        low, high = bonus[0], bonus[-1]
        checks.append(_check("bonus_small", _per_seed_ratio(lm, low, grpo), method=low))
        rises = float(
            np.mean([r.summary["entropy_late"] / r.summary["entropy_initial"] for r in lm[high]])
        )
        large, cost = CLAIMS["bonus_large"], CLAIMS["bonus_large_cost"]
        checks.append(
            _check(
                "bonus_large",
                rises,
                large.holds(rises)
                or cost.holds(
                    _heldout(lm[high], "heldout", "pass@1")
                    - _heldout(lm[grpo], "heldout", "pass@1")
                ),
                target=f"{large.target}, or held-out accuracy falls by > {-cost.threshold:g}",
                method=high,
            )
        )
    return checks


def _tabular_checks(
    tabular: dict[str, list[Run]], tabular_losses: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    """The tabular world: collapse, Lemma 1 and the covariance interventions' kept entropy."""
    checks: list[dict[str, Any]] = []
    if tabular:
        tgrpo = methods_with_loss(tabular_losses, "grpo")[0]
        t = [r.summary for r in tabular[tgrpo]]
        checks.append(
            _check("tabular_entropy_drop", float(np.mean([s["entropy_drop_frac"] for s in t])))
        )
        checks.append(
            _check("tabular_lemma1_r", float(np.mean([s["entropy_change_corr"] for s in t])))
        )
        for loss in ("clip_cov", "kl_cov"):
            for method in methods_with_loss(tabular_losses, loss):
                ratio = _per_seed_ratio(tabular, method, tgrpo)
                checks.append(_check("tabular_kept_entropy", ratio, method=method))
        for method in methods_with_loss(tabular_losses, "entropy_target"):
            checks.append(_target_check(tabular[method], method, "target_within_10pct", "tabular"))
    return checks


def acceptance_checks(
    lm: dict[str, list[Run]],
    lm_analysis: dict[str, Any],
    tabular: dict[str, list[Run]],
    methods: dict[str, dict[str, Any]],
    tabular_methods: dict[str, dict[str, Any]],
    base: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """The science acceptance of docs/design.md as numbers with pass/fail. Methods are found by their registered loss;
    ``methods`` maps a method name to its ``{loss, loss_config}`` entry of the config; ``base``
    is the base model's evaluation summary (the headroom and boundary rows need it)."""
    grpo = methods_with_loss(methods, "grpo")[0]
    interventions = [m for loss in ("clip_cov", "kl_cov") for m in methods_with_loss(methods, loss)]
    checks = _collapse_law_mechanism_checks(lm, lm_analysis, grpo)
    checks += _payoff_checks(lm, grpo, interventions, base)
    checks += _discovery_checks(lm, grpo, interventions)
    for method in methods_with_loss(methods, "entropy_target"):
        checks.append(_target_check(lm[method], method, "target_rolling_within_10pct", "LM"))
    bonus = sorted(
        methods_with_loss(methods, "entropy_bonus"),
        key=lambda m: float(methods[m].get("loss_config", {}).get("coef", 0)),
    )
    checks += _bonus_checks(lm, grpo, bonus)
    checks += _tabular_checks(tabular, tabular_methods)
    return checks


@dataclass
class Study:
    """A pipeline run's runs and analyses: the language-model (``lm``) and tabular (``tab``) runs
    by method, their analyses, the acceptance checks, the base model's evaluation (or None) and
    the config's method entries of each world."""

    lm: dict[str, list[Run]]
    tab: dict[str, list[Run]]
    lm_analysis: dict[str, Any]
    tab_analysis: dict[str, Any]
    checks: list[dict[str, Any]]
    base: dict[str, Any] | None
    lm_spec: dict[str, dict[str, Any]]
    tab_spec: dict[str, dict[str, Any]]


def load_study(config: dict[str, Any], results: Path) -> Study:
    """Load and analyse the runs a pipeline config names under ``results`` (results/<profile>)."""
    from entropy_rl.config import method_seeds

    lm_spec = config["train"]["methods"]
    tab_spec = config["tabular"]["methods"]
    lm = load_runs(results / config["model_name"], method_seeds(lm_spec, config["seeds"]))
    tab = load_runs(results / "tabular", method_seeds(tab_spec, config["tabular"]["seeds"]))
    lm_analysis = analyze_study(lm, lm_spec)
    tab_analysis = analyze_study(tab, tab_spec, accuracy_key="accuracy")
    base_eval = results / config["model_name"] / "base" / "eval" / "summary.json"
    base = json.loads(base_eval.read_text()) if base_eval.exists() else None
    checks = acceptance_checks(lm, lm_analysis, tab, lm_spec, tab_spec, base=base)
    if base:  # the base model's accuracies head the method table (not its plots)
        lm_analysis["base_row"] = base_table_row(base)
    return Study(lm, tab, lm_analysis, tab_analysis, checks, base, lm_spec, tab_spec)
