"""Draw every study figure a pipeline config has (the registry: :mod:`entropy_rl.figures`) from
its runs and analyses (:class:`entropy_rl.analysis.study.Study`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from entropy_rl.analysis.study import Run, Study, eval_value, methods_with_loss, run_statistic
from entropy_rl.figures import figure_names
from entropy_rl.plots.study import (
    plot_collapse,
    plot_covariance,
    plot_entropy_bonus_sweep,
    plot_entropy_change,
    plot_entropy_target,
    plot_interventions,
    plot_law,
    plot_methods,
    plot_pass_at_k,
    plot_runs,
)

__all__ = ["draw_study_figures"]


def _map_points(runs: dict[str, list[Run]], accuracy: Callable[[Run], float]) -> list[dict]:
    """Each method's point on the interventions map: its late-run entropy and ``accuracy(run)``,
    each a mean over base models and seeds with its hierarchical bootstrap 95% interval
    (:func:`~entropy_rl.analysis.study.run_statistic`); a method without both is left out."""
    points = []
    for method, method_runs in runs.items():
        x = run_statistic([(r.base, float(r.summary["entropy_late"])) for r in method_runs])
        y = run_statistic([(r.base, accuracy(r)) for r in method_runs])
        if np.isfinite(x["estimate"]) and np.isfinite(y["estimate"]):
            points.append({"method": method, "x": x, "y": y})
    return points


def draw_study_figures(config: dict[str, Any], study: Study, figures: Path) -> None:
    """The ``analyze`` stage's figures under ``figures``: methods by their registered loss, GRPO
    the reference; a figure the config does not have (no entropy_target method) is not drawn,
    and a stale file of it from an earlier config is removed."""
    lm, tab, base = study.lm, study.tab, study.base
    lm_analysis, tab_analysis = study.lm_analysis, study.tab_analysis
    spec, tab_spec = study.lm_spec, study.tab_spec
    grpo = methods_with_loss(spec, "grpo")[0]
    plot_collapse(lm[grpo], figures / "collapse_grpo")
    grpo_fit = lm_analysis["methods"][grpo]
    plot_law(
        lm[grpo], grpo_fit.get("law"), figures / "law_grpo",
        failure=grpo_fit.get("law_error", ""), line=grpo_fit.get("law_line"),
        entropy_key=lm_analysis["entropy_key"],
    )  # fmt: skip
    main_methods = {m: lm[m] for m in lm if spec[m]["loss"] != "entropy_bonus"}
    plot_covariance(main_methods, figures / "covariance")
    world = f"{config['profile']} profile's toy language model"
    plot_methods(main_methods, figures / "methods", world=world)
    sweep = {m: lm[m] for m in lm if spec[m]["loss"] in ("entropy_bonus", "grpo")}
    coefs = {m: float(spec[m].get("loss_config", {}).get("coef", 0.0)) for m in sweep}
    plot_entropy_bonus_sweep(sweep, coefs, figures / "entropy_bonus_sweep")
    tab_grpo = methods_with_loss(tab_spec, "grpo")[0]
    plot_entropy_change(
        {"toy language model (probe batch)": lm[grpo], "tabular simulator": tab[tab_grpo]},
        figures / "entropy_change",
    )
    pass_curves = {"base": list(study.bases.values()) or [base]} if base else {}
    pass_curves.update(
        {m: [r.evaluation for r in lm[m]] for m in lm if all(r.evaluation for r in lm[m])}
    )
    plot_pass_at_k(pass_curves, figures / "pass_at_k")
    plot_runs(lm, figures / "runs")
    plot_methods(
        {m: tab[m] for m in tab if tab_spec[m]["loss"] != "entropy_bonus"},
        figures / "tabular_methods",
        accuracy_key="accuracy",
        world=f"{config['profile']} profile's tabular simulator",
    )
    if "law" in tab_analysis["methods"][tab_grpo]:
        plot_law(
            tab[tab_grpo],
            tab_analysis["methods"][tab_grpo]["law"],
            figures / "tabular_law",
            accuracy_key="accuracy",
        )
    plot_interventions(
        {
            "toy language model": (
                _map_points(lm, lambda r: eval_value(r, "heldout", "pass@1")),
                "held-out pass@1 (final policy, sampled)",
                lm_analysis["methods"][grpo].get("law"),
            ),
            "tabular simulator": (
                _map_points(tab, lambda r: float(r.summary["accuracy_final"])),
                "expected accuracy (final policy, exact)",
                tab_analysis["methods"][tab_grpo].get("law"),
            ),
        },
        figures / "interventions",
    )
    if "entropy_target" in figure_names(config, "analyze"):
        targets = {
            "toy language model": (
                {m: lm[m] for m in methods_with_loss(spec, "entropy_target")},
                lm[grpo],
            ),
            "tabular simulator": (
                {m: tab[m] for m in methods_with_loss(tab_spec, "entropy_target")},
                tab[tab_grpo],
            ),
        }
        plot_entropy_target(targets, figures / "entropy_target")
    else:  # no figure (nor a stale one from an earlier config) for a controller that did not run
        for ext in (".png", ".pdf"):
            (figures / f"entropy_target{ext}").unlink(missing_ok=True)
