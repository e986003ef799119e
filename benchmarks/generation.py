"""Rollout speed: the hf backend vs a plain ``model.generate``; RL step time vs G and response length.

    python benchmarks/generation.py                      # a fresh default-size model, 2 threads
    python benchmarks/generation.py --model results/embedded/toy/base --json out.json \
        --plot docs/figures/benchmark_scaling

1. Tokens/s of ``LeanGenerator.generate`` (the lean backend's own decoding loop) and of
   ``HFGenerator.generate`` (what the trainer and the evaluator call: left padding,
   texts, per-token log-probabilities, seeded) against a bare ``model.generate`` call with the same
   sampling settings on the same batch (16 prompts x G = 8, up to 48 new tokens, from the text
   prompts), and against ``model.generate`` returning log-probabilities the usual way
   (``output_scores``). The median of ``--repeats`` alternating calls is reported.
2. One RL step of the trainer (GRPO, warm-up excluded) for G in 2..16 at 48 tokens and for a
   maximum response length of 16..128 at G = 8, split into generation / log-prob forward passes /
   backward / optimizer / rest; the plot stacks the pieces.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from types import SimpleNamespace

import machine
import torch
from steps import PIECES, make_model, run_ours

DEFAULTS = SimpleNamespace(
    steps=2, prompts=16, group=8, mini_batches=4, max_new_tokens=48, lr=8e-5, threads=2, seed=0
)


def generation_speed(model_dir: Path, shape: SimpleNamespace, repeats: int) -> dict:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from entropy_rl.data import render_prompt
    from entropy_rl.rollout import HFGenerator
    from entropy_rl.rollout.lean import LeanGenerator
    from entropy_rl.tasks import ArithmeticTask

    tokenizer = AutoTokenizer.from_pretrained(model_dir, padding_side="left")
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    prompts = [
        render_prompt("toy", p.problem)
        for p in ArithmeticTask().problems("train", shape.prompts, 0)
    ]
    generator, lean = HFGenerator(model, tokenizer), LeanGenerator(model, tokenizer)

    def ours(seed: int, backend=generator) -> int:
        out = backend.generate(prompts, shape.group, 1.0, 1.0, shape.max_new_tokens, seed=seed)
        return sum(len(ids) for ids in out.response_ids)

    @torch.no_grad()
    def plain(seed: int, with_logprobs: bool = False) -> int:  # from text: tokenizing is work too
        encoded = tokenizer([p for p in prompts for _ in range(shape.group)], return_tensors="pt",
                            padding=True, add_special_tokens=False)  # fmt: skip
        torch.manual_seed(seed)
        out = model.generate(
            **encoded, do_sample=True, temperature=1.0, top_p=1.0, top_k=0,
            max_new_tokens=shape.max_new_tokens, pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id, return_dict_in_generate=True,
            output_scores=with_logprobs,
        )  # fmt: skip
        new = out.sequences[:, encoded["input_ids"].shape[1] :]
        if with_logprobs:  # the usual way to get the sampled tokens' log-probabilities
            scores = torch.stack(out.scores, dim=1).float().log_softmax(-1)
            scores.gather(-1, new[..., None])
        finished = (new == tokenizer.eos_token_id).int().cumsum(-1)
        return int(((finished == 0) | ((finished == 1) & (new == tokenizer.eos_token_id))).sum())

    variants = {
        "lean backend (texts + log-probs + entropies)": lambda seed: ours(seed, lean),
        "hf backend (texts + log-probs)": ours,
        "model.generate (token ids only)": plain,
        "model.generate + output_scores log-probs": lambda seed: plain(seed, with_logprobs=True),
    }
    rates: dict[str, list[float]] = {name: [] for name in variants}
    for repeat in range(repeats + 1):  # the first round warms up
        for name, fn in variants.items():
            start = time.perf_counter()
            tokens = fn(repeat)
            if repeat:
                rates[name].append(tokens / (time.perf_counter() - start))
    return {name: statistics.median(values) for name, values in rates.items()}


def scaling(model_dir: Path, tmp: Path, groups: list[int], lengths: list[int]) -> dict:
    rows = {"group": [], "length": []}
    for g in groups:
        print(f"  G = {g}", file=sys.stderr, flush=True)
        shape = SimpleNamespace(**{**vars(DEFAULTS), "group": g, "mini_batches": 1})
        rows["group"].append({"G": g, **run_ours(shape, model_dir, tmp / f"g{g}")})
    for length in lengths:
        print(f"  length = {length}", file=sys.stderr, flush=True)
        shape = SimpleNamespace(**{**vars(DEFAULTS), "max_new_tokens": length})
        rows["length"].append(
            {"max_new_tokens": length, **run_ours(shape, model_dir, tmp / f"l{length}")}
        )
    return rows


def plot(rows: dict, stem: Path, subtitle: str) -> None:
    """Stacked bars of each piece's seconds per step, against G and against response length."""
    from entropy_rl.plots.style import new_figure, save

    fig, axes = new_figure(ncols=2, width=4.4, height=3.4)
    panels = (("group", "G", "responses per prompt G (16 prompts, 48 tokens)"),
              ("length", "max_new_tokens", "max response tokens (16 prompts, G = 8)"))  # fmt: skip
    for ax, (key, label, xlabel) in zip(axes[0], panels, strict=True):
        xs = [str(row[label]) for row in rows[key]]
        bottom = [0.0] * len(xs)
        for piece in (*PIECES, "rest"):
            heights = [row["pieces_s"][piece] for row in rows[key]]
            ax.bar(xs, heights, bottom=bottom, label=piece)
            bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
        ax.set_xlabel(xlabel)
        ax.set_ylabel("seconds per RL step")
    axes[0][0].legend(frameon=False)
    fig.suptitle(f"Where an RL step's time goes ({subtitle})")
    save(fig, stem)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="a saved model folder (default: a fresh random model)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--groups", type=int, nargs="+", default=[2, 4, 8, 16])
    parser.add_argument("--lengths", type=int, nargs="+", default=[16, 32, 64, 128])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--plot", help="write the scaling figure here (a stem: .png and .pdf)")
    args = parser.parse_args()
    DEFAULTS.threads = args.threads
    torch.set_num_threads(args.threads)
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    warnings.filterwarnings("ignore")

    with tempfile.TemporaryDirectory() as tmp:
        model = Path(args.model) if args.model else make_model(Path(tmp) / "model", 0)
        speed = generation_speed(model, DEFAULTS, args.repeats)
        rows = scaling(model, Path(tmp), args.groups, args.lengths)

    ratio = speed["hf backend (texts + log-probs)"] / speed["model.generate (token ids only)"]
    print(f"\nrollout tokens/s, {DEFAULTS.prompts} prompts x G={DEFAULTS.group}, <= "
          f"{DEFAULTS.max_new_tokens} new tokens, {args.threads} threads, model: {args.model or 'fresh'}")  # fmt: skip
    print("| generator | tokens/s |\n| --- | --- |")
    for name, rate in speed.items():
        print(f"| {name} | {rate:.0f} |")
    lean = (
        speed["lean backend (texts + log-probs + entropies)"]
        / speed["hf backend (texts + log-probs)"]
    )
    print(
        f"hf backend / bare model.generate = {ratio:.2f}; lean backend / hf backend = {lean:.2f}\n"
    )
    header = f"| shape | step (s) | {' | '.join(PIECES)} | rest | rollout tokens/step |"
    print(header + "\n|" + " --- |" * (header.count("|") - 1))
    for key, label in (("group", "G"), ("length", "max_new_tokens")):
        for row in rows[key]:
            cells = " | ".join(f"{row['pieces_s'][p]:.3f}" for p in (*PIECES, "rest"))
            print(f"| {label} = {row[label]} | {row['step_s']:.3f} | {cells} | {row['rollout_tokens_per_step']:.0f} |")  # fmt: skip
    if args.plot:
        machine_line = machine.describe()
        plot(rows, Path(args.plot), f"{machine_line['cores']}-core CPU, {args.threads} threads")
    if args.json:
        payload = {"machine": machine.describe(), "generation_tokens_per_s": speed,
                   "hf_over_generate": ratio, "scaling": rows}  # fmt: skip
        Path(args.json).write_text(json.dumps(payload, indent=2))


if __name__ == "__main__":
    main()
