"""``entropy-rl <command>``: every pipeline step runs by hand too (Snakemake rules call these)."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["main"]


def _override(section: dict, args: argparse.Namespace, keys: tuple[str, ...]) -> None:
    """Command-line values of ``keys`` (when given) replace the config's."""
    for key in keys:
        if getattr(args, key) is not None:
            section[key] = getattr(args, key)


def _theory(args: argparse.Namespace) -> int:
    """Theory sweeps → figures + summary.json; exit 1 if a first-order check fails."""
    from entropy_rl.io import write_json
    from entropy_rl.plots.theory import plot_lemma1_remainder, plot_theory_predictions
    from entropy_rl.theory.sweeps import prediction_sweep, remainder_sweep, sweep_summary

    predictions = prediction_sweep(args.seed)
    remainders = remainder_sweep(args.seed)
    figures = Path(args.figures)
    plot_theory_predictions(predictions, figures / "theory_predicted_vs_exact")
    plot_lemma1_remainder(remainders, figures / "theory_lemma1_remainder")

    summary = sweep_summary(predictions, remainders, args.seed)
    checks = summary["checks"]
    write_json(args.summary, summary)
    for name, ok in checks.items():
        print(f"[{'pass' if ok else 'FAIL'}] {name}")
    return 0 if all(checks.values()) else 1


def _tabular(args: argparse.Namespace) -> int:
    """One tabular run → metrics.jsonl, config.json, summary.json in --out."""
    from tqdm import tqdm

    from entropy_rl.analysis import summarize_run
    from entropy_rl.config import load_config, parse_overrides, run_section
    from entropy_rl.io import run_lock, write_json, write_jsonl
    from entropy_rl.tabular import TabularConfig, run_tabular

    config_file = load_config(args.config, bare="tabular") if args.config else {}
    section = run_section(config_file.get("tabular", {}), args.method, "tabular")
    if args.loss:
        section["loss"] = args.loss
    section.setdefault("loss_config", {})
    section["loss_config"].update(parse_overrides(args.loss_config))
    _override(section, args, ("steps", "seed"))
    config = TabularConfig(**section)

    out = Path(args.out)
    method = args.method or config.loss
    desc = f"tabular {method} seed {config.seed}"
    trackers = _open_trackers(args, config.loggers, method, config.seed, config.to_dict(), 0, out)
    bar = tqdm(total=config.steps, desc=desc, unit="step", mininterval=2.0)
    with run_lock(out), bar, trackers:

        def progress(row: dict) -> None:
            bar.update(1)
            bar.set_postfix(reward=f"{row['reward_mean']:.2f}", entropy=f"{row['entropy']:.3f}")
            trackers.log(row)

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


def _announce_start(step: int) -> None:
    if step:
        print(f"resumed from step {step} (its checkpoint)", file=sys.stderr)


def _open_trackers(args, loggers, method: str, seed: int, config: dict, start: int, out: Path):
    """The run's trackers (``train.loggers`` / ``tabular.loggers``), named ``--run-name`` (the
    pipeline passes ``<profile>/<method>/base<b>/seed<k>``), writing under ``--tracking-dir``."""
    from entropy_rl.tracking import open_trackers

    name = args.run_name or f"entropy-rl/{method}/seed{seed}"
    folder = Path(args.tracking_dir) if args.tracking_dir else out / "tracking"
    return open_trackers(loggers, name, folder, config, start=start, run_dir=out)


def _quiet_transformers() -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


def _progress(total: int, desc: str, keys: tuple[str, ...]):
    """A tqdm bar (every 2 s at most) and the callback that advances it with a row's ``keys``;
    under torchrun only rank 0 shows one."""
    from tqdm import tqdm

    bar = tqdm(total=total, desc=desc, unit="step", mininterval=2.0, disable=not _main_rank())

    def update(row: dict) -> None:
        bar.update(1)
        bar.set_postfix({k: f"{row[k]:.3f}" for k in keys if row.get(k) is not None}, refresh=False)

    return bar, update


def _main_rank() -> bool:
    """Whether this process reports: rank 0 under torchrun, or the only process."""
    return os.environ.get("RANK", "0") == "0"


def _sft(args: argparse.Namespace) -> int:
    """The base model → model + tokenizer, sft_metrics.jsonl, base_summary.json in --out.

    ``base_model.source: pretrained`` records the pretrained model instead (nothing is trained).
    """
    from entropy_rl.base_model import BaseModelSettings, build_base_model
    from entropy_rl.config import load_config
    from entropy_rl.io import run_lock, write_json, write_jsonl
    from entropy_rl.tasks import ArithmeticTask, make_task

    _quiet_transformers()
    config = load_config(args.config) if args.config else {}
    task = make_task(config.get("task"))
    section = dict(config.get("base_model", {}))
    sft = dict(section.get("sft", {}))
    _override(sft, args, ("steps", "seed"))
    settings = BaseModelSettings.from_dict({**section, "sft": sft})
    out = Path(args.out)
    if settings.source == "pretrained":
        write_json(
            out / "base_summary.json",
            {"source": "pretrained", "model": settings.pretrained, "task": task.to_dict()},
        )
        print(f"base model: {settings.pretrained} (pretrained, not trained here)")
        return 0
    if not isinstance(task, ArithmeticTask):
        raise ValueError("SFT builds the toy base model from the synthetic task (task.kind: arithmetic); "
                         "with task.kind: dataset set base_model.source: pretrained")  # fmt: skip
    bar, update = _progress(settings.sft_settings().steps, "sft", ("loss",))
    with run_lock(out), bar:
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
    from entropy_rl.config import load_config, run_section
    from entropy_rl.io import run_lock, write_json
    from entropy_rl.tasks import make_task
    from entropy_rl.train import NonFiniteError, RLSettings, train
    from entropy_rl.train.loop import clear_run

    _quiet_transformers()
    config = load_config(args.config)
    task = make_task(config.get("task"))
    section = run_section(config.get("train", {}), args.method, "train")
    _override(section, args, ("seed", "steps", "model"))
    settings = RLSettings.from_dict(section)
    settings.check_model()
    out = Path(args.out)
    if settings.engine == "verl":
        from entropy_rl.engines.verl import run_with_verl

        if args.dry_run:
            return run_with_verl(settings, task, out, args.method, dry_run=True)
        with run_lock(out):
            return run_with_verl(settings, task, out, args.method)
    if args.dry_run:
        print(json.dumps(settings.to_dict(), indent=2))
        return 0
    bar, update = _progress(
        settings.steps, f"{args.method} seed {settings.seed}", ("accuracy", "entropy")
    )
    trackers = contextlib.ExitStack()  # opened once the run knows its first step
    opened = []

    def on_start(step: int) -> None:
        _announce_start(step)
        opened.append(trackers.enter_context(_open_trackers(
            args, settings.loggers, args.method, settings.seed, settings.to_dict(), step, out
        )))  # fmt: skip

    def on_step(row: dict) -> None:
        update(row)
        for tracker in opened:
            tracker.log(row)

    lock = run_lock(out) if _main_rank() else contextlib.nullcontext()
    try:
        with lock, bar, trackers:
            if args.restart and _main_rank():
                clear_run(out)
            rows = train(
                settings,
                out,
                task,
                resume=args.resume,  # --restart excludes it
                on_step=on_step,
                on_start=on_start if _main_rank() else None,
                restart_if_changed=args.restart_if_changed,
            )
    except NonFiniteError as err:
        print(
            f"entropy-rl train: {err}; the last checkpoint in {out / 'checkpoint'} is intact",
            file=sys.stderr,
        )
        return 1
    if not _main_rank():  # the other ranks of a torchrun run have nothing more to write
        return 0
    summary = {"method": args.method, **summarize_run(rows)}
    write_json(out / "summary.json", summary)
    print(
        f"{args.method} seed {settings.seed}: entropy {summary['entropy_initial']:.3f} -> "
        f"{summary['entropy_final']:.3f}, accuracy {summary['accuracy_initial']:.3f} -> {summary['accuracy_final']:.3f}"
    )
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    """Evaluate a saved model → samples/*.jsonl and summary.json in --out."""
    import torch

    from entropy_rl.config import load_config
    from entropy_rl.evaluate import EvaluateSettings, evaluate_model
    from entropy_rl.io import run_lock
    from entropy_rl.rollout import HFGenerator, load_model, load_tokenizer
    from entropy_rl.rollout.lean import LeanGenerator
    from entropy_rl.tasks import make_task

    _quiet_transformers()
    config = load_config(args.config) if args.config else {}
    section = dict(config.get("evaluate", {}))
    if args.benchmarks is not None:
        section["benchmarks"] = [b for b in args.benchmarks.split(",") if b]
    for key in ("k", "benchmark_path", "benchmark_limit"):
        value = getattr(args, key)
        if value is not None:
            section["benchmark_k" if key == "k" else key] = value
    settings = EvaluateSettings.from_dict(section)
    task = make_task(config.get("task"))
    model_dir = args.model
    if Path(model_dir).exists() and not (Path(model_dir) / "config.json").is_file():
        raise ValueError(f"--model {model_dir} is not a saved model folder (no config.json there)")
    torch.set_num_threads(args.threads)
    if settings.backend == "vllm":
        from entropy_rl.rollout.vllm import VLLMGenerator

        generator = VLLMGenerator(str(model_dir))
    else:
        device = (
            settings.device
            if settings.device != "auto"
            else ("cuda" if torch.cuda.is_available() else "cpu")
        )
        model = load_model(model_dir).to(device)
        sampler = LeanGenerator if settings.backend == "lean" else HFGenerator
        generator = sampler(model, load_tokenizer(model_dir))
    with run_lock(args.out):
        summary = evaluate_model(generator, task, settings, Path(args.out))
    for name, result in summary.items():
        print(
            f"{name:>28}: "
            + ", ".join(
                f"{k} {v:.3f}" for k, v in result.items() if k.startswith(("pass@", "avg@"))
            )
        )
    return 0


def _analyze(args: argparse.Namespace) -> int:
    """Law fits, method tables, science-acceptance checks and every study figure."""
    from entropy_rl.analysis.study import load_study
    from entropy_rl.config import load_config
    from entropy_rl.io import write_json
    from entropy_rl.plots.figures import draw_study_figures
    from entropy_rl.report import verdict_counts, write_study_tables

    config = load_config(args.config)
    results = Path(args.results)
    study = load_study(config, results)
    write_json(
        results / "analysis" / "analysis.json",
        {"lm": study.lm_analysis, "tabular": study.tab_analysis, "acceptance": study.checks},
    )
    write_study_tables(results / "tables", study)
    draw_study_figures(config, study, results / "figures")
    print(f"science acceptance: {verdict_counts(study.checks)} rows")
    for c in study.checks:
        verdict = c["verdict"].replace("fail", "FAIL")
        span = (
            f", 95% interval {c['interval'][0]:.3f} to {c['interval'][1]:.3f}"
            if c["interval"]
            else ""
        )
        print(f"  [{verdict}] {c['check']}: {c['value']:.3f}{span} (target {c['target']})")
    return 0


def _report(args: argparse.Namespace) -> int:
    """One self-contained HTML page: acceptance, theory, collapse, law, mechanism, interventions."""
    from entropy_rl.config import load_config
    from entropy_rl.io import write_text
    from entropy_rl.report import study_report

    page, passed, total = study_report(load_config(args.config), Path(args.results), args.config)
    write_text(args.out, page)
    print(f"report: {args.out} ({passed}/{total} acceptance checks pass)")
    return 0


def _lm_eval_tasks(args: argparse.Namespace) -> int:
    """Write lm-eval task YAMLs that use this suite's template, loaders and grader."""
    from entropy_rl.lm_eval_adapter import write_tasks

    names = write_tasks(
        args.out, args.benchmarks.split(","), args.benchmark_path, args.template, args.max_gen_toks
    )
    print(f"wrote {', '.join(names)} to {args.out}; run: lm_eval --model hf --model_args pretrained=DIR "
          f"--tasks {','.join(names)} --include_path {args.out}")  # fmt: skip
    return 0


def _token_entropy(args: argparse.Namespace) -> int:
    """The token-entropy page: the same held-out prompts sampled by each policy, tokens shaded."""
    from entropy_rl.config import load_config, parse_overrides
    from entropy_rl.evaluate import EvaluateSettings
    from entropy_rl.io import write_text
    from entropy_rl.tasks import make_task
    from entropy_rl.token_view import fork_threshold, render_token_view, trace_policies

    _quiet_transformers()
    config = load_config(args.config)
    settings = EvaluateSettings.from_dict(config.get("evaluate"))
    problems = make_task(config.get("task")).problems("heldout", args.problems, 0)
    policies = {name: str(folder) for name, folder in parse_overrides(args.policy).items()}
    traces = trace_policies(policies, problems, settings.template, settings.temperature,
                            settings.max_new_tokens, seed=settings.seed)  # fmt: skip
    threshold = fork_threshold(next(iter(traces.values())))  # the first policy: the base model
    prompts = {str(p.id): p.problem for p in problems}
    write_text(args.out, render_token_view(traces, prompts, threshold, shown=args.shown))
    print(f"token entropy: {args.out} ({len(traces)} policies, {len(problems)} prompts)")
    return 0


def _tracking_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--run-name", help="the run's name in the trackers (default entropy-rl/<method>/seed<k>)"
    )
    parser.add_argument(
        "--tracking-dir", help="where the trackers (loggers) write (default: --out/tracking)"
    )


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
    _tracking_arguments(tabular)
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
        "--dry-run",
        action="store_true",
        help="print the resolved settings (with train.engine: verl, verl's command) and stop",
    )
    restart = train.add_mutually_exclusive_group()
    restart.add_argument(
        "--resume",
        action="store_true",
        help="continue from the run's last checkpoint (a checkpoint of other settings or another "
        "base model stops the run, naming what differs; nothing is removed)",
    )
    restart.add_argument(
        "--restart", action="store_true", help="remove the run in --out and start it from step 0"
    )
    train.add_argument(
        "--restart-if-changed",
        action="store_true",
        help="with --resume: start over from step 0 when the checkpoint is of other settings "
        "(the pipeline's choice: Snakemake reruns a job whose inputs changed)",
    )
    _tracking_arguments(train)
    train.set_defaults(run=_train)

    evaluate = commands.add_parser(
        "evaluate",
        help="avg@k / pass@k of a saved model on the synthetic splits and the math benchmarks",
        description="Every sample is written to --out/samples/*.jsonl, the numbers to --out/summary.json.",
    )
    evaluate.add_argument("--model", required=True, help="a saved model folder (save_pretrained)")
    evaluate.add_argument("--config", help="YAML with `task:` and `evaluate:` sections")
    evaluate.add_argument(
        "--benchmarks", help="comma-separated benchmark names (overrides the config)"
    )
    evaluate.add_argument(
        "--benchmark-path", dest="benchmark_path", help="local file pattern, e.g. data/{name}.jsonl"
    )
    evaluate.add_argument(
        "--benchmark-limit", dest="benchmark_limit", type=int, help="rows per benchmark (0: all)"
    )
    evaluate.add_argument("--k", type=int, help="samples per benchmark problem")
    evaluate.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    evaluate.add_argument("--out", required=True, help="folder for samples/ and summary.json")
    evaluate.set_defaults(run=_evaluate)

    analyze = commands.add_parser(
        "analyze",
        help="law fits, method tables, science-acceptance checks and the study figures",
        description="Reads the runs of a pipeline config under --results; writes analysis/, tables/, figures/.",
    )
    analyze.add_argument("--config", required=True, help="the resolved pipeline config (YAML)")
    analyze.add_argument("--results", required=True, help="results/<profile> folder")
    analyze.set_defaults(run=_analyze)

    report = commands.add_parser(
        "report", help="the HTML report of a pipeline run (figures embedded)"
    )
    report.add_argument("--config", required=True, help="the resolved pipeline config (YAML)")
    report.add_argument("--results", required=True, help="results/<profile> folder")
    report.add_argument("--out", required=True, help="path of the HTML file")
    report.set_defaults(run=_report)

    lm_eval = commands.add_parser(
        "lm-eval-tasks",
        help="write lm-eval-harness tasks using this suite's prompt template and grader",
        description="One task YAML per benchmark (entropy_rl_<name>), reading local files offline.",
    )
    lm_eval.add_argument("--benchmarks", required=True, help="comma-separated benchmark names")
    lm_eval.add_argument(
        "--benchmark-path", dest="benchmark_path", required=True, help="file pattern with {name}"
    )
    lm_eval.add_argument(
        "--template", default="qwen25-math-cot", help="prompt template (default: qwen25-math-cot)"
    )
    lm_eval.add_argument(
        "--max-gen-toks", dest="max_gen_toks", type=int, default=1024, help="longest response"
    )
    lm_eval.add_argument(
        "--out", required=True, help="folder for the task YAMLs (pass it as --include_path)"
    )
    lm_eval.set_defaults(run=_lm_eval_tasks)

    token = commands.add_parser(
        "token-entropy",
        help="an HTML page of sampled responses, each token shaded by its entropy, forks marked",
        description="The same held-out prompts sampled by each policy at evaluate.temperature; "
        "forks are the first policy's (the base model's) highest-entropy tokens that carry 80% of "
        "its entropy, and any policy's tokens above that bar.",
    )
    token.add_argument("--config", required=True, help="YAML with `task:` and `evaluate:` sections")
    token.add_argument(
        "--policy", nargs="+", required=True, metavar="NAME=FOLDER",
        help="saved models in display order, the base model first, e.g. base=DIR grpo=DIR",
    )  # fmt: skip
    token.add_argument("--problems", type=int, default=32, help="held-out prompts sampled")
    token.add_argument("--shown", type=int, default=4, help="prompts shown token by token")
    token.add_argument("--out", required=True, help="path of the HTML file")
    token.set_defaults(run=_token_entropy)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except (ValueError, OSError) as err:
        # bad config or input, a missing file, an unwritable folder or a full disk: one clear line
        print(f"entropy-rl {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
