"""The RL loop, read top to bottom like the paper's algorithm.

    for each step:
        prompts      ← a seeded draw from the train split
        rollouts     ← G responses per prompt (temperature T; the policy is softmax(z / T))
        rewards      ← the verifier (boxed answer vs reference)
        advantages   ← the registered estimator (GRPO: group mean / std)
        old logprobs ← one forward pass of the current policy (no gradient); with a KL to the
                       reference, the frozen base model's too (and, in the reward, the
                       advantages of the penalised rewards)
        for epoch, mini-batch:  loss ← the registered policy loss; step the optimizer
        metrics      ← one row of metrics.jsonl (entropy, covariance, Lemma-1 check, ...)
        checkpoint   ← every N steps: model, optimizer, step, RNG

Every random draw of step ``s`` is seeded by ``(seed, s)``, so a run resumed from a checkpoint
gives the same numbers as one that never stopped. A non-finite loss or gradient stops the run,
naming the step and the tensor, with the last checkpoint left intact.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import json
import os
import shutil
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from entropy_rl.data import render_prompt
from entropy_rl.io import append_jsonl, atomic_dir, write_json, write_jsonl
from entropy_rl.losses import get_policy_loss
from entropy_rl.metrics import lemma1_check
from entropy_rl.rewards import graded_reward
from entropy_rl.rollout import (
    Generation,
    HFGenerator,
    answer_problems,
    load_model,
    load_tokenizer,
)
from entropy_rl.rollout.lean import LeanGenerator
from entropy_rl.rows import Rows
from entropy_rl.step import (
    COUNT_METRICS,
    NonFiniteError,
    Update,
    controller_kwargs,
    controller_metrics,
    controller_start,
    draw_groups,
    ppo_update,
    resample,
    reward_kl_advantages,
)
from entropy_rl.tasks import ArithmeticTask, Problem
from entropy_rl.train.batch import (
    LanguagePolicy,
    TokenBatch,
    collate,
    sampler_entropies,
    sampler_logprobs,
)
from entropy_rl.train.checkpoint import (
    identity_differences,
    latest_checkpoint,
    load_checkpoint,
    model_digest,
    save_checkpoint,
    saved_identity,
)
from entropy_rl.train.distributed import (
    SINGLE,
    World,
    full_model_state,
    full_weights,
    init_world,
    shard_model,
)
from entropy_rl.train.settings import RLSettings

__all__ = ["NonFiniteError", "RunChangedError", "clear_run", "run_identity", "train"]


class RunChangedError(ValueError):
    """``--resume`` found a checkpoint of another run (other settings, task or base model)."""


def _seed(settings: RLSettings, step: int, stream: int) -> int:
    """An independent, reproducible seed for random stream ``stream`` of step ``step``."""
    return (settings.seed * 1_000_003 + step) * 16 + stream


def _rank_seed(seed: int, world: World) -> int:
    """``seed`` for this rank's sampling (rank 0 draws what a single-process run draws)."""
    return seed + 1_000_000_007 * world.rank


def _check_world(settings: RLSettings, world: World) -> None:
    """Settings a run sharded over ``world.size`` processes needs, checked before any work."""
    if not world.active:
        return
    if settings.compile:
        raise ValueError(
            "train.compile: true runs in one process; set it to false to run under torchrun"
        )
    if settings.prompts_per_step % world.size:
        raise ValueError(
            f"train.prompts_per_step ({settings.prompts_per_step}) must be a multiple of the "
            f"number of processes ({world.size}): each rank samples an equal share of the prompts"
        )
    rows = settings.prompts_per_step // world.size * settings.group_size
    if rows % settings.mini_batches:
        raise ValueError(
            f"train.mini_batches ({settings.mini_batches}) must divide each rank's "
            f"{rows} responses (prompts_per_step / processes × group_size)"
        )
    if settings.dynamic_sampling:
        raise ValueError(
            "train.dynamic_sampling is single-process only (ranks would sample different numbers "
            "of rounds); set it to false or run on one process"
        )


def _check_rollout(settings: RLSettings, device: str) -> None:
    """The vLLM rollout backend needs vLLM and a GPU: checked before any work."""
    if settings.rollout != "vllm":
        return
    if importlib.util.find_spec("vllm") is None:
        raise ValueError(
            "train.rollout = 'vllm' needs vLLM and a GPU: pip install -e '.[gpu]', "
            "or set train.rollout: hf"
        )
    if not device.startswith("cuda"):
        raise ValueError(
            f"train.rollout = 'vllm' samples on a GPU but the trainer runs on {device!r}; "
            "set train.device: cuda (or auto on a GPU machine), or train.rollout: hf"
        )


def _make_generator(settings, model, tokenizer, model_path: str, world: World):
    """The rollout backend: ``transformers`` on the policy itself, or a vLLM engine in this process
    (one per rank, as TRL's colocated mode) that gets the policy's weights after every step."""
    if settings.rollout == "hf":
        return HFGenerator(model, tokenizer, synced_gpus=world.active)
    if settings.rollout == "lean":
        if world.active:
            raise ValueError(
                "train.rollout = 'lean' samples in one process; with several (torchrun) use hf"
            )
        return LeanGenerator(model, tokenizer)
    from entropy_rl.rollout.vllm import VLLMGenerator

    if not world.active:  # vLLM's in-process launcher reads torchrun's variables
        for key, value in (
            ("RANK", "0"),
            ("LOCAL_RANK", "0"),
            ("WORLD_SIZE", "1"),
            ("MASTER_ADDR", "127.0.0.1"),
            ("MASTER_PORT", str(_free_port())),
        ):
            os.environ.setdefault(key, value)  # fmt: skip
    generator = VLLMGenerator(
        str(model_path),
        dtype="bfloat16" if settings.precision == "bfloat16" else "float32",
        gpu_memory_utilization=settings.vllm_gpu_memory,
        distributed_executor_backend="external_launcher",
        seed=settings.seed + world.rank,
    )
    generator.load_weights(full_weights(model))  # a resumed run's weights, not the base model's
    return generator


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _optimizer(settings: RLSettings) -> Callable[[torch.nn.Module], torch.optim.Optimizer]:
    return lambda model: torch.optim.AdamW(
        model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay
    )


def run_identity(settings: RLSettings, task: ArithmeticTask, model_path: Path) -> dict[str, Any]:
    """What a checkpoint must share with a run to be resumed by it: *what* is trained, not how it
    was named. The settings (but the number of steps, the threads and the loggers, which a resumed
    run may change, and ``model``, the base model's path as typed), the task, and the base model's
    content digest (:func:`~entropy_rl.train.checkpoint.model_digest`), as plain JSON values."""
    resumable = ("steps", "threads", "loggers", "model")
    train = {k: v for k, v in settings.to_dict().items() if k not in resumable}
    identity = {"settings": train, "task": task.to_dict(), "base_model": model_digest(model_path)}
    return json.loads(json.dumps(identity, sort_keys=True, default=str))


RUN_FILES = ("metrics.jsonl", "summary.json", "config.json")
RUN_FOLDERS = ("checkpoint", "checkpoint.old", "model")


def clear_run(out: Path) -> None:
    """Remove what a training run wrote to ``out`` (``--restart``; the caller holds its lock)."""
    for name in RUN_FOLDERS:
        shutil.rmtree(Path(out) / name, ignore_errors=True)
    for name in RUN_FILES:
        (Path(out) / name).unlink(missing_ok=True)


def _holds_a_run(out: Path) -> bool:
    """Whether ``out`` holds a run's record (an empty ``metrics.jsonl`` left by a failed start
    does not count)."""
    metrics = out / "metrics.jsonl"
    if metrics.is_file():
        with metrics.open() as f:
            if any(line.strip() for line in f):
                return True
    return latest_checkpoint(out / "checkpoint") is not None


def _accuracy(
    generator: HFGenerator,
    problems: list[Problem],
    template: str,
    temperature: float,
    max_new_tokens: int,
    seed: int,
    k: int = 1,
) -> tuple[float, float | None]:
    """Mean correctness of ``k`` responses to each problem (greedy: one is enough), and the
    token-mean entropy of the distributions they were sampled from (``None`` where the backend
    does not report entropies, or greedy)."""
    k = 1 if temperature == 0 else k
    answers = answer_problems(generator, problems, template, k, temperature, max_new_tokens, seed)
    entropies = answers.generation.entropies if temperature > 0 else []
    tokens = [h for row in entropies for h in row]
    return answers.accuracy, (sum(tokens) / len(tokens) if tokens else None)


@dataclass
class _Run:
    """What a run's steps share: the policy, its optimizer and sampler, the problems, the probe of
    the Lemma-1 check, the loss's controller state and the metrics rows so far."""

    settings: RLSettings
    out: Path
    world: World
    device: str
    identity: dict[str, Any]
    tokenizer: Any
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    policy: LanguagePolicy
    plan: Update
    sampler: Any
    train_problems: list[Problem]
    eval_problems: list[Problem]
    probe: TokenBatch
    control: dict[str, float] | None
    rows: list[dict[str, Any]]
    start: int
    reference: LanguagePolicy | None = None  # the frozen base model of a KL term


def train(
    settings: RLSettings,
    out: Path,
    task: ArithmeticTask,
    resume: bool = False,
    on_step: Callable[[dict[str, Any]], None] | None = None,
    on_start: Callable[[int], None] | None = None,
    restart_if_changed: bool = False,
) -> list[dict[str, Any]]:
    """Run (or resume) an RL run into ``out``; return its metrics rows.

    With ``resume``, a checkpoint of the same run (:func:`run_identity`) is continued; one of
    another run stops with :class:`RunChangedError` naming what differs, and nothing is removed,
    unless ``restart_if_changed`` (the pipeline's choice: Snakemake reruns a job whose inputs
    changed) starts this run over from step 0. The caller holds ``out``'s lock.
    ``on_start(step)`` is told the step the run starts from (0, or the checkpoint's step on resume);
    ``on_step(row)`` gets each metrics row as it is written.
    """
    run = _set_up(settings, Path(out), task, resume, restart_if_changed)
    if on_start is not None:
        on_start(run.start)
    for step in range(run.start, settings.steps):
        row = _step(run, step)
        if run.world.is_main:
            append_jsonl(run.out / "metrics.jsonl", row)
        run.rows.append(row)
        if on_step is not None:
            on_step(row)
        if (step + 1) % settings.checkpoint_every == 0 or step + 1 == settings.steps:
            _checkpoint(run, step + 1)
    _save_policy(run, task)
    return run.rows


def _set_up(
    settings: RLSettings, out: Path, task: ArithmeticTask, resume: bool, restart_if_changed: bool
) -> _Run:
    """Check the settings, load the policy (the base model, or the checkpoint a resumed run
    continues), its optimizer, sampler and problems, and rewrite ``metrics.jsonl`` up to the
    step the run starts from."""
    model_path = settings.check_model()
    device = settings.torch_device()
    world = init_world(device)  # several ranks under torchrun, else one
    _check_world(settings, world)
    _check_rollout(settings, device)
    device = world.device(device)
    torch.set_num_threads(settings.threads)
    tokenizer = load_tokenizer(model_path)
    identity = run_identity(settings, task, model_path)
    checkpoint = _checkpoint_to_resume(out, identity, world, resume, restart_if_changed)
    shard = functools.partial(shard_model, world=world)
    if checkpoint is not None:
        model, optimizer, state = load_checkpoint(
            checkpoint, _optimizer(settings), device, prepare=shard
        )
        start, rows, control = state["step"], list(state["rows"]), state.get("controller")
        probe = TokenBatch(**state["probe"])  # the metrics up to the checkpoint travel with it
    else:
        if not resume and _holds_a_run(out):
            raise ValueError(
                f"{out} already holds a run; pass --resume to continue it or choose another --out"
            )
        model = shard(load_model(model_path).to(device))
        optimizer = _optimizer(settings)(model)
        start, rows, probe, control = 0, [], None, None
    if settings.gradient_checkpointing:  # active in train mode; sampling switches to eval
        model.activation_checkpointing_enable({"use_reentrant": False})
        model.train()
    world.barrier()  # no rank reads the run's files after rank 0 starts rewriting them
    if world.is_main:
        write_jsonl(out / "metrics.jsonl", rows)  # rows logged after the checkpoint are recomputed
    sampler = _make_generator(settings, model, tokenizer, model_path, world)
    loss = get_policy_loss(settings.loss)
    plan = Update(loss, settings.loss_settings(), settings.epochs, settings.mini_batches,
                  settings.grad_clip, batch_selection=settings.selection == "batch")  # fmt: skip
    # the same for every run, from the validation split: the held-out split is the final test's
    eval_problems = task.problems("validation", settings.eval_problems, 0)
    if probe is None:  # a fixed batch of base-model responses on which Lemma 1 is checked
        probe_gen = sampler.generate(
            [render_prompt(settings.template, p.problem) for p in eval_problems[: settings.probe_size]],
            1, settings.temperature, settings.top_p, settings.max_new_tokens, seed=_seed(settings, 0, 15),
        )  # fmt: skip
        probe = collate(probe_gen, torch.zeros(len(probe_gen)), tokenizer.pad_token_id)
    # the update's passes may run compiled; the sampler keeps the eager model (the same weights)
    update_model = torch.compile(model, dynamic=True) if settings.compile else model
    policy = LanguagePolicy(update_model, settings.temperature, settings.autocast_dtype(),
                            settings.micro_batch_tokens, world)  # fmt: skip
    reference = None
    if settings.uses_reference():  # the base model, frozen: a resumed run's reference too
        frozen = shard(load_model(model_path).to(device)).eval().requires_grad_(False)
        reference = dataclasses.replace(policy, model=frozen)
    return _Run(
        settings, out, world, device, identity, tokenizer, model, optimizer, policy, plan, sampler,
        task.problems("train", settings.train_problems, settings.seed), eval_problems,
        probe.to(device), controller_start(loss, plan.loss_config, control), rows, start,
        reference,
    )  # fmt: skip


def _checkpoint_to_resume(
    out: Path, identity: dict[str, Any], world: World, resume: bool, restart_if_changed: bool
) -> Path | None:
    """The checkpoint a resumed run continues: ``None`` without ``resume`` or a checkpoint, or
    when the checkpoint is another run's and ``restart_if_changed`` (its files are then removed);
    another run's checkpoint without it raises :class:`RunChangedError`."""
    checkpoint = latest_checkpoint(out / "checkpoint") if resume else None
    differences = identity_differences(saved_identity(checkpoint), identity) if checkpoint else []
    if not differences:
        return checkpoint
    shown = "; ".join(differences[:3]) + (
        f"; and {len(differences) - 3} more" if len(differences) > 3 else ""
    )
    if not restart_if_changed:
        raise RunChangedError(
            f"{out} holds a run with other settings or another base model ({shown}); nothing "
            "was removed: pass --restart to start it over from step 0, or choose another --out"
        )
    world.barrier()  # every rank has read the identity before rank 0 removes it
    if world.is_main:
        print(f"{out}: the settings changed ({shown}); starting this run over from step 0",
              file=sys.stderr)  # fmt: skip
        clear_run(out)
    return None


def _step(run: _Run, step: int) -> dict[str, Any]:
    """One step: validation (on its schedule), rollouts, rewards, advantages, old
    log-probabilities, the PPO update, the Lemma-1 check, the controller; its metrics row."""
    settings, world = run.settings, run.world
    evaluation = _evaluate(run) if _is_eval_step(settings, step) else {}
    for group in run.optimizer.param_groups:  # a function of the step: a resumed run agrees
        group["lr"] = settings.lr_at(step)
    t0 = time.perf_counter()
    draw = functools.partial(_rollout, settings, run.sampler, run.train_problems, step, world=world)
    kept, advantages, adv_metrics = draw_groups(
        draw, settings, settings.sampling_rounds, lengths=_response_lengths
    )
    redraw = functools.partial(_rollout, settings, run.sampler, run.train_problems, step, 0,
                               world=world, tempered=True)  # fmt: skip
    kept, advantages, more = resample(
        run.plan.loss, run.plan.loss_config, run.control, redraw, kept,
        advantages, settings,
    )  # fmt: skip
    adv_metrics.update(more)
    batch = collate(kept.generation, advantages, run.tokenizer.pad_token_id).to(run.device)
    from_sampler = settings.old_logp_from_sampler()
    old_logp, old_entropy, gap_totals = _old_logprobs(run, kept.generation, batch, from_sampler)
    batch, ref_logp = _reference_kl(run, batch, kept.rewards, old_logp, adv_metrics)
    t1 = time.perf_counter()
    check = _is_check_step(settings, step)
    probe_logits = _probe_logits(run.model, run.probe, settings.temperature) if check else None
    update, first_gap = ppo_update(
        run.policy, batch, old_logp, run.optimizer, run.plan, step,
        shuffle=_generator(_seed(settings, step, 2)), pick=_generator(_seed(settings, step, 3)),
        loss_kwargs=controller_kwargs(run.plan.loss, run.plan.loss_config, run.control),
        old_entropy=old_entropy, on_policy_first=from_sampler, world=world, ref_logp=ref_logp,
    )  # fmt: skip
    if settings.rollout == "vllm":  # the next rollouts sample from the updated policy
        run.sampler.load_weights(full_weights(run.model))
    gap_totals = first_gap if first_gap is not None else gap_totals
    rollout_gap = None
    if gap_totals is not None:
        gap_sum, gap_count = world.sum(list(gap_totals))
        rollout_gap = gap_sum / max(gap_count, 1.0)
    t2 = time.perf_counter()

    mask = batch.response_mask
    update.pop("entropy", None)  # the entropy of the sampling policy is logged below
    row: dict[str, Any] = {
        "step": step,
        "entropy": float(old_entropy[mask].mean()),
        "reward_mean": float(kept.rewards.mean()),
        "accuracy": float(kept.correct.mean()),
        "response_length": float(mask.sum(1).float().mean()),
        "finished_frac": sum(kept.generation.finished) / len(kept.generation),
        **update,
        "entropy_change": None,
        "entropy_change_predicted": None,
        "lr": settings.lr_at(step),
        **adv_metrics,
    }
    response_tokens = float(mask.sum())
    if world.active:  # the step's numbers over every rank's responses
        response_tokens = _reduce_row(row, world, float(old_entropy[mask].sum()), response_tokens)
    run.control, more = controller_metrics(run.plan.loss, run.plan.loss_config, run.control, row)
    row.update(more)  # the coefficient of the next step
    if probe_logits is not None:
        measured, predicted = lemma1_check(
            probe_logits, _probe_logits(run.model, run.probe, settings.temperature)
        )
        row["entropy_change"] = float(measured[run.probe.response_mask].mean())
        row["entropy_change_predicted"] = float(predicted[run.probe.response_mask].mean())
    row.update(evaluation)
    row["time_rollout_s"] = t1 - t0
    row["time_update_s"] = t2 - t1
    row["tokens_per_s"] = response_tokens * settings.epochs / max(t2 - t0, 1e-9)
    row["rollout_logp_gap"] = rollout_gap
    return row


def _reference_kl(
    run: _Run, batch: TokenBatch, rewards: torch.Tensor, old_logp: torch.Tensor,
    adv_metrics: dict[str, float],
) -> tuple[TokenBatch, torch.Tensor | None]:  # fmt: skip
    """The frozen reference's log-probabilities of the batch's tokens (``None`` without a KL
    term) and the batch, its advantages those of the rewards less the KL penalty when the
    reward carries one (whose metrics join ``adv_metrics``)."""
    if run.reference is None:
        return batch, None
    with torch.no_grad():
        ref_logp, _ = run.reference.forward(batch)
    if run.settings.reward_kl_coef > 0:
        advantages, more = reward_kl_advantages(
            run.settings, rewards.to(run.device), old_logp, ref_logp, batch.response_mask
        )
        adv_metrics.update(more)
        token_advantages = advantages.to(torch.float32)[:, None] * batch.response_mask
        batch = dataclasses.replace(batch, advantages=token_advantages)
    return batch, ref_logp


def _evaluate(run: _Run) -> dict[str, float | None]:
    """Validation accuracy of the policy that samples this step, sampled and greedy, and its
    entropy on these fixed problems (free of the rollout batch's prompt mix; the law's fit can
    use either, docs/law.md)."""
    s = run.settings
    accuracy, entropy = _accuracy(run.sampler, run.eval_problems, s.template, s.temperature,
                                  s.max_new_tokens, seed=12345, k=s.eval_k)  # fmt: skip
    greedy, _ = _accuracy(run.sampler, run.eval_problems, s.template, 0.0, s.max_new_tokens, seed=0)
    return {"val_accuracy": accuracy, "val_entropy": entropy, "val_accuracy_greedy": greedy}


def _old_logprobs(
    run: _Run, generation: Generation, batch: TokenBatch, from_sampler: bool
) -> tuple[torch.Tensor, torch.Tensor, tuple[float, float] | None]:
    """The old log-probabilities and the entropies of the policy that sampled, and ``(sum,
    count)`` of ``|trainer - sampler|`` log-probability where the two should agree (measured on
    the first update's pass when the sampler's values are used, so ``None`` here)."""
    settings = run.settings
    response_mask = batch.response_mask.cpu()
    if from_sampler:  # the sampler is this policy: what a no-grad pass would recompute
        old_logp = sampler_logprobs(generation, response_mask).to(run.device)
        old_entropy = sampler_entropies(generation, response_mask).to(run.device)
        return old_logp, old_entropy, None
    with torch.no_grad():
        old_logp, old_entropy = run.policy.forward(batch)
    # the hf sampler reports the tempered policy's log-probabilities, vLLM the raw model's
    if settings.top_p == 1.0 and (settings.rollout == "hf" or settings.temperature == 1.0):
        sampled = sampler_logprobs(generation, response_mask).to(run.device)
        gap = (old_logp - sampled).abs()[batch.response_mask]
        return old_logp, old_entropy, (float(gap.sum()), float(gap.numel()))
    return old_logp, old_entropy, None


def _checkpoint(run: _Run, steps_done: int) -> None:
    probe = {f.name: getattr(run.probe, f.name) for f in dataclasses.fields(run.probe)}
    extra = {"probe": probe, "rows": run.rows, "controller": run.control}
    save_checkpoint(run.out / "checkpoint", run.model, run.optimizer, steps_done, extra,
                    run.identity, run.world)  # fmt: skip


def _save_policy(run: _Run, task: ArithmeticTask) -> None:
    """The final policy, gathered whole on rank 0 when sharded, and the run's config."""
    state_dict = full_model_state(run.model, run.world)
    if run.world.is_main:
        with atomic_dir(run.out / "model") as folder:
            run.model.save_pretrained(folder, state_dict=state_dict)
            run.tokenizer.save_pretrained(folder)
        write_json(
            run.out / "config.json", {"train": run.settings.to_dict(), "task": task.to_dict()}
        )
    run.world.barrier()  # the run's files are complete when any rank returns


def _reduce_row(row: dict[str, Any], world: World, entropy_sum: float, tokens: float) -> float:
    """Turn a rank's metrics ``row`` into the step's, in place: the token entropy over all ranks'
    tokens, token counts summed, the other numbers averaged over ranks (equal shares of responses).
    Returns the number of response tokens of all ranks."""
    keys = sorted(
        key for key, value in row.items()
        if isinstance(value, int | float) and not isinstance(value, bool)
        and key not in ("step", "lr", "entropy")
    )  # fmt: skip
    totals = world.sum([float(row[key]) for key in keys] + [entropy_sum, tokens])
    for key, total in zip(keys, totals, strict=False):
        row[key] = total if key in COUNT_METRICS else total / world.size
    row["entropy"] = totals[-2] / totals[-1]
    return totals[-1]


@dataclass(frozen=True)
class _Groups(Rows):
    """Graded rollouts (G responses per prompt): what dynamic sampling keeps or drops."""

    generation: Generation
    rewards: torch.Tensor  # [groups · G]
    correct: torch.Tensor  # [groups · G]


def _rollout(
    settings: RLSettings,
    generator: HFGenerator,
    train_problems: list[Problem],
    step: int,
    round_: int,
    temperature: float | None = None,
    count: int | None = None,
    world: World = SINGLE,
    tempered: bool = False,
) -> _Groups:
    """``prompts_per_step`` problems of step ``step`` (round ``round_``), G responses each, graded;
    in a sharded run this rank's share of them (every ``world.size``-th from ``world.rank``).
    ``tempered``: a resampling loss's extra draw, the first ``count`` of the step's problems (at
    least one a rank) at ``temperature``, from a sampling stream of its own."""
    stream = 0 if round_ == 0 else 4 + 2 * round_  # round 0: the streams of a run without rounds
    picks = torch.randint(
        len(train_problems),
        (settings.prompts_per_step,),
        generator=_generator(_seed(settings, step, stream)),
    )[: max(count or 0, world.size) if tempered else None][world.rank :: world.size]
    problems = [train_problems[i] for i in picks.tolist()]
    sampling_stream = 40 if tempered else (1 if round_ == 0 else stream + 1)
    prompts = [render_prompt(settings.template, p.problem) for p in problems]
    try:
        generation: Generation = generator.generate(
            prompts,
            settings.group_size,
            temperature if tempered else settings.temperature,
            settings.top_p,
            settings.max_new_tokens,
            seed=_rank_seed(_seed(settings, step, sampling_stream), world),
        )
    except FloatingPointError as err:
        raise NonFiniteError(f"step {step}: {err}; run stopped") from err
    references = [p.answer for p in problems for _ in range(settings.group_size)]
    graded = [  # each response graded once: the reward and the accuracy both come from it
        graded_reward(text, ref, settings.format_penalty)
        for text, ref in zip(generation.texts, references, strict=True)
    ]
    rewards = torch.tensor([r for r, _ in graded])
    correct = torch.tensor([c for _, c in graded], dtype=torch.float32)
    return _Groups(generation, rewards, correct)


def _response_lengths(groups: _Groups) -> torch.Tensor:
    """Each response's token count, for the estimators that weigh tokens (REINFORCE++)."""
    return torch.tensor([len(ids) for ids in groups.generation.response_ids])


def _is_eval_step(settings: RLSettings, step: int) -> bool:
    """Every ``eval_every`` steps and at the last; every ``eval_early_every`` up to
    ``eval_early_until``, where the collapse is fast and the law needs its points."""
    if not settings.eval_every:
        return False
    early = settings.eval_early_every and step <= settings.eval_early_until
    every = settings.eval_early_every if early else settings.eval_every
    return step % every == 0 or step == settings.steps - 1


def _is_check_step(settings: RLSettings, step: int) -> bool:
    return bool(settings.lemma_check_every) and step % settings.lemma_check_every == 0


@torch.no_grad()
def _probe_logits(model, probe: TokenBatch, temperature: float) -> torch.Tensor:
    """The probe's logits of the sampling policy, ``z / T``."""
    logits = model(input_ids=probe.input_ids, attention_mask=probe.attention_mask).logits[:, :-1]
    return logits.double() / temperature
