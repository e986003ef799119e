"""The figure registry: one list of the study's figures, read by the rules, the CLI, the report
and the schema."""

from __future__ import annotations

from pathlib import Path

import yaml

from entropy_rl.config import load_profile, load_yaml
from entropy_rl.figures import FIGURES, figure_names

REPO = Path(__file__).resolve().parents[1]


def test_a_figure_is_drawn_only_where_its_methods_run():
    default = load_yaml(REPO / "config" / "config.yaml")
    interventions = load_profile(REPO / "config" / "interventions.yaml")
    assert "entropy_target" not in figure_names(default)
    assert "entropy_target" in figure_names(interventions, "analyze")
    assert figure_names(default, "theory") == [
        "theory_predicted_vs_exact",
        "theory_lemma1_remainder",
    ]
    assert set(figure_names(interventions)) == set(FIGURES)


def test_the_schema_names_the_registrys_figures():
    schema = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
    names = schema["properties"]["docs"]["properties"]["figures"]["items"]["enum"]
    assert names == list(FIGURES)


def test_every_docs_figure_of_every_profile_is_a_registered_figure():
    for path in (REPO / "config").glob("*.yaml"):
        listed = load_yaml(path).get("docs", {}).get("figures") or []
        assert set(listed) <= set(FIGURES), (path.name, sorted(set(listed) - set(FIGURES)))
