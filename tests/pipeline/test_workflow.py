"""The Snakemake workflow: a real end-to-end run on a tiny config in a fresh clone, offline, the DAG
of every config in config/, reruns, and bad configs stopped before any job."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import matplotlib.image
import pytest
import tomllib
import yaml

from entropy_rl.config import lm_runs, load_profile
from tests.tables import same_columns

from .conftest import REPO, offline_env

TINY_MODEL = {
    "hidden_size": 32,
    "num_layers": 2,
    "num_heads": 2,
    "num_kv_heads": 1,
    "intermediate_size": 64,
}


def tiny_config(repo: Path = REPO) -> dict:
    """A study that runs every rule of the workflow in about a minute on 2 cores: ``repo``'s
    default config made small, its benchmark smoke test on the package's own samples."""
    config = yaml.safe_load((repo / "config" / "config.yaml").read_text())
    config.update(profile="tiny", seeds=[0])  # on two base models: runs pair by base and seed
    config["tabular"].update(seeds=[0, 1], steps=30)
    config["task"].update(n_terms=2, min_value=10, max_value=49, ood_n_terms=3)
    config["base_model"].update(
        model=TINY_MODEL,
        sft={
            "steps": 120,
            "batch_size": 32,
            "lr": 3e-3,
            "warmup_steps": 10,
            "train_problems": 1000,
        },
        eval_problems=16,
        threads=1,
        seeds=[0, 1],
    )
    config["train"].update(
        steps=8, prompts_per_step=4, group_size=4, mini_batches=2, lr=1e-3, max_new_tokens=24,
        checkpoint_every=4, lemma_check_every=2, eval_every=2, eval_problems=16, probe_size=4, train_problems=500,
    )  # fmt: skip
    for spec in config["train"]["methods"].values():
        spec.pop("seeds", None)
    later = {  # interventions beyond the paper: a method-level advantage, dynamic sampling, control
        "dapo": {"loss": "clip_higher", "dynamic_sampling": True},
        "dr_grpo": {"loss": "dr_grpo", "advantage": "dr_grpo"},
        "entropy_target": {"loss": "entropy_target", "loss_config": {"target": 0.5}},
    }
    config["tabular"]["methods"].update(later)
    config["train"]["methods"].update({m: {**spec, "bases": [1]} for m, spec in later.items()})
    config["evaluate"].update(
        max_new_tokens=24, heldout_problems=16, heldout_k=2, ood_problems=8, ood_k=2,
        benchmarks=["gsm8k", "omni_math"], benchmark_limit=2,
    )  # fmt: skip
    config["docs"]["update_figures"] = False
    return config


def test_a_fresh_clone_plans_the_default_study_offline(fresh_clone, snakemake_run):
    """The README's main command on a clone with nothing beside it: the default config needs no
    ../shared and no hub (its benchmark smoke test reads the package's samples)."""
    assert "../shared" not in (fresh_clone / "config" / "config.yaml").read_text()
    plan = snakemake_run(
        fresh_clone, None, "--dry-run", repo=fresh_clone, env=offline_env(fresh_clone)
    )
    assert plan.returncode == 0, plan.stderr[-3000:]
    assert _job_counts(plan.stdout + plan.stderr)["report"] == 1
    # the default runs no entropy_target method, so no controller figure is planned
    assert "figures/law_grpo.png" in plan.stdout and "entropy_target.png" not in plan.stdout


@pytest.mark.slow
def test_pipeline_runs_end_to_end_in_a_fresh_clone_offline_then_has_nothing_to_do(
    fresh_clone, snakemake_run
):
    tmp_path, env = fresh_clone, offline_env(fresh_clone)
    config = tiny_config(fresh_clone)
    first = snakemake_run(tmp_path, config, repo=fresh_clone, env=env)
    assert first.returncode == 0, first.stderr[-4000:]
    results = tmp_path / "results" / "tiny"

    analysis = json.loads((results / "analysis" / "analysis.json").read_text())
    assert {c["check"] for c in analysis["acceptance"]} and all(
        "pass" in c for c in analysis["acceptance"]
    )
    assert set(analysis["lm"]["methods"]) == set(config["train"]["methods"])
    runs = lm_runs(config)
    assert runs["grpo"] == [(0, 0), (1, 0)] and runs["dapo"] == [(1, 0)]
    for method, (base, seed) in ((m, pairs[-1]) for m, pairs in runs.items()):
        run = results / "toy" / method / f"base{base}" / f"seed{seed}"
        rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        assert [r["step"] for r in rows] == list(range(8))
        evaluation = json.loads((run / "eval" / "summary.json").read_text())
        assert {"heldout", "heldout_greedy", "ood", "benchmark/gsm8k", "benchmark_average"} <= set(
            evaluation
        )
        assert (run / "eval" / "samples" / "benchmark_gsm8k.jsonl").read_text().count("\n") == 2 * 2
        assert list(evaluation["benchmark/omni_math"]["difficulty_pass@1"]) == ["7", "8"]
    for name in [
        "theory_predicted_vs_exact",
        "collapse_grpo",
        "law_grpo",
        "methods",
        "entropy_change",
        "pass_at_k",
    ]:
        assert matplotlib.image.imread(results / "figures" / f"{name}.png").shape[0] > 200
    assert "| method |" in (results / "tables" / "methods.md").read_text()
    # the docs' tables have the columns today's code writes: a table whose code changed its
    # columns is stale until its profile runs again
    for table in sorted((results / "tables").glob("*.md")):
        included = REPO / "docs" / "tables" / table.name
        if included.exists():
            assert same_columns(table.read_text(), included.read_text()), (
                f"docs/tables/{table.name} has other columns than the code writes: "
                "rerun the default profile (snakemake --cores all)"
            )
    report = (results / "report.html").read_text()
    assert report.count("<img src='data:image/png;base64,") >= 8 and "Science acceptance" in report
    # what the run found comes first, its sentences the findings table's
    assert report.index("<h2>What this run found") < report.index("<h2>Science acceptance")
    assert "<li><strong>Entropy collapses under GRPO</strong>" in report
    findings = (results / "tables" / "findings.md").read_text()
    assert findings.startswith("On ") and "- **What does not hold here**" in findings
    # the acceptance table renders as a table: a header and one 5-cell row per check
    acceptance = report.split("<h2>Science acceptance", 1)[1].split("</table>", 1)[0]
    rows = [
        re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", r)
        for r in re.findall(r"<tr>(.*?)</tr>", acceptance)
    ]
    assert len(rows) == 1 + len(analysis["acceptance"]) and {len(r) for r in rows} == {5}, rows
    assert rows[0][0] == "check" and {r[4] for r in rows[1:]} <= {"pass", "FAIL", "inconclusive"}
    assert [r[4] == "pass" for r in rows[1:]] == [c["pass"] for c in analysis["acceptance"]]
    stamp = re.search(r"<p class='stamp'>(.*?)</p>", report).group(1)
    assert "commit: " in stamp and "config: " in stamp and "machine: " in stamp, stamp
    # this config runs the entropy_target controller, so its figure is in the report
    assert "The entropy-target controller" in report
    token_page = (results / "token_entropy.html").read_text()  # base + every method, same prompts
    for policy in ["base", *config["train"]["methods"]]:
        assert token_page.count(f"<td class='policy'>{policy}</td>") == 4, policy
    assert "Where the entropy sits, token by token" in report and "class='t fork'" in report
    for base in (0, 1):  # one SFT per base model, each with its own seed
        assert (
            (results / "benchmarks" / "base_model" / f"base{base}.tsv")
            .read_text()
            .startswith("s\t")
        )
        assert (
            json.loads((results / "toy" / f"base{base}" / "base_summary.json").read_text())[
                "base_model"
            ]["sft"]["seed"]
            == base
        )

    second = snakemake_run(tmp_path, config, repo=fresh_clone, env=env)
    assert second.returncode == 0
    assert "Nothing to be done" in second.stdout + second.stderr
    changed = subprocess.run(
        ["git", "status", "--porcelain"], cwd=fresh_clone, capture_output=True, text=True
    ).stdout
    assert changed.strip() == "?? config.yaml", (
        changed
    )  # results/ is ignored; nothing tracked moved

    # deleting one run's output reruns only what depends on it
    (results / "toy" / "kl_cov" / "base1" / "seed0" / "eval" / "summary.json").unlink()
    plan = snakemake_run(tmp_path, config, "--dry-run", repo=fresh_clone, env=env)
    jobs = _job_counts(plan.stdout + plan.stderr)
    assert jobs == {"evaluate_run": 1, "analyze": 1, "report": 1, "all": 1}, (
        plan.stdout + plan.stderr
    )
    shutil.rmtree(results / "toy" / "grpo" / "base0" / "seed0")
    jobs = _job_counts(
        snakemake_run(tmp_path, config, "--dry-run", repo=fresh_clone, env=env).stdout
    )
    assert jobs == {  # the token view samples the first run of every method
        "train_run": 1, "evaluate_run": 2, "token_entropy": 1, "analyze": 1, "report": 1, "all": 1,
    }  # fmt: skip


def _job_counts(text: str) -> dict[str, int]:
    """Job counts from Snakemake's 'Job stats' table."""
    counts = {}
    for line in text.splitlines():
        match = re.match(r"^([a-z_]+)\s+(\d+)$", line.strip())
        if match and match.group(1) != "total":
            counts[match.group(1)] = int(match.group(2))
    return counts


@pytest.mark.parametrize("profile", [None, "slurm"])
@pytest.mark.parametrize("config_file", sorted(
    str(p.relative_to(REPO / "config")) for p in (REPO / "config").glob("**/*.yaml")))  # fmt: skip
def test_every_config_in_config_dir_has_the_expected_dag(
    tmp_path, snakemake_run, config_file, profile
):
    """`snakemake -n` for every config file as it is (the GPU profiles too, on this CPU; an
    overlay with what it extends), with the local executor and with the SLURM executor profile."""
    config = load_profile(REPO / "config" / config_file)
    extra = ["--profile", str(REPO / "workflow" / "profiles" / profile)] if profile else []
    plan = snakemake_run(tmp_path, REPO / "config" / config_file, "--dry-run", *extra)
    assert plan.returncode == 0, plan.stderr[-3000:]
    jobs = _job_counts(plan.stdout + plan.stderr)
    runs = sum(len(pairs) for pairs in lm_runs(config).values())
    tab_runs = sum(
        len(spec.get("seeds", config["tabular"]["seeds"]))
        for spec in config["tabular"]["methods"].values()
    )
    assert jobs["train_run"] == runs and jobs["evaluate_run"] == runs
    assert jobs["tabular_run"] == tab_runs
    sft = config["base_model"].get("source", "sft") == "sft"
    assert jobs.get("base_model", 0) == (len(config["base_model"].get("seeds", [0])) if sft else 1)
    assert jobs["analyze"] == jobs["report"] == jobs["theory"] == 1
    assert jobs["token_entropy"] == 1


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda c: c["train"]["methods"].update(ppo={"loss": "ppo"}), "'ppo' is not one of"),
        (lambda c: c.pop("task"), "'task' is a required property"),
        (lambda c: c["train"].update(lr="fast"), "'fast' is not of type 'number'"),
        (lambda c: c["train"].update(group_size=0), "0 is less than the minimum of 2"),
        (
            lambda c: c["tabular"].update(stepz=3),
            "Additional properties are not allowed ('stepz' was unexpected)",
        ),
        # a loss's keys and ranges: the schema, generated from the loss's config class
        (
            lambda c: c["train"]["methods"]["kl_cov"].update(loss_config={"rr": 0.05}),
            "Additional properties are not allowed ('rr' was unexpected)",
        ),
        (
            lambda c: c["train"]["methods"]["clip_cov"]["loss_config"].update(r=0),
            "0 is less than or equal to the minimum of 0",
        ),
        # what only a settings class can check (one key against another), before any job too
        (
            lambda c: c["train"]["methods"]["clip_cov"]["loss_config"].update(omega_low=200.0),
            "train.methods.clip_cov.loss_config: clip_cov.omega_low (200) must be <= "
            "clip_cov.omega_high (100)",
        ),
        (
            lambda c: c["tabular"]["methods"]["grpo"].update(advantage="gpro"),
            "'gpro' is not one of",
        ),
        (lambda c: c["train"].update(template="toys"), "'toys' is not one of"),
        (
            lambda c: c["evaluate"].update(benchmark_path="data/{name}/{split}.jsonl"),
            "must hold the placeholder {name} and no other (found ['name', 'split'])",
        ),
        (lambda c: c["train"].update(lr=float("inf")), "train.lr must be in (0, inf], got inf"),
    ],
)
def test_bad_config_stops_snakemake_before_any_job(tmp_path, snakemake_run, change, message):
    config = tiny_config()
    change(config)
    result = snakemake_run(tmp_path, config, "--dry-run")
    assert result.returncode != 0
    assert message in result.stderr + result.stdout
    assert not (tmp_path / "results").exists()


def _names(requirements) -> set[str]:
    """Package names of a conda env's dependencies, its pip section included."""
    names = set()
    for requirement in requirements:
        if isinstance(requirement, dict):
            names |= _names(requirement.get("pip", []))
        elif not requirement.startswith("-"):
            names.add(re.split(r"[=<>\[ ;]", requirement, maxsplit=1)[0].lower())
    return names


def test_conda_environments_list_what_the_rules_import():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    core = {re.split(r"[=<>\[ ;]", dep, maxsplit=1)[0].lower() for dep in project["dependencies"]}
    core.discard("snakemake")  # the engine runs the rules; it is not imported by them
    for env_file in [
        REPO / "environment.yml",
        *sorted((REPO / "workflow" / "envs").glob("*.yaml")),
    ]:
        env = yaml.safe_load(env_file.read_text())
        listed = _names(env["dependencies"])
        assert core | {"torch"} <= listed, (env_file.name, sorted(core | {"torch"} - listed))
    assert "vllm" in _names(
        yaml.safe_load((REPO / "workflow" / "envs" / "gpu.yaml").read_text())["dependencies"]
    )
    assert shutil.which("bash")  # post-deploy scripts are bash
    for script in (REPO / "workflow" / "envs").glob("*.post-deploy.sh"):
        assert "pip install --no-deps -e ." in script.read_text()


def test_schema_lists_exactly_the_registered_losses_and_benchmarks():
    from entropy_rl.data.benchmarks import BENCHMARKS
    from entropy_rl.losses import available_policy_losses

    schema = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
    assert (
        sorted(schema["$defs"]["method"]["properties"]["loss"]["enum"]) == available_policy_losses()
    )
    assert schema["properties"]["evaluate"]["properties"]["benchmarks"]["items"]["enum"] == list(
        BENCHMARKS
    )
    # the figures: tests/test_figures.py (the registry, entropy_rl.figures)


def _enums(node, key: str) -> list[list]:
    """Every ``enum`` the schema gives property ``key``, wherever it stands."""
    found = []
    if isinstance(node, dict):
        for name, value in node.items():
            if name == key and isinstance(value, dict) and "enum" in value:
                found.append(value["enum"])
            found += _enums(value, key)
    return found


def test_schema_enums_of_advantages_and_templates_are_the_registries():
    from entropy_rl.advantages import available_advantage_estimators
    from entropy_rl.data import PROMPT_TEMPLATES

    schema = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
    advantages, templates = _enums(schema, "advantage"), _enums(schema, "template")
    assert len(advantages) == 3 and len(templates) == 3
    assert all(sorted(e) == available_advantage_estimators() for e in advantages)
    assert all(sorted(e) == sorted(PROMPT_TEMPLATES) for e in templates)


@pytest.mark.slow
def test_a_killed_pipeline_reruns_only_the_unfinished_jobs(tmp_path, snakemake_run):
    """kill -9 Snakemake while training runs; the next run finishes only what was unfinished."""
    import os
    import signal
    import subprocess
    import sys
    import time

    config = tiny_config()  # one base model, two methods (one with controller state to resume)
    config["base_model"]["seeds"] = [0]
    config["tabular"]["methods"] = {
        m: config["tabular"]["methods"][m] for m in ("grpo", "clip_cov")
    }
    config["train"]["methods"] = {
        "grpo": {"loss": "grpo"},
        "entropy_target": {"loss": "entropy_target", "loss_config": {"target": 0.5}},
    }
    config["train"]["steps"] = 30
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory",
               str(tmp_path), "--configfile", str(tmp_path / "config.yaml"), "--cores", "2"]  # fmt: skip
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    results = tmp_path / "results" / "tiny"
    deadline = time.time() + 300
    while time.time() < deadline and not any(
        results.glob("toy/*/base*/seed0/checkpoint/trainer_state.pt")
    ):
        time.sleep(0.1)
    os.killpg(process.pid, signal.SIGKILL)  # Snakemake and every job it started
    process.wait()
    assert not (results / "report.html").exists()
    finished = {p: p.stat().st_mtime_ns for p in results.glob("tabular/*/seed*/summary.json")}
    for summary in results.rglob("summary.json"):  # whatever exists is whole
        json.loads(summary.read_text())

    unlock = snakemake_run(
        tmp_path, config, "--unlock"
    )  # as Snakemake tells a user to after a kill
    assert unlock.returncode == 0, unlock.stderr[-3000:]
    again = snakemake_run(tmp_path, config)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resumed from step" in "".join(p.read_text() for p in results.glob("logs/train/*.log"))
    assert (results / "report.html").exists()
    assert {p: p.stat().st_mtime_ns for p in finished} == finished  # finished jobs were not rerun


def test_the_interventions_profile_compares_every_registered_loss_in_both_worlds():
    """A new intervention joins the one-protocol comparison (config/interventions.yaml)."""
    from entropy_rl.losses import available_policy_losses

    config = load_profile(REPO / "config" / "interventions.yaml")
    for world in ("train", "tabular"):
        losses = {spec["loss"] for spec in config[world]["methods"].values()}
        assert losses == set(available_policy_losses()), world
        assert any(spec.get("dynamic_sampling") for spec in config[world]["methods"].values())
    assert len(config["tabular"]["seeds"]) >= 3
    # the embedded default's world and base models: every method on every base model, paired
    default = load_profile(REPO / "config" / "config.yaml")
    assert (
        config["task"] == default["task"] and config["train"]["steps"] == default["train"]["steps"]
    )
    assert set(config["base_model"]["seeds"]) <= set(default["base_model"]["seeds"])
    assert len(config["base_model"]["seeds"]) >= 2  # an interval over base models
    assert not any(
        "bases" in spec or "seeds" in spec for spec in config["train"]["methods"].values()
    )


@pytest.mark.parametrize(
    "profile", ["paper-qwen2.5-0.5b.yaml", "paper-qwen2.5-7b.yaml", "paper-qwen2.5-32b.yaml"]
)
def test_the_paper_profiles_plan_evaluations_on_the_papers_seven_benchmarks(
    tmp_path, snakemake_run, profile
):
    from entropy_rl.data.benchmarks import PAPER_BENCHMARKS

    plan = snakemake_run(tmp_path, REPO / "config" / profile, "--dry-run", "--printshellcmds")
    assert plan.returncode == 0, plan.stderr[-3000:]
    evaluations = [
        line for line in (plan.stdout + plan.stderr).splitlines() if " evaluate " in line
    ]

    def benchmarks(line: str) -> str:
        words = shlex.split(line.removeprefix("Shell command: "))
        return words[words.index("--benchmarks") + 1]

    assert evaluations and all(
        benchmarks(line) == ",".join(PAPER_BENCHMARKS) for line in evaluations
    ), evaluations[:2]


@pytest.mark.parametrize(("engine", "launcher"), [
    ("entropy-rl", "torchrun --standalone --nproc_per_node 4 -m entropy_rl.cli train"),
    ("verl", "entropy-rl train"),
])  # fmt: skip
def test_a_train_job_with_several_gpus_runs_one_process_per_gpu(
    tmp_path, snakemake_run, engine, launcher
):
    """The suite's own trainer is launched by torchrun (FSDP across the job's GPUs); verl, which
    starts its own workers, is not."""
    config = load_profile(REPO / "config" / "paper-qwen2.5-0.5b.yaml")
    config["resources"]["train_gpus"] = 4
    config["train"]["engine"] = engine
    plan = snakemake_run(tmp_path, config, "--dry-run", "--printshellcmds")
    assert plan.returncode == 0, plan.stderr[-3000:]
    commands = [
        line.strip().removeprefix("Shell command: ")
        for line in (plan.stdout + plan.stderr).splitlines()
        if " train --config " in line
    ]
    assert commands and all(command.startswith(launcher) for command in commands), commands[:2]


def test_snakemake_lint_is_clean(snakemake_run):
    result = snakemake_run(REPO, None, "--lint")  # reads the default config, runs nothing
    assert result.returncode == 0 and "Lints for" not in result.stdout + result.stderr, (
        result.stdout + result.stderr
    )[-3000:]


@pytest.mark.parametrize("files", [["overlays/confirmation.yaml"],
                                   ["config.yaml", "overlays/confirmation.yaml"]])  # fmt: skip
def test_the_confirmation_overlay_runs_the_default_on_fresh_base_models(tmp_path, files):
    """`--configfile config/overlays/confirmation.yaml` (which extends the default), alone or laid
    over the default by hand: the default study with only its base models swapped (SFT seeds it
    was never tuned on), under its own profile."""
    import sys

    command = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
               "--directory", str(tmp_path), "--cores", "1", "--dry-run", "--configfile",
               *(str(REPO / "config" / name) for name in files)]  # fmt: skip
    plan = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert plan.returncode == 0, plan.stderr[-3000:]
    default = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    jobs = _job_counts(plan.stdout)
    assert jobs["train_run"] == sum(len(p) for p in lm_runs(default).values())
    bases = set(re.findall(r"results/confirmation/toy/base(\d+)/base_summary\.json", plan.stdout))
    assert bases == {"100", "101", "102", "103"}
    assert not set(map(int, bases)) & set(default["base_model"]["seeds"])
    assert "docs/tables/confirmation_acceptance.md" in plan.stdout
