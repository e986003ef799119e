"""Shared test configuration.

Hypothesis runs derandomized by default so that CI is deterministic (main stays green for the
same code); set HYPOTHESIS_PROFILE=explore to search fresh random examples, many more of them.
"""

import os

from hypothesis import HealthCheck, settings

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
