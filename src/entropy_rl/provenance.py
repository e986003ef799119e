"""Where a result came from: the checkout's commit and the machine's CPU (for stamps and benchmarks)."""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
from collections.abc import Iterable
from pathlib import Path

__all__ = [
    "cpu_machine",
    "cpu_model",
    "file_digest",
    "git_commit",
    "git_dirty",
    "provenance_markdown",
    "read_provenance",
]


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


def git_dirty() -> bool:
    """Whether the checkout has changes to tracked files that are not committed, leaving out
    docs/tables and docs/figures, which the pipeline itself rewrites (False outside a git
    checkout)."""
    try:
        out = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
             ":(exclude)docs/tables", ":(exclude)docs/figures"],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return False
    return bool(out.strip())


def file_digest(path: str | os.PathLike[str]) -> str:
    """The first 16 hex digits of a file's SHA-256: what a stamp records of each file it vouches
    for, so a file edited after the run no longer matches."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def provenance_markdown(
    profile: str, config: str, files: Iterable[str | os.PathLike[str]], date: str
) -> str:
    """The stamp of a run's files in docs/: the profile and config that made them, the commit of
    the code (``+ uncommitted changes`` where the checkout had some), the machine, the date, and
    each file's name with its digest (:func:`file_digest`)."""
    commit = git_commit() or "unknown (not a git checkout)"
    if git_dirty():
        commit += " + uncommitted changes"
    lines = [
        f"Made by the pipeline: profile `{profile}` (`{config}`), commit `{commit}`, "
        f"{cpu_machine()}, {os.cpu_count()} cores, {date}.",
        "",
        "| file | SHA-256 (first 16 hex digits) |",
        "|---|---|",
    ]
    lines += [f"| {Path(f).name} | `{file_digest(f)}` |" for f in sorted(map(str, files))]
    return "\n".join(lines) + "\n"


def read_provenance(text: str) -> dict[str, object]:
    """A stamp's fields (:func:`provenance_markdown`): ``commit``, ``profile`` and ``files``
    (``{name: digest}``)."""
    first = text.splitlines()[0]
    profile = first.split("profile `", 1)[1].split("`", 1)[0]
    commit = first.split("commit `", 1)[1].split("`", 1)[0]
    files = {}
    for line in text.splitlines()[4:]:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 2:
            files[cells[0]] = cells[1].strip("`")
    return {"profile": profile, "commit": commit, "files": files}
