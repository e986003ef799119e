"""This process's place among the ranks of a data-parallel run (one rank without torchrun).

The collectives a step needs, each a no-op on one process: sums and maxima of a few numbers, and
the concatenation of every rank's tokens (the token selection of Clip-Cov, KL-Cov and forking
tokens over a whole mini-batch). ``train/distributed.py`` starts the process group and shards
the model.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = ["SINGLE", "World"]


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
