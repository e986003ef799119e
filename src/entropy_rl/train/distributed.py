"""Data-parallel RL across processes: ``torch.distributed`` with FSDP2, launched by ``torchrun``.

    torchrun --standalone --nproc_per_node 8 -m entropy_rl.cli train --config FILE --method kl_cov --out DIR

Each process (rank) samples its share of a step's prompts (``prompts_per_step / world_size``, G
responses each, so a group never spans ranks), computes the loss on its own tokens and the
gradients are averaged across ranks by FSDP (``fully_shard`` on every decoder layer and the root,
so parameters, gradients and optimizer state are sharded). Batch statistics of a loss — the
token-mean and the covariance centring in the metrics — are taken over a rank's own tokens, as in
verl, where each data-parallel rank computes the loss on its micro-batch.

The token selection of Clip-Cov, KL-Cov and forking tokens is taken over the whole mini-batch
of every rank by default (``train.selection: batch``: each rank gathers the valid tokens' log-
probabilities, advantages and entropies, :meth:`World.gather_cat`, and runs the same selector on
them), so the tokens chosen do not depend on the number of processes; ``selection: micro_batch``
selects within each rank's micro-batch, as verl does.

Sharded modules need every rank to run the same forward passes: sampling uses ``generate(...,
synced_gpus=True)`` (finished ranks keep stepping until all are done) and the number of
micro-batches is agreed across ranks. Checkpoints stay in the single-process format — the full
model (``save_pretrained``) and a full, name-keyed optimizer state gathered on rank 0 — so a run
can be resumed on another number of processes, or on one. The backend is NCCL on GPUs and gloo on
CPU, where the tests run it with two processes.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import torch
import torch.distributed as dist

from entropy_rl.ranks import SINGLE, World

__all__ = [
    "SINGLE", "World", "full_model_state", "full_weights", "init_world", "reshard", "shard_model",
]  # fmt: skip


def init_world(device: str) -> World:
    """The ``World`` torchrun set up (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``), with the process
    group started: NCCL when training on GPUs, gloo on CPU. Without torchrun: one rank."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return SINGLE
    world = World(int(os.environ["RANK"]), size, int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        cuda = device.startswith("cuda")
        if cuda:
            torch.cuda.set_device(world.local_rank)
        dist.init_process_group("nccl" if cuda else "gloo")
    return world


def shard_model(model: torch.nn.Module, world: World) -> torch.nn.Module:
    """FSDP2: shard each decoder layer, then the rest, across the ranks of ``world`` (in place)."""
    if not world.active:
        return model
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    device_type = next(model.parameters()).device.type
    mesh = init_device_mesh(device_type, (world.size,))
    layers = getattr(getattr(model, "model", None), "layers", None)
    if layers is None:
        raise ValueError(
            f"cannot shard {type(model).__name__}: FSDP here wraps the decoder layers of a "
            "transformers causal LM (model.model.layers); run this model on one process"
        )
    for layer in layers:
        fully_shard(layer, mesh=mesh)
    fully_shard(model, mesh=mesh)
    return model


def reshard(model: torch.nn.Module) -> torch.nn.Module:
    """Put a sharded model's parameters back in their shards. FSDP keeps the root's parameters
    gathered after a forward pass without backward (sampling, old log-probabilities), and a state
    dict must be taken from the sharded ones. Nothing happens to an unsharded model."""
    if hasattr(model, "reshard"):
        model.reshard()
    return model


def full_model_state(model: torch.nn.Module, world: World) -> dict[str, torch.Tensor] | None:
    """A sharded model's whole state dict, gathered on rank 0 (on CPU) for ``save_pretrained``;
    every rank must call it (a collective). None on a single process: ``save_pretrained`` then
    reads the model itself."""
    if not world.active:
        return None
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    return get_model_state_dict(reshard(model), options=options)


def full_weights(model: torch.nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
    """Every parameter once (tied weights once), under its name in the model, whole: a sharded
    parameter is gathered from all ranks one at a time (a collective: every rank must iterate)."""
    for name, param in reshard(model).named_parameters():
        tensor = param.detach()
        yield name, tensor.full_tensor() if hasattr(tensor, "full_tensor") else tensor
