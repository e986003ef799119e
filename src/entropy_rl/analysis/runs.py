"""Summary numbers of one training run from its ``metrics.jsonl`` rows."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["LATE_FRACTION", "late_mean", "pearson", "summarize_run", "target_tracking"]

LATE_FRACTION = 0.1  # the late run: its last 10% of steps


def late_mean(values: Sequence[float], fraction: float = LATE_FRACTION) -> float:
    """The mean over the last ``ceil(fraction · T)`` of ``T`` values (at least one): a late-run
    level that one noisy step cannot set."""
    array = np.asarray(values, dtype=float)
    if not len(array):
        raise ValueError("late_mean needs at least one value")
    return float(array[-max(1, int(np.ceil(fraction * len(array)))) :].mean())


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson r of ``x`` and ``y``; NaN with fewer than 3 points or a constant side."""
    if len(x) < 3 or np.std(x) == 0 or np.std(y) == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


def target_tracking(entropy: np.ndarray, target: float, window: int = 5) -> dict[str, float]:
    """How well a run held its entropy target, after warm-up.

    Warm-up ends ``settle = max(3, T // 10)`` steps after the entropy first comes within 10% above
    the target (before that the controller can only wait: it never pushes entropy down). After it:

    - ``target_within_10pct``: share of steps with ``|H_t / target - 1| <= 0.1``
    - ``target_rolling_within_10pct``: the same for the ``window``-step rolling mean of ``H``
      (what "holds" means when each step's entropy is a noisy batch estimate)
    - ``target_mean_rel_error``: ``mean_t H_t / target - 1``
    """
    entropy = np.asarray(entropy, dtype=float)
    reached = np.flatnonzero(entropy <= 1.1 * target)
    settle = max(3, len(entropy) // 10)
    if not len(reached) or reached[0] + settle >= len(entropy):
        return {"entropy_target": target, "target_warmup_steps": float("nan"),
                "target_within_10pct": float("nan"), "target_rolling_within_10pct": float("nan"),
                "target_mean_rel_error": float("nan")}  # fmt: skip
    start = int(reached[0] + settle)
    after = entropy[start:]
    rolling = np.convolve(entropy, np.ones(window) / window, mode="valid")[
        max(0, start - window + 1) :
    ]
    return {
        "entropy_target": target,
        "target_warmup_steps": float(start),
        "target_within_10pct": float(np.mean(np.abs(after / target - 1) <= 0.1)),
        "target_rolling_within_10pct": float(np.mean(np.abs(rolling / target - 1) <= 0.1)),
        "target_mean_rel_error": float(after.mean() / target - 1),
    }


def summarize_run(rows: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Entropy drop, accuracy gain and the Lemma-1 agreement of a run.

    - ``entropy_drop_frac = 1 - H_final / H_0`` and ``entropy_drop_first_third`` (at step T/3)
    - ``entropy_late``: the mean entropy of the last 10% of steps (:func:`late_mean`), what every
      "× GRPO's entropy" compares
    - ``evals_before_half``: held-out evaluations logged before the entropy first falls below half
      its initial value (how densely the law's points sample the collapse)
    - ``entropy_change_corr``: Pearson r between the measured per-step entropy change and its
      first-order prediction, over the steps that logged both
    - ``entropy_cov_corr``: Pearson r between the measured entropy change and ``−cov_mean``, the
      token covariance of log-probability and advantage (Theorems 1-2: under a policy gradient
      the entropy falls by that covariance), over the steps that logged both with a learning
      signal; near 1 where the advantage's covariance drives the entropy, lower where the
      objective moves the logits by other terms (a bonus, a KL, a resampled batch)
    - ``cov_positive_frac``: share of steps whose mean token covariance was positive, among the
      steps where some group carried a learning signal (not every group's rewards equal)
    - for an ``entropy_target`` run, how well it held its target (:func:`target_tracking`)
    """
    if not rows:
        raise ValueError("a run summary needs at least one metrics row")
    entropy = np.array([r["entropy"] for r in rows], dtype=float)
    accuracy = np.array([r["accuracy"] for r in rows], dtype=float)
    third = len(rows) // 3
    checked = [
        r
        for r in rows
        if r.get("entropy_change") is not None and r.get("entropy_change_predicted") is not None
    ]
    measured = np.array([r["entropy_change"] for r in checked], dtype=float)
    predicted = np.array([r["entropy_change_predicted"] for r in checked], dtype=float)
    cov = np.array(
        [
            r["cov_mean"]
            for r in rows
            if "cov_mean" in r and r.get("zero_adv_group_frac", 0.0) < 1.0
        ],
        dtype=float,
    )
    driven = [
        r for r in checked if "cov_mean" in r and r.get("zero_adv_group_frac", 0.0) < 1.0
    ]  # fmt: skip
    tracking = (
        target_tracking(entropy, rows[-1]["entropy_target"]) if "entropy_target" in rows[-1] else {}
    )
    halved = np.flatnonzero(entropy <= entropy[0] / 2)
    half_step = rows[int(halved[0])]["step"] if len(halved) else float("inf")
    evals_before_half = sum(
        1 for r in rows if r.get("val_accuracy") is not None and r["step"] < half_step
    )
    return {
        **tracking,
        "steps": len(rows),
        "entropy_initial": float(entropy[0]),
        "entropy_final": float(entropy[-1]),
        "entropy_late": late_mean(entropy),
        "entropy_drop_frac": float(1 - entropy[-1] / entropy[0]),
        "evals_before_half": evals_before_half,
        "entropy_drop_first_third": float(1 - entropy[third] / entropy[0]),
        "accuracy_initial": float(accuracy[0]),
        "accuracy_final": float(accuracy[-1]),
        "accuracy_max": float(accuracy.max()),
        "entropy_change_corr": pearson(measured, predicted),
        "entropy_change_checks": len(checked),
        "entropy_cov_corr": pearson(
            np.array([r["entropy_change"] for r in driven], dtype=float),
            -np.array([r["cov_mean"] for r in driven], dtype=float),
        ),
        "cov_positive_frac": float(np.mean(cov > 0)) if len(cov) else float("nan"),
    }
