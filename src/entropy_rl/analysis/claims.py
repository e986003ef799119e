"""The science claims of the study as data: what each states, on which number, against which
threshold.

One table, read by :func:`entropy_rl.analysis.study.acceptance_checks` (the acceptance table of
every run and of the report), by the science tests (``tests/train/test_science.py``) and by the
docs (``docs/design.md`` shows :func:`claims_markdown`). A threshold is written here once.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass

import numpy as np

__all__ = ["CLAIMS", "Claim", "claims_markdown"]

_OPS = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt}


@dataclass(frozen=True)
class Claim:
    """One claim: ``row`` names the acceptance row (``str.format`` fields such as ``{method}`` are
    filled per row), ``op`` and ``threshold`` decide it, ``note`` follows the target."""

    id: str
    row: str
    op: str
    threshold: float
    note: str = ""
    fmt: str = "g"

    def __post_init__(self) -> None:
        if self.op not in _OPS:
            raise ValueError(f"claim {self.id}: op {self.op!r} is not one of {sorted(_OPS)}")

    def holds(self, value: float) -> bool:
        """``value op threshold`` (False for NaN)."""
        return bool(_OPS[self.op](value, self.threshold))

    def verdict(self, lo: float, hi: float) -> str:
        """``pass`` when the whole interval ``[lo, hi]`` holds the claim, ``fail`` when none of
        it does, ``inconclusive`` when it straddles the threshold (or is undefined): no claim
        is decided on a point estimate."""
        if any(np.isnan(v) for v in (lo, hi)):
            return "inconclusive"
        if self.holds(lo) and self.holds(hi):
            return "pass"
        if not self.holds(lo) and not self.holds(hi):
            return "fail"
        return "inconclusive"

    @property
    def target(self) -> str:
        """The target as the acceptance table prints it, e.g. ``>= 0.10``."""
        return f"{self.op} {self.threshold:{self.fmt}}{self.note}"


def _claims(*claims: Claim) -> dict[str, Claim]:
    return {claim.id: claim for claim in claims}


CLAIMS: dict[str, Claim] = _claims(
    # the collapse (the paper's §2.3: entropy falls early, performance rises as it does)
    Claim("entropy_drop_first_third", "GRPO: entropy drop in the first third of training (LM)",
          ">=", 0.5, fmt=".2f"),
    Claim("accuracy_gain", "GRPO: held-out accuracy gain over the base (LM, sampled)", ">", 0),
    # the law R = -a·exp(H) + b (§2, Eq. 6) and what it predicts (§2.4-2.5)
    Claim("law_r2", "law R = -a·exp(H) + b fits GRPO (pooled R²)", ">=", 0.9),
    Claim("early_fit_error", "early-third fit predicts final accuracy (|error|)", "<=", 0.05),
    Claim("evals_before_half",
          "GRPO: held-out evaluations before its entropy halves (fewest of any run)", ">=", 5,
          note=" (points for the law during the collapse)"),
    Claim("ceiling", "ceiling: the law's b − a on GRPO's runs, upper end of its 95% interval",
          "<", 0.95, note=" (a ceiling below what is learnable)"),
    # the mechanism (§3: Lemma 1, Theorems 1-2, the covariance measured in §3.3)
    Claim("lemma1_r", "Lemma 1: measured vs predicted entropy change, Pearson r (LM)", ">=", 0.9),
    Claim("cov_positive", "covariance positive under GRPO (share of steps, LM)", ">=", 0.8),
    # headroom and payoff (§4.2-4.3: Clip-Cov and KL-Cov keep entropy and gain accuracy)
    Claim("headroom",
          "headroom: base model's held-out pass@{k} minus GRPO's final greedy accuracy",
          ">=", 0.10, fmt=".2f"),
    Claim("kept_entropy",
          "{method}: late-run entropy / GRPO's (LM; mean of the last 10% of steps)", ">=", 2),
    Claim("accuracy_cost", "{method}: held-out greedy accuracy minus GRPO's", ">=", -0.02),
    Claim("payoff",
          "payoff: {method}'s held-out greedy accuracy minus GRPO's, with ≥ 2× its late-run "
          "entropy", ">=", 0.05, note=", its 95% interval above 0"),
    Claim("above_grpo", "{method}: held-out greedy accuracy above GRPO's", ">", 0,
          note=" (its 95% interval above 0)"),
    Claim("payoff_interval", "payoff: the lower end of that row's 95% interval",
          ">", 0),
    Claim("payoff_any", "payoff: an intervention ends above GRPO (some payoff row above passes)",
          ">=", 1, note=" intervention"),
    Claim("boundary_grpo", "boundary: GRPO's held-out {key} minus the base model's", "<", 0,
          note=" (RL narrows what the model can reach)"),
    Claim("boundary_intervention",
          "boundary: the better intervention's ({method}) held-out {key} minus GRPO's", ">=", 0),
    # discovery: which runs learn the problems the base model rarely solves (the carry world's hard
    # family), a rate over runs with its exact binomial interval; decided on the whole interval
    Claim("discovery_grpo",
          "discovery: share of GRPO's runs that learn the hard family (greedy ≥ 0.5 on it)",
          "<", 0.5, note=" (the collapse keeps it from the general path)"),
    Claim("discovery",
          "discovery: share of {method}'s runs that learn the hard family (greedy ≥ 0.5 on it)",
          ">", 0.5, note=" (kept entropy finds the general path)"),
    # the entropy bonus's two failure modes (§4.1)
    Claim("bonus_small", "{method} (smallest coefficient): late-run entropy / GRPO's", "<", 1.5,
          note=" (collapses like GRPO)"),
    Claim("bonus_large", "{method} (largest coefficient): late-run / initial entropy", ">", 1,
          note=" (entropy rises)"),
    Claim("bonus_large_cost", "{method} (largest coefficient): held-out accuracy minus GRPO's",
          "<", -0.05),
    Claim("bonus_chosen",
          "{method}'s coefficient, in the payoff rows: final validation greedy accuracy minus the "
          "best other coefficient's, on the runs the sweep shares", ">=", 0,
          note=" (chosen on validation)"),
    # the entropy-target controller
    Claim("target_held",
          "{method} ({world}): share of steps after warm-up with {what} within 10% of the target",
          ">=", 0.95),
    # the tabular simulator
    Claim("tabular_entropy_drop", "tabular GRPO: entropy drop over the run", ">=", 0.5, fmt=".2f"),
    Claim("tabular_lemma1_r", "tabular: measured vs predicted entropy change, Pearson r", ">=",
          0.9),
    Claim("tabular_kept_entropy", "tabular {method}: late-run entropy / GRPO's", ">", 1),
)  # fmt: skip


def claims_markdown() -> str:
    """The claims as a markdown table (id, the acceptance row, the target)."""
    lines = ["| id | acceptance row | target |", "|---|---|---|"]
    for claim in CLAIMS.values():
        cells = (f"`{claim.id}`", claim.row, claim.target)
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"
