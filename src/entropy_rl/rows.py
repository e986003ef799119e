"""Batches of rows: one ``take`` / ``join`` for every batch type of responses.

A batch is a frozen dataclass whose fields are columns of equal length, one entry per response:
tensors (indexed along their first dimension), lists (an empty list is a column the backend does
not report, and stays empty) or batches themselves. Dynamic sampling keeps and concatenates
responses through these two methods only, so the language model's graded rollouts, the tabular
simulator's and the sampler's generations share them.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

import torch
from torch import Tensor

__all__ = ["Rows"]

R = TypeVar("R", bound="Rows")


class Rows:
    """Mixin for a dataclass of per-response columns: :meth:`take` and :meth:`join`."""

    def _columns(self) -> list[Any]:
        return [getattr(self, f.name) for f in dataclasses.fields(self)]  # type: ignore[arg-type]

    def take(self: R, index: Tensor | list[int]) -> R:
        """The responses at ``index``, in that order."""
        index = torch.as_tensor(index, dtype=torch.long)
        return type(self)(*(_take(column, index) for column in self._columns()))

    def join(self: R, other: R) -> R:
        """These responses, then ``other``'s."""
        pairs = zip(self._columns(), other._columns(), strict=True)
        return type(self)(*(_join(a, b) for a, b in pairs))


def _take(column: Any, index: Tensor) -> Any:
    if isinstance(column, Tensor):
        return column[index.to(column.device)]
    if isinstance(column, Rows):
        return column.take(index)
    return [column[i] for i in index.tolist()] if column else []


def _join(a: Any, b: Any) -> Any:
    if isinstance(a, Tensor):
        return torch.cat([a, b])
    if isinstance(a, Rows):
        return a.join(b)
    return a + b
