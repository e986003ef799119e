"""The benchmark scripts run (at a tiny size) and print their tables, so they cannot rot unseen.

Their numbers are measured by running them as docs/benchmarks.md says, not here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run(script: str, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / script), *args],
        capture_output=True, text=True, timeout=600, cwd=REPO,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_loss_overhead_times_every_loss_against_grpo(tmp_path):
    out = run(
        "loss_overhead.py", "--tokens", "8000", "--repeats", "2", "--json", str(tmp_path / "r.json")
    )
    assert "| 8,000 | " in out
    seconds = json.loads((tmp_path / "r.json").read_text())["seconds"]["8000"]
    from entropy_rl.losses import available_policy_losses

    assert set(seconds) == set(available_policy_losses())
    assert all(value > 0 for value in seconds.values())


def test_generation_benchmark_compares_backends_and_plots_the_scaling(tmp_path):
    out = run(
        "generation.py", "--repeats", "1", "--groups", "2", "--lengths", "8",
        "--json", str(tmp_path / "g.json"), "--plot", str(tmp_path / "scaling"),
    )  # fmt: skip
    assert "hf backend / bare model.generate" in out
    assert "| G = 2 |" in out and "| max_new_tokens = 8 |" in out
    result = json.loads((tmp_path / "g.json").read_text())
    assert set(result["generation_tokens_per_s"]) == {
        "hf backend (texts + log-probs)",
        "model.generate (token ids only)",
        "model.generate + output_scores log-probs",
    }
    assert (tmp_path / "scaling.png").stat().st_size > 10_000


def test_the_roofline_counts_the_models_matmul_flops_as_torch_does():
    """benchmarks/steps.py's forward_flops: its weight-matmul part is what torch's FLOP counter
    counts for a real forward pass of the toy model (the attention terms are added by formula)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from entropy_rl.base_model import ModelSettings, build_char_tokenizer, build_model

    sys.path.insert(0, str(REPO / "benchmarks"))
    from steps import forward_flops

    tokenizer = build_char_tokenizer()
    model = build_model(
        ModelSettings(), len(tokenizer), tokenizer.pad_token_id, tokenizer.eos_token_id, 0
    )
    tokens, config = 64, model.config
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(input_ids=torch.randint(0, len(tokenizer), (1, tokens)))
    attention = 4 * config.num_hidden_layers * config.hidden_size * tokens**2 / 2
    assert forward_flops(config, tokens) - attention == counter.get_total_flops()
