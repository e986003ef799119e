"""The ``transformers`` rollout backend: ``model.generate`` with the KV cache, on CPU or GPU."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import (
    LogitsProcessor,
    LogitsProcessorList,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from entropy_rl.rollout.base import Generation

__all__ = ["HFGenerator"]


class _StopOnNonFinite(LogitsProcessor):
    """Raise ``FloatingPointError`` when a row of logits holds NaN or +inf, or is all -inf.

    Without it a broken model fails deep in the sampler ("probability tensor contains either inf,
    nan or element < 0") or, greedy, silently emits token 0. -inf alone is legal: top-p masks with it.
    """

    def __init__(self) -> None:
        self.position = 0

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        self.position += 1
        bad = torch.isnan(scores).any(-1) | torch.isposinf(scores).any(-1)
        bad |= torch.isneginf(scores).all(-1)
        if bad.any():
            raise FloatingPointError(
                f"the model's logits are NaN/inf at generated token {self.position} "
                f"({int(bad.sum())} of {len(bad)} sequences)"
            )
        return scores


class HFGenerator:
    """Sample with ``model.generate``; left-padded prompts, ``batch_size`` sequences at a time."""

    def __init__(
        self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, batch_size: int = 512
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        if tokenizer.pad_token_id is None:
            raise ValueError(
                "the tokenizer has no pad token; set tokenizer.pad_token (e.g. to its EOS token)"
            )

    @torch.no_grad()
    def generate(
        self,
        prompts: Sequence[str],
        n: int,
        temperature: float,
        top_p: float,
        max_new_tokens: int,
        seed: int,
    ) -> Generation:
        """``n`` samples per prompt; ``temperature = 0`` is greedy decoding.

        Raises ``FloatingPointError`` if the model's logits turn NaN/inf while sampling.
        """
        if n < 1 or max_new_tokens < 1:
            raise ValueError(f"n and max_new_tokens must be >= 1, got {n}, {max_new_tokens}")
        was_training = self.model.training
        self.model.eval()
        self.tokenizer.padding_side = "left"
        device = next(self.model.parameters()).device
        expanded = [prompt for prompt in prompts for _ in range(n)]
        eos = self.tokenizer.eos_token_id
        pad = self.tokenizer.pad_token_id
        out = Generation([], [], [], [], [])
        torch.manual_seed(seed)
        for start in range(0, len(expanded), self.batch_size):
            chunk = expanded[start : start + self.batch_size]
            encoded = self.tokenizer(
                chunk, return_tensors="pt", padding=True, add_special_tokens=False
            ).to(device)
            sampling = {"do_sample": True, "temperature": temperature, "top_p": top_p, "top_k": 0}
            result = self.model.generate(
                **encoded,
                **(sampling if temperature > 0 else {"do_sample": False}),
                max_new_tokens=max_new_tokens,
                pad_token_id=pad,
                eos_token_id=eos,
                return_dict_in_generate=True,
                output_scores=True,
                logits_processor=LogitsProcessorList([_StopOnNonFinite()]),
            )
            width = encoded["input_ids"].shape[1]
            new_tokens = result.sequences[:, width:]
            # scores are the processed logits the sampler drew from (temperature, top-p applied)
            logprobs = torch.stack(result.scores, dim=1).float().log_softmax(-1)
            token_logprobs = logprobs.gather(-1, new_tokens[..., None]).squeeze(-1)
            for row in range(new_tokens.shape[0]):
                tokens = new_tokens[row].tolist()
                finished = eos in tokens
                length = tokens.index(eos) + 1 if finished else len(tokens)
                prompt_ids = encoded["input_ids"][row][
                    encoded["attention_mask"][row].bool()
                ].tolist()
                out.prompt_ids.append(prompt_ids)
                out.response_ids.append(tokens[:length])
                out.texts.append(self.tokenizer.decode(tokens[:length], skip_special_tokens=True))
                out.logprobs.append(token_logprobs[row, :length].tolist())
                out.finished.append(finished)
        self.model.train(was_training)
        return out
