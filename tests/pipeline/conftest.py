"""Run the real Snakemake workflow of this checkout in a temporary working directory."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]


def run_snakemake(
    workdir: Path,
    config: dict | Path | None,
    *args: str,
    repo: Path = REPO,
    env: dict | None = None,
) -> subprocess.CompletedProcess:
    """Snakemake on ``repo``'s Snakefile in ``workdir`` with ``config``: a mapping (written to
    ``workdir``), a profile file passed as it is, or None (the repo's default)."""
    configfile = []
    if isinstance(config, Path):
        configfile = ["--configfile", str(config)]
    elif config is not None:
        config_path = workdir / "config.yaml"
        config_path.write_text(yaml.safe_dump(config))
        configfile = ["--configfile", str(config_path)]
    command = [
        sys.executable, "-m", "snakemake",
        "--snakefile", str(repo / "Snakefile"),
        "--directory", str(workdir),
        *configfile,
        "--cores", "2",
        *args,
    ]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)


@pytest.fixture
def fresh_clone(tmp_path) -> Path:
    """A ``git clone`` of this checkout into an empty folder: no ``../shared`` beside it."""
    empty = tmp_path / "empty"
    empty.mkdir()
    clone = empty / "entropy-rl"
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(clone)], check=True, timeout=120)
    assert sorted(p.name for p in empty.iterdir()) == ["entropy-rl"]
    return clone


def offline_env(clone: Path) -> dict[str, str]:
    """The environment of a user's offline machine running ``clone``'s own code (its ``src``
    first on the path, so the package is the clone's, samples included), hubs unreachable."""
    import os

    env = dict(os.environ)
    env.update(
        PYTHONPATH=str(clone / "src"),
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
    )
    return env


@pytest.fixture
def snakemake_run():
    return run_snakemake
