"""Analysis of training runs: summaries, the law R = -a·exp(H) + b, agreement with the theory."""

from entropy_rl.analysis.runs import summarize_run, target_tracking

__all__ = ["summarize_run", "target_tracking"]
