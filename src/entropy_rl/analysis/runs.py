"""Summary numbers of one training run from its ``metrics.jsonl`` rows."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["summarize_run"]


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    if len(x) < 3 or np.std(x) == 0 or np.std(y) == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


def summarize_run(rows: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Entropy drop, accuracy gain and the Lemma-1 agreement of a run.

    - ``entropy_drop_frac = 1 - H_final / H_0`` and ``entropy_drop_first_third`` (at step T/3)
    - ``entropy_change_corr``: Pearson r between the measured per-step entropy change and its
      first-order prediction, over the steps that logged both
    - ``cov_positive_frac``: share of steps whose mean token covariance was positive, among the
      steps where some group carried a learning signal (not every group's rewards equal)
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
    return {
        "steps": len(rows),
        "entropy_initial": float(entropy[0]),
        "entropy_final": float(entropy[-1]),
        "entropy_drop_frac": float(1 - entropy[-1] / entropy[0]),
        "entropy_drop_first_third": float(1 - entropy[third] / entropy[0]),
        "accuracy_initial": float(accuracy[0]),
        "accuracy_final": float(accuracy[-1]),
        "accuracy_max": float(accuracy.max()),
        "entropy_change_corr": _pearson(measured, predicted),
        "entropy_change_checks": len(checked),
        "cov_positive_frac": float(np.mean(cov > 0)) if len(cov) else float("nan"),
    }
