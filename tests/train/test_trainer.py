"""The RL trainer: schema, determinism, crash-and-resume, NaN stops, bad input."""

from __future__ import annotations

import dataclasses
import json
import math
import shutil

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from entropy_rl import step as step_module
from entropy_rl.cli import main
from entropy_rl.config import run_section
from entropy_rl.io import read_jsonl
from entropy_rl.losses import get_policy_loss
from entropy_rl.losses.interventions import adaptive_coef, next_coef
from entropy_rl.tasks import ArithmeticTask
from entropy_rl.train import NonFiniteError, RLSettings, train
from entropy_rl.train import loop as loop_module
from entropy_rl.train.batch import policy_forward
from entropy_rl.train.loop import RunChangedError

from .conftest import TINY_TASK, rl_config, write_config

TIMINGS = {"time_rollout_s", "time_update_s", "tokens_per_s"}
SCHEMA = (
    "step", "entropy", "reward_mean", "accuracy", "response_length", "cov_mean", "cov_selected_frac",
    "entropy_change", "entropy_change_predicted", "pg_clipfrac", "approx_kl", "grad_norm", "lr",
    "time_rollout_s", "time_update_s", "tokens_per_s",
)  # fmt: skip


def settings(model, method="grpo", **overrides) -> RLSettings:
    return RLSettings.from_dict(
        run_section(rl_config(model, **overrides)["train"], method, "train")
    )


def without_timings(rows):
    return [{k: v for k, v in row.items() if k not in TIMINGS} for row in rows]


def assert_same_run(rows, others, rel: float, abs: float) -> None:
    """The same metrics row by row (timings aside): floats to a tolerance, the rest exactly."""
    for a, b in zip(without_timings(rows), without_timings(others), strict=True):
        assert a.keys() == b.keys()
        for key, value in a.items():
            if isinstance(value, float):
                assert b[key] == pytest.approx(value, rel=rel, abs=abs), key
            else:
                assert b[key] == value, key


@pytest.mark.parametrize(
    "method",
    ["grpo", "kl_cov", "clip_cov", "entropy_bonus", "entropy_target", "dapo", "dr_grpo", "siren",
     "lp_reg", "aepo"],
)  # fmt: skip
def test_every_method_trains_and_logs_the_metrics_schema(tiny_base, tmp_path, method):
    rows = train(settings(tiny_base, method), tmp_path, ArithmeticTask(**TINY_TASK))
    assert [row["step"] for row in rows] == [0, 1, 2, 3]
    for key in SCHEMA:
        assert key in rows[0], key
    assert (
        rows[0]["entropy_change"] is not None and rows[1]["entropy_change"] is None
    )  # every 2 steps
    assert "val_accuracy" in rows[0] and "val_accuracy" in rows[3]
    assert all(0 < row["entropy"] < 5 for row in rows)
    # the same policy's entropy on the validation problems: its own samples, another prompt mix
    for row in (rows[0], rows[3]):
        assert 0.2 * row["entropy"] < row["val_entropy"] < 5 * row["entropy"]
    assert read_jsonl(tmp_path / "metrics.jsonl") == json.loads(json.dumps(rows))
    assert (tmp_path / "model" / "config.json").is_file() and (tmp_path / "checkpoint").is_dir()


def test_aepo_redraws_the_steps_first_prompts_at_its_temperature(tiny_base, tmp_path, monkeypatch):
    """AEPO's extra draw: a quarter of the step's prompts (the first, at least one) at the
    temperature its controller set from the previous step's entropy (the first step: hot)."""
    calls = []
    real = loop_module._rollout

    def spy(*args, **kwargs):
        groups = real(*args, **kwargs)
        calls.append((args, kwargs, len(groups.rewards)))
        return groups

    monkeypatch.setattr(loop_module, "_rollout", spy)
    rows = train(settings(tiny_base, "aepo", steps=3), tmp_path, ArithmeticTask(**TINY_TASK))
    tempered = [(args, kwargs, n) for args, kwargs, n in calls if kwargs.get("tempered")]
    assert len(tempered) == 3  # one extra draw a step
    for (args, _, n), row, before in zip(tempered, rows, [None, *rows], strict=False):
        temperature, prompts = args[5], args[6]
        expected = 1.2 if before is None or before["entropy"] <= 1.0 else 0.8
        assert temperature == row["resample_temperature"] == expected
        assert prompts == 1 and n == 4  # max(1, 4 prompts // 4), G = 4 responses
        assert 0 <= row["resampled"] <= 4


@pytest.mark.slow  # compiling the model takes seconds
def test_a_compiled_update_trains_as_the_eager_one(tiny_base, tmp_path):
    """train.compile: the update's passes run through torch.compile (the sampler keeps the eager
    model): the same run to float rounding, and the saved model loads as any other."""
    task = ArithmeticTask(**TINY_TASK)
    eager = train(settings(tiny_base, "grpo", steps=2), tmp_path / "eager", task)
    compiled = train(settings(tiny_base, "grpo", steps=2, compile=True), tmp_path / "c", task)
    assert_same_run(eager, compiled, rel=1e-4, abs=1e-5)
    saved = AutoModelForCausalLM.from_pretrained(tmp_path / "c" / "model").state_dict()
    assert not any(key.startswith("_orig_mod") for key in saved)


def test_same_config_and_seed_give_identical_metrics(tiny_base, tmp_path):
    first = train(settings(tiny_base, "kl_cov"), tmp_path / "a", ArithmeticTask(**TINY_TASK))
    second = train(settings(tiny_base, "kl_cov"), tmp_path / "b", ArithmeticTask(**TINY_TASK))
    assert without_timings(first) == without_timings(second)
    other = train(
        settings(tiny_base, "kl_cov", seed=1), tmp_path / "c", ArithmeticTask(**TINY_TASK)
    )
    assert without_timings(other) != without_timings(first)


class Killed(Exception):
    pass


@pytest.mark.parametrize(
    "method", ["clip_cov", "entropy_target", "adaptive_entropy", "kl_ref"]
)  # random picks; controller state; the reference model
def test_a_run_killed_after_a_checkpoint_resumes_to_identical_metrics(tiny_base, tmp_path, method):
    config = settings(tiny_base, method, steps=6)
    task = ArithmeticTask(**TINY_TASK)
    uninterrupted = train(config, tmp_path / "full", task)

    def die_at_step_3(row):
        if row["step"] == 3:
            raise Killed  # after the checkpoint at 2 steps, with step 3's row already logged

    with pytest.raises(Killed):
        train(config, tmp_path / "crash", task, on_step=die_at_step_3)
    assert [r["step"] for r in read_jsonl(tmp_path / "crash" / "metrics.jsonl")] == [0, 1, 2, 3]
    resumed = train(config, tmp_path / "crash", task, resume=True)
    assert without_timings(resumed) == without_timings(uninterrupted)
    full = AutoModelForCausalLM.from_pretrained(tmp_path / "full" / "model").state_dict()
    again = AutoModelForCausalLM.from_pretrained(tmp_path / "crash" / "model").state_dict()
    assert all(torch.equal(full[name], again[name]) for name in full)


def test_an_existing_run_is_not_overwritten_without_resume(tiny_base, tmp_path):
    train(settings(tiny_base, steps=1), tmp_path, ArithmeticTask(**TINY_TASK))
    with pytest.raises(ValueError, match="already holds a run; pass --resume"):
        train(settings(tiny_base, steps=1), tmp_path, ArithmeticTask(**TINY_TASK))


def test_resume_never_continues_a_checkpoint_of_other_settings(tiny_base, tmp_path, capsys):
    task = ArithmeticTask(**TINY_TASK)
    old = train(settings(tiny_base, steps=2), tmp_path / "run", task)
    fresh = train(settings(tiny_base, steps=2, lr=3e-3), tmp_path / "fresh", task)
    kept = {p: p.read_bytes() for p in (tmp_path / "run").rglob("*") if p.is_file()}
    # another lr: stop, name what differs, remove nothing
    with pytest.raises(
        RunChangedError, match=r"settings\.lr: 0\.001 -> 0\.003\); nothing was removed"
    ):
        train(settings(tiny_base, steps=2, lr=3e-3), tmp_path / "run", task, resume=True)
    assert {p: p.read_bytes() for p in (tmp_path / "run").rglob("*") if p.is_file()} == kept
    # Snakemake reruns a job whose config changed (--restart-if-changed): a new run from step 0
    rerun = train(settings(tiny_base, steps=2, lr=3e-3), tmp_path / "run", task, resume=True,
                  restart_if_changed=True)  # fmt: skip
    assert "the settings changed (settings.lr: 0.001 -> 0.003)" in capsys.readouterr().err
    assert without_timings(rerun) == without_timings(fresh) != without_timings(old)
    # more steps on the same settings is a continuation; a changed task is another run
    longer = train(settings(tiny_base, steps=3, lr=3e-3), tmp_path / "run", task, resume=True)
    assert "changed" not in capsys.readouterr().err
    assert without_timings(longer[:2]) == without_timings(fresh) and len(longer) == 3
    other_task = ArithmeticTask(**{**TINY_TASK, "canonical_fraction": 0.9})
    with pytest.raises(RunChangedError, match=r"task\.canonical_fraction"):
        train(settings(tiny_base, steps=3, lr=3e-3), tmp_path / "run", other_task, resume=True)


def test_resume_continues_whatever_path_names_the_base_model_and_wherever_it_was_copied(
    tiny_base, tmp_path, monkeypatch
):
    task = ArithmeticTask(**TINY_TASK)
    for run in ("reference", "run"):
        train(settings(tiny_base, steps=2), tmp_path / run, task)
    full = train(settings(tiny_base, steps=3), tmp_path / "reference", task, resume=True)
    # the base model copied elsewhere (new file times), named by a relative path with ./
    copy = tmp_path / "elsewhere" / "base"
    shutil.copytree(tiny_base, copy)
    monkeypatch.chdir(tmp_path)
    resumed = train(settings("./elsewhere/base", steps=3), tmp_path / "run", task, resume=True)
    assert without_timings(resumed) == without_timings(full)
    # a base model whose weights differ is another run
    weights = next(copy.glob("*.safetensors"))
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    with pytest.raises(RunChangedError, match="base_model"):
        train(settings("./elsewhere/base", steps=4), tmp_path / "run", task, resume=True)


def _poisoned_loss(kind: str, at_call: int):
    real = get_policy_loss("grpo")
    calls = {"n": 0}

    def loss_fn(logp, old_logp, advantages, mask, config, **extras):
        loss, metrics = real(logp, old_logp, advantages, mask, config, **extras)
        calls["n"] += 1
        if calls["n"] == at_call:
            if kind == "loss":
                loss = loss * float("nan")
            else:  # value unchanged, gradient NaN: d/dx sqrt(|x|) is inf at 0, times 0
                loss = loss + 0.0 * (logp - logp.detach()).abs().sqrt().sum()
        return loss, metrics

    return dataclasses.replace(real, fn=loss_fn)  # still a registered loss, the function poisoned


@pytest.mark.parametrize(
    ("kind", "message"),
    [("loss", "the policy loss is nan"), ("grad", "the gradient of .* has NaN/inf")],
)
def test_non_finite_loss_or_gradient_stops_the_run_and_keeps_the_checkpoint(
    tiny_base, tmp_path, monkeypatch, kind, message
):
    # two mini-batches per step: the 5th loss call is step 2's first update, after the checkpoint at 2
    monkeypatch.setattr(
        loop_module, "get_policy_loss", lambda name: _poisoned_loss(kind, at_call=5)
    )
    with pytest.raises(NonFiniteError, match=rf"^step 2: {message}"):
        train(settings(tiny_base, steps=4), tmp_path, ArithmeticTask(**TINY_TASK))
    state = torch.load(tmp_path / "checkpoint" / "trainer_state.pt", weights_only=False)
    assert state["step"] == 2
    AutoModelForCausalLM.from_pretrained(tmp_path / "checkpoint")  # intact and loadable


class _PoisonedModels:
    """``AutoModelForCausalLM`` whose models' logits turn NaN once ``poisoned`` is set.

    ``during`` picks where: "rollout" (every forward pass, so sampling meets it first) or "update"
    (only the forward passes that build a gradient).
    """

    def __init__(self, during: str) -> None:
        self.poisoned = False
        self.during = during

    def from_pretrained(self, *args, **kwargs):
        model = AutoModelForCausalLM.from_pretrained(*args, **kwargs)

        def hook(module, inputs, output):
            if self.poisoned and (self.during == "rollout" or torch.is_grad_enabled()):
                return output * float("nan")
            return output

        model.lm_head.register_forward_hook(hook)
        return model


@pytest.mark.parametrize(
    ("during", "message"),
    [
        ("rollout", "the model's logits are NaN/inf at generated token 1"),
        ("update", "the policy loss is nan"),
    ],
)
def test_nan_logits_stop_the_run_at_their_step_and_keep_the_checkpoint(
    tiny_base, tmp_path, monkeypatch, during, message
):
    models = _PoisonedModels(during)
    monkeypatch.setattr(  # the trainer's base model, with a hook on its logits
        loop_module,
        "load_model",
        lambda path, dtype=torch.float32: models.from_pretrained(path, dtype=dtype),
    )

    def poison_after_step_1(row):
        models.poisoned = row["step"] == 1 or models.poisoned

    with pytest.raises(NonFiniteError, match=rf"^step 2: {message}"):
        train(
            settings(tiny_base, steps=4),
            tmp_path,
            ArithmeticTask(**TINY_TASK),
            on_step=poison_after_step_1,
        )
    state = torch.load(tmp_path / "checkpoint" / "trainer_state.pt", weights_only=False)
    assert state["step"] == 2
    assert [row["step"] for row in read_jsonl(tmp_path / "metrics.jsonl")] == [0, 1]
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "checkpoint")  # intact and loadable
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_cli_runs_a_method_and_resumes(tiny_base, tmp_path, capsys):
    config = write_config(tmp_path / "config.yaml", rl_config(tiny_base, steps=2))
    out = tmp_path / "run"
    args = [
        "train",
        "--config",
        str(config),
        "--method",
        "kl_cov",
        "--seed",
        "3",
        "--out",
        str(out),
    ]
    assert main(args) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["method"] == "kl_cov" and summary["steps"] == 2
    assert json.loads((out / "config.json").read_text())["train"]["seed"] == 3
    assert main([*args, "--resume"]) == 0


@pytest.mark.parametrize(
    ("overrides", "args", "message"),
    [
        (
            {},
            ["--method", "ppo"],
            "unknown method 'ppo' in train.methods; known methods: adaptive_entropy, aepo, clip_cov, dapo, dr_grpo, entropy_bonus, entropy_target, grpo, kl_cov, kl_ref, lp_reg, passk, reinforce_pp, siren",
        ),
        (
            {"group_size": 0},
            ["--method", "grpo"],
            "train.group_size must be an integer in [2, inf], got 0",
        ),
        (
            {"group_size": -4},
            ["--method", "grpo"],
            "train.group_size must be an integer in [2, inf], got -4",
        ),
        ({"lr": 0.0}, ["--method", "grpo"], "train.lr must be in (0, inf], got 0.0"),
        ({"lr": -1e-4}, ["--method", "grpo"], "train.lr must be in (0, inf], got -0.0001"),
        (
            {"model": "/no/such/model"},
            ["--method", "grpo"],
            "train.model = '/no/such/model' is not a saved model folder",
        ),
        ({"warmup": 3}, ["--method", "grpo"], "unknown key(s) ['warmup'] in train"),
        (
            {"old_logp": "sampler"},
            ["--method", "aepo"],
            "train.old_logp: sampler with loss aepo: its extra responses are drawn at another "
            "temperature",
        ),
    ],
)
def test_bad_config_fails_before_any_work_naming_key_and_fix(
    tiny_base, tmp_path, capsys, overrides, args, message
):
    config = write_config(tmp_path / "config.yaml", rl_config(tiny_base, **overrides))
    out = tmp_path / "run"
    assert main(["train", "--config", str(config), *args, "--out", str(out)]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()  # nothing was started


def test_a_kl_to_the_reference_is_measured_against_the_frozen_base_model(
    tiny_base, tmp_path, monkeypatch
):
    """The reference of the KL term (in the loss and in the reward) is the base model, frozen:
    its log-probabilities equal an independent pass of the base model at every step, the
    penalty starts at 0 (the policy is the base) and grows as the policy moves."""
    seen = []
    real = loop_module._reference_kl

    def spy(run, batch, *args):
        batch, ref_logp = real(run, batch, *args)
        seen.append((batch.to("cpu"), ref_logp.cpu()))
        return batch, ref_logp

    monkeypatch.setattr(loop_module, "_reference_kl", spy)
    config = settings(tiny_base, "kl_ref", steps=5, lr=3e-3)
    rows = train(config, tmp_path, ArithmeticTask(**TINY_TASK))
    base = AutoModelForCausalLM.from_pretrained(tiny_base).eval()
    for batch, ref_logp in (seen[0], seen[-1]):
        with torch.no_grad():
            logp, _ = policy_forward(base, batch, temperature=config.temperature)
        mask = batch.response_mask
        torch.testing.assert_close(ref_logp[mask], logp[mask], rtol=0, atol=1e-5)
    assert rows[0]["reward_kl"] < 1e-6  # k3 of the sampler against the same model: rounding
    assert rows[-1]["reward_kl"] > 100 * max(rows[0]["reward_kl"], 1e-8)
    assert all(row["kl_ref"] >= 0 for row in rows) and rows[-1]["kl_ref"] > rows[0]["kl_ref"]
    # the advantages are those of the rewards less the penalty: not exactly GRPO's ±1 pattern
    assert not torch.equal(seen[-1][0].advantages, seen[-1][0].advantages.round())


@pytest.mark.parametrize("method", ["reinforce_pp", "passk"])
def test_the_trainer_gives_each_estimator_its_settings_and_the_responses_lengths(
    tiny_base, tmp_path, monkeypatch, method
):
    """REINFORCE++ whitens over the batch's tokens (each response weighed by its length, as
    verl's masked_whiten), so the estimator gets every response's token count; pass@k gets its
    k from advantage_config."""
    calls, kept_batches = [], []
    real_estimate, real_draw = step_module.compute_advantages, loop_module.draw_groups

    def estimate(name, rewards, eps=1e-6, config=None, lengths=None):
        calls.append((name, config, lengths))
        return real_estimate(name, rewards, eps, config, lengths)

    def draw(*args, **kwargs):
        kept, advantages, metrics = real_draw(*args, **kwargs)
        kept_batches.append(kept)
        return kept, advantages, metrics

    monkeypatch.setattr(step_module, "compute_advantages", estimate)
    monkeypatch.setattr(loop_module, "draw_groups", draw)
    config = settings(tiny_base, method, steps=2)
    train(config, tmp_path, ArithmeticTask(**TINY_TASK))
    assert len(calls) == len(kept_batches) == 2
    for (name, advantage_config, lengths), kept in zip(calls, kept_batches, strict=True):
        assert name == config.advantage and advantage_config == config.advantage_config
        response_lengths = [len(ids) for ids in kept.generation.response_ids]
        assert lengths.flatten().tolist() == response_lengths
    assert len({n for _, _, lengths in calls for n in lengths.flatten().tolist()}) > 1
    if method == "passk":
        assert config.advantage_config == {"k": 2}


def test_dynamic_sampling_fills_the_batch_with_informative_groups(tiny_base, tmp_path):
    rows = train(settings(tiny_base, "dapo", steps=3), tmp_path, ArithmeticTask(**TINY_TASK))
    for row in rows:
        assert 1 <= row["sampling_rounds"] <= 4
        if row["sampling_rounds"] < 4:  # filled early: every group carries a learning signal
            assert row["sampled_groups"] == 4 and row["zero_adv_group_frac"] == 0.0
        if row["zero_adv_group_frac"] > 0:  # rounds ran out with no informative group at all:
            assert row["sampling_rounds"] == 4  # the first batch is trained on (it changes nothing)
            assert row["sampled_groups"] == 4 and row["zero_adv_group_frac"] == 1.0


def test_entropy_target_logs_its_controller(tiny_base, tmp_path):
    rows = train(settings(tiny_base, "entropy_target"), tmp_path, ArithmeticTask(**TINY_TASK))
    assert rows[0]["entropy_coef"] == 0.0  # coef_init
    integral = 0.0
    for row, following in zip(rows, [*rows[1:], None], strict=True):
        # the controller is fed the step's measured entropy, and its output drives the next step
        integral, coef = next_coef(integral, row["entropy"], 1.0, kp=2.0, ki=0.2, coef_max=1.0)
        assert row["entropy_coef_next"] == pytest.approx(coef)
        if following is not None:
            assert following["entropy_coef"] == pytest.approx(coef)


def test_a_second_controller_runs_with_no_trainer_change(tiny_base, tmp_path):
    """Skywork-OR1's adaptive entropy: its state (coefficient, on/off) travels only through the
    loss's registered controller, fed each step's measured entropy."""
    rows = train(settings(tiny_base, "adaptive_entropy"), tmp_path, ArithmeticTask(**TINY_TASK))
    assert rows[0]["entropy_coef"] == 0.01  # coef_init, and the bonus is on at the start
    coef = 0.01
    for row, following in zip(rows, [*rows[1:], None], strict=True):
        coef, on = adaptive_coef(coef, row["entropy"], 1.0, 0.005, 0.0, 0.05)
        assert row["entropy_target"] == 1.0
        assert row["entropy_coef_next"] == pytest.approx(coef * on)
        if following is not None:
            assert following["entropy_coef"] == pytest.approx(coef * on)


def test_gradient_checkpointing_gives_the_same_run(tiny_base, tmp_path, monkeypatch):
    """Recomputing activations in the backward pass changes memory, not the numbers."""
    task = ArithmeticTask(**TINY_TASK)
    plain = train(settings(tiny_base, "kl_cov", steps=2), tmp_path / "plain", task)
    models = []

    def spy(*args, **kwargs):
        models.append(AutoModelForCausalLM.from_pretrained(*args, **kwargs))
        return models[-1]

    monkeypatch.setattr(loop_module, "load_model", spy)
    saved = train(
        settings(tiny_base, "kl_cov", steps=2, gradient_checkpointing=True), tmp_path / "gc", task
    )
    assert models[0].is_activation_checkpointing
    assert_same_run(plain, saved, rel=1e-5, abs=1e-7)


@pytest.mark.parametrize(
    ("method", "mode"),
    [("grpo", "token-mean"), ("entropy_bonus", "seq-mean-token-mean"), ("dr_grpo", None)],
)
def test_token_micro_batching_accumulates_the_same_update(tiny_base, tmp_path, method, mode):
    """One sequence per micro-batch, gradients accumulated: the same run as whole mini-batches."""
    task = ArithmeticTask(**TINY_TASK)
    base = rl_config(tiny_base, steps=2)["train"]
    if mode is not None:
        base["methods"][method].setdefault("loss_config", {})["loss_agg_mode"] = mode

    def run(out, **extra):
        section = run_section({**base, **extra}, method, "train")
        return train(RLSettings.from_dict(section), tmp_path / out, task)

    whole = run("whole")
    parts = run("parts", micro_batch_tokens=1)  # fewer tokens than a row: one row a part
    assert_same_run(whole, parts, rel=1e-4, abs=1e-6)


def test_the_vllm_rollout_needs_vllm_and_a_gpu_before_any_work(tiny_base, tmp_path, monkeypatch):
    import importlib.util

    config = settings(tiny_base, "grpo", rollout="vllm", device="cpu")
    task = ArithmeticTask(**TINY_TASK)
    real_find_spec = importlib.util.find_spec
    if real_find_spec("vllm") is None:
        with pytest.raises(ValueError, match=r"train.rollout = 'vllm' needs vLLM and a GPU"):
            train(config, tmp_path / "a", task)
    # with vLLM importable, a CPU device is refused by name
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: object() if name == "vllm" else real_find_spec(name, *a),
    )
    with pytest.raises(ValueError, match=r"samples on a GPU but the trainer runs on 'cpu'"):
        train(config, tmp_path / "b", task)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


@pytest.mark.parametrize("old_logp", ["sampler", "recompute"])
def test_the_sampler_and_the_trainer_agree_on_log_probabilities(tiny_base, tmp_path, old_logp):
    """rollout_logp_gap: |trainer − sampler| log-probability of the sampled tokens (over the whole
    batch when the old log-probabilities are recomputed, over the first mini-batch's forward pass
    when they are the sampler's). With the hf backend the sampler is the policy itself, so it is
    ~0 at every step, the updates included; a rollout engine with stale weights (vLLM not synced)
    would show it growing. At a temperature other than 1 the trained policy is the tempered one,
    ``softmax(z / T)`` (verl, TRL), so they agree there too; only top-p truncates the sampler's
    distribution away from the policy's."""
    task = ArithmeticTask(**TINY_TASK)
    rows = train(
        settings(tiny_base, "grpo", steps=3, lr=1e-2, old_logp=old_logp), tmp_path / "run", task
    )
    assert all(row["rollout_logp_gap"] < 1e-4 for row in rows), [
        r["rollout_logp_gap"] for r in rows
    ]
    cooler = train(
        settings(tiny_base, "grpo", steps=2, lr=1e-2, temperature=0.5, old_logp=old_logp),
        tmp_path / "t05",
        task,
    )
    assert all(row["rollout_logp_gap"] < 1e-4 for row in cooler), [
        r["rollout_logp_gap"] for r in cooler
    ]
    # the entropy logged is the tempered policy's: lower than at temperature 1 on the same model
    assert cooler[0]["entropy"] < rows[0]["entropy"], (cooler[0]["entropy"], rows[0]["entropy"])
    nucleus = train(settings(tiny_base, "grpo", steps=1, top_p=0.9), tmp_path / "p09", task)
    assert nucleus[0]["rollout_logp_gap"] is None  # the sampler's distribution is not the policy's


@pytest.mark.parametrize("method", ["grpo", "clip_cov"])
def test_the_samplers_old_log_probabilities_give_the_recomputing_runs_metrics(
    tiny_base, tmp_path, method
):
    """train.old_logp: sampler (the hf default) skips the no-grad pass over the batch; the hf
    sampler draws from softmax(z / T) of this policy, so its log-probabilities and entropies are
    the recomputed ones up to float rounding (< 1e-4), and a run's metrics agree to that."""
    task = ArithmeticTask(**TINY_TASK)
    assert settings(tiny_base, method).old_logp_from_sampler()  # auto: the sampler's
    runs = {
        mode: train(
            settings(tiny_base, method, old_logp=mode, temperature=0.5), tmp_path / mode, task
        )
        for mode in ("sampler", "recompute")
    }
    assert_same_run(runs["sampler"], runs["recompute"], rel=1e-3, abs=1e-4)


def test_kl_cov_recomputes_its_old_log_probabilities(tiny_base, tmp_path):
    """KL-Cov's |log π − log π_old| has a gradient of size β at any nonzero gap: with the
    sampler's log-probabilities (~1e-5 of rounding away) a step whose advantages are all zero
    still moves the policy; recomputed, it does not. So auto recomputes for KL-Cov."""
    assert not settings(tiny_base, "kl_cov").old_logp_from_sampler()
    task = ArithmeticTask(**TINY_TASK)
    # one-token responses cannot hold a boxed answer: every reward is 0, no group carries a signal
    zero = {"format_penalty": 0.0, "temperature": 0.5, "steps": 1, "max_new_tokens": 1}
    runs = {
        mode: train(settings(tiny_base, "kl_cov", old_logp=mode, **zero), tmp_path / mode, task)
        for mode in ("sampler", "recompute")
    }
    assert runs["recompute"][0]["zero_adv_group_frac"] == 1.0
    assert runs["recompute"][0]["grad_norm"] == 0.0
    assert runs["sampler"][0]["grad_norm"] > 0.0


def test_the_samplers_log_probabilities_are_refused_where_they_are_not_the_policys(tiny_base):
    assert not settings(tiny_base, top_p=0.9).old_logp_from_sampler()
    assert not settings(tiny_base, precision="bfloat16").old_logp_from_sampler()
    with pytest.raises(
        ValueError, match=r"train\.old_logp: sampler needs the hf rollout at top_p 1"
    ):
        settings(tiny_base, old_logp="sampler", top_p=0.9)


def test_bf16_autocast_trains_with_float32_master_weights(tiny_base, tmp_path):
    """train.precision: bfloat16 (the GPU setting; CPU autocast runs it too): forward passes in
    bf16, log-probabilities and entropies from float32 logits, weights and updates in float32."""
    task = ArithmeticTask(**TINY_TASK)
    full = train(settings(tiny_base, "grpo", steps=2), tmp_path / "fp32", task)
    half = train(
        settings(tiny_base, "grpo", steps=2, precision="bfloat16"), tmp_path / "bf16", task
    )
    # the same rollouts at step 0 (sampling is not autocast); bf16 changes the digits, not the sense
    assert half[0]["response_length"] == full[0]["response_length"]
    assert half[0]["entropy"] == pytest.approx(full[0]["entropy"], rel=0.05)
    assert half[0]["entropy"] != full[0]["entropy"]  # the forward pass did run in bf16
    assert all(math.isfinite(row["grad_norm"]) for row in half)
    saved = load_file(tmp_path / "bf16" / "model" / "model.safetensors")
    assert {tensor.dtype for tensor in saved.values()} == {torch.float32}


SELECTING = {  # small fractions, so that choosing within each part would choose other tokens
    "clip_cov": {"loss": "clip_cov", "loss_config": {"r": 0.02, "omega_low": -100.0, "omega_high": 100.0}},
    "kl_cov": {"loss": "kl_cov", "loss_config": {"k": 0.02}},
    "forking_tokens": {"loss": "forking_tokens", "loss_config": {"top_fraction": 0.05}},
}  # fmt: skip


@pytest.mark.parametrize("method", sorted(SELECTING))
def test_selecting_losses_choose_over_the_whole_mini_batch_whatever_its_micro_batches(
    tiny_base, tmp_path, method
):
    """train.selection: batch: the tokens Clip-Cov / KL-Cov / forking tokens choose, and so the
    update, are the same with micro-batching off, one row a part, or a few rows a part; choosing
    within each part (selection: micro_batch, verl's way) changes both."""
    task = ArithmeticTask(**TINY_TASK)
    # at temperature 0.5 the tiny base solves some of its problems: groups with a learning signal
    # (lr 1e-4: Adam's first steps are ±lr wherever a gradient is not 0, float noise included)
    train_section = {"steps": 1, "mini_batches": 2, "temperature": 0.5, "prompts_per_step": 8,
                     "lr": 1e-4}  # fmt: skip
    base = rl_config(tiny_base, **train_section)["train"]
    base["methods"] = {method: SELECTING[method]}

    def run(out, **extra):
        rows = train(RLSettings.from_dict(run_section({**base, **extra}, method, "train")),
                     tmp_path / out, task)  # fmt: skip
        return rows, load_file(tmp_path / out / "model" / "model.safetensors")

    def largest_difference(a, b):
        return max(float((a[name] - b[name]).abs().max()) for name in a)

    # the first seed whose rollout batch has a group with a learning signal (how often the tiny
    # base solves a problem depends on the CPU its SFT ran on): the test's precondition
    start = load_file(tiny_base / "model.safetensors")
    for seed in range(8):
        base["seed"] = seed
        whole, whole_weights = run(f"whole{seed}")
        if whole[0]["zero_adv_group_frac"] < 1.0:
            break
    assert whole[0]["zero_adv_group_frac"] < 1.0, "no seed of 8 gave a group a learning signal"
    moved = largest_difference(whole_weights, start)
    assert moved > 1e-5  # the step did move the policy
    for tokens in (1, 120):  # one row a part (fewer tokens than a row); a few rows a part
        parts, weights = run(f"parts{tokens}", micro_batch_tokens=tokens)
        assert parts[0]["cov_selected_count"] == whole[0]["cov_selected_count"]
        assert largest_difference(weights, whole_weights) < 1e-6
    _, weights = run("per_part", micro_batch_tokens=1, selection="micro_batch")
    assert largest_difference(weights, whole_weights) > 0.1 * moved
