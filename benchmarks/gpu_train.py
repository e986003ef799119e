"""RL steps of a randomly initialised Qwen2.5-0.5B-architecture model on a GPU: throughput and memory.

    python benchmarks/gpu_train.py [--steps 4] [--rollouts hf,vllm] [--max-new-tokens 256]

The model is built from Qwen2.5-0.5B's published architecture (hidden 896, 24 layers, 14 query
and 2 key-value heads, MLP 4864, vocabulary 151,936, tied embeddings) with random weights — no
download — and the suite's character tokenizer, so responses rarely stop before
``--max-new-tokens`` (a worst case for sampling). Each backend runs this suite's trainer
(``train.rollout``) on the synthetic task in bf16 autocast: GRPO's loss, 8 prompts × 8 responses,
2 mini-batch updates per step. Prints one table row per backend: seconds per step, response tokens
per second of the whole step, the trainer's peak GPU memory (torch's allocator; vLLM's share is
``--vllm-gpu-memory`` of the card) and the largest |trainer − sampler| log-probability gap (stale
or badly synced engine weights show here). Needs a GPU; with ``--processes N`` it runs under
torchrun with FSDP.
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

QWEN25_05B = {
    "hidden_size": 896, "intermediate_size": 4864, "num_hidden_layers": 24,
    "num_attention_heads": 14, "num_key_value_heads": 2, "vocab_size": 151936,
    "max_position_embeddings": 32768, "rope_theta": 1_000_000.0, "rms_norm_eps": 1e-6,
    "tie_word_embeddings": True,
}  # fmt: skip


def build(folder: Path) -> Path:
    """A random Qwen2.5-0.5B-architecture model and the character tokenizer, saved to ``folder``."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from entropy_rl.base_model import build_char_tokenizer

    tokenizer = build_char_tokenizer()
    config = Qwen2Config(
        **QWEN25_05B,
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

    section = {
        "model": str(model), "steps": args.steps, "prompts_per_step": 8, "group_size": 8,
        "mini_batches": 2, "lr": 1e-6, "max_new_tokens": args.max_new_tokens, "device": "cuda",
        "precision": "bfloat16", "rollout": rollout, "vllm_gpu_memory": args.vllm_gpu_memory,
        "eval_every": 0, "lemma_check_every": 0, "checkpoint_every": 1000,
        "micro_batch_tokens": args.micro_batch_tokens,
        "methods": {"grpo": {"loss": "grpo"}},
    }  # fmt: skip
    settings = RLSettings.from_dict(run_section(section, "grpo", "train"))
    torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    rows = train(settings, out, ArithmeticTask(n_terms=3, max_value=99))
    seconds = time.perf_counter() - start
    timed = rows[1:] or rows  # the first step pays for compilation and warm-up
    step_s = sum(r["time_rollout_s"] + r["time_update_s"] for r in timed) / len(timed)
    tokens = [r["response_length"] * 64 for r in timed]
    return {
        "rollout": rollout,
        "steps": len(rows),
        "wall_s": round(seconds, 1),
        "s_per_step": round(step_s, 2),
        "response_tokens_per_s": round(sum(tokens) / len(timed) / step_s),
        "peak_trainer_mem_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2),
        "max_logp_gap": max((r["rollout_logp_gap"] or 0.0) for r in rows),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--rollouts", default="hf,vllm")
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--vllm-gpu-memory", type=float, default=0.3)
    parser.add_argument("--micro-batch-tokens", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        sys.exit("benchmarks/gpu_train.py needs a GPU (torch.cuda.is_available() is False)")
    print(json.dumps({**describe(), "gpu": torch.cuda.get_device_name()}))
    with tempfile.TemporaryDirectory() as tmp:
        model = build(Path(tmp) / "qwen2.5-0.5b-random")
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
