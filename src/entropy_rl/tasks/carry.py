"""The carry world: two-term addition where a common shortcut is right only on the easy family.

Every problem is ``a+b`` with two-digit terms. It is **easy** when the units digits do not carry
(``7+1``) and **hard** when they do (``7+5``). The base model learns two paths that part at the
first response token, before anything tells the families apart:

- the **shortcut**, digit by digit and blind to the carry, common in the demonstrations and
  reliable, but right only on easy problems::

      Q: 27+45=?
      A: u 7+5=2. t 2+4=6. \\boxed{62}        (the right answer is 72)

- the **general** worked line, rare in the demonstrations and at first error-prone (a consistent
  ``+10`` slip at ``slip_rate_general``), but right on every problem once the slip is gone::

      A: 27+45=72. \\boxed{72}

So at the start the shortcut is both more likely and more rewarded: the covariance between
log-probability and advantage is positive at the first token, GRPO sharpens the shortcut
everywhere and caps accuracy near the easy family's share, and the general path — the only way to
the hard family — is starved unless something keeps it sampled. The out-of-distribution split
(``ood_n_terms`` terms) is demonstrated with the general line only.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from entropy_rl.settings import choice, integer, number
from entropy_rl.tasks.arithmetic import ArithmeticTask, Problem

__all__ = ["CarryTask"]

FAMILIES = ("easy", "hard")


@dataclass(frozen=True)
class CarryTask(ArithmeticTask):
    """Two-term addition with an easy and a hard family and a shortcut that ignores the carry."""

    kind: str = choice("carry", ("carry",), doc="two families, a shortcut and a general path")
    n_terms: int = integer(2, 2, 2, doc="terms per problem (two)")
    min_value: int = integer(10, 10, 99, doc="smallest term (two digits)")
    max_value: int = integer(99, 10, 99, doc="largest term (two digits)")
    ood_n_terms: int = integer(3, 3, doc="terms per problem of the out-of-distribution split")
    shortcut_fraction: float = number(
        0.85, 0.0, 1.0, doc="share of demonstrations taking the digit-wise shortcut"
    )
    slip_rate_general: float = number(
        0.6, 0.0, 1.0, doc="share of general-path demonstrations with a +10 slip"
    )
    slip_rate_shortcut: float = number(
        0.0, 0.0, 1.0, doc="share of shortcut demonstrations whose units digit is one too high"
    )

    @staticmethod
    def family(terms: tuple[int, ...]) -> str:
        """``hard`` when the units digits of the two terms carry, else ``easy``."""
        return "hard" if sum(t % 10 for t in terms) >= 10 else "easy"

    def make(self, terms: tuple[int, ...]) -> Problem:
        problem = super().make(terms)
        if len(terms) != 2:
            return problem
        return replace(problem, extra={"family": self.family(terms)})

    def shortcut(self, problem: Problem, slip: bool = False) -> str:
        """Units, then tens, each digit sum written down without the carry: right iff easy.
        ``slip`` writes the units digit one too high (``7+1=9``), wrong on every problem."""
        a, b = problem.terms
        units, tens = (a % 10 + b % 10 + int(slip)) % 10, a // 10 + b // 10
        return (
            f"u {a % 10}+{b % 10}={units}. t {a // 10}+{b // 10}={tens}. "
            f"\\boxed{{{tens * 10 + units}}}"
        )

    def demonstration(self, problem: Problem, rng: np.random.Generator) -> str:
        """The shortcut at ``shortcut_fraction`` (its units digit slipped at
        ``slip_rate_shortcut``), else the general line, slipped by +10 at ``slip_rate_general``
        (more terms: the general line only)."""
        if len(problem.terms) != 2:
            return self.solution(problem)
        if rng.random() < self.shortcut_fraction:
            return self.shortcut(problem, slip=rng.random() < self.slip_rate_shortcut)
        if rng.random() < self.slip_rate_general:
            return self.solution(problem, slip_step=0, slip=10)
        return self.solution(problem)
