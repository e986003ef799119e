"""The commands that read runs: evaluation, the study's analysis and report, the lm-eval tasks
and the token-entropy page."""

from __future__ import annotations

import argparse
from pathlib import Path

from entropy_rl.cli.common import arg, command, quiet_transformers


@command(
    "evaluate", "avg@k / pass@k of a saved model on the synthetic splits and the math benchmarks",
    arg("--model", required=True, help="a saved model folder (save_pretrained)"),
    arg("--config", help="YAML with `task:` and `evaluate:` sections"),
    arg("--benchmarks", help="comma-separated benchmark names (overrides the config)"),
    arg("--benchmark-path", dest="benchmark_path", help="local file pattern, e.g. data/{name}.jsonl"),
    arg("--benchmark-limit", dest="benchmark_limit", type=int, help="rows per benchmark (0: all)"),
    arg("--k", type=int, help="samples per benchmark problem"),
    arg("--threads", type=int, default=1, help="torch CPU threads (default 1)"),
    arg("--out", required=True, help="folder for samples/ and summary.json"),
    description="Every sample is written to --out/samples/*.jsonl, the numbers to --out/summary.json.",
)  # fmt: skip
def evaluate(args: argparse.Namespace) -> int:
    """Evaluate a saved model → samples/*.jsonl and summary.json in --out."""
    import torch

    from entropy_rl.config import load_config
    from entropy_rl.evaluate import EvaluateSettings, evaluate_model
    from entropy_rl.io import run_lock
    from entropy_rl.tasks import make_task

    quiet_transformers()
    config = load_config(args.config) if args.config else {}
    section = dict(config.get("evaluate", {}))
    if args.benchmarks is not None:
        section["benchmarks"] = [b for b in args.benchmarks.split(",") if b]
    for key in ("k", "benchmark_path", "benchmark_limit"):
        if getattr(args, key) is not None:
            section["benchmark_k" if key == "k" else key] = getattr(args, key)
    settings = EvaluateSettings.from_dict(section)
    if Path(args.model).exists() and not (Path(args.model) / "config.json").is_file():
        raise ValueError(f"--model {args.model} is not a saved model folder (no config.json there)")
    torch.set_num_threads(args.threads)
    with run_lock(args.out):
        summary = evaluate_model(_sampler(settings, args.model), make_task(config.get("task")),
                                 settings, Path(args.out))  # fmt: skip
    for name, result in summary.items():
        shown = ", ".join(
            f"{k} {v:.3f}" for k, v in result.items() if k.startswith(("pass@", "avg@"))
        )
        print(f"{name:>28}: {shown}")
    return 0


def _sampler(settings, model_dir: str):
    """The evaluation's sampler: a vLLM engine, or the model in this process (lean or hf)."""
    import torch

    from entropy_rl.rollout import HFGenerator, load_model, load_tokenizer
    from entropy_rl.rollout.lean import LeanGenerator

    if settings.backend == "vllm":
        from entropy_rl.rollout.vllm import VLLMGenerator

        return VLLMGenerator(str(model_dir))
    auto = "cuda" if torch.cuda.is_available() else "cpu"
    model = load_model(model_dir).to(settings.device if settings.device != "auto" else auto)
    sampler = LeanGenerator if settings.backend == "lean" else HFGenerator
    return sampler(model, load_tokenizer(model_dir))


@command(
    "analyze", "law fits, method tables, science-acceptance checks and the study figures",
    arg("--config", required=True, help="the resolved pipeline config (YAML)"),
    arg("--results", required=True, help="results/<profile> folder"),
    description="Reads the runs of a pipeline config under --results; writes analysis/, tables/, figures/.",
)  # fmt: skip
def analyze(args: argparse.Namespace) -> int:
    """Law fits, method tables, science-acceptance checks and every study figure."""
    from entropy_rl.analysis.study import load_study
    from entropy_rl.config import load_config
    from entropy_rl.io import write_json
    from entropy_rl.plots.figures import draw_study_figures
    from entropy_rl.report import verdict_counts, write_study_tables

    config, results = load_config(args.config), Path(args.results)
    study = load_study(config, results)
    write_json(results / "analysis" / "analysis.json",
               {"lm": study.lm_analysis, "tabular": study.tab_analysis, "acceptance": study.checks})  # fmt: skip
    write_study_tables(results / "tables", study)
    draw_study_figures(config, study, results / "figures")
    print(f"science acceptance: {verdict_counts(study.checks)} rows")
    for c in study.checks:
        span = (
            f", 95% interval {c['interval'][0]:.3f} to {c['interval'][1]:.3f}"
            if c["interval"]
            else ""
        )
        verdict = c["verdict"].replace("fail", "FAIL")
        print(f"  [{verdict}] {c['check']}: {c['value']:.3f}{span} (target {c['target']})")
    return 0


@command(
    "report", "the HTML report of a pipeline run (figures embedded)",
    arg("--config", required=True, help="the resolved pipeline config (YAML)"),
    arg("--results", required=True, help="results/<profile> folder"),
    arg("--out", required=True, help="path of the HTML file"),
)  # fmt: skip
def report(args: argparse.Namespace) -> int:
    """One self-contained HTML page: acceptance, theory, collapse, law, mechanism, interventions."""
    from entropy_rl.config import load_config
    from entropy_rl.io import write_text
    from entropy_rl.report import study_report

    page, passed, total = study_report(load_config(args.config), Path(args.results), args.config)
    write_text(args.out, page)
    print(f"report: {args.out} ({passed}/{total} acceptance checks pass)")
    return 0


@command(
    "stamp", "the provenance stamp of a run's files in docs/ (profile, commit, machine, digests)",
    arg("--config", required=True, help="the resolved pipeline config (YAML)"),
    arg("--source", default="config/config.yaml", help="the profile file(s) the run was given"),
    arg("--out", required=True, help="path of the stamp (markdown)"),
    arg("files", nargs="+", help="the files the run copied into docs/"),
)  # fmt: skip
def stamp(args: argparse.Namespace) -> int:
    """Write the stamp that says which profile, commit and machine made the docs' files."""
    import datetime

    from entropy_rl.config import load_config
    from entropy_rl.io import write_text
    from entropy_rl.provenance import provenance_markdown

    config = load_config(args.config)
    text = provenance_markdown(
        config["profile"], args.source, args.files, datetime.date.today().isoformat()
    )
    write_text(args.out, text)
    print(f"stamp: {args.out} ({len(args.files)} files)")
    return 0


@command(
    "lm-eval-tasks", "write lm-eval-harness tasks using this suite's prompt template and grader",
    arg("--benchmarks", required=True, help="comma-separated benchmark names"),
    arg("--benchmark-path", dest="benchmark_path", required=True, help="file pattern with {name}"),
    arg("--template", default="qwen25-math-cot", help="prompt template (default: qwen25-math-cot)"),
    arg("--max-gen-toks", dest="max_gen_toks", type=int, default=1024, help="longest response"),
    arg("--out", required=True, help="folder for the task YAMLs (pass it as --include_path)"),
    description="One task YAML per benchmark (entropy_rl_<name>), reading local files offline.",
)  # fmt: skip
def lm_eval_tasks(args: argparse.Namespace) -> int:
    """Write lm-eval task YAMLs that use this suite's template, loaders and grader."""
    from entropy_rl.lm_eval_adapter import write_tasks

    names = write_tasks(
        args.out, args.benchmarks.split(","), args.benchmark_path, args.template, args.max_gen_toks
    )
    print(f"wrote {', '.join(names)} to {args.out}; run: lm_eval --model hf --model_args pretrained=DIR "
          f"--tasks {','.join(names)} --include_path {args.out}")  # fmt: skip
    return 0


@command(
    "token-entropy", "an HTML page of sampled responses, each token shaded by its entropy, forks marked",
    arg("--config", required=True, help="YAML with `task:` and `evaluate:` sections"),
    arg("--policy", nargs="+", required=True, metavar="NAME=FOLDER",
        help="saved models in display order, the base model first, e.g. base=DIR grpo=DIR"),
    arg("--problems", type=int, default=32, help="held-out prompts sampled"),
    arg("--shown", type=int, default=4, help="prompts shown token by token"),
    arg("--out", required=True, help="path of the HTML file"),
    description="The same held-out prompts sampled by each policy at evaluate.temperature; forks "
    "are the first policy's (the base model's) highest-entropy tokens that carry 80% of its "
    "entropy, and any policy's tokens above that bar.",
)  # fmt: skip
def token_entropy(args: argparse.Namespace) -> int:
    """The token-entropy page: the same held-out prompts sampled by each policy, tokens shaded."""
    from entropy_rl.config import load_config, parse_overrides
    from entropy_rl.evaluate import EvaluateSettings
    from entropy_rl.io import write_text
    from entropy_rl.tasks import make_task
    from entropy_rl.token_view import fork_threshold, render_token_view, trace_policies

    quiet_transformers()
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


@command(
    "schema", "the pipeline config's JSON schema, generated from the settings classes",
    arg("--write", action="store_true",
        help="rewrite workflow/schemas/config.schema.yaml (run from the repository's root)"),
    description="Prints the schema Snakemake validates every config against (or writes it with "
    "--write): each section and loss_config derived from its settings class.",
)  # fmt: skip
def schema(args: argparse.Namespace) -> int:
    """Print or write the generated config schema."""
    from entropy_rl.schema import SCHEMA_PATH, schema_text

    text = schema_text()
    if not args.write:
        print(text, end="")
        return 0
    if not SCHEMA_PATH.parent.is_dir():
        raise ValueError(f"no {SCHEMA_PATH.parent}/ here: run --write from the repository's root")
    SCHEMA_PATH.write_text(text)
    print(f"wrote {SCHEMA_PATH}")
    return 0


@command(
    "profile", "a config profile resolved: what Snakemake runs with these --configfile files",
    arg("files", nargs="+", help="profile files, as given to snakemake --configfile"),
    description="Prints the config the Snakefile builds from these files (each with the profiles it "
    "extends, laid over the previous ones), checked as Snakemake checks it.",
)  # fmt: skip
def profile(args: argparse.Namespace) -> int:
    """Print a resolved, checked pipeline config as YAML."""
    import yaml

    from entropy_rl.config import check_pipeline_config, resolve_profiles

    config = resolve_profiles(args.files)
    check_pipeline_config(config)
    print(yaml.safe_dump(config, sort_keys=False), end="")
    return 0
