"""``entropy-rl <command>``: every pipeline step runs by hand too (Snakemake rules call these)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["main"]


def _theory(args: argparse.Namespace) -> int:
    """Theory sweeps → figures + summary.json; exit 1 if a first-order check fails."""
    from entropy_rl.io import write_json
    from entropy_rl.plots.theory import plot_lemma1_remainder, plot_theory_predictions
    from entropy_rl.theory.sweeps import prediction_sweep, remainder_sweep

    predictions = prediction_sweep(args.seed)
    remainders = remainder_sweep(args.seed)
    figures = Path(args.figures)
    plot_theory_predictions(predictions, figures / "theory_predicted_vs_exact")
    plot_lemma1_remainder(remainders, figures / "theory_lemma1_remainder")

    summary: dict = {"seed": args.seed, "prediction": {}}
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
    write_json(args.summary, summary)
    for name, ok in checks.items():
        print(f"[{'pass' if ok else 'FAIL'}] {name}")
    return 0 if all(checks.values()) else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="entropy-rl",
        description="Study, teach and reproduce entropy collapse in RL for reasoning LMs.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    theory = commands.add_parser(
        "theory",
        help="check Lemma 1 / Theorems 1-2 numerically and draw the theory figures",
        description="Random tabular policies: first-order entropy predictions vs the exact change.",
    )
    theory.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    theory.add_argument("--summary", required=True, help="path of the summary JSON to write")
    theory.add_argument("--figures", required=True, help="folder for the PNG and PDF figures")
    theory.set_defaults(run=_theory)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
