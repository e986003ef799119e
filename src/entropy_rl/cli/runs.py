"""The commands that train: the theory checks, a tabular run, the base model's SFT, an RL run."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path

from entropy_rl.cli.common import (
    TRACKING,
    announce_start,
    arg,
    command,
    exclusive,
    losses_help,
    main_rank,
    open_run_trackers,
    override,
    progress,
    quiet_transformers,
)


@command(
    "theory", "check Lemma 1 / Theorems 1-2 numerically and draw the theory figures",
    arg("--seed", type=int, default=0, help="random seed (default: 0)"),
    arg("--summary", required=True, help="path of the summary JSON to write"),
    arg("--figures", required=True, help="folder for the PNG and PDF figures"),
    description="Random tabular policies: first-order entropy predictions vs the exact change.",
)  # fmt: skip
def theory(args: argparse.Namespace) -> int:
    """Theory sweeps → figures + summary.json; exit 1 if a first-order check fails."""
    from entropy_rl.io import write_json
    from entropy_rl.plots.theory import plot_lemma1_remainder, plot_theory_predictions
    from entropy_rl.theory.sweeps import prediction_sweep, remainder_sweep, sweep_summary

    predictions, remainders = prediction_sweep(args.seed), remainder_sweep(args.seed)
    plot_theory_predictions(predictions, Path(args.figures) / "theory_predicted_vs_exact")
    plot_lemma1_remainder(remainders, Path(args.figures) / "theory_lemma1_remainder")
    summary = sweep_summary(predictions, remainders, args.seed)
    write_json(args.summary, summary)
    for name, ok in summary["checks"].items():
        print(f"[{'pass' if ok else 'FAIL'}] {name}")
    return 0 if all(summary["checks"].values()) else 1


def _losses() -> list[str]:
    from entropy_rl.losses import available_policy_losses

    return available_policy_losses()


class _LossChoices:
    """The registered losses, looked up when argparse checks a value (not at import)."""

    def __contains__(self, name: object) -> bool:
        return name in _losses()

    def __iter__(self):
        return iter(_losses())


@command(
    "tabular", "RL on a tabular softmax policy with the registered losses (seconds)",
    arg("--config", help="YAML with a `tabular:` section (e.g. config/config.yaml)"),
    exclusive(arg("--method", help="a method of the config's tabular.methods"),
              arg("--loss", choices=_LossChoices(), help="a registered loss, its defaults")),
    arg("--loss-config", nargs="*", metavar="KEY=VALUE", help="loss settings, e.g. r=0.1 omega_low=0.2"),
    arg("--steps", type=int, help="training steps (overrides the config)"),
    arg("--seed", type=int, help="random seed (overrides the config)"),
    arg("--out", required=True, help="folder for metrics.jsonl, config.json, summary.json"),
    *TRACKING, description=losses_help,
)  # fmt: skip
def tabular(args: argparse.Namespace) -> int:
    """One tabular run → metrics.jsonl, config.json, summary.json in --out."""
    from entropy_rl.analysis import summarize_run
    from entropy_rl.config import load_config, parse_overrides, run_section
    from entropy_rl.io import run_lock, write_json, write_jsonl
    from entropy_rl.tabular import TabularConfig, run_tabular

    config_file = load_config(args.config, bare="tabular") if args.config else {}
    section = run_section(config_file.get("tabular", {}), args.method, "tabular")
    section["loss"] = args.loss or section.get("loss", "grpo")
    section["loss_config"] = {**section.get("loss_config", {}), **parse_overrides(args.loss_config)}
    override(section, args, ("steps", "seed"))
    config, out, method = TabularConfig(**section), Path(args.out), args.method or section["loss"]
    trackers = open_run_trackers(
        args, config.loggers, method, config.seed, config.to_dict(), 0, out
    )
    bar, update = progress(
        config.steps, f"tabular {method} seed {config.seed}", ("reward_mean", "entropy")
    )
    with run_lock(out), bar, trackers:
        rows = run_tabular(config, on_step=lambda row: (update(row), trackers.log(row)))
        write_json(out / "config.json", {"tabular": config.to_dict(), "method": method})
        write_jsonl(out / "metrics.jsonl", rows)
        write_json(out / "summary.json", summary := summarize_run(rows))
    print(f"entropy {summary['entropy_initial']:.3f} -> {summary['entropy_final']:.3f}, accuracy "
          f"{summary['accuracy_initial']:.3f} -> {summary['accuracy_final']:.3f}, measured vs "
          f"predicted entropy change r = {summary['entropy_change_corr']:.4f}")  # fmt: skip
    return 0


@command(
    "sft", "build the toy base model: char tokenizer, tiny decoder, SFT, evaluation",
    arg("--config", help="YAML with `task:` and `base_model:` sections (default: built-ins)"),
    arg("--steps", type=int, help="SFT steps (overrides base_model.sft.steps)"),
    arg("--seed", type=int, help="seed (overrides base_model.sft.seed)"),
    arg("--out", required=True, help="folder for the saved model and its reports"),
    description="Trains the embedded base model from scratch on the synthetic task (CPU, minutes).",
)  # fmt: skip
def sft(args: argparse.Namespace) -> int:
    """The base model → model + tokenizer, sft_metrics.jsonl, base_summary.json in --out;
    ``base_model.source: pretrained`` records the pretrained model instead (nothing is trained)."""
    from entropy_rl.base_model import BaseModelSettings, build_base_model
    from entropy_rl.config import load_config
    from entropy_rl.io import run_lock, write_json, write_jsonl
    from entropy_rl.tasks import ArithmeticTask, make_task

    quiet_transformers()
    config = load_config(args.config) if args.config else {}
    task, section = make_task(config.get("task")), dict(config.get("base_model", {}))
    override(steps := dict(section.get("sft", {})), args, ("steps", "seed"))
    settings, out = BaseModelSettings.from_dict({**section, "sft": steps}), Path(args.out)
    if settings.source == "pretrained":
        write_json(out / "base_summary.json",
                   {"source": "pretrained", "model": settings.pretrained, "task": task.to_dict()})  # fmt: skip
        print(f"base model: {settings.pretrained} (pretrained, not trained here)")
        return 0
    if not isinstance(task, ArithmeticTask):
        raise ValueError("SFT builds the toy base model from the synthetic task (task.kind: arithmetic); "
                         "with task.kind: dataset set base_model.source: pretrained")  # fmt: skip
    bar, update = progress(settings.sft_settings().steps, "sft", ("loss",))
    with run_lock(out), bar:
        rows, summary, samples = build_base_model(task, settings, out, on_step=update)
        write_jsonl(out / "sft_metrics.jsonl", rows)
        write_jsonl(out / "base_eval_samples.jsonl", samples)
        write_json(out / "base_summary.json",
                   {**summary, "task": task.to_dict(), "base_model": settings.to_dict()})  # fmt: skip
    print(f"base model: {summary['parameters']:,} parameters, SFT {summary['sft_seconds']:.0f} s, "
          f"held-out pass@1 at T=1 {summary['heldout_pass@1_t1']:.3f}, greedy "
          f"{summary['heldout_accuracy_greedy']:.3f}")  # fmt: skip
    return 0


@command(
    "train", "one RL run: a method of the config's train.methods, one seed",
    arg("--config", required=True, help="YAML with `task:` and `train:` sections"),
    arg("--method", required=True, help="a method of train.methods"),
    arg("--seed", type=int, help="seed (overrides train.seed)"),
    arg("--steps", type=int, help="RL steps (overrides train.steps)"),
    arg("--model", help="starting model folder (overrides train.model)"),
    arg("--out", required=True, help="run folder: metrics.jsonl, checkpoint/, model/, summary.json"),
    arg("--dry-run", action="store_true",
        help="print the resolved settings (with train.engine: verl, verl's command) and stop"),
    exclusive(
        arg("--resume", action="store_true",
            help="continue from the run's last checkpoint (a checkpoint of other settings or "
            "another base model stops the run, naming what differs; nothing is removed)"),
        arg("--restart", action="store_true", help="remove the run in --out and start it from step 0"),
    ),
    arg("--restart-if-changed", action="store_true",
        help="with --resume: start over from step 0 when the checkpoint is of other settings "
        "(the pipeline's choice: Snakemake reruns a job whose inputs changed)"),
    *TRACKING, description=lambda: f"RL with a registered loss. {losses_help()}",
)  # fmt: skip
def train(args: argparse.Namespace) -> int:
    """One RL run of one method and seed → metrics.jsonl, checkpoint/, model/, summary.json."""
    from entropy_rl.config import load_config, run_section
    from entropy_rl.io import run_lock
    from entropy_rl.tasks import make_task
    from entropy_rl.train import RLSettings

    quiet_transformers()
    config = load_config(args.config)
    task = make_task(config.get("task"))
    override(section := run_section(config.get("train", {}), args.method, "train"), args,
             ("seed", "steps", "model"))  # fmt: skip
    settings = RLSettings.from_dict(section)
    settings.check_model()
    out = Path(args.out)
    if settings.engine == "verl":
        from entropy_rl.engines.verl import run_with_verl

        lock = contextlib.nullcontext() if args.dry_run else run_lock(out)
        with lock:
            return run_with_verl(settings, task, out, args.method, dry_run=args.dry_run)
    if args.dry_run:
        print(json.dumps(settings.to_dict(), indent=2))
        return 0
    return _train_run(args, settings, task, out)


def _train_run(args: argparse.Namespace, settings, task, out: Path) -> int:
    """Train with a progress bar and the run's trackers (opened once the run knows its first
    step); a NaN/inf stops it with exit status 1, its last checkpoint intact."""
    from entropy_rl.analysis import summarize_run
    from entropy_rl.io import run_lock, write_json
    from entropy_rl.train import NonFiniteError, train
    from entropy_rl.train.loop import clear_run

    bar, update = progress(
        settings.steps, f"{args.method} seed {settings.seed}", ("accuracy", "entropy")
    )
    trackers, opened = contextlib.ExitStack(), []

    def on_start(step: int) -> None:
        announce_start(step)
        opened.append(trackers.enter_context(open_run_trackers(
            args, settings.loggers, args.method, settings.seed, settings.to_dict(), step, out)))  # fmt: skip

    def on_step(row: dict) -> None:
        update(row)
        for tracker in opened:
            tracker.log(row)

    try:
        with run_lock(out) if main_rank() else contextlib.nullcontext(), bar, trackers:
            if args.restart and main_rank():
                clear_run(out)
            rows = train(settings, out, task, resume=args.resume, on_step=on_step,  # --restart excludes it
                         on_start=on_start if main_rank() else None,
                         restart_if_changed=args.restart_if_changed)  # fmt: skip
    except NonFiniteError as err:
        print(f"entropy-rl train: {err}; the last checkpoint in {out / 'checkpoint'} is intact",
              file=sys.stderr)  # fmt: skip
        return 1
    if not main_rank():  # the other ranks of a torchrun run have nothing more to write
        return 0
    write_json(out / "summary.json", summary := {"method": args.method, **summarize_run(rows)})
    print(f"{args.method} seed {settings.seed}: entropy {summary['entropy_initial']:.3f} -> "
          f"{summary['entropy_final']:.3f}, accuracy {summary['accuracy_initial']:.3f} -> "
          f"{summary['accuracy_final']:.3f}")  # fmt: skip
    return 0
