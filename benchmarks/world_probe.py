"""A reduced probe of a carry world: does GRPO's collapse keep it from the rare path while an
intervention finds it? Judged on the validation split, never the held-out one the claims test.

    python benchmarks/world_probe.py --out probes/w86 --bases 0 1 --methods grpo clip_cov
    python benchmarks/world_probe.py --out probes/w90 --set task.shortcut_fraction=0.9 \\
        --set train.steps=160

For each base model (SFT seed) of the default config with the ``--set`` overrides: SFT, the base
model's rate of solving a hard validation problem by sampling (``--k`` samples at the rollout
temperature: how rare the general path is), then one RL run per method and RL seed, each judged by
its final greedy accuracy on the validation split per family. A run *learns* the hard family when
its greedy accuracy there ends at least at the discovery rate's bar (0.5). The jobs run ``--jobs``
at a time, each on one thread (SFT on its config's threads). It prints one markdown table and
writes it, with every number, to ``--out``/probe.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import machine
import yaml

REPO = Path(__file__).resolve().parents[1]


def _set(config: dict, assignment: str) -> None:
    """``train.steps=160`` → ``config["train"]["steps"] = 160`` (the value read as YAML)."""
    key, sep, raw = assignment.partition("=")
    if not sep:
        raise SystemExit(f"--set {assignment!r} must look like section.key=value")
    *path, last = key.split(".")
    node = config
    for part in path:
        node = node.setdefault(part, {})
    node[last] = yaml.safe_load(raw)


def _run(command: list[str], log: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with log.open("w") as handle:
        done = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, env=env)
    if done.returncode:
        raise SystemExit(f"{' '.join(command)} failed; see {log}")


def _validation(model: Path, config: dict, k: int, temperature: float) -> dict:
    """Greedy accuracy per family on the validation split, and with ``k > 1`` the share of
    ``k`` samples at ``temperature`` that solve a hard problem."""
    import torch

    from entropy_rl.evaluate import evaluate_problems, pass1_by
    from entropy_rl.rollout import load_model, load_tokenizer
    from entropy_rl.rollout.lean import LeanGenerator
    from entropy_rl.tasks import make_task

    torch.set_num_threads(1)
    task = make_task(config["task"])
    problems = task.problems("validation", config["probe"]["problems"], 0)
    generator = LeanGenerator(load_model(model), load_tokenizer(model))
    common = {"template": config["evaluate"]["template"], "max_new_tokens": 48, "seed": 0}
    samples, summary = evaluate_problems(generator, problems, k=1, temperature=0.0, **common)
    result = {
        "greedy": summary["pass@1"],
        **{f"greedy_{f}": v for f, v in pass1_by(samples, "family", 1).items()},
    }
    if k > 1:
        samples, _ = evaluate_problems(generator, problems, k=k, temperature=temperature, **common)
        result["sampled_hard"] = pass1_by(samples, "family", k).get("hard", float("nan"))
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="folder for the probe's models and table")
    parser.add_argument("--set", action="append", default=[], help="section.key=value (YAML)")
    parser.add_argument("--bases", type=int, nargs="+", default=[0, 1], help="SFT seeds")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="RL seeds")
    parser.add_argument("--methods", nargs="+", default=["grpo", "clip_cov"])
    parser.add_argument("--k", type=int, default=16, help="samples per hard problem of the base")
    parser.add_argument("--problems", type=int, default=256, help="validation problems")
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args(argv)

    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    for assignment in args.set:
        _set(config, assignment)
    config["probe"] = {"problems": args.problems}
    if args.jobs > 1:  # SFTs side by side on 2 threads each would oversubscribe the cores
        config["base_model"]["threads"] = 1
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stage = {key: config[key] for key in ("task", "base_model", "train", "evaluate")}
    (out / "config.yaml").write_text(yaml.safe_dump(stage))
    cli = [sys.executable, "-m", "entropy_rl.cli"]
    start = time.perf_counter()
    temperature = float(config["train"]["temperature"])

    def sft(b: int) -> None:
        folder = out / f"base{b}"
        if not (folder / "base_summary.json").exists():
            _run([*cli, "sft", "--config", str(out / "config.yaml"), "--seed", str(b), "--out", str(folder)], out / f"sft{b}.log")  # fmt: skip

    def rl(job: tuple[int, str, int]) -> None:
        b, method, seed = job
        folder = out / method / f"base{b}" / f"seed{seed}"
        if not (folder / "model" / "config.json").exists():
            _run([*cli, "train", "--config", str(out / "config.yaml"), "--method", method,
                  "--seed", str(seed), "--model", str(out / f"base{b}"), "--out", str(folder),
                  "--resume", "--restart-if-changed"], out / f"{method}_base{b}_seed{seed}.log")  # fmt: skip

    def judged(job: tuple[int, str, int]) -> dict:
        b, method, seed = job
        folder = out / method / f"base{b}" / f"seed{seed}"
        from entropy_rl.analysis.runs import late_mean
        from entropy_rl.io import read_metrics

        entropy = [r["entropy"] for r in read_metrics(folder / "metrics.jsonl")]
        return {"entropy_late": late_mean(entropy),
                **_validation(folder / "model", config, 1, temperature)}  # fmt: skip

    # the jobs run in processes side by side; models are loaded and judged here, one at a time
    jobs = [(b, m, s) for b in args.bases for m in args.methods for s in args.seeds]
    with ThreadPoolExecutor(args.jobs) as pool:
        list(pool.map(sft, args.bases))
        list(pool.map(rl, jobs))
    bases = {b: _validation(out / f"base{b}", config, args.k, temperature) for b in args.bases}
    runs = {job: judged(job) for job in jobs}
    minutes = (time.perf_counter() - start) / 60

    lines = _table(out.name, args.set, minutes, bases, runs, args.methods)
    table = "\n".join(lines)
    print(table)
    (out / "probe.md").write_text(table + "\n")
    (out / "probe.json").write_text(json.dumps(
        {"set": args.set, "minutes": minutes, "bases": bases,
         "runs": [{"base": b, "method": m, "seed": s, **r} for (b, m, s), r in runs.items()],
         "table": table}, indent=1))  # fmt: skip
    return 0


def _table(
    name: str, sets: list[str], minutes: float, bases: dict, runs: dict, methods: list[str]
) -> list[str]:
    """The probe's table: accuracies to two decimals (128 problems a family), rates in percent."""
    settings = f"{' '.join(sets) or 'the default world'}; {minutes:.1f} min"
    lines = [machine.record_line(f"probe {name}", settings), "",
             "| base | base: hard solved per sample | method | seed | late entropy | "
             "validation greedy | easy | hard | learned |",
             "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for (b, method, seed), run in runs.items():
        hard = run.get("greedy_hard", float("nan"))
        lines.append(
            f"| {b} | {100 * bases[b].get('sampled_hard', float('nan')):.2f}% | {method} | {seed} "
            f"| {run['entropy_late']:.4f} | {run['greedy']:.2f} | "
            f"{run.get('greedy_easy', float('nan')):.2f} | {hard:.2f} | {'yes' if hard >= 0.5 else 'no'} |"
        )
    for method in methods:
        learned = [r.get("greedy_hard", 0) >= 0.5 for (_, m, _), r in runs.items() if m == method]
        lines.append(
            f"\n{method}: learned the hard family on {sum(learned)} of {len(learned)} runs"
        )
    return lines


if __name__ == "__main__":
    raise SystemExit(main())
