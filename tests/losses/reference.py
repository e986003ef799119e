"""Straightforward per-token loop implementations of the losses, independent of the library.

Plain Python floats and loops: each returns the loss and its gradient with respect to every
``logp[b][t]``, written out by hand from the paper's formulas (no autograd, no tensor ops).
"""

from __future__ import annotations

import math


def valid_tokens(mask):
    return [(b, t) for b in range(len(mask)) for t in range(len(mask[0])) if mask[b][t]]


def weights(mask, mode, horizon=None):
    """d loss / d token_loss[b][t] for each aggregation mode (``horizon``: Dr. GRPO's T)."""
    rows, cols = len(mask), len(mask[0])
    w = [[0.0] * cols for _ in range(rows)]
    n_valid = sum(1 for b in range(rows) for t in range(cols) if mask[b][t])
    for b in range(rows):
        n_row = sum(1 for t in range(cols) if mask[b][t])
        for t in range(cols):
            if not mask[b][t]:
                continue
            if mode == "token-mean":
                w[b][t] = 1.0 / max(n_valid, 1)
            elif mode == "seq-mean-token-sum":
                w[b][t] = 1.0 / rows
            elif mode == "seq-mean-token-sum-norm":  # Dr. GRPO: a constant B · T
                w[b][t] = 1.0 / (rows * (horizon or cols))
            else:  # seq-mean-token-mean
                w[b][t] = 1.0 / (rows * max(n_row, 1))
    return w


def ppo_token(logp, old, adv, lo, hi, c=math.inf):
    """(loss, d loss/d logp, clipped?) of one token; ``c``: dual-clip's cap -A·c when A < 0."""
    ratio = math.exp(logp - old)
    unclipped = -adv * ratio
    clipped = -adv * min(max(ratio, 1 - lo), 1 + hi)
    if clipped > unclipped:
        value, dvalue, was_clipped = clipped, 0.0, True
    else:
        value, dvalue, was_clipped = unclipped, -adv * ratio, False
    if adv < 0 and value > -adv * c:  # the cap is a constant: no gradient
        return -adv * c, 0.0, was_clipped
    return value, dvalue, was_clipped


def covariances(logp, adv, mask):
    tokens = valid_tokens(mask)
    mean_logp = sum(logp[b][t] for b, t in tokens) / len(tokens)
    mean_adv = sum(adv[b][t] for b, t in tokens) / len(tokens)
    return {(b, t): (logp[b][t] - mean_logp) * (adv[b][t] - mean_adv) for b, t in tokens}


def ppo_loss(logp, old, adv, mask, lo, hi, mode, drop=frozenset(), c=math.inf):
    """PPO clipped loss (dual-clipped at ``c``), token losses in ``drop`` multiplied by 0 (Clip-Cov)."""
    w = weights(mask, mode)
    loss, grad = 0.0, [[0.0] * len(logp[0]) for _ in logp]
    for b, t in valid_tokens(mask):
        value, dvalue, _ = ppo_token(logp[b][t], old[b][t], adv[b][t], lo, hi, c)
        keep = 0.0 if (b, t) in drop else 1.0
        loss += w[b][t] * keep * value
        grad[b][t] = w[b][t] * keep * dvalue
    return loss, grad


def kl_cov_loss(logp, old, adv, mask, selected, beta, mode, ppo_clip=False, lo=0.2, hi=0.2):
    w = weights(mask, mode)
    loss, grad = 0.0, [[0.0] * len(logp[0]) for _ in logp]
    for b, t in valid_tokens(mask):
        if ppo_clip:
            value, dvalue, _ = ppo_token(logp[b][t], old[b][t], adv[b][t], lo, hi)
        else:
            ratio = math.exp(logp[b][t] - old[b][t])
            value, dvalue = -adv[b][t] * ratio, -adv[b][t] * ratio
        if (b, t) in selected:
            diff = logp[b][t] - old[b][t]
            value += beta * abs(diff)
            dvalue += beta * (1.0 if diff > 0 else -1.0 if diff < 0 else 0.0)
        loss += w[b][t] * value
        grad[b][t] = w[b][t] * dvalue
    return loss, grad


def top_by_covariance(logp, adv, mask, n):
    """The n valid tokens of largest covariance, ties to the earlier token (row-major)."""
    cov = covariances(logp, adv, mask)
    ranked = sorted(cov, key=lambda bt: (-cov[bt], bt))
    return set(ranked[:n])
