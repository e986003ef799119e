"""Numerical experiments on the theory: how well the first-order predictions track the exact change.

Pure functions of a seed; the CLI (``entropy-rl theory``) turns them into figures and a summary,
and docs/theory.md shows both.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from entropy_rl.theory.mdp import bandit_advantages
from entropy_rl.theory.softmax import (
    Array,
    exact_entropy_change,
    lemma1_entropy_change,
    npg_logit_update,
    pg_logit_update,
    theorem1_entropy_change,
    theorem2_entropy_change,
)

__all__ = [
    "PredictionSweep",
    "RemainderSweep",
    "prediction_sweep",
    "remainder_sweep",
    "sweep_summary",
]


@dataclass(frozen=True)
class PredictionSweep:
    """Exact vs first-order entropy change for random bandits under PG and NPG steps.

    Arrays are aligned: one entry per (policy, step size); ``update`` is ``"pg"`` or ``"npg"``.
    """

    update: np.ndarray  # "pg" or "npg"
    eta: Array
    n_actions: Array
    logit_scale: Array
    predicted: Array
    exact: Array


@dataclass(frozen=True)
class RemainderSweep:
    """``|ΔH_exact - ΔH_pred|`` over a grid of step sizes, for a few random policies and directions."""

    eta: Array
    remainder: Array  # [cases, len(eta)]
    slope: Array  # fitted log-log slope per case (Lemma 1 says 2)


def prediction_sweep(
    seed: int,
    n_policies: int = 200,
    etas: tuple[float, ...] = (1e-3, 1e-2, 1e-1, 1.0),
    action_counts: tuple[int, ...] = (4, 16, 64),
    logit_scales: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0),
) -> PredictionSweep:
    """Random bandits (Gaussian logits and rewards), one PG and one NPG step per step size.

    For each policy: Theorem 1 (PG) and Theorem 2 (NPG) predictions against the exact entropy change.
    """
    rng = np.random.default_rng(seed)
    rows: dict[str, list] = {
        k: [] for k in ("update", "eta", "n_actions", "logit_scale", "pred", "exact")
    }
    for _ in range(n_policies):
        n_actions = int(rng.choice(action_counts))
        scale = float(rng.choice(logit_scales))
        logits = scale * rng.standard_normal(n_actions)
        advantages = bandit_advantages(logits, rng.standard_normal(n_actions))
        for eta in etas:
            for update, delta, predicted in (
                (
                    "pg",
                    pg_logit_update(logits, advantages, eta),
                    theorem1_entropy_change(logits, advantages, eta),
                ),
                (
                    "npg",
                    npg_logit_update(advantages, eta),
                    theorem2_entropy_change(logits, advantages, eta),
                ),
            ):
                rows["update"].append(update)
                rows["eta"].append(eta)
                rows["n_actions"].append(n_actions)
                rows["logit_scale"].append(scale)
                rows["pred"].append(float(predicted[()]))
                rows["exact"].append(float(exact_entropy_change(logits, delta)[()]))
    return PredictionSweep(
        update=np.array(rows["update"]),
        eta=np.array(rows["eta"]),
        n_actions=np.array(rows["n_actions"], dtype=np.float64),
        logit_scale=np.array(rows["logit_scale"]),
        predicted=np.array(rows["pred"]),
        exact=np.array(rows["exact"]),
    )


def remainder_sweep(
    seed: int, n_cases: int = 8, n_actions: int = 10, etas: Array | None = None
) -> RemainderSweep:
    """Lemma 1's remainder ``|H(z + eta·d) - H(z) + eta·Cov_pi(log pi, d)|`` against ``eta``."""
    rng = np.random.default_rng(seed)
    eta_grid = np.logspace(-4, -1, 13) if etas is None else np.asarray(etas, dtype=np.float64)
    remainders = np.empty((n_cases, eta_grid.size))
    for case in range(n_cases):
        logits = rng.uniform(0.5, 3.0) * rng.standard_normal(n_actions)
        direction = rng.standard_normal(n_actions)
        direction /= np.abs(direction).max()
        for j, eta in enumerate(eta_grid):
            remainders[case, j] = abs(
                exact_entropy_change(logits, eta * direction)[()]
                - lemma1_entropy_change(logits, eta * direction)[()]
            )
    slopes = np.array([np.polyfit(np.log(eta_grid), np.log(r), 1)[0] for r in remainders])
    return RemainderSweep(eta=eta_grid, remainder=remainders, slope=slopes)


def sweep_summary(predictions: PredictionSweep, remainders: RemainderSweep, seed: int) -> dict:
    """The theory stage's verdicts: per update rule (PG, NPG) the Pearson r between the
    first-order prediction and the exact entropy change (for η ≤ 0.1 and over every η), their
    sign agreement and the median relative error at the smallest η; Lemma 1's remainder slopes;
    and ``checks``: the slopes within 2 ± 0.2 (second order) and both r ≥ 0.99 for η ≤ 0.1."""
    summary: dict = {"seed": seed, "prediction": {}}
    for update in ("pg", "npg"):
        pick = predictions.update == update
        small = pick & (predictions.eta <= 0.1)
        tiny = pick & (predictions.eta == predictions.eta.min())
        rel = np.abs(predictions.exact[tiny] - predictions.predicted[tiny]) / np.abs(
            predictions.exact[tiny]
        )
        summary["prediction"][update] = {
            "pearson_r_eta_le_0.1": float(
                np.corrcoef(predictions.predicted[small], predictions.exact[small])[0, 1]
            ),
            "pearson_r_all_eta": float(
                np.corrcoef(predictions.predicted[pick], predictions.exact[pick])[0, 1]
            ),
            "sign_agreement_eta_le_0.1": float(
                np.mean(np.sign(predictions.predicted[small]) == np.sign(predictions.exact[small]))
            ),
            f"median_relative_error_eta_{predictions.eta.min():g}": float(np.median(rel)),
            "n_cases": int(pick.sum()),
        }
    summary["remainder"] = {
        "eta_range": [float(remainders.eta.min()), float(remainders.eta.max())],
        "slopes": [round(float(s), 4) for s in remainders.slope],
    }
    checks = {
        "lemma1 remainder slope within 2 ± 0.2": bool(np.all(np.abs(remainders.slope - 2) <= 0.2)),
        "theorem 1 prediction r >= 0.99 (eta <= 0.1)": summary["prediction"]["pg"][
            "pearson_r_eta_le_0.1"
        ]
        >= 0.99,
        "theorem 2 prediction r >= 0.99 (eta <= 0.1)": summary["prediction"]["npg"][
            "pearson_r_eta_le_0.1"
        ]
        >= 0.99,
    }
    summary["checks"] = checks
    return summary
