"""The suite's figure style and the one way figures are saved (PNG + PDF, atomic, reproducible bytes)."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from entropy_rl.io import atomic_path

__all__ = ["METHOD_COLORS", "new_figure", "save"]

# One colour per method, the same in every figure: saturated, well-separated hues (a method named
# after a loss with a suffix, ``entropy_bonus_0.01``, takes its loss's colour).
METHOD_COLORS = {
    "grpo": "#1f77b4",  # blue
    "clip_higher": "#8c564b",  # brown
    "entropy_bonus": "#2ca02c",  # green
    "clip_cov": "#d62728",  # red
    "kl_cov": "#9467bd",  # purple
    "dapo": "#e377c2",  # pink
    "dr_grpo": "#7f7f7f",  # grey
    "forking_tokens": "#bcbd22",  # olive
    "entropy_advantage": "#17becf",  # cyan
    "w_reinforce": "#ff7f0e",  # orange
    "entropy_target": "#000000",  # black
    "pg": "#1f77b4",
    "npg": "#ff7f0e",
}

RC = {
    "figure.dpi": 110,
    "savefig.dpi": 150,
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "legend.fontsize": 8.5,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "svg.hashsalt": "entropy-rl",
}


def new_figure(ncols: int = 1, nrows: int = 1, width: float = 4.6, height: float = 3.6):
    """A figure with ``nrows × ncols`` panels of ``width × height`` inches each, in the suite's style."""
    with plt.rc_context(RC):
        fig, axes = plt.subplots(
            nrows,
            ncols,
            figsize=(width * ncols, height * nrows),
            squeeze=False,
            layout="constrained",
        )
    return fig, axes


def save(fig: Figure, stem: str | os.PathLike[str]) -> list[Path]:
    """Save ``fig`` as ``stem.png`` and ``stem.pdf`` atomically, then close it.

    Metadata that changes from run to run (creation date, software version) is left out, so the
    same data gives the same bytes and committed figures only change when the data do.
    """
    paths = []
    with plt.rc_context(RC):
        for ext, metadata in (
            ("png", {"Software": None}),
            ("pdf", {"Creator": None, "Producer": None, "CreationDate": None}),
        ):
            path = Path(f"{stem}.{ext}")
            with atomic_path(path) as tmp:
                fig.savefig(tmp, format=ext, metadata=metadata)
            paths.append(path)
    plt.close(fig)
    return paths
