"""Random token batches for the loss tests (float64, hypothesis)."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import strategies as st


@st.composite
def token_batches(draw, max_batch: int = 6, max_seq: int = 7, ratio_scale: float = 0.5):
    """logp, old_logp, advantages (per sequence, broadcast), mask with >= 1 valid token."""
    batch = draw(st.integers(1, max_batch))
    seq = draw(st.integers(1, max_seq))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    logp = -rng.exponential(1.5, size=(batch, seq))
    old_logp = logp + ratio_scale * rng.standard_normal((batch, seq)) * draw(
        st.sampled_from([0.0, 0.1, 1.0])
    )
    adv_scale = draw(st.sampled_from([0.5, 1.0, 3.0]))
    per_token = draw(st.booleans())
    advantages = adv_scale * (
        rng.standard_normal((batch, seq))
        if per_token
        else np.repeat(rng.standard_normal((batch, 1)), seq, 1)
    )
    lengths = rng.integers(1, seq + 1, size=batch)
    mask = np.arange(seq)[None, :] < lengths[:, None]
    as_tensor = lambda a: torch.tensor(a, dtype=torch.float64)  # noqa: E731
    return as_tensor(logp), as_tensor(old_logp), as_tensor(advantages), torch.tensor(mask)
