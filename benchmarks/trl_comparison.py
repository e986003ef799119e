"""RL step time and rollout tokens/s: this suite's trainer vs TRL's GRPOTrainer, in one process.

    pip install -e '.[cpu,bench]'
    python benchmarks/trl_comparison.py                                 # a fresh default-size model
    python benchmarks/trl_comparison.py --model results/embedded/toy/base/model --json out.json

Both trainers get the same model (loaded from the same folder), tokenizer, prompts, group size G,
maximum response length, rollout batch, mini-batches, optimizer (AdamW, constant lr), loss (GRPO:
PPO clip 0.2, token-mean over each mini-batch, no KL) and torch threads. One RL step is one rollout
batch (prompts x G responses) and one optimizer update per mini-batch: TRL's
``steps_per_generation`` = our ``mini_batches``, so each TRL optimizer step is one of our
mini-batch updates and TRL also computes the old log-probabilities.

Where time goes is measured the same way in both, by timing the shared pieces they call:
``GenerationMixin.generate`` (rollouts), the log-probability forward passes (ours:
``policy_forward``; TRL: ``_get_per_token_logps_and_entropies``; both the no-grad pass for the old
log-probabilities and the training pass), ``Tensor.backward`` and ``AdamW.step``; the rest (rewards,
advantages, loss, bookkeeping) is the remainder. The first RL step of each trainer is a warm-up and
is not counted; the trainers alternate ``--repeats`` times and the median step is reported.

The roofline column: the step's necessary model FLOPs (generation plus the update's forward and
backward passes, counted from the model's shapes and the step's real token counts,
``steps.step_flops``) divided by the step time and by this machine's float32 matmul rate, measured
in the same run (``steps.matmul_rate``, a 2,048-cube product on the same threads).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path

import machine
import torch
from steps import (
    PIECES,
    make_model,
    matmul_rate,
    mean_prompt_tokens,
    run_ours,
    shared_timers,
    step_flops,
    summarize_steps,
)


def run_trl(args, model: Path, out: Path) -> dict:
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, PrinterCallback, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from entropy_rl.data import render_prompt
    from entropy_rl.rewards import reward
    from entropy_rl.tasks import ArithmeticTask

    problems = ArithmeticTask().problems("train", 2000, args.seed)
    dataset = Dataset.from_list(
        [{"prompt": render_prompt("toy", p.problem), "answer": p.answer} for p in problems]
    )

    def grade(prompts, completions, answer, **kwargs):
        return [reward(c, a) for c, a in zip(completions, answer, strict=True)]

    rollout = args.prompts * args.group
    config = GRPOConfig(
        output_dir=str(out), use_cpu=True, bf16=False, report_to="none", save_strategy="no",
        per_device_train_batch_size=rollout // args.mini_batches, gradient_accumulation_steps=1,
        steps_per_generation=args.mini_batches, num_iterations=1, num_generations=args.group,
        max_completion_length=args.max_new_tokens, temperature=1.0, top_p=1.0, top_k=0,
        learning_rate=args.lr, lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0,
        optim="adamw_torch", max_grad_norm=1.0, beta=0.0, epsilon=0.2, loss_type="bnpo",
        scale_rewards="group", max_steps=(args.steps + 1) * args.mini_batches, logging_steps=1,
        seed=args.seed, dataloader_num_workers=0, disable_tqdm=True,
    )  # fmt: skip
    trainer = GRPOTrainer(
        model=AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32),
        processing_class=AutoTokenizer.from_pretrained(model, padding_side="left"),
        reward_funcs=grade,
        args=config,
        train_dataset=dataset,
    )
    marks: list[tuple[float, dict]] = []
    extra = [(GRPOTrainer, "_get_per_token_logps_and_entropies", "logprob forward")]
    with shared_timers(extra) as timers:

        class Marks(TrainerCallback):
            def on_step_end(self, train_args, state, control, **kwargs):
                if state.global_step % args.mini_batches == 0:  # one rollout batch consumed
                    marks.append((time.perf_counter(), dict(timers.seconds)))
                    if len(marks) == 1:
                        timers.reset()
                        marks[0] = (marks[0][0], {})

        trainer.add_callback(Marks())
        trainer.remove_callback(PrinterCallback)  # TRL prints every log dict when tqdm is off
        torch.set_num_threads(args.threads)
        trainer.train()
    lengths = [
        log["completions/mean_length"]
        for log in trainer.state.log_history
        if "completions/mean_length" in log
    ]
    # TRL logs the mean response length once per rollout batch (at the first of its optimizer steps)
    return summarize_steps(marks, [length * rollout for length in lengths[1:]])


def _median(results: list[dict]) -> dict:
    best = sorted(results, key=lambda r: r["step_s"])[len(results) // 2]
    return {**best, "step_s_all": [r["step_s"] for r in results]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="a saved model folder (default: a fresh random model)")
    parser.add_argument("--steps", type=int, default=4, help="RL steps measured (after 1 warm-up)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--group", type=int, default=8)
    parser.add_argument("--mini-batches", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--lr", type=float, default=8e-5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--rollout",
        choices=("hf", "lean"),
        default="hf",
        help="this suite's sampler: transformers' generate (as TRL) or its lean loop",
    )
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    if (args.prompts * args.group) % args.mini_batches:
        parser.error("--prompts x --group must be divisible by --mini-batches")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    warnings.filterwarnings("ignore")  # TRL's and transformers' advice on CPU training
    hf_logging.disable_progress_bar()

    results: dict[str, list[dict]] = {"entropy-rl": [], "TRL GRPOTrainer": []}
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(args.model) if args.model else make_model(Path(tmp) / "model", args.seed)
        for repeat in range(args.repeats):
            for name, run in (("entropy-rl", run_ours), ("TRL GRPOTrainer", run_trl)):
                print(f"[{repeat + 1}/{args.repeats}] {name} ...", file=sys.stderr, flush=True)
                results[name].append(run(args, model, Path(tmp) / f"{name[:3]}{repeat}"))
    summary = {name: _median(runs) for name, runs in results.items()}
    ours, trl = summary["entropy-rl"], summary["TRL GRPOTrainer"]
    ratio = trl["step_s"] / ours["step_s"]
    rate = matmul_rate(args.threads)
    sequences = args.prompts * args.group
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.model) if args.model else make_model(Path(tmp) / "model", args.seed)
        prompt = mean_prompt_tokens(folder, args.seed)
        for r in summary.values():
            response = r["rollout_tokens_per_step"] / sequences
            r["model_flops_per_step"] = step_flops(folder, prompt, response, sequences)
            r["matmul_fraction"] = r["model_flops_per_step"] / r["step_s"] / rate

    print(f"\nRL step, {args.prompts} prompts x G={args.group}, <= {args.max_new_tokens} new tokens, "
          f"{args.mini_batches} mini-batches, {args.threads} threads, model: {args.model or 'fresh'}, "
          f"our sampler: {args.rollout}")  # fmt: skip
    header = (f"| trainer | step (s) | {' | '.join(PIECES)} | rest | rollout tokens/s "
              "| model GFLOP/step | share of matmul rate |")  # fmt: skip
    print(header + "\n|" + " --- |" * (header.count("|") - 1))
    for name, r in summary.items():
        cells = " | ".join(f"{r['pieces_s'][p]:.3f}" for p in (*PIECES, "rest"))
        print(f"| {name} | {r['step_s']:.3f} | {cells} | {r['rollout_tokens_per_s']:.0f} "
              f"| {r['model_flops_per_step'] / 1e9:.1f} | {r['matmul_fraction']:.0%} |")  # fmt: skip
    print(
        f"\nfloat32 matmul rate, {args.threads} threads: {rate / 1e9:.1f} GFLOP/s; "
        f"mean prompt {prompt:.1f} tokens"
    )
    print(f"TRL step / entropy-rl step = {ratio:.2f}x")
    if args.json:
        payload = {"machine": machine.describe(), "args": vars(args), "results": summary,
                   "trl_over_ours": ratio, "matmul_flops_per_s": rate}  # fmt: skip
        Path(args.json).write_text(json.dumps(payload, indent=2))


if __name__ == "__main__":
    main()
