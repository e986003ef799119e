"""avg@k and the unbiased pass@k estimator; the evaluator end to end on a tiny model."""

from __future__ import annotations

import itertools
import json
from math import comb

import pytest
from hypothesis import given
from hypothesis import strategies as st

from entropy_rl.cli import main
from entropy_rl.evaluate import pass_at_k, summarize_samples


@st.composite
def n_c_k(draw):
    n = draw(st.integers(1, 12))
    return n, draw(st.integers(0, n)), draw(st.integers(1, n))


@given(n_c_k())
def test_pass_at_k_equals_the_direct_combinatorial_probability(case):
    """pass@k = P(a uniformly drawn k-subset of the n samples holds a correct one), by enumeration."""
    n, c, k = case
    samples = [True] * c + [False] * (n - c)
    subsets = list(itertools.combinations(range(n), k))
    direct = sum(any(samples[i] for i in subset) for subset in subsets) / comb(n, k)
    assert pass_at_k(n, c, k) == pytest.approx(direct, abs=1e-12)


@given(st.lists(st.lists(st.booleans(), min_size=3, max_size=3), min_size=1, max_size=20))
def test_avg_at_k_is_the_mean_per_sample_correctness(table):
    samples = [{"id": i, "correct": ok} for i, row in enumerate(table) for ok in row]
    summary = summarize_samples(samples, 3)
    assert summary["avg@3"] == pytest.approx(sum(map(sum, table)) / (3 * len(table)))
    assert summary["pass@1"] == pytest.approx(summary["avg@3"])
    assert summary["pass@3"] == pytest.approx(sum(any(row) for row in table) / len(table))


def test_pass_at_k_rejects_impossible_counts():
    with pytest.raises(ValueError, match="pass@k needs"):
        pass_at_k(4, 5, 1)
    with pytest.raises(ValueError, match="pass@k needs"):
        pass_at_k(4, 1, 5)


def save_tiny_model(folder):
    """A random 2-layer decoder with the toy world's character tokenizer, saved to ``folder``."""
    from entropy_rl.base_model import ModelSettings, build_char_tokenizer, build_model

    tokenizer = build_char_tokenizer()
    settings = ModelSettings(
        hidden_size=32, num_layers=2, num_heads=2, num_kv_heads=1, intermediate_size=64
    )
    model = build_model(
        settings, len(tokenizer), tokenizer.pad_token_id, tokenizer.eos_token_id, seed=0
    )
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def test_evaluate_cli_on_all_seven_benchmarks(tmp_path, benchmark_dir):
    save_tiny_model(tmp_path / "model")
    names = "math500,aime24,aime25,amc23,minerva_math,olympiadbench,gsm8k"
    out = tmp_path / "eval"
    args = ["evaluate", "--model", str(tmp_path / "model"), "--benchmarks", names, "--k", "2",
            "--benchmark-path", str(benchmark_dir / "{name}" / "test.jsonl"), "--benchmark-limit", "3", "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert {f"benchmark/{name}" for name in names.split(",")} <= set(summary)
    rows = [
        json.loads(line)
        for line in (out / "samples" / "benchmark_math500.jsonl").read_text().splitlines()
    ]
    assert len(rows) == 3 * 2
    assert set(rows[0]) >= {"id", "prompt", "response", "extracted", "reference", "correct"}
    assert summary["benchmark/math500"]["pass@1"] == sum(r["correct"] for r in rows) / 6


def test_a_benchmark_with_its_own_temperature_is_decoded_greedily_once(
    tmp_path, benchmark_dir, capsys
):
    """The recipe's validation: AIME sampled at evaluate.temperature's k samples, MATH-500 at
    temperature 0 with one response (its pass@k is its pass@1 in the average)."""
    import yaml

    save_tiny_model(tmp_path / "model")
    evaluate = {
        "heldout_problems": 0, "ood_problems": 0, "temperature": 0.6, "max_new_tokens": 8,
        "benchmarks": ["math500", "aime24"], "benchmark_k": 3, "benchmark_limit": 2,
        "benchmark_path": str(benchmark_dir / "{name}" / "test.jsonl"),
        "benchmark_temperatures": {"math500": 0.0},
    }  # fmt: skip
    config = tmp_path / "evaluate.yaml"
    config.write_text(yaml.safe_dump({"evaluate": evaluate}))
    out = tmp_path / "eval"
    assert main(["evaluate", "--model", str(tmp_path / "model"), "--config", str(config),
                 "--out", str(out)]) == 0  # fmt: skip
    summary = json.loads((out / "summary.json").read_text())
    assert summary["benchmark/math500"]["temperature"] == 0.0
    assert summary["benchmark/aime24"]["temperature"] == 0.6
    lines = lambda name: (out / "samples" / f"benchmark_{name}.jsonl").read_text().splitlines()  # noqa: E731
    assert len(lines("math500")) == 2 and len(lines("aime24")) == 2 * 3
    average = summary["benchmark_average"]
    pass1 = (summary["benchmark/math500"]["pass@1"] + summary["benchmark/aime24"]["pass@1"]) / 2
    assert average["pass@1"] == pytest.approx(pass1)
    assert average["pass@3"] == pytest.approx(
        (summary["benchmark/math500"]["pass@1"] + summary["benchmark/aime24"]["pass@3"]) / 2
    )
    config.write_text(
        yaml.safe_dump({"evaluate": {**evaluate, "benchmark_temperatures": {"amc23": 0.6}}})
    )
    args = [
        "evaluate",
        "--model",
        str(tmp_path / "model"),
        "--config",
        str(config),
        "--out",
        str(out),
    ]
    assert main(args) != 0
    assert "benchmark_temperatures names 'amc23', which is not in" in capsys.readouterr().err


def test_a_prompt_too_long_for_the_context_is_refused_before_any_tensor(tiny_base):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from entropy_rl.data import render_prompt
    from entropy_rl.evaluate import evaluate_problems
    from entropy_rl.rollout import HFGenerator
    from entropy_rl.tasks.arithmetic import Problem

    model = AutoModelForCausalLM.from_pretrained(tiny_base, dtype=torch.float32)
    generator = HFGenerator(model, AutoTokenizer.from_pretrained(tiny_base))
    context = model.config.max_position_embeddings
    long = "1+" * context + "1"  # one token a character: far past the context
    with pytest.raises(ValueError, match=rf"1 of 2 prompts are too long .*\({context} tokens"):
        generator.generate(["12+30=", long], 1, 1.0, 1.0, 8, seed=0)
    # an evaluation cuts such a prompt from the left (its end kept) and counts it
    problems = [Problem("0", "12+30", "42", (12, 30)), Problem("1", long, "1", (1,))]
    samples, summary = evaluate_problems(
        generator, problems, template="toy", k=2, temperature=1.0, max_new_tokens=8, seed=0
    )
    assert summary["truncated_prompts"] == 1 and summary["problems"] == 2
    shown = [row["prompt"] for row in samples if row["id"] == "1"]
    assert len(shown) == 2 and len(shown[0]) == context - 8
    assert render_prompt("toy", long).endswith(shown[0])
