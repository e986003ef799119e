"""Rollout backends behind one protocol: ``hf`` (transformers), ``lean`` and ``vllm`` (optional,
GPU); :func:`answer_problems` samples and grades answers to problems with any of them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from entropy_rl.rollout.base import Answers, Generation, Generator, ProblemLike, answer_problems

if TYPE_CHECKING:
    from entropy_rl.rollout.hf import HFGenerator, ModelLoadError, load_model, load_tokenizer

_HF = ("HFGenerator", "ModelLoadError", "load_model", "load_tokenizer")

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


def __getattr__(name: str) -> Any:
    """The transformers backend's names, imported on first use (PEP 562): what only reads
    settings (the Snakefile, the schema) does not load transformers."""
    if name in _HF:
        from entropy_rl.rollout import hf

        return getattr(hf, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
