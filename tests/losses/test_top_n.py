"""Helpers of the loss library: ``top_n_mask`` (the O(N) selection KL-Cov ranks tokens with equals
a stable descending sort) and ``aggregation_share`` (micro-batches recompose a mini-batch's loss)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from entropy_rl.losses import AGGREGATIONS, aggregate
from entropy_rl.losses.common import aggregation_share, top_n_mask

from .conftest import token_batches

# few distinct values, so ties (and -inf for padded tokens) are common
values = st.lists(
    st.sampled_from([-float("inf"), -1.0, 0.0, 0.5, 2.0, 3.0]), min_size=1, max_size=60
)


@given(values=values, data=st.data())
def test_top_n_mask_selects_what_a_stable_sort_selects(values, data):
    n = data.draw(st.integers(0, len(values)))
    tensor = torch.tensor(values)
    expected = torch.zeros(len(values), dtype=torch.bool)
    expected[torch.sort(tensor, descending=True, stable=True).indices[:n]] = True
    got = top_n_mask(tensor, n)
    assert torch.equal(got, expected)
    assert int(got.sum()) == n


def test_top_n_mask_refuses_a_bad_count_or_shape():
    with pytest.raises(ValueError, match=r"n must be in \[0, 3\], got 4"):
        top_n_mask(torch.zeros(3), 4)
    with pytest.raises(ValueError, match="values must be 1-D"):
        top_n_mask(torch.zeros(2, 2), 1)


@pytest.mark.parametrize("n", [1, 7, 100, 999, 1000, 1001, 5000, 60_000])
@pytest.mark.parametrize("kind", ["distinct", "ties", "padded", "skewed"])
def test_top_n_mask_on_large_inputs_equals_a_stable_sort(n, kind):
    """Large inputs take the sampled pre-filter path; it must select exactly the same entries."""
    g = torch.Generator().manual_seed(n)
    values = torch.randn(100_000, generator=g)
    if kind == "ties":  # few distinct values: long runs of ties at the threshold
        values = torch.randint(0, 50, (100_000,), generator=g).float()
    elif kind == "padded":  # most entries -inf, as KL-Cov ranks padded tokens
        values[torch.rand(100_000, generator=g) < 0.9] = -torch.inf
    elif kind == "skewed":  # the top entries all in the part a strided sample skips
        values = torch.zeros(100_000)
        values[1::97] = torch.rand(len(values[1::97]), generator=g) + 1
    expected = torch.zeros(len(values), dtype=torch.bool)
    expected[torch.sort(values, descending=True, stable=True).indices[:n]] = True
    assert torch.equal(top_n_mask(values, n), expected)


@pytest.mark.parametrize("mode", AGGREGATIONS)
@given(batch=token_batches(), cut=st.integers(1, 5))
def test_micro_batch_shares_recompose_the_whole_aggregate(mode, batch, cut):
    """sum_p share_p · aggregate(L_p) = aggregate(L) for token-wise losses, any split of rows."""
    token_losses, _, _, mask = batch
    parts = torch.arange(len(mask)).split(cut)
    recomposed = sum(
        aggregation_share(mask[p], mask, mode) * aggregate(token_losses[p], mask[p], mode)
        for p in parts
    )
    assert float(recomposed) == pytest.approx(float(aggregate(token_losses, mask, mode)), abs=1e-12)
