"""Argument checks shared by the theory functions: each failure names the argument and the fix."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

Array = NDArray[np.float64]


def finite_array(value: ArrayLike, name: str, min_ndim: int = 1) -> Array:
    """``value`` as a float64 array with at least ``min_ndim`` axes, non-empty and finite."""
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim < min_ndim:
        raise ValueError(
            f"{name} must have at least {min_ndim} dimension(s), got shape {arr.shape}"
        )
    if arr.size == 0:
        raise ValueError(f"{name} must not be empty, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise ValueError(f"{name} contains {bad} NaN/inf value(s); pass finite numbers")
    return arr


def same_shape(a: Array, b: Array, name_a: str, name_b: str) -> None:
    """Raise unless ``a`` and ``b`` have one shape (no silent broadcasting)."""
    if a.shape != b.shape:
        raise ValueError(
            f"{name_b} has shape {b.shape} but {name_a} has shape {a.shape}; they must be equal"
        )


def step_size(eta: float, name: str = "eta") -> float:
    """A step size: finite and >= 0 (a negative step would ascend the loss)."""
    eta = float(eta)
    if not np.isfinite(eta) or eta < 0:
        raise ValueError(f"{name} must be a finite step size >= 0, got {eta}")
    return eta


def distribution(value: ArrayLike, name: str, shape: tuple[int, ...]) -> Array:
    """A probability distribution along the last axis (non-negative, sums to 1) of ``shape``."""
    dist = finite_array(value, name, min_ndim=0)
    if dist.shape != shape:
        raise ValueError(f"{name} has shape {dist.shape} but must have shape {shape}")
    if np.any(dist < 0):
        raise ValueError(f"{name} must be non-negative (a probability distribution)")
    total = dist.sum(axis=-1)
    if not np.allclose(total, 1.0, rtol=0, atol=1e-8):
        raise ValueError(f"{name} must sum to 1 along its last axis, sums to {total}")
    return dist


def state_weight_column(state_weights: ArrayLike | None, shape: tuple[int, ...]) -> Array:
    """Per-state weights ``w(s) >= 0`` as a ``[S, 1]`` column for a ``[S, A]`` table (1 if None)."""
    if state_weights is None:
        return np.ones((*shape[:-1], 1))
    w = finite_array(state_weights, "state_weights", min_ndim=0)
    if w.shape != shape[:-1]:
        raise ValueError(
            f"state_weights has shape {w.shape} but must have one weight per state, {shape[:-1]}"
        )
    if np.any(w < 0):
        raise ValueError("state_weights must be non-negative")
    return w[..., None]
