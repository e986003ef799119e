"""Profiles as overlays: a profile names the profile it extends and holds only what differs
(``entropy_rl.config.overlay``, ``load_profile``, ``resolve_profiles``), and the Snakefile runs the
resolved config."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from entropy_rl.config import (
    OVERLAY_KEYS,
    check_pipeline_config,
    load_config,
    load_profile,
    load_yaml,
    overlay,
    resolve_profiles,
)

REPO = Path(__file__).resolve().parents[1]
PROFILES = sorted(
    str(p.relative_to(REPO / "config"))
    for p in [*(REPO / "config").glob("*.yaml"), *(REPO / "config" / "overlays").glob("*.yaml")]
    if p.name != "config.yaml"
)
SCHEMA = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_an_overlay_merges_mappings_key_by_key_and_replaces_everything_else():
    base = {"a": {"x": 1, "y": [1, 2], "z": {"p": 1}}, "b": 2, "c": {"k": 1}}
    layer = {"a": {"y": [3], "z": {"q": 2}}, "c": {"m": 2}, "d": None}
    before = yaml.safe_dump([base, layer])
    merged = overlay(base, layer, replace=["c"])
    assert merged == {"a": {"x": 1, "y": [3], "z": {"p": 1, "q": 2}}, "b": 2, "c": {"m": 2},
                      "d": None}  # fmt: skip
    assert yaml.safe_dump([base, layer]) == before  # neither input changed
    merged["a"]["z"]["p"] = 9
    assert base["a"]["z"]["p"] == 1  # nor shared with the result


def test_a_replaced_key_deep_in_the_tree_is_taken_whole():
    base = {"train": {"steps": 5, "methods": {"grpo": {"loss": "grpo"}, "kl": {"loss": "kl_cov"}}}}
    layer = {"train": {"methods": {"mine": {"loss": "grpo"}}}}
    merged = overlay(base, layer, replace=["train.methods"])
    assert merged == {"train": {"steps": 5, "methods": {"mine": {"loss": "grpo"}}}}
    assert overlay(base, layer)["train"]["methods"].keys() == {"grpo", "kl", "mine"}


def test_a_chain_of_profiles_resolves_from_the_root_relative_to_each_file(tmp_path):
    (tmp_path / "sub").mkdir()
    write(tmp_path / "root.yaml", "profile: root\ntrain: {steps: 1, lr: 0.1}\nseeds: [0]\n")
    write(tmp_path / "sub" / "mid.yaml", "extends: ../root.yaml\nprofile: mid\ntrain: {steps: 2}\n")
    leaf = write(tmp_path / "sub" / "leaf.yaml", "extends: mid.yaml\nprofile: leaf\nseeds: [3]\n")
    resolved = load_profile(leaf)
    assert resolved == {"profile": "leaf", "train": {"steps": 2, "lr": 0.1}, "seeds": [3]}
    assert not set(OVERLAY_KEYS) & set(resolved)
    # several files: each with what it extends, laid over the previous ones, then --config values
    other = write(tmp_path / "other.yaml", "train: {lr: 0.5}\n")
    assert resolve_profiles([leaf, other], {"seeds": [7]}) == {
        "profile": "leaf", "train": {"steps": 2, "lr": 0.5}, "seeds": [7]}  # fmt: skip


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("extends: 3\n", "extends must name a .yaml file"),
        ("extends: base.json\n", "extends must name a .yaml file"),
        ("extends: missing.yaml\n", "does not exist; give the path of the profile"),
        ("extends: me.yaml\n", "extends makes a cycle"),
        ("extends: base.yaml\nreplace: train\n", "replace must be a list of dotted keys"),
        ("extends: base.yaml\nreplace: ['a b']\n", "replace must be a list of dotted keys"),
        (
            "extends: base.yaml\nreplace: [task]\n",
            "replace names 'task', which this file does not set",
        ),
        ("replace: [train]\ntrain: {steps: 1}\n", "needs extends"),
    ],
)
def test_a_bad_overlay_is_one_line_naming_the_file_and_the_fix(tmp_path, text, message):
    write(tmp_path / "base.yaml", "train: {steps: 1}\n")
    me = write(tmp_path / "me.yaml", text)
    with pytest.raises(ValueError, match=message) as err:
        load_profile(me)
    assert str(me) in str(err.value) and "\n" not in str(err.value)


def test_a_longer_cycle_and_a_chain_too_deep_are_refused(tmp_path):
    write(tmp_path / "a.yaml", "extends: b.yaml\n")
    write(tmp_path / "b.yaml", "extends: a.yaml\n")
    with pytest.raises(ValueError, match=r"cycle: .*a\.yaml -> .*b\.yaml -> .*a\.yaml"):
        load_profile(tmp_path / "a.yaml")
    for i in range(10):
        write(tmp_path / f"c{i}.yaml", f"extends: c{i + 1}.yaml\n" if i < 9 else "seeds: [0]\n")
    with pytest.raises(ValueError, match="more than 8 files deep"):
        load_profile(tmp_path / "c0.yaml")


@pytest.mark.parametrize("profile", PROFILES)
def test_every_profile_is_an_overlay_that_resolves_to_a_valid_config(profile):
    """Each profile besides the default extends another and sets only what differs: it holds
    fewer keys than its resolved config, its resolved config passes the schema and every
    stage's settings, and its header's command names it."""
    path = REPO / "config" / profile
    raw = load_yaml(path)
    assert "extends" in raw, f"{profile} is not an overlay"
    resolved = load_profile(path)
    jsonschema.validate(resolved, SCHEMA)
    check_pipeline_config(resolved)

    def leaves(node):
        return sum(leaves(v) for v in node.values()) if isinstance(node, dict) else 1

    assert leaves({k: v for k, v in raw.items() if k not in OVERLAY_KEYS}) < leaves(resolved)
    assert f"--configfile config/{profile}" in path.read_text()
    assert load_config(path) == resolved  # the CLI reads a profile as the pipeline does


def test_snakemake_runs_an_overlay_passed_as_it_is_and_names_a_bad_one(tmp_path):
    """The Snakefile resolves the files given with --configfile: the saturating overlay (another
    task kind, its carry keys replaced) plans its own runs, and --config still wins."""
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
               "--directory", str(tmp_path), "--cores", "1", "--dry-run"]  # fmt: skip
    plan = subprocess.run(
        [*command, "--configfile", str(REPO / "config" / "saturating.yaml"),
         "--config", "profile=mine"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert plan.returncode == 0, plan.stderr[-3000:]
    assert "results/mine/toy/grpo/base0/seed2/" in plan.stdout  # the overlay's seeds [0, 1, 2]
    assert "results/mine/toy/grpo/base1/" not in plan.stdout  # and its one base model
    assert "results/saturating/" not in plan.stdout  # --config profile=mine won
    bad = write(tmp_path / "bad.yaml", "extends: nowhere.yaml\nprofile: bad\n")
    refused = subprocess.run([*command, "--configfile", str(bad)],
                             capture_output=True, text=True, timeout=300)  # fmt: skip
    assert refused.returncode != 0
    assert "extends names 'nowhere.yaml'" in refused.stdout + refused.stderr


def test_entropy_rl_profile_prints_the_config_snakemake_runs(tmp_path):
    """`entropy-rl profile FILE...`: the resolved config as YAML, the same as the Snakefile's."""
    files = [REPO / "config" / "config.yaml", REPO / "config" / "paper-qwen2.5-32b.yaml"]
    shown = subprocess.run([sys.executable, "-m", "entropy_rl.cli", "profile", *map(str, files)],
                           capture_output=True, text=True, timeout=120)  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    config = yaml.safe_load(shown.stdout)
    assert config == resolve_profiles(files)
    assert config["train"]["methods"]["kl_cov"]["loss_config"] == {"k": 2.0e-4, "beta": 1.0}
    assert "min_value" not in config["task"]  # the carry world's keys replaced, not inherited
    bad = write(tmp_path / "bad.yaml", "extends: config.yaml\ntrain: {lr: fast}\n")
    write(tmp_path / "config.yaml", (REPO / "config" / "config.yaml").read_text())
    refused = subprocess.run([sys.executable, "-m", "entropy_rl.cli", "profile", str(bad)],
                             capture_output=True, text=True, timeout=120)  # fmt: skip
    assert refused.returncode == 2 and "train" in refused.stderr and "fast" in refused.stderr
