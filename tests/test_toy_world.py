"""The toy world's parts: the task, the char tokenizer, the tiny model, SFT masking, rollouts."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from entropy_rl.base_model import ModelSettings, build_char_tokenizer, build_model, count_parameters
from entropy_rl.base_model.sft import IGNORE, encode_example
from entropy_rl.data import render_prompt
from entropy_rl.rewards import grade
from entropy_rl.rollout import Generator, HFGenerator
from entropy_rl.tasks import ArithmeticTask
from entropy_rl.train.batch import collate, policy_forward


def test_splits_are_disjoint_seeded_and_sized():
    task = ArithmeticTask()
    train, heldout, ood = (task.problems(s, 300, seed=0) for s in ("train", "heldout", "ood"))
    assert len({p.id for p in train}) == 300
    assert not {p.id for p in train} & {p.id for p in heldout}
    assert all(len(p.terms) == 4 for p in ood) and all(len(p.terms) == 3 for p in train)
    assert [p.id for p in task.problems("train", 50, seed=0)] == [p.id for p in train[:50]]
    assert [p.id for p in task.problems("train", 50, seed=1)] != [p.id for p in train[:50]]


def test_demonstrations_are_coherent_worked_lines():
    task = ArithmeticTask()
    rng = np.random.default_rng(0)
    problems = task.problems("train", 400, seed=0)
    demos = [task.demonstration(p, rng) for p in problems]
    correct = [grade(d, p.answer) for d, p in zip(demos, problems, strict=True)]
    # left to right half the time with 30% slips, other orders with 60%: about 55% correct
    assert 0.45 < np.mean(correct) < 0.65
    for demo in demos:  # every step adds correctly from the line's own partial sum, but one slip
        steps = demo.split(" \\boxed")[0].split(" ")
        wrong = 0
        for step in steps:
            left, result = step.rstrip(".").split("=")
            a, b = map(int, left.split("+"))
            wrong += a + b != int(result)
        assert wrong <= 1
    assert task.solution(problems[0]).endswith(f"\\boxed{{{problems[0].answer}}}")


def test_forgetting_paths_make_the_order_decide_correctness():
    # the embedded world: left to right always right, every other order forgets its last term
    task = ArithmeticTask(
        canonical_fraction=0.45, slip_rate_canonical=0.0, slip_rate_other=0.0,
        forget_rate_other=1.0,
    )  # fmt: skip
    rng = np.random.default_rng(0)
    problems = task.problems("train", 400, seed=0)
    finished = []
    for problem in problems:
        demo = task.demonstration(problem, rng)
        finished.append(demo.count("=") == 2)  # else one step early, then boxed
        assert grade(demo, problem.answer) == finished[-1], demo
        if finished[-1]:  # only the left-to-right path goes on
            assert demo.startswith(f"{problem.terms[0]}+{problem.terms[1]}="), demo
    assert 0.35 < np.mean(finished) < 0.55
    # with forget_rate_other = 0 the option draws nothing: older worlds keep their demonstrations
    old = ArithmeticTask()
    a, b = np.random.default_rng(1), np.random.default_rng(1)
    assert [old.demonstration(p, a) for p in problems[:50]] == [
        ArithmeticTask(forget_rate_other=0.0).demonstration(p, b) for p in problems[:50]
    ]


def test_bad_task_settings_name_the_key():
    with pytest.raises(ValueError, match=r"task\.ood_n_terms \(3\) must be > task\.n_terms \(3\)"):
        ArithmeticTask(ood_n_terms=3)
    with pytest.raises(ValueError, match=r"task\.slip_rate_other must be in \[0, 1\], got 1\.5"):
        ArithmeticTask(slip_rate_other=1.5)


def test_char_tokenizer_and_tiny_model_round_trip_like_hub_checkpoints(tmp_path):
    tokenizer = build_char_tokenizer()
    text = render_prompt("toy", "23+45+17=?") + "23+45=68. 68+17=85. \\boxed{85}"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert len(ids) == len(text) and tokenizer.decode(ids) == text
    assert tokenizer.convert_ids_to_tokens(tokenizer("é")["input_ids"]) == ["<unk>"]
    model = build_model(
        ModelSettings(), len(tokenizer), tokenizer.pad_token_id, tokenizer.eos_token_id, seed=0
    )
    assert 300_000 <= count_parameters(model) <= 3_000_000
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    loaded_tok = AutoTokenizer.from_pretrained(tmp_path)
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path)
    assert loaded_tok(text, add_special_tokens=False)["input_ids"] == ids
    batch = torch.tensor([ids])
    torch.testing.assert_close(loaded(batch).logits, model(batch).logits)


def test_sft_examples_mask_the_prompt():
    tokenizer = build_char_tokenizer()
    ids, labels = encode_example(tokenizer, "Q: 1+2=?\nA: ", "1+2=3. \\boxed{3}")
    n_prompt = len("Q: 1+2=?\nA: ")
    assert labels[:n_prompt] == [IGNORE] * n_prompt
    assert labels[n_prompt:] == ids[n_prompt:] and ids[-1] == tokenizer.eos_token_id


@pytest.fixture(scope="module")
def random_model():
    tokenizer = build_char_tokenizer()
    settings = ModelSettings(
        hidden_size=32, num_layers=2, num_heads=2, num_kv_heads=1, intermediate_size=64
    )
    return build_model(
        settings, len(tokenizer), tokenizer.pad_token_id, tokenizer.eos_token_id, seed=0
    ).eval(), tokenizer


def test_hf_generator_follows_the_protocol_and_is_seeded(random_model):
    model, tokenizer = random_model
    generator = HFGenerator(model, tokenizer)
    assert isinstance(generator, Generator)
    prompts = ["Q: 1+2=?\nA: ", "Q: 33+4=?\nA: "]
    first = generator.generate(prompts, 3, 1.0, 1.0, 12, seed=5)
    assert len(first) == 6 and first.prompt_ids[0] == first.prompt_ids[2] != first.prompt_ids[3]
    assert first.texts == generator.generate(prompts, 3, 1.0, 1.0, 12, seed=5).texts
    assert first.texts != generator.generate(prompts, 3, 1.0, 1.0, 12, seed=6).texts
    for ids, logprobs, done in zip(first.response_ids, first.logprobs, first.finished, strict=True):
        assert len(ids) == len(logprobs) <= 12
        assert done == (ids[-1] == tokenizer.eos_token_id)
    greedy = generator.generate(prompts, 2, 0.0, 1.0, 12, seed=1)
    assert greedy.texts[0] == greedy.texts[1]


def test_sampling_logprobs_equal_the_policy_logprobs_at_temperature_one(random_model):
    """The sampler's per-token log-probs are the policy's: old log-probs can be trusted."""
    model, tokenizer = random_model
    generation = HFGenerator(model, tokenizer).generate(
        ["Q: 12+3=?\nA: ", "Q: 7+7=?\nA: "], 2, 1.0, 1.0, 10, seed=0
    )
    batch = collate(generation, torch.zeros(len(generation)), tokenizer.pad_token_id)
    with torch.no_grad():
        logp, _ = policy_forward(model, batch)
    for row, sampled in enumerate(generation.logprobs):
        torch.testing.assert_close(
            logp[row][batch.response_mask[row]], torch.tensor(sampled), atol=1e-4, rtol=1e-4
        )
