"""Rollout backends behind one protocol: ``hf`` (transformers) and ``vllm`` (optional, GPU)."""

from entropy_rl.rollout.base import Generation, Generator
from entropy_rl.rollout.hf import HFGenerator, ModelLoadError, load_model, load_tokenizer

__all__ = [
    "Generation",
    "Generator",
    "HFGenerator",
    "ModelLoadError",
    "load_model",
    "load_tokenizer",
]
