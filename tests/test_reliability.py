"""Reliability under faults: kill -9 and resume, full disks and unwritable folders."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from entropy_rl import io
from entropy_rl.cli import main

from .train.conftest import rl_config, write_config

TIMINGS = {"time_rollout_s", "time_update_s", "tokens_per_s"}


def _rows(path: Path) -> list[dict]:
    return [
        {k: v for k, v in json.loads(line).items() if k not in TIMINGS}
        for line in path.read_text().splitlines()
    ]


def _train_command(config: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "entropy_rl.cli", "train", "--config", str(config), "--method", "kl_cov",
            "--out", str(out), *extra]  # fmt: skip


@pytest.mark.slow
def test_training_killed_with_sigkill_resumes_to_the_uninterrupted_numbers(tiny_base, tmp_path):
    config = write_config(
        tmp_path / "config.yaml", rl_config(tiny_base, steps=10, checkpoint_every=3)
    )
    subprocess.run(
        _train_command(config, tmp_path / "full"), check=True, capture_output=True, timeout=600
    )

    killed = tmp_path / "killed"
    process = subprocess.Popen(
        _train_command(config, killed), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 300
    while time.time() < deadline:  # kill once step 4 is logged: after the checkpoint at 3 steps
        metrics = killed / "metrics.jsonl"
        if metrics.exists() and len(metrics.read_text().splitlines()) >= 5:
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL
    assert not (killed / "summary.json").exists()

    subprocess.run(
        _train_command(config, killed, "--resume"), check=True, capture_output=True, timeout=600
    )
    assert _rows(killed / "metrics.jsonl") == _rows(tmp_path / "full" / "metrics.jsonl")
    full = json.loads((tmp_path / "full" / "summary.json").read_text())
    assert json.loads((killed / "summary.json").read_text()) == full


def test_a_full_disk_fails_clearly_and_leaves_the_previous_file_intact(tmp_path, monkeypatch):
    target = tmp_path / "summary.json"
    io.write_json(target, {"good": 1})

    real_replace = os.replace

    def disk_full(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(io.os, "replace", disk_full)
    with pytest.raises(OSError, match="No space left on device"):
        io.write_json(target, {"new": 2})
    monkeypatch.setattr(io.os, "replace", real_replace)
    assert json.loads(target.read_text()) == {"good": 1}
    assert not list(tmp_path.glob(".*.tmp"))  # no temporary file left behind


def test_a_disk_that_fills_up_mid_write_fails_with_the_file_named(tmp_path, monkeypatch, capsys):
    """The write itself runs out of space half-way: one clear line, the old file intact."""
    summary = tmp_path / "theory.json"
    io.write_json(summary, {"good": 1})
    real_write_text = Path.write_text

    def fills_up(self, text, *args, **kwargs):
        real_write_text(self, text[: len(text) // 2], *args, **kwargs)  # half of it lands
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_text", fills_up)
    code = main(["theory", "--summary", str(summary), "--figures", str(tmp_path / "f")])
    monkeypatch.setattr(Path, "write_text", real_write_text)
    assert code == 2
    err = capsys.readouterr().err
    assert f"cannot write {summary}: No space left on device" in err
    assert json.loads(summary.read_text()) == {"good": 1}
    assert not list(tmp_path.glob(".*.tmp"))


def test_an_unwritable_output_folder_is_one_clear_error(tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    code = main(
        [
            "theory",
            "--summary",
            str(blocker / "theory" / "summary.json"),
            "--figures",
            str(tmp_path / "f"),
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "cannot write" in err and "check the folder is writable" in err
    assert blocker.read_text() == "not a folder"


def test_a_crash_while_saving_a_model_folder_keeps_the_previous_one(tmp_path):
    model = tmp_path / "model"
    with io.atomic_dir(model) as folder:
        (folder / "weights").write_text("v1")
    with pytest.raises(RuntimeError), io.atomic_dir(model) as folder:
        (folder / "weights").write_text("half")
        raise RuntimeError("killed while saving")
    assert (model / "weights").read_text() == "v1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


@pytest.mark.parametrize("damaged", ["trainer_state.pt", "model.safetensors"])
def test_a_damaged_checkpoint_is_one_line_naming_the_file_and_is_left_as_it_is(
    tiny_base, tmp_path, capsys, damaged
):
    config = write_config(
        tmp_path / "config.yaml", rl_config(tiny_base, steps=2, checkpoint_every=2)
    )
    out = tmp_path / "run"
    assert main(["train", "--config", str(config), "--method", "grpo", "--out", str(out)]) == 0
    path = out / "checkpoint" / damaged
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])  # truncated to a third
    capsys.readouterr()

    code = main(
        ["train", "--config", str(config), "--method", "grpo", "--out", str(out), "--resume"]
    )
    err = capsys.readouterr().err
    assert code == 2
    errors = [line for line in err.splitlines() if "error" in line.lower()]  # not the progress bar
    assert len(errors) == 1 and "Traceback" not in err, err
    assert f"checkpoint file {path} is unreadable" in err
    assert f"remove {out / 'checkpoint'} to restart this run from step 0" in err
    assert path.read_bytes() == data[: len(data) // 3]  # never overwritten


def _train(config: Path, out: Path, *extra: str) -> int:
    return main(["train", "--config", str(config), "--method", "grpo", "--out", str(out), *extra])


def _one_error_line(err: str) -> str:
    errors = [line for line in err.splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and "Traceback" not in err, err
    return errors[0]


def test_a_second_writer_of_a_run_folder_is_refused_naming_the_holder(tiny_base, tmp_path, capsys):
    config = write_config(tmp_path / "config.yaml", rl_config(tiny_base, steps=2))
    out = tmp_path / "run"
    with io.run_lock(out):  # another process's lock would look the same: flock is per open file
        assert _train(config, out) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert f"{out} is being written by another entropy-rl process (pid {os.getpid()})" in line
    assert not (out / "metrics.jsonl").exists()
    assert _train(config, out) == 0  # the lock went with its holder


@pytest.mark.slow
def test_two_train_commands_into_one_folder_leave_one_clean_run(tiny_base, tmp_path):
    config = write_config(tmp_path / "config.yaml", rl_config(tiny_base, steps=20))
    out = tmp_path / "run"
    command = [sys.executable, "-m", "entropy_rl.cli", "train", "--config", str(config),
               "--method", "grpo", "--out", str(out), "--resume"]  # fmt: skip
    both = [subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            for _ in range(2)]  # fmt: skip
    errors = [process.communicate(timeout=300)[1] for process in both]
    codes = [process.returncode for process in both]
    # one writes the run; the other either found it locked (naming the writer) or, started
    # after it ended, resumed the finished run
    assert 0 in codes and set(codes) <= {0, 2}, errors
    for process, code, err in zip(both, codes, errors, strict=True):
        if code == 2:
            other = next(p for p in both if p is not process)
            assert f"being written by another entropy-rl process (pid {other.pid})" in err
    steps = [row["step"] for row in io.read_metrics(out / "metrics.jsonl")]
    assert steps == list(range(20))
    assert not list(out.glob(".checkpoint.tmp-*")) and not list(out.glob("*.tmp"))


def test_analysis_refuses_metrics_with_a_repeated_step_naming_file_and_line(tmp_path):
    from entropy_rl.analysis.study import load_runs

    folder = tmp_path / "grpo" / "base0" / "seed0"
    folder.mkdir(parents=True)
    rows = [{"step": s, "entropy": 1.0, "accuracy": 0.5} for s in (0, 1, 2, 1, 2)]
    io.write_jsonl(folder / "metrics.jsonl", rows)
    with pytest.raises(ValueError, match=r"metrics\.jsonl, line 4: step 1 follows step 2"):
        load_runs(tmp_path, {"grpo": [(0, 0)]})


def test_an_empty_metrics_file_left_by_a_failed_start_does_not_block_the_command(
    tiny_base, tmp_path
):
    config = write_config(tmp_path / "config.yaml", rl_config(tiny_base, steps=2))
    out = tmp_path / "run"
    out.mkdir()
    (out / "metrics.jsonl").write_text("")
    assert _train(config, out) == 0
    assert len(io.read_metrics(out / "metrics.jsonl")) == 2


def test_restart_removes_the_run_and_starts_from_step_zero(tiny_base, tmp_path, capsys):
    config = write_config(tmp_path / "config.yaml", rl_config(tiny_base, steps=2))
    out = tmp_path / "run"
    assert _train(config, out) == 0
    first = _rows(out / "metrics.jsonl")
    assert _train(config, out) == 2  # a run is there: neither --resume nor --restart
    assert "pass --resume" in _one_error_line(capsys.readouterr().err)
    assert _train(config, out, "--restart") == 0
    assert _rows(out / "metrics.jsonl") == first


class _Planted:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def test_a_planted_pickle_in_a_checkpoint_is_refused_not_run(
    tiny_base, tmp_path, capsys, monkeypatch
):
    import torch

    config = write_config(tmp_path / "config.yaml", rl_config(tiny_base, steps=2))
    out = tmp_path / "run"
    assert _train(config, out) == 0
    state = out / "checkpoint" / "trainer_state.pt"
    torch.save({"step": 2, "payload": _Planted()}, state)  # a run folder shared as a tar
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    config4 = write_config(tmp_path / "config4.yaml", rl_config(tiny_base, steps=4))
    assert _train(config4, out, "--resume") == 2
    line = _one_error_line(capsys.readouterr().err)
    assert f"checkpoint file {state} is unreadable" in line
    assert not (tmp_path / "PWNED").exists()


def test_result_files_and_folders_follow_the_umask(tmp_path):
    previous = os.umask(0o002)
    try:
        written = io.write_json(tmp_path / "summary.json", {"a": 1})
        with io.atomic_dir(tmp_path / "model") as folder:
            (folder / "weights").write_text("w")
    finally:
        os.umask(previous)
    assert written.stat().st_mode & 0o777 == 0o664
    assert (tmp_path / "model").stat().st_mode & 0o777 == 0o775
