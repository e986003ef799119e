"""The claims table: one threshold per claim, read by the acceptance checks, the science tests and
the docs."""

from __future__ import annotations

import inspect
import math
import re
from pathlib import Path

import pytest

from entropy_rl.analysis import study
from entropy_rl.analysis.claims import CLAIMS, Claim, claims_markdown

REPO = Path(__file__).resolve().parents[2]
# a comparison of a value with a number written in the code: a threshold outside the table
LITERAL_COMPARISON = re.compile(r"[<>]=?\s*-?\d*\.?\d+(?![\w\]])")


def test_a_claim_holds_by_its_operator_and_fails_on_nan():
    claim = Claim("x", "x", ">=", 0.1)
    assert claim.holds(0.1) and not claim.holds(0.0999) and not claim.holds(math.nan)
    assert Claim("y", "y", "<", 0.95, note=" (why)").target == "< 0.95 (why)"
    with pytest.raises(ValueError, match="op '=>'"):
        Claim("z", "z", "=>", 1)


def test_the_acceptance_checks_hold_no_threshold_of_their_own():
    source = inspect.getsource(study.acceptance_checks) + inspect.getsource(study._target_check)
    code = "\n".join(line.split("#")[0] for line in source.splitlines())
    code = re.sub(r'f?"[^"\n]*"', '""', code)  # comparisons in row texts are not decisions
    for structural in ("k > 1", "len(bonus) >= 2"):  # a pass@k with k > 1; two bonus runs
        code = code.replace(structural, "")
    assert not LITERAL_COMPARISON.findall(code), LITERAL_COMPARISON.findall(code)


def test_the_science_tests_read_the_claims_thresholds():
    text = (REPO / "tests" / "train" / "test_science.py").read_text()
    for claim in ("headroom", "payoff", "kept_entropy", "accuracy_cost", "bonus_small"):
        assert re.search(rf'CLAIMS\["{claim}"\]\.(holds|verdict)\(', text), claim


def test_the_design_doc_shows_the_claims_table_the_code_holds():
    assert (REPO / "docs" / "tables" / "claims.md").read_text() == claims_markdown(), (
        "regenerate: python -c 'from entropy_rl.analysis.claims import claims_markdown; "
        'print(claims_markdown(), end="")\' > docs/tables/claims.md'
    )
    assert '--8<-- "claims.md"' in (REPO / "docs" / "design.md").read_text()
    assert len(CLAIMS) == len({c.row for c in CLAIMS.values()})  # one row per claim
