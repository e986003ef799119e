"""What machine a benchmark ran on: CPU model, cores, memory, torch version, commit, date."""

from __future__ import annotations

import datetime
import os

from entropy_rl.provenance import cpu_machine, cpu_model, git_commit


def describe() -> dict:
    import torch

    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": round(mem_gb, 1),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "commit": git_commit() or "unknown",
        "date": datetime.date.today().isoformat(),
    }


def header() -> str:
    m = describe()
    return (
        f"{m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, torch {m['torch']} "
        f"({m['torch_threads']} threads), commit {m['commit']}, {m['date']}"
    )


def record_line(what: str, *facts: str) -> str:
    """The first line of a table a benchmark writes for the docs, a record of one machine's run
    that no pipeline rewrites: ``*<what>: <facts>, commit <commit>, <CPU and its vector
    extensions>, <date>*``."""
    made = [*facts, f"commit {git_commit() or 'unknown'}", cpu_machine()]
    return f"*{what}: {', '.join(made)}, {datetime.date.today().isoformat()}*"
