"""The columns of the run's markdown tables, as the docs tests and the pipeline test compare them."""

from __future__ import annotations

import re

# columns a table has or not by its config (an entropy-target method; a law fitted on the
# validation entropy)
CONFIG_COLUMNS = {"steps within 10% of the entropy target", "R² on the rollout entropy"}
# columns a table has or not by its task: one per problem family (the carry world's easy and hard)
FAMILY_COLUMN = re.compile(r"family|^greedy: |: solved per sample$")


def columns(text: str) -> list[set[str]]:
    """The column set of each markdown table in ``text``, every ``@k`` made ``@k`` (a reduced run
    evaluates pass@2 where the full run evaluates pass@64)."""
    lines = text.splitlines()
    heads = [line for i, line in enumerate(lines)
             if line.startswith("|") and (i == 0 or not lines[i - 1].startswith("|"))]  # fmt: skip
    return [
        {re.sub(r"@\d+", "@k", c.strip()) for c in h.strip().strip("|").split(" | ")} for h in heads
    ]


def same_columns(ours: str, theirs: str) -> bool:
    """Do two markdown files hold tables of the same columns, the config's and the task's aside?"""
    a, b = columns(ours), columns(theirs)
    return len(a) == len(b) and all(
        not {c for c in x ^ y if c not in CONFIG_COLUMNS and not FAMILY_COLUMN.search(c)}
        for x, y in zip(a, b, strict=True)
    )
