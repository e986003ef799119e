"""Evaluation: k samples per problem from any ``Generator``, graded by the verifier.

For each problem with ``c`` correct answers among ``n`` samples:

    avg@n  = c / n                                   (mean per-sample accuracy)
    pass@k = 1 - C(n - c, k) / C(n, k)               (Chen et al., 2021; unbiased, k <= n)

averaged over problems. Every sample is kept (problem id, prompt, response, extracted answer,
reference, correct) so any number can be traced back to the text behind it.
"""

from __future__ import annotations

from collections.abc import Sequence
from math import comb
from typing import Any, Protocol

from entropy_rl.data import render_prompt
from entropy_rl.rewards import extract_boxed, grade
from entropy_rl.rollout import Generator

__all__ = ["evaluate_problems", "pass_at_k", "summarize_samples"]


class ProblemLike(Protocol):
    id: Any
    problem: str
    answer: str


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from ``c`` correct of ``n`` samples: ``1 - C(n-c, k) / C(n, k)``."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    return 1.0 - comb(n - c, k) / comb(n, k)


def summarize_samples(samples: Sequence[dict[str, Any]], n: int) -> dict[str, float]:
    """``avg@n`` and ``pass@k`` for ``k = 1..n`` from per-sample rows (``n`` rows per problem)."""
    by_problem: dict[Any, list[bool]] = {}
    for row in samples:
        by_problem.setdefault(row["id"], []).append(bool(row["correct"]))
    if not by_problem:
        raise ValueError("no samples to summarise")
    for problem_id, results in by_problem.items():
        if len(results) != n:
            raise ValueError(f"problem {problem_id!r} has {len(results)} samples, expected {n}")
    counts = [sum(results) for results in by_problem.values()]
    summary = {
        "problems": len(counts),
        "samples_per_problem": n,
        f"avg@{n}": sum(counts) / (n * len(counts)),
    }
    for k in range(1, n + 1):
        summary[f"pass@{k}"] = sum(pass_at_k(n, c, k) for c in counts) / len(counts)
    return summary


def evaluate_problems(
    generator: Generator,
    problems: Sequence[ProblemLike],
    template: str,
    k: int,
    temperature: float,
    max_new_tokens: int,
    seed: int,
    top_p: float = 1.0,
) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """``k`` samples per problem (greedy when ``temperature = 0``); per-sample rows and a summary."""
    prompts = [render_prompt(template, p.problem) for p in problems]
    generation = generator.generate(prompts, k, temperature, top_p, max_new_tokens, seed)
    samples = []
    for i, text in enumerate(generation.texts):
        problem = problems[i // k]
        samples.append(
            {
                "id": problem.id,
                "sample": i % k,
                "prompt": prompts[i // k],
                "response": text,
                "extracted": extract_boxed(text),
                "reference": problem.answer,
                "correct": grade(text, problem.answer),
                "finished": generation.finished[i],
            }
        )
    return samples, summarize_samples(samples, k)
