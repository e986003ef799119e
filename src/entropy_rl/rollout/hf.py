"""The ``transformers`` rollout backend: ``model.generate`` with the KV cache, on CPU or GPU."""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    LogitsProcessor,
    LogitsProcessorList,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from entropy_rl.rollout.base import Generation

__all__ = ["HFGenerator", "ModelLoadError", "load_model", "load_tokenizer"]


class ModelLoadError(ValueError):
    """A model folder or hub id that does not load (missing, truncated, mismatched, offline)."""


def _unloadable(what: str, model: str, err: Exception) -> ModelLoadError:
    first = str(err).strip().splitlines()[0] if str(err).strip() else "no detail"
    return ModelLoadError(
        f"cannot load the {what} at {model} ({type(err).__name__}: {first}); give a complete "
        "save_pretrained folder (config.json, weights, tokenizer) or a hub id available offline"
    )


def load_model(
    model: str | os.PathLike[str], dtype: torch.dtype = torch.float32
) -> PreTrainedModel:
    """``AutoModelForCausalLM.from_pretrained``, any failure one line naming the folder (a
    truncated ``model.safetensors``, weights that do not match ``config.json``)."""
    try:
        return AutoModelForCausalLM.from_pretrained(model, dtype=dtype)
    except Exception as err:  # transformers and safetensors raise many kinds
        raise _unloadable("model", str(model), err) from err


def load_tokenizer(model: str | os.PathLike[str]) -> PreTrainedTokenizerBase:
    """``AutoTokenizer.from_pretrained``, any failure one line naming the folder."""
    try:
        return AutoTokenizer.from_pretrained(model)
    except Exception as err:
        raise _unloadable("tokenizer", str(model), err) from err


def check_logits(scores: torch.Tensor, position: int) -> None:
    """Raise ``FloatingPointError`` for rows of logits with NaN or +inf, or all -inf (the sampler
    would fail with "probability tensor contains either inf, nan or element < 0" or, greedy,
    silently emit token 0); one reduction when all is well."""
    if torch.isfinite(scores.sum()):  # NaN and ±inf anywhere propagate to the sum
        return
    bad = torch.isnan(scores).any(-1) | torch.isposinf(scores).any(-1)
    bad |= torch.isneginf(scores).all(-1)
    if bad.any():
        raise FloatingPointError(
            f"the model's logits are NaN/inf at generated token {position} "
            f"({int(bad.sum())} of {len(bad)} sequences)"
        )


def nucleus(scores: torch.Tensor, top_p: float) -> torch.Tensor:
    """Top-p: keep the smallest set of tokens whose probability reaches ``top_p`` (at least
    one); the others get ``-inf``."""
    sorted_logits, order = torch.sort(scores, descending=False)
    cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
    remove = cumulative <= (1 - top_p)
    remove[..., -1:] = False
    return scores.masked_fill(remove.scatter(1, order, remove), -torch.inf)


class _SampleAndRecord(LogitsProcessor):
    """Temperature, top-p and a NaN guard, as the last logits processor; records each sampled token's
    log-probability under the distribution it was drawn from.

    ``generate`` is called without its own temperature / top-p warpers, so these logits are exactly
    what the sampler draws from. Keeping only the last step's log-softmax (``[B, V]``) instead of
    every step's scores (``output_scores``: ``[B, L, V]``, gigabytes at a 152k vocabulary) is what
    lets this backend return log-probabilities at no extra memory and almost no extra time.
    A row of logits with NaN or +inf, or all -inf, raises ``FloatingPointError`` (otherwise the
    sampler fails with "probability tensor contains either inf, nan or element < 0" or, greedy,
    silently emits token 0).
    """

    def __init__(self, temperature: float, top_p: float) -> None:
        self.temperature = temperature
        self.top_p = top_p
        self.position = 0
        self.previous: torch.Tensor | None = None  # log-softmax of the last step's logits
        self.logprobs: list[torch.Tensor] = []  # [B] per generated token
        self.entropies: list[torch.Tensor] = []  # [B] per generated token

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        self.record(input_ids[:, -1])
        self.position += 1
        check_logits(scores, self.position)
        if self.temperature > 0 and self.temperature != 1.0:
            scores = scores / self.temperature
        if self.temperature > 0 and self.top_p < 1.0:
            scores = nucleus(scores, self.top_p)
        self.previous = scores.float().log_softmax(-1)
        return scores

    def record(self, sampled: torch.Tensor) -> None:
        """Log-probability of the token sampled from the last logits seen (if any), and the
        entropy of the distribution it was drawn from (``entr``: 0 where top-p removed a token)."""
        if self.previous is not None:
            self.logprobs.append(self.previous.gather(-1, sampled[:, None]).squeeze(-1))
            self.entropies.append(torch.special.entr(self.previous.exp()).sum(-1))
            self.previous = None


class HFGenerator:
    """Sample with ``model.generate``; left-padded prompts, ``batch_size`` sequences at a time."""

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        batch_size: int = 512,
        synced_gpus: bool = False,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        # a model sharded across processes (FSDP): every rank steps until all have finished
        self.synced_gpus = synced_gpus
        if tokenizer.pad_token_id is None:
            raise ValueError(
                "the tokenizer has no pad token; set tokenizer.pad_token (e.g. to its EOS token)"
            )

    @property
    def context(self) -> int | None:
        """The most tokens a sequence may have (the model's ``max_position_embeddings``)."""
        return getattr(self.model.config, "max_position_embeddings", None)

    def prompt_fits(self, prompts: Sequence[str], max_new_tokens: int) -> list[bool]:
        """Whether each prompt leaves room for ``max_new_tokens`` in the model's context; counted
        on token ids, before any tensor is built."""
        if self.context is None:
            return [True] * len(prompts)
        ids = self.tokenizer(list(prompts), add_special_tokens=False)["input_ids"]
        return [len(row) + max_new_tokens <= self.context for row in ids]

    def fit_prompts(self, prompts: Sequence[str], max_new_tokens: int) -> tuple[list[str], int]:
        """The prompts, each cut from the left (its end, the question and the answer cue, kept)
        to leave room for ``max_new_tokens`` in the model's context, and how many were cut."""
        if self.context is None:
            return list(prompts), 0
        budget = self.context - max_new_tokens
        if budget < 1:
            raise ValueError(
                f"max_new_tokens {max_new_tokens} leaves no room for a prompt in the model's "
                f"context of {self.context} tokens; lower max_new_tokens"
            )
        fitted, cut = list(prompts), 0
        encoded = self.tokenizer(fitted, add_special_tokens=False, return_offsets_mapping=True)
        for i, offsets in enumerate(encoded["offset_mapping"]):
            if len(offsets) <= budget:
                continue
            cut += 1
            for extra in range(min(8, budget)):  # re-tokenised, a cut may take a token more
                fitted[i] = prompts[i][offsets[len(offsets) - budget + extra][0] :]
                if self.prompt_fits([fitted[i]], max_new_tokens)[0]:
                    break
        return fitted, cut

    def check_request(self, prompts: Sequence[str], n: int, max_new_tokens: int) -> None:
        """Refuse, before any tensor is built, a request that cannot be sampled: ``n`` or
        ``max_new_tokens`` below 1, or a prompt that leaves no room for ``max_new_tokens`` in the
        model's context."""
        if n < 1 or max_new_tokens < 1:
            raise ValueError(f"n and max_new_tokens must be >= 1, got {n}, {max_new_tokens}")
        fits = self.prompt_fits(prompts, max_new_tokens)
        if not all(fits):
            first = fits.index(False)
            raise ValueError(
                f"{fits.count(False)} of {len(prompts)} prompts are too long for the model's "
                f"context ({self.context} tokens with max_new_tokens {max_new_tokens}), the first "
                f"{len(prompts[first]):,} characters long: {prompts[first][:60]!r}...; shorten "
                "them, or lower max_new_tokens"
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

        Raises ``FloatingPointError`` if the model's logits turn NaN/inf while sampling, and
        ``ValueError`` before any tensor is built if a prompt leaves no room for
        ``max_new_tokens`` in the model's context.
        """
        self.check_request(prompts, n, max_new_tokens)
        was_training = self.model.training
        self.model.eval()
        self.tokenizer.padding_side = "left"
        device = next(self.model.parameters()).device
        expanded = [prompt for prompt in prompts for _ in range(n)]
        random = self._random(seed, device)
        out = Generation([], [], [], [], [])
        for start in range(0, len(expanded), self.batch_size):
            encoded = self.tokenizer(
                expanded[start : start + self.batch_size],
                return_tensors="pt",
                padding=True,
                add_special_tokens=False,
            ).to(device)
            samples = self._sample(encoded, temperature, top_p, max_new_tokens, random)
            self._append(out, encoded, *samples)
        self.model.train(was_training)
        return out

    def _random(self, seed: int, device: torch.device) -> torch.Generator | None:
        """The source of a call's random draws: ``generate`` draws from torch's global generator,
        seeded here."""
        torch.manual_seed(seed)
        return None

    def _sample(self, encoded, temperature: float, top_p: float, max_new_tokens: int, random):
        """One left-padded batch sampled with ``model.generate``: per row, its tokens (ending with
        EOS where it finished), their log-probabilities and entropies, and whether it finished."""
        eos, pad = self.tokenizer.eos_token_id, self.tokenizer.pad_token_id
        recorder = _SampleAndRecord(temperature, top_p)
        # temperature and top-p are applied by the recorder, so generate adds no warper of its own
        sampling = {"do_sample": True, "temperature": 1.0, "top_p": 1.0, "top_k": 0}
        sequences = self.model.generate(
            **encoded,
            **(sampling if temperature > 0 else {"do_sample": False}),
            max_new_tokens=max_new_tokens,
            pad_token_id=pad,
            eos_token_id=eos,
            logits_processor=LogitsProcessorList([recorder]),
            **({"synced_gpus": True} if self.synced_gpus else {}),
        )
        recorder.record(sequences[:, -1])  # the last token sampled
        new_tokens = sequences[:, encoded["input_ids"].shape[1] :]
        # one conversion to Python lists per batch, not per row
        rows_tokens = new_tokens.tolist()
        rows_logprobs = torch.stack(recorder.logprobs, dim=1).tolist()
        rows_entropies = torch.stack(recorder.entropies, dim=1).tolist()
        lengths = [
            tokens.index(eos) + 1 if eos in tokens else len(tokens) for tokens in rows_tokens
        ]
        return (
            [tokens[:n] for tokens, n in zip(rows_tokens, lengths, strict=True)],
            [lp[:n] for lp, n in zip(rows_logprobs, lengths, strict=True)],
            [h[:n] for h, n in zip(rows_entropies, lengths, strict=True)],
            [eos in tokens for tokens in rows_tokens],
        )

    def _append(self, out: Generation, encoded, responses, logprobs, entropies, finished) -> None:
        """Add a batch's samples to ``out``: each prompt's ids without its left padding, then the
        responses (ending with EOS where finished), their texts, log-probabilities, entropies."""
        prompt_rows, mask_rows = encoded["input_ids"].tolist(), encoded["attention_mask"].tolist()
        out.prompt_ids.extend(
            [t for t, m in zip(ids, mask, strict=True) if m]
            for ids, mask in zip(prompt_rows, mask_rows, strict=True)
        )
        out.response_ids.extend(responses)
        out.texts.extend(self.tokenizer.batch_decode(responses, skip_special_tokens=True))
        out.logprobs.extend(logprobs)
        out.entropies.extend(entropies)
        out.finished.extend(finished)
