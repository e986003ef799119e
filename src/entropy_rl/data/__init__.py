"""Data: prompt templates and benchmark loaders normalised to ``{id, problem, answer}``."""

from entropy_rl.data.templates import PROMPT_TEMPLATES, render_prompt

__all__ = ["PROMPT_TEMPLATES", "render_prompt"]
