"""The token-entropy view: each sampled token's entropy under its policy, forks, the page."""

from __future__ import annotations

import re

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from entropy_rl.cli import main
from entropy_rl.data import render_prompt
from entropy_rl.tasks import ArithmeticTask
from entropy_rl.token_view import TokenTrace, fork_threshold, position_means, trace_policy

from .conftest import TINY_TASK
from .train.conftest import rl_config, write_config


def test_the_entropy_of_each_token_is_that_of_the_tempered_policy_at_its_prefix(tiny_base):
    model = AutoModelForCausalLM.from_pretrained(tiny_base, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(tiny_base)
    problems = ArithmeticTask(**TINY_TASK).problems("heldout", 3, 0)
    traces = trace_policy(model, tokenizer, problems, "toy", 0.5, 24, seed=0)
    assert [t.problem_id for t in traces] == [p.id for p in problems]
    trace, problem = traces[1], problems[1]
    prompt = tokenizer(render_prompt("toy", problem.problem))["input_ids"]
    response = tokenizer("".join(trace.tokens), add_special_tokens=False)["input_ids"]
    for t in (0, len(response) // 2, len(response) - 1):  # recomputed one prefix at a time
        with torch.no_grad():
            z = model(input_ids=torch.tensor([prompt + response[:t]])).logits[0, -1] / 0.5
        pi = torch.softmax(z, -1)
        assert trace.entropy[t] == pytest.approx(float(-(pi * pi.log()).sum()), abs=1e-4)
        assert trace.prob[t] == pytest.approx(float(pi[response[t]]), abs=1e-4)


def test_forks_carry_most_of_the_base_models_entropy_and_position_means_skip_short_responses():
    base = [TokenTrace("a", list("abcde"), [0.0, 0.1, 0.2, 0.3, 1.0], [1.0] * 5, True)]
    assert fork_threshold(base) == 0.3  # 1.0 + 0.3 carry 1.3 of 1.6 nats, >= 80%
    assert fork_threshold(base, mass=0.5) == 1.0
    assert fork_threshold([TokenTrace("c", list("ab"), [0.0, 0.0], [1.0] * 2, True)]) == float(
        "inf"
    )
    short = TokenTrace("b", list("ab"), [0.4, 0.6], [1.0] * 2, False)
    assert position_means([*base, short]) == pytest.approx([0.2, 0.35, 0.2, 0.3, 1.0])


@pytest.mark.slow
def test_the_page_shows_every_policy_on_the_same_prompts_self_contained(tiny_base, tmp_path):
    config = write_config(tmp_path / "c.yaml", rl_config(tiny_base, steps=2, lr=3e-3))
    run = tmp_path / "grpo"
    assert main(["train", "--config", str(config), "--method", "grpo", "--out", str(run)]) == 0
    evaluate = write_config(
        tmp_path / "e.yaml",
        {"task": TINY_TASK, "evaluate": {"temperature": 0.5, "max_new_tokens": 24}},
    )
    out = tmp_path / "token_entropy.html"
    code = main(["token-entropy", "--config", str(evaluate), "--policy", f"base={tiny_base}",
                 f"grpo={run / 'model'}", "--problems", "6", "--shown", "3", "--out", str(out)])  # fmt: skip
    assert code == 0
    page = out.read_text()
    assert page.count("<div class='prompt'>") == 3
    assert (
        page.count("<td class='policy'>base</td>")
        == page.count("<td class='policy'>grpo</td>")
        == 3
    )
    assert page.count("<polyline") == 2  # the per-position means, one line per policy
    assert re.search(r"title='[^']*: H = \d\.\d{3} nats, p = \d\.\d{3}'", page)
    assert "class='t fork'" in page  # the base model's high-entropy tokens
    assert "<script" not in page and "http" not in page  # nothing to fetch
    assert "name='viewport'" in page
