"""The tabular simulator: the paper's RL dynamics on a logits table, with the LM's losses, in seconds."""

from entropy_rl.tabular.sim import TabularConfig, run_tabular
from entropy_rl.tabular.world import ChainWorld, Rollouts

__all__ = ["ChainWorld", "Rollouts", "TabularConfig", "run_tabular"]
