"""Token-level metrics from full-vocabulary logits: entropy, log-probs, and the Lemma-1 check.

All of them walk the ``[..., seq, vocab]`` logits in chunks of positions, so no full-vocabulary
copy larger than one chunk is ever made (at a 152k vocabulary a [8, 512] batch of float32 logits
is 2.5 GB; a softmax copy of it would be another 2.5 GB).
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from entropy_rl.losses.common import masked_mean, token_covariance

__all__ = [
    "DEFAULT_CHUNK",
    "lemma1_check",
    "masked_mean",
    "token_covariance",
    "token_entropy",
    "token_logprobs",
]

DEFAULT_CHUNK = 256  # positions per chunk: at a 152k vocabulary, 156 MB of float32 per copy


def _entropy_of_chunk(logits: Tensor) -> Tensor:
    # H = logsumexp(z) - sum_v softmax(z)_v z_v; the dot product avoids a third vocab-sized copy
    log_norm = torch.logsumexp(logits, dim=-1)
    probs = torch.softmax(logits, dim=-1)
    return log_norm - torch.linalg.vecdot(probs, logits)


def token_entropy(logits: Tensor, chunk_size: int = DEFAULT_CHUNK) -> Tensor:
    """Per-position entropy ``H_t = -sum_v pi(v|t) log pi(v|t)`` of ``[..., seq, vocab]`` logits;
    their mean over a batch's response tokens is the policy entropy (Cui et al., 2025, §2.1, Eq. 5).

    Computed ``chunk_size`` positions at a time. With gradient enabled each chunk is
    checkpointed, so backward recomputes the chunk's softmax instead of storing it: the entropy
    bonus costs no full-vocabulary activation memory either.
    """
    lead = logits.shape[:-1]
    flat = logits.reshape(-1, logits.shape[-1])
    needs_grad = torch.is_grad_enabled() and flat.requires_grad
    parts = []
    for start in range(0, flat.shape[0], chunk_size):
        chunk = flat[start : start + chunk_size]
        if needs_grad:
            parts.append(checkpoint(_entropy_of_chunk, chunk, use_reentrant=False))
        else:
            parts.append(_entropy_of_chunk(chunk))
    if not parts:
        return flat.new_zeros(lead)
    return torch.cat(parts).reshape(lead)


def token_logprobs(logits: Tensor, tokens: Tensor, chunk_size: int = DEFAULT_CHUNK) -> Tensor:
    """``log pi(token_t | t) = z_t[token_t] - logsumexp(z_t)`` for ``[..., seq, vocab]`` logits.

    Chunked like :func:`token_entropy`; gradients flow to the logits.
    """
    lead = logits.shape[:-1]
    if tokens.shape != lead:
        raise ValueError(f"tokens has shape {tuple(tokens.shape)} but logits have {tuple(lead)}")
    flat = logits.reshape(-1, logits.shape[-1])
    flat_tokens = tokens.reshape(-1, 1)
    parts = []
    for start in range(0, flat.shape[0], chunk_size):
        chunk = flat[start : start + chunk_size]
        picked = chunk.gather(-1, flat_tokens[start : start + chunk_size]).squeeze(-1)
        parts.append(picked - torch.logsumexp(chunk, dim=-1))
    if not parts:
        return flat.new_zeros(lead)
    return torch.cat(parts).reshape(lead)


@torch.no_grad()
def lemma1_check(
    logits_before: Tensor, logits_after: Tensor, chunk_size: int = DEFAULT_CHUNK
) -> tuple[Tensor, Tensor]:
    """Lemma 1 on a language model: measured vs first-order entropy change per position
    (Cui et al., 2025, §3.3).

        measured_t  = H(z_t') - H(z_t)
        predicted_t = -Cov_{v ~ pi_t}(log pi_t(v), z_t'(v) - z_t(v))

    for the logits of the same positions before (``z``) and after (``z'``) an update. Computed
    in float64, chunk by chunk. Returns two ``[..., seq]`` tensors.
    """
    if logits_before.shape != logits_after.shape:
        raise ValueError(
            f"logits_after has shape {tuple(logits_after.shape)} but logits_before has "
            f"{tuple(logits_before.shape)}"
        )
    lead = logits_before.shape[:-1]
    before = logits_before.reshape(-1, logits_before.shape[-1])
    after = logits_after.reshape(-1, logits_after.shape[-1])
    measured, predicted = [], []
    for start in range(0, before.shape[0], chunk_size):
        z = before[start : start + chunk_size].double()
        z_new = after[start : start + chunk_size].double()
        logp = torch.log_softmax(z, dim=-1)
        pi = logp.exp()
        delta = z_new - z
        centred_logp = logp - (pi * logp).sum(-1, keepdim=True)
        centred_delta = delta - (pi * delta).sum(-1, keepdim=True)
        predicted.append(-(pi * centred_logp * centred_delta).sum(-1))
        measured.append(_entropy_of_chunk(z_new) - _entropy_of_chunk(z))
    return torch.cat(measured).reshape(lead), torch.cat(predicted).reshape(lead)
