"""Experiment tracking: every metrics row of a run also goes to the trackers its config names.

``metrics.jsonl`` is always written (it is the run's record, read by the analysis); the
``loggers`` setting of ``train:`` and ``tabular:`` adds any of

| name | library (optional extra ``tracking``) | where, under ``tracking_dir`` | watch it with |
| --- | --- | --- | --- |
| ``tensorboard`` | ``torch.utils.tensorboard`` (needs ``tensorboard``) | ``tensorboard/<run name>/`` | ``tensorboard --logdir DIR/tensorboard`` |
| ``mlflow`` | ``mlflow`` (``mlflow-skinny`` with SQLAlchemy) | ``mlflow.db`` (SQLite), or ``$MLFLOW_TRACKING_URI`` | ``mlflow ui --backend-store-uri sqlite:///DIR/mlflow.db`` |

A run is named ``<profile>/<method>/base<b>/seed<k>``; in MLflow the profile is the experiment. Each
library is imported only when chosen, and a missing one is one clear error naming the extra.
A resumed run continues where its checkpoint left off: TensorBoard purges the events logged after
that step by the interrupted process (``purge_step``), MLflow continues the same run (its id is
kept in the run folder) and logs the recomputed steps again, which its history shows as repeats.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["LOGGERS", "Trackers", "check_loggers", "open_trackers"]

LOGGERS = ("jsonl", "tensorboard", "mlflow")
MLFLOW_RUN_ID_FILE = "mlflow_run_id.txt"


def check_loggers(loggers: Sequence[str], where: str) -> None:
    """Every name in ``loggers`` is a known tracker (``jsonl`` is always on)."""
    unknown = [name for name in loggers if name not in LOGGERS]
    if unknown:
        raise ValueError(
            f"{where}.loggers: unknown {unknown}; known loggers: {', '.join(LOGGERS)} "
            "(jsonl is always written)"
        )


def _scalars(row: Mapping[str, Any]) -> dict[str, float]:
    """The row's finite numbers (metrics rows also hold None for steps without an evaluation)."""
    return {
        key: float(value)
        for key, value in row.items()
        if key != "step"
        and isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
    }


def _flat(config: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    flat: dict[str, str] = {}
    for key, value in config.items():
        if isinstance(value, Mapping):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = json.dumps(value) if not isinstance(value, str) else value
    return flat


def _need(module: str, tracker: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ValueError(
            f"logger {tracker!r} needs {module.split('.')[0]}: pip install -e '.[tracking]' "
            f"(or drop {tracker} from loggers)"
        ) from err


class _TensorBoard:
    def __init__(self, folder: Path, run_name: str, config: Mapping[str, Any], start: int):
        _need("tensorboard", "tensorboard")
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(folder / "tensorboard" / run_name), purge_step=start)
        if start == 0:
            self.writer.add_text("config", "```\n" + json.dumps(config, indent=2) + "\n```", 0)

    def log(self, row: Mapping[str, Any]) -> None:
        for key, value in _scalars(row).items():
            self.writer.add_scalar(key, value, row["step"])

    def close(self) -> None:
        self.writer.close()


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """One process at a time (runs of one profile start together and share one database)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class _MLflow:
    def __init__(
        self, folder: Path, run_name: str, config: Mapping[str, Any], start: int, run_dir: Path
    ):
        mlflow = _need("mlflow", "mlflow")
        from mlflow.tracking import MlflowClient

        uri = (
            os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{(folder / 'mlflow.db').resolve()}"
        )
        self.client = MlflowClient(uri)
        experiment_name = run_name.split("/")[0]
        id_file = run_dir / MLFLOW_RUN_ID_FILE
        with _file_lock(folder / "mlflow.lock"):  # the first run creates the tables
            experiment = self.client.get_experiment_by_name(experiment_name)
            experiment_id = (
                experiment.experiment_id
                if experiment is not None
                else self.client.create_experiment(experiment_name)
            )
            if start > 0 and id_file.is_file():
                self.run_id = id_file.read_text().strip()
                self.client.update_run(self.run_id, status="RUNNING")
            else:
                run = self.client.create_run(experiment_id, run_name=run_name)
                self.run_id = run.info.run_id
                id_file.parent.mkdir(parents=True, exist_ok=True)
                id_file.write_text(self.run_id)
                params = _flat(config)
                entities = mlflow.entities
                for i in range(0, len(params), 100):  # the store takes at most 100 a call
                    batch = list(params.items())[i : i + 100]
                    self.client.log_batch(
                        self.run_id, params=[entities.Param(k, v[:6000]) for k, v in batch]
                    )
        self._metric = mlflow.entities.Metric

    def log(self, row: Mapping[str, Any]) -> None:
        import time

        now = int(time.time() * 1000)
        metrics = [self._metric(k, v, now, row["step"]) for k, v in _scalars(row).items()]
        self.client.log_batch(self.run_id, metrics=metrics)

    def close(self) -> None:
        self.client.set_terminated(self.run_id)


class Trackers:
    """The trackers of one run: ``log(row)`` sends a metrics row to each, ``close()`` ends them."""

    def __init__(self, trackers: list[Any]):
        self.trackers = trackers

    def log(self, row: Mapping[str, Any]) -> None:
        for tracker in self.trackers:
            tracker.log(row)

    def close(self) -> None:
        for tracker in self.trackers:
            tracker.close()

    def __enter__(self) -> Trackers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_trackers(
    loggers: Sequence[str],
    run_name: str,
    folder: Path,
    config: Mapping[str, Any],
    start: int = 0,
    run_dir: Path | None = None,
) -> Trackers:
    """The trackers ``loggers`` names (``jsonl`` needs none: the trainer writes it) for run
    ``run_name`` (``<profile>/<method>/base<b>/seed<k>``), writing under ``folder``; ``start`` is the step
    the run starts from (a resumed run's checkpoint step); ``run_dir`` keeps the run's tracker ids."""
    folder, run_dir = Path(folder), Path(run_dir or folder)
    trackers: list[Any] = []
    if "tensorboard" in loggers:
        trackers.append(_TensorBoard(folder, run_name, config, start))
    if "mlflow" in loggers:
        trackers.append(_MLflow(folder, run_name, config, start, run_dir))
    return Trackers(trackers)
