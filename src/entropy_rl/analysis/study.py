"""The study's numbers: runs collected from ``results/``, the law, the method table, and the
science-acceptance checks of docs/design.md with pass/fail against their targets."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from entropy_rl.analysis.claims import CLAIMS
from entropy_rl.analysis.law import (
    compare_with_line,
    early_fit_prediction,
    fit_law,
    law_coefficients,
)
from entropy_rl.analysis.runs import pearson, summarize_run
from entropy_rl.analysis.stats import binomial_interval, cluster_bootstrap, hierarchical_bootstrap
from entropy_rl.config import BASE_DIR, LM_RUN_DIR, TABULAR_RUN_DIR
from entropy_rl.io import read_jsonl, read_metrics

__all__ = [
    "Run",
    "Study",
    "acceptance_checks",
    "analyze_study",
    "base_table_row",
    "comparison_table",
    "eval_value",
    "greedy_difference",
    "load_runs",
    "load_study",
    "method_table",
    "methods_with_loss",
    "paired_statistic",
    "run_statistic",
]


T = TypeVar("T")


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
    base: int = 0  # the base model it started from (its SFT seed)


def load_runs(
    root: Path, methods: dict[str, list[tuple[int, int]]], layout: str = LM_RUN_DIR
) -> dict[str, list[Run]]:
    """Each method's runs, ``{method: [(base, seed), ...]}``, from ``root/<layout>`` (the
    :data:`~entropy_rl.config.LM_RUN_DIR` or ``TABULAR_RUN_DIR`` template):
    ``metrics.jsonl``, ``summary.json`` and, where evaluated, ``eval/summary.json``."""
    runs: dict[str, list[Run]] = {}
    for method, pairs in methods.items():
        for base, seed in pairs:
            folder = Path(root) / layout.format(method=method, base=base, seed=seed)
            rows = read_metrics(folder / "metrics.jsonl")
            evaluation = folder / "eval" / "summary.json"
            greedy = folder / "eval" / "samples" / "heldout_greedy.jsonl"
            runs.setdefault(method, []).append(
                Run(
                    method=method,
                    seed=seed,
                    base=base,
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
    """One row per method: mean ± std over its runs (base models × seeds) of the final entropy
    and accuracies."""
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


def base_table_row(evaluations: list[dict[str, Any]]) -> dict[str, Any]:
    """The base models as a row of the method table: their held-out and OOD accuracies, mean ± std
    over base models (they have no training run, so no entropy columns)."""
    row: dict[str, Any] = {
        "method": "base", "loss": "(SFT)", "loss_config": {}, "seeds": len(evaluations),
    }  # fmt: skip

    def put(name: str, values: list[Any]) -> None:
        if values and all(v is not None for v in values):
            row[name] = _mean_std([float(v) for v in values])

    k = _largest_k(evaluations[0])
    put("heldout_pass@1", [e.get("heldout", {}).get("pass@1") for e in evaluations])
    if k > 1:
        put(f"heldout_pass@{k}", [e.get("heldout", {}).get(f"pass@{k}") for e in evaluations])
    put("heldout_greedy", [e.get("heldout_greedy", {}).get("pass@1") for e in evaluations])
    families = evaluations[0].get("heldout_greedy", {}).get("family_pass@1", {})
    for family in families:
        put(f"heldout_greedy_{family}",
            [e.get("heldout_greedy", {}).get("family_pass@1", {}).get(family) for e in evaluations])  # fmt: skip
    put("ood_pass@1", [e.get("ood", {}).get("pass@1") for e in evaluations])
    return row


def _pairs(runs: dict[str, list[Run]], method: str, reference: str) -> list[tuple[Run, Run]]:
    """``(method's run, reference's run)`` for every base model and seed both ran: the paired
    comparison every between-method row makes."""
    by_run = {(r.base, r.seed): r for r in runs[reference]}
    return [(r, by_run[(r.base, r.seed)]) for r in runs[method] if (r.base, r.seed) in by_run]


def _by_base(items: Iterable[tuple[int, T]]) -> list[list[T]]:
    """``[(base, item), ...]`` → the items grouped by base model, in base order (the bootstraps'
    input: base models, then seeds within each)."""
    groups: dict[int, list[T]] = {}
    for base, item in items:
        groups.setdefault(base, []).append(item)
    return [groups[b] for b in sorted(groups)]


def _finite_by_base(values: list[tuple[int, float]]) -> list[list[float]]:
    return _by_base((b, float(v)) for b, v in values if np.isfinite(v))


NAN_STAT = {
    "estimate": float("nan"),
    "lo": float("nan"),
    "hi": float("nan"),
    "bases": 0,
    "seeds": 0,
}


def run_statistic(values: list[tuple[int, float]]) -> dict[str, float]:
    """The mean of a per-run number over base models and seeds (every base counts equally), with
    its hierarchical bootstrap 95% interval (:func:`~entropy_rl.analysis.stats.hierarchical_bootstrap`);
    ``values`` are ``(base, value)`` per run. No runs: NaN."""
    groups = _finite_by_base(values)
    return hierarchical_bootstrap(groups) if groups else dict(NAN_STAT)


def ratio_statistic(
    runs: dict[str, list[Run]], method: str, reference: str, key: str = "entropy_late"
) -> dict[str, float]:
    """``method``'s ``key`` over ``reference``'s on the same base model and seed, averaged over
    base models and seeds, with its hierarchical bootstrap interval."""
    return run_statistic(
        [(r.base, r.summary[key] / o.summary[key]) for r, o in _pairs(runs, method, reference)
         if o.summary[key] > 0]
    )  # fmt: skip


def greedy_difference(runs: dict[str, list[Run]], method: str, reference: str) -> dict[str, Any]:
    """Held-out greedy accuracy of ``method`` minus ``reference``'s: the paired difference per
    problem on each base model and seed both ran (the problems both answered), averaged over
    base models, seeds and problems, with its hierarchical bootstrap interval that resamples all
    three (:func:`~entropy_rl.analysis.stats.hierarchical_bootstrap`)."""
    pairs = [(r, o) for r, o in _pairs(runs, method, reference) if r.greedy and o.greedy]
    if not pairs:
        return {**NAN_STAT, "problems": 0}
    ids = sorted(set.intersection(*(set(r.greedy) & set(o.greedy) for r, o in pairs)), key=str)
    if not ids:
        return {**NAN_STAT, "problems": 0}
    groups: dict[int, list[list[float]]] = {}
    for r, o in pairs:
        groups.setdefault(r.base, []).append([float(r.greedy[i]) - float(o.greedy[i]) for i in ids])
    return hierarchical_bootstrap([groups[b] for b in sorted(groups)])


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
                prediction = early_fit_prediction(*_law_points([run], accuracy_key, entropy_key))
                early.append({**prediction, "base": run.base, "seed": run.seed})
            except ValueError:
                continue
        if early:
            entry["early_fit"] = {
                "runs": early,
                "mean_abs_final_error": float(np.mean([abs(e["final_error"]) for e in early])),
                "mean_rmse_later": float(np.mean([e["rmse_later"] for e in early])),
            }
        # Lemma 1's r over every check of the method's runs together: the statistic of the
        # acceptance rows and of the entropy-change figure
        entry["lemma1_r_pooled"] = _pooled_r(method_runs)
        entry["entropy_cov_corr"] = _mean_std(
            [r.summary.get("entropy_cov_corr", float("nan")) for r in method_runs]
        )
        entry["cov_positive_frac"] = _mean_std(
            [r.summary["cov_positive_frac"] for r in method_runs]
        )
        result["methods"][method] = entry
    return result


def _interval_text(stat: dict[str, Any]) -> str:
    """``over 4 base models, 8 runs`` (``× 128 problems`` where the statistic resampled them);
    empty for a statistic that does not say what it was computed over."""
    if "bases" not in stat:
        return ""
    bases, runs = stat["bases"], stat.get("seeds", 0)
    text = f"{bases} base model{'s' if bases != 1 else ''}, {runs} run{'s' if runs != 1 else ''}"
    return text + (f" × {stat['problems']} problems" if stat.get("problems", 1) > 1 else "")


def _check(
    claim_id: str,
    value: float | dict[str, Any],
    detail: str = "",
    target: str | None = None,
    verdict: str | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """One acceptance row of claim ``claim_id`` (:data:`~entropy_rl.analysis.claims.CLAIMS`): its
    row name filled with ``fields``, the estimate, its 95% interval, the target and a verdict.

    ``value`` is a statistic (``{"estimate", "lo", "hi", ...}``: the verdict is the claim's on the
    whole interval, :meth:`~entropy_rl.analysis.claims.Claim.verdict`) or a number that has no
    sampling interval (a count by design; its verdict is the claim at that number). ``verdict``
    overrides the verdict where a row combines several claims. ``pass`` is ``verdict == "pass"``."""
    claim = CLAIMS[claim_id]
    if isinstance(value, dict):
        estimate, interval = float(value["estimate"]), [float(value["lo"]), float(value["hi"])]
        where = _interval_text(value)
        detail = "; ".join(part for part in (detail, where) if part)
        found = claim.verdict(*interval)
    else:
        estimate, interval = float(value), None
        found = "pass" if claim.holds(estimate) else "fail"
    if verdict is not None:
        found = verdict
    check = {
        "claim": claim_id,
        "check": claim.row.format(**fields),
        "value": estimate,
        "interval": interval,
        "target": claim.target if target is None else target,
        "verdict": found,
        "pass": found == "pass",
    }
    if detail:
        check["detail"] = detail
    return check


def eval_value(run: Run, split: str, key: str) -> float:
    """``evaluation[split][key]`` of one run (NaN where it has none)."""
    return float(run.evaluation.get(split, {}).get(key, np.nan))


def _heldout(runs: list[Run], split: str, key: str) -> float:
    """Mean over base models (each counted equally) and seeds of ``evaluation[split][key]``, as
    :func:`run_statistic` estimates it, without its interval (NaN where no run has it)."""
    groups = _finite_by_base([(r.base, eval_value(r, split, key)) for r in runs])
    return float(np.mean([np.mean(g) for g in groups])) if groups else float("nan")


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
    held = run_statistic([(r.base, r.summary[key]) for r in runs])
    what = "the 5-step mean entropy" if key == "target_rolling_within_10pct" else "entropy"
    return _check("target_held", held, method=method, world=world, what=what)


def methods_with_loss(spec: dict[str, dict[str, Any]], loss: str) -> list[str]:
    """The methods of a config's ``methods`` entry that use registered loss ``loss``."""
    return [name for name, entry in spec.items() if entry["loss"] == loss]


def _pooled_r(runs: list[Run]) -> float:
    """Pearson r of measured and predicted entropy change over every Lemma-1 check of ``runs``."""
    points = [
        (x["entropy_change"], x["entropy_change_predicted"])
        for run in runs
        for x in run.rows
        if x.get("entropy_change") is not None and x.get("entropy_change_predicted") is not None
    ]
    if not points:
        return float("nan")
    measured, predicted = np.array(points, dtype=float).T
    return pearson(measured, predicted)


def _pooled_law(runs: list[Run], entropy_key: str, what: str) -> float:
    """The law fitted on the pooled points of ``runs``: its R² (``what="r2"``) or its ceiling
    ``b − a`` (NaN where the points cannot be fitted)."""
    try:
        _, entropy, accuracy = _law_points(runs, "val_accuracy", entropy_key)
        a, b, r2 = law_coefficients(entropy, accuracy)
    except ValueError:
        return float("nan")
    return r2 if what == "r2" else b - a


def _collapse_law_mechanism_checks(
    lm: dict[str, list[Run]], lm_analysis: dict[str, Any], grpo: str
) -> list[dict[str, Any]]:
    """The collapse, the law (fit, early prediction, ceiling) and the mechanism on GRPO's runs:
    per-run numbers over base models and seeds, and the pooled ones (the law's fit, Lemma 1's r)
    with an interval that resamples the runs."""
    checks: list[dict[str, Any]] = []
    runs = lm[grpo]
    checks.append(
        _check("entropy_drop_first_third",
               run_statistic([(r.base, r.summary["entropy_drop_first_third"]) for r in runs]))
    )  # fmt: skip
    gains = []
    for r in runs:
        val = [x["val_accuracy"] for x in r.rows if x.get("val_accuracy") is not None]
        gains.append((r.base, val[-1] - val[0] if val else float("nan")))
    checks.append(_check("accuracy_gain", run_statistic(gains)))
    entropy_key = lm_analysis.get("entropy_key", "entropy")
    groups = _by_base((r.base, r) for r in runs)
    line = lm_analysis["methods"][grpo].get("law_line", {})
    r2 = cluster_bootstrap(groups, lambda rs: _pooled_law(rs, entropy_key, "r2"))
    checks.append(
        _check(
            "law_r2",
            r2,
            detail=f"a straight line: R² {line.get('r2_line', float('nan')):.3f}" if line else "",
        )
    )
    early = lm_analysis["methods"][grpo].get("early_fit", {}).get("runs", [])
    checks.append(
        _check("early_fit_error",
               run_statistic([(e["base"], abs(e["final_error"])) for e in early]))
    )  # fmt: skip
    checks.append(_check("lemma1_r", cluster_bootstrap(groups, _pooled_r),
                         detail="pooled over every check of every run"))  # fmt: skip
    checks.append(
        _check("cov_positive",
               run_statistic([(r.base, r.summary["cov_positive_frac"]) for r in runs]))
    )  # fmt: skip
    fewest = min(r.summary["evals_before_half"] for r in runs)
    checks.append(_check("evals_before_half", float(fewest), detail=f"fewest of {len(runs)} runs"))
    ceiling = cluster_bootstrap(groups, lambda rs: _pooled_law(rs, entropy_key, "ceiling"))
    checks.append(
        _check("ceiling", {**ceiling, "estimate": ceiling["hi"]},
               detail=f"b − a = {ceiling['estimate']:.3f}, interval {ceiling['lo']:.3f}–{ceiling['hi']:.3f}")
    )  # fmt: skip
    return checks


def paired_statistic(
    runs: dict[str, list[Run]], method: str, reference: str, split: str, key: str
) -> dict[str, Any]:
    """``method``'s ``evaluation[split][key]`` minus ``reference``'s on the same base model and
    seed, averaged over base models and seeds, with its hierarchical bootstrap interval."""
    return run_statistic(
        [(r.base, eval_value(r, split, key) - eval_value(o, split, key))
         for r, o in _pairs(runs, method, reference)]
    )  # fmt: skip


def comparison_table(
    runs: dict[str, list[Run]], methods: dict[str, dict[str, Any]], reference: str
) -> list[dict[str, Any]]:
    """Every method against ``reference`` (GRPO), paired on the base models and seeds both ran:
    one row each with

    - ``entropy_ratio``: late-run entropy ÷ the reference's (:func:`ratio_statistic`), and its
      verdict on claim ``kept_entropy`` (≥ 2×, decided on the whole 95% interval);
    - ``greedy_diff``: held-out greedy accuracy minus the reference's, per problem
      (:func:`greedy_difference`), and its verdict on claim ``above_grpo`` (interval above 0);
    - ``sampled_diff`` and ``passk_diff``: held-out pass@1 and pass@k (the largest k evaluated)
      minus the reference's (:func:`paired_statistic`);
    - ``learned``: ``(k, n)``, the runs that learn the hard family (:func:`discovery_rate`).

    Every statistic treats base models and seeds as random factors, so a verdict is one a user
    on another machine (another base model) would also reach. Methods with no pair are left
    out."""
    evaluated = [r for r in runs[reference] if r.evaluation]
    k = _largest_k(evaluated[0].evaluation) if evaluated else 0
    table = []
    for method in runs:
        pairs = _pairs(runs, method, reference)
        if method == reference or not pairs:
            continue
        entropy = ratio_statistic(runs, method, reference)
        greedy = greedy_difference(runs, method, reference)
        row: dict[str, Any] = {
            "method": method,
            "loss": methods.get(method, {}).get("loss", method),
            "runs": len(pairs),
            "bases": len({r.base for r, _ in pairs}),
            "entropy_ratio": entropy,
            "entropy_verdict": CLAIMS["kept_entropy"].verdict(entropy["lo"], entropy["hi"]),
            "greedy_diff": greedy,
            "greedy_verdict": CLAIMS["above_grpo"].verdict(greedy["lo"], greedy["hi"]),
            "sampled_diff": paired_statistic(runs, method, reference, "heldout", "pass@1"),
        }
        if k > 1:
            row["k"] = k
            row["passk_diff"] = paired_statistic(runs, method, reference, "heldout", f"pass@{k}")
        learned, n = discovery_rate(runs[method])
        if n:
            row["learned"] = (learned, n)
        table.append(row)
    return table


def _base_value(bases: dict[int, dict[str, Any]], base: int, key: str) -> float:
    return float(bases.get(base, {}).get("heldout", {}).get(key, np.nan))


def payoff_methods(
    methods: dict[str, dict[str, Any]], runs: dict[str, list[Run]], grpo: str
) -> list[str]:
    """The methods the payoff rows compare with GRPO: Clip-Cov's and KL-Cov's, and each entropy
    bonus that runs on every base model and seed GRPO runs on (the coefficient chosen on
    validation; the sweep's other coefficients run on fewer)."""
    covariance = [m for loss in ("clip_cov", "kl_cov") for m in methods_with_loss(methods, loss)]
    full = {(r.base, r.seed) for r in runs[grpo]}
    bonus = [
        m for m in methods_with_loss(methods, "entropy_bonus")
        if {(r.base, r.seed) for r in runs.get(m, [])} >= full
    ]  # fmt: skip
    return covariance + bonus


def _payoff_checks(
    lm: dict[str, list[Run]],
    grpo: str,
    interventions: list[str],
    bases: dict[int, dict[str, Any]],
) -> list[dict[str, Any]]:
    """Headroom, kept entropy, accuracy cost, payoff and boundary of each intervention, each
    paired with GRPO on the same base model and seed."""
    checks: list[dict[str, Any]] = []
    sampled = {m: _heldout(lm[m], "heldout", "pass@1") for m in lm}
    k = _largest_k(lm[grpo][0].evaluation)
    key = f"pass@{k}"
    if bases and k > 1:
        headroom = run_statistic(
            [(r.base, _base_value(bases, r.base, key) - eval_value(r, "heldout_greedy", "pass@1"))
             for r in lm[grpo]]
        )  # fmt: skip
        base_k = np.mean([_base_value(bases, b, key) for b in bases])
        checks.append(
            _check("headroom", headroom, k=k,
                   detail=f"base pass@{k} {base_k:.3f}, GRPO greedy {_heldout(lm[grpo], 'heldout_greedy', 'pass@1'):.3f}")
        )  # fmt: skip
    payoffs = []
    greedy = {m: _heldout(lm[m], "heldout_greedy", "pass@1") for m in lm}
    for method in interventions:
        rows = _payoff_rows(lm, method, grpo, sampled[method] - sampled[grpo])
        checks.extend(rows)
        payoffs.append((method, rows[-1]["verdict"]))
    if payoffs:
        verdicts = [v for _, v in payoffs]
        either = (
            "pass"
            if "pass" in verdicts
            else "fail"
            if set(verdicts) == {"fail"}
            else "inconclusive"
        )
        checks.append(
            _check("payoff_any", float(verdicts.count("pass")), verdict=either,
                   detail=", ".join(m for m, v in payoffs if v == "pass") or "none")
        )  # fmt: skip
    if bases and k > 1 and interventions:
        grpo_k = _heldout(lm[grpo], "heldout", key)
        base_k = float(np.mean([_base_value(bases, b, key) for b in bases]))
        boundary = run_statistic(
            [(r.base, eval_value(r, "heldout", key) - _base_value(bases, r.base, key)) for r in lm[grpo]]
        )  # fmt: skip
        checks.append(
            _check("boundary_grpo", boundary, key=key,
                   detail=f"GRPO {grpo_k:.3f}, base {base_k:.3f}")
        )  # fmt: skip
        best = max(interventions, key=lambda m: greedy[m])
        best_k = _heldout(lm[best], "heldout", key)
        widened = paired_statistic(lm, best, grpo, "heldout", key)
        checks.append(
            _check("boundary_intervention", widened, method=best, key=key,
                   detail=f"{best} {best_k:.3f}, GRPO {grpo_k:.3f}")
        )  # fmt: skip
    return checks


def _payoff_rows(
    lm: dict[str, list[Run]], method: str, grpo: str, sampled_gain: float
) -> list[dict[str, Any]]:
    """An intervention's kept-entropy, accuracy-cost and payoff rows, paired with GRPO. The
    payoff passes at the claimed gain with the whole interval above 0 and the entropy kept; it
    fails when the whole interval is under the claimed gain or the entropy is shown not kept."""
    kept = _check("kept_entropy", ratio_statistic(lm, method, grpo), method=method)
    boot = greedy_difference(lm, method, grpo)
    if (
        CLAIMS["payoff"].holds(boot["estimate"])
        and CLAIMS["payoff_interval"].holds(boot["lo"])
        and kept["verdict"] == "pass"
    ):
        verdict = "pass"
    elif not CLAIMS["payoff"].holds(boot["hi"]) or kept["verdict"] == "fail":
        verdict = "fail"
    else:
        verdict = "inconclusive"
    return [
        kept,
        _check("accuracy_cost", boot, method=method),
        _check("payoff", boot, verdict=verdict, method=method,
               detail=f"sampled pass@1 {sampled_gain:+.3f}"),
    ]  # fmt: skip


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
        bases = len({r.base for r in lm[method]})
        stat = {"estimate": k / n, "lo": lo, "hi": hi}
        checks.append(
            _check(claim, stat, method=method,
                   detail=f"{k} of {n} runs on {bases} base model{'s' if bases != 1 else ''}; "
                   "exact binomial interval")
        )  # fmt: skip
    return checks


def _final_validation(run: Run) -> float:
    """The last greedy validation accuracy a run logged in training (NaN if none)."""
    values = [
        r["val_accuracy_greedy"] for r in run.rows if r.get("val_accuracy_greedy") is not None
    ]
    return float(values[-1]) if values else float("nan")


def _bonus_chosen_checks(
    lm: dict[str, list[Run]], bonus: list[str], chosen: list[str]
) -> list[dict[str, Any]]:
    """Each entropy bonus in the payoff rows was the sweep's best on the validation split: its final
    greedy validation accuracy against every other coefficient's, on the base models and seeds
    every coefficient ran (a selection, so an exact row)."""
    checks: list[dict[str, Any]] = []
    if not bonus or not chosen:
        return checks
    shared = set.intersection(*({(r.base, r.seed) for r in lm[m]} for m in bonus))
    for method in chosen:
        others = [m for m in bonus if m != method]
        if not shared or not others:
            continue

        def score(m: str) -> float:
            return float(
                np.mean([_final_validation(r) for r in lm[m] if (r.base, r.seed) in shared])
            )

        best = max(others, key=score)
        checks.append(
            _check("bonus_chosen", score(method) - score(best), method=method,
                   detail=f"{score(method):.3f} against {best}'s {score(best):.3f} over "
                   f"{len(shared)} run{'s' if len(shared) != 1 else ''}")
        )  # fmt: skip
    return checks


def _bonus_checks(lm: dict[str, list[Run]], grpo: str, bonus: list[str]) -> list[dict[str, Any]]:
    """The entropy bonus's two failure modes: its smallest and largest coefficients (``bonus``
    sorted by coefficient)."""
    checks: list[dict[str, Any]] = []
    if len(bonus) >= 2:
        low, high = bonus[0], bonus[-1]
        checks.append(_check("bonus_small", ratio_statistic(lm, low, grpo), method=low))
        rises = run_statistic(
            [(r.base, r.summary["entropy_late"] / r.summary["entropy_initial"]) for r in lm[high]]
        )
        cost = paired_statistic(lm, high, grpo, "heldout", "pass@1")
        large, costly = CLAIMS["bonus_large"], CLAIMS["bonus_large_cost"]
        verdicts = {large.verdict(rises["lo"], rises["hi"]), costly.verdict(cost["lo"], cost["hi"])}
        either = (
            "pass" if "pass" in verdicts else "fail" if verdicts == {"fail"} else "inconclusive"
        )
        checks.append(
            _check("bonus_large", rises, verdict=either, method=high,
                   target=f"{large.target}, or held-out accuracy falls by > {-costly.threshold:g}",
                   detail=f"held-out pass@1 minus GRPO's {cost['estimate']:+.3f}")
        )  # fmt: skip
    return checks


def _tabular_checks(
    tabular: dict[str, list[Run]], tabular_losses: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    """The tabular world: collapse, Lemma 1 and the covariance interventions' kept entropy."""
    checks: list[dict[str, Any]] = []
    if tabular:
        tgrpo = methods_with_loss(tabular_losses, "grpo")[0]
        t = tabular[tgrpo]
        checks.append(
            _check("tabular_entropy_drop",
                   run_statistic([(r.base, r.summary["entropy_drop_frac"]) for r in t]))
        )  # fmt: skip
        checks.append(  # pooled, as the language model's row and the figure's panel
            _check("tabular_lemma1_r", cluster_bootstrap(_by_base((r.base, r) for r in t), _pooled_r),
                   detail="pooled over every step of every run")
        )  # fmt: skip
        for loss in ("clip_cov", "kl_cov"):
            for method in methods_with_loss(tabular_losses, loss):
                ratio = ratio_statistic(tabular, method, tgrpo)
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
    bases: dict[int, dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """The science acceptance of docs/design.md: each row's estimate, 95% interval, target and
    three-state verdict (pass, fail, inconclusive). Methods are found by their registered loss;
    ``methods`` maps a method name to its ``{loss, loss_config}`` entry of the config; ``bases``
    maps each base model (SFT seed) to its evaluation summary (the headroom and boundary rows)."""
    bases = bases or {}
    grpo = methods_with_loss(methods, "grpo")[0]
    compared = payoff_methods(methods, lm, grpo)
    covariance = [m for m in compared if methods[m]["loss"] in ("clip_cov", "kl_cov")]
    checks = _collapse_law_mechanism_checks(lm, lm_analysis, grpo)
    checks += _payoff_checks(lm, grpo, compared, bases)
    checks += _discovery_checks(lm, grpo, covariance)
    for method in methods_with_loss(methods, "entropy_target"):
        checks.append(_target_check(lm[method], method, "target_rolling_within_10pct", "LM"))
    bonus = sorted(
        methods_with_loss(methods, "entropy_bonus"),
        key=lambda m: float(methods[m].get("loss_config", {}).get("coef", 0)),
    )
    checks += _bonus_checks(lm, grpo, bonus)
    checks += _bonus_chosen_checks(lm, bonus, [m for m in compared if m in bonus])
    checks += _tabular_checks(tabular, tabular_methods)
    return checks


@dataclass
class Study:
    """A pipeline run's runs and analyses: the language-model (``lm``) and tabular (``tab``) runs
    by method, their analyses, the acceptance checks, the first base model's evaluation (or None),
    the config's method entries of each world, and every base model's evaluation by SFT seed."""

    lm: dict[str, list[Run]]
    tab: dict[str, list[Run]]
    lm_analysis: dict[str, Any]
    tab_analysis: dict[str, Any]
    checks: list[dict[str, Any]]
    base: dict[str, Any] | None
    lm_spec: dict[str, dict[str, Any]]
    tab_spec: dict[str, dict[str, Any]]
    bases: dict[int, dict[str, Any]] = field(default_factory=dict)  # by SFT seed


def load_study(config: dict[str, Any], results: Path) -> Study:
    """Load and analyse the runs a pipeline config names under ``results`` (results/<profile>)."""
    from entropy_rl.config import base_seeds, lm_runs, method_seeds

    lm_spec = config["train"]["methods"]
    tab_spec = config["tabular"]["methods"]
    lm = load_runs(results / config["model_name"], lm_runs(config))
    tabular_runs = {
        m: [(0, s) for s in seeds]
        for m, seeds in method_seeds(tab_spec, config["tabular"]["seeds"]).items()
    }
    tab = load_runs(results / "tabular", tabular_runs, TABULAR_RUN_DIR)
    lm_analysis = analyze_study(lm, lm_spec)
    # every method against GRPO (held-out evaluations: the language model's runs only)
    lm_analysis["comparison"] = comparison_table(lm, lm_spec, methods_with_loss(lm_spec, "grpo")[0])
    tab_analysis = analyze_study(tab, tab_spec, accuracy_key="accuracy")
    bases = {}
    for b in base_seeds(config):
        path = results / config["model_name"] / BASE_DIR.format(base=b) / "eval" / "summary.json"
        if path.exists():
            bases[b] = json.loads(path.read_text())
    checks = acceptance_checks(lm, lm_analysis, tab, lm_spec, tab_spec, bases=bases)
    if bases:  # the base models' accuracies head the method table (not its plots)
        lm_analysis["base_row"] = base_table_row(list(bases.values()))
    base = next(iter(bases.values()), None)
    return Study(lm, tab, lm_analysis, tab_analysis, checks, base, lm_spec, tab_spec, bases)
