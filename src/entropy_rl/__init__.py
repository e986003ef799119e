"""entropy-rl: study, teach and reproduce entropy collapse in RL for reasoning language models.

Layers (imports point down only): ``theory`` (numpy) → ``losses`` / ``advantages`` / ``metrics``
(torch) → ``tasks`` / ``data`` → ``rewards`` → ``rollout`` → ``tabular`` → ``train`` →
``evaluate`` → ``analysis`` / ``plots`` → ``cli``. See docs/design.md.
"""

__version__ = "0.1.0"
