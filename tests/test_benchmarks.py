"""The benchmark scripts run (at a tiny size) and print their tables, so they cannot rot unseen.

Their numbers are measured by running them as docs/benchmarks.md says, not here.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from entropy_rl.provenance import cpu_machine

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


@pytest.mark.slow
def test_generation_benchmark_compares_backends_and_plots_the_scaling(tmp_path):
    out = run(
        "generation.py", "--repeats", "1", "--groups", "2", "--lengths", "8",
        "--json", str(tmp_path / "g.json"), "--plot", str(tmp_path / "scaling"),
    )  # fmt: skip
    assert "hf backend / bare model.generate" in out and "lean backend / hf backend" in out
    assert "| G = 2 |" in out and "| max_new_tokens = 8 |" in out
    result = json.loads((tmp_path / "g.json").read_text())
    assert set(result["generation_tokens_per_s"]) == {
        "lean backend (texts + log-probs + entropies)",
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


def test_the_gpu_checks_wheel_list_pins_what_this_environment_runs():
    """benchmarks/gpu_check.sh installs these offline on the GPU image: the versions tested here."""
    from importlib.metadata import version

    listed = subprocess.run(
        ["bash", str(REPO / "benchmarks" / "gpu_check.sh"), "--list"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    assert {line.split("==")[0] for line in listed} == {
        "math-verify", "latex2sympy2_extended", "antlr4-python3-runtime",
    }  # fmt: skip
    for line in listed:
        name, pinned = line.split("==")
        assert version(name) == pinned, line


@pytest.mark.slow
def test_the_gpu_check_runs_its_training_step_on_the_cpu_as_a_dry_run(tmp_path):
    """DEVICE=cpu: the same script and trainer on a one-layer Qwen2.5-0.5B-architecture model."""
    env = {**os.environ, "PYTHON": sys.executable, "DEVICE": "cpu", "STEPS": "1", "LAYERS": "1",
           "PROMPTS": "2", "GROUP": "2", "MAX_NEW_TOKENS": "4"}  # fmt: skip
    result = subprocess.run(
        ["bash", str(REPO / "benchmarks" / "gpu_check.sh"), str(tmp_path / "out")],
        capture_output=True, text=True, timeout=600, env=env, cwd=REPO,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "| rollout | steps |" in result.stdout and "skipped (DEVICE=cpu)" in result.stdout
    (row,) = json.loads((tmp_path / "out" / "gpu_train.json").read_text())
    assert row["rollout"] == "hf" and row["steps"] == 1 and row["s_per_step"] > 0
    assert 0 < row["mfu"] < 1 and row["model_tflop_per_step"] > 0


def test_the_gpu_training_benchmark_defaults_to_the_full_model_on_cuda():
    sys.path.insert(0, str(REPO / "benchmarks"))
    import gpu_train

    args = gpu_train.parser().parse_args([])
    assert (args.device, args.layers, args.rollouts, args.peak_tflops) == (
        "cuda",
        24,
        "hf,vllm",
        790.0,
    )


def test_peer_parity_prints_one_row_per_comparison_or_names_the_missing_peer(tmp_path):
    """Where verl or TRL is installed every row it prints agrees or names its convention; where
    one is not, one row says so."""
    out = run("peer_parity.py", "--batches", "1", "--json", str(tmp_path / "p.json"))
    assert out.startswith("| comparison | peer |")
    rows = json.loads((tmp_path / "p.json").read_text())
    for peer in ("verl", "TRL"):
        mine = [r for r in rows if r["peer"].startswith(peer)]
        assert mine, peer
        if mine[0]["peer"] == f"{peer}: not installed":
            assert len(mine) == 1
        else:
            assert all(
                r["note"] or (r["loss |diff|"] < 1e-12 and r["grad |diff|"] < 1e-12) for r in mine
            )


def test_selection_cost_times_both_selections_side_by_side(tmp_path):
    out = run(
        "selection_cost.py", "--losses", "kl_cov", "--repeats", "1", "--steps", "1",
        "--prompts", "2", "--json", str(tmp_path / "s.json"),
    )  # fmt: skip
    assert "| kl_cov |" in out
    result = json.loads((tmp_path / "s.json").read_text())["results"]["kl_cov"]
    assert result["batch_s"] > 0 and result["micro_batch_s"] > 0
    assert result["ratio"] == pytest.approx(result["batch_s"] / result["micro_batch_s"])


@pytest.mark.slow
def test_the_world_probe_trains_bases_and_runs_and_tells_which_learned_the_hard_family(tmp_path):
    tiny = [
        "base_model.model={hidden_size: 32, num_layers: 1, num_heads: 2, num_kv_heads: 1, intermediate_size: 64}",
        "base_model.sft={steps: 20, batch_size: 16, lr: 3.0e-3, warmup_steps: 2, train_problems: 200}",
        "train.steps=2", "train.eval_every=0", "train.lemma_check_every=0", "train.train_problems=300",
    ]  # fmt: skip
    out = run("world_probe.py", "--out", str(tmp_path / "w"), "--bases", "0", "1",
              "--methods", "grpo", "clip_cov", "--k", "2", "--problems", "8",
              *[a for s in tiny for a in ("--set", s)])  # fmt: skip
    probe = json.loads((tmp_path / "w" / "probe.json").read_text())
    assert [(r["base"], r["method"]) for r in probe["runs"]] == [
        (0, "grpo"), (0, "clip_cov"), (1, "grpo"), (1, "clip_cov")
    ]  # fmt: skip
    assert all(0 <= r["greedy_hard"] <= 1 and r["entropy_late"] > 0 for r in probe["runs"])
    assert set(probe["bases"]) == {"0", "1"} and "| base | base: hard solved per sample |" in out
    assert "grpo: learned the hard family on" in out
    # the table's record line: its settings, time, commit and CPU
    assert re.search(r"^\*probe .+; [\d.]+ min, commit \w+, .+\*$", out, re.M), out[:500]
    assert cpu_machine() in out


def _kl_cov_tokens():
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "kl_cov_tokens", REPO / "benchmarks" / "kl_cov_tokens.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_kl_cov_token_probe_places_each_response_by_family_and_path():
    import torch

    from entropy_rl.base_model import build_char_tokenizer

    tokenizer = build_char_tokenizer()
    texts = [  # hard + general (solved), hard + shortcut, easy + shortcut
        ("Q: 27+45=?\nA: ", "27+45=72. \\boxed{72}", 1.5),
        ("Q: 27+45=?\nA: ", "u 7+5=2. t 2+4=6. \\boxed{62}", -0.5),
        ("Q: 21+45=?\nA: ", "u 1+5=6. t 2+4=6. \\boxed{66}", 0.0),
    ]
    rows = [tokenizer.encode(p + r, add_special_tokens=False) for p, r, _ in texts]
    width = max(map(len, rows))
    ids = torch.zeros(len(rows), width, dtype=torch.long)
    mask = torch.zeros(len(rows), width - 1, dtype=torch.bool)
    advantages = torch.zeros(len(rows), width - 1)
    for i, ((prompt, _, adv), row) in enumerate(zip(texts, rows, strict=True)):
        ids[i, : len(row)] = torch.tensor(row)
        start = len(tokenizer.encode(prompt, add_special_tokens=False)) - 1
        mask[i, start : len(row) - 1] = True
        advantages[i, start : len(row) - 1] = adv
    info = _kl_cov_tokens()._row_info(tokenizer, ids, mask, advantages)
    assert [(r["hard"], r["general"], r["adv"]) for r in info] == [
        (True, True, 1.5), (True, False, -0.5), (False, False, 0.0)
    ]  # fmt: skip


@pytest.mark.slow
def test_kl_cov_token_probe_reruns_the_studys_runs_and_splits_them_at_the_first_success(tmp_path):
    import yaml

    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["base_model"]["model"] = {"hidden_size": 32, "num_layers": 1, "num_heads": 2,
                                     "num_kv_heads": 1, "intermediate_size": 64}  # fmt: skip
    config["base_model"]["sft"] = {"steps": 30, "batch_size": 16, "lr": 3.0e-3,
                                   "warmup_steps": 2, "train_problems": 200}  # fmt: skip
    config["train"].update(steps=3, eval_every=0, eval_early_every=0, lemma_check_every=0,
                           train_problems=300, checkpoint_every=100)  # fmt: skip
    results = tmp_path / "results"
    (results / "config").mkdir(parents=True)
    (results / "config" / "train.yaml").write_text(
        yaml.safe_dump({"task": config["task"], "train": config["train"]})
    )
    (tmp_path / "full.yaml").write_text(yaml.safe_dump(config))
    sft = subprocess.run(
        [sys.executable, "-m", "entropy_rl.cli", "sft", "--config", str(tmp_path / "full.yaml"),
         "--seed", "0", "--out", str(results / "toy" / "base0")],
        capture_output=True, text=True, timeout=600, cwd=REPO,
    )  # fmt: skip
    assert sft.returncode == 0, sft.stderr[-3000:]
    out = run("kl_cov_tokens.py", "--results", str(results), "--out", str(tmp_path / "k"))
    runs = json.loads((tmp_path / "k" / "kl_cov_tokens.json").read_text())
    assert [(r["method"], r["base"], r["seed"]) for r in runs] == [("grpo", 0, 0), ("kl_cov", 0, 0)]
    k = config["train"]["methods"]["kl_cov"]["loss_config"]["k"]
    for r in runs:
        assert [s["step"] for s in r["steps"]] == [0, 1, 2]
        for s in r["steps"]:  # the selector's count: floor(k * N) of each mini-batch's tokens
            assert s["updates"] == config["train"]["mini_batches"]
            assert k * s["valid"] - s["updates"] < s["selected"] <= k * s["valid"]
            assert s["hard_general_rows"] <= s["hard_rows"] and s["selected_hard"] <= s["selected"]
        split = r["first_success"]
        assert r["before"]["steps"] + r["after"]["steps"] == 3
        assert (
            split is None
            or r["steps"][[s["step"] for s in r["steps"]].index(split)]["hard_solved_general"] > 0
        )
    assert "| kl_cov | 0 | 0 |" in out and "| grpo | 0 | 0 |" in out
    # a record no pipeline rewrites: its first line names the script's arguments, commit and CPU
    first = (tmp_path / "k" / "kl_cov_tokens.md").read_text().splitlines()[0]
    assert first.startswith("*benchmarks/kl_cov_tokens.py --bases 0 --seeds 0: commit "), first
    assert cpu_machine() in first


@pytest.mark.slow  # compiling the model takes seconds
def test_compile_update_times_eager_and_compiled_side_by_side(tmp_path):
    out = run(
        "compile_update.py", "--rows", "4", "--response", "8", "--repeats", "2", "--warmup", "1",
        "--json", str(tmp_path / "c.json"),
    )  # fmt: skip
    assert "| eager |" in out and "| compiled |" in out
    result = json.loads((tmp_path / "c.json").read_text())
    assert result["gradient_difference"] < 1e-5  # the same function, compiled
    assert result["ratio"] == pytest.approx(
        result["seconds"]["eager"] / result["seconds"]["compiled"]
    )
