"""The RL trainer: rollouts, rewards, advantages, the registered loss, metrics, checkpoints."""

from entropy_rl.train.loop import NonFiniteError, train
from entropy_rl.train.settings import RLSettings

__all__ = ["NonFiniteError", "RLSettings", "train"]
