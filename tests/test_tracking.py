"""Experiment tracking: every metrics row reaches TensorBoard and MLflow at its step, read back
with each backend's own reader, and a resumed run continues the same run there."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from entropy_rl.cli import main

from .train.conftest import rl_config, write_config


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _scalars(row: dict) -> dict[str, float]:
    return {
        k: float(v)
        for k, v in row.items()
        if k != "step" and isinstance(v, int | float) and not isinstance(v, bool)
    }


def _tensorboard(folder: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder), size_guidance={"scalars": 0})
    events.Reload()
    return {
        tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]
    }


def _mlflow(tracking: Path, run_name: str):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tracking / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(run_name.split("/")[0])
    runs = client.search_runs([experiment.experiment_id])
    assert [r.info.run_name for r in runs] == [run_name]
    return client, runs[0]


def _train(config: Path, out: Path, tracking: Path, *extra: str) -> int:
    return main([
        "train", "--config", str(config), "--method", "kl_cov", "--out", str(out),
        "--run-name", "tiny/kl_cov/seed0", "--tracking-dir", str(tracking), *extra,
    ])  # fmt: skip


@pytest.mark.slow
def test_every_metrics_row_reaches_tensorboard_and_mlflow_at_its_step(
    tiny_base, tmp_path, monkeypatch
):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    loggers = ["jsonl", "tensorboard", "mlflow"]
    config = write_config(
        tmp_path / "c.yaml", rl_config(tiny_base, steps=2, checkpoint_every=2, loggers=loggers)
    )
    out, tracking = tmp_path / "run", tmp_path / "tracking"
    assert _train(config, out, tracking) == 0
    assert _train(config, out, tracking, "--resume", "--steps", "4") == 0  # resumes at step 2
    rows = _jsonl(out / "metrics.jsonl")
    assert [r["step"] for r in rows] == [0, 1, 2, 3]

    expected = {}
    for row in rows:
        for key, value in _scalars(row).items():
            expected.setdefault(key, []).append((row["step"], value))
    assert {"entropy", "accuracy", "cov_mean", "approx_kl"} <= set(expected)

    board = _tensorboard(tracking / "tensorboard" / "tiny" / "kl_cov" / "seed0")
    assert set(board) == set(expected)
    for key, points in expected.items():  # TensorBoard stores float32
        assert [s for s, _ in board[key]] == [s for s, _ in points], key
        assert [v for _, v in board[key]] == pytest.approx([v for _, v in points], rel=1e-6), key

    client, run = _mlflow(tracking, "tiny/kl_cov/seed0")  # one run, continued on resume
    assert run.data.params["loss"] == "kl_cov" and json.loads(run.data.params["lr"]) == 1e-3
    assert run.info.status == "FINISHED"
    for key, points in expected.items():
        history = sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, key))
        assert history == sorted(points), key


def test_the_tabular_simulator_logs_to_tensorboard(tmp_path):
    out, tracking = tmp_path / "tab", tmp_path / "tracking"
    config = write_config(
        tmp_path / "t.yaml", {"tabular": {"steps": 5, "loggers": ["tensorboard"]}}
    )
    code = main(["tabular", "--config", str(config), "--out", str(out), "--tracking-dir",
                 str(tracking), "--run-name", "tiny/tabular/grpo/seed0"])  # fmt: skip
    assert code == 0
    rows = _jsonl(out / "metrics.jsonl")
    board = _tensorboard(tracking / "tensorboard" / "tiny" / "tabular" / "grpo" / "seed0")
    assert [v for _, v in board["entropy"]] == pytest.approx([r["entropy"] for r in rows], rel=1e-6)
    assert [s for s, _ in board["entropy"]] == list(range(5))


def test_an_unknown_logger_names_the_known_ones(tmp_path, capsys):
    config = write_config(tmp_path / "t.yaml", {"tabular": {"steps": 2, "loggers": ["wandbx"]}})
    assert main(["tabular", "--config", str(config), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "tabular.loggers: unknown ['wandbx']; known loggers: jsonl, tensorboard, mlflow" in err
