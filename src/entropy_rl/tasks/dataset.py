"""Problems from a math dataset, for RL on real models (the GPU profiles' training data).

A row gives a problem and its reference answer, read from (dotted) fields of a local JSON-lines or
parquet file, or of a dataset on the hub (``datasets``, imported only then). A problem field that
holds a chat (a list of ``{role, content}`` messages) gives the content of its last user message.
The held-out split is a fixed hash-based share of the rows, as in the synthetic task; there is no
out-of-distribution split (the real benchmarks play that part).
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

from entropy_rl.data.benchmarks import BenchmarkRow, read_rows
from entropy_rl.settings import Settings, choice, number
from entropy_rl.tasks.arithmetic import split_of

__all__ = ["DatasetTask"]


def _get(row: dict[str, Any], dotted: str) -> Any:
    value: Any = row
    for key in dotted.split("."):
        if not isinstance(value, dict) or key not in value:
            raise KeyError(dotted)
        value = value[key]
    if isinstance(value, list) and value and isinstance(value[0], dict) and "content" in value[0]:
        users = [m["content"] for m in value if m.get("role") == "user"] or [value[-1]["content"]]
        value = users[-1]
    return value


@dataclass(frozen=True)
class DatasetTask(Settings):
    """A math dataset as a task: ``problems(split, n, seed)`` like the synthetic one."""

    section: ClassVar[str] = "task"

    kind: str = choice("dataset", ("dataset",), doc="problems from a dataset")
    path: str = ""  # local .jsonl / .parquet file, or a hub dataset id
    hub_config: str | None = None
    split: str = "train"
    problem_field: str = "problem"
    answer_field: str = "answer"
    heldout_fraction: float = number(
        0.01, 0.0, 1.0, low_open=True, high_open=True, doc="share held out"
    )
    validation_fraction: float = number(
        0.01, 0.0, 1.0, low_open=True, high_open=True,
        doc="share for validation (evaluations during training, tuning)",
    )  # fmt: skip

    def check(self) -> None:
        if not self.path:
            raise ValueError(
                "task.path must name a local file or a hub dataset id (task.kind: dataset)"
            )

    @cached_property
    def _rows(self) -> list[BenchmarkRow]:
        local = Path(self.path)
        if local.suffix in (".jsonl", ".json", ".parquet"):
            if not local.is_file():
                raise FileNotFoundError(f"task.path {local} does not exist")
            raw = read_rows(local)
        else:
            import datasets

            raw = list(datasets.load_dataset(self.path, self.hub_config, split=self.split))
        rows = []
        for index, row in enumerate(raw):
            try:
                problem, answer = _get(row, self.problem_field), _get(row, self.answer_field)
            except KeyError as err:
                raise ValueError(f"{self.path}, row {index + 1}: no field {err.args[0]!r}") from err
            rows.append(
                BenchmarkRow(id=str(row.get("id", index)), problem=str(problem), answer=str(answer))
            )
        return rows

    def _split(self, row: BenchmarkRow) -> str:
        digest = hashlib.sha256(row.problem.encode()).digest()
        return split_of(int.from_bytes(digest[:4], "big") / 2**32, self)

    def problems(self, split: str, n: int, seed: int) -> list[BenchmarkRow]:
        """``n`` rows of ``split`` (train, validation or heldout) in a seeded order (all of them
        if fewer)."""
        if split not in ("train", "validation", "heldout"):
            raise ValueError(
                f"a dataset task has train, validation and heldout splits, not {split!r}"
            )
        rows = [row for row in self._rows if self._split(row) == split]
        random.Random(seed).shuffle(rows)
        return rows[:n]
