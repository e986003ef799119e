"""Token metrics from full-vocabulary logits: chunked = direct, gradients, and Lemma 1 on LM logits."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from entropy_rl import theory
from entropy_rl.metrics import lemma1_check, token_entropy, token_logprobs

shapes = st.tuples(st.integers(1, 3), st.integers(1, 9), st.integers(2, 40))


def random_logits(shape, seed, scale=3.0):
    return scale * torch.randn(
        *shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64
    )


@given(shape=shapes, seed=st.integers(0, 10**6), chunk=st.integers(1, 8))
def test_chunked_entropy_equals_direct_entropy(shape, seed, chunk):
    logits = random_logits(shape, seed)
    direct = -(torch.softmax(logits, -1) * torch.log_softmax(logits, -1)).sum(-1)
    torch.testing.assert_close(
        token_entropy(logits, chunk_size=chunk), direct, rtol=1e-12, atol=1e-12
    )


@given(shape=shapes, seed=st.integers(0, 10**6), chunk=st.integers(1, 8))
def test_chunked_entropy_gradient_equals_direct_gradient(shape, seed, chunk):
    logits = random_logits(shape, seed).requires_grad_(True)
    weights = torch.rand(shape[:-1], dtype=torch.float64)
    (chunked,) = torch.autograd.grad(
        (token_entropy(logits, chunk_size=chunk) * weights).sum(), logits
    )
    direct_h = -(torch.softmax(logits, -1) * torch.log_softmax(logits, -1)).sum(-1)
    (direct,) = torch.autograd.grad((direct_h * weights).sum(), logits)
    torch.testing.assert_close(chunked, direct, rtol=1e-10, atol=1e-12)


@given(shape=shapes, seed=st.integers(0, 10**6), chunk=st.integers(1, 8))
def test_chunked_logprobs_equal_log_softmax_gather(shape, seed, chunk):
    logits = random_logits(shape, seed)
    tokens = torch.randint(shape[-1], shape[:-1], generator=torch.Generator().manual_seed(seed))
    direct = torch.log_softmax(logits, -1).gather(-1, tokens[..., None]).squeeze(-1)
    torch.testing.assert_close(
        token_logprobs(logits, tokens, chunk_size=chunk), direct, rtol=1e-12, atol=1e-12
    )


@given(shape=shapes, seed=st.integers(0, 10**6), eta=st.sampled_from([1e-4, 1e-2, 0.3]))
def test_lemma1_check_agrees_with_the_theory_module(shape, seed, eta):
    """The torch LM check and the numpy theory module are one formula (one source of truth)."""
    before = random_logits(shape, seed)
    after = before + eta * random_logits(shape, seed + 1, scale=1.0)
    measured, predicted = lemma1_check(before, after, chunk_size=4)
    z, z_new = before.numpy(), after.numpy()
    np.testing.assert_allclose(
        measured.numpy(), theory.exact_entropy_change(z, z_new - z), rtol=1e-8, atol=1e-12
    )
    np.testing.assert_allclose(
        predicted.numpy(), theory.lemma1_entropy_change(z, z_new - z), rtol=1e-9, atol=1e-14
    )


def test_lemma1_check_of_a_small_update_is_accurate_to_first_order():
    before = random_logits((4, 16, 50), 0)
    after = before + 1e-4 * random_logits((4, 16, 50), 1, scale=1.0)
    measured, predicted = lemma1_check(before, after)
    assert torch.corrcoef(torch.stack([measured.flatten(), predicted.flatten()]))[0, 1] > 0.9999


def test_metric_inputs_with_disagreeing_shapes_are_errors():
    with pytest.raises(ValueError, match=r"tokens has shape \(2,\) but logits have \(2, 3\)"):
        token_logprobs(torch.zeros(2, 3, 5), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match=r"logits_after has shape"):
        lemma1_check(torch.zeros(2, 5), torch.zeros(3, 5))
