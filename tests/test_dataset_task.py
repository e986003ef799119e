"""Dataset tasks: problems and answers from (nested, chat) fields, disjoint splits, RL on them."""

from __future__ import annotations

import json

import pytest

from entropy_rl.tasks import ArithmeticTask, DatasetTask, make_task
from entropy_rl.train import RLSettings, train

from .conftest import TINY_TASK


def write_rows(path, problems):
    rows = [
        {
            "prompt": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": p.problem},
            ],
            "reward_model": {"ground_truth": p.answer},
        }
        for p in problems
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_rows_come_from_chat_and_nested_fields_with_disjoint_splits(tmp_path):
    problems = ArithmeticTask(**TINY_TASK).problems("train", 300, seed=0)
    path = write_rows(tmp_path / "data.jsonl", problems)
    task = make_task({"kind": "dataset", "path": str(path), "problem_field": "prompt",
                      "answer_field": "reward_model.ground_truth", "heldout_fraction": 0.2})  # fmt: skip
    assert isinstance(task, DatasetTask)
    train_rows, validation, heldout = (
        task.problems(split, 1000, seed=0) for split in ("train", "validation", "heldout")
    )
    assert len(train_rows) + len(validation) + len(heldout) == 300 and 30 < len(heldout) < 90
    splits = [{r.problem for r in rows} for rows in (train_rows, validation, heldout)]
    assert not (splits[0] & splits[1] or splits[0] & splits[2] or splits[1] & splits[2])
    answers = {p.problem: p.answer for p in problems}
    assert all(answers[r.problem] == r.answer for r in train_rows)
    assert [r.id for r in task.problems("train", 5, seed=1)] != [
        r.id for r in task.problems("train", 5, seed=2)
    ]


def test_bad_dataset_settings_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match=r"task\.kind must be one of arithmetic, carry, dataset"):
        make_task({"kind": "gsm"})
    with pytest.raises(ValueError, match=r"task\.path must name a local file or a hub dataset id"):
        make_task({"kind": "dataset"})
    path = write_rows(
        tmp_path / "data.jsonl", ArithmeticTask(**TINY_TASK).problems("train", 3, seed=0)
    )
    with pytest.raises(ValueError, match=r"row 1: no field 'question'"):
        make_task({"kind": "dataset", "path": str(path), "problem_field": "question"}).problems(
            "train", 1, 0
        )
    with pytest.raises(ValueError, match="has train, validation and heldout splits, not 'ood'"):
        make_task({"kind": "dataset", "path": str(path), "problem_field": "prompt",
                   "answer_field": "reward_model.ground_truth"}).problems("ood", 1, 0)  # fmt: skip


def test_rl_runs_on_a_dataset_task(tiny_base, tmp_path):
    path = write_rows(
        tmp_path / "data.jsonl", ArithmeticTask(**TINY_TASK).problems("train", 200, seed=0)
    )
    task = DatasetTask(path=str(path), problem_field="prompt", answer_field="reward_model.ground_truth",
                       heldout_fraction=0.1)  # fmt: skip
    settings = RLSettings(model=str(tiny_base), steps=2, prompts_per_step=4, group_size=4, mini_batches=2,
                          max_new_tokens=24, train_problems=100, eval_problems=8, probe_size=4, lr=1e-3)  # fmt: skip
    rows = train(settings, tmp_path / "run", task)
    assert [r["step"] for r in rows] == [0, 1] and rows[0]["entropy_change"] is not None
