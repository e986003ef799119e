"""Figures of the theory chapter: first-order predictions vs the exact entropy change."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib as mpl
import numpy as np

from entropy_rl.plots.style import new_figure, save
from entropy_rl.theory.sweeps import PredictionSweep, RemainderSweep

__all__ = ["plot_lemma1_remainder", "plot_theory_predictions"]

TITLES = {
    "pg": "Policy gradient (Theorem 1)\n$\\Delta H \\approx -\\eta\\,\\mathrm{Cov}(\\log\\pi,\\ \\pi A)$",
    "npg": "Natural PG (Theorem 2)\n$\\Delta H \\approx -\\eta\\,\\mathrm{Cov}(\\log\\pi,\\ A)$",
}


def plot_theory_predictions(sweep: PredictionSweep, stem: str | os.PathLike[str]) -> list[Path]:
    """Exact ΔH against the first-order prediction, one panel per update rule, coloured by step size."""
    fig, axes = new_figure(ncols=2)
    norm = mpl.colors.LogNorm(vmin=sweep.eta.min(), vmax=sweep.eta.max())
    for ax, update in zip(axes[0], ("pg", "npg"), strict=True):
        pick = sweep.update == update
        pred, exact = sweep.predicted[pick], sweep.exact[pick]
        points = ax.scatter(
            pred, exact, c=sweep.eta[pick], cmap="viridis", norm=norm, s=9, alpha=0.7, linewidths=0
        )
        lim = float(np.abs(np.concatenate([pred, exact])).max()) * 1.3
        ax.plot([-lim, lim], [-lim, lim], color="0.3", lw=1, ls="--", label="exact = predicted")
        for axis, set_scale in ((ax.xaxis, ax.set_xscale), (ax.yaxis, ax.set_yscale)):
            set_scale("symlog", linthresh=1e-4)
            # a tick every second decade keeps the labels of both signs apart
            axis.set_major_locator(mpl.ticker.SymmetricalLogLocator(base=100, linthresh=1e-4))
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        small = sweep.eta[pick] <= 0.1
        r_small = np.corrcoef(pred[small], exact[small])[0, 1]
        r_all = np.corrcoef(pred, exact)[0, 1]
        ax.set_title(TITLES[update])
        ax.set_xlabel("predicted $\\Delta H$ (first order)")
        ax.set_ylabel("exact $\\Delta H = H(z+\\delta) - H(z)$")
        ax.text(
            0.03,
            0.97,
            f"Pearson r = {r_small:.4f} ($\\eta \\leq 0.1$)\nPearson r = {r_all:.3f} (all $\\eta$)",
            transform=ax.transAxes,
            va="top",
            fontsize=8.5,
            bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "0.8"},
        )
        ax.legend(loc="lower right")
    fig.colorbar(points, ax=axes[0].tolist(), label="step size $\\eta$", shrink=0.9)
    return save(fig, stem)


def plot_lemma1_remainder(sweep: RemainderSweep, stem: str | os.PathLike[str]) -> list[Path]:
    """Log-log remainder of Lemma 1 against the step size, with a slope-2 reference line."""
    fig, axes = new_figure(width=5.2)
    ax = axes[0, 0]
    for remainder in sweep.remainder:
        ax.loglog(sweep.eta, remainder, color="#1f77b4", alpha=0.45, lw=1.2)
    anchor = np.median(sweep.remainder[:, -1]) / sweep.eta[-1] ** 2
    ax.loglog(
        sweep.eta,
        anchor * sweep.eta**2,
        color="black",
        ls="--",
        lw=1.5,
        label="slope 2 ($\\eta^2$)",
    )
    ax.plot([], [], color="#1f77b4", label=f"{len(sweep.slope)} random policies")
    ax.set_xlabel("step size $\\eta$ (direction $d$ with $\\max|d| = 1$)")
    ax.set_ylabel("$|\\Delta H_{\\mathrm{exact}} - \\Delta H_{\\mathrm{Lemma\\ 1}}|$")
    ax.set_title(
        "Lemma 1's remainder is second order\n"
        f"fitted slopes {sweep.slope.min():.3f}–{sweep.slope.max():.3f}"
    )
    ax.legend(loc="upper left")
    return save(fig, stem)
