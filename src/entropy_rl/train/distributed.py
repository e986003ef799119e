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
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = [
    "SINGLE", "World", "full_model_state", "full_weights", "init_world", "reshard", "shard_model",
]  # fmt: skip


@dataclass(frozen=True)
class World:
    """This process's place among ``size`` ranks (``size == 1``: a plain single-process run)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0 writes the metrics, checkpoints and the final model."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.size > 1

    def device(self, device: str) -> str:
        """``device`` for this rank: its own GPU (``cuda:<local rank>``) when there are several."""
        return f"cuda:{self.local_rank}" if self.active and device.startswith("cuda") else device

    def sum(self, values: list[float]) -> list[float]:
        """Element-wise sum of ``values`` over all ranks (the values themselves on one rank)."""
        if not self.active:
            return list(values)
        tensor = torch.tensor(values, dtype=torch.float64, device=self._comm_device())
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor.tolist()

    def max(self, value: int) -> int:
        """The largest ``value`` of any rank."""
        if not self.active:
            return value
        tensor = torch.tensor([value], dtype=torch.int64, device=self._comm_device())
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
        return int(tensor.item())

    def gather_cat(self, values: torch.Tensor) -> tuple[torch.Tensor, int]:
        """Every rank's 1-D ``values`` concatenated in rank order, and where this rank's begin
        (``values`` and 0 on one rank). Ranks may hold different numbers of values."""
        if not self.active:
            return values, 0
        device = self._comm_device()
        count = torch.tensor([values.numel()], dtype=torch.int64, device=device)
        counts = [torch.zeros_like(count) for _ in range(self.size)]
        dist.all_gather(counts, count)
        sizes = [int(c.item()) for c in counts]
        padded = torch.zeros(max(sizes), dtype=values.dtype, device=device)
        padded[: values.numel()] = values.to(device)
        pieces = [torch.empty_like(padded) for _ in range(self.size)]
        dist.all_gather(pieces, padded)
        whole = torch.cat([piece[:size] for piece, size in zip(pieces, sizes, strict=True)])
        return whole.to(values.device), sum(sizes[: self.rank])

    def barrier(self) -> None:
        """Wait for every rank (nothing on one rank)."""
        if self.active:
            dist.barrier()

    def _comm_device(self) -> str:
        return f"cuda:{self.local_rank}" if dist.get_backend() == "nccl" else "cpu"


SINGLE = World()  # one process: no torchrun


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
