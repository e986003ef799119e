"""The toy world's base model: a character tokenizer, a tiny decoder, and the SFT that makes it."""

from entropy_rl.base_model.build import BaseModelSettings, build_base_model
from entropy_rl.base_model.model import ModelSettings, build_model, count_parameters
from entropy_rl.base_model.sft import SFTSettings, run_sft
from entropy_rl.base_model.tokenizer import build_char_tokenizer

__all__ = [
    "BaseModelSettings",
    "ModelSettings",
    "SFTSettings",
    "build_base_model",
    "build_char_tokenizer",
    "build_model",
    "count_parameters",
    "run_sft",
]
