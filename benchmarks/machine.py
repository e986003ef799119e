"""What machine a benchmark ran on: CPU model, cores, memory, torch version, commit, date."""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
from pathlib import Path


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe() -> dict:
    import torch

    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": round(mem_gb, 1),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "commit": commit,
        "date": datetime.date.today().isoformat(),
    }


def header() -> str:
    m = describe()
    return (
        f"{m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, torch {m['torch']} "
        f"({m['torch_threads']} threads), commit {m['commit']}, {m['date']}"
    )
