"""The lm-eval adapter: lm-eval-harness, run offline on the tiny model, agrees with our evaluator."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from entropy_rl.data.benchmarks import load_benchmark
from entropy_rl.evaluate import evaluate_problems
from entropy_rl.lm_eval_adapter import write_tasks
from entropy_rl.rollout import HFGenerator
from entropy_rl.tasks import ArithmeticTask

from .conftest import TINY_TASK

ROWS = 12
MAX_TOKENS = 24


@pytest.mark.slow
def test_lm_eval_numbers_equal_the_suites_own_on_the_same_rows(tiny_base, tmp_path, benchmark_dir):
    pytest.importorskip(
        "lm_eval", reason="lm-eval is in the `test` extra: pip install -e '.[test]'"
    )
    # toy problems written in GSM8K's format, so a tiny model gets some of them right
    problems = ArithmeticTask(**TINY_TASK).problems("heldout", ROWS, seed=0)
    data = tmp_path / "gsm8k" / "test.jsonl"
    data.parent.mkdir()
    data.write_text(
        "".join(
            json.dumps({"question": p.problem, "answer": f"... #### {p.answer}"}) + "\n"
            for p in problems
        )
    )
    tasks = write_tasks(
        tmp_path / "tasks", ["gsm8k"], str(tmp_path / "{name}" / "test.jsonl"), "toy", MAX_TOKENS
    )

    env = {
        **os.environ,
        "HF_DATASETS_OFFLINE": "1",
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    command = [
        sys.executable, "-m", "lm_eval", "--model", "hf",
        "--model_args", f"pretrained={tiny_base},max_length=512,dtype=float32",
        "--tasks", tasks[0], "--include_path", str(tmp_path / "tasks"), "--batch_size", "1",
        "--device", "cpu", "--output_path", str(tmp_path / "out"), "--log_samples",
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    samples_file = next((tmp_path / "out").rglob(f"samples_{tasks[0]}_*.jsonl"))
    lm_eval_samples = [json.loads(line) for line in samples_file.read_text().splitlines()]
    lm_eval_correct = {s["doc"]["question"]: s["exact_match"] for s in lm_eval_samples}

    rows = load_benchmark("gsm8k", data)
    model = AutoModelForCausalLM.from_pretrained(tiny_base, dtype=torch.float32)
    ours, summary = evaluate_problems(
        HFGenerator(model, AutoTokenizer.from_pretrained(tiny_base)),
        rows,
        "toy",
        1,
        0.0,
        MAX_TOKENS,
        seed=0,
    )
    assert len(lm_eval_correct) == ROWS
    assert {
        row.problem: float(s["correct"]) for row, s in zip(rows, ours, strict=True)
    } == lm_eval_correct
    assert 0 < summary["pass@1"] < 1  # a non-trivial number, equal in both
