"""Checkpoints that survive a crash at any moment: written beside, then swapped in.

A checkpoint folder holds the model (``save_pretrained``), the optimizer state, the step and the
torch RNG state (the trainer seeds every random draw of a step from ``(seed, step)``, so this is
all the randomness there is to restore), and the fingerprint of the run that wrote it, so a run
with other settings never resumes from it. It is written to ``<name>.tmp``; the previous one is renamed ``<name>.old``, the new
one renamed into place, the old one removed. A kill between the two renames leaves ``.old``,
which :func:`latest_checkpoint` falls back to, so a good checkpoint always exists.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, PreTrainedModel

__all__ = ["checkpoint_fingerprint", "latest_checkpoint", "load_checkpoint", "save_checkpoint"]

STATE_FILE = "trainer_state.pt"
FINGERPRINT_FILE = "run_fingerprint.txt"  # what made it, readable without loading the model


def save_checkpoint(
    folder: Path,
    model: PreTrainedModel,
    optimizer: torch.optim.Optimizer,
    step: int,
    extra: dict[str, Any],
    fingerprint: str = "",
) -> Path:
    """Save everything needed to continue after ``step`` completed steps, and the ``fingerprint``
    of the run that wrote it (see :func:`checkpoint_fingerprint`)."""
    folder = Path(folder)
    tmp, old = folder.with_name(folder.name + ".tmp"), folder.with_name(folder.name + ".old")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save_pretrained(tmp)
    state = {
        "step": step,
        "optimizer": optimizer.state_dict(),
        "torch_rng": torch.get_rng_state(),
        **extra,
    }
    torch.save(state, tmp / STATE_FILE)
    (tmp / FINGERPRINT_FILE).write_text(fingerprint)
    if folder.exists():
        shutil.rmtree(old, ignore_errors=True)
        folder.rename(old)
    tmp.rename(folder)
    shutil.rmtree(old, ignore_errors=True)
    return folder


def latest_checkpoint(folder: Path) -> Path | None:
    """The complete checkpoint at ``folder`` (or its ``.old`` twin after an interrupted swap)."""
    for candidate in (Path(folder), Path(folder).with_name(Path(folder).name + ".old")):
        if (candidate / STATE_FILE).is_file() and (candidate / "config.json").is_file():
            return candidate
    return None


def checkpoint_fingerprint(folder: Path) -> str | None:
    """The fingerprint saved with a checkpoint (None for one saved without)."""
    path = Path(folder) / FINGERPRINT_FILE
    return path.read_text() if path.is_file() else None


def load_checkpoint(
    folder: Path, optimizer_factory, device: str = "cpu"
) -> tuple[PreTrainedModel, torch.optim.Optimizer, dict[str, Any]]:
    """Model (on ``device``), optimizer (built by ``optimizer_factory(model)``, then restored), state."""
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).to(device)
    optimizer = optimizer_factory(model)
    state = torch.load(Path(folder) / STATE_FILE, weights_only=False, map_location="cpu")
    optimizer.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["torch_rng"])
    return model, optimizer, state
