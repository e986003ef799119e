"""RL steps of a randomly initialised Qwen2.5-0.5B-architecture model on a GPU: throughput and memory.

    python benchmarks/gpu_train.py [--steps 4] [--rollouts hf,vllm] [--max-new-tokens 256]
    python benchmarks/gpu_train.py --device cpu --steps 1 --layers 1 --rollouts hf   # a dry run

The model is built from Qwen2.5-0.5B's published architecture (hidden 896, 24 layers, 14 query
and 2 key-value heads, MLP 4864, vocabulary 151,936, tied embeddings) with random weights — no
download — and the suite's character tokenizer, so responses rarely stop before
``--max-new-tokens`` (a worst case for sampling). Each backend runs this suite's trainer
(``train.rollout``) on the synthetic task in bf16 autocast: GRPO's loss, 8 prompts × 8 responses,
2 mini-batch updates per step. Prints one table row per backend: seconds per step, response tokens
per second of the whole step, the trainer's peak GPU memory (torch's allocator; vLLM's share is
``--vllm-gpu-memory`` of the card) and the largest |trainer − sampler| log-probability gap (stale
or badly synced engine weights show here), and the model FLOP utilisation: the step's necessary
model FLOPs (``steps.step_flops``: generation plus the update's forward and backward) over the
step time and ``--peak-tflops`` (the H200's dense bf16 rate, ~790 TFLOP/s by default). Needs a GPU
(``--device cpu`` runs the same code on the CPU in float32, as a dry run; ``--layers`` shrinks the
model for it).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe
from steps import mean_prompt_tokens, step_flops

QWEN25_05B = {
    "hidden_size": 896, "intermediate_size": 4864, "num_hidden_layers": 24,
    "num_attention_heads": 14, "num_key_value_heads": 2, "vocab_size": 151936,
    "max_position_embeddings": 32768, "rope_theta": 1_000_000.0, "rms_norm_eps": 1e-6,
    "tie_word_embeddings": True,
}  # fmt: skip


def build(folder: Path, layers: int = QWEN25_05B["num_hidden_layers"]) -> Path:
    """A random Qwen2.5-0.5B-architecture model (``layers`` of its decoder layers) and the
    character tokenizer, saved to ``folder``."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from entropy_rl.base_model import build_char_tokenizer

    tokenizer = build_char_tokenizer()
    config = Qwen2Config(
        **{**QWEN25_05B, "num_hidden_layers": layers},
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    Qwen2ForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def run(model: Path, out: Path, rollout: str, args: argparse.Namespace) -> dict:
    from entropy_rl.config import run_section
    from entropy_rl.tasks import ArithmeticTask
    from entropy_rl.train import RLSettings, train

    cuda = args.device == "cuda"
    section = {
        "model": str(model), "steps": args.steps, "prompts_per_step": args.prompts,
        "group_size": args.group, "mini_batches": 2, "lr": 1e-6,
        "max_new_tokens": args.max_new_tokens, "device": args.device,
        "precision": "bfloat16" if cuda else "float32", "rollout": rollout,
        "vllm_gpu_memory": args.vllm_gpu_memory,
        "eval_every": 0, "lemma_check_every": 0, "checkpoint_every": 1000,
        "micro_batch_tokens": args.micro_batch_tokens,
        "methods": {"grpo": {"loss": "grpo"}},
    }  # fmt: skip
    settings = RLSettings.from_dict(run_section(section, "grpo", "train"))
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    rows = train(settings, out, ArithmeticTask(n_terms=3, max_value=99))
    seconds = time.perf_counter() - start
    timed = rows[1:] or rows  # the first step pays for compilation and warm-up
    step_s = sum(r["time_rollout_s"] + r["time_update_s"] for r in timed) / len(timed)
    sequences = args.prompts * args.group
    response = sum(r["response_length"] for r in timed) / len(timed)
    flops = step_flops(model, mean_prompt_tokens(model, 0), response, sequences)
    return {
        "rollout": rollout,
        "steps": len(rows),
        "wall_s": round(seconds, 1),
        "s_per_step": round(step_s, 2),
        "response_tokens_per_s": round(response * sequences / step_s),
        "peak_trainer_mem_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2)
        if cuda
        else None,
        "max_logp_gap": max((r["rollout_logp_gap"] or 0.0) for r in rows),
        "model_tflop_per_step": round(flops / 1e12, 3),
        "mfu": float(f"{flops / step_s / (args.peak_tflops * 1e12):.3g}"),
    }


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--rollouts", default="hf,vllm")
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--vllm-gpu-memory", type=float, default=0.3)
    parser.add_argument("--micro-batch-tokens", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the rows here")
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--layers", type=int, default=QWEN25_05B["num_hidden_layers"])
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--group", type=int, default=8)
    parser.add_argument("--peak-tflops", type=float, default=790.0, help="the GPU's bf16 peak")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("benchmarks/gpu_train.py needs a GPU (torch.cuda.is_available() is False)")
    gpu = torch.cuda.get_device_name() if args.device == "cuda" else None
    print(
        json.dumps({**describe(), "gpu": gpu, "args": {k: str(v) for k, v in vars(args).items()}})
    )
    with tempfile.TemporaryDirectory() as tmp:
        model = build(Path(tmp) / "qwen2.5-0.5b-random", args.layers)
        rows = [run(model, Path(tmp) / name, name, args) for name in args.rollouts.split(",")]
    keys = list(rows[0])
    print("| " + " | ".join(keys) + " |")
    print("|" + " --- |" * len(keys))
    for row in rows:
        print("| " + " | ".join(str(row[k]) for k in keys) + " |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
