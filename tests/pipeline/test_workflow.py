"""The Snakemake workflow runs for real on a tiny config, and only redoes what is out of date."""

from __future__ import annotations

import json

import yaml

from .conftest import REPO

TINY = {"profile": "tiny", "theory": {"seed": 1}, "docs": {"update_figures": False}}


def test_pipeline_runs_end_to_end_then_has_nothing_to_do(tmp_path, snakemake_run):
    first = snakemake_run(tmp_path, TINY)
    assert first.returncode == 0, first.stderr[-3000:]
    results = tmp_path / "results" / "tiny"
    summary = json.loads((results / "theory" / "summary.json").read_text())
    assert all(summary["checks"].values())
    for name in ("theory_predicted_vs_exact", "theory_lemma1_remainder"):
        assert (results / "figures" / f"{name}.png").stat().st_size > 10_000
    assert (results / "benchmarks" / "theory.tsv").read_text().startswith("s\t")

    second = snakemake_run(tmp_path, TINY)
    assert second.returncode == 0
    assert "Nothing to be done" in second.stdout + second.stderr


def test_default_config_is_valid_against_the_schema():
    from snakemake.utils import validate

    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    validate(config, str(REPO / "workflow" / "schemas" / "config.schema.yaml"))
