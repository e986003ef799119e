"""Where a result came from: the checkout's commit and the machine's CPU (for stamps and benchmarks)."""

from __future__ import annotations

import platform
import subprocess
from pathlib import Path

__all__ = ["cpu_machine", "cpu_model", "git_commit"]


def git_commit() -> str | None:
    """The short commit of the checkout the process runs in, or None outside a git checkout."""
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# the vector extensions that change how matrix kernels round (and so every trained model)
_VECTOR_FLAGS = ("avx512f", "avx2", "fma", "amx_tile", "avx512_bf16", "neon", "asimd", "sve")


def cpu_machine() -> str:
    """The CPU's model and its vector extensions, e.g. ``AMD EPYC 9R14 (avx512f, avx2, fma)``:
    what names a machine in a result, since kernels that round differently train other models."""
    flags: list[str] = []
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                present = set(line.split(":", 1)[1].split())
                flags = [f for f in _VECTOR_FLAGS if f in present]
                break
    except OSError:
        pass
    return f"{cpu_model()} ({', '.join(flags)})" if flags else cpu_model()
