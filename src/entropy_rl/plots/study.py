"""Figures of the study, one function each: collapse, the law, covariance, methods, the
entropy-bonus sweep, Lemma 1 in practice, and pass@k. Inputs are ``analysis.study.Run`` lists."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import ticker

from entropy_rl.analysis.law import law
from entropy_rl.plots.style import METHOD_COLORS, new_figure, save

__all__ = [
    "plot_collapse",
    "plot_covariance",
    "plot_entropy_bonus_sweep",
    "plot_entropy_change",
    "plot_entropy_target",
    "plot_interventions",
    "plot_law",
    "plot_methods",
    "plot_pass_at_k",
    "plot_runs",
]

ACCURACY_LABELS = {
    "val_accuracy": "validation accuracy (sampled)",
    "accuracy": "expected accuracy (exact)",
}
FALLBACK = [
    "#17becf", "#bcbd22", "#e377c2", "#7f7f7f", "#ff7f0e", "#aec7e8", "#98df8a", "#c5b0d5",
    "#c49c94", "#f7b6d2", "#dbdb8d", "#9edae5",
]  # fmt: skip


def _color(method: str, index: int = 0) -> str:
    """The method's colour: its own, else that of the longest known name it starts with (a loss
    with a suffix), else one of the fallbacks by position."""
    known = [name for name in METHOD_COLORS if method == name or method.startswith(f"{name}_")]
    return METHOD_COLORS[max(known, key=len)] if known else FALLBACK[index % len(FALLBACK)]


LINE_STYLES = ["-", "--", "-.", ":"]


def _styles(methods: Sequence[str]) -> dict[str, tuple[str, str]]:
    """``(colour, line style)`` per method: methods that share a colour (a loss at several
    coefficients, ``entropy_bonus_0.001`` and ``entropy_bonus_2``) get successive line styles."""
    styles, seen = {}, {}
    for i, method in enumerate(methods):
        color = _color(method, i)
        styles[method] = (color, LINE_STYLES[seen.get(color, 0) % len(LINE_STYLES)])
        seen[color] = seen.get(color, 0) + 1
    return styles


def _legend_below(fig, axes, columns: int = 5) -> None:
    """One legend for the figure, below the panels, so no curve is hidden under it."""
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(
        handles, labels, loc="outside lower center", ncol=min(columns, len(labels)), frameon=False
    )


def _series(
    runs: Sequence, key: str, smooth: int = 1
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Steps, mean, min and max over seeds of ``key`` (rows that have it), optionally smoothed."""
    curves = []
    for run in runs:
        points = [(r["step"], r[key]) for r in run.rows if r.get(key) is not None]
        steps, values = (np.array(c, dtype=float) for c in zip(*points, strict=True))
        if smooth > 1:
            kernel = np.ones(smooth) / smooth
            padded = np.pad(values, (smooth // 2, smooth - 1 - smooth // 2), mode="edge")
            values = np.convolve(padded, kernel, mode="valid")
        curves.append((steps, values))
    length = min(len(c[0]) for c in curves)
    stack = np.array([c[1][:length] for c in curves])
    return curves[0][0][:length], stack.mean(0), stack.min(0), stack.max(0)


def _band(ax, runs, key, color, label, smooth=1, ls="-"):
    steps, mean, low, high = _series(runs, key, smooth)
    ax.plot(steps, mean, color=color, lw=1.8, label=label, ls=ls)
    if len(runs) > 1:
        ax.fill_between(steps, low, high, color=color, alpha=0.18, linewidth=0)


def plot_collapse(
    runs: Sequence,
    stem: str | os.PathLike[str],
    title: str = "GRPO",
    accuracy_key: str = "val_accuracy",
) -> list[Path]:
    """(1) Entropy and accuracy against the step for one method, seeds shaded (min–max)."""
    fig, axes = new_figure(ncols=2)
    _band(axes[0, 0], runs, "entropy", _color("grpo"), f"{title} ({len(runs)} seeds)")
    drop = np.mean([1 - r.summary["entropy_final"] / r.summary["entropy_initial"] for r in runs])
    axes[0, 0].set_title(f"Entropy collapse: {drop:.0%} lower at the end")
    axes[0, 0].set_ylabel("mean token entropy (nats)")
    if accuracy_key != "accuracy":
        _band(axes[0, 1], runs, "accuracy", "#7f7f7f", "rollout accuracy (smoothed)", smooth=9)
    _band(
        axes[0, 1],
        runs,
        accuracy_key,
        _color("grpo"),
        ACCURACY_LABELS.get(accuracy_key, accuracy_key),
    )
    axes[0, 1].set_title("Accuracy rises as entropy falls")
    axes[0, 1].set_ylabel("accuracy")
    for ax in axes[0]:
        ax.set_xlabel("RL step")
        ax.legend(loc="best")
    return save(fig, stem)


def plot_law(
    runs: Sequence,
    fit: dict[str, Any] | None,
    stem: str | os.PathLike[str],
    accuracy_key: str = "val_accuracy",
    failure: str = "",
    line: dict[str, Any] | None = None,
    entropy_key: str = "entropy",
) -> list[Path]:
    """(2) Accuracy against entropy, the fitted law R = -a·exp(H) + b and its ceiling at H = 0;
    with ``line`` (:func:`~entropy_rl.analysis.law.compare_with_line`) the straight-line fit on the
    same points, dotted, over the points' range.

    Without a fit (``fit`` is None, e.g. constant accuracy) the points are drawn with ``failure``.
    """
    fig, axes = new_figure(width=5.4, height=4.0)
    ax = axes[0, 0]
    h_all = []
    for i, run in enumerate(runs):
        points = [
            (r[entropy_key], r[accuracy_key]) for r in run.rows if r.get(accuracy_key) is not None
        ]
        h, acc = zip(*points, strict=True)
        h_all += h
        ax.scatter(
            h,
            acc,
            s=18,
            alpha=0.75,
            color=FALLBACK[i % len(FALLBACK)],
            label=f"base {run.base}, seed {run.seed}",
        )
    if fit is not None:
        grid = np.linspace(0, max(h_all) * 1.05, 200)
        ax.plot(grid, law(grid, fit["a"], fit["b"]), color="black", lw=1.6,
                label=f"R = -{fit['a']:.3f}·exp(H) + {fit['b']:.3f}  (R² = {fit['r2']:.2f})")  # fmt: skip
        if line is not None:
            span = np.linspace(min(h_all), max(h_all), 50)
            ax.plot(span, line["slope"] * span + line["intercept"], color="#ff7f0e", lw=1.4,
                    ls=":", label=f"straight line (R² = {line['r2_line']:.2f})")  # fmt: skip
        lo, hi = fit["ceiling_ci"]
        ax.axhline(fit["ceiling"], color="#d62728", ls="--", lw=1.2,
                   label=f"predicted ceiling R(H=0) = {fit['ceiling']:.3f} [{lo:.3f}, {hi:.3f}]")  # fmt: skip
    else:
        ax.text(0.5, 0.5, f"no fit: {failure}", transform=ax.transAxes, ha="center", wrap=True,
                bbox={"facecolor": "white", "edgecolor": "#d62728"})  # fmt: skip
    ax.set_xlabel(
        "mean token entropy H on the validation problems (nats)"
        if entropy_key == "val_entropy"
        else "mean token entropy H (nats)"
    )
    ax.set_ylabel(f"{ACCURACY_LABELS.get(accuracy_key, accuracy_key)}, R")
    ax.set_title("Performance is traded from entropy")
    ax.legend(loc="lower left", fontsize=7.5)
    return save(fig, stem)


def plot_covariance(
    runs_by_method: dict[str, Sequence], stem: str | os.PathLike[str]
) -> list[Path]:
    """(3) The mean token covariance Cov(log pi, A) per step, each method (smoothed, seeds shaded)."""
    fig, axes = new_figure(width=5.6)
    ax = axes[0, 0]
    for i, (method, runs) in enumerate(runs_by_method.items()):
        _band(ax, runs, "cov_mean", _color(method, i), method, smooth=9)
    ax.axhline(0, color="0.3", lw=0.8)
    ax.set_xlabel("RL step")
    ax.set_ylabel("mean centred token covariance")
    ax.set_title("The covariance that drives entropy down stays positive")
    ax.legend(loc="best")
    return save(fig, stem)


def plot_methods(
    runs_by_method: dict[str, Sequence],
    stem: str | os.PathLike[str],
    accuracy_key: str = "val_accuracy",
    world: str = "",
) -> list[Path]:
    """(4) Entropy and validation accuracy against the step, all methods, in one ``world`` (named
    in the title: the same figure of two worlds must not look alike). Beyond GRPO and the paper's
    interventions, methods are dashed so that ten curves stay apart."""
    fig, axes = new_figure(ncols=2)
    styles = _styles(list(runs_by_method))
    for i, (method, runs) in enumerate(runs_by_method.items()):
        color, ls = styles[method]
        ls = "--" if i >= 5 and ls == "-" else ls
        _band(axes[0, 0], runs, "entropy", color, method, ls=ls)
        _band(axes[0, 1], runs, accuracy_key, color, method, ls=ls)
    axes[0, 0].set_ylabel("mean token entropy (nats)")
    axes[0, 0].set_title("Entropy")
    axes[0, 1].set_ylabel(ACCURACY_LABELS.get(accuracy_key, accuracy_key))
    axes[0, 1].set_title("Accuracy")
    for ax in axes[0]:
        ax.set_xlabel("RL step")
    fig.suptitle(f"Each method{f' in the {world}' if world else ''}: entropy and accuracy")
    _legend_below(fig, axes)
    return save(fig, stem)


def plot_entropy_bonus_sweep(
    runs_by_method: dict[str, Sequence], coefs: dict[str, float], stem: str | os.PathLike[str]
) -> list[Path]:
    """(5) The entropy bonus at several coefficients against GRPO (coefficient 0)."""
    fig, axes = new_figure(ncols=2)
    cmap = __import__("matplotlib").colormaps["viridis"]
    ordered = sorted(runs_by_method, key=lambda m: coefs.get(m, 0.0))
    for i, method in enumerate(ordered):
        color = (
            _color("grpo")
            if coefs.get(method, 0.0) == 0
            else cmap(0.15 + 0.7 * i / max(1, len(ordered) - 1))
        )
        label = f"coef {coefs.get(method, 0.0):g}" + (
            " (GRPO)" if coefs.get(method, 0.0) == 0 else ""
        )
        ls = LINE_STYLES[i % len(LINE_STYLES)]  # neighbouring coefficients differ in style too
        _band(axes[0, 0], runs_by_method[method], "entropy", color, label, ls=ls)
        _band(axes[0, 1], runs_by_method[method], "val_accuracy", color, label, ls=ls)
    axes[0, 0].set_yscale("log")
    axes[0, 0].set_ylabel("mean token entropy (nats, log scale)")
    axes[0, 0].set_title("Entropy bonus: too small does nothing,\ntoo large lets entropy run away")
    axes[0, 1].set_ylabel(ACCURACY_LABELS["val_accuracy"])
    axes[0, 1].set_title("…and costs accuracy")
    for ax in axes[0]:
        ax.set_xlabel("RL step")
    _legend_below(fig, axes)
    return save(fig, stem)


def _change_points(runs: Sequence) -> tuple[np.ndarray, np.ndarray]:
    points = [
        (r["entropy_change_predicted"], r["entropy_change"])
        for run in runs
        for r in run.rows
        if r.get("entropy_change") is not None and r.get("entropy_change_predicted") is not None
    ]
    predicted, measured = (np.array(c) for c in zip(*points, strict=True))
    return predicted, measured


def plot_entropy_change(panels: dict[str, Sequence], stem: str | os.PathLike[str]) -> list[Path]:
    """(6) Measured entropy change of each step against Lemma 1's prediction, one panel per world."""
    fig, axes = new_figure(ncols=len(panels))
    for ax, (title, runs) in zip(axes[0], panels.items(), strict=True):
        predicted, measured = _change_points(runs)
        r = np.corrcoef(predicted, measured)[0, 1]
        ax.scatter(predicted, measured, s=10, alpha=0.6, color="#1f77b4", linewidths=0)
        lim = float(np.abs(np.concatenate([predicted, measured])).max()) * 1.1
        ax.plot([-lim, lim], [-lim, lim], color="0.3", ls="--", lw=1, label="measured = predicted")
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_title(f"{title}\nPearson r = {r:.3f} over {len(measured)} steps")
        ax.set_xlabel("predicted ΔH = -Cov(log π, Δz)")
        ax.set_ylabel("measured ΔH")
        ax.ticklabel_format(style="sci", scilimits=(-2, 2))
        ax.legend(loc="upper left")
    return save(fig, stem)


def plot_pass_at_k(
    evaluations: dict[str, Sequence[dict[str, Any]]],
    stem: str | os.PathLike[str],
    split: str = "heldout",
) -> list[Path]:
    """(7) pass@k against k on the held-out split, each method (mean over seeds, the band the
    seeds' range), every k the evaluation has; k on a log axis. A ``base`` entry (the base model)
    is drawn dashed: where RL's curve crosses below it, RL has narrowed what the model can reach."""
    fig, axes = new_figure(width=5.6)
    ax = axes[0, 0]
    ks: list[int] = []
    styles = _styles([m for m in evaluations if m != "base"])
    for method, evals in evaluations.items():
        ks = sorted(int(k.split("@")[1]) for k in evals[0][split] if k.startswith("pass@"))
        curves = np.array([[e[split][f"pass@{k}"] for k in ks] for e in evals])
        base = method == "base"
        color, ls = ("0.3", (0, (5, 2))) if base else styles[method]
        ax.plot(
            ks, curves.mean(0), color=color, ls=ls, lw=2.2 if base else 1.6,
            marker=None if len(ks) > 8 else "o", label=method,
        )  # fmt: skip
        if len(evals) > 1:
            ax.fill_between(ks, curves.min(0), curves.max(0), color=color, alpha=0.15, lw=0)
    ax.set_xlabel("k (samples per problem)")
    ax.set_ylabel("pass@k (unbiased)")
    ax.set_title(f"pass@k on the {split.replace('heldout', 'held-out')} split (seeds shaded)")
    if ks and ks[-1] > 8:
        ax.set_xscale("log", base=2)
        ax.set_xticks([k for k in ks if k & (k - 1) == 0])
        ax.get_xaxis().set_major_formatter(ticker.ScalarFormatter())
    else:
        ax.set_xticks(ks)
    ax.legend(loc="lower right", fontsize="small")
    return save(fig, stem)


BASE_COLORS = [
    "#1b9e77",
    "#d95f02",
    "#7570b3",
    "#e7298a",
    "#66a61e",
    "#e6ab02",
    "#a6761d",
    "#666666",
]


def plot_runs(
    runs: dict[str, Sequence[Any]], stem: str | os.PathLike[str], bar: float = 0.5
) -> list[Path]:
    """Every run's final held-out greedy accuracy, one row of points per method, coloured by
    the base model it started from (a marker per RL seed): the spread a verdict's interval sums
    up. Where the task has a hard family, a second panel shows it, with the bar a run must reach
    to count as having learned it (the discovery rate's)."""
    methods = [m for m, rs in runs.items() if all(r.evaluation.get("heldout_greedy") for r in rs)]
    families = any(
        "hard" in r.evaluation["heldout_greedy"].get("family_pass@1", {})
        for m in methods
        for r in runs[m]
    )
    panels = [("held-out greedy accuracy", None)] + (
        [("hard family: held-out greedy accuracy", "hard")] if families else []
    )
    # one row per method (read top to bottom), so that 26 methods fit a page as well as 4
    fig, axes = new_figure(ncols=len(panels), width=4.6, height=max(3.0, 0.3 * len(methods) + 1.4))
    bases = sorted({r.base for m in methods for r in runs[m]})
    seeds = sorted({r.seed for m in methods for r in runs[m]})
    markers = "osD^vP*X"
    for i, (ax, (title, family)) in enumerate(zip(axes[0], panels, strict=True)):
        for y, method in enumerate(methods):
            for run in runs[method]:
                greedy = run.evaluation["heldout_greedy"]
                x = greedy.get("family_pass@1", {}).get(family) if family else greedy["pass@1"]
                if x is None:
                    continue
                offset = (bases.index(run.base) - (len(bases) - 1) / 2) * 0.09
                offset += (seeds.index(run.seed) - (len(seeds) - 1) / 2) * 0.03
                ax.scatter(
                    x, y + offset, s=26, alpha=0.85,
                    color=BASE_COLORS[bases.index(run.base) % len(BASE_COLORS)],
                    marker=markers[seeds.index(run.seed) % len(markers)], edgecolor="white", lw=0.5,
                )  # fmt: skip
        if family:
            ax.axvline(bar, color="0.4", ls=":", lw=1)
            ax.text(bar, len(methods) - 0.55, f" learned (≥ {bar:g})", va="bottom", ha="left",
                    fontsize="small", color="0.3")  # fmt: skip
        ax.set_yticks(range(len(methods)), methods if i == 0 else [])
        ax.set_ylim(len(methods) - 0.5 + (0.5 if families else 0), -0.5)  # room for the bar label
        ax.set_xlim(-0.03, 1.03)
        ax.set_xlabel("accuracy (final policy)")
        ax.set_title(title)
    handles = [
        ax.scatter([], [], color=BASE_COLORS[i % len(BASE_COLORS)], marker="o", s=26,
                   label=f"base model {b}")
        for i, b in enumerate(bases)
    ] + [
        ax.scatter([], [], color="0.5", marker=markers[i % len(markers)], s=26, label=f"RL seed {s}")
        for i, s in enumerate(seeds)
    ]  # fmt: skip
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 6),
               fontsize="small", frameon=False)  # fmt: skip
    return save(fig, stem)


def plot_interventions(
    panels: dict[str, tuple[list[dict[str, Any]], str, dict[str, float] | None]],
    stem: str | os.PathLike[str],
) -> list[Path]:
    """Every intervention on one map: late-run entropy against final accuracy, each method a
    point at its mean over base models and seeds with its 95% interval as bars, and the law
    ``R = -a·exp(H) + b`` fitted on GRPO's runs as a curve.

    ``panels`` maps a title to ``(points, accuracy label, law)``: each point is ``{"method",
    "x", "y"}`` with ``x`` and ``y`` statistics (``{"estimate", "lo", "hi"}``), ``law`` is
    ``{"a", "b"}`` or None (no curve).
    """
    fig, axes = new_figure(ncols=len(panels), width=4.8, height=4.4)
    markers = "osD^vP*Xhp<>"
    # one style per method across the panels: a method in both worlds looks the same in both
    methods = list(dict.fromkeys(p["method"] for points, _, _ in panels.values() for p in points))
    handles: dict[str, Any] = {}
    for ax, (title, (points, label, fit)) in zip(axes[0], panels.items(), strict=True):
        for p in points:
            x, y, i = p["x"], p["y"], methods.index(p["method"])
            xerr = [[max(x["estimate"] - x["lo"], 0.0)], [max(x["hi"] - x["estimate"], 0.0)]]
            yerr = [[max(y["estimate"] - y["lo"], 0.0)], [max(y["hi"] - y["estimate"], 0.0)]]
            handles[p["method"]] = ax.errorbar(
                x["estimate"], y["estimate"], xerr=xerr, yerr=yerr,
                fmt=markers[i % len(markers)], ms=5, color=_color(p["method"], i), capsize=2,
                lw=0.8, label=p["method"],
            )  # fmt: skip
        xs = [p["x"]["estimate"] for p in points]
        wide = bool(xs) and min(xs) > 0 and max(xs) / min(xs) > 4
        if wide:  # entropies a decade apart: a log axis, ticks at 1-2-5 within two decades
            ax.set_xscale("log")
            subs = (1.0,) if max(xs) / min(xs) > 30 else (1.0, 2.0, 5.0)
            ax.xaxis.set_major_locator(ticker.LogLocator(subs=subs))
            ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
            ax.xaxis.set_minor_formatter(ticker.NullFormatter())
        if fit is not None and xs:
            lo, hi = min(p["x"]["lo"] for p in points), max(p["x"]["hi"] for p in points)
            grid = np.geomspace(max(lo, 1e-4), hi, 200) if wide else np.linspace(lo, hi, 200)
            ax.plot(grid, law(grid, fit["a"], fit["b"]), color="black", lw=1, ls="--",
                    label="_law", zorder=0)  # fmt: skip
            ax.text(0.02, 0.02, "dashed: R = -a·exp(H) + b fitted on GRPO's runs",
                    transform=ax.transAxes, fontsize="x-small", color="black")  # fmt: skip
        if not points:
            ax.text(0.5, 0.5, "no method has an evaluation", ha="center", transform=ax.transAxes)
        ax.set_xlabel(f"late-run entropy (nats{', log' if wide else ''})")
        ax.set_ylabel(label)
        ax.set_title(title)
    fig.legend(handles.values(), handles.keys(), loc="outside right center", frameon=False,
               fontsize="small", ncols=2 if len(handles) > 14 else 1)  # fmt: skip
    fig.suptitle("Interventions compared: the entropy they keep, the accuracy they reach "
                 "(bars: 95% intervals over base models and seeds)", fontsize="medium")  # fmt: skip
    return save(fig, stem)


def plot_entropy_target(
    panels: dict[str, tuple[dict[str, Sequence], Sequence]], stem: str | os.PathLike[str]
) -> list[Path]:
    """The entropy-target controller: entropy against its target band, and the coefficient.

    ``panels`` maps a world's title to ``(entropy_target runs by method, GRPO runs)``; a world
    without an ``entropy_target`` method gets a note instead of curves.
    """
    fig, axes = new_figure(ncols=len(panels), nrows=2, width=4.8, height=2.9)
    for col, (title, (targets, grpo)) in enumerate(panels.items()):
        top, bottom = axes[0, col], axes[1, col]
        if not targets:
            top.text(0.5, 0.5, "no entropy_target method in this config", ha="center",
                     transform=top.transAxes)  # fmt: skip
        if grpo:
            _band(top, grpo, "entropy", _color("grpo"), "GRPO")
        for i, (method, runs) in enumerate(targets.items()):
            color = _color(method, i)
            target = runs[0].rows[-1]["entropy_target"]
            _band(top, runs, "entropy", color, method)
            top.axhspan(0.9 * target, 1.1 * target, color=color, alpha=0.12, lw=0)
            top.axhline(target, color=color, ls="--", lw=1)
            _band(bottom, runs, "entropy_coef", color, method)
        top.set_title(title)
        top.set_ylabel("mean token entropy (nats)")
        top.legend(loc="best")
        bottom.set_xlabel("RL step")
        bottom.set_ylabel("entropy coefficient")
    fig.suptitle("An entropy target held by feedback (band: target ± 10%)")
    return save(fig, stem)
