"""The vLLM rollout backend (GPU; optional): the ``Generator`` protocol over ``vllm.LLM``.

vLLM is imported only when a ``VLLMGenerator`` is made, so the CPU install never needs it
(``pip install -e '.[gpu]'`` brings it). Per-token log-probabilities are the ones vLLM reports for
the sampled tokens (``SamplingParams(logprobs=0)``); vLLM computes them from the model's raw
distribution, so they equal the sampling distribution's at temperature 1 and top-p 1 — the RL
setting — while the trainer recomputes old log-probabilities itself in any case.

In the trainer (``train.rollout: vllm``) the engine lives in the training process, on the same
GPU, and the policy's weights are loaded into it after every step (:meth:`VLLMGenerator.load_weights`,
the colocated scheme TRL uses); under torchrun each rank runs its own engine
(``distributed_executor_backend="external_launcher"``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from entropy_rl.rollout.base import Generation

__all__ = ["VLLMGenerator", "generation_from_vllm"]


def generation_from_vllm(outputs: Sequence[Any], n: int) -> Generation:
    """A ``Generation`` from vLLM's ``RequestOutput`` list (one per prompt, ``n`` completions each)."""
    out = Generation([], [], [], [], [])
    for request in outputs:
        if len(request.outputs) != n:
            raise ValueError(
                f"vLLM returned {len(request.outputs)} completions for a prompt, expected {n}"
            )
        for completion in request.outputs:
            tokens = list(completion.token_ids)
            out.prompt_ids.append(list(request.prompt_token_ids))
            out.response_ids.append(tokens)
            out.texts.append(completion.text)
            logprobs = completion.logprobs or []
            out.logprobs.append(
                [float(step[token].logprob) for step, token in zip(logprobs, tokens, strict=False)]
            )
            out.finished.append(completion.finish_reason == "stop")
    return out


class VLLMGenerator:
    """Sample with vLLM; ``llm_kwargs`` go to ``vllm.LLM`` (e.g. ``tensor_parallel_size``, ``dtype``)."""

    def __init__(self, model: str, **llm_kwargs: Any) -> None:
        try:
            from vllm import LLM
        except ImportError as err:
            raise ImportError(
                "the vllm rollout backend needs vLLM and a GPU: pip install -e '.[gpu]', "
                "or use the hf backend (rollout backend: hf)"
            ) from err
        self.llm = LLM(model=model, **llm_kwargs)
        self.tokenizer = self.llm.get_tokenizer()

    def generate(
        self,
        prompts: Sequence[str],
        n: int,
        temperature: float,
        top_p: float,
        max_new_tokens: int,
        seed: int,
    ) -> Generation:
        from vllm import SamplingParams

        params = SamplingParams(
            n=n,
            temperature=temperature,
            top_p=top_p,
            max_tokens=max_new_tokens,
            seed=seed,
            logprobs=0,
        )
        return generation_from_vllm(self.llm.generate(list(prompts), params, use_tqdm=False), n)

    def load_weights(self, weights: Iterable[tuple[str, Any]]) -> None:
        """Load ``(name, tensor)`` pairs named as in the Hugging Face model into the engine's model
        (vLLM maps them onto its fused layers), then drop the prefix cache computed with the old
        weights. The engine must run in this process (vLLM's in-process engine, as TRL's colocated
        mode uses it)."""
        try:
            model = self.llm.llm_engine.model_executor.driver_worker.model_runner.model
        except AttributeError as err:
            raise RuntimeError(
                "this vLLM runs its model outside the training process, so weights cannot be "
                "loaded into it; set VLLM_ENABLE_V1_MULTIPROCESSING=0, or use train.rollout: hf"
            ) from err
        model.load_weights(weights)
        self.llm.reset_prefix_cache()
