"""docs/extend.md's worked stateless intervention, added as the page says, is planned by the
pipeline: its function in the package, the schema regenerated, one config entry, `snakemake -n`."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
import yaml

from tests.pipeline.conftest import offline_env


def _example_definition(page: str) -> str:
    """The first Python block of the page, up to the demonstration that follows the definition."""
    block = re.search(r"```python\n(.*?)```", page, re.S)[1]
    return block.split("# it is now a loss like any other")[0]


@pytest.mark.slow
def test_the_worked_example_is_planned_by_snakemake_once_added_as_the_page_says(
    fresh_clone, snakemake_run
):
    env = offline_env(fresh_clone)
    config = yaml.safe_load((fresh_clone / "config" / "config.yaml").read_text())
    config["train"]["methods"]["top_cov_clip"] = {
        "loss": "top_cov_clip",
        "loss_config": {"top": 0.05},
    }
    (fresh_clone / "config" / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))

    # before: the schema knows no such loss, and says so before any job
    refused = snakemake_run(fresh_clone, None, "-n", repo=fresh_clone, env=env)
    assert refused.returncode != 0
    assert "'top_cov_clip' is not one of" in refused.stderr + refused.stdout

    # the function in the package, then the schema regenerated from the registry
    module = fresh_clone / "src" / "entropy_rl" / "losses" / "interventions.py"
    page = (fresh_clone / "docs" / "extend.md").read_text()
    module.write_text(module.read_text() + "\n\n" + _example_definition(page))
    written = subprocess.run(
        [sys.executable, "-m", "entropy_rl.cli", "schema", "--write"],
        cwd=fresh_clone, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert written.returncode == 0, written.stderr[-2000:]
    schema = (fresh_clone / "workflow" / "schemas" / "config.schema.yaml").read_text()
    assert "top_cov_clip" in schema

    planned = snakemake_run(fresh_clone, None, "-n", repo=fresh_clone, env=env)
    assert planned.returncode == 0, planned.stderr[-3000:]
    runs = re.findall(r"method=top_cov_clip\b", planned.stdout + planned.stderr)
    bases, seeds = len(config["base_model"]["seeds"]), len(config["seeds"])
    assert len(set(re.findall(r"top_cov_clip/base\d+/seed\d+", planned.stdout))) == bases * seeds
    assert runs  # the rule's wildcards name the method

    # a value out of the example's range is refused by the regenerated schema, key named
    config["train"]["methods"]["top_cov_clip"]["loss_config"]["top"] = 0.0
    (fresh_clone / "config" / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    bad = snakemake_run(fresh_clone, None, "-n", repo=fresh_clone, env=env)
    assert bad.returncode != 0
    assert "0.0 is less than or equal to the minimum of 0" in bad.stderr + bad.stdout
