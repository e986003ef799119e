"""Checkpoints that survive a crash at any moment: written beside, then swapped in.

A checkpoint folder holds the model (``save_pretrained``), the optimizer state (full and keyed by
parameter name, so a run sharded over several processes and a single-process run read the same
checkpoint), the step and the torch RNG state (the trainer seeds every random draw of a step from ``(seed, step)``, so this is
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
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_optimizer_state_dict,
    set_optimizer_state_dict,
)
from transformers import AutoModelForCausalLM, PreTrainedModel

from entropy_rl.train.distributed import SINGLE, World, full_model_state, reshard

__all__ = [
    "DamagedCheckpointError",
    "checkpoint_fingerprint",
    "latest_checkpoint",
    "load_checkpoint",
    "save_checkpoint",
]

STATE_FILE = "trainer_state.pt"
FINGERPRINT_FILE = "run_fingerprint.txt"  # what made it, readable without loading the model


class DamagedCheckpointError(OSError):
    """A checkpoint file that exists but cannot be read (truncated, overwritten, another format)."""

    def __init__(self, path: Path, err: BaseException) -> None:
        folder = Path(path).parent
        super().__init__(
            f"checkpoint file {path} is unreadable ({type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else 'no detail'}); it was left as it is: "
            f"remove {folder} to restart this run from step 0, or point --out at another run"
        )


def save_checkpoint(
    folder: Path,
    model: PreTrainedModel,
    optimizer: torch.optim.Optimizer,
    step: int,
    extra: dict[str, Any],
    fingerprint: str = "",
    world: World = SINGLE,
) -> Path:
    """Save everything needed to continue after ``step`` completed steps, and the ``fingerprint``
    of the run that wrote it (see :func:`checkpoint_fingerprint`).

    In a sharded run every rank calls this (the full state is gathered on rank 0, which writes)."""
    folder = Path(folder)
    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    optimizer_state = get_optimizer_state_dict(reshard(model), optimizer, options=options)
    model_state = full_model_state(model, world)
    if not world.is_main:
        return folder
    tmp, old = folder.with_name(folder.name + ".tmp"), folder.with_name(folder.name + ".old")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save_pretrained(tmp, state_dict=model_state)
    state = {
        "step": step,
        "optimizer": optimizer_state,
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
    folder: Path, optimizer_factory, device: str = "cpu", prepare=lambda model: model
) -> tuple[PreTrainedModel, torch.optim.Optimizer, dict[str, Any]]:
    """Model (on ``device``, then ``prepare``d, e.g. sharded), optimizer (built by
    ``optimizer_factory(model)``, then restored; every rank reads the full state and keeps its
    shard), state. A file that cannot be read raises :class:`DamagedCheckpointError`, naming it;
    nothing is removed or overwritten."""
    folder = Path(folder)
    try:
        state = torch.load(folder / STATE_FILE, weights_only=False, map_location="cpu")
    except Exception as err:  # torch reports a damaged zip as RuntimeError, pickle as others
        raise DamagedCheckpointError(folder / STATE_FILE, err) from err
    try:
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    except Exception as err:  # a truncated safetensors file, a damaged config.json
        weights = next(iter(sorted(folder.glob("*.safetensors"))), folder / "config.json")
        raise DamagedCheckpointError(weights, err) from err
    model = prepare(model.to(device))
    optimizer = optimizer_factory(model)
    set_optimizer_state_dict(
        model, optimizer, state["optimizer"], options=StateDictOptions(full_state_dict=True)
    )
    torch.set_rng_state(state["torch_rng"])
    return model, optimizer, state
