"""Shared test configuration.

Hypothesis runs derandomized by default so that CI is deterministic (main stays green for the
same code); set HYPOTHESIS_PROFILE=explore to search fresh random examples, many more of them.
"""

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# Offline copies of the benchmark test sets live beside the checkout (never copied into the repo).
SHARED_BENCHMARKS = Path(
    os.environ.get(
        "ENTROPY_RL_BENCHMARKS", Path(__file__).resolve().parents[2] / "shared" / "benchmarks"
    )
)

settings.register_profile(
    "ci",
    derandomize=True,
    deadline=None,
    max_examples=100,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("explore", deadline=None, max_examples=2000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

if os.environ.get("PYTEST_XDIST_WORKER"):
    # one torch thread per xdist worker: the workers already use every core
    import torch

    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def benchmark_dir() -> Path:
    """The folder of offline benchmark copies (``../shared/benchmarks``); tests skip without it."""
    if not SHARED_BENCHMARKS.is_dir():
        pytest.skip(
            f"offline benchmark copies not found at {SHARED_BENCHMARKS} (set ENTROPY_RL_BENCHMARKS)"
        )
    return SHARED_BENCHMARKS
