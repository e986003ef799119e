"""Checkpoints that survive a crash at any moment: written beside, then swapped in.

A checkpoint folder holds the model (``save_pretrained``), the optimizer state (full and keyed by
parameter name, so a run sharded over several processes and a single-process run read the same
checkpoint), the step and the torch RNG state (the trainer seeds every random draw of a step from
``(seed, step)``, so this is all the randomness there is to restore), and the identity of the run
that wrote it (:func:`run_identity`), so a run with other settings never resumes from it. It is
written to a uniquely named ``.<name>.tmp-*`` folder; the previous one is renamed ``<name>.old``,
the new one renamed into place, the old one removed. A kill between the two renames leaves
``.old``, which :func:`latest_checkpoint` falls back to, so a good checkpoint always exists.

The trainer state holds tensors and plain values only and is read with
``torch.load(weights_only=True)``: a planted pickle in a shared run folder is refused, never run.
"""

from __future__ import annotations

import hashlib
import json
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

from entropy_rl.io import fresh_dir
from entropy_rl.train.distributed import SINGLE, World, full_model_state, reshard

__all__ = [
    "DamagedCheckpointError",
    "identity_differences",
    "latest_checkpoint",
    "load_checkpoint",
    "model_digest",
    "save_checkpoint",
    "saved_identity",
]

STATE_FILE = "trainer_state.pt"
IDENTITY_FILE = "run_identity.json"  # what made it, readable without loading the model

# the files of a saved model that decide what it computes (a SFT folder also holds its reports)
MODEL_FILES = ("config.json", "generation_config.json", "*.safetensors", "*.safetensors.index.json",
               "*.bin", "*.bin.index.json", "tokenizer*", "special_tokens_map.json",
               "added_tokens.json", "vocab*", "merges.txt", "chat_template*")  # fmt: skip
WHOLE_FILE_BYTES = 256 * 2**20  # larger weight files are digested by 16 spread 1 MiB blocks


def _file_digest(path: Path) -> str:
    """SHA-256 of a file's bytes; of its size and 16 evenly spread 1 MiB blocks when it is over
    ``WHOLE_FILE_BYTES`` (a 7B model's shards: a second, not a minute, and a changed tensor still
    changes the digest of the block it lies in with high probability)."""
    size = path.stat().st_size
    digest = hashlib.sha256(str(size).encode())
    with open(path, "rb") as f:
        if size <= WHOLE_FILE_BYTES:
            for block in iter(lambda: f.read(2**20), b""):
                digest.update(block)
        else:
            for i in range(16):
                f.seek((size - 2**20) * i // 15)
                digest.update(f.read(2**20))
    return digest.hexdigest()


def model_digest(model: str | Path) -> str:
    """What a base model *is*, whatever its path: a digest of the bytes of a saved model folder's
    model files (``MODEL_FILES``: config, weights, tokenizer), or ``hub:<id>`` for a hub id. The
    same model copied elsewhere, or named by another path (``./base``, an absolute path), has the
    same digest; file times do not enter."""
    folder = Path(model)
    if not folder.is_dir():
        return f"hub:{model}"
    files = sorted({f for pattern in MODEL_FILES for f in folder.glob(pattern) if f.is_file()})
    digest = hashlib.sha256()
    for f in files:
        digest.update(f"{f.name}:{_file_digest(f)}\n".encode())
    return digest.hexdigest()


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
    identity: dict[str, Any] | None = None,
    world: World = SINGLE,
) -> Path:
    """Save everything needed to continue after ``step`` completed steps, and the ``identity``
    of the run that wrote it (see :func:`saved_identity`). ``extra`` holds tensors and plain
    values only (it is read back with ``weights_only=True``).

    In a sharded run every rank calls this (the full state is gathered on rank 0, which writes)."""
    folder = Path(folder)
    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    optimizer_state = get_optimizer_state_dict(reshard(model), optimizer, options=options)
    model_state = full_model_state(model, world)
    if not world.is_main:
        return folder
    tmp, old = fresh_dir(folder), folder.with_name(folder.name + ".old")
    model.save_pretrained(tmp, state_dict=model_state)
    state = {
        "step": step,
        "optimizer": optimizer_state,
        "torch_rng": torch.get_rng_state(),
        **extra,
    }
    torch.save(state, tmp / STATE_FILE)
    (tmp / IDENTITY_FILE).write_text(json.dumps(identity or {}, indent=1, sort_keys=True))
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


def saved_identity(folder: Path) -> dict[str, Any] | None:
    """The identity saved with a checkpoint (None for one saved without, or unreadable)."""
    path = Path(folder) / IDENTITY_FILE
    try:
        identity = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return identity if isinstance(identity, dict) else None


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict) and value:
        return {
            k: v for key, item in value.items() for k, v in _flat(item, f"{prefix}{key}.").items()
        }
    return {prefix.rstrip("."): value}


def identity_differences(saved: dict[str, Any] | None, current: dict[str, Any]) -> list[str]:
    """What differs between a checkpoint's identity and a run's, as ``key: saved -> current``
    (dotted keys, e.g. ``settings.lr: 0.001 -> 0.002``); empty when they are the same run."""
    if saved is None:
        return ["the checkpoint has no run identity (written by another version of the suite)"]
    old, new = _flat(saved), _flat(current)
    return [f"{key}: {old.get(key, '(unset)')} -> {new.get(key, '(unset)')}"
            for key in sorted(set(old) | set(new)) if old.get(key) != new.get(key)]  # fmt: skip


def load_checkpoint(
    folder: Path, optimizer_factory, device: str = "cpu", prepare=lambda model: model
) -> tuple[PreTrainedModel, torch.optim.Optimizer, dict[str, Any]]:
    """Model (on ``device``, then ``prepare``d, e.g. sharded), optimizer (built by
    ``optimizer_factory(model)``, then restored; every rank reads the full state and keeps its
    shard), state. A file that cannot be read raises :class:`DamagedCheckpointError`, naming it;
    nothing is removed or overwritten."""
    folder = Path(folder)
    try:
        state = torch.load(folder / STATE_FILE, weights_only=True, map_location="cpu")
    except Exception as err:  # a damaged zip (RuntimeError), a refused pickle (UnpicklingError)
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
