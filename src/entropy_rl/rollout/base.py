"""The rollout contract: any backend (``transformers``, vLLM) that samples responses to prompts."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from entropy_rl.data import render_prompt
from entropy_rl.rewards import grade
from entropy_rl.rows import Rows

__all__ = ["Answers", "Generation", "Generator", "ProblemLike", "answer_problems"]


@dataclass(frozen=True)
class Generation(Rows):
    """``n`` samples per prompt, prompt-major: sample ``i`` answers prompt ``i // n``.

    ``response_ids`` end with the EOS token when the response finished (``finished``), and
    ``logprobs[i][t]`` is the log-probability of ``response_ids[i][t]`` under the distribution it
    was sampled from (after temperature / top-p); ``entropies[i][t]`` that distribution's entropy,
    where the backend reports it (the hf backend does; empty otherwise).
    """

    prompt_ids: list[list[int]]
    response_ids: list[list[int]]
    texts: list[str]
    logprobs: list[list[float]]
    finished: list[bool]
    entropies: list[list[float]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.texts)


@runtime_checkable
class Generator(Protocol):
    """Samples ``n`` responses per prompt; the same ``seed`` gives the same samples."""

    def generate(
        self,
        prompts: Sequence[str],
        n: int,
        temperature: float,
        top_p: float,
        max_new_tokens: int,
        seed: int,
    ) -> Generation: ...


class ProblemLike(Protocol):
    """A problem with a reference answer (a task's ``Problem``, a benchmark row)."""

    id: Any
    problem: str
    answer: str


@dataclass(frozen=True)
class Answers:
    """``k`` graded samples per problem, prompt-major: the prompts the model saw (cut from the
    left where they had to fit its context), the generation, each sample's correctness, and how
    many prompts were cut."""

    prompts: list[str]
    generation: Generation
    correct: list[bool]
    truncated: int

    @property
    def accuracy(self) -> float:
        """The fraction of samples that are correct."""
        return sum(self.correct) / len(self.correct)


def answer_problems(
    generator: Generator,
    problems: Sequence[ProblemLike],
    template: str,
    k: int,
    temperature: float,
    max_new_tokens: int,
    seed: int,
    top_p: float = 1.0,
) -> Answers:
    """``k`` samples per problem (greedy when ``temperature = 0``), graded against its answer:
    each problem rendered with ``template``, fitted to the model's context where the generator
    can tell (``fit_prompts``: a prompt that leaves no room for ``max_new_tokens`` is cut from the
    left, and said so on stderr), sampled, and graded (:func:`entropy_rl.rewards.grade`). The
    trainer's validation accuracy and every evaluation go through here."""
    prompts = [render_prompt(template, p.problem) for p in problems]
    fit = getattr(generator, "fit_prompts", None)
    truncated = 0
    if fit is not None:
        prompts, truncated = fit(prompts, max_new_tokens)
        if truncated:
            print(f"cut {truncated} of {len(prompts)} prompts from the left to fit the model's "
                  "context", file=sys.stderr)  # fmt: skip
    generation = generator.generate(prompts, k, temperature, top_p, max_new_tokens, seed)
    correct = [grade(text, problems[i // k].answer) for i, text in enumerate(generation.texts)]
    return Answers(prompts, generation, correct, truncated)
