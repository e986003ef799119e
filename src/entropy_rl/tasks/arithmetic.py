"""A synthetic, verifiable math task: multi-term integer addition with a worked line and ``\\boxed{}``.

A problem is ``a+b+c`` (``n_terms`` terms in ``[min_value, max_value]``); its demonstration adds
left to right, one step per term, then boxes the result::

    Q: 23+45+17=?
    A: 23+45=68. 68+17=85. \\boxed{85}

To make a *base* model like a real one — diverse and only moderately accurate — the supervised
demonstrations add the terms in varied orders (left to right most often), and a share of them
carries one plausible slip (a lost or extra carry, a units digit off by one) in one step, the later
steps computing correctly from the wrong partial sum, so the boxed answer is wrong but the line
stays coherent. Another, deterministic kind of error makes the paths themselves the decision: at
``forget_rate_other`` the other-order demonstrations forget the last term and box the answer one
step early (``45+23=68. \\boxed{68}``), so whether a response is right is settled by a few early
tokens (which term comes first, which second, whether to go on) and the model's entropy sits
there, as in a real model's forks. Splits are disjoint: a problem's split is a hash of its
terms, so train, held-out (same difficulty) and out-of-distribution (more terms) never overlap.
"""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from entropy_rl.settings import Settings, choice, integer, number

__all__ = ["ArithmeticTask", "Problem"]

SPLITS = ("train", "heldout", "ood", "validation")  # a new split goes last: seeds stay


def split_of(u: float, task: Any) -> str:
    """``u`` uniform in [0, 1): held out below ``heldout_fraction``, validation in the next
    ``validation_fraction``, train above."""
    if u < task.heldout_fraction:
        return "heldout"
    return "validation" if u < task.heldout_fraction + task.validation_fraction else "train"


@dataclass(frozen=True)
class Problem:
    """One problem, normalised like a benchmark row: ``id``, ``problem``, ``answer`` (a LaTeX string)."""

    id: str
    problem: str
    answer: str
    terms: tuple[int, ...]
    extra: dict = field(default_factory=dict, compare=False)  # e.g. the carry world's family


@dataclass(frozen=True)
class ArithmeticTask(Settings):
    """Multi-term addition. ``ood_n_terms`` terms make the harder out-of-distribution split."""

    section: ClassVar[str] = "task"

    kind: str = choice("arithmetic", ("arithmetic",), doc="the synthetic addition task")
    n_terms: int = integer(3, 2, doc="terms per problem")
    min_value: int = integer(10, 0, doc="smallest term")
    max_value: int = integer(99, 1, doc="largest term")
    ood_n_terms: int = integer(4, 3, doc="terms per problem of the out-of-distribution split")
    heldout_fraction: float = number(
        0.1, 0.0, 1.0, low_open=True, high_open=True, doc="share of problems held out"
    )
    validation_fraction: float = number(
        0.05, 0.0, 1.0, low_open=True, high_open=True,
        doc="share of problems for validation (evaluations during training, tuning)",
    )  # fmt: skip
    canonical_fraction: float = number(
        0.5, 0.0, 1.0, doc="share of demonstrations adding left to right"
    )
    slip_rate_canonical: float = number(
        0.3, 0.0, 1.0, doc="share of left-to-right demonstrations with a slip"
    )
    slip_rate_other: float = number(
        0.6, 0.0, 1.0, doc="share of other-order demonstrations with a slip"
    )
    forget_rate_other: float = number(
        0.0, 0.0, 1.0, doc="share of other-order demonstrations that forget the last term"
    )

    def check(self) -> None:
        if self.ood_n_terms <= self.n_terms:
            raise ValueError(
                f"task.ood_n_terms ({self.ood_n_terms}) must be > task.n_terms ({self.n_terms}): "
                "the out-of-distribution split is the harder one"
            )
        if self.min_value >= self.max_value:
            raise ValueError(
                f"task.min_value ({self.min_value}) must be < task.max_value ({self.max_value})"
            )

    def _split(self, terms: tuple[int, ...]) -> str:
        """The split of a problem, fixed by a hash of its terms: held out, validation or train."""
        digest = hashlib.sha256("+".join(map(str, terms)).encode()).digest()
        return split_of(int.from_bytes(digest[:4], "big") / 2**32, self)

    def make(self, terms: tuple[int, ...]) -> Problem:
        statement = "+".join(map(str, terms)) + "=?"
        return Problem(
            id="+".join(map(str, terms)), problem=statement, answer=str(sum(terms)), terms=terms
        )

    def problems(self, split: str, n: int, seed: int) -> list[Problem]:
        """``n`` distinct problems of ``split`` (train, validation, heldout or ood), seeded."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
        n_terms = self.ood_n_terms if split == "ood" else self.n_terms
        rng = np.random.default_rng([seed, SPLITS.index(split)])
        seen: dict[tuple[int, ...], Problem] = {}
        for _ in range(200 * n):
            if len(seen) == n:
                break
            terms = tuple(
                int(t) for t in rng.integers(self.min_value, self.max_value + 1, size=n_terms)
            )
            if split != "ood" and self._split(terms) != split:
                continue
            seen.setdefault(terms, self.make(terms))
        if len(seen) < n:
            raise ValueError(f"could not draw {n} distinct {split} problems; widen the value range")
        return list(seen.values())

    def solution(
        self,
        problem: Problem,
        order: tuple[int, ...] | None = None,
        slip_step: int | None = None,
        slip: int = 0,
        forget_last: bool = False,
    ) -> str:
        """The worked line adding the terms in ``order`` (default left to right); ``slip_step``
        (0-based) adds ``slip`` to that step's partial sum, and later steps carry the error on.
        ``forget_last`` leaves the last term out (the answer boxed one step early)."""
        terms = [problem.terms[i] for i in (order or range(len(problem.terms)))]
        if forget_last:
            terms = terms[:-1]
        steps, total = [], terms[0]
        for index, term in enumerate(terms[1:]):
            result = total + term + (slip if index == slip_step else 0)
            steps.append(f"{total}+{term}={result}.")
            total = result
        return " ".join(steps) + f" \\boxed{{{total}}}"

    def demonstration(self, problem: Problem, rng: np.random.Generator) -> str:
        """A supervised demonstration, diverse like a real model's: mostly left to right (with
        probability ``canonical_fraction``), else the terms in another order; and, at the order's
        slip rate, one plausible slip (a carry lost or doubled, a units digit off by one).

        Slips are rarer on the left-to-right path, so the base model is more accurate on the path it
        prefers: a positive covariance between log-probability and advantage, the paper's recipe for
        entropy collapse. At ``forget_rate_other`` an other-order demonstration instead forgets its
        last term (no slip then): a wrong path rather than a wrong digit.
        """
        n = len(problem.terms)
        canonical = rng.random() < self.canonical_fraction or n < 2
        if canonical:
            order = tuple(range(n))
        else:
            others = [p for p in itertools.permutations(range(n)) if p != tuple(range(n))]
            order = others[int(rng.integers(len(others)))]
        if not canonical and self.forget_rate_other and rng.random() < self.forget_rate_other:
            return self.solution(problem, order, forget_last=True)
        slip_rate = self.slip_rate_canonical if canonical else self.slip_rate_other
        if rng.random() >= slip_rate:
            return self.solution(problem, order)
        step = int(rng.integers(n - 1))
        slip = int(rng.choice([-10, 10, -1, 1, -11, 11]))
        return self.solution(problem, order, slip_step=step, slip=slip)
