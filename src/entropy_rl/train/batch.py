"""Rollouts as token tensors, and the policy's log-probabilities and entropy on them.

Sequences are ``prompt + response``, right-padded to one width. Every tensor that the loss sees
is aligned with the *predicted* tokens ``input_ids[:, 1:]``: position ``t`` holds
``log pi(input_ids[t+1] | input_ids[:t+1])``; ``response_mask`` marks the response tokens.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor
from transformers import PreTrainedModel

from entropy_rl.metrics import token_entropy, token_logprobs
from entropy_rl.ranks import SINGLE, World
from entropy_rl.rollout import Generation
from entropy_rl.rows import Rows

__all__ = [
    "LanguagePolicy",
    "TokenBatch",
    "collate",
    "on_response_tokens",
    "policy_forward",
    "sampler_entropies",
    "sampler_logprobs",
]


@dataclass(frozen=True)
class TokenBatch(Rows):
    """``input_ids``/``attention_mask`` ``[B, L]``; ``response_mask``/``advantages`` ``[B, L-1]``."""

    input_ids: Tensor
    attention_mask: Tensor
    response_mask: Tensor
    advantages: Tensor

    def __len__(self) -> int:
        return self.input_ids.shape[0]

    def to(self, device: torch.device | str) -> TokenBatch:
        return TokenBatch(*(t.to(device) for t in self._columns()))


def collate(generation: Generation, sequence_advantages: Tensor, pad_id: int) -> TokenBatch:
    """Token tensors of a generation; each response's advantage is broadcast to its tokens."""
    lengths = [
        len(p) + len(r) for p, r in zip(generation.prompt_ids, generation.response_ids, strict=True)
    ]
    width = max(lengths)
    batch = len(lengths)
    input_ids = torch.full((batch, width), pad_id, dtype=torch.long)
    attention = torch.zeros((batch, width), dtype=torch.long)
    response = torch.zeros((batch, width - 1), dtype=torch.bool)
    for row, (prompt, answer) in enumerate(
        zip(generation.prompt_ids, generation.response_ids, strict=True)
    ):
        ids = prompt + answer
        input_ids[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        attention[row, : len(ids)] = 1
        response[row, len(prompt) - 1 : len(ids) - 1] = True
    advantages = sequence_advantages.to(torch.float32)[:, None] * response
    return TokenBatch(input_ids, attention, response, advantages)


def on_response_tokens(rows: list[list[float]], response_mask: Tensor, what: str) -> Tensor:
    """Per-token values of each response (``rows[i][t]``) placed on the response tokens of
    ``collate``'s batch (``[B, L-1]``, 0 elsewhere); ``what`` names them in the error."""
    out = torch.zeros(response_mask.shape, dtype=torch.float32)
    for row, values in enumerate(rows):
        positions = response_mask[row].nonzero().flatten()
        if len(values) != len(positions):
            raise ValueError(
                f"response {row}: the sampler reported {len(values)} {what} for "
                f"{len(positions)} tokens"
            )
        out[row, positions] = torch.tensor(values, dtype=torch.float32)
    return out


def sampler_logprobs(generation: Generation, response_mask: Tensor) -> Tensor:
    """The log-probabilities the sampler reported, placed on the response tokens of ``collate``'s
    batch (``[B, L-1]``, 0 elsewhere). At top-p 1 they should equal the trainer's own
    log-probabilities of the same tokens — for vLLM, which reports the raw model's, at temperature
    1 only: the gap measures how far the rollout engine's policy is from the trained one (stale
    weights, precision)."""
    return on_response_tokens(generation.logprobs, response_mask, "log-probabilities")


def sampler_entropies(generation: Generation, response_mask: Tensor) -> Tensor:
    """The entropies of the sampling distributions the sampler reported (hf backend), placed
    like :func:`sampler_logprobs`."""
    return on_response_tokens(generation.entropies, response_mask, "entropies")


def tempered_logits(
    model: PreTrainedModel, batch: TokenBatch, autocast_dtype: torch.dtype | None = None,
    temperature: float = 1.0,
) -> Tensor:  # fmt: skip
    """The float32 logits ``z / T`` of the predicted tokens, ``[B, L-1, V]``: ``softmax`` of them
    is the policy that samples at ``temperature`` (as verl and TRL take it). With
    ``autocast_dtype`` (e.g. bfloat16 on a GPU) the forward pass runs in mixed precision."""
    device_type = batch.input_ids.device.type
    with torch.autocast(
        device_type, dtype=autocast_dtype or torch.bfloat16, enabled=autocast_dtype is not None
    ):
        logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits[
            :, :-1
        ]
    logits = logits.float()
    return logits / temperature if temperature != 1.0 else logits


def policy_forward(
    model: PreTrainedModel,
    batch: TokenBatch,
    with_entropy: bool = True,
    autocast_dtype: torch.dtype | None = None,
    temperature: float = 1.0,
) -> tuple[Tensor, Tensor | None]:
    """Log-probabilities of the predicted tokens and the token entropies, both ``[B, L-1]``, of
    the policy that samples at ``temperature``: ``pi = softmax(z / T)`` (as verl and TRL do, so
    the importance ratio and the entropy are those of the sampling policy); from float32 logits
    (:func:`tempered_logits`)."""
    logits = tempered_logits(model, batch, autocast_dtype, temperature)
    logp = token_logprobs(logits, batch.input_ids[:, 1:])
    entropy = token_entropy(logits) if with_entropy else None
    return logp, entropy


@dataclass(frozen=True)
class LanguagePolicy:
    """A causal language model as the shared RL step's policy (:class:`entropy_rl.step.Policy`):
    ``pi = softmax(z / T)`` on a :class:`TokenBatch` (:func:`policy_forward`), a mini-batch split
    into micro-batches of about ``micro_batch_tokens`` padded tokens (0: one pass)."""

    model: PreTrainedModel
    temperature: float = 1.0
    autocast_dtype: torch.dtype | None = None
    micro_batch_tokens: int = 0
    world: World = SINGLE

    def forward(self, batch: TokenBatch) -> tuple[Tensor, Tensor]:
        logp, entropy = policy_forward(
            self.model, batch, autocast_dtype=self.autocast_dtype, temperature=self.temperature
        )
        return logp, entropy  # type: ignore[return-value]

    def forward_with_logits(self, batch: TokenBatch) -> tuple[Tensor, Tensor, Tensor]:
        """:meth:`forward` and the tempered logits ``[B, L-1, V]`` it comes from (for a loss that
        reads the whole distribution: SIREN's nucleus entropy, Lp-Reg's proxy)."""
        logits = tempered_logits(self.model, batch, self.autocast_dtype, self.temperature)
        return token_logprobs(logits, batch.input_ids[:, 1:]), token_entropy(logits), logits

    def parts(self, batch: TokenBatch) -> list[Tensor]:
        """Row indices of a mini-batch's micro-batches: ``max(1, micro_batch_tokens // width)``
        rows each (the rows share one padded width), or the whole mini-batch when micro-batching
        is off. Sharded, every rank runs as many forward passes: the largest count of any rank,
        in equal parts (every rank's mini-batch has the same number of rows, so none is empty)."""
        rows, width = len(batch), batch.input_ids.shape[1]
        per_part = max(1, self.micro_batch_tokens // width) if self.micro_batch_tokens else rows
        parts = list(torch.arange(rows).split(per_part))
        if self.world.active:
            parts = list(torch.arange(rows).tensor_split(self.world.max(len(parts))))
        return parts

    def parameters(self) -> Iterator[torch.nn.Parameter]:
        return self.model.parameters()

    def named_parameters(self) -> Iterator[tuple[str, torch.nn.Parameter]]:
        return self.model.named_parameters()
