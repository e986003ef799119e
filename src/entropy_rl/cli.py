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


def _tabular(args: argparse.Namespace) -> int:
    """One tabular run → metrics.jsonl, config.json, summary.json in --out."""
    from tqdm import tqdm

    from entropy_rl.analysis import summarize_run
    from entropy_rl.config import load_yaml, parse_overrides, select_method
    from entropy_rl.io import write_json, write_jsonl
    from entropy_rl.tabular import TabularConfig, run_tabular

    section = load_yaml(args.config) if args.config else {}
    section = dict(section.get("tabular", section))
    methods = section.pop("methods", {})
    section.pop("seeds", None)
    if args.method:
        method = select_method(methods, args.method, "tabular.methods")
        section["loss"] = method["loss"]
        section["loss_config"] = dict(method.get("loss_config", {}))
    elif args.loss:
        section["loss"] = args.loss
    section.setdefault("loss_config", {})
    section["loss_config"].update(parse_overrides(args.loss_config))
    for key in ("steps", "seed"):
        if getattr(args, key) is not None:
            section[key] = getattr(args, key)
    config = TabularConfig(**section)

    out = Path(args.out)
    desc = f"tabular {args.method or config.loss} seed {config.seed}"
    with tqdm(total=config.steps, desc=desc, unit="step", mininterval=2.0) as bar:

        def progress(row: dict) -> None:
            bar.update(1)
            bar.set_postfix(reward=f"{row['reward_mean']:.2f}", entropy=f"{row['entropy']:.3f}")

        rows = run_tabular(config, on_step=progress)
    write_json(
        out / "config.json", {"tabular": config.to_dict(), "method": args.method or config.loss}
    )
    write_jsonl(out / "metrics.jsonl", rows)
    summary = summarize_run(rows)
    write_json(out / "summary.json", summary)
    print(
        f"entropy {summary['entropy_initial']:.3f} -> {summary['entropy_final']:.3f}, "
        f"accuracy {summary['accuracy_initial']:.3f} -> {summary['accuracy_final']:.3f}, "
        f"measured vs predicted entropy change r = {summary['entropy_change_corr']:.4f}"
    )
    return 0


def _quiet_transformers() -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


def _progress(total: int, desc: str, keys: tuple[str, ...]):
    """A tqdm bar (every 2 s at most) and the callback that advances it with a row's ``keys``."""
    from tqdm import tqdm

    bar = tqdm(total=total, desc=desc, unit="step", mininterval=2.0)

    def update(row: dict) -> None:
        bar.update(1)
        bar.set_postfix({k: f"{row[k]:.3f}" for k in keys if row.get(k) is not None}, refresh=False)

    return bar, update


def _sft(args: argparse.Namespace) -> int:
    """Build the toy base model → model + tokenizer, sft_metrics.jsonl, summary.json in --out."""
    from entropy_rl.base_model import BaseModelSettings, build_base_model
    from entropy_rl.config import load_yaml
    from entropy_rl.io import write_json, write_jsonl
    from entropy_rl.tasks import ArithmeticTask

    _quiet_transformers()
    config = load_yaml(args.config) if args.config else {}
    task = ArithmeticTask.from_dict(config.get("task"))
    section = dict(config.get("base_model", {}))
    sft = dict(section.get("sft", {}))
    for key in ("steps", "seed"):
        if getattr(args, key) is not None:
            sft[key] = getattr(args, key)
    settings = BaseModelSettings.from_dict({**section, "sft": sft})
    out = Path(args.out)
    bar, update = _progress(settings.sft_settings().steps, "sft", ("loss",))
    with bar:
        rows, summary, samples = build_base_model(task, settings, out, on_step=update)
    write_jsonl(out / "sft_metrics.jsonl", rows)
    write_jsonl(out / "base_eval_samples.jsonl", samples)
    write_json(
        out / "base_summary.json",
        {**summary, "task": task.to_dict(), "base_model": settings.to_dict()},
    )
    print(
        f"base model: {summary['parameters']:,} parameters, SFT {summary['sft_seconds']:.0f} s, "
        f"held-out pass@1 at T=1 {summary['heldout_pass@1_t1']:.3f}, greedy {summary['heldout_accuracy_greedy']:.3f}"
    )
    return 0


def _train(args: argparse.Namespace) -> int:
    """One RL run of one method and seed → metrics.jsonl, checkpoint/, model/, summary.json."""
    from entropy_rl.analysis import summarize_run
    from entropy_rl.config import load_yaml, select_method
    from entropy_rl.io import write_json
    from entropy_rl.tasks import ArithmeticTask
    from entropy_rl.train import NonFiniteError, RLSettings, train

    _quiet_transformers()
    config = load_yaml(args.config)
    task = ArithmeticTask.from_dict(config.get("task"))
    section = dict(config.get("train", {}))
    methods = section.pop("methods", {})
    section.pop("seeds", None)
    method = select_method(methods, args.method, "train.methods")
    section.update(loss=method["loss"], loss_config=dict(method.get("loss_config", {})))
    for key in ("seed", "steps", "model"):
        if getattr(args, key) is not None:
            section[key] = getattr(args, key)
    settings = RLSettings.from_dict(section)
    settings.check_model()
    out = Path(args.out)
    bar, update = _progress(
        settings.steps, f"{args.method} seed {settings.seed}", ("accuracy", "entropy")
    )
    try:
        with bar:
            rows = train(settings, out, task, resume=args.resume, on_step=update)
    except NonFiniteError as err:
        print(
            f"entropy-rl train: {err}; the last checkpoint in {out / 'checkpoint'} is intact",
            file=sys.stderr,
        )
        return 1
    summary = {"method": args.method, **summarize_run(rows)}
    write_json(out / "summary.json", summary)
    print(
        f"{args.method} seed {settings.seed}: entropy {summary['entropy_initial']:.3f} -> "
        f"{summary['entropy_final']:.3f}, accuracy {summary['accuracy_initial']:.3f} -> {summary['accuracy_final']:.3f}"
    )
    return 0


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

    from entropy_rl.losses import available_policy_losses, get_policy_loss

    losses_help = "; ".join(f"{n}: {get_policy_loss(n).summary}" for n in available_policy_losses())
    tabular = commands.add_parser(
        "tabular",
        help="RL on a tabular softmax policy with the registered losses (seconds)",
        description=f"Registered losses — {losses_help}",
    )
    tabular.add_argument(
        "--config", help="YAML with a `tabular:` section (e.g. config/config.yaml)"
    )
    pick = tabular.add_mutually_exclusive_group()
    pick.add_argument("--method", help="a method of the config's tabular.methods")
    pick.add_argument(
        "--loss", choices=available_policy_losses(), help="a registered loss, its defaults"
    )
    tabular.add_argument(
        "--loss-config",
        nargs="*",
        metavar="KEY=VALUE",
        help="loss settings, e.g. r=0.1 omega_low=0.2",
    )
    tabular.add_argument("--steps", type=int, help="training steps (overrides the config)")
    tabular.add_argument("--seed", type=int, help="random seed (overrides the config)")
    tabular.add_argument(
        "--out", required=True, help="folder for metrics.jsonl, config.json, summary.json"
    )
    tabular.set_defaults(run=_tabular)

    sft = commands.add_parser(
        "sft",
        help="build the toy base model: char tokenizer, tiny decoder, SFT, evaluation",
        description="Trains the embedded base model from scratch on the synthetic task (CPU, minutes).",
    )
    sft.add_argument(
        "--config", help="YAML with `task:` and `base_model:` sections (default: built-ins)"
    )
    sft.add_argument("--steps", type=int, help="SFT steps (overrides base_model.sft.steps)")
    sft.add_argument("--seed", type=int, help="seed (overrides base_model.sft.seed)")
    sft.add_argument("--out", required=True, help="folder for the saved model and its reports")
    sft.set_defaults(run=_sft)

    train = commands.add_parser(
        "train",
        help="one RL run: a method of the config's train.methods, one seed",
        description=f"RL with a registered loss. Registered losses — {losses_help}",
    )
    train.add_argument("--config", required=True, help="YAML with `task:` and `train:` sections")
    train.add_argument("--method", required=True, help="a method of train.methods")
    train.add_argument("--seed", type=int, help="seed (overrides train.seed)")
    train.add_argument("--steps", type=int, help="RL steps (overrides train.steps)")
    train.add_argument("--model", help="starting model folder (overrides train.model)")
    train.add_argument(
        "--out", required=True, help="run folder: metrics.jsonl, checkpoint/, model/, summary.json"
    )
    train.add_argument(
        "--resume", action="store_true", help="continue from the run's last checkpoint"
    )
    train.set_defaults(run=_train)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except (ValueError, FileNotFoundError) as err:
        # bad config or input: one clear line, no traceback
        print(f"entropy-rl {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
