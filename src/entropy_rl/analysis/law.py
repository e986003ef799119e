"""The paper's entropy-performance law ``R = -a·exp(H) + b``: fit, uncertainty, prediction.

The law is linear in ``(a, b)`` once ``x = exp(H)``: ``R = b - a·x``. It is fitted by least
squares (``scipy.stats.linregress``), with percentile-bootstrap intervals over the (H, R) points.
At zero entropy it predicts the ceiling ``R(H=0) = b - a``: the accuracy a policy reaches once its
entropy is spent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

__all__ = [
    "LawFit",
    "compare_with_line",
    "describe_line_comparison",
    "early_fit_prediction",
    "fit_law",
    "law",
    "law_coefficients",
]


def law(entropy: np.ndarray | float, a: float, b: float) -> np.ndarray | float:
    """``R(H) = -a·exp(H) + b``: the entropy-performance law (Cui et al., 2025, §2, Eq. 6)."""
    return -a * np.exp(entropy) + b


@dataclass(frozen=True)
class LawFit:
    """Coefficients with ``level`` bootstrap intervals, R², the ceiling ``b - a`` and its interval."""

    a: float
    b: float
    r2: float
    ceiling: float
    a_ci: tuple[float, float]
    b_ci: tuple[float, float]
    ceiling_ci: tuple[float, float]
    n_points: int
    level: float

    def to_dict(self) -> dict:
        return asdict(self)


def _check(entropy: Sequence[float], accuracy: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    h = np.asarray(entropy, dtype=float)
    r = np.asarray(accuracy, dtype=float)
    if h.shape != r.shape or h.ndim != 1:
        raise ValueError(
            f"entropy and accuracy must be 1-D of one length, got {h.shape} and {r.shape}"
        )
    if len(h) < 3:
        raise ValueError(f"the law needs at least 3 (entropy, accuracy) points, got {len(h)}")
    if not (np.all(np.isfinite(h)) and np.all(np.isfinite(r))):
        raise ValueError("entropy and accuracy must be finite")
    if np.ptp(r) == 0:
        raise ValueError("accuracy is constant over the points: R = -a·exp(H) + b cannot be fit")
    if np.ptp(h) == 0:
        raise ValueError("entropy is constant over the points: R = -a·exp(H) + b cannot be fit")
    return h, r


def _coefficients(h: np.ndarray, r: np.ndarray) -> tuple[float, float, float]:
    result = stats.linregress(np.exp(h), r)
    return -float(result.slope), float(result.intercept), float(result.rvalue**2)


def law_coefficients(
    entropy: Sequence[float], accuracy: Sequence[float]
) -> tuple[float, float, float]:
    """``(a, b, R²)`` of the least-squares fit of ``R = -a·exp(H) + b`` (no intervals: the
    bootstraps that refit many times call this)."""
    return _coefficients(*_check(entropy, accuracy))


def fit_law(
    entropy: Sequence[float],
    accuracy: Sequence[float],
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> LawFit:
    """Least-squares ``a, b`` of ``R = -a·exp(H) + b`` with percentile-bootstrap intervals, and the
    ceiling ``-a + b``, the law at ``H = 0`` (Cui et al., 2025, §2.5)."""
    h, r = _check(entropy, accuracy)
    a, b, r2 = _coefficients(h, r)
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(n_boot):
        pick = rng.integers(len(h), size=len(h))
        if np.ptp(h[pick]) == 0:
            continue  # a resample with a single entropy value has no slope
        draws.append(_coefficients(h[pick], r[pick])[:2])
    boot = np.array(draws)
    lo, hi = (1 - level) / 2 * 100, (1 + level) / 2 * 100

    def interval(values: np.ndarray) -> tuple[float, float]:
        return float(np.percentile(values, lo)), float(np.percentile(values, hi))

    return LawFit(
        a=a,
        b=b,
        r2=r2,
        ceiling=b - a,
        a_ci=interval(boot[:, 0]),
        b_ci=interval(boot[:, 1]),
        ceiling_ci=interval(boot[:, 1] - boot[:, 0]),
        n_points=len(h),
        level=level,
    )


def early_fit_prediction(
    steps: Sequence[float],
    entropy: Sequence[float],
    accuracy: Sequence[float],
    fraction: float = 1 / 3,
) -> dict[str, float]:
    """Fit on the points of the first ``fraction`` of training, predict the rest from their entropy
    (Cui et al., 2025, §2.4).

    Returns the fit's ``a, b``, the RMSE of the predictions over the later points, and the
    predicted and observed accuracy at the last point (``final_error = predicted - observed``).
    """
    s = np.asarray(steps, dtype=float)
    h, r = _check(entropy, accuracy)
    cut = s.min() + fraction * (s.max() - s.min())
    early, late = s <= cut, s > cut
    if early.sum() < 3 or late.sum() < 1:
        raise ValueError(
            f"early fit needs >= 3 points up to step {cut:.0f} and >= 1 after it, got {early.sum()} and {late.sum()}"
        )
    a, b, r2 = _coefficients(*_check(h[early], r[early]))
    predicted = law(h[late], a, b)
    return {
        "fraction": fraction,
        "a": a,
        "b": b,
        "r2_early": r2,
        "rmse_later": float(np.sqrt(np.mean((predicted - r[late]) ** 2))),
        "final_predicted": float(predicted[-1]),
        "final_observed": float(r[late][-1]),
        "final_error": float(predicted[-1] - r[late][-1]),
    }


def compare_with_line(
    entropy: Sequence[float], accuracy: Sequence[float]
) -> dict[str, float | bool]:
    """The law beside a straight line ``R = c·H + d`` fitted by least squares on the same points.

    Over a small entropy range ``exp(H) ≈ 1 + H``, so the two curves can agree within the noise.
    ``max_gap`` is the largest distance between the two fitted curves over the observed entropies;
    ``residual_std`` the law's residual standard deviation. The data tell the two apart
    (``distinguishable``) only when the curves part by more than two residual deviations
    somewhere on the points' range.
    """
    h, r = _check(entropy, accuracy)
    a, b, r2 = _coefficients(h, r)
    line = stats.linregress(h, r)
    grid = np.linspace(h.min(), h.max(), 200)
    gap = np.abs(law(grid, a, b) - (line.slope * grid + line.intercept))
    residual = r - law(h, a, b)
    residual_std = float(np.sqrt(np.sum(residual**2) / max(len(h) - 2, 1)))
    return {
        "r2_law": r2,
        "r2_line": float(line.rvalue**2),
        "slope": float(line.slope),
        "intercept": float(line.intercept),
        "max_gap": float(gap.max()),
        "residual_std": residual_std,
        "entropy_max": float(h.max()),
        "distinguishable": bool(gap.max() > 2 * residual_std),
    }


def describe_line_comparison(comparison: dict[str, float | bool]) -> str:
    """One sentence on whether the points tell the law from a straight line
    (:func:`compare_with_line`)."""
    head = (
        f"A straight line on the same points has R² = {comparison['r2_line']:.3f} "
        f"(the law {comparison['r2_law']:.3f}); over H ≤ {comparison['entropy_max']:.3f} nats the "
        f"two curves part by at most {comparison['max_gap']:.3f}, against a residual deviation of "
        f"{comparison['residual_std']:.3f}"
    )
    if comparison["distinguishable"]:
        return head + ": the data prefer one shape."
    return head + ": these data cannot tell the exponential from a line (exp(H) ≈ 1 + H here)."
