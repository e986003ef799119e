"""Statistics of the study's claims: differences between methods evaluated on the same base
models, seeds and problems, with intervals that treat the base model and the seed as random
factors, and rates with exact binomial intervals."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

import numpy as np

__all__ = ["binomial_interval", "cluster_bootstrap", "hierarchical_bootstrap", "paired_bootstrap"]


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


def hierarchical_bootstrap(
    bases: Sequence[Sequence[Sequence[float]] | Sequence[float]],
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, float]:
    """The mean of a per-run (or per-run-and-problem) quantity over base models, seeds and
    problems, with a three-level percentile-bootstrap interval.

    ``bases[b]`` holds base model ``b``'s runs: ``[seeds, problems]`` (e.g. a paired greedy
    difference ``treated − control`` per problem, every run on the same problems) or ``[seeds]``
    (one number a run, e.g. an entropy ratio). Every base counts equally, and every seed equally
    within its base::

        θ = mean_b mean_{s ∈ seeds(b)} mean_j x[b, s, j]

    A draw resamples base models with replacement, then seeds within each drawn base, then the
    problems (one set of problem indices per draw, shared by every run: the runs answered the same
    problems), and recomputes θ. So the interval widens when base models disagree, as it must: a
    user on another machine gets another base model. With one base it is the seed-and-problem
    bootstrap (:func:`paired_bootstrap`). Returns ``{"estimate", "lo", "hi", "bases", "seeds",
    "problems", "level"}`` (``seeds``: the runs in all).
    """
    tables = [np.asarray(runs, dtype=float) for runs in bases]
    tables = [t[:, None] if t.ndim == 1 else t for t in tables]
    problems = {t.shape[1] for t in tables}
    if not tables or any(t.ndim != 2 or t.shape[0] == 0 for t in tables) or len(problems) != 1:
        raise ValueError(
            "bases must be non-empty [seeds, problems] (or [seeds]) tables with one number of "
            f"problems, got shapes {[t.shape for t in tables]}"
        )
    n_problems = problems.pop()
    rng = np.random.default_rng(seed)
    # per (base, seed): the run's mean over each draw's problems, computed for all draws at once
    columns = rng.integers(n_problems, size=(n_boot, n_problems))
    run_means = [t[:, columns].mean(axis=-1) for t in tables]  # [seeds, n_boot] per base
    draws = np.empty(n_boot)
    for b in range(n_boot):
        chosen = rng.integers(len(tables), size=len(tables))
        draws[b] = np.mean(
            [run_means[i][rng.integers(len(run_means[i]), size=len(run_means[i])), b].mean()
             for i in chosen]
        )  # fmt: skip
    lo, hi = np.percentile(draws, [(1 - level) / 2 * 100, (1 + level) / 2 * 100])
    return {
        "estimate": float(np.mean([t.mean(axis=1).mean() for t in tables])),
        "lo": float(lo),
        "hi": float(hi),
        "bases": len(tables),
        "seeds": sum(t.shape[0] for t in tables),
        "problems": n_problems,
        "level": level,
    }


T = TypeVar("T")


def cluster_bootstrap(
    bases: Sequence[Sequence[T]],
    statistic: Callable[[list[T]], float],
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, float]:
    """A statistic of runs pooled over base models and seeds (a law fit's R², Lemma 1's pooled
    Pearson r) with a two-level percentile-bootstrap interval over the runs.

    ``bases[b]`` holds base model ``b``'s runs. The estimate is ``statistic`` of every run; a draw
    resamples base models with replacement, then runs within each drawn base, and applies
    ``statistic`` to the pooled runs drawn (a run drawn twice counts twice). Draws where the
    statistic is undefined (NaN) are left out. Returns ``{"estimate", "lo", "hi", "bases",
    "seeds", "level"}``.
    """
    groups = [list(runs) for runs in bases if len(runs)]
    if not groups:
        raise ValueError("cluster_bootstrap needs at least one base model with a run")
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(n_boot):
        pooled = [
            groups[i][j]
            for i in rng.integers(len(groups), size=len(groups))
            for j in rng.integers(len(groups[i]), size=len(groups[i]))
        ]
        draws.append(statistic(pooled))
    finite = np.array([d for d in draws if np.isfinite(d)], dtype=float)
    lo, hi = (
        np.percentile(finite, [(1 - level) / 2 * 100, (1 + level) / 2 * 100])
        if len(finite)
        else (np.nan, np.nan)
    )
    return {
        "estimate": float(statistic([run for runs in groups for run in runs])),
        "lo": float(lo),
        "hi": float(hi),
        "bases": len(groups),
        "seeds": sum(len(g) for g in groups),
        "level": level,
    }


def binomial_interval(successes: int, trials: int, level: float = 0.95) -> tuple[float, float]:
    """The exact (Clopper–Pearson) interval of a rate ``successes / trials``: the ``p`` whose
    binomial tails reach ``(1 − level) / 2``, from the beta quantiles
    ``B((1−level)/2; k, n−k+1)`` and ``B((1+level)/2; k+1, n−k)`` (0 and 1 at the ends)."""
    from scipy.stats import beta

    if trials < 1 or not 0 <= successes <= trials:
        raise ValueError(
            f"a rate needs 0 <= successes <= trials and trials >= 1, got {successes}/{trials}"
        )
    tail = (1 - level) / 2
    lo = 0.0 if successes == 0 else float(beta.ppf(tail, successes, trials - successes + 1))
    hi = (
        1.0 if successes == trials else float(beta.ppf(1 - tail, successes + 1, trials - successes))
    )
    return lo, hi
