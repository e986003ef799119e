"""Shared test configuration.

Hypothesis runs derandomized by default so that CI is deterministic (main stays green for the
same code); set HYPOTHESIS_PROFILE=explore to search fresh random examples, many more of them.
"""

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from filelock import FileLock
from hypothesis import HealthCheck, settings

# Offline copies of the benchmark test sets live beside the checkout (never copied into the repo).
SHARED_BENCHMARKS = Path(
    os.environ.get(
        "ENTROPY_RL_BENCHMARKS", Path(__file__).resolve().parents[2] / "shared" / "benchmarks"
    )
)

settings.register_profile(
    "ci",
    derandomize=True,
    deadline=None,
    max_examples=100,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("explore", deadline=None, max_examples=2000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

if os.environ.get("PYTEST_XDIST_WORKER"):
    # one torch thread per xdist worker: the workers already use every core
    import torch

    torch.set_num_threads(1)


def pytest_collection_modifyitems(config, items):
    """Start the suite's two long chains at once: the science tests of each world share a base
    model and its runs (a session fixture each), so each chain runs on one worker. xdist's
    ``worksteal`` hands worker ``i`` the ``i``-th contiguous share of the collection and steals
    from the tails, so each chain goes at the head of its own share: the carry world's (the
    longer) on the second worker, the saturating world's on the first, followed by the other
    slow tests; the quick tests fill the shares' tails, which idle workers steal."""
    chains: dict[str, list] = {"saturating": [], "carry": []}
    slow, quick = [], []
    for item in items:
        if item.get_closest_marker("science"):
            chains["carry" if "payoff" in item.fixturenames else "saturating"].append(item)
        else:
            (slow if item.get_closest_marker("slow") else quick).append(item)
    workers = max(1, int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))
    heads = [[] for _ in range(workers)]
    heads[0] += chains["saturating"] + slow
    heads[min(1, workers - 1)] += chains["carry"]
    ordered, remaining = [], len(items)
    for i, head in enumerate(heads):  # share i's size, as worksteal computes it
        size = remaining // (workers - i)
        remaining -= size
        fill = max(0, size - len(head)) if i < workers - 1 else len(quick)
        ordered += head + quick[:fill]
        del quick[:fill]
    items[:] = ordered + quick


@pytest.fixture(scope="session")
def benchmark_dir() -> Path:
    """The folder of offline benchmark copies (``../shared/benchmarks``); tests skip without it."""
    if not SHARED_BENCHMARKS.is_dir():
        pytest.skip(
            f"offline benchmark copies not found at {SHARED_BENCHMARKS} (set ENTROPY_RL_BENCHMARKS)"
        )
    return SHARED_BENCHMARKS


TINY_TASK = {"n_terms": 2, "min_value": 10, "max_value": 49, "ood_n_terms": 3}
TINY_BASE = {
    "model": {
        "hidden_size": 48,
        "num_layers": 2,
        "num_heads": 4,
        "num_kv_heads": 2,
        "intermediate_size": 96,
    },
    "sft": {"steps": 250, "batch_size": 32, "lr": 3e-3, "warmup_steps": 20, "train_problems": 1000},
    "eval_problems": 16,
    "eval_samples": 2,
    "max_new_tokens": 24,
    "threads": 1,
}


def shared_folder(tmp_path_factory, name: str, build: Callable[[Path], object]) -> Path:
    """Folder ``name`` that ``build(folder)`` fills once per test session: xdist workers share it
    through their session's common folder; the first to ask builds it under a file lock, the
    others wait for it and reuse it."""
    session = tmp_path_factory.getbasetemp()
    root = session.parent if os.environ.get("PYTEST_XDIST_WORKER") else session
    folder = root / name
    with FileLock(str(root / f"{name}.lock")):
        if not (root / f"{name}.built").exists():
            build(folder)
            (root / f"{name}.built").touch()
    return folder


def shared_base_model(tmp_path_factory, name: str, task: dict, base: dict) -> Path:
    """Folder of a base model SFT'd on ``task`` with ``base`` settings, built once per test
    session (``shared_folder``)."""
    from entropy_rl.base_model import BaseModelSettings, build_base_model
    from entropy_rl.tasks import make_task

    def build(folder: Path) -> None:
        _, summary, _ = build_base_model(make_task(task), BaseModelSettings.from_dict(base), folder)
        (folder / "base_summary.json").write_text(json.dumps(summary))

    return shared_folder(tmp_path_factory, name, build)


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory) -> Path:
    """Folder of a ~40 k-parameter base model SFT'd for a few seconds on two-term addition."""
    return shared_base_model(tmp_path_factory, "tiny_base", TINY_TASK, TINY_BASE)


@pytest.fixture(scope="session")
def site(tmp_path_factory) -> Path:
    """The teaching site, built once per test session with ``mkdocs build --strict``."""
    import shutil
    import subprocess
    import sys

    mkdocs = Path(sys.executable).parent / "mkdocs"
    if shutil.which(mkdocs.name, path=str(mkdocs.parent)) is None:
        pytest.skip("mkdocs is not installed (pip install -e '.[docs]')")

    def build(folder: Path) -> None:
        result = subprocess.run(
            [str(mkdocs), "build", "--strict", "--site-dir", str(folder)],
            cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr[-3000:]

    return shared_folder(tmp_path_factory, "site", build)
