"""Every config key with a bad value is refused with the key and its allowed values named.

Two tables, both generated, so a new key is covered the day it is added:

* every field of every ``Settings`` class (the CLIs' validation), from the field's own metadata;
* every leaf of the Snakemake config schema (the pipeline's validation), from the schema.

A third test checks the two agree where they describe the same key: a value the pipeline accepts is
never refused by a CLI later, and the other way round.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from pathlib import Path
from typing import Any

import pytest
import snakemake.utils
import yaml
from snakemake.utils import validate
from snakemake_interface_common.exceptions import WorkflowError

from entropy_rl.base_model import BaseModelSettings, ModelSettings, SFTSettings
from entropy_rl.config import check_pipeline_config, load_yaml
from entropy_rl.evaluate import EvaluateSettings
from entropy_rl.losses import LossConfig, available_policy_losses, get_policy_loss
from entropy_rl.settings import Settings, allowed_values
from entropy_rl.tabular import TabularConfig
from entropy_rl.tasks import ArithmeticTask, CarryTask
from entropy_rl.tasks.dataset import DatasetTask
from entropy_rl.train import RLSettings

REPO = Path(__file__).resolve().parents[1]
SCHEMA_PATH = REPO / "workflow" / "schemas" / "config.schema.yaml"
SCHEMA = yaml.safe_load(SCHEMA_PATH.read_text())
DEFAULT_CONFIG = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
_LOAD = snakemake.utils._load_configfile
_PARSED: dict[str, Any] = {}


def _load_once(source: Any, filetype: str = "Config") -> Any:
    """snakemake's own loader, once per file: ``validate`` reads (and re-parses) the schema on
    every call; here each call gets a fresh copy of the first parse, and validates with it."""
    key = f"{filetype}:{source}"
    if key not in _PARSED:
        _PARSED[key] = _LOAD(source, filetype=filetype)
    return copy.deepcopy(_PARSED[key])


@pytest.fixture(autouse=True)
def _schema_parsed_once(monkeypatch):
    monkeypatch.setattr(snakemake.utils, "_load_configfile", _load_once)


# the config section each Settings class reads
SECTIONS: dict[str, list[type[Settings]]] = {
    "tabular": [TabularConfig],
    "task": [ArithmeticTask, CarryTask, DatasetTask],
    "base_model": [BaseModelSettings],
    "base_model.model": [ModelSettings],
    "base_model.sft": [SFTSettings],
    "train": [RLSettings],
    "evaluate": [EvaluateSettings],
}
LOSS_CONFIGS = [get_policy_loss(name).config_cls for name in available_policy_losses()]
ALL_SETTINGS = list(
    dict.fromkeys([c for classes in SECTIONS.values() for c in classes] + LOSS_CONFIGS)
)


def _bad_values(f: dataclasses.Field) -> list[Any]:
    """Values just outside a field's allowed set, of the right type and of the wrong one."""
    if "choices" in f.metadata:
        return ["no-such-option", None]
    r, integer = f.metadata["range"], f.metadata["kind"] == "integer"
    bad: list[Any] = ["fast", True]  # a string; a bool is not a number here
    step = 1 if integer else 1e-6 * max(1.0, abs(r["low"]) if math.isfinite(r["low"]) else 1.0)
    if math.isfinite(r["low"]) and r["low"] > -(2**62):
        bad.append(r["low"] if r["low_open"] else r["low"] - step)
    if math.isfinite(r["high"]) and r["high"] < 2**62:
        bad.append(r["high"] if r["high_open"] else r["high"] + (1 if integer else 1e-6))
    # YAML's .nan, .inf, -.inf (an infinity is allowed where it is the default: "off")
    bad += [2.5] if integer else [math.nan, *[v for v in (math.inf, -math.inf) if v != f.default]]
    return bad


def _settings_cases():
    for cls in ALL_SETTINGS:
        for f in dataclasses.fields(cls):
            if f.metadata:
                for value in _bad_values(f):
                    yield pytest.param(cls, f, value, id=f"{cls.__name__}.{f.name}={value!r}")


@pytest.mark.parametrize(("cls", "field", "value"), list(_settings_cases()))
def test_every_settings_field_refuses_a_bad_value_naming_key_and_range(cls, field, value):
    with pytest.raises(ValueError) as raised:
        cls.from_dict({field.name: value})
    message = str(raised.value)
    assert message.startswith(f"{cls.section}.{field.name} must be {allowed_values(field)}, got ")
    number = field.metadata.get("kind") == "number" and type(value) is int  # YAML's 1 for 1.0
    assert message.endswith(repr(float(value) if number else value))


def test_unknown_keys_are_refused_with_the_known_ones_listed():
    for cls in ALL_SETTINGS:
        with pytest.raises(ValueError, match=r"unknown key\(s\) \['stepz'\] in .*; known keys: \["):
            cls.from_dict({"stepz": 1})


# -- the schema ------------------------------------------------------------------------------


def _resolve(node: dict) -> dict:
    while "$ref" in node:
        target = SCHEMA
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def _leaves(node: dict, path: tuple[str, ...] = (), where: tuple = ()):
    """``(path, where, schema)`` of every scalar key the schema constrains (objects are walked
    into, and so are the ``if``/``then`` branches of a section whose keys depend on a value, as
    the task's on its ``kind``: ``where`` holds the section a key of a branch is tried in)."""
    node = _resolve(node)
    if node.get("type") == "object" and "properties" in node:
        for key, child in node["properties"].items():
            yield from _leaves(child, (*path, key), where)
        for branch in node.get("allOf", []):
            condition = {k: v["const"] for k, v in branch["if"]["properties"].items()}
            for key, child in branch["then"]["properties"].items():
                if key not in condition:
                    yield from _leaves(child, (*path, key), (*where, (path, condition)))
    else:
        yield path, where, node


def _schema_bad_values(node: dict) -> list[tuple[Any, str]]:
    """``(value, the schema keyword that refuses it)`` pairs for one leaf."""
    bad: list[tuple[Any, str]] = []
    if "enum" in node:
        bad.append(("no-such-option", "enum"))
    types = node.get("type")
    types = [types] if isinstance(types, str) else (types or [])
    if "integer" in types:
        bad.append((2.5, "type"))
    if "number" in types or "integer" in types:
        bad.append(("fast", "type"))
    if "string" in types:
        bad.append((3, "type"))
    values = node.get("additionalProperties")
    if "object" in types and isinstance(values, dict) and values.get("type") == "number":
        bad += [({"math500": -1}, "minimum"), ({"math500": "hot"}, "type")]  # name -> number
    elif "object" in types:  # a methods table
        bad += [({}, "minProperties"), ({"kl_cov": {"loss": "kl_cov"}}, "required")]
        bad += [({"grpo": {"loss": "no-such-loss"}}, "enum"), ({"grpo": {}}, "required")]
        bad += [({"grpo": {"loss": "grpo", "lr": 1}}, "additionalProperties")]
    if "boolean" in types:
        bad.append(("yes", "type"))
    if "array" in types:
        bad.append(([], "minItems") if node.get("minItems") else ("math500", "type"))
    for keyword, shift in [
        ("minimum", -1),
        ("exclusiveMinimum", 0),
        ("maximum", 1),
        ("exclusiveMaximum", 0),
    ]:
        if keyword in node:
            bad.append((node[keyword] + shift, keyword))
    if "pattern" in node:
        bad.append(("x; $(touch PWNED)", "pattern"))  # a shell metacharacter: no pattern allows it
    return bad


def _schema_cases():
    for path, where, node in _leaves(SCHEMA):
        branch = "".join(f"[{'.'.join(f'{k}={v}' for k, v in c.items())}]" for _, c in where)
        for value, keyword in _schema_bad_values(node):
            yield pytest.param(
                path, where, value, keyword, id=f"{'.'.join(path)}{branch}={value!r}"
            )


def _with(config: dict, path: tuple[str, ...], value: Any, where: tuple = ()) -> dict:
    config = copy.deepcopy(config)
    for section, condition in where:  # a branch's key is tried in a section of that branch alone
        parent = config
        for key in section[:-1]:
            parent = parent[key]
        parent[section[-1]] = dict(condition)
    node = config
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value
    return config


def test_the_default_config_is_valid_and_the_table_covers_the_schema():
    validate(copy.deepcopy(DEFAULT_CONFIG), str(SCHEMA_PATH))
    cases = list(_schema_cases())
    keys = {(case.values[0], repr(case.values[1])) for case in cases}
    assert len(keys) == len(list(_leaves(SCHEMA)))  # every leaf has at least one bad value
    assert len(cases) > 150


@pytest.mark.parametrize(("path", "where", "value", "keyword"), list(_schema_cases()))
def test_every_schema_key_refuses_a_bad_value_naming_key_and_rule(path, where, value, keyword):
    config = _with(DEFAULT_CONFIG, path, value, where)
    with pytest.raises(WorkflowError) as raised:
        validate(config, str(SCHEMA_PATH))
    message = str(raised.value)
    instance = "".join(f"[{key!r}]" for key in path)
    # the failing key, and the rule it broke with its bound (jsonschema quotes the schema node)
    assert f"On instance{instance}" in message  # the key itself, or a key inside it
    assert f"Failed validating {keyword!r}" in message


# -- the two agree ---------------------------------------------------------------------------


def _schema_section(dotted: str, cls: type[Settings]) -> dict:
    """The properties the schema gives the section ``cls`` reads (for a section whose keys
    depend on a value, the branch of ``cls``'s: the task's on its ``kind``)."""
    node = SCHEMA
    for key in dotted.split("."):
        node = _resolve(node["properties"][key])
    for branch in node.get("allOf", []):
        condition = branch["if"]["properties"]
        if all(getattr(cls, k, None) == v["const"] for k, v in condition.items()):
            return branch["then"]["properties"]
    return node["properties"]


FILLED_BY_THE_PIPELINE = {("tabular", "seed")}  # from the section's seeds list


def _schema_interval(node: dict) -> tuple[float, float, bool, bool]:
    low = node.get("minimum", node.get("exclusiveMinimum", -math.inf))
    high = node.get("maximum", node.get("exclusiveMaximum", math.inf))
    return low, high, "exclusiveMinimum" in node, "exclusiveMaximum" in node


def _settings_interval(f: dataclasses.Field) -> tuple[float, float, bool, bool]:
    r = f.metadata["range"]
    low = -math.inf if r["low"] <= -(2**62) else r["low"]
    high = math.inf if r["high"] >= 2**62 else r["high"]
    return low, high, r["low_open"], r["high_open"]


@pytest.mark.parametrize("section", list(SECTIONS))
def test_schema_and_settings_allow_the_same_values(section):
    for cls in SECTIONS[section]:
        properties = _schema_section(section, cls)
        for f in dataclasses.fields(cls):
            if not f.metadata:
                continue
            if (section, f.name) in FILLED_BY_THE_PIPELINE:
                assert f.name not in properties
                continue
            assert f.name in properties, f"{section}.{f.name} is validated by {cls.__name__} only"
            node = _resolve(properties[f.name])
            if "choices" in f.metadata:
                choices = set(f.metadata["choices"])
                if choices == {True, False}:
                    assert node["type"] == "boolean", (section, f.name)
                else:
                    assert choices == set(node["enum"]), (section, f.name)
            else:
                assert _settings_interval(f) == _schema_interval(node), (section, f.name)


def test_the_schema_file_is_generated_from_the_code():
    from entropy_rl.schema import schema_text

    assert SCHEMA_PATH.read_text() == schema_text(), (
        "workflow/schemas/config.schema.yaml is not what the settings classes give: "
        "run `entropy-rl schema --write` from the repository's root"
    )


def _loss_config_cases():
    shared = {f.name for f in dataclasses.fields(LossConfig)}  # every loss's: tried on grpo's
    for name in available_policy_losses():
        cls = get_policy_loss(name).config_cls
        yield pytest.param(name, "no_such_key", 1, "additionalProperties", id=f"{name}.no_such_key")
        for f in dataclasses.fields(cls):
            if f.name in shared and name != "grpo":
                continue
            for value in _bad_values(f):
                if isinstance(value, float) and not math.isfinite(value):
                    continue  # YAML's .nan/.inf: the settings class refuses them (a CLI, at start)
                yield pytest.param(name, f.name, value, None, id=f"{name}.{f.name}={value!r}")


@pytest.mark.parametrize(("loss", "key", "value", "keyword"), list(_loss_config_cases()))
def test_the_schema_refuses_a_bad_loss_config_key_or_value_by_itself(loss, key, value, keyword):
    config = copy.deepcopy(DEFAULT_CONFIG)
    config["train"]["methods"]["probe"] = {"loss": loss, "loss_config": {key: value}}
    with pytest.raises(WorkflowError) as raised:
        validate(config, str(SCHEMA_PATH))
    message = str(raised.value)
    assert "On instance['train']['methods']['probe']['loss_config']" in message
    if keyword is not None:
        assert f"Failed validating {keyword!r}" in message
    config["train"]["methods"]["probe"]["loss_config"] = {}  # the same method, nothing bad
    validate(config, str(SCHEMA_PATH))


def _advantage_config_cases():
    from entropy_rl.advantages import advantage_config_class, available_advantage_estimators

    for name in available_advantage_estimators():
        yield pytest.param(name, "no_such_key", 1, id=f"{name}.no_such_key")
        for f in dataclasses.fields(advantage_config_class(name)):
            for value in _bad_values(f):
                if isinstance(value, float) and not math.isfinite(value):
                    continue
                yield pytest.param(name, f.name, value, id=f"{name}.{f.name}={value!r}")


@pytest.mark.parametrize(("advantage", "key", "value"), list(_advantage_config_cases()))
def test_the_schema_refuses_a_bad_advantage_config_key_or_value_by_itself(advantage, key, value):
    config = copy.deepcopy(DEFAULT_CONFIG)
    method = {"loss": "grpo", "advantage": advantage, "advantage_config": {key: value}}
    config["train"]["methods"]["probe"] = method
    with pytest.raises(WorkflowError) as raised:
        validate(config, str(SCHEMA_PATH))
    assert "On instance['train']['methods']['probe']['advantage_config']" in str(raised.value)
    method["advantage_config"] = {}  # the same method, nothing bad
    validate(config, str(SCHEMA_PATH))


def test_every_method_runs_every_seed_on_every_base_model_unless_it_names_its_own():
    from entropy_rl.config import base_seeds, lm_runs

    config = load_yaml(REPO / "config" / "config.yaml")
    config["base_model"]["seeds"] = [0, 5]
    config["seeds"] = [1, 2]
    config["train"]["methods"] = {
        "grpo": {"loss": "grpo"},
        "sweep": {
            "loss": "entropy_bonus",
            "loss_config": {"coef": 0.1},
            "bases": [5],
            "seeds": [1],
        },
    }
    check_pipeline_config(config)
    assert lm_runs(config) == {"grpo": [(0, 1), (0, 2), (5, 1), (5, 2)], "sweep": [(5, 1)]}
    config["base_model"].update(source="pretrained", pretrained="Qwen/Qwen2.5-0.5B", seeds=[0])
    assert base_seeds(config) == [0]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"base_model": {"seeds": [0, 1], "source": "pretrained", "pretrained": "x/y"}},
         "a pretrained base model is one model"),
        ({"methods": {"base1": {"loss": "grpo"}}}, "named like a base model's folder"),
        ({"methods": {"sweep": {"loss": "grpo", "bases": [7]}}}, r"bases \[7\] names base models"),
        ({"base_model": {"seeds": [-1]}}, r"base_model.seeds must be a list of integers >= 0"),
    ],
)  # fmt: skip
def test_base_models_that_cannot_be_trained_or_paired_are_refused(change, message):
    config = load_yaml(REPO / "config" / "config.yaml")
    config["base_model"].update(change.get("base_model", {}))
    config["train"]["methods"].update(change.get("methods", {}))
    with pytest.raises(ValueError, match=message):
        check_pipeline_config(config)
