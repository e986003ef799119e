"""The carry world: families by the units carry; the shortcut is right exactly on the easy one."""

from __future__ import annotations

import numpy as np
import pytest

from entropy_rl.rewards import grade
from entropy_rl.tasks import CarryTask, make_task


def test_the_shortcut_is_right_exactly_on_easy_problems_and_the_general_line_on_all():
    task = CarryTask()
    problems = task.problems("train", 400, 0)
    families = [p.extra["family"] for p in problems]
    assert 0.3 < families.count("hard") / len(problems) < 0.6  # P(units carry) = 45/100
    for problem, family in zip(problems, families, strict=True):
        a, b = problem.terms
        assert family == ("hard" if a % 10 + b % 10 >= 10 else "easy")
        assert grade(task.shortcut(problem), problem.answer) is (family == "easy")
        assert grade(task.solution(problem), problem.answer)
        assert not grade(task.solution(problem, slip_step=0, slip=10), problem.answer)
    assert CarryTask().shortcut(CarryTask().make((27, 45))) == "u 7+5=2. t 2+4=6. \\boxed{62}"
    slipped = CarryTask().shortcut(CarryTask().make((21, 45)), slip=True)
    assert slipped == "u 1+5=7. t 2+4=6. \\boxed{67}"


def test_demonstrations_mix_the_paths_at_the_configured_rates():
    task = CarryTask(shortcut_fraction=0.8, slip_rate_general=0.5, slip_rate_shortcut=0.3)
    problems = task.problems("train", 200, 1)
    rng = np.random.default_rng(0)
    demos = [(p, task.demonstration(p, rng)) for p in problems for _ in range(40)]
    shortcut = [d.startswith("u ") for _, d in demos]
    assert np.mean(shortcut) == pytest.approx(0.8, abs=0.02)
    easy = [grade(d, p.answer) for (p, d), s in zip(demos, shortcut, strict=True)
            if s and p.extra["family"] == "easy"]  # fmt: skip
    assert np.mean(easy) == pytest.approx(0.7, abs=0.04)  # the units slip, and nothing else
    general = [(p, d) for (p, d), s in zip(demos, shortcut, strict=True) if not s]
    assert np.mean([grade(d, p.answer) for p, d in general]) == pytest.approx(0.5, abs=0.04)
    ood = task.problems("ood", 5, 0)
    assert all(len(p.terms) == 3 and not task.demonstration(p, rng).startswith("u ") for p in ood)


def test_the_carry_world_is_a_task_kind_with_checked_settings():
    assert isinstance(make_task({"kind": "carry", "shortcut_fraction": 0.9}), CarryTask)
    with pytest.raises(ValueError, match=r"task\.n_terms must be an integer in \[2, 2\], got 3"):
        CarryTask(n_terms=3)
    with pytest.raises(ValueError, match=r"task\.shortcut_fraction must be in \[0, 1\]"):
        CarryTask(shortcut_fraction=1.5)
