"""Which tokens KL-Cov penalises on the carry world's hard problems, and what that does to the path.

    python benchmarks/kl_cov_tokens.py --results results/embedded --bases 0 1 --out kl_cov_tokens

Reruns, on the pipeline's base models and its train config, one GRPO and one KL-Cov run per base
model and seed (the same settings and seed as the study's runs, so the same numbers on the machine
that ran the study), and records at every mini-batch update the tokens KL-Cov's selector chooses
(for GRPO: the tokens it *would* choose, with the KL-Cov config of the same file). Each response
is placed by its prompt (easy or hard: do the units carry?) and by its path, which parts at the
first response token (``u`` opens the digit-wise shortcut, a digit the general worked line), and a
response with a positive advantage is one that solved a problem its group did not always solve.

Per run, two phases split at the step where a hard problem is first solved on the general path
(the *first success*; a run without one has only the first phase):

- the general path's share of the rollouts on hard prompts (what discovery needs kept up),
- the share of the selected tokens that lie on hard-problem responses, and on general-path ones,
- the share of the fork tokens (first response tokens) of hard-problem responses selected,
- the sign of the advantage on selected tokens (share with A > 0),
- how far the selected and the other tokens move over an update, ``|log π − log π_old|``, averaged
  over the updates after each step's first, on-policy one (where KL-Cov's penalty acts).

It prints one markdown table and writes it, with every number, to ``--out``/kl_cov_tokens.md and
kl_cov_tokens.json. Every value that reaches a path is checked; nothing is unpickled.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import sys
import time
from collections import defaultdict
from pathlib import Path

import torch

from entropy_rl.tasks import CarryTask

PROMPT = re.compile(r"Q: (\d+)\+(\d+)=")


def _row_info(tokenizer, input_ids, mask, advantages) -> list[dict]:
    """Family, path and advantage sign of each row of a mini-batch (mask ``[B, L-1]``)."""
    rows = []
    for ids, row_mask, adv in zip(input_ids, mask, advantages, strict=True):
        positions = row_mask.nonzero().flatten()
        if len(positions) == 0:
            rows.append({"hard": False, "general": False, "adv": 0.0, "first": -1})
            continue
        first = int(positions[0])  # position t predicts token t + 1
        prompt = tokenizer.decode(ids[: first + 1].tolist())
        found = PROMPT.search(prompt)
        if found is None:
            raise ValueError(f"not a carry prompt: {prompt!r}")
        hard = CarryTask.family((int(found[1]), int(found[2]))) == "hard"
        fork = tokenizer.decode([int(ids[first + 1])])
        rows.append({"hard": hard, "general": fork.strip()[:1].isdigit(),
                     "adv": float(adv[first]), "first": first})  # fmt: skip
    return rows


class Recorder:
    """Per step sums of what the selector chose, filled by the wrapped loss."""

    def __init__(self, tokenizer, selector, kl_config) -> None:
        self.tokenizer, self.selector, self.kl_config = tokenizer, selector, kl_config
        self.last_ids: torch.Tensor | None = None
        self.steps: list[dict] = []
        self.current: dict = defaultdict(float)

    def forward_seen(self, batch) -> None:
        self.last_ids = batch.input_ids

    def end_step(self, row: dict) -> None:
        self.steps.append({"step": row["step"], **self.current})
        self.current = defaultdict(float)

    def loss_seen(self, logp, old_logp, advantages, mask, extras) -> None:
        selected = extras.get("selected")
        if selected is None:
            selected = self.selector(logp.detach(), old_logp, advantages, mask, self.kl_config)
        rows = _row_info(self.tokenizer, self.last_ids, mask, advantages)
        valid = mask.to(torch.bool)
        hard = torch.tensor([r["hard"] for r in rows])[:, None] & valid
        general = torch.tensor([r["general"] for r in rows])[:, None] & valid
        fork = torch.zeros_like(valid)
        for i, r in enumerate(rows):
            if r["first"] >= 0:
                fork[i, r["first"]] = True
        c = self.current
        c["updates"] += 1
        first_update = c["updates"] == 1
        # the rollout's rows, as many times as the epochs show them (the ratios do not change)
        c["hard_rows"] += sum(r["hard"] for r in rows)
        c["hard_general_rows"] += sum(r["hard"] and r["general"] for r in rows)
        c["hard_solved_general"] += sum(r["hard"] and r["general"] and r["adv"] > 0 for r in rows)
        c["valid"] += float(valid.sum())
        c["selected"] += float(selected.sum())
        c["selected_hard"] += float((selected & hard).sum())
        c["selected_hard_general"] += float((selected & hard & general).sum())
        c["selected_positive"] += float((selected & (advantages > 0)).sum())
        c["hard_forks"] += float((fork & hard).sum())
        c["hard_forks_selected"] += float((fork & hard & selected).sum())
        if not first_update:
            moved = (logp.detach() - old_logp).abs()
            c["moved_selected"] += float(moved[selected].sum())
            c["moved_other"] += float(moved[valid & ~selected].sum())
            c["later_selected"] += float(selected.sum())
            c["later_other"] += float((valid & ~selected).sum())


def _phase(steps: list[dict]) -> dict:
    """The phase's ratios from its per-step sums (``None`` where nothing was counted)."""
    total = defaultdict(float)
    for row in steps:
        for key, value in row.items():
            if key != "step":
                total[key] += value

    def ratio(a: str, b: str, scale: float = 100.0) -> float | None:
        return None if total[b] == 0 else scale * total[a] / total[b]

    return {
        "steps": len(steps),
        "general_on_hard_pct": ratio("hard_general_rows", "hard_rows"),
        "selected_on_hard_pct": ratio("selected_hard", "selected"),
        "selected_on_hard_general_pct": ratio("selected_hard_general", "selected"),
        "hard_forks_selected_pct": ratio("hard_forks_selected", "hard_forks"),
        "selected_positive_pct": ratio("selected_positive", "selected"),
        "moved_selected": ratio("moved_selected", "later_selected", 1.0),
        "moved_other": ratio("moved_other", "later_other", 1.0),
    }


def _run(method: str, base: int, seed: int, args, out: Path) -> dict:
    """One training run with the recorder's wrappers; its per-step sums and phase summary."""
    from dataclasses import replace

    from transformers import AutoTokenizer

    import entropy_rl.train as train_package
    from entropy_rl.cli import main as cli_main
    from entropy_rl.config import load_config, run_section
    from entropy_rl.losses import make_loss_config
    from entropy_rl.losses import registry as losses
    from entropy_rl.train import batch as batch_module

    base_dir = args.results / args.model_name / f"base{base}"
    config_file = args.results / "config" / "train.yaml"
    train_config = load_config(config_file)["train"]
    kl_section = run_section(train_config, args.kl_method, "train")
    kl_config = make_loss_config("kl_cov", kl_section.get("loss_config"))
    recorder = Recorder(
        AutoTokenizer.from_pretrained(base_dir),
        losses.get_policy_loss("kl_cov").selector,
        kl_config,
    )
    loss_name = run_section(train_config, method, "train")["loss"]
    spec = losses.get_policy_loss(loss_name)
    forward = batch_module.policy_forward

    def seen_forward(model, batch, *a, **k):
        recorder.forward_seen(batch)
        return forward(model, batch, *a, **k)

    def seen_loss(logp, old_logp, advantages, mask, config=None, **extras):
        recorder.loss_seen(logp, old_logp, advantages, mask, extras)
        return spec.fn(logp, old_logp, advantages, mask, config, **extras)

    run_dir = out / f"{method}_base{base}_seed{seed}"
    original_train = train_package.train

    def train_with_steps(*a, on_step=None, **k):
        def step_seen(row):
            recorder.end_step(row)
            if on_step is not None:
                on_step(row)

        return original_train(*a, on_step=step_seen, **k)

    losses._REGISTRY[loss_name] = replace(spec, fn=seen_loss)
    batch_module.policy_forward = seen_forward
    train_package.train = train_with_steps
    try:
        argv = ["train", "--config", str(config_file), "--method", method, "--seed", str(seed),
                "--model", str(base_dir), "--out", str(run_dir), "--restart"]  # fmt: skip
        if args.steps:
            argv += ["--steps", str(args.steps)]
        with contextlib.redirect_stdout(sys.stderr):
            code = cli_main(argv)
        if code:
            raise SystemExit(f"{method} base {base} seed {seed}: entropy-rl train exited {code}")
    finally:
        losses._REGISTRY[loss_name] = spec
        batch_module.policy_forward = forward
        train_package.train = original_train
    steps = recorder.steps
    success = next((row["step"] for row in steps if row.get("hard_solved_general", 0) > 0), None)
    before = [row for row in steps if success is None or row["step"] < success]
    after = [row for row in steps if success is not None and row["step"] >= success]
    return {"method": method, "base": base, "seed": seed, "first_success": success,
            "before": _phase(before), "after": _phase(after), "steps": steps}  # fmt: skip


def _fmt(value: float | None, digits: int = 0) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def table(runs: list[dict]) -> str:
    """One row per run and phase."""
    lines = [
        "| method | base | seed | phase | steps | general path on hard prompts, % | selected on "
        "hard, % | selected on hard general-path, % | hard forks selected, % | selected with "
        "A > 0, % | mean \\|Δ log π\\| selected | mean \\|Δ log π\\| other |",
        "| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for run in runs:
        success = run["first_success"]
        for phase in ("before", "after"):
            p = run[phase]
            if not p["steps"]:
                continue
            name = (
                f"{phase} first success (step {success})" if success is not None else "no success"
            )
            lines.append(
                f"| {run['method']} | {run['base']} | {run['seed']} | {name} | {p['steps']} | "
                f"{_fmt(p['general_on_hard_pct'], 1)} | {_fmt(p['selected_on_hard_pct'])} | "
                f"{_fmt(p['selected_on_hard_general_pct'], 1)} | "
                f"{_fmt(p['hard_forks_selected_pct'], 1)} | {_fmt(p['selected_positive_pct'])} | "
                f"{_fmt(p['moved_selected'], 4)} | {_fmt(p['moved_other'], 4)} |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, required=True,
                        help="a study's results folder (its config/train.yaml and base models)")  # fmt: skip
    parser.add_argument("--model-name", default="toy")
    parser.add_argument("--bases", type=int, nargs="+", default=[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--methods", nargs="+", default=["grpo", "kl_cov"])
    parser.add_argument("--kl-method", default="kl_cov",
                        help="the method whose KL-Cov settings choose the tokens")  # fmt: skip
    parser.add_argument("--steps", type=int, default=0, help="RL steps (0: the config's)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", args.model_name):
        parser.error(f"--model-name {args.model_name!r}: letters, digits, _ . - only")
    if not (args.results / "config" / "train.yaml").is_file():
        parser.error(f"--results {args.results}: no config/train.yaml (run the pipeline first)")
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    runs = []
    for base in args.bases:
        for seed in args.seeds:
            for method in args.methods:
                start = time.perf_counter()
                runs.append(_run(method, base, seed, args, args.out))
                print(f"{method} base {base} seed {seed}: {time.perf_counter() - start:.0f} s",
                      file=sys.stderr)  # fmt: skip
    import machine  # benchmarks/, beside this script (the tests load this module by its path)

    bases, seeds = (" ".join(map(str, values)) for values in (args.bases, args.seeds))
    record = machine.record_line(f"benchmarks/kl_cov_tokens.py --bases {bases} --seeds {seeds}")
    text = f"{record}\n\n{table(runs)}"
    (args.out / "kl_cov_tokens.md").write_text(text)
    (args.out / "kl_cov_tokens.json").write_text(json.dumps(runs, indent=1))
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
