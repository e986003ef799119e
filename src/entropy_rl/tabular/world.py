"""A tabular world with verifiable rewards: prompts answered by short token sequences.

Each prompt ``p`` has a target residue ``c_p``; a response is ``length`` tokens
``a_1..a_T`` in ``[0, A)``, and it is correct iff ``(a_1 + ... + a_T) mod A == c_p``. With
``length = 1`` this is a bandit (one correct answer per prompt); with ``length > 1`` it is a
small MDP whose state is ``(prompt, position, partial sum mod A)``: every token is an action of
a tabular softmax policy, and, as in a language model, the outcome reward of the whole response
is the only signal each token gets.

The "base model" is a logits table: Gaussian noise everywhere (``base_scale``) plus a pull
``base_correct_bias`` towards the token that completes a correct answer at the last position,
so the base policy is diverse and moderately accurate — like a pretrained model before RL.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from entropy_rl.rows import Rows
from entropy_rl.theory import softmax

__all__ = ["ChainWorld", "Rollouts"]


@dataclass(frozen=True)
class Rollouts(Rows):
    """Sampled responses: ``prompts [B]``, ``states [B, T]`` and ``actions [B, T]``, ``rewards [B]``."""

    prompts: Tensor
    states: Tensor
    actions: Tensor
    rewards: Tensor


class ChainWorld:
    """Prompts answered by ``length`` tokens over ``n_actions`` symbols (see module docstring)."""

    def __init__(
        self,
        n_prompts: int,
        n_actions: int,
        length: int,
        base_scale: float,
        base_correct_bias: float,
        seed: int,
    ) -> None:
        if min(n_prompts, n_actions, length) < 1 or n_actions < 2:
            raise ValueError(
                f"need n_prompts >= 1, n_actions >= 2, length >= 1; got {n_prompts}, {n_actions}, {length}"
            )
        self.n_prompts, self.n_actions, self.length = n_prompts, n_actions, length
        rng = np.random.default_rng(seed)
        self.targets = rng.integers(n_actions, size=n_prompts)
        logits = base_scale * rng.standard_normal((self.n_states, n_actions))
        # pull the last token towards the one that completes a correct answer
        last = self.state_index(
            np.arange(n_prompts)[:, None], length - 1, np.arange(n_actions)[None, :]
        )
        completing = (self.targets[:, None] - np.arange(n_actions)[None, :]) % n_actions
        logits[last, completing] += base_correct_bias
        self.base_logits = logits

    @property
    def n_states(self) -> int:
        return self.n_prompts * self.length * self.n_actions

    def state_index(self, prompt, position, partial):
        """Row of the logits table for ``(prompt, position, partial sum mod A)``."""
        return (prompt * self.length + position) * self.n_actions + partial

    def sample(
        self, logits: Tensor, prompts: Tensor, group_size: int, generator: torch.Generator
    ) -> Rollouts:
        """``group_size`` responses to each prompt, sampled from ``softmax(logits)``."""
        prompts = prompts.repeat_interleave(group_size)
        partial = torch.zeros_like(prompts)
        states, actions = [], []
        with torch.no_grad():
            for position in range(self.length):
                state = self.state_index(prompts, position, partial)
                probs = torch.softmax(logits[state].double(), dim=-1)
                action = torch.multinomial(probs, 1, generator=generator).squeeze(-1)
                states.append(state)
                actions.append(action)
                partial = (partial + action) % self.n_actions
        targets = torch.as_tensor(self.targets, device=prompts.device)[prompts]
        rewards = (partial == targets).to(torch.float64)
        return Rollouts(prompts, torch.stack(states, 1), torch.stack(actions, 1), rewards)

    def _forward(self, logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-token state distribution ``d [S]`` (sums to 1) and expected accuracy, exactly."""
        pi = softmax(logits)
        reach = np.zeros((self.n_prompts, self.n_actions))  # P(partial sum | prompt, position)
        reach[:, 0] = 1.0
        visitation = np.zeros(self.n_states)
        p = np.arange(self.n_prompts)[:, None]
        for position in range(self.length):
            rows = self.state_index(p, position, np.arange(self.n_actions)[None, :])
            visitation[rows.ravel()] = reach.ravel()
            if position == self.length - 1:
                completing = (
                    self.targets[:, None] - np.arange(self.n_actions)[None, :]
                ) % self.n_actions
                success = np.take_along_axis(pi[rows], completing[..., None], axis=-1)[..., 0]
                accuracy = float((reach * success).sum(axis=1).mean())
                break
            step = pi[rows]  # [P, partial, action]
            new = np.zeros_like(reach)
            for shift in range(self.n_actions):
                new += np.roll(reach * step[:, :, shift], shift, axis=1)
            reach = new
        return visitation / (self.n_prompts * self.length), accuracy

    def token_distribution(self, logits: np.ndarray) -> np.ndarray:
        """``d(s)``: the probability that a response token, drawn uniformly, is emitted in state ``s``."""
        return self._forward(logits)[0]

    def accuracy(self, logits: np.ndarray) -> float:
        """Exact expected accuracy (pass@1) of ``softmax(logits)`` over uniformly drawn prompts."""
        return self._forward(logits)[1]
