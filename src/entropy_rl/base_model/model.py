"""A tiny decoder from ``transformers`` (the Llama architecture), built from a config.

The same classes as hub checkpoints, at ~0.8 M parameters: the trainer, the rollout backend and
the evaluator cannot tell it from a real model, and ``save_pretrained`` / ``from_pretrained`` /
``AutoTokenizer.from_pretrained`` work as for any hub checkpoint.

Why Llama and not Qwen2: transformers >= 5 loads the tokenizer of any ``model_type: qwen2`` folder
as ``Qwen2Tokenizer`` whatever ``tokenizer_config.json`` says, which re-tokenizes the toy's
character vocabulary with byte-level BPE rules; a Llama folder keeps the saved tokenizer as is.
The two architectures differ only in Qwen2's attention biases.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import torch

from entropy_rl.settings import Settings, choice, integer

if TYPE_CHECKING:  # transformers loads when a model is built, not with the settings
    from transformers import PreTrainedModel

__all__ = ["ModelSettings", "build_model", "count_parameters"]

ARCHITECTURES = ("llama",)  # transformers' config and model classes: _architecture(name)


def _architecture(name: str) -> tuple[type, type]:
    from transformers import LlamaConfig, LlamaForCausalLM

    return {"llama": (LlamaConfig, LlamaForCausalLM)}[name]


@dataclass(frozen=True)
class ModelSettings(Settings):
    """Shape of the tiny decoder."""

    section: ClassVar[str] = "base_model.model"

    architecture: str = choice("llama", ARCHITECTURES, doc="transformers architecture")
    hidden_size: int = integer(128, 8, doc="model width")
    num_layers: int = integer(4, 1, doc="decoder layers")
    num_heads: int = integer(4, 1, doc="attention heads")
    num_kv_heads: int = integer(2, 1, doc="key/value heads (grouped-query attention)")
    intermediate_size: int = integer(384, 8, doc="MLP width")
    max_positions: int = integer(128, 16, doc="longest prompt + response, in tokens")

    def check(self) -> None:
        if self.hidden_size % self.num_heads:
            raise ValueError(
                f"base_model.model.hidden_size ({self.hidden_size}) must be divisible by num_heads ({self.num_heads})"
            )
        if self.num_heads % self.num_kv_heads:
            raise ValueError(
                f"base_model.model.num_heads ({self.num_heads}) must be divisible by num_kv_heads ({self.num_kv_heads})"
            )


def build_model(
    settings: ModelSettings, vocab_size: int, pad_token_id: int, eos_token_id: int, seed: int
) -> PreTrainedModel:
    """A randomly initialised decoder (weights from ``seed``), float32, tied embeddings."""
    config_cls, model_cls = _architecture(settings.architecture)
    config = config_cls(
        vocab_size=vocab_size,
        hidden_size=settings.hidden_size,
        intermediate_size=settings.intermediate_size,
        num_hidden_layers=settings.num_layers,
        num_attention_heads=settings.num_heads,
        num_key_value_heads=settings.num_kv_heads,
        max_position_embeddings=settings.max_positions,
        tie_word_embeddings=True,
        pad_token_id=pad_token_id,
        eos_token_id=eos_token_id,
        bos_token_id=None,
    )
    torch.manual_seed(seed)
    return model_cls(config)


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
