"""The ``lean`` rollout backend: a decoding loop of its own over the model's forward pass, for
models that run in-process (the embedded default's tiny decoder on a CPU).

``model.generate`` is general: per step it prepares inputs, runs logits processors and stopping
criteria, and keeps stepping rows that have finished. At the embedded scale that overhead, not
the matrix products, is most of a rollout. This loop does per token only what is per token:

- one forward pass of the unfinished rows over their last token, with the KV cache;
- one ``log_softmax`` of the step's logits at the temperature, from which the sampled token's
  log-probability and the distribution's entropy (``Σ entr(p)``) are read;
- sampling by the exponential race, exact for ``softmax(z / T)``: ``argmax_i (log p_i − log E_i)``
  with ``E_i ~ Exp(1)`` drawn from the step's seeded generator (the ``i`` with the smallest
  ``E_i / p_i`` wins with probability ``p_i``); ``temperature = 0`` is greedy (``argmax z``);
- rows that emitted EOS leave the batch, their cache rows with them, once a quarter of the
  batch has finished (compaction copies the cache, so it is not done for every single row).

It returns what ``HFGenerator`` returns, with the same conventions (greedy log-probabilities and
entropies are those of ``softmax(z)``; top-p keeps the smallest set reaching ``top_p``).
"""

from __future__ import annotations

import functools
import inspect

import torch
from transformers import DynamicCache

from entropy_rl.rollout.hf import HFGenerator, check_logits, nucleus

__all__ = ["LeanGenerator", "exponential_race"]

COMPACT_SHARE = 0.25  # drop finished rows once this share of the batch has finished


def exponential_race(logp: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """One token per row of log-probabilities ``logp`` ``[B, V]``, drawn from ``exp(logp)``:
    ``argmax_i (logp_i − log E_i)``, ``E_i ~ Exp(1)`` (Gumbel-max with ``−log E`` as the Gumbel
    noise). Tokens of probability 0 (``logp = −inf``) are never drawn."""
    race = torch.empty_like(logp).exponential_(generator=generator)
    return (logp - race.log()).argmax(dim=-1)


class LeanGenerator(HFGenerator):
    """Sample with this module's decoding loop (see the module's docstring); left-padded
    prompts, ``batch_size`` sequences at a time. ``generate``, its checks and its output are the
    hf backend's; only the sampling of a batch (``_random``, ``_sample``) is this one's."""

    @functools.cached_property
    def _cache_keyword(self) -> str:
        """``cache`` where the model's forward takes it (newer transformers), else the older
        ``past_key_values``."""
        return (
            "cache"
            if "cache" in inspect.signature(self.model.forward).parameters
            else "past_key_values"
        )

    def _step_distribution(
        self, logits: torch.Tensor, temperature: float, top_p: float, position: int
    ) -> torch.Tensor:
        """Log-probabilities of the distribution a token is drawn from: ``softmax(z / T)``,
        nucleus-filtered when ``top_p < 1``; ``softmax(z)`` when greedy."""
        logits = logits.float()
        check_logits(logits, position)
        if temperature > 0:
            logits = logits / temperature if temperature != 1.0 else logits
            logits = nucleus(logits, top_p) if top_p < 1.0 else logits
        return logits.log_softmax(-1)

    def _random(self, seed: int, device: torch.device) -> torch.Generator:
        """The call's own seeded generator: every exponential race draws from it."""
        return torch.Generator(device=device).manual_seed(seed)

    def _sample(self, encoded, temperature: float, top_p: float, max_new_tokens: int, random):
        """One left-padded batch sampled by :meth:`_decode` (``generate`` is the hf backend's:
        the same checks, chunks and output, another sampler)."""
        return self._decode(
            encoded["input_ids"], encoded["attention_mask"], temperature, top_p,
            max_new_tokens, random,
        )  # fmt: skip

    def _decode(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        temperature: float,
        top_p: float,
        max_new_tokens: int,
        random: torch.Generator,
    ) -> tuple[list[list[int]], list[list[float]], list[list[float]], list[bool]]:
        """The decoding loop over one left-padded batch: per row, its tokens (ending with EOS
        where it finished), their log-probabilities and entropies, and whether it finished."""
        eos, pad = self.tokenizer.eos_token_id, self.tokenizer.pad_token_id
        batch = input_ids.shape[0]
        rows = torch.arange(batch, device=input_ids.device)  # the batch row of each live row
        done = torch.zeros(batch, dtype=torch.bool, device=input_ids.device)
        cache = DynamicCache()
        mask = attention_mask
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        step_input = input_ids
        steps: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]] = []
        for t in range(max_new_tokens):
            logits = self.model(
                input_ids=step_input, attention_mask=mask, position_ids=positions,
                **{self._cache_keyword: cache}, use_cache=True, logits_to_keep=1,
            ).logits[:, -1]  # fmt: skip
            logp = self._step_distribution(logits, temperature, top_p, t + 1)
            token = logits.argmax(-1) if temperature == 0 else exponential_race(logp, random)
            token = token.masked_fill(done, pad)  # a finished row (not yet dropped) pads
            steps.append((rows, token, logp.gather(-1, token[:, None]).squeeze(-1),
                          torch.special.entr(logp.exp()).sum(-1)))  # fmt: skip
            done = done | (token == eos)
            if t + 1 == max_new_tokens or bool(done.all()):
                break
            if float(done.float().mean()) >= COMPACT_SHARE:
                keep = (~done).nonzero().squeeze(-1)
                cache.batch_select_indices(keep)
                rows, token, mask, done = rows[keep], token[keep], mask[keep], done[keep]
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=-1)
            positions = mask.sum(-1, keepdim=True) - 1
            step_input = token[:, None]
        return self._rows(steps, batch, eos)

    @staticmethod
    def _rows(steps, batch: int, eos: int):
        """Per batch row: the tokens up to and with its EOS, their log-probabilities and
        entropies, and whether it finished (one conversion to Python lists per step)."""
        tokens: list[list[int]] = [[] for _ in range(batch)]
        logprobs: list[list[float]] = [[] for _ in range(batch)]
        entropies: list[list[float]] = [[] for _ in range(batch)]
        finished = [False] * batch
        for rows, token, logp, entropy in steps:
            for row, tok, lp, h in zip(rows.tolist(), token.tolist(), logp.tolist(),
                                       entropy.tolist(), strict=True):  # fmt: skip
                if finished[row]:
                    continue
                tokens[row].append(tok)
                logprobs[row].append(lp)
                entropies[row].append(h)
                finished[row] = tok == eos
        return tokens, logprobs, entropies, finished
