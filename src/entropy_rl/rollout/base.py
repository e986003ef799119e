"""The rollout contract: any backend (``transformers``, vLLM) that samples responses to prompts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from entropy_rl.rows import Rows

__all__ = ["Generation", "Generator"]


@dataclass(frozen=True)
class Generation(Rows):
    """``n`` samples per prompt, prompt-major: sample ``i`` answers prompt ``i // n``.

    ``response_ids`` end with the EOS token when the response finished (``finished``), and
    ``logprobs[i][t]`` is the log-probability of ``response_ids[i][t]`` under the distribution it
    was sampled from (after temperature / top-p); ``entropies[i][t]`` that distribution's entropy,
    where the backend reports it (the hf backend does; empty otherwise).
    """

    prompt_ids: list[list[int]]
    response_ids: list[list[int]]
    texts: list[str]
    logprobs: list[list[float]]
    finished: list[bool]
    entropies: list[list[float]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.texts)


@runtime_checkable
class Generator(Protocol):
    """Samples ``n`` responses per prompt; the same ``seed`` gives the same samples."""

    def generate(
        self,
        prompts: Sequence[str],
        n: int,
        temperature: float,
        top_p: float,
        max_new_tokens: int,
        seed: int,
    ) -> Generation: ...
