"""Statistics of a difference between two methods evaluated on the same problems and seeds."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["paired_bootstrap"]


def paired_bootstrap(
    treated: Sequence[Sequence[float]],
    control: Sequence[Sequence[float]],
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, float]:
    """Mean difference ``treated − control`` with a paired, two-level percentile-bootstrap interval.

    Both arrays are ``[seeds, problems]`` (e.g. 0/1 greedy correctness), row ``i`` of each from the
    same seed and column ``j`` the same problem. A draw resamples seeds and problems with
    replacement, the same indices for both methods, and takes the mean difference::

        Δ* = mean_{i ∈ S*, j ∈ P*} (treated[i, j] − control[i, j])

    so the interval covers both sources of variation: which seeds were run and which problems
    were drawn. Returns ``{"diff", "lo", "hi", "seeds", "problems", "level"}``.
    """
    t, c = np.asarray(treated, dtype=float), np.asarray(control, dtype=float)
    if t.shape != c.shape or t.ndim != 2 or t.size == 0:
        raise ValueError(
            f"treated and control must be [seeds, problems] arrays of one shape, got "
            f"{t.shape} and {c.shape}"
        )
    diff = t - c
    rng = np.random.default_rng(seed)
    seeds, problems = diff.shape
    draws = np.empty(n_boot)
    for b in range(n_boot):
        rows = rng.integers(seeds, size=seeds)
        cols = rng.integers(problems, size=problems)
        draws[b] = diff[np.ix_(rows, cols)].mean()
    lo, hi = np.percentile(draws, [(1 - level) / 2 * 100, (1 + level) / 2 * 100])
    return {
        "diff": float(diff.mean()),
        "lo": float(lo),
        "hi": float(hi),
        "seeds": seeds,
        "problems": problems,
        "level": level,
    }
