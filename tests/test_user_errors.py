"""Every user error is one line, never a traceback: config files (YAML, types, unknown keys at any
level) and benchmark rows, fuzzed with hypothesis, and each error of the CLI named with its fix."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from entropy_rl.cli import main
from entropy_rl.config import SECTIONS, load_config
from entropy_rl.data.benchmarks import BENCHMARKS, load_benchmark

REPO = Path(__file__).resolve().parents[1]
DEFAULT = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
SCHEMA = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())


def test_the_cli_knows_the_schemas_top_level_keys():
    assert set(SECTIONS) == set(SCHEMA["properties"])


# -- fuzzing: random documents, each failure the suite's one line --------------------------------

KEYS = sorted({*SECTIONS, "methods", "loss", "loss_config", "seeds", "kind", "lr", "steps",
               "model", "sft", "benchmarks", "benchmark_path", "grpo", "kl_cov", "k", "r",
               "template", "loggers", "n_terms", "advantage", "pretrained", "source", "taks"})  # fmt: skip
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["grpo", "kl_cov", "toy", "carry", "samples", "data/{name}/{split}.jsonl", ""]),
    st.text(max_size=12),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(KEYS), inner, max_size=5)
    ),
    max_leaves=25,
)


def _mutated_default(data) -> dict:
    """The default config with a few keys at any depth replaced by random values."""
    config = json.loads(json.dumps(DEFAULT))
    for _ in range(data.draw(st.integers(1, 4))):
        node, path = config, []
        while isinstance(node, dict) and node and data.draw(st.booleans()):
            key = data.draw(st.sampled_from(sorted(node)))
            path.append(key)
            if not isinstance(node[key], dict):
                break
            node = node[key]
        target = config
        for key in path[:-1]:
            target = target[key]
        if isinstance(target, dict):
            target[path[-1] if path else data.draw(st.sampled_from(KEYS))] = data.draw(VALUES)
    return config


def _one_line_or_nothing(call) -> None:
    start = time.perf_counter()
    try:
        call()
    except (ValueError, OSError) as err:
        message = str(err)
        assert message and "\n" not in message, message
        assert "Traceback" not in message
    assert time.perf_counter() - start < 10.0


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_random_config_documents_are_loaded_or_refused_in_one_line(tmp_path, data):
    kind = data.draw(st.sampled_from(["mutated", "random", "text"]))
    path = tmp_path / "config.yaml"
    if kind == "mutated":
        path.write_text(yaml.safe_dump(_mutated_default(data), allow_unicode=True))
    elif kind == "random":
        path.write_text(yaml.safe_dump(data.draw(VALUES), allow_unicode=True))
    else:
        path.write_bytes(data.draw(st.binary(max_size=200) | st.text(max_size=200).map(str.encode)))
    _one_line_or_nothing(lambda: load_config(path))


ROW_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.sampled_from(["problem", "question", "answer", "solution",
                                         "final_answer", "context", "id"]), inner, max_size=5),
    ),
    max_leaves=12,
)  # fmt: skip


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    name=st.sampled_from(sorted(BENCHMARKS)),
    rows=st.lists(ROW_VALUES, min_size=1, max_size=4),
    raw=st.binary(max_size=60),
)
def test_random_benchmark_rows_are_loaded_or_refused_in_one_line(tmp_path, name, rows, raw):
    path = tmp_path / f"{name}.jsonl"
    lines = [json.dumps(row).encode() for row in rows]
    path.write_bytes(b"\n".join([*lines, raw]))
    _one_line_or_nothing(lambda: load_benchmark(name, path))


# -- the CLI: each error one line on stderr, exit 2 ------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("train: {lr: 0.1\n  steps: 3", "is not valid YAML"),
        ("methods: [grpo]\n", "tabular.methods must be a mapping"),  # a bare tabular section
        ("tabular: {methods: [grpo]}\n", "tabular.methods must be a mapping of key: value settings, got list"),
        ("tabular: {methods: {grpo: {loss: grpo, loss_config: [1]}}}\n",
         "tabular.methods.grpo.loss_config must be a mapping"),
        ("tabular: [1, 2]\n", "tabular must be a mapping"),
        ("taks: {kind: carry}\ntabular: {methods: {grpo: {loss: grpo}}}\n", "unknown top-level key(s) ['taks']"),
        ("tabular: {lr: .inf, methods: {grpo: {loss: grpo}}}\n", "tabular.lr must be in (0, inf], got inf"),
        ("tabular: {loggers: jsonl, methods: {grpo: {loss: grpo}}}\n", "tabular.loggers must be a list of"),
        ("tabular: {methods: {grpo: {loss: [grpo]}}}\n", "grpo"),
    ],
)  # fmt: skip
def test_a_bad_config_is_one_line_naming_file_and_key(tmp_path, capsys, text, message):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    code = main(["tabular", "--config", str(path), "--method", "grpo", "--steps", "2",
                 "--out", str(tmp_path / "run")])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2
    assert (
        err.count("\n") == 1 and err.startswith("entropy-rl tabular: error: ") and str(path) in err
    )
    assert message in err, err
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


def test_a_non_utf8_config_names_the_file(tmp_path, capsys):
    path = tmp_path / "config.yaml"
    path.write_bytes(b"train: {lr: \xff}\n")
    assert main(["tabular", "--config", str(path), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert f"config file {path} is not UTF-8 text" in err and err.count("\n") == 1


def test_infinite_values_stay_where_they_mean_off():
    assert math.isinf(
        load_config_text(
            "tabular: {methods: {grpo: {loss: grpo, loss_config: {clip_ratio_c: .inf}}}}"
        )
    )


def load_config_text(text: str) -> float:
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "c.yaml"
        path.write_text(text)
        config = load_config(path)
    return config["tabular"]["methods"]["grpo"]["loss_config"]["clip_ratio_c"]


@pytest.mark.parametrize(
    "damage", ["truncated weights", "config and weights disagree", "no weights"]
)
def test_a_damaged_model_folder_is_one_line_naming_it(tiny_base, tmp_path, capsys, damage):
    import shutil

    model = tmp_path / "model"
    shutil.copytree(tiny_base, model)
    weights = next(model.glob("*.safetensors"))
    if damage == "truncated weights":
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    elif damage == "no weights":
        weights.unlink()
    else:
        config = json.loads((model / "config.json").read_text())
        config["intermediate_size"] = config["intermediate_size"] * 2
        (model / "config.json").write_text(json.dumps(config))
    code = main(["evaluate", "--model", str(model), "--out", str(tmp_path / "eval")])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and f"cannot load the model at {model} (" in err, err
