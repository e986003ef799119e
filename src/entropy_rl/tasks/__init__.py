"""Synthetic verifiable tasks that the embedded toy world trains and evaluates on."""

from entropy_rl.tasks.arithmetic import ArithmeticTask, Problem

__all__ = ["ArithmeticTask", "Problem"]
