"""Rollout backends behind one protocol: ``hf`` (transformers), ``lean`` and ``vllm`` (optional,
GPU); :func:`answer_problems` samples and grades answers to problems with any of them."""

from entropy_rl.rollout.base import Answers, Generation, Generator, ProblemLike, answer_problems
from entropy_rl.rollout.hf import HFGenerator, ModelLoadError, load_model, load_tokenizer

__all__ = [
    "Answers",
    "Generation",
    "Generator",
    "HFGenerator",
    "ModelLoadError",
    "ProblemLike",
    "answer_problems",
    "load_model",
    "load_tokenizer",
]
