"""No config value reaches a shell: the schema refuses hostile values, and the rules quote every
value they paste into a command, so either defence alone stops an injection."""

from __future__ import annotations

import copy
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from .conftest import REPO

SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
DEFAULT = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
INJECTION = "Qwen/x$(touch PWNED)"


def _pretrained(value: str) -> dict:
    config = copy.deepcopy(DEFAULT)
    config["base_model"].update(source="pretrained", pretrained=value, seeds=[0])  # one model
    return config


def _set(path: tuple[str, ...], value) -> dict:
    config = copy.deepcopy(DEFAULT)
    node = config
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return config


def _method_named(name: str) -> dict:
    config = copy.deepcopy(DEFAULT)
    config["train"]["methods"][name] = {"loss": "grpo"}
    return config


HOSTILE = {
    "pretrained: command substitution": _pretrained(INJECTION),
    "pretrained: backticks": _pretrained("Qwen/`touch PWNED`"),
    "pretrained: a second command": _pretrained("Qwen/x; touch PWNED"),
    "pretrained: a quote": _pretrained("Qwen/x' && touch PWNED '"),
    "pretrained: a .. segment": _pretrained("../../outside/model"),
    "train.model": _set(("train", "model"), INJECTION),
    "task.path": _set(("task",), {"kind": "dataset", "path": "data/$(touch PWNED).jsonl"}),
    "profile ..": _set(("profile",), ".."),
    "model_name ..": _set(("model_name",), ".."),
    "a hidden profile": _set(("profile",), ".hidden"),
    "a method name": _method_named("grpo;touch PWNED"),
    "benchmark_path": _set(("evaluate", "benchmark_path"), "data/$(touch PWNED)/{name}.jsonl"),
}


@pytest.mark.parametrize("config", HOSTILE.values(), ids=HOSTILE.keys())
def test_the_schema_refuses_every_hostile_value(config):
    with pytest.raises(WorkflowError, match="Failed validating 'pattern'"):
        validate(config, str(SCHEMA))


def test_snakemake_stops_a_hostile_base_model_before_any_job(tmp_path, snakemake_run):
    result = snakemake_run(tmp_path, _pretrained(INJECTION), "--dry-run", "--printshellcmds")
    assert result.returncode != 0
    assert "Failed validating 'pattern'" in result.stderr + result.stdout
    assert not (tmp_path / "PWNED").exists()


def _shell_commands(output: str) -> list[str]:
    return [line.removeprefix("Shell command: ") for line in output.splitlines()
            if line.startswith("Shell command: ")]  # fmt: skip


def _without_schema(tmp_path: Path) -> Path:
    """A copy of the workflow whose Snakefile skips the schema: only the rules' quoting is left."""
    copy_root = tmp_path / "workflow-copy"
    shutil.copytree(REPO / "workflow", copy_root / "workflow")
    shutil.copytree(REPO / "config", copy_root / "config")
    snakefile = (REPO / "Snakefile").read_text()
    assert snakefile.count("validate(config,") == 1
    (copy_root / "Snakefile").write_text(re.sub(r"(?m)^validate\(config.*$", "", snakefile))
    return copy_root


def test_the_rules_quote_a_hostile_value_the_schema_would_refuse(tmp_path, snakemake_run):
    work = tmp_path / "work"
    work.mkdir()
    plan = snakemake_run(
        work,
        _pretrained(INJECTION),
        "--dry-run",
        "--printshellcmds",
        repo=_without_schema(tmp_path),
    )
    assert plan.returncode == 0, plan.stderr
    commands = [c for c in _shell_commands(plan.stdout) if f"{INJECTION[:6]}" in c]
    assert len(commands) > 10  # every train job, the base model's evaluation, the token view
    for command in commands:
        words = shlex.split(command)  # the shell's own word splitting, nothing run
        assert INJECTION in words or any(w.endswith("=" + INJECTION) for w in words), command
    # and run through bash (the CLI replaced by a function that prints its arguments)
    for command in commands[:3]:
        for log in re.findall(r"2?> (\S+)", command):
            (work / log).parent.mkdir(parents=True, exist_ok=True)
        script = "entropy-rl() { printf '%s\\n' \"$@\" >&3; }\n" + command
        shown = subprocess.run(
            ["bash", "-c", f"exec 3>&1\n{script}"], cwd=work, capture_output=True, text=True
        )
        assert shown.returncode == 0, shown.stderr
        assert INJECTION in shown.stdout.splitlines() or f"base={INJECTION}" in shown.stdout
    assert not (work / "PWNED").exists()


def test_a_path_with_a_space_passes_the_schema_and_reaches_the_command_whole(
    tmp_path, snakemake_run
):
    folder = "my models/Qwen 0.5B"
    validate(_pretrained(folder), str(SCHEMA))
    plan = snakemake_run(tmp_path, _pretrained(folder), "--dry-run", "--printshellcmds")
    assert plan.returncode == 0, plan.stderr
    trains = [c for c in _shell_commands(plan.stdout) if " train " in c]
    assert trains and all(f"--model '{folder}'" in c for c in trains)
    assert all(shlex.split(c)[shlex.split(c).index("--model") + 1] == folder for c in trains)
