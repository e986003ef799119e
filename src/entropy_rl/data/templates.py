"""Prompt templates, shared by the synthetic task and the real benchmarks.

A template turns a problem statement into the prompt a model continues. The embedded toy model
uses the compact ``toy`` template (its character vocabulary makes every prompt character cost a
position); Qwen2.5 models use the ``qwen25-math-cot`` chat template of the Qwen2.5-Math
evaluation kit, which the paper's recipe trains and evaluates with.
"""

from __future__ import annotations

__all__ = ["PROMPT_TEMPLATES", "render_prompt"]

PROMPT_TEMPLATES: dict[str, str] = {
    "toy": "Q: {problem}\nA: ",
    "plain": "Problem: {problem}\nSolution: ",
    "qwen25-math-cot": (
        "<|im_start|>system\nPlease reason step by step, and put your final answer within "
        "\\boxed{{}}.<|im_end|>\n<|im_start|>user\n{problem}<|im_end|>\n<|im_start|>assistant\n"
    ),
}


def render_prompt(template: str, problem: str) -> str:
    """The prompt for ``problem`` under the named template; an unknown name lists the known ones."""
    try:
        pattern = PROMPT_TEMPLATES[template]
    except KeyError:
        raise ValueError(
            f"unknown prompt template {template!r}; known templates: {', '.join(sorted(PROMPT_TEMPLATES))}"
        ) from None
    return pattern.format(problem=problem)
