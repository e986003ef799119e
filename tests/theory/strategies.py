"""Hypothesis strategies for tabular softmax policies: logits, advantages, step sizes, state weights.

Logits are drawn at scales from nearly uniform (0.01) to nearly deterministic (|z| = 50);
advantages at scales from 1e-3 to 1e4, the ranges the theory module promises to handle.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

LOGIT_BOUND = 50.0
ADVANTAGE_BOUND = 1e4

unit_floats = st.floats(-1.0, 1.0, allow_nan=False, allow_infinity=False)


@st.composite
def table_shapes(draw, max_states: int = 4, max_actions: int = 12) -> tuple[int, int]:
    return draw(st.integers(1, max_states)), draw(st.integers(2, max_actions))


@st.composite
def scaled_tables(draw, shape: tuple[int, int], scales: list[float], bound: float) -> np.ndarray:
    base = draw(arrays(np.float64, shape, elements=unit_floats))
    return np.clip(draw(st.sampled_from(scales)) * base, -bound, bound)


def logits_tables(shape: tuple[int, int], max_scale: float = LOGIT_BOUND):
    """Logits in ``[-max_scale, max_scale]``: near-uniform, moderate and near-deterministic policies."""
    scales = [s for s in (0.01, 0.3, 1.0, 3.0, 10.0, 50.0) if s <= max_scale]
    return scaled_tables(shape, scales, LOGIT_BOUND)


def advantage_tables(shape: tuple[int, int], max_scale: float = ADVANTAGE_BOUND):
    """Advantages in ``[-max_scale, max_scale]`` at scales from 1e-3 up."""
    scales = [s for s in (1e-3, 1.0, 10.0, 1e2, 1e4) if s <= max_scale]
    return scaled_tables(shape, scales, ADVANTAGE_BOUND)


step_sizes = st.floats(1e-6, 1.0, allow_nan=False, allow_infinity=False)


@st.composite
def state_distributions(draw, n_states: int) -> np.ndarray:
    weights = draw(arrays(np.float64, (n_states,), elements=st.floats(1e-3, 1.0)))
    return weights / weights.sum()


@st.composite
def policy_and_direction(draw, max_logit_scale: float = LOGIT_BOUND):
    """A logits table and a logit direction of the same shape (unit max-norm, not all zero)."""
    shape = draw(table_shapes())
    logits = draw(logits_tables(shape, max_logit_scale))
    direction = draw(arrays(np.float64, shape, elements=unit_floats))
    scale = np.abs(direction).max()
    direction = direction / scale if scale > 0 else np.ones(shape)
    return logits, direction
