"""The RL trainer: rollouts, rewards, advantages, the registered loss, metrics, checkpoints."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from entropy_rl.train.settings import RLSettings

if TYPE_CHECKING:
    from entropy_rl.train.loop import NonFiniteError, train

__all__ = ["NonFiniteError", "RLSettings", "train"]


def __getattr__(name: str) -> Any:
    """The trainer itself, imported on first use (PEP 562): the settings load without it."""
    if name in ("NonFiniteError", "train"):
        from entropy_rl.train import loop

        return getattr(loop, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
