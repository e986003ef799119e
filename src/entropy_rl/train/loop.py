"""The RL loop, read top to bottom like the paper's algorithm.

    for each step:
        prompts      ← a seeded draw from the train split
        rollouts     ← G responses per prompt (temperature T; the policy is softmax(z / T))
        rewards      ← the verifier (boxed answer vs reference)
        advantages   ← the registered estimator (GRPO: group mean / std)
        old logprobs ← one forward pass of the current policy (no gradient)
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

from entropy_rl.advantages import compute_advantages, dynamic_sampling
from entropy_rl.data import render_prompt
from entropy_rl.io import append_jsonl, atomic_dir, write_json, write_jsonl
from entropy_rl.losses import get_policy_loss, make_controller, select_tokens
from entropy_rl.losses.common import aggregation_share, masked_mean, token_covariance
from entropy_rl.metrics import lemma1_check
from entropy_rl.rewards import grade, graded_reward
from entropy_rl.rollout import Generation, HFGenerator, load_model, load_tokenizer
from entropy_rl.rollout.lean import LeanGenerator
from entropy_rl.tasks import ArithmeticTask, Problem
from entropy_rl.train.batch import (
    TokenBatch,
    collate,
    policy_forward,
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


class NonFiniteError(FloatingPointError):
    """A NaN or inf in the rollout logits, the loss or the gradients; the message names the step
    and the tensor."""


class RunChangedError(ValueError):
    """``--resume`` found a checkpoint of another run (other settings, task or base model)."""


# loss metrics that count tokens: summed over micro-batches (the others are weighted means)
COUNT_METRICS = frozenset({"n_valid_tokens", "cov_selected_count", "cov_band_count"})


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


def _check_finite(
    step: int, losses: list[torch.Tensor], grad_norm: torch.Tensor, model: torch.nn.Module,
    world: World,
) -> None:  # fmt: skip
    """Stop on a NaN/inf loss or gradient of a mini-batch; every rank stops when one finds one.

    The total gradient norm (which the clip needs anyway) is non-finite exactly when some gradient
    element is, so the walk over the parameters that names the tensor runs only then."""
    problem = None
    bad = [loss for loss in losses if not torch.isfinite(loss)] if losses else []
    if bad:
        problem = f"step {step}: the policy loss is {bad[0].item()} (non-finite); run stopped"
    elif not torch.isfinite(grad_norm):
        for name, param in model.named_parameters():
            grad = param.grad
            grad = grad.to_local() if hasattr(grad, "to_local") else grad  # a rank's shard (FSDP)
            if grad is not None and not torch.isfinite(grad).all():
                problem = f"step {step}: the gradient of {name} has NaN/inf values; run stopped"
                break
        else:  # the non-finite shard is another rank's
            problem = f"step {step}: another process found a NaN/inf gradient; run stopped"
    if world.active and world.sum([float(problem is not None)])[0] and problem is None:
        problem = f"step {step}: another process found a NaN/inf loss or gradient; run stopped"
    if problem is not None:
        raise NonFiniteError(problem)


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
    prompts = [render_prompt(template, p.problem) for p in problems]
    generation = generator.generate(prompts, k, temperature, 1.0, max_new_tokens, seed)
    answers = [p.answer for p in problems for _ in range(k)]
    accuracy = sum(
        grade(text, answer) for text, answer in zip(generation.texts, answers, strict=True)
    ) / len(answers)
    tokens = [h for row in generation.entropies for h in row] if temperature > 0 else []
    return accuracy, (sum(tokens) / len(tokens) if tokens else None)


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
    out = Path(out)
    model_path = settings.check_model()
    device = settings.torch_device()
    world = init_world(device)  # several ranks under torchrun, else one
    _check_world(settings, world)
    _check_rollout(settings, device)
    device, autocast = world.device(device), settings.autocast_dtype()
    metrics_path, checkpoint_dir = out / "metrics.jsonl", out / "checkpoint"
    torch.set_num_threads(settings.threads)

    # -- the policy, its optimizer and where to start ------------------------------------------
    tokenizer = load_tokenizer(model_path)
    checkpoint = latest_checkpoint(checkpoint_dir) if resume else None
    identity = run_identity(settings, task, model_path)
    differences = identity_differences(saved_identity(checkpoint), identity) if checkpoint else []
    if differences:
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
        checkpoint = None
    shard = functools.partial(shard_model, world=world)
    if checkpoint is not None:
        model, optimizer, state = load_checkpoint(
            checkpoint, _optimizer(settings), device, prepare=shard
        )
        start = state["step"]
        rows = list(state["rows"])  # the metrics up to the checkpoint travel with it
        probe = TokenBatch(**state["probe"])
        controller_state = state.get("controller")
    else:
        if not resume and _holds_a_run(out):
            raise ValueError(
                f"{out} already holds a run; pass --resume to continue it or choose another --out"
            )
        model = shard(load_model(model_path).to(device))
        optimizer = _optimizer(settings)(model)
        start, rows, probe, controller_state = 0, [], None, None
    if settings.gradient_checkpointing:  # active in train mode; sampling switches to eval
        model.activation_checkpointing_enable({"use_reentrant": False})
        model.train()
    world.barrier()  # no rank reads the run's files after rank 0 starts rewriting them
    if world.is_main:
        write_jsonl(metrics_path, rows)  # rows logged after the checkpoint are recomputed
    if on_start is not None:
        on_start(start)
    generator = _make_generator(settings, model, tokenizer, model_path, world)
    loss_fn = get_policy_loss(settings.loss)
    loss_config = settings.loss_settings()
    batch_selection = settings.selection == "batch" and loss_fn.selector is not None
    controller = make_controller(loss_config, controller_state)  # entropy_target only
    from_sampler = settings.old_logp_from_sampler()

    train_problems = task.problems("train", settings.train_problems, settings.seed)
    # the same for every run, from the validation split: the held-out split is the final test's
    eval_problems = task.problems("validation", settings.eval_problems, 0)
    if probe is None:  # a fixed batch of base-model responses on which Lemma 1 is checked
        probe_gen = generator.generate(
            [render_prompt(settings.template, p.problem) for p in eval_problems[: settings.probe_size]],
            1, settings.temperature, settings.top_p, settings.max_new_tokens, seed=_seed(settings, 0, 15),
        )  # fmt: skip
        probe = collate(probe_gen, torch.zeros(len(probe_gen)), tokenizer.pad_token_id)
    probe = probe.to(device)

    for step in range(start, settings.steps):
        # -- validation accuracy of the policy that samples this step (its entropy is the row's) --
        evaluation = {}
        if _is_eval_step(settings, step):
            # the policy being trained: its accuracy, and its entropy on these fixed problems
            # (free of the rollout batch's prompt mix; the law's fit can use either, docs/law.md)
            evaluation["val_accuracy"], evaluation["val_entropy"] = _accuracy(
                generator,
                eval_problems,
                settings.template,
                settings.temperature,
                settings.max_new_tokens,
                seed=12345,
                k=settings.eval_k,
            )
            evaluation["val_accuracy_greedy"], _ = _accuracy(
                generator, eval_problems, settings.template, 0.0, settings.max_new_tokens, seed=0
            )
        for group in optimizer.param_groups:  # a function of the step: a resumed run agrees
            group["lr"] = settings.lr_at(step)
        t0 = time.perf_counter()
        # -- prompts → rollouts → rewards → advantages ----------------------------------------
        draw = functools.partial(_rollout, settings, generator, train_problems, step, world=world)
        if settings.dynamic_sampling:  # DAPO: keep informative groups, sample more until full
            kept, rounds = dynamic_sampling(
                draw, settings.prompts_per_step, settings.group_size, settings.sampling_rounds
            )
        else:
            kept = draw(0)
        generation, rewards, correct = kept.generation, kept.rewards, kept.correct
        advantages, adv_metrics = compute_advantages(
            settings.advantage, rewards.view(-1, settings.group_size)
        )
        if settings.dynamic_sampling:
            adv_metrics["sampling_rounds"] = rounds
            adv_metrics["sampled_groups"] = len(kept.rewards) // settings.group_size
        batch = collate(generation, advantages.flatten(), tokenizer.pad_token_id).to(device)

        # -- old log-probabilities (and the entropy of the policy that sampled) ----------------
        # sum and count of |trainer − sampler| log-probability, where the two should agree
        gap_totals: list[float] | None = None
        response_mask = batch.response_mask.cpu()
        if from_sampler:  # the sampler is this policy: what a no-grad pass would recompute
            old_logp = sampler_logprobs(generation, response_mask).to(device)
            old_entropy = sampler_entropies(generation, response_mask).to(device)
            gap_totals = [0.0, 0.0]  # measured on the first update's forward pass, below
        else:
            with torch.no_grad():
                old_logp, old_entropy = policy_forward(
                    model, batch, autocast_dtype=autocast, temperature=settings.temperature
                )
            # the hf sampler reports the tempered policy's log-probabilities, vLLM the raw model's
            if settings.top_p == 1.0 and (settings.rollout == "hf" or settings.temperature == 1.0):
                sampled = sampler_logprobs(generation, response_mask).to(device)
                gap = (old_logp - sampled).abs()[batch.response_mask]
                gap_totals = [float(gap.sum()), float(gap.numel())]
        t1 = time.perf_counter()
        probe_logits = (
            _probe_logits(model, probe, settings.temperature)
            if _is_check_step(settings, step)
            else None
        )

        # -- PPO epochs over mini-batches with the registered loss ------------------------------
        sums: dict[str, float] = {}
        updates = 0
        shuffle, pick = _generator(_seed(settings, step, 2)), _generator(_seed(settings, step, 3))
        for _ in range(settings.epochs):
            for index in torch.randperm(len(batch), generator=shuffle).chunk(settings.mini_batches):
                mini: TokenBatch = batch.select(index)
                optimizer.zero_grad(set_to_none=True)
                metrics: dict[str, float] = {}
                parts = _micro_batches(len(mini), mini.input_ids.shape[1], settings, world)
                part_logps, part_losses = [], []
                selected = None  # the tokens a selecting loss trains, chosen over the mini-batch
                if batch_selection and (len(parts) > 1 or world.active):
                    # before the step's first update the policy is the one whose log-probabilities
                    # and entropies the rollout pass (or the sampler) already gave
                    known = (old_logp[index], old_entropy[index]) if updates == 0 else None
                    selected = _select_over_mini_batch(
                        model, mini, parts, old_logp[index], settings, loss_config, pick, world,
                        on_policy=from_sampler and updates == 0, known=known,
                    )  # fmt: skip
                for part in parts:
                    micro = mini.select(part)
                    logp, entropy = policy_forward(
                        model, micro, autocast_dtype=autocast, temperature=settings.temperature
                    )
                    if from_sampler and updates == 0:
                        # the first update is on-policy: this pass is the policy that sampled, so
                        # its log-probabilities are the old ones exactly (ratio 1, KL-Cov's
                        # |logp - old_logp| 0 with no gradient) and replace the sampler's
                        # (~1e-5 away: float rounding), which the other mini-batches keep
                        gap = (logp.detach() - old_logp[index][part]).abs()[micro.response_mask]
                        gap_totals = [gap_totals[0] + float(gap.sum()), gap_totals[1] + gap.numel()]
                        old_logp[index[part]] = logp.detach()
                    loss, part_metrics = loss_fn(
                        logp,
                        old_logp[index][part],
                        micro.advantages,
                        micro.response_mask,
                        loss_config,
                        entropy=entropy,
                        generator=pick,
                        coef=controller.coef if controller else None,
                        selected=None if selected is None else selected[part],
                    )
                    part_logps.append(logp.detach())
                    scope = (
                        micro.response_mask,
                        mini.response_mask,
                    )  # what the loss's mean is over
                    if selected is not None and loss_config.aggregates_selected():
                        scope = (selected[part], selected)
                    share = aggregation_share(*scope, loss_config.loss_agg_mode)
                    (loss * share).backward()
                    part_losses.append(loss.detach())
                    tokens = aggregation_share(  # the metrics are means over valid tokens
                        micro.response_mask, mini.response_mask, "token-mean"
                    )
                    for key, value in part_metrics.items():  # counts add up
                        weight = 1.0 if key in COUNT_METRICS else tokens
                        metrics[key] = metrics.get(key, 0.0) + weight * value
                if len(parts) > 1:  # a batch statistic: over the whole mini-batch, as without parts
                    cov = token_covariance(
                        torch.cat(part_logps), mini.advantages, mini.response_mask
                    )
                    metrics["cov_mean"] = float(masked_mean(cov, mini.response_mask))
                grads = [p.grad for p in model.parameters() if p.grad is not None]
                grad_norm = torch.nn.utils.get_total_norm(grads)  # the norm clip_grad_norm_ takes
                total = grad_norm.full_tensor() if hasattr(grad_norm, "full_tensor") else grad_norm
                _check_finite(step, part_losses, total, model, world)  # FSDP: a DTensor, whole
                torch.nn.utils.clip_grads_with_norm_(
                    model.parameters(), settings.grad_clip, grad_norm
                )
                metrics["grad_norm"] = float(total)
                optimizer.step()
                for key, value in metrics.items():
                    sums[key] = sums.get(key, 0.0) + value
                updates += 1
        if settings.rollout == "vllm":  # the next rollouts sample from the updated policy
            generator.load_weights(full_weights(model))
        rollout_gap = None
        if gap_totals is not None:
            gap_sum, gap_count = world.sum(gap_totals)
            rollout_gap = gap_sum / max(gap_count, 1.0)
        t2 = time.perf_counter()

        # -- metrics --------------------------------------------------------------------------
        mask = batch.response_mask
        update = {key: value / updates for key, value in sums.items()}
        update.pop("entropy", None)  # the entropy of the sampling policy is logged below
        row: dict[str, Any] = {
            "step": step,
            "entropy": float(old_entropy[mask].mean()),
            "reward_mean": float(rewards.mean()),
            "accuracy": float(correct.mean()),
            "response_length": float(mask.sum(1).float().mean()),
            "finished_frac": sum(generation.finished) / len(generation),
            **update,
            "entropy_change": None,
            "entropy_change_predicted": None,
            "lr": settings.lr_at(step),
            **adv_metrics,
        }
        response_tokens = float(mask.sum())
        if world.active:  # the step's numbers over every rank's responses
            response_tokens = _reduce_row(
                row, world, float(old_entropy[mask].sum()), response_tokens
            )
        if controller is not None:  # the coefficient of the next step
            row["entropy_target"] = controller.config.target
            row["entropy_coef_next"] = controller.update(row["entropy"])
        if probe_logits is not None:
            measured, predicted = lemma1_check(
                probe_logits, _probe_logits(model, probe, settings.temperature)
            )
            probe_mask = probe.response_mask
            row["entropy_change"] = float(measured[probe_mask].mean())
            row["entropy_change_predicted"] = float(predicted[probe_mask].mean())
        row.update(evaluation)
        row["time_rollout_s"] = t1 - t0
        row["time_update_s"] = t2 - t1
        row["tokens_per_s"] = response_tokens * settings.epochs / max(t2 - t0, 1e-9)
        row["rollout_logp_gap"] = rollout_gap
        if world.is_main:
            append_jsonl(metrics_path, row)
        rows.append(row)
        if on_step is not None:
            on_step(row)

        # -- checkpoint -----------------------------------------------------------------------
        if (step + 1) % settings.checkpoint_every == 0 or step + 1 == settings.steps:
            save_checkpoint(
                checkpoint_dir, model, optimizer, step + 1,
                {"probe": {f.name: getattr(probe, f.name) for f in dataclasses.fields(probe)}, "rows": rows,
                 "controller": controller.state_dict() if controller else None},
                identity, world,
            )  # fmt: skip

    # the final policy, gathered whole on rank 0 when sharded
    state_dict = full_model_state(model, world)
    if world.is_main:
        with atomic_dir(out / "model") as folder:
            model.save_pretrained(folder, state_dict=state_dict)
            tokenizer.save_pretrained(folder)
        write_json(out / "config.json", {"train": settings.to_dict(), "task": task.to_dict()})
    world.barrier()  # the run's files are complete when any rank returns
    return rows


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
class _Groups:
    """Graded rollouts (G responses per prompt): what dynamic sampling keeps or drops."""

    generation: Generation
    rewards: torch.Tensor  # [groups · G]
    correct: torch.Tensor  # [groups · G]

    def take(self, index: torch.Tensor) -> _Groups:
        """The responses at ``index``, in that order."""
        return _Groups(
            self.generation.select(index.tolist()), self.rewards[index], self.correct[index]
        )

    def join(self, other: _Groups) -> _Groups:
        """These responses, then ``other``'s."""
        return _Groups(
            self.generation + other.generation,
            torch.cat([self.rewards, other.rewards]),
            torch.cat([self.correct, other.correct]),
        )


def _rollout(
    settings: RLSettings,
    generator: HFGenerator,
    train_problems: list[Problem],
    step: int,
    round_: int,
    world: World = SINGLE,
) -> _Groups:
    """``prompts_per_step`` problems of step ``step`` (round ``round_``), G responses each, graded;
    in a sharded run this rank's share of them (every ``world.size``-th from ``world.rank``)."""
    stream = 0 if round_ == 0 else 4 + 2 * round_  # round 0: the streams of a run without rounds
    picks = torch.randint(
        len(train_problems),
        (settings.prompts_per_step,),
        generator=_generator(_seed(settings, step, stream)),
    )[world.rank :: world.size]
    problems = [train_problems[i] for i in picks.tolist()]
    prompts = [render_prompt(settings.template, p.problem) for p in problems]
    try:
        generation: Generation = generator.generate(
            prompts,
            settings.group_size,
            settings.temperature,
            settings.top_p,
            settings.max_new_tokens,
            seed=_rank_seed(_seed(settings, step, 1 if round_ == 0 else stream + 1), world),
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


def _micro_batches(
    rows: int, width: int, settings: RLSettings, world: World = SINGLE
) -> list[torch.Tensor]:
    """Row indices of a mini-batch's micro-batches: ``max(1, micro_batch_tokens // width)`` rows
    each (the rows share one padded width), or the whole mini-batch when micro-batching is off.
    Sharded, every rank runs as many forward passes: the largest count of any rank, in equal parts
    (every rank's mini-batch has the same number of rows, so none is empty)."""
    per_part = max(1, settings.micro_batch_tokens // width) if settings.micro_batch_tokens else rows
    parts = list(torch.arange(rows).split(per_part))
    if world.active:
        parts = list(torch.arange(rows).tensor_split(world.max(len(parts))))
    return parts


def _select_over_mini_batch(
    model, mini: TokenBatch, parts: list[torch.Tensor], old_logp: torch.Tensor,
    settings: RLSettings, loss_config, pick: torch.Generator, world: World, on_policy: bool,
    known: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:  # fmt: skip
    """The tokens the loss selects (Clip-Cov, KL-Cov, forking tokens), chosen once over the whole
    mini-batch of every rank, as the paper defines them, not within each micro-batch or process.

    A no-grad pass over the same micro-batches gives the policy's log-probabilities and entropies
    (the update's forward passes then give the same numbers: the same model on the same inputs);
    every rank gathers all ranks' valid tokens in rank order, runs the loss's selector on them
    with the same generator, and keeps its own share. Returns a bool ``[rows, seq]`` mask.

    ``known``: the policy's log-probabilities and entropies where they are known without a pass
    (before a step's first update: the rollout's no-grad pass, or the sampler's values, which
    agree with a pass to float rounding)."""
    if known is None:
        with torch.no_grad():
            passes = [
                policy_forward(model, mini.select(part), autocast_dtype=settings.autocast_dtype(),
                               temperature=settings.temperature)
                for part in parts
            ]  # fmt: skip
        logp = torch.cat([lp for lp, _ in passes])  # the parts split the rows in order
        entropy = torch.cat([h for _, h in passes])
    else:
        logp, entropy = known
    old = logp if on_policy else old_logp  # the first update's old log-probabilities are its own
    valid = mini.response_mask.to(torch.bool)
    local = [t[valid] for t in (logp, old, mini.advantages, entropy)]
    gathered = [world.gather_cat(t) for t in local]
    start = gathered[0][1]
    flat = [whole[None] for whole, _ in gathered]  # one row of all valid tokens
    chosen = select_tokens(
        settings.loss, flat[0], flat[1], flat[2], torch.ones_like(flat[0], dtype=torch.bool),
        loss_config, entropy=flat[3], generator=pick,
    )[0]  # fmt: skip
    selected = torch.zeros_like(valid)
    selected[valid] = chosen[start : start + local[0].numel()]
    return selected


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
