"""A real character-level tokenizer for the toy world, built with ``tokenizers``.

Every character of the alphabet is one token (a ``WordLevel`` model over single characters), plus
``<pad>``, ``<eos>`` and ``<unk>``. Wrapped in a ``PreTrainedTokenizerFast`` and saved with
``save_pretrained``, it loads with ``AutoTokenizer.from_pretrained`` like any hub tokenizer.
Characters outside the alphabet (most of a real benchmark's LaTeX) become ``<unk>``.
"""

from __future__ import annotations

import string
from typing import TYPE_CHECKING

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerFast

__all__ = ["ALPHABET", "SPECIAL_TOKENS", "build_char_tokenizer"]

SPECIAL_TOKENS = ("<pad>", "<eos>", "<unk>")
ALPHABET = string.digits + string.ascii_letters + string.punctuation + " \n"


def build_char_tokenizer(alphabet: str = ALPHABET) -> PreTrainedTokenizerFast:
    """A fast tokenizer with one token per character of ``alphabet`` (order kept, duplicates dropped)."""
    from transformers import PreTrainedTokenizerFast

    chars = list(dict.fromkeys(alphabet))
    vocab = {token: i for i, token in enumerate([*SPECIAL_TOKENS, *chars])}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    backend.decoder = decoders.Fuse()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>"
    )
    tokenizer.padding_side = "left"  # decoder-only generation pads on the left
    return tokenizer
