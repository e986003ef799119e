"""Rollout backends behind one protocol: ``hf`` (transformers) and ``vllm`` (optional, GPU)."""

from entropy_rl.rollout.base import Generation, Generator
from entropy_rl.rollout.hf import HFGenerator

__all__ = ["Generation", "Generator", "HFGenerator"]
