"""Reading configs: YAML files, sections of the pipeline config, and ``key=value`` overrides."""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from entropy_rl.settings import mapping

__all__ = [
    "BASE_DIR",
    "LM_RUN_DIR",
    "OVERLAY_KEYS",
    "SECTIONS",
    "TABULAR_RUN_DIR",
    "base_seeds",
    "check_pipeline_config",
    "lm_runs",
    "load_config",
    "load_profile",
    "load_yaml",
    "method_seeds",
    "overlay",
    "parse_overrides",
    "resolve_profiles",
    "run_section",
    "select_method",
]


# the top-level keys of a pipeline config (the schema's properties: a test checks they agree)
SECTIONS = ("profile", "model_name", "seeds", "conda_env", "theory", "tabular", "resources", "task",
            "base_model", "train", "evaluate", "docs")  # fmt: skip


def load_yaml(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A YAML mapping from ``path`` (``yaml.safe_load``: plain data, no Python objects); a missing
    file, text that is not UTF-8 or not YAML, or a non-mapping is one line naming the file."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(
            f"config file {p} does not exist; check the path (relative to {Path.cwd()})"
        )
    try:
        data = yaml.safe_load(p.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as err:
        raise ValueError(
            f"config file {p} is not UTF-8 text ({err.reason} at byte {err.start})"
        ) from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ValueError(f"config file {p} is not valid YAML: {problem}{where}") from None
    except RecursionError:
        raise ValueError(f"config file {p} is nested too deeply to be a config") from None
    if not isinstance(data, dict):
        raise ValueError(f"config file {p} must hold a YAML mapping, got {type(data).__name__}")
    return data


# The keys with which a profile lays itself over another config file; they are read and removed
# before the config is validated, so the schema and the stages never see them.
OVERLAY_KEYS = ("extends", "replace")
_MAX_EXTENDS = 8  # the longest chain of profiles a config may extend through
_DOTTED = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*(\.[A-Za-z_][A-Za-z0-9_.-]*)*")


def overlay(
    base: Mapping[str, Any], layer: Mapping[str, Any], replace: Sequence[str] = ()
) -> dict[str, Any]:
    """``layer`` laid over ``base``, as Snakemake merges config files: mappings merged key by key,
    any other value (a list, a number, ``null``) replacing the base's; each dotted path in
    ``replace`` (e.g. ``train.methods``) is taken whole from ``layer``, nothing of the base's kept
    under it. Returns a new mapping; neither argument is changed."""
    whole = {tuple(path.split(".")) for path in replace}

    def merge(under: Any, over: Any, at: tuple[str, ...]) -> Any:
        if at in whole or not isinstance(under, Mapping) or not isinstance(over, Mapping):
            return copy.deepcopy(over)
        merged = copy.deepcopy(dict(under))
        for key, value in over.items():
            merged[key] = merge(under.get(key), value, (*at, str(key)))
        return merged

    return merge(base, layer, ())


def _profile_layer(path: Path) -> tuple[dict[str, Any], Path | None, list[str]]:
    """One profile file: its settings, the file it extends (resolved against its own folder) and
    the sections it replaces whole, each checked, an error naming the file and the fix."""
    data = load_yaml(path)
    extends, replace = data.pop("extends", None), data.pop("replace", [])
    base = None
    if extends is not None:
        if not isinstance(extends, str) or not extends.endswith((".yaml", ".yml")):
            raise ValueError(
                f"config file {path}: extends must name a .yaml file (relative to {path.parent}), "
                f"got {extends!r}"
            )
        base = path.parent / extends
        if not base.is_file():
            raise ValueError(
                f"config file {path}: extends names {extends!r}, but {base} does not exist; "
                "give the path of the profile this one lays itself over, relative to this file"
            )
    if not isinstance(replace, list) or not all(
        isinstance(key, str) and _DOTTED.fullmatch(key) for key in replace
    ):
        raise ValueError(
            f"config file {path}: replace must be a list of dotted keys such as "
            f"[task, train.methods], got {replace!r}"
        )
    for key in replace:
        node: Any = data
        for part in key.split("."):
            node = node.get(part) if isinstance(node, Mapping) else None
        if node is None:
            raise ValueError(
                f"config file {path}: replace names {key!r}, which this file does not set; "
                f"set {key} here (it replaces the extended profile's whole) or remove it from replace"
            )
    if replace and base is None:
        raise ValueError(
            f"config file {path}: replace {replace!r} needs extends: a profile to replace in"
        )
    return data, base, replace


def _chain(path: str | os.PathLike[str]) -> list[tuple[dict[str, Any], list[str]]]:
    """``path`` and the files it extends, root last, each as (settings, replaced keys)."""
    chain: list[tuple[dict[str, Any], list[str]]] = []
    seen: list[Path] = []
    current: Path | None = Path(path)
    while current is not None:
        if current.resolve() in seen:
            raise ValueError(
                f"config file {path}: extends makes a cycle: "
                + " -> ".join(str(p) for p in [*seen, current.resolve()])
            )
        if len(seen) == _MAX_EXTENDS:
            raise ValueError(
                f"config file {path}: extends goes more than {_MAX_EXTENDS} files deep"
            )
        seen.append(current.resolve())
        data, current, replace = _profile_layer(current)
        chain.append((data, replace))
    return chain


def load_profile(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A pipeline config file with everything it extends: a profile may name ``extends: <file>``
    (relative to itself) and hold only what differs, laid over that file's own resolved config
    by :func:`overlay`, with ``replace: [dotted keys]`` for sections it replaces whole (a paper
    profile's task, which shares no key with the carry world's). Chains of up to 8 files;
    a cycle is an error naming the files."""
    return _laid(_chain(path))


def _laid(chain: list[tuple[dict[str, Any], list[str]]]) -> dict[str, Any]:
    """A chain of profiles (:func:`_chain`) laid over each other from its root."""
    resolved: dict[str, Any] = {}
    for data, replace in reversed(chain):
        resolved = overlay(resolved, data, replace)
    return resolved


def resolve_profiles(
    paths: Sequence[str | os.PathLike[str]], overrides: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The pipeline config of ``snakemake --configfile a b --config key=value``: each file with
    what it extends (:func:`load_profile`), laid over the previous ones in order (the keys that
    it or a file it extends replaces taken whole), then the ``--config`` values."""
    resolved: dict[str, Any] = {}
    for path in paths:
        chain = _chain(path)  # each file read once
        replace = [key for _, keys in chain for key in keys]
        resolved = overlay(resolved, _laid(chain), replace)
    return overlay(resolved, dict(overrides or {}))


def load_config(path: str | os.PathLike[str], bare: str | None = None) -> dict[str, Any]:
    """A config file for the CLI, checked as Snakemake checks a pipeline config: YAML, only the
    known top-level keys (:data:`SECTIONS`; a misspelt ``taks:`` is an error, not a default task),
    and every section's settings (:func:`check_pipeline_config`). Any problem is one line naming
    the file and the key. A profile that extends another is read with it (:func:`load_profile`).
    A file that holds none of the sections is section ``bare`` itself, where a command allows that
    (``entropy-rl tabular`` reads a bare ``tabular:`` section)."""
    config = load_profile(path)
    if bare is not None and not any(key in SECTIONS for key in config):
        config = {bare: config}
    unknown = sorted(str(key) for key in config if key not in SECTIONS)
    if unknown:
        raise ValueError(
            f"config file {path}: unknown top-level key(s) {unknown}; known keys: {', '.join(SECTIONS)}"
        )
    try:
        check_pipeline_config(config)
    except ValueError as err:
        raise ValueError(f"config file {path}: {err}") from None
    return config


def parse_overrides(pairs: list[str] | None) -> dict[str, Any]:
    """``["r=0.1", "band=strict"]`` → ``{"r": 0.1, "band": "strict"}`` (values parsed as YAML)."""
    values: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"override {pair!r} must look like key=value")
        values[key.strip()] = yaml.safe_load(raw)
    return values


# run settings a method entry may set for itself (besides loss, loss_config, seeds and bases)
METHOD_KEYS = (
    "advantage", "advantage_config", "dynamic_sampling", "reward_kl_coef", "reward_kl_estimator",
)  # fmt: skip
# what a method entry may hold: its loss, the loss's settings, its own seeds and base models
RUN_KEYS = ("loss", "loss_config", "seeds", "bases")

# Where runs live, one template each (``str.format`` fields; in a Snakemake rule the same fields are
# its wildcards): base model ``b`` (SFT seed ``b``) under results/<profile>/<model_name>/, an RL run
# of a method on a base model and seed beside it, a tabular run under results/<profile>/tabular/.
BASE_DIR = "base{base}"
LM_RUN_DIR = "{method}/base{base}/seed{seed}"
TABULAR_RUN_DIR = "{method}/seed{seed}"
# a method may not be named like a base model's folder
_RESERVED_METHOD = re.compile(r"base[0-9]*")


def select_method(methods: dict[str, Any], name: str, where: str) -> dict[str, Any]:
    """The method ``name`` of a ``methods:`` mapping; an unknown name lists the known ones."""
    methods = mapping(methods, where)
    if name not in methods:
        raise ValueError(
            f"unknown method {name!r} in {where}; known methods: {', '.join(sorted(methods))}"
        )
    method = mapping(methods[name], f"{where}.{name}")
    if "loss" not in method:
        raise ValueError(f"{where}.{name} must name its registered loss with `loss:`")
    unknown = sorted(str(key) for key in set(method) - {*RUN_KEYS, *METHOD_KEYS})
    if unknown:
        raise ValueError(
            f"unknown key(s) {unknown} in {where}.{name}; a method may set "
            f"{', '.join([*RUN_KEYS, *METHOD_KEYS])}"
        )
    method["loss_config"] = mapping(method.get("loss_config"), f"{where}.{name}.loss_config")
    for key in ("seeds", "bases"):
        _check_seeds(method.get(key, [0]), f"{where}.{name}.{key}")
    return method


def _check_seeds(seeds: Any, where: str) -> None:
    """A seeds list: one or more integers >= 0."""
    if (
        not isinstance(seeds, list)
        or not seeds
        or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds)
    ):
        raise ValueError(f"{where} must be a list of integers >= 0, got {seeds!r}")


def _check_bases(config: dict[str, Any]) -> None:
    """``base_model.seeds`` and each method's ``bases:``: SFT seeds, a method's among the config's,
    and no method named like a base model's folder."""
    section = mapping(config.get("base_model"), "base_model")
    _check_seeds(section.get("seeds", [0]), "base_model.seeds")
    if section.get("source", "sft") == "pretrained" and len(section.get("seeds", [0])) > 1:
        raise ValueError(
            f"base_model.seeds {section['seeds']!r}: a pretrained base model is one model; "
            "remove base_model.seeds or set base_model.source: sft"
        )
    train = config.get("train")
    methods = train.get("methods") if isinstance(train, dict) else None
    if not isinstance(methods, dict):
        return
    # a stage's config (train.yaml) holds no base_model section: its bases were checked with it
    known = base_seeds(config) if "base_model" in config else None
    for name, spec in methods.items():
        if isinstance(name, str) and _RESERVED_METHOD.fullmatch(name):
            raise ValueError(
                f"train.methods.{name}: a method may not be named like a base model's folder "
                "(base, base0, base1, ...); choose another name"
            )
        bases = spec.get("bases") if isinstance(spec, dict) else None
        if known is not None and isinstance(bases, list) and not set(bases) <= set(known):
            raise ValueError(
                f"train.methods.{name}.bases {bases!r} names base models that base_model.seeds "
                f"{known!r} does not train; use some of {known!r}"
            )


def method_seeds(methods: dict[str, Any], default_seeds: list[int]) -> dict[str, list[int]]:
    """Seeds of each method: its own ``seeds:`` list, else the section's default."""
    return {name: list(spec.get("seeds", default_seeds)) for name, spec in methods.items()}


def base_seeds(config: dict[str, Any]) -> list[int]:
    """The base models of a pipeline config, by SFT seed: ``base_model.seeds`` (default ``[0]``).
    A pretrained base model is one model, base 0."""
    section = config.get("base_model") or {}
    if section.get("source", "sft") == "pretrained":
        return [0]
    return list(section.get("seeds", [0]))


def lm_runs(config: dict[str, Any]) -> dict[str, list[tuple[int, int]]]:
    """Every RL run of a pipeline config as ``{method: [(base, seed), ...]}``: each method runs
    each of its seeds on each of its base models (its own ``bases:`` and ``seeds:``, else every
    base model and the top-level ``seeds``), so methods that share a base and seed are paired."""
    bases, seeds = base_seeds(config), config.get("seeds", [0])
    return {
        name: [(b, s) for b in spec.get("bases", bases) for s in spec.get("seeds", seeds)]
        for name, spec in config["train"]["methods"].items()
    }


def run_section(section: dict[str, Any], method: str | None, where: str) -> dict[str, Any]:
    """The settings of one run: a config section without its ``methods:`` and ``seeds:`` lists,
    with ``loss``, ``loss_config`` and any of ``METHOD_KEYS`` taken from method ``method``."""
    settings = mapping(section, where)
    methods = settings.pop("methods", {})
    settings.pop("seeds", None)
    if method is not None:
        spec = select_method(methods, method, f"{where}.methods")
        settings.update(loss=spec["loss"], loss_config=dict(spec.get("loss_config", {})))
        settings.update({key: spec[key] for key in METHOD_KEYS if key in spec})
    return settings


def check_pipeline_config(config: dict[str, Any]) -> None:
    """Build every stage's settings from a pipeline config, as each stage's command will, so a bad
    value fails before any job: every method of ``train`` and ``tabular`` (its loss, each
    ``loss_config`` key and value, its advantage), the task, the base model and the evaluation.

    The error names where the value is, e.g. ``train.methods.kl_cov.loss_config: unknown key(s)
    ['rr'] in kl_cov; known keys: [...]``; the allowed values come from the settings classes
    themselves (:mod:`entropy_rl.settings`), not from a copy.
    """
    from entropy_rl.base_model import BaseModelSettings
    from entropy_rl.evaluate import EvaluateSettings
    from entropy_rl.losses import make_loss_config
    from entropy_rl.tabular import TabularConfig
    from entropy_rl.tasks import make_task
    from entropy_rl.train import RLSettings

    config = mapping(config, "the config")
    _check_seeds(config.get("seeds", [0]), "seeds")
    _check_bases(config)
    for key in ("profile", "model_name", "conda_env"):
        if key in config and not isinstance(config[key], str):
            raise ValueError(f"{key} must be a string, got {config[key]!r}")
    for key in ("theory", "resources", "docs"):  # the pipeline's own (the schema checks their keys)
        mapping(config.get(key), key)
    make_task(config.get("task"))
    BaseModelSettings.from_dict(config.get("base_model"))
    EvaluateSettings.from_dict(config.get("evaluate"))
    for section, settings_class in (("train", RLSettings), ("tabular", TabularConfig)):
        if section not in config:
            continue
        spec = mapping(config[section], section)
        methods = mapping(spec.get("methods"), f"{section}.methods")
        try:  # the section's own keys first, so their errors name the section, not a method
            settings_class.from_dict(run_section(spec, None, section))
        except ValueError as err:
            raise ValueError(f"{section}: {err}") from None
        for name in methods:
            if not isinstance(name, str):
                raise ValueError(
                    f"{section}.methods: a method's name must be a string, got {name!r}"
                )
            where = f"{section}.methods.{name}"
            method = select_method(methods, name, f"{section}.methods")
            try:
                make_loss_config(method["loss"], method.get("loss_config"))
            except ValueError as err:
                raise ValueError(f"{where}.loss_config: {err}") from None
            try:
                settings_class.from_dict(run_section(spec, name, section))
            except ValueError as err:
                raise ValueError(f"{where}: {err}") from None
