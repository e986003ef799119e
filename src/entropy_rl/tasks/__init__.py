"""Tasks: where RL prompts and their reference answers come from.

``task.kind: arithmetic`` (default) is the synthetic verifiable task of the embedded world,
``task.kind: carry`` its two-family variant with a shortcut (``tasks/carry.py``);
``task.kind: dataset`` reads a math dataset for real models. Both give ``problems(split, n, seed)``.
"""

from typing import Any

from entropy_rl.settings import mapping
from entropy_rl.tasks.arithmetic import ArithmeticTask, Problem
from entropy_rl.tasks.carry import CarryTask
from entropy_rl.tasks.dataset import DatasetTask

__all__ = ["ArithmeticTask", "CarryTask", "DatasetTask", "Problem", "make_task"]

TASKS = {"arithmetic": ArithmeticTask, "carry": CarryTask, "dataset": DatasetTask}


def make_task(section: dict[str, Any] | None) -> ArithmeticTask | DatasetTask:
    """The task a ``task:`` config section describes (its ``kind``, default ``arithmetic``)."""
    section = mapping(section, "task")
    kind = section.get("kind", "arithmetic")
    if not isinstance(kind, str) or kind not in TASKS:
        raise ValueError(f"task.kind must be one of {', '.join(TASKS)}, got {kind!r}")
    return TASKS[kind].from_dict(section)
