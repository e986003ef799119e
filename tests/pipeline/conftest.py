"""Run the real Snakemake workflow of this checkout in a temporary working directory."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]


def run_snakemake(workdir: Path, config: dict, *args: str) -> subprocess.CompletedProcess:
    config_path = workdir / "config.yaml"
    config_path.write_text(yaml.safe_dump(config))
    command = [
        sys.executable, "-m", "snakemake",
        "--snakefile", str(REPO / "Snakefile"),
        "--directory", str(workdir),
        "--configfile", str(config_path),
        "--cores", "2",
        *args,
    ]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=600)


@pytest.fixture
def snakemake_run():
    return run_snakemake
