"""The study's figures, named once: each figure's name, the stage that draws it, when a config
has it, and the caption the report prints under it.

The Snakemake rules (``workflow/rules/common.smk``: which files each rule makes), the CLI
(``entropy-rl analyze`` draws them, :func:`entropy_rl.plots.figures.draw_study_figures`), the
report (:func:`entropy_rl.report.study_report`: the captions) and the schema (``docs.figures``
names, checked by a test) read this table. It imports nothing heavy, so the Snakefile can read it
when it parses.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["FIGURES", "READABLE_SCALE", "Figure", "figure_names", "png_width", "uses_loss"]

# The smallest displayed / natural width at which a figure's text reads: the figures are saved at
# 150 dpi with 10 pt text (21 px in the PNG, legends 8.5 pt), so at 0.4 the text is 8 px and up.
# The docs site (site_hooks/figures.py) and the report give each figure this minimum width; a
# narrower screen scrolls the figure inside its own box.
READABLE_SCALE = 0.4


def png_width(head: bytes) -> int:
    """A PNG's width in pixels from its first 24 bytes (the IHDR chunk's first field)."""
    if head[:8] != b"\x89PNG\r\n\x1a\n" or len(head) < 24:
        raise ValueError("not a PNG file: its first 8 bytes are not the PNG signature")
    return int.from_bytes(head[16:20], "big")


def uses_loss(loss: str) -> Callable[[dict[str, Any]], bool]:
    """``config -> bool``: does a method of either world use ``loss``."""

    def wanted(config: dict[str, Any]) -> bool:
        return any(
            spec["loss"] == loss
            for section in ("train", "tabular")
            for spec in config.get(section, {}).get("methods", {}).values()
        )

    return wanted


def _always(config: dict[str, Any]) -> bool:
    return True


@dataclass(frozen=True)
class Figure:
    """A figure: ``stage`` is the CLI command that draws it (``theory`` or ``analyze``);
    ``wanted(config)`` says whether the config has it; ``caption`` is the report's (the docs
    write their own, to teach)."""

    name: str
    stage: str
    caption: str
    wanted: Callable[[dict[str, Any]], bool] = _always


FIGURES: dict[str, Figure] = {
    figure.name: figure
    for figure in (
        Figure("theory_predicted_vs_exact", "theory",
               "Theorems 1-2 on random tabular policies: the first-order prediction against the "
               "exact entropy change."),
        Figure("theory_lemma1_remainder", "theory",
               "Lemma 1's remainder against the step size: second order."),
        Figure("collapse_grpo", "analyze",
               "GRPO's entropy and accuracy against the step (seeds shaded)."),
        Figure("law_grpo", "analyze",
               "The law R = -a·exp(H) + b on GRPO's points, beside a straight line."),
        Figure("covariance", "analyze",
               "The mean token covariance of log-probability and advantage, per step."),
        Figure("methods", "analyze",
               "Entropy and validation accuracy under each method but the entropy-bonus sweep "
               "(seeds shaded)."),
        Figure("entropy_bonus_sweep", "analyze", "The entropy bonus at several coefficients."),
        Figure("entropy_change", "analyze",
               "Lemma 1's prediction against the measured entropy change, per check."),
        Figure("pass_at_k", "analyze",
               "pass@k of the base model (dashed) and the final policies on the held-out split: "
               "where a curve ends below the base's, RL has narrowed what the model can reach."),
        Figure("runs", "analyze",
               "Every run's final held-out greedy accuracy by method, coloured by the base model "
               "it started from (a marker per RL seed); on the right, the hard family and the "
               "bar a run must reach to have learned it."),
        Figure("tabular_methods", "analyze",
               "The same losses on a tabular softmax policy (exact entropy and accuracy)."),
        Figure("tabular_law", "analyze", "The law on the tabular GRPO runs."),
        Figure("interventions", "analyze",
               "Every intervention on one map: final entropy against accuracy (mean ± std over "
               "seeds)."),
        Figure("entropy_target", "analyze",
               "The entropy-target controller: entropy held in the target band, and the "
               "coefficient the controller chose.", wanted=uses_loss("entropy_target")),
    )
}  # fmt: skip


def figure_names(config: dict[str, Any], stage: str | None = None) -> list[str]:
    """The figures ``config`` has (of one ``stage``, or all), in the registry's order."""
    return [
        f.name for f in FIGURES.values() if (stage is None or f.stage == stage) and f.wanted(config)
    ]
